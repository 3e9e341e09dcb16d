"""Colour and illumination kernels (mi_augment.functional.color)."""

from __future__ import annotations

import math

import kornia as K
import pytest
import torch
import torchvision.transforms.v2.functional as TF

import mi_augment.functional as F
from mi_augment.functional import color as C


def _images(b=5, c=3, h=13, w=17, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, h, w, generator=g)
    if c == 3 and b >= 3:
        x[0, :, :3, :3] = 0.5  # grey pixels (hue undefined)
        x[1, 1] = x[1, 0]  # ties between channels
        x[2, :, 0, 0] = 0.0
        x[2, :, 0, 1] = 1.0
    return x


def test_srgb_linear_round_trip_and_known_values():
    x = torch.linspace(0, 1, 1001, dtype=torch.float64)
    assert torch.allclose(C.linear_to_srgb(C.srgb_to_linear(x)), x, atol=1e-9)
    lin = torch.linspace(0, 1, 1001, dtype=torch.float64)
    assert torch.allclose(C.srgb_to_linear(C.linear_to_srgb(lin)), lin, atol=1e-9)
    # sRGB mid grey is ~21.4 % linear; 18 % linear grey is sRGB ~0.461
    assert C.srgb_to_linear(torch.tensor(0.5)).item() == pytest.approx(0.21404, abs=1e-4)
    assert C.linear_to_srgb(torch.tensor(0.18)).item() == pytest.approx(0.46135, abs=1e-4)
    assert bool((C.srgb_to_linear(x).diff() > 0).all()), "the transfer curve must be increasing"
    x32 = _images()
    assert torch.allclose(C.linear_to_srgb(C.srgb_to_linear(x32)), x32, atol=1e-6)


def test_identity_params_are_identity():
    for c in (1, 3):
        x = _images(c=c)
        out = C.apply_illumination(x, torch.zeros(5, 3), torch.zeros(5, 1), torch.zeros(5, 5))
        assert out.shape == x.shape
        assert torch.allclose(out, x, atol=1e-6)
        ones = torch.ones(5)
        assert torch.equal(C.adjust_brightness(x, ones), x)
        assert torch.allclose(C.adjust_contrast(x, ones), x, atol=1e-7)
        assert torch.allclose(C.adjust_saturation(x, ones), x, atol=1e-7)
        assert torch.allclose(C.adjust_hue(x, torch.zeros(5)), x, atol=1e-6)


def test_gain_gamma_and_shading_act_in_linear_light():
    x = _images(b=2).clamp(0.05, 0.6)
    lin = C.srgb_to_linear(x)
    out = C.apply_illumination(x, torch.tensor([[math.log(0.5)] * 3, [0.0, math.log(1.2), 0.0]]), torch.zeros(2, 1))
    ratio = C.srgb_to_linear(out) / lin
    assert torch.allclose(ratio[0], torch.full_like(ratio[0], 0.5), atol=1e-4)
    assert torch.allclose(ratio[1, 1], torch.full_like(ratio[1, 1], 1.2), atol=1e-4)
    assert torch.allclose(ratio[1, 0], torch.ones_like(ratio[1, 0]), atol=1e-4)
    out = C.apply_illumination(x, torch.zeros(2, 3), torch.tensor([[math.log(2.0)], [0.0]]))
    assert torch.allclose(C.srgb_to_linear(out[0]), lin[0] ** 2, atol=1e-5)
    coeffs = torch.tensor([[0.3, -0.2, 0.1, 0.05, -0.1], [0.0] * 5])
    out = C.apply_illumination(x, torch.zeros(2, 3), torch.zeros(2, 1), coeffs)
    field = C.render_shading_field(coeffs, 13, 17)
    assert torch.allclose(C.srgb_to_linear(out), (lin * field).clamp(0, 1), atol=1e-5)
    # a greyscale image gets the geometric-mean gain
    grey = x[:, :1]
    out = C.apply_illumination(grey, torch.log(torch.tensor([[0.5, 1.0, 2.0]] * 2)), torch.zeros(2))
    assert torch.allclose(out, grey, atol=1e-6)


