"""Reading video files: streaming keeps one frame at a time, truncated files warn, bad sizes are refused."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mi_augment.video.io import iter_video, read_video


def _write_clip(path, frames: int = 20, size=(48, 64)) -> None:
    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    writer.release()


def test_iter_video_yields_the_frames_read_video_stacks(tmp_path):
    _write_clip(tmp_path / "c.avi", frames=7)
    streamed = list(iter_video(tmp_path / "c.avi", start=1, stride=2, max_side=32))
    whole = read_video(tmp_path / "c.avi", start=1, stride=2, max_side=32)
    assert len(streamed) == 3 and whole.shape == (3, 3, 24, 32)
    assert torch.equal(torch.stack(streamed), whole)


def test_iter_video_decodes_lazily(tmp_path):
    _write_clip(tmp_path / "c.avi", frames=12)
    frames = iter_video(tmp_path / "c.avi")
    first = next(frames)
    assert first.shape == (3, 48, 64) and first.dtype == torch.uint8
    assert sum(1 for _ in frames) == 11


def test_truncated_video_warns_how_many_of_how_many_frames(tmp_path):
    _write_clip(tmp_path / "full.avi", frames=40)
    data = (tmp_path / "full.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match=r"decoded \d+ of the 40 frames its header announces"):
        clip = read_video(tmp_path / "cut.avi")
    assert 0 < clip.shape[0] < 40


def test_complete_video_and_max_frames_do_not_warn(tmp_path, recwarn):
    _write_clip(tmp_path / "c.avi", frames=10)
    assert read_video(tmp_path / "c.avi").shape[0] == 10
    assert read_video(tmp_path / "c.avi", max_frames=3).shape[0] == 3
    assert not [w for w in recwarn if "header announces" in str(w.message)]


@pytest.mark.parametrize("max_side", [0, -5, 2.5, True])
def test_max_side_must_be_a_positive_integer(tmp_path, max_side):
    _write_clip(tmp_path / "c.avi", frames=2)
    with pytest.raises(ValueError, match="max_side must be an integer >= 1"):
        read_video(tmp_path / "c.avi", max_side=max_side)
    with pytest.raises(ValueError, match="max_side"):
        iter_video(tmp_path / "c.avi", max_side=max_side)
