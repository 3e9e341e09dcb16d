"""Hard-cut detection (mi_augment.video.cuts): synthetic shots with known cuts, and the real bikes clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mi_augment.datasets.samples import sample_path
from mi_augment.video.cuts import detect_cuts, frames_to_numpy, histogram_distances, iter_shot_windows
from mi_augment.video.io import iter_video, read_video

from .test_motion_support import cut_clip, random_motions, synthetic_clip

BIKES_CUTS = (30, 76, 137, 187, 242)  # DATA.md: first frame of each new shot


def _bikes_or_skip():
    try:
        return sample_path("bikes")
    except FileNotFoundError as exc:
        pytest.skip(f"real clip missing: {exc}")


def test_finds_known_cuts_in_synthetic_shots():
    frames, cuts = cut_clip([12, 9, 15, 10, 7])
    found = detect_cuts(frames)
    assert list(found.cuts) == cuts
    assert found.is_cut.sum() == len(cuts) and found.distances.shape == (frames.shape[0] - 1,)


def test_camera_motion_and_moving_objects_are_not_cuts():
    frames, _ = synthetic_clip(random_motions(25, seed=3, std=(3.0, 3.0, 1.0, 1.0)))
    assert detect_cuts(frames).cuts == ()


def test_gradual_lighting_change_is_not_a_cut():
    frames, _ = synthetic_clip(np.tile([0.5, 0.0, 0.0, 1.0], (20, 1)), foreground=False)
    ramp = torch.linspace(1.0, 0.5, 21).view(-1, 1, 1, 1)
    assert detect_cuts((frames.float() * ramp).round().to(torch.uint8)).cuts == ()


def test_accepts_float_grey_and_numpy_frames():
    frames, cuts = cut_clip([6, 6])
    assert list(detect_cuts(frames.float() / 255).cuts) == cuts
    assert list(detect_cuts(frames.permute(0, 2, 3, 1).numpy()).cuts) == cuts
    grey = frames.float().mean(1, keepdim=True).round().to(torch.uint8)
    assert histogram_distances(grey).shape == (11,)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="at least 2"):
        detect_cuts(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="NaN"):
        detect_cuts(torch.full((3, 3, 8, 8), float("inf")))
    with pytest.raises(ValueError, match="channels"):
        frames_to_numpy(torch.zeros(3, 2, 8, 8))
    with pytest.raises(TypeError, match="path"):
        frames_to_numpy([1, 2, 3])
    with pytest.raises(ValueError, match="min_distance"):
        detect_cuts(torch.zeros(3, 3, 8, 8, dtype=torch.uint8), min_distance=0.9, strong_distance=0.5)


def test_bikes_cuts_are_found_exactly():
    path = _bikes_or_skip()
    found = detect_cuts(read_video(path, max_side=160))
    assert found.cuts == BIKES_CUTS


def test_streamed_windows_cut_the_bikes_clip_where_detect_cuts_does():
    path = _bikes_or_skip()
    windows = [(a, b) for a, b, _ in iter_shot_windows(iter_video(path, max_side=160), length=40, min_length=2)]
    starts = [a for a, _ in windows]
    assert all(c in starts for c in BIKES_CUTS)
    assert windows[:4] == [(0, 30), (30, 70), (70, 76), (76, 116)]
    assert windows[-1] == (242, 250) and all(b - a <= 40 for a, b in windows)


def test_shot_windows_with_given_cuts_and_bad_arguments():
    frames = [torch.zeros(3, 8, 8, dtype=torch.uint8)] * 10
    assert [(a, b) for a, b, _ in iter_shot_windows(frames, 4, cuts=[3, 7])] == [(0, 3), (3, 7), (7, 10)]
    assert [(a, b) for a, b, _ in iter_shot_windows(frames, None, cuts=None)] == [(0, 10)]
    with pytest.raises(ValueError, match="length must be an integer >= 1"):
        iter_shot_windows(frames, 0)
    with pytest.raises(ValueError, match="cuts must be 'auto'"):
        iter_shot_windows(frames, 4, cuts="sometimes")
    with pytest.raises(ValueError, match="max_side must be an integer >= 1"):
        frames_to_numpy(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), max_side=0)
