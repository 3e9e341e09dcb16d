"""The uint8 colour kernels (mi_augment.functional.uint8.color, .illumination) against the torch kernels they
stand in for, on one image, for every factor range and order of the jitter.

A chain is rounded once, so where the uint8 kernel stays on one levels map or on float32 to its end it is
within 1 level of the torch kernel followed by rounding, at every pixel: brightness and contrast in any order
(one shared table, applied as an affine map while no clamp sits inside it, else as a look-up table), a single
adjustment, and a chain that starts with the hue (float32 from the start). Any chain holds the backend's
documented tolerance: mean |d| <= 1 level and 99.9th percentile <= 4 levels. The illumination change (a
per-level table, or with a shading field the separable encoding, its bright branch a power per pixel or, given
the field's root, a second separable product) is within 1 level of the torch kernel.
"""

from __future__ import annotations

from types import SimpleNamespace

import kornia
import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from mi_augment.functional import apply_illumination, color_jitter, render_shading_field, rgb_to_grayscale
from mi_augment.functional import uint8 as U


def natural_image(seed: int, side: int, channels: int, noise: float) -> np.ndarray:
    """A smooth random uint8 image ``[H, W, C]`` with pixel noise of amplitude ``noise`` (saturated levels too)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, channels, max(2, side // 6), max(2, side // 6), generator=g) * 1.2 - 0.1
    x = F.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)
    x = x + noise * (torch.rand(1, channels, side, side, generator=g) - 0.5)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()


def torch_jitter(image: np.ndarray, factors: list[float], order: list[int]) -> np.ndarray:
    """The torch kernel on ``image / 255``, rounded to levels."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    b, c, s, h = (torch.tensor([f]) for f in factors)
    y = color_jitter(x, b, c, s, h, torch.tensor([order]))
    return (y.clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()


def difference(image: np.ndarray, factors: list[float], order: list[int]) -> np.ndarray:
    out = U.color_jitter(image, *factors, order)
    assert out.shape == image.shape and out.dtype == np.uint8 and out is not image
    return np.abs(out.astype(np.int16) - torch_jitter(image, factors, order))


images = st.builds(natural_image, seed=st.integers(0, 2 ** 31 - 1), side=st.sampled_from([1, 5, 32, 70]),
                   channels=st.sampled_from([1, 3, 3]), noise=st.sampled_from([0.0, 0.2]))
factor = st.one_of(st.just(1.0), st.floats(0.0, 2.0), st.sampled_from([0.0, 0.5, 1.5, 2.0]))
hue = st.one_of(st.just(0.0), st.floats(-0.5, 0.5), st.sampled_from([-0.5, 0.5]))
orders = st.permutations([0, 1, 2, 3])


@settings(max_examples=60, deadline=None, derandomize=True)
@given(image=images, brightness=factor, contrast=factor, order=orders)
def test_brightness_and_contrast_in_any_order_are_within_one_level(image, brightness, contrast, order):
    assert difference(image, [brightness, contrast, 1.0, 0.0], order).max() <= 1


@settings(max_examples=60, deadline=None, derandomize=True)
@given(image=images, op=st.sampled_from([0, 1, 2, 3]), value=factor, shift=hue)
def test_one_adjustment_is_within_one_level(image, op, value, shift):
    factors = [1.0, 1.0, 1.0, 0.0]
    factors[op] = shift if op == 3 else value
    kernel = [U.adjust_brightness, U.adjust_contrast, U.adjust_saturation, U.adjust_hue][op]
    out = kernel(image, factors[op])
    assert out.shape == image.shape and out.dtype == np.uint8 and out is not image
    assert np.abs(out.astype(np.int16) - torch_jitter(image, factors, [0, 1, 2, 3])).max() <= 1


@settings(max_examples=60, deadline=None, derandomize=True)
@given(image=images, brightness=factor, contrast=factor, saturation=factor, shift=hue, order=orders)
def test_a_chain_from_the_hue_on_is_within_one_level(image, brightness, contrast, saturation, shift, order):
    order = [3] + [i for i in order if i != 3]
    assert difference(image, [brightness, contrast, saturation, shift], order).max() <= 1


@settings(max_examples=80, deadline=None, derandomize=True)
@given(image=images, brightness=factor, contrast=factor, saturation=factor, shift=hue, order=orders)
def test_any_chain_holds_the_backend_tolerance(image, brightness, contrast, saturation, shift, order):
    d = difference(image, [brightness, contrast, saturation, shift], order)
    assert d.mean() <= 1.0 and np.percentile(d, 99.9) <= 4, (d.mean(), np.percentile(d, 99.9), d.max())


@settings(max_examples=60, deadline=None, derandomize=True)
@given(image=images, log_gain=st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3), log_gamma=st.floats(-0.8, 0.8),
       shading=st.one_of(st.just([0.0] * 5), st.lists(st.floats(-0.6, 0.6), min_size=5, max_size=5)))
def test_illumination_is_within_one_level(image, log_gain, log_gamma, shading):
    out = U.apply_illumination(image, log_gain, log_gamma, shading)
    assert out.shape == image.shape and out.dtype == np.uint8 and out is not image
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    ref = apply_illumination(x, torch.tensor([log_gain]), torch.tensor([[log_gamma]]), torch.tensor([shading]))
    ref = (ref.clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert np.abs(out.astype(np.int16) - ref).max() <= 1
    # given the field and its root (the field of the coefficients over 2.4), the bright branch is separable:
    # the same output within 1 level, and still within 1 level of the torch kernel
    h, w = image.shape[:2]
    field, root = (render_shading_field(torch.tensor([c]), h, w)[0, 0].numpy()
                   for c in (shading, [v / 2.4 for v in shading]))
    given = U.apply_illumination(image, log_gain, log_gamma, shading, field, root)
    assert given.shape == image.shape and given.dtype == np.uint8
    assert np.abs(given.astype(np.int16) - out).max() <= 1 and np.abs(given.astype(np.int16) - ref).max() <= 1
    params = SimpleNamespace(log_gain=[log_gain], log_gamma=[[log_gamma]], shading=[shading], brightness=[[1.0]],
                             contrast=[[1.0]], saturation=[[1.0]], hue=[[0.0]])  # illuminate hands both on
    assert np.array_equal(U.illuminate(image, params, 0, field, root), given)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(image=images, threshold=st.floats(0.0, 1.0))
def test_grey_and_solarize_are_within_one_level(image, threshold):
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    for out, ref in ((U.rgb_to_grayscale(image, 3), rgb_to_grayscale(x).expand(1, 3, -1, -1)),
                     (U.solarize(image, threshold), kornia.enhance.solarize(x, threshold))):
        ref = (ref.clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
        assert out.dtype == np.uint8 and np.abs(out.astype(np.int16) - ref).max() <= 1


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2 ** 31 - 1), side=st.sampled_from([5, 32, 70, 100]), channels=st.sampled_from([1, 3]),
       brightness=st.one_of(st.floats(0.5, 3.0), st.sampled_from([1.0, 255 / 200, 2.0])))
def test_the_contrast_mean_after_brightness_is_exact(seed, side, channels, brightness):
    # contrast 0 renders the mean: within 0.5 level (+ float rounding) of the torch kernel's exact mean
    image = natural_image(seed, side, channels, 0.2)
    out = U.color_jitter(image, brightness, 0.0, 1.0, 0.0, [0, 1, 2, 3])
    x = torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255
    mean = float(rgb_to_grayscale((x.float() * brightness).clamp(0, 1).double()).mean()) * 255
    assert np.abs(out.astype(np.float64) - mean).max() <= 0.5 + 1e-3
