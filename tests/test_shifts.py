"""The shifted test sets of issue 22: new backgrounds from held-out clips, and measured relighting."""

import cv2
import numpy as np
import pytest
import torch

from mi_augment.datasets.shifts import clip_frames, measured_changes, new_background_test_set, relight
from mi_augment.perturbations import IlluminationModel

from .media import write_video


def _garments(n=12):
    rng = np.random.default_rng(0)
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 8:20, 8:20] = rng.integers(120, 255, (n, 12, 12))
    return images, np.arange(n) % 10


def _exposure_ramp(frames=20, size=(64, 80), step=0.02):
    """A still, textured scene that gets brighter by ``step`` (relative) each frame: auto-exposure."""
    rng = np.random.default_rng(1)
    scene = cv2.GaussianBlur(rng.uniform(30, 160, (*size, 3)).astype(np.float32), (0, 0), 3)
    return np.stack([np.clip(scene * (1 + step) ** t, 0, 255).astype(np.uint8) for t in range(frames)])


def test_new_backgrounds_come_from_the_clips_given(tmp_path):
    blue = np.zeros((6, 48, 64, 3), np.uint8)
    blue[..., 2] = 200
    write_video(tmp_path / "blue.avi", blue)
    images, labels = new_background_test_set(_garments(), [tmp_path / "blue.avi"], n=20, seed=3)
    corners = images[:, :, :3, :3].float().mean((0, 2, 3))  # mostly background
    assert corners[2] > 150 and corners[0] < 40
    assert images.shape == (20, 3, 32, 32) and labels.shape == (20,)


def test_new_backgrounds_are_the_same_for_a_seed_and_differ_across_seeds(tmp_path):
    write_video(tmp_path / "ramp.avi", _exposure_ramp(8))
    a = new_background_test_set(_garments(), [tmp_path / "ramp.avi"], n=10, seed=0)
    b = new_background_test_set(_garments(), [tmp_path / "ramp.avi"], n=10, seed=0)
    c = new_background_test_set(_garments(), [tmp_path / "ramp.avi"], n=10, seed=1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_no_clip_is_refused():
    with pytest.raises(ValueError, match="clips"):
        new_background_test_set(_garments(), [], n=4)


def test_clip_frames_spreads_over_the_frames_that_decode(tmp_path):
    write_video(tmp_path / "ramp.avi", _exposure_ramp(10))
    frames = clip_frames(tmp_path / "ramp.avi", count=4, short_side=32)
    assert len(frames) == 4 and min(frames[0].shape[:2]) == 32
    assert frames[-1].mean() > frames[0].mean()  # the last frame is the brightest of the ramp


def test_measured_changes_see_the_clips_exposure_ramp(tmp_path):
    write_video(tmp_path / "ramp.avi", _exposure_ramp())
    model, vectors = measured_changes([tmp_path / "ramp.avi"], max_side=64)
    assert vectors.shape[1] == model.params_to_vector(model.identity_params(1)).shape[1]
    params = model.params_from_vector(vectors)
    brightening = params.log_gain.mean(1)
    assert brightening.max() > 0.02 and brightening.min() < -0.02  # both directions of each pair are kept


def test_relight_applies_the_measured_change_and_is_repeatable():
    model = IlluminationModel()
    brighter = model.params_to_vector(model.identity_params(1))
    brighter[:, :3] = 0.3  # log gain of every channel
    images = torch.full((4, 3, 8, 8), 80, dtype=torch.uint8)
    out = relight(images, model, brighter, seed=0)
    assert out.dtype == torch.uint8 and bool((out > images).all())
    same = model.params_to_vector(model.identity_params(1))
    assert torch.equal(relight(images, model, same), images)
    two = torch.cat([brighter, same])
    many = torch.full((64, 3, 4, 4), 80, dtype=torch.uint8)
    assert torch.equal(relight(many, model, two, seed=5), relight(many, model, two, seed=5))


def test_relight_refuses_float_images():
    model = IlluminationModel()
    with pytest.raises(ValueError, match="images must be uint8"):
        relight(torch.rand(2, 3, 8, 8), model, model.params_to_vector(model.identity_params(1)))
