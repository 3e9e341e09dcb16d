"""Global motion estimation: recovery of known camera motion despite an independently moving object."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mi_augment.functional.geometry import similarity_matrices
from mi_augment.video.motion_estimation import (
    estimate_global_motion,
    mean_displacement,
    similarity_from_matrix,
)

from .test_motion_support import random_motions, similarity_about_centre, synthetic_clip

# Documented per-pair tolerances on 120x160 textured frames (docs/perturbation_models.md, "Motion").
TOL_TRANSLATION_PX = 0.25
TOL_ROTATION_DEG = 0.2
TOL_SCALE_PERCENT = 0.25


def _errors(estimated: np.ndarray, truth: np.ndarray, h: int, w: int) -> np.ndarray:
    rows = []
    for m, t in zip(estimated, truth):
        ls, rot, tr = similarity_from_matrix(m, h, w)
        ls0, rot0, tr0 = similarity_from_matrix(t, h, w)
        rows.append([*np.abs(tr - tr0), abs(math.degrees(rot - rot0)), 100 * abs(ls - ls0)])
    return np.asarray(rows)


def test_recovers_known_similarities_despite_moving_foreground():
    frames, truth = synthetic_clip(random_motions(30, seed=1))
    motion = estimate_global_motion(frames)
    assert motion.valid.all(), motion.reason_counts
    assert motion.matrices.shape == (30, 3, 3) and motion.size == (120, 160)
    err = _errors(motion.matrices, truth, 120, 160)
    assert err[:, :2].max() < TOL_TRANSLATION_PX
    assert err[:, 2].max() < TOL_ROTATION_DEG
    assert err[:, 3].max() < TOL_SCALE_PERCENT
    # the block moving on its own is rejected as outliers, and its residual motion is reported
    assert np.median(motion.inlier_fraction) < 0.99
    assert np.nanmedian(motion.local_motion_px) > 1.0
    assert np.nanmedian(motion.residual_px) < 0.2


def test_working_copy_gives_matrices_in_full_resolution_pixels():
    motions = np.tile([2.0, 1.0, 0.5, 1.01], (6, 1))
    frames, truth = synthetic_clip(motions, size=(160, 240), foreground=False)
    full = estimate_global_motion(frames)
    half = estimate_global_motion(frames, max_side=120)
    assert half.size == (160, 240)
    err = _errors(half.matrices, truth, 160, 240)
    assert err[:, :2].max() < 2 * TOL_TRANSLATION_PX  # half resolution: twice the pixel error allowed
    assert np.allclose(full.matrices, half.matrices, atol=0.05 * 2)


@pytest.mark.parametrize("model", ["affine", "homography"])
def test_other_motion_models_recover_a_translation(model):
    frames, _ = synthetic_clip(np.tile([1.5, -1.0, 0.0, 1.0], (5, 1)), foreground=False)
    motion = estimate_global_motion(frames, model=model)
    assert motion.valid.all()
    _, _, tr = similarity_from_matrix(motion.matrices[0], 120, 160)
    assert np.allclose(tr, [1.5, -1.0], atol=TOL_TRANSLATION_PX)


def test_similarity_decomposition_inverts_the_kernel_matrices():
    m = similarity_matrices(torch.tensor([0.03]), torch.tensor([0.1]), torch.tensor([[0.02, -0.01]]), 90, 120)
    ls, rot, tr = similarity_from_matrix(m[0].double().numpy(), 90, 120)
    assert ls == pytest.approx(0.03, abs=1e-6) and rot == pytest.approx(0.1, abs=1e-6)
    assert np.allclose(tr, [0.02 * 120, -0.01 * 120], atol=1e-4)
    ref = similarity_about_centre(2.4, -1.2, math.degrees(0.1), math.exp(0.03), 90, 120)
    assert np.allclose(ref, m[0].double().numpy(), atol=1e-5)


def test_mean_displacement_of_a_pure_shift():
    assert mean_displacement(similarity_about_centre(3.0, 4.0, 0.0, 1.0, 50, 60), 50, 60) == pytest.approx(5.0)


def test_textureless_frames_are_invalid_not_motion():
    flat = torch.full((3, 3, 40, 50), 128, dtype=torch.uint8)
    motion = estimate_global_motion(flat)
    assert not motion.valid.any()
    assert set(motion.reasons) == {"too few features"}


def test_bad_input_errors():
    with pytest.raises(ValueError, match="at least 2"):
        estimate_global_motion(torch.zeros(1, 3, 20, 20))
    with pytest.raises(ValueError, match="NaN"):
        estimate_global_motion(torch.full((2, 3, 20, 20), float("nan")))
    with pytest.raises(ValueError, match="channels"):
        estimate_global_motion(torch.zeros(2, 4, 20, 20))
    with pytest.raises(ValueError, match="model"):
        estimate_global_motion(torch.zeros(2, 3, 20, 20), model="projective")
