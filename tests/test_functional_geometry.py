"""Batched warp and motion-blur kernels (mi_augment.functional.geometry)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mi_augment.functional.geometry import (
    motion_blur,
    motion_blur_kernels,
    similarity_matrices,
    warp_affine,
    warp_homography,
)


def _image(b=2, c=3, h=48, w=64, seed=0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    arr = np.stack([cv2.GaussianBlur(rng.random((h, w, c)).astype(np.float32), (0, 0), 1.5).reshape(h, w, c)
                    for _ in range(b)])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def _cv2_matrix(angle_deg=12.0, scale=1.1, shift=(3.3, -2.1), centre=(31.5, 23.5)) -> np.ndarray:
    m = cv2.getRotationMatrix2D(centre, angle_deg, scale)
    m[:, 2] += shift
    return m


# ---- warps -------------------------------------------------------------------------------------------------


def test_identity_warp_is_identity():
    x = _image()
    out = warp_homography(x, torch.eye(3).expand(2, 3, 3))
    assert torch.allclose(out, x, atol=1e-5)
    zero = similarity_matrices(torch.zeros(2), torch.zeros(2), torch.zeros(2, 2), 48, 64)
    assert torch.allclose(zero, torch.eye(3).expand(2, 3, 3))


def test_warp_affine_matches_opencv_in_the_interior():
    x = _image(b=1)
    m = _cv2_matrix()
    img = x[0].permute(1, 2, 0).numpy()
    ref = cv2.warpAffine(img, m, (64, 48), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    out = warp_affine(x, torch.tensor(m, dtype=torch.float32)[None])[0].permute(1, 2, 0).numpy()
    assert np.abs(out - ref)[8:-8, 8:-8].max() < 1e-4
    # reflection about the outermost pixel centres is OpenCV's BORDER_REFLECT_101: close everywhere
    assert np.abs(out - ref).mean() < 5e-3


def test_warp_homography_matches_opencv_perspective():
    x = _image(b=1)
    h = np.array([[1.02, 0.03, -2.0], [-0.02, 0.98, 1.5], [2e-4, -1e-4, 1.0]])
    ref = cv2.warpPerspective(x[0].permute(1, 2, 0).numpy(), h, (64, 48), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT_101)
    out = warp_homography(x, torch.tensor(h, dtype=torch.float32)[None])[0].permute(1, 2, 0).numpy()
    assert np.abs(out - ref)[8:-8, 8:-8].max() < 1e-3


def test_similarity_matrices_match_opencv_rotation_about_the_centre():
    # OpenCV's angle is anticlockwise on screen; ours is from +x to +y (clockwise on screen)
    m = similarity_matrices(torch.tensor([math.log(1.1)]), torch.tensor([math.radians(-12.0)]),
                            torch.tensor([[3.3 / 64, -2.1 / 64]]), 48, 64)
    assert np.allclose(m[0, :2].numpy(), _cv2_matrix(), atol=1e-4)


def test_integer_shift_moves_pixels():
    x = _image(b=1)
    m = torch.tensor([[[1.0, 0.0, 3.0], [0.0, 1.0, -2.0]]])
    out = warp_affine(x, m, padding_mode="zeros")
    assert torch.allclose(out[..., :-2, 3:], x[..., 2:, :-3], atol=1e-5)  # out(x+3, y-2) = in(x, y)


def test_warp_batched_equals_per_sample_and_does_not_mutate():
    x = _image(b=3)
    before = x.clone()
    m = similarity_matrices(torch.tensor([0.0, 0.05, -0.05]), torch.tensor([0.1, -0.2, 0.0]),
                            torch.tensor([[0.01, 0.02], [-0.03, 0.0], [0.0, 0.05]]), 48, 64)
    out = warp_homography(x, m)
    assert torch.equal(x, before)
    for i in range(3):
        assert torch.allclose(out[i:i + 1], warp_homography(x[i:i + 1], m[i:i + 1]), atol=1e-6)


def test_reflection_leaves_no_black_corners():
    x = torch.full((1, 3, 20, 30), 0.7)
    m = similarity_matrices(torch.tensor([-0.2]), torch.tensor([0.5]), torch.tensor([[0.2, 0.1]]), 20, 30)
    assert torch.allclose(warp_homography(x, m), x, atol=1e-5)
    assert warp_homography(x, m, padding_mode="zeros").min() == 0.0


def test_warp_bad_input():
    x = _image()
    with pytest.raises(ValueError, match="shape"):
        warp_homography(x, torch.eye(3)[None])
    with pytest.raises(ValueError, match="NaN"):
        warp_homography(x, torch.full((2, 3, 3), float("nan")))
    with pytest.raises(ValueError, match="padding_mode"):
        warp_homography(x, torch.eye(3).expand(2, 3, 3), padding_mode="wrap")
    with pytest.raises(ValueError, match="empty"):
        warp_homography(x[:0], torch.eye(3)[:0].reshape(0, 3, 3))
    with pytest.raises(TypeError, match="float"):
        warp_homography((x * 255).to(torch.uint8), torch.eye(3).expand(2, 3, 3))


# ---- motion blur ---------------------------------------------------------------------------------------------


def test_blur_length_zero_is_identity():
    x = _image()
    assert torch.equal(motion_blur(x, torch.zeros(2), torch.tensor([0.3, 1.0])), x)
    k = motion_blur_kernels(torch.tensor([0.0]), torch.tensor([0.7]), kernel_size=5)[0]
    assert k[2, 2] == 1.0 and k.sum() == 1.0


def test_blur_kernels_sum_to_one_and_have_the_requested_extent():
    k = motion_blur_kernels(torch.tensor([6.0, 6.0, 2.5]), torch.tensor([0.0, math.pi / 2, 0.4]))
    assert torch.allclose(k.sum((1, 2)), torch.ones(3), atol=1e-6)
    assert (k >= 0).all()
    centre = k.shape[-1] // 2
    horizontal = k[0, centre]  # all weight on the centre row for angle 0
    assert horizontal.sum() == pytest.approx(1.0, abs=1e-6)
    xs = torch.arange(k.shape[-1], dtype=torch.float32) - centre
    # a uniform streak of length L has variance L^2 / 12; the discrete points (ends included) and the bilinear
    # splat (at most 1/4 px^2) add a little
    var = float((horizontal * xs**2).sum())
    assert 36 / 12 <= var <= 36 / 12 + 0.5
    assert torch.allclose(k[1], k[0].T, atol=1e-6)  # 90 degrees turns the streak vertical


def test_blur_matches_opencv_filter2d_with_the_same_kernel():
    x = _image(b=1)
    k = motion_blur_kernels(torch.tensor([5.0]), torch.tensor([0.6]))
    out = motion_blur(x, torch.tensor([5.0]), torch.tensor([0.6]))[0].permute(1, 2, 0).numpy()
    ref = cv2.filter2D(x[0].permute(1, 2, 0).numpy(), -1, k[0].numpy(), borderType=cv2.BORDER_REFLECT_101)
    assert np.abs(out - ref).max() < 1e-5


def test_blur_keeps_constant_images_constant_and_does_not_mutate():
    x = torch.full((2, 1, 12, 15), 0.4)
    before = x.clone()
    out = motion_blur(x, torch.tensor([9.0, 30.0]), torch.tensor([0.2, 1.3]))  # 30 px > image: replicate
    assert torch.allclose(out, x, atol=1e-6)
    assert torch.equal(x, before)


def test_blur_batched_equals_per_sample():
    x = _image(b=3)
    length, angle = torch.tensor([0.0, 2.3, 7.5]), torch.tensor([0.1, -0.8, 2.0])
    out = motion_blur(x, length, angle)
    for i in range(3):
        assert torch.allclose(out[i:i + 1], motion_blur(x[i:i + 1], length[i:i + 1], angle[i:i + 1]), atol=1e-6)


def test_blur_bad_input():
    x = _image()
    with pytest.raises(ValueError, match=">= 0"):
        motion_blur(x, torch.tensor([-1.0, 1.0]), torch.zeros(2))
    with pytest.raises(ValueError, match="NaN or inf"):
        motion_blur(x, torch.tensor([float("inf"), 1.0]), torch.zeros(2))
    with pytest.raises(ValueError, match="one per image"):
        motion_blur(x, torch.ones(3), torch.zeros(3))
    with pytest.raises(ValueError, match="kernel_size"):
        motion_blur_kernels(torch.tensor([9.0]), torch.tensor([0.0]), kernel_size=3)


# ---- properties ----------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 3), c=st.sampled_from([1, 3]), h=st.integers(1, 24), w=st.integers(1, 24),
       data=st.data())
def test_warp_then_blur_keeps_shape_and_value_range(b, c, h, w, data):
    x = torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(data.draw(st.integers(0, 99))))
    floats = st.floats(-0.3, 0.3, allow_nan=False)
    m = similarity_matrices(torch.tensor(data.draw(st.lists(floats, min_size=b, max_size=b))),
                            torch.tensor(data.draw(st.lists(st.floats(-3.2, 3.2), min_size=b, max_size=b))),
                            torch.tensor(data.draw(st.lists(st.tuples(floats, floats), min_size=b, max_size=b))),
                            h, w)
    length = torch.tensor(data.draw(st.lists(st.floats(0, 12), min_size=b, max_size=b)))
    angle = torch.tensor(data.draw(st.lists(st.floats(-4, 4), min_size=b, max_size=b)))
    out = motion_blur(warp_homography(x, m), length, angle)
    assert out.shape == x.shape and bool(torch.isfinite(out).all())
    # bilinear interpolation with reflection and a convex blur stay inside the input's range
    assert float(out.min()) >= float(x.min()) - 1e-5 and float(out.max()) <= float(x.max()) + 1e-5


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.floats(0, 20), min_size=1, max_size=4), angle=st.floats(-7, 7))
def test_kernels_are_normalised_and_point_symmetric(lengths, angle):
    k = motion_blur_kernels(torch.tensor(lengths), torch.full((len(lengths),), angle))
    assert k.shape[-1] % 2 == 1
    assert torch.allclose(k.sum((1, 2)), torch.ones(len(lengths)), atol=1e-5)
    assert torch.allclose(k, k.flip(-1, -2), atol=1e-5)