def test_output_is_clamped_to_unit_range():
    x = _images()
    out = C.apply_illumination(x, torch.full((5, 3), 3.0), torch.full((5, 1), -0.7), torch.full((5, 5), 2.0))
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert float(C.adjust_brightness(x, torch.full((5,), 3.0)).max()) <= 1


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation", "hue"])
def test_adjust_matches_torchvision_per_image(name, channels):
    x = _images(b=6, c=channels, seed=1)
    g = torch.Generator().manual_seed(2)
    factors = torch.rand(6, generator=g) - 0.5 if name == "hue" else torch.rand(6, generator=g) * 2.0
    factors[0] = 0.0 if name != "hue" else 0.5
    ours = getattr(C, f"adjust_{name}")(x, factors)
    theirs = torch.stack([getattr(TF, f"adjust_{name}")(x[i], float(factors[i])) for i in range(6)])
    # contrast and saturation pivot on luma, whose red weight is 0.299 here and 0.2989 in torchvision
    assert torch.allclose(ours, theirs, atol=2e-4), (ours - theirs).abs().max()


@pytest.mark.parametrize("channels", [1, 3])
def test_adjustments_are_kornias_kernels_with_torchvision_conventions(channels):
    x = _images(b=6, c=channels, seed=3)
    f = torch.rand(6, generator=torch.Generator().manual_seed(4)) * 2.0
    assert torch.equal(C.adjust_brightness(x, f), K.enhance.adjust_brightness_accumulative(x, f))
    assert torch.equal(C.adjust_contrast(x, f), K.enhance.adjust_contrast_with_mean_subtraction(x, f))
    assert torch.equal(C.adjust_saturation(x, f), K.enhance.adjust_saturation_with_gray_subtraction(x, f))
    if channels == 3:  # hue in turns here, in radians in Kornia
        shift = f / 4 - 0.25
        assert torch.allclose(C.adjust_hue(x, shift), K.enhance.adjust_hue(x, shift * 2 * math.pi), atol=1e-6)


def test_one_luma_with_bt601_weights():
    x = _images(b=4, seed=5)
    assert F.luma is F.rgb_to_grayscale
    assert torch.equal(F.rgb_to_grayscale(x), K.color.rgb_to_grayscale(x))
    # the weights sum to 1 (a flat grey keeps its value); torchvision's red weight is 0.2989
    grey = torch.full((1, 3, 2, 2), 0.6)
    assert torch.allclose(F.rgb_to_grayscale(grey), grey[:, :1], atol=1e-7)
    pure = torch.eye(3).view(3, 3, 1, 1)
    assert torch.allclose(F.rgb_to_grayscale(pure).flatten(), torch.tensor([0.299, 0.587, 0.114]))
    assert torch.allclose(F.rgb_to_grayscale(x), TF.rgb_to_grayscale(x), atol=1.01e-4)
    # leading dims beyond the batch, and 1 channel returned as is
    assert F.rgb_to_grayscale(x.view(2, 2, 3, 13, 17)).shape == (2, 2, 1, 13, 17)
    assert torch.equal(F.rgb_to_grayscale(x[:, :1]), x[:, :1])
    with pytest.raises(ValueError, match="1 or 3 channels"):
        F.rgb_to_grayscale(torch.rand(2, 4, 5, 5))


@pytest.mark.parametrize("shape", [(), (7,), (5, 3), (2, 1, 4, 5), (2, 3, 4, 5)])
def test_srgb_curve_is_kornias_on_any_shape(shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(6)) if shape else torch.tensor(0.3)
    three = x.reshape(-1).repeat(3).view(1, 3, 1, -1)  # the same values as a 3-channel image
    lin = C.srgb_to_linear(x)
    assert lin.shape == x.shape
    # (to 1 ulp: a vectorised pow and its scalar tail may round differently)
    assert torch.allclose(lin.reshape(-1), K.color.rgb_to_linear_rgb(three)[0, 0, 0], rtol=1e-6, atol=0)
    assert torch.allclose(C.linear_to_srgb(x).reshape(-1), K.color.linear_rgb_to_rgb(three)[0, 0, 0], rtol=1e-6,
                          atol=0)


