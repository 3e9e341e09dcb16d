"""One reference: the default output equals ``kernel_options(fast_paths=False)`` within one uint8 level.

The property test draws random ``MIPairTransform`` configurations (natural models included) and inputs; the
kernel tests check each public kernel's faster internal forms against its reference or an independent one
written here (torchvision's ``roi_align``, a float64 per-pixel map). Tolerances are float32 rounding bounds.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torchvision.ops import roi_align

from mi_augment import kernel_options
from mi_augment.functional import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    apply_illumination,
    color_jitter,
    crop_warp,
    motion_blur,
    resized_crop,
    similarity_matrices,
    warp_and_blur,
    warp_homography,
)
from mi_augment.mi import histogram_mi
from mi_augment.pairs import BoxSampler, PixelMIScorer
from mi_augment.perturbations import IlluminationModel
from mi_augment.transforms import MIPairTransform


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _fast_and_plain(fn, *args, **kwargs):
    """``fn`` as shipped and inside ``kernel_options(fast_paths=False)``."""
    fast = fn(*args, **kwargs)
    with kernel_options(fast_paths=False):
        plain = fn(*args, **kwargs)
    return fast, plain


# ---------------------------------------------------------------------------------------- the property
POLICIES = ["threshold", "max", "min", "random", "softmax", "topk"]
MODELS = {"none": None, "default": "default", "jitter": IlluminationModel.uniform(0.4, 0.4, 0.4, 0.1)}


@st.composite
def pair_cases(draw):
    n_views = draw(st.integers(2, 3))
    views = draw(st.sampled_from([None, "simclr"] + (["byol"] if n_views == 2 else [])))
    config = dict(size=draw(st.integers(3, 20)), scale=(draw(st.sampled_from([0.01, 0.08, 0.5])), 1.0),
                  ratio=draw(st.sampled_from([(0.5, 2.0), (3 / 4, 4 / 3)])),
                  n_candidates=draw(st.integers(2, 6)), policy=draw(st.sampled_from(POLICIES)),
                  illumination=MODELS[draw(st.sampled_from(sorted(MODELS)))],
                  motion=draw(st.sampled_from([None, "default"])), n_views=n_views, view_transforms=views,
                  motion_strength=1.0)
    if config["motion"] is not None:
        config["motion_strength"] = draw(st.sampled_from([1.0, 10.0]))
    shape = (draw(st.integers(1, 3)), draw(st.sampled_from([1, 3])), draw(st.integers(4, 48)),
             draw(st.integers(4, 48)))
    return config, shape, draw(st.booleans()), draw(st.booleans()), draw(st.integers(0, 2**31 - 1))


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair_cases())
def test_default_output_equals_the_reference_within_one_uint8_level(case):
    config, shape, single, uint8, seed = case
    t = MIPairTransform(**config)
    x = torch.rand(*shape, generator=_gen(seed))
    x = x[0] if single else x
    x = (x * 255).round().to(torch.uint8) if uint8 else x
    fast, plain = _fast_and_plain(lambda: t(x, generator=_gen(seed)))
    for a, b in zip(fast, plain):
        assert a.shape == b.shape and a.dtype == b.dtype
        limit = 1 if uint8 else 1 / 255
        assert float((a.double() - b.double()).abs().max()) <= limit


# ----------------------------------------------------------------------------------- colour kernels
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("shading", [0, 5])
def test_illumination_equals_its_definition_dark_pixels_included(channels, shading):
    g = _gen(channels + shading)
    x = torch.rand(4, channels, 80, 90, generator=g) ** 3  # many pixels on the linear segment of sRGB
    args = (x, 0.8 * torch.randn(4, 3, generator=g), 0.3 * torch.randn(4, generator=g),
            0.3 * torch.randn(4, shading, generator=g) if shading else None)
    fast, plain = _fast_and_plain(apply_illumination, *args)
    assert (fast - plain).abs().max() < 2e-5


@pytest.mark.parametrize("kernel", [adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue])
def test_adjustments_equal_kornias(kernel):
    g = _gen(1)
    x = torch.rand(3, 3, 17, 19, generator=g)
    factor = torch.rand(3, generator=g) - 0.5 if kernel is adjust_hue else 2 * torch.rand(3, generator=g)
    fast, plain = _fast_and_plain(kernel, x, factor)
    assert (fast - plain).abs().max() < 1e-5


@pytest.mark.parametrize("batch, side", [(1, 16), (5, 16), (6, 70)])
def test_color_jitter_one_image_and_groups_equal_the_step_by_step_reference(batch, side):
    g = _gen(batch + side)
    x = torch.rand(batch, 3, side, side, generator=g)
    factors = [0.5 + torch.rand(batch, generator=g) for _ in range(3)] + [torch.rand(batch, generator=g) - 0.5]
    factors[1][0] = 1.0  # a sample that skips an operation
    order = torch.rand(batch, 4, generator=g).argsort(1)
    fast, plain = _fast_and_plain(color_jitter, x, *factors, order)
    assert (fast - plain).abs().max() < 1e-5
    assert not torch.equal(fast, x)


# -------------------------------------------------------------------------------------- geometry kernels
@pytest.mark.parametrize("longest", [1.5, 6.0])
@pytest.mark.parametrize("padding_mode", ["reflection", "zeros"])
def test_warp_and_blur_equals_the_composition(longest, padding_mode):
    g = _gen(int(longest))
    x = torch.rand(4, 3, 30, 41, generator=g)
    m = similarity_matrices(0.05 * torch.randn(4, generator=g), 0.1 * torch.randn(4, generator=g),
                            0.1 * torch.randn(4, 2, generator=g), 30, 41)
    length, angle = longest * torch.rand(4, generator=g), 6.3 * torch.rand(4, generator=g)
    fast = warp_and_blur(x, m, length, angle, padding_mode=padding_mode)
    with kernel_options(fast_paths=False):
        plain = motion_blur(warp_homography(x, m, padding_mode=padding_mode), length, angle)
    assert (fast - plain).abs().max() < 1e-5


@pytest.mark.parametrize("per_image", [1, 3])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_resized_crops_equal_roi_align(per_image, sampling_ratio):
    g = _gen(per_image)
    x = torch.rand(2, 3, 40, 50, generator=g)
    boxes = BoxSampler((0.02, 1.0)).sample((2, per_image), 40, 50, generator=g)
    crops = resized_crop(x, boxes, 12, sampling_ratio=sampling_ratio)
    index = torch.arange(2).repeat_interleave(per_image).float()[:, None]
    ref = roi_align(x, torch.cat([index, boxes.reshape(-1, 4)], 1), (12, 12), 1.0, sampling_ratio, aligned=True)
    assert (crops.reshape(-1, 3, 12, 12) - ref).abs().max() < 1e-5
    one = resized_crop(x[:1], boxes[:1], 12, flip=torch.ones(1, per_image, dtype=torch.bool),
                       sampling_ratio=sampling_ratio)
    assert (one[0].flip(-1) - crops[0]).abs().max() < 1e-5  # one image, flipped: the numpy positions


def _crop_warp_reference(x, boxes, flips, matrices, out_h, out_w, padding_mode):
    """crop o warp written plainly in float64: each output pixel (and its ``ceil(box / output)`` sub-samples per
    axis, averaged) mapped through the inverse warp and the crop, then one grid_sample of its image."""
    b, v = boxes.shape[:2]
    h, w = x.shape[-2:]
    out = torch.zeros(b, v, x.shape[1], out_h, out_w, dtype=torch.float64)
    for i in range(b):
        for j in range(v):
            x1, y1, x2, y2 = boxes[i, j].double().tolist()
            sy, sx = max(1, math.ceil((y2 - y1) / out_h)), max(1, math.ceil((x2 - x1) / out_w))
            inverse = torch.linalg.inv(matrices[i, j].double())
            for a in range(sy):
                for c in range(sx):
                    px = torch.arange(out_w, dtype=torch.float64) + (c + 0.5) / sx - 0.5
                    py = torch.arange(out_h, dtype=torch.float64) + (a + 0.5) / sy - 0.5
                    pts = torch.stack([px[None, :].expand(out_h, -1), py[:, None].expand(-1, out_w),
                                       torch.ones(out_h, out_w, dtype=torch.float64)], -1)
                    q = pts @ inverse.T
                    u = out_w - 1 - q[..., 0] if bool(flips[i, j]) else q[..., 0]
                    ix = x1 + (u + 0.5) * (x2 - x1) / out_w - 0.5
                    iy = y1 + (q[..., 1] + 0.5) * (y2 - y1) / out_h - 0.5
                    grid = torch.stack([ix * 2 / (w - 1) - 1, iy * 2 / (h - 1) - 1], -1)[None]
                    out[i, j] += F.grid_sample(x[i:i + 1].double(), grid, mode="bilinear", padding_mode=padding_mode,
                                               align_corners=True)[0] / (sy * sx)
    return out


@pytest.mark.parametrize("padding_mode", ["reflection", "border", "zeros"])
@pytest.mark.parametrize("motion", [0.0, 0.5, 8.0])
def test_crop_warp_is_the_per_pixel_composition(padding_mode, motion):
    """Samples inside the image, leaving it by less than its size (mirrored into a margin) or by more, one
    sample and area-averaged per pixel, flipped or not: the float64 per-pixel map, both with and without the
    kernel's faster forms."""
    g = _gen(int(motion * 10))
    x = torch.rand(2, 3, 30, 40, generator=g)
    boxes = BoxSampler((0.05, 1.0)).sample((2, 2), 30, 40, generator=g)
    flips = torch.rand(2, 2, generator=g) < 0.5
    m = similarity_matrices(0.05 * motion * torch.randn(4, generator=g), 0.05 * motion * torch.randn(4, generator=g),
                            0.05 * motion * torch.randn(4, 2, generator=g), 12, 10).view(2, 2, 3, 3)
    ref = _crop_warp_reference(x, boxes, flips, m, 12, 10, padding_mode)
    for out in _fast_and_plain(crop_warp, x, boxes, (12, 10), m, flip=flips, padding_mode=padding_mode):
        assert out.shape == (2, 2, 3, 12, 10)
        assert (out.double() - ref).abs().max() < 1e-4  # float32 grid coordinates


