"""apply_illumination's speed path on images large enough (>= 20k elements) that the dark (linear-segment)
pixels are found row by row: every dark pixel still gets the exact piecewise formula, so the speed path
equals the definition (``kernel_options(fast_paths=False)``) to float rounding, whatever the layout."""

from __future__ import annotations

import pytest
import torch

from mi_augment import kernel_options
from mi_augment.functional import color as C
from mi_augment.transforms.pair import MIPairTransform


def _draws(b, s, seed):
    g = torch.Generator().manual_seed(seed)
    return (0.5 * torch.randn(b, 3, generator=g), 0.3 * torch.randn(b, generator=g),
            0.3 * torch.randn(b, s, generator=g))


def _both(images, log_gain, log_gamma, shading, ring=False):
    fast = C.apply_illumination(images, log_gain, log_gamma, shading, ring=ring)
    with kernel_options(fast_paths=False):
        plain = C.apply_illumination(images, log_gain, log_gamma, shading, ring=ring)
    return fast, plain


def _scenes(b, c, h, w, seed):
    """Bright images with a few isolated dark pixels (a handful of rows to search) and one dark block."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.7 * torch.rand(b, c, h, w, generator=g)
    rows = torch.randint(0, h, (7,), generator=g)
    cols = torch.randint(0, w, (7,), generator=g)
    x[:, :, rows, cols] = 0.004 * torch.arange(7.0)  # 0 .. 0.024: on the linear segment
    x[-1, :, 5:9, w - 6:] = 0.01
    return x


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "transposed"])
@pytest.mark.parametrize("shading_terms", [0, 5])
def test_dark_pixels_get_the_exact_formula_in_large_images(layout, shading_terms):
    x = _scenes(3, 3, 96, 110, seed=1)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "transposed":
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    log_gain, log_gamma, shading = _draws(3, shading_terms, seed=2)
    fast, plain = _both(x, log_gain, log_gamma, shading)
    assert fast.shape == plain.shape == x.shape
    assert (fast - plain).abs().max() < 1e-5
    # the dark pixels are the ones where the power-segment formula alone would be far off
    dark = x <= 0.04045
    assert dark.sum() >= 7 and (fast[dark] - plain[dark]).abs().max() < 1e-6


def test_dark_outputs_of_bright_inputs_are_found_too():
    """An input above the knee whose illuminated value falls below it (a strong darkening) is recomputed."""
    x = _scenes(2, 3, 120, 100, seed=3).clamp_min(0.06)
    log_gain = torch.full((2, 3), -2.5)
    fast, plain = _both(x, log_gain, torch.zeros(2), None)
    assert (plain <= 0.04045).any() and (fast - plain).abs().max() < 1e-6


def test_no_dark_pixel_and_every_pixel_dark():
    bright = torch.full((2, 3, 100, 100), 0.8)
    fast, plain = _both(bright, torch.zeros(2, 3), torch.zeros(2), None)
    assert (fast - plain).abs().max() < 1e-6 and (fast - 0.8).abs().max() < 1e-5
    dark = torch.linspace(0.0, 0.04, 100).expand(2, 3, 100, 100).contiguous()
    fast, plain = _both(dark, torch.full((2, 3), 0.3), torch.full((2,), 0.2), None)
    assert (fast - plain).abs().max() < 1e-6


def test_a_nan_pixel_does_not_hide_the_dark_pixels_of_its_row():
    x = _scenes(2, 3, 100, 120, seed=4)
    x[0, 1, 40, :] = 0.9
    x[0, 1, 40, 10] = float("nan")
    x[0, 1, 40, 50:53] = torch.tensor([0.0, 0.01, 0.02])
    fast, plain = _both(x, *_draws(2, 0, seed=5)[:2], None)
    assert torch.isnan(fast[0, 1, 40, 10]) and torch.isnan(plain[0, 1, 40, 10])
    assert (fast[0, 1, 40, 50:53] - plain[0, 1, 40, 50:53]).abs().max() < 1e-6
    finite = ~torch.isnan(plain)
    assert (fast[finite] - plain[finite]).abs().max() < 1e-5


def test_ring_and_one_channel_images():
    x = _scenes(2, 1, 130, 170, seed=6)
    log_gain, log_gamma, shading = _draws(2, 2, seed=7)
    for ring in (False, True):
        fast, plain = _both(x, log_gain, log_gamma, shading, ring=ring)
        assert (fast - plain).abs().max() < 1e-5


def test_large_pair_views_of_dark_images_match_the_definition():
    """A pair with the natural illumination at 112 px illuminates its views as one batch (> 20k elements):
    the speed paths give the views of the plain paths for the same generator state."""
    x = _scenes(2, 3, 140, 150, seed=8) ** 2  # many dark pixels
    pair = MIPairTransform(112, policy="random", motion=False)
    fast = pair(x, generator=torch.Generator().manual_seed(0))
    with kernel_options(fast_paths=False):
        plain = pair(x, generator=torch.Generator().manual_seed(0))
    for a, b in zip(fast, plain):
        assert a.shape == b.shape == (2, 3, 112, 112)
        assert (a - b).abs().max() < 1e-4


def test_params_to_their_own_device_is_free_and_check_batch_names_the_field():
    pair = MIPairTransform(32, policy="random")
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(9))
    views, info = pair(x, generator=torch.Generator().manual_seed(1), return_info=True)
    params = info.params
    assert params.to("cpu") is params and params.to(torch.device("cpu")) is params  # immutable: nothing to copy
    doubled = params.to(torch.float64)  # a dtype still maps every tensor
    assert doubled is not params and doubled.boxes.dtype == torch.float64
    for a, b in zip(pair(x, params=params.to("cpu")), views):
        assert torch.equal(a, b)
    params.check_batch(2)
    with pytest.raises(ValueError, match=r"params\.boxes has leading size 2, expected the batch size 3"):
        params.check_batch(3)