def test_shading_field_any_resolution_and_smooth():
    coeffs = torch.tensor([[0.4, -0.3, 0.2, 0.1, -0.25]])
    fine = C.render_shading_field(coeffs, 96, 128)
    coarse = C.render_shading_field(coeffs, 12, 16)
    # Coefficients live on normalised coordinates: the fine field averaged over 8 x 8 blocks is the coarse one.
    pooled = torch.nn.functional.avg_pool2d(fine, 8)
    assert torch.allclose(pooled, coarse, rtol=2e-3)
    assert float(fine.min()) > 0
    # smooth: neighbouring pixels differ by O(1 / size) in the log domain
    log_field = fine.log()[0, 0]
    assert float(log_field.diff(dim=0).abs().max()) < 3.0 / 96
    assert float(log_field.diff(dim=1).abs().max()) < 3.0 / 128
    assert torch.equal(C.render_shading_field(torch.zeros(2, 5), 4, 6), torch.ones(2, 1, 4, 6))
    assert C.render_shading_field(torch.zeros(3, 0), 5, 5).shape == (3, 1, 5, 5)
    # single pixel and odd sizes render too
    assert C.render_shading_field(coeffs, 1, 1).shape == (1, 1, 1, 1)
    assert C.shading_size(2) == 5 and C.shading_degree(9) == 3
    with pytest.raises(ValueError, match="complete polynomial"):
        C.render_shading_field(torch.zeros(1, 4), 8, 8)


def test_shading_basis_is_nearly_orthogonal_with_zero_mean():
    basis = C.shading_basis(64, 64, 2, dtype=torch.float64).flatten(1)
    assert float(basis.mean(1).abs().max()) < 0.01
    gram = basis @ basis.T / basis.shape[1]
    off = gram - torch.diag(torch.diagonal(gram))
    assert float(off.abs().max()) < 0.01


def test_kernels_do_not_modify_inputs():
    x = _images()
    before = x.clone()
    args = [torch.full((5, 3), 0.2), torch.full((5, 1), 0.1), torch.full((5, 5), 0.1)]
    arg_copies = [a.clone() for a in args]
    C.apply_illumination(x, *args)
    for fn, f in [(C.adjust_brightness, 1.3), (C.adjust_contrast, 0.7), (C.adjust_saturation, 1.5),
                  (C.adjust_hue, 0.2)]:
        fn(x, torch.full((5,), f))
    C.srgb_to_linear(x)
    C.linear_to_srgb(x)
    assert torch.equal(x, before)
    assert all(torch.equal(a, b) for a, b in zip(args, arg_copies))
    grey = x[:, :1].clone()
    assert C.adjust_saturation(grey, torch.ones(5)) is not grey


def test_kernel_errors_are_clear():
    x = _images()
    with pytest.raises(ValueError, match="non-negative"):
        C.adjust_brightness(x, torch.full((5,), -0.1))
    with pytest.raises(ValueError, match=r"\[-0.5, 0.5\]"):
        C.adjust_hue(x, torch.full((5,), 0.7))
    with pytest.raises(ValueError, match="shape"):
        C.adjust_contrast(x, torch.ones(4))
    with pytest.raises(ValueError, match="log_gain"):
        C.apply_illumination(x, torch.zeros(5, 2), torch.zeros(5))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        C.adjust_brightness(torch.rand(2, 4, 5, 5), torch.ones(2))
    with pytest.raises(TypeError, match="float"):
        C.adjust_brightness(torch.zeros(2, 3, 5, 5, dtype=torch.uint8), torch.ones(2))


def test_shading_basis_is_memoised_but_callers_get_their_own_copy():
    before = C.shading_basis(6, 8, 2).clone()
    field = C.render_shading_field(torch.ones(1, 5), 6, 8)
    a = C.shading_basis(6, 8, 2)
    a.zero_()  # a caller modifying its basis must not change anyone else's
    b = C.shading_basis(6, 8, 2)
    assert b.shape == (5, 6, 8) and float(b.abs().sum()) > 0
    assert torch.equal(b, before)
    assert torch.equal(C.render_shading_field(torch.ones(1, 5), 6, 8), field)  # nor the kernels' basis
