"""Per-view photometric transforms (mi_augment.transforms.photometric) against torchvision's per-image ones.

The shared contract (replay, seeds, p=0, batch = singles, pickling, types) runs in tests/test_registry.py.
"""

from __future__ import annotations

import itertools

import kornia as K
import pytest
import torch
import torchvision.transforms.v2 as v2
import torchvision.transforms.v2.functional as TF
from scipy.stats import ks_2samp

import mi_augment.transforms as T
from mi_augment.core.params import GatedParams
from mi_augment.ssl.views import color_jitter, gaussian_blur, solarize
from mi_augment.transforms.photometric import ColorJitterParams

from .checkers import textured_batch

# torchvision weighs red 0.2989 in luma, we (Kornia, BT.601) 0.299: contrast and saturation pivot on it
LUMA_TOL = 5e-4
TV_ADJUST = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("channels", [1, 3])
def test_color_jitter_is_torchvisions_adjustments_in_each_samples_drawn_order(channels):
    x = textured_batch(b=12, c=channels, h=10, w=12)
    out, params = T.ColorJitter(0.5, 0.5, 0.5, 0.2, p=0.7)(x, generator=_gen(0), return_params=True)
    jp = params.params
    assert not bool(params.applied.all()) and bool(params.applied.any())
    for i in range(12):
        expected = x[i]
        if params.applied[i]:
            factors = [jp.brightness[i], jp.contrast[i], jp.saturation[i], jp.hue[i]]
            for op in jp.order[i].tolist():
                expected = TV_ADJUST[op](expected, float(factors[op]))
        assert torch.allclose(out[i], expected, atol=LUMA_TOL), (i, (out[i] - expected).abs().max())


def test_color_jitter_order_matters_and_is_uniform_per_sample():
    x = torch.rand(480, 3, 2, 2, generator=_gen(1))
    t = T.ColorJitter(0.4, 0.4, 0.4, 0.1)
    _, params = t(x, generator=_gen(2), return_params=True)
    orders = [tuple(o) for o in params.params.order.tolist()]
    counts = [orders.count(perm) for perm in itertools.permutations(range(4))]
    assert min(counts) >= 5 and max(counts) <= 45, counts  # 20 expected each
    # the same factors in two orders give different images
    one = x[:1]
    factors = dict(brightness=torch.tensor([1.6]), contrast=torch.tensor([0.3]), saturation=torch.tensor([1.8]),
                   hue=torch.tensor([0.2]))
    forward = ColorJitterParams(order=torch.tensor([[0, 1, 2, 3]]), **factors)
    backward = ColorJitterParams(order=torch.tensor([[3, 2, 1, 0]]), **factors)
    on = torch.ones(1, dtype=torch.bool)
    a = t(one, params=GatedParams(forward, on))
    b = t(one, params=GatedParams(backward, on))
    assert (a - b).abs().max() > 0.05


def test_color_jitter_ranges_and_disabled_adjustments():
    x = textured_batch(b=64, h=6, w=6)
    _, params = T.ColorJitter(brightness=(0.5, 0.7), hue=(-0.3, -0.2))(x, generator=_gen(3), return_params=True)
    jp = params.params
    assert float(jp.brightness.min()) >= 0.5 and float(jp.brightness.max()) <= 0.7
    assert float(jp.hue.min()) >= -0.3 and float(jp.hue.max()) <= -0.2
    assert bool((jp.contrast == 1).all()) and bool((jp.saturation == 1).all())
    _, params = T.ColorJitter(0.4, 0.4, 0.4, 0.1)(x, generator=_gen(3), return_params=True)
    jp = params.params
    for name, (lo, hi) in dict(brightness=(0.6, 1.4), contrast=(0.6, 1.4), saturation=(0.6, 1.4),
                               hue=(-0.1, 0.1)).items():
        f = getattr(jp, name)
        assert float(f.min()) >= lo and float(f.max()) <= hi and float(f.std()) > 0.1 * (hi - lo), name
    # a factor above 1 clips the lower bound at 0, as torchvision does
    _, params = T.ColorJitter(brightness=3.0)(x, generator=_gen(4), return_params=True)
    assert float(params.params.brightness.min()) >= 0.0
    # brightness alone is torchvision's adjust_brightness exactly; no adjustment at all is the identity
    out, params = T.ColorJitter(brightness=0.5)(x, generator=_gen(5), return_params=True)
    f = params.params.brightness
    assert torch.equal(out, torch.stack([TF.adjust_brightness(x[i], float(f[i])) for i in range(64)]))
    assert torch.equal(T.ColorJitter()(x, generator=_gen(5)), x)


def test_color_jitter_bad_arguments_name_the_argument():
    for kwargs, match in [(dict(brightness=-0.1), "brightness"), (dict(contrast=(1.5, 0.5)), "contrast range"),
                          (dict(saturation="a lot"), "saturation"), (dict(hue=0.6), "hue"),
                          (dict(hue=(-0.7, 0.1)), "hue range"), (dict(p=1.5), "p")]:
        with pytest.raises(ValueError, match=match):
            T.ColorJitter(**kwargs)


