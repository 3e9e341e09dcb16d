"""The fast CPU/GPU paths of the kernels agree with their plain reference formulations.

Each optimised kernel is compared with the straightforward implementation it replaced (kept here or in the
module as the definition): fused sRGB/illumination, the affine warp grid, 3x3 blur taps, the fused
warp + blur, grid_sample crops, the unit-range histogram scorer, and luma-first scoring perturbations.
Tolerances are float32 rounding bounds, stated per test.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from mi_augment.crops import BoxSampler
from mi_augment.crops.scoring import PixelMIScorer, _unit_range_histogram_mi
from mi_augment.functional import color as C
from mi_augment.functional import geometry as G
from mi_augment.functional.crops import luma, resized_crop
from mi_augment.mi import histogram_mi


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------- colour
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("shading", [0, 2, 5, 9])
@pytest.mark.parametrize("spread", [0.02, 0.5, 2.0])
def test_fused_illumination_equals_reference(channels, shading, spread):
    g = _gen(shading)
    x = torch.rand(8, channels, 20, 30, generator=g)
    x[0, :, :4] = 0.0  # black: input on the linear segment of the sRGB curve
    x[1, :, :3] = 1.0  # white: clipped output
    x[2] = x[2] * 0.05  # dark image: most pixels near the knee
    x[3, :, 0, 0] = 1.5  # out of range input is clamped first
    x[3, :, 0, 1] = -0.2
    log_gain = torch.randn(8, 3, generator=g) * spread
    log_gamma = torch.randn(8, generator=g) * spread * 0.3
    coeffs = torch.randn(8, shading, generator=g) * spread * 0.3 if shading else None
    fast = C.apply_illumination(x, log_gain, log_gamma, coeffs)
    ref = C._apply_illumination_reference(x, log_gain, log_gamma, coeffs)
    # float32: one exp/log instead of three pow; measured max 5e-7
    assert (fast - ref).abs().max() <= 2e-6
    assert fast.min() >= 0 and fast.max() <= 1


def test_fused_illumination_non_contiguous_and_float64():
    g = _gen(1)
    x = torch.rand(4, 16, 12, 3, generator=g).permute(0, 3, 1, 2)  # channels-last view
    log_gain, log_gamma, coeffs = torch.randn(4, 3, generator=g) * 0.3, torch.randn(4, generator=g) * 0.1, \
        torch.randn(4, 5, generator=g) * 0.1
    fast = C.apply_illumination(x, log_gain, log_gamma, coeffs)
    assert torch.allclose(fast, C._apply_illumination_reference(x, log_gain, log_gamma, coeffs), atol=2e-6)
    x64 = x.double()
    fast64 = C.apply_illumination(x64, log_gain, log_gamma, coeffs)
    assert fast64.dtype == torch.float64
    assert torch.allclose(fast64, C._apply_illumination_reference(x64, log_gain, log_gamma, coeffs), atol=1e-12)


# ----------------------------------------------------------------------------------------------- geometry
def _warp_reference(images: torch.Tensor, matrices: torch.Tensor, padding_mode: str) -> torch.Tensor:
    """The float64 per-pixel grid of the original warp_homography."""
    b, _, h, w = images.shape
    inverse = torch.linalg.inv(matrices.double())
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, h * w, 3)
    src = points @ inverse.transpose(1, 2)
    src = src[..., :2] / src[..., 2:3]
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], dtype=torch.float64)
    grid = (src * scale - 1.0).reshape(b, h, w, 2).to(images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def _matrices(b, h, w, g, spread=1.0):
    return G.similarity_matrices(torch.randn(b, generator=g).double() * 0.05 * spread,
                                 torch.randn(b, generator=g).double() * 0.1 * spread,
                                 torch.randn(b, 2, generator=g).double() * 0.05 * spread, h, w)


@pytest.mark.parametrize("size", [(2, 2), (3, 5), (17, 23), (64, 48)])
@pytest.mark.parametrize("padding_mode", ["reflection", "border", "zeros"])
def test_affine_grid_warp_equals_float64_grid(size, padding_mode):
    h, w = size
    g = _gen(h * w)
    x = torch.rand(6, 3, h, w, generator=g)
    m = _matrices(6, h, w, g)
    # both grids are float32 roundings of the same coordinates: differences are ~1e-7 of the normalised
    # range, i.e. < 1e-5 in value even on per-pixel noise (gradients up to 1 per pixel)
    assert (G.warp_homography(x, m, padding_mode=padding_mode) - _warp_reference(x, m, padding_mode)).abs().max() < 2e-5


@pytest.mark.parametrize("longest", [0.3, 1.9, 3.5, 7.0])
@pytest.mark.parametrize("border", ["reflect", "replicate", "constant"])
def test_blur_taps_equal_dense_convolution(longest, border):
    g = _gen(int(longest * 10))
    x = torch.rand(7, 3, 19, 26, generator=g)
    length = torch.rand(7, generator=g) * longest
    length[0] = 0.0
    angle = torch.rand(7, generator=g) * 2 * math.pi
    kernels = G.motion_blur_kernels(length, angle)
    ref = G._blur_conv(x, kernels, border)
    assert torch.allclose(G.motion_blur(x, length, angle, border=border), ref, atol=1e-6)


@pytest.mark.parametrize("size", [(2, 2), (3, 5), (17, 23), (40, 32)])
@pytest.mark.parametrize("longest", [0.0, 0.4, 1.99, 3.5])
@pytest.mark.parametrize("padding_mode", ["reflection", "border", "zeros"])
def test_fused_warp_and_blur_equals_composition(size, longest, padding_mode):
    h, w = size
    g = _gen(h + w)
    x = torch.rand(6, 3, h, w, generator=g)
    m = _matrices(6, h, w, g)
    length, angle = torch.rand(6, generator=g) * longest, torch.rand(6, generator=g) * 6.3
    fused = G._warp_and_blur(x, m, length, angle, padding_mode=padding_mode)
    ref = G.motion_blur(_warp_reference(x, m, padding_mode), length, angle)
    assert (fused - ref).abs().max() < 2e-5  # the warp grids' float32 rounding (above); the blur is exact


# -------------------------------------------------------------------------------------------------- crops
def _crop_reference(images, boxes, size, flip=None, sampling_ratio=-1):
    """The original resized_crop: roi_align for every box, then torch.where for the flips."""
    b = images.shape[0]
    per_image = 1 if boxes.ndim == 2 else boxes.shape[1]
    flat = boxes.reshape(-1, 4).to(images.dtype)
    index = torch.arange(b, dtype=images.dtype).repeat_interleave(per_image)
    out = roi_align(images, torch.cat([index[:, None], flat], 1), size, 1.0, sampling_ratio, True)
    if flip is not None:
        out = torch.where(flip.reshape(-1, 1, 1, 1), out.flip(-1), out)
    return out if boxes.ndim == 2 else out.view(b, per_image, *out.shape[1:])


@pytest.mark.parametrize("case", [(32, 32, 32), (96, 96, 96), (256, 256, 224), (50, 70, (20, 30)), (5, 7, 9),
                                  (1, 6, 4), (64, 64, 16)])
@pytest.mark.parametrize("per_image", [None, 3])
@pytest.mark.parametrize("sampling_ratio", [-1, 1, 2])
def test_grid_sample_crops_equal_roi_align(case, per_image, sampling_ratio):
    h, w, size = case
    g = _gen(h + w)
    x = torch.rand(4, 3, h, w, generator=g)
    shape = (4,) if per_image is None else (4, per_image)
    boxes = BoxSampler((0.08, 1.0), (3 / 4, 4 / 3)).sample(shape, h, w, generator=g)
    flip = torch.rand(shape, generator=g) < 0.5
    for f in (None, flip):
        ours = resized_crop(x, boxes, size, flip=f, sampling_ratio=sampling_ratio)
        ref = _crop_reference(x, boxes, size if isinstance(size, tuple) else (size, size), f, sampling_ratio)
        # both are float32 evaluations of the same bilinear samples; coordinates differ by ~1e-5 px at
        # 256 px, so values by < 1e-4 on per-pixel noise
        assert ours.shape == ref.shape and (ours - ref).abs().max() < 1e-4


def test_grid_sample_crops_are_as_accurate_as_roi_align():
    g = _gen(3)
    for side, size in ((96, 96), (256, 224)):
        x = torch.rand(8, 3, side, side, generator=g)
        boxes = BoxSampler((0.08, 1.0), (3 / 4, 4 / 3)).sample((8, 4), side, side, generator=g)
        exact = _crop_reference(x.double(), boxes.double(), (size, size))
        err_ours = (resized_crop(x, boxes, size).double() - exact).abs().max()
        err_roi = (_crop_reference(x, boxes, (size, size)).double() - exact).abs().max()
        assert err_ours <= 1.5 * err_roi + 1e-6


# ------------------------------------------------------------------------------------------------ scoring
@pytest.mark.parametrize("shape", [(16, 8, 1024), (3, 5, 100), (7, 50)])
@pytest.mark.parametrize("bins", [2, 7, 16])
def test_unit_range_histogram_is_exactly_histogram_mi(shape, bins):
    g = _gen(bins)
    a = torch.rand(shape, generator=g)
    b = (a + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)
    a[0, ..., :5] = 1.0  # the maximum goes to the last bin
    b[0, ..., :3] = 0.0
    assert torch.equal(_unit_range_histogram_mi(a, b, bins), histogram_mi(a, b, bins=bins, range=(0.0, 1.0)))
    assert torch.equal(PixelMIScorer(bins=bins)(a, b), histogram_mi(a, b, bins=bins, range=(0.0, 1.0)))


def test_unit_range_histogram_defers_bad_input_to_the_estimator():
    a = torch.rand(2, 4, 64)
    b = a.clone()
    b[0, 0, 0] = float("nan")
    assert _unit_range_histogram_mi(a, b, 16) is None
    with pytest.raises(ValueError):
        PixelMIScorer()(a, b)
    assert _unit_range_histogram_mi(a, b.double(), 16) is None


def test_scoring_perturbation_luma_first_equals_luma_of_perturbed():
    from mi_augment.transforms.pair import MIPairTransform, _flatten_views

    t = MIPairTransform(32, policy="threshold")
    g = _gen(5)
    x = torch.rand(6, 3, 40, 40, generator=g)
    params = t.make_params(x, generator=g)
    illum, motion = _flatten_views(params.illumination), _flatten_views(params.motion)
    xs = x.repeat_interleave(2, 0)
    fast = t._perturb(xs, illum, motion, luma_only=True)
    ref = luma(t._perturb(xs, illum, motion))
    assert fast.shape == (12, 1, 40, 40)
    assert (fast - ref).abs().max() < 1e-6  # the warp and blur are linear and commute with luma