def test_crop_warp_without_a_warp_is_the_resized_crop():
    g = _gen(3)
    x = torch.rand(2, 3, 64, 48, generator=g)
    boxes = BoxSampler((0.3, 1.0)).sample((2, 3), 64, 48, generator=g)
    boxes = torch.cat([boxes[..., :2].clamp(min=0.5), boxes[..., 2:].clamp(max=torch.tensor([47.5, 63.5]))], -1)
    flips = torch.rand(2, 3, generator=g) < 0.5
    assert (crop_warp(x, boxes, 16, flip=flips) - resized_crop(x, boxes, 16, flip=flips)).abs().max() < 1e-5


@pytest.mark.parametrize("bad, message", [
    (dict(matrices=torch.eye(3).expand(1, 2, 3, 3).clone().index_put_((torch.tensor([0]), torch.tensor([0]),
                                                                     torch.tensor([2]), torch.tensor([0])),
                                                                    torch.tensor(0.1))), "affine"),
    (dict(matrices=torch.eye(3).expand(1, 1, 3, 3)), "matrices must be"),
    (dict(flip=torch.zeros(2, dtype=torch.bool)), "flip must be"),
    (dict(padding_mode="wrap"), "padding_mode"),
])
def test_crop_warp_refuses_bad_arguments(bad, message):
    with pytest.raises(ValueError, match=message):
        crop_warp(torch.rand(1, 3, 8, 8), torch.tensor([[[0.0, 0, 4, 4], [2, 2, 8, 8]]]), 4, **bad)


# -------------------------------------------------------------------------------------------- scoring
@pytest.mark.parametrize("shape, bins", [((3, 5, 64), 16), ((2, 100), 7)])
def test_pixel_scorer_is_histogram_mi_on_the_unit_range(shape, bins):
    g = _gen(bins)
    a = torch.rand(*shape, generator=g)
    b = (a + 0.3 * torch.rand(*shape, generator=g)).clamp(0, 1)
    expected = histogram_mi(a, b, bins=bins, range=(0.0, 1.0))
    assert torch.allclose(PixelMIScorer(bins=bins)(a, b), expected, atol=1e-5)