def test_gaussian_blur_equals_torchvisions_with_the_drawn_sigma():
    x = textured_batch(b=6, h=20, w=24)
    out = T.GaussianBlur(7, sigma=1.3)(x, generator=_gen(0))
    expected = torch.stack([TF.gaussian_blur(x[i], [7, 7], [1.3, 1.3]) for i in range(6)])
    assert torch.allclose(out, expected, atol=1e-5)
    # per-sample sigma, rectangular kernel (ours (height, width); torchvision's [width, height])
    out, params = T.GaussianBlur((5, 9), sigma=(0.2, 3.0))(x, generator=_gen(1), return_params=True)
    sigma = params.params.sigma
    assert float(sigma.std()) > 0.1 and float(sigma.min()) >= 0.2 and float(sigma.max()) <= 3.0
    expected = torch.stack([TF.gaussian_blur(x[i], [9, 5], [float(sigma[i])] * 2) for i in range(6)])
    assert torch.allclose(out, expected, atol=1e-5)
    grey = x[:, :1]
    assert torch.allclose(T.GaussianBlur(7, sigma=1.3)(grey, generator=_gen(0)),
                          torch.stack([TF.gaussian_blur(grey[i], [7, 7], [1.3, 1.3]) for i in range(6)]), atol=1e-5)


def test_gaussian_blur_default_kernel_is_simclrs_tenth_of_the_side():
    blur = T.GaussianBlur()
    assert blur.kernel_for(224, 224) == (23, 23)
    assert blur.kernel_for(96, 128) == (9, 9)
    assert blur.kernel_for(32, 32) == (3, 3)
    assert blur.kernel_for(1, 5) == (1, 1)
    assert blur(torch.rand(2, 3, 1, 5), generator=_gen(0)).shape == (2, 3, 1, 5)


def test_gaussian_blur_bad_arguments_name_the_argument():
    for kwargs, match in [(dict(kernel_size=4), "kernel_size"), (dict(kernel_size=(3, 0)), "kernel_size"),
                          (dict(sigma=0.0), "sigma"), (dict(sigma=(2.0, 1.0)), "sigma"), (dict(sigma="x"), "sigma")]:
        with pytest.raises(ValueError, match=match):
            T.GaussianBlur(**kwargs)
    with pytest.raises(ValueError, match=r"kernel_size \(9, 9\) is too large for 4 x 4"):
        T.GaussianBlur(9)(torch.rand(1, 3, 4, 4))


def test_random_grayscale_is_luma_in_every_channel():
    x = textured_batch(b=5, h=8, w=9)
    out = T.RandomGrayscale(p=1.0)(x, generator=_gen(0))
    assert torch.equal(out, K.color.rgb_to_grayscale(x).expand_as(x))
    assert torch.allclose(out, TF.rgb_to_grayscale(x, num_output_channels=3), atol=1.01e-4)
    assert torch.equal(T.RandomGrayscale(p=1.0)(x[:, :1], generator=_gen(0)), x[:, :1])
    # the gate: each sample independently with probability p
    many = torch.rand(2000, 3, 1, 1, generator=_gen(1))
    _, params = T.RandomGrayscale(p=0.2)(many, generator=_gen(2), return_params=True)
    assert 0.17 < float(params.applied.float().mean()) < 0.23


def test_random_solarize_inverts_values_at_or_above_the_threshold():
    x = torch.tensor([0.2, 0.49, 0.5, 0.7, 1.0]).view(1, 1, 1, 5)
    out = T.RandomSolarize(0.5, p=1.0)(x, generator=_gen(0))
    assert torch.allclose(out.flatten(), torch.tensor([0.2, 0.49, 0.5, 0.3, 0.0]))
    rgb = textured_batch(b=3, h=5, w=6)
    assert torch.equal(T.RandomSolarize(0.3, p=1.0)(rgb, generator=_gen(0)), TF.solarize(rgb, 0.3))
    # uint8 images: the threshold is in float units (torchvision's 128 on uint8 is 128 / 255 here)
    u8 = torch.tensor([127, 128, 200], dtype=torch.uint8).view(1, 1, 3)
    assert torch.equal(T.RandomSolarize(128 / 255, p=1.0)(u8, generator=_gen(0)), TF.solarize(u8, 128))
    for bad in (1.5, -0.1, True, "half"):
        with pytest.raises(ValueError, match="threshold"):
            T.RandomSolarize(bad)


def test_recipe_helpers_are_the_transforms():
    x = textured_batch(b=6, h=40, w=40)
    assert torch.equal(gaussian_blur(x, _gen(0), p=0.5), T.GaussianBlur(p=0.5)(x, generator=_gen(0)))
    assert torch.equal(solarize(x, _gen(0), p=0.5), T.RandomSolarize(0.5, p=0.5)(x, generator=_gen(0)))
    g = _gen(0)
    expected = T.RandomGrayscale(0.2)(T.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8)(x, generator=g), generator=g)
    assert torch.equal(color_jitter(x, _gen(0)), expected)


def test_recipe_color_jitter_matches_torchvisions_simclr_distortion_in_distribution():
    n = 300
    image = textured_batch(b=1, h=6, w=6, seed=4)[0]
    ours = color_jitter(image.expand(n, -1, -1, -1).contiguous(), _gen(0))
    tv = v2.Compose([v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), v2.RandomGrayscale(p=0.2)])
    torch.manual_seed(0)
    theirs = torch.stack([tv(image) for _ in range(n)])
    stats = {
        "red mean": lambda v: v[:, 0].mean(dim=(1, 2)),
        "blue - green": lambda v: (v[:, 2] - v[:, 1]).mean(dim=(1, 2)),
        "spread": lambda v: v.flatten(1).std(dim=1),
    }
    for name, stat in stats.items():
        result = ks_2samp(stat(ours).numpy(), stat(theirs).numpy())
        assert result.pvalue > 1e-3, (name, result)
