"""One definition of each method's views (issue 21 item 4): the recipes' baseline, natural and MI arms are all
built from ``transforms.presets.method_views``, so they differ only in what the arm changes."""

from __future__ import annotations

import pytest
import torch

from mi_augment.ssl.views import AugmentOptions, make_views
from mi_augment.transforms.presets import METHOD_VIEWS, blur_applies, byol_views, method_views

METHODS = sorted(METHOD_VIEWS)


def _describe(pipeline) -> list[str]:
    """Each transform's type and settings (its repr), in order."""
    return [repr(t) for t in pipeline]


def _names(pipeline) -> list[str]:
    return [type(t).__name__ for t in pipeline]


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("method", METHODS)
def test_mi_arm_views_equal_the_baseline_views(method, size):
    options = AugmentOptions(views=method, mi_policy="random")
    baseline = make_views("baseline", size=size, channels=3, options=options)
    mi = make_views("mi", size=size, channels=3, options=options)
    assert [_describe(p) for p in mi.pair.view_transforms] == [_describe(p) for p in baseline.pipelines]
    assert [_describe(p) for p in baseline.pipelines] == [_describe(p) for p in method_views(method, size)]


@pytest.mark.parametrize("method", ["byol", "barlow_twins", "vicreg", "moco_v3"])
def test_asymmetric_methods_keep_solarize_and_blur_in_the_mi_arm(method):
    mi = make_views("mi", size=96, channels=3, options=AugmentOptions(views=method, mi_policy="random"))
    first, second = (_names(p) for p in mi.pair.view_transforms)
    assert "GaussianBlur" in first and "RandomSolarize" not in first
    assert "GaussianBlur" in second and "RandomSolarize" in second
    blur_p = [t.p for p in mi.pair.view_transforms for t in p if type(t).__name__ == "GaussianBlur"]
    assert blur_p == [1.0, 0.1]


def test_natural_arms_replace_only_the_colour_jitter():
    for method in METHODS:
        natural = make_views("natural", size=64, channels=3, options=AugmentOptions(views=method))
        mi = make_views("mi", size=64, channels=3, options=AugmentOptions(views=method, mi_photometric="natural",
                                                                         mi_policy="random"))
        expected = [[n for n in _names(p) if n != "ColorJitter"] for p in method_views(method, 64)]
        assert [_names(p) for p in natural.pipelines] == expected
        assert [_names(p) for p in mi.pair.view_transforms] == expected


def test_byol_uses_the_papers_saturation_and_blur_starts_at_64_px():
    jitter = byol_views(96)[0][0]
    assert repr(jitter) == repr(method_views("byol", 96)[0][0])
    assert "saturation=(0.8, 1.2)" in repr(jitter)  # 0.2, as in the BYOL paper (Grill et al. 2020)
    assert (blur_applies(63), blur_applies(64)) == (False, True)
    assert "GaussianBlur" not in _names(method_views("simclr", 63)[0])
    assert "GaussianBlur" in _names(method_views("simclr", 64)[0])


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="method must be one of"):
        method_views("dino", 32)
    with pytest.raises(ValueError, match="views must be one of"):
        AugmentOptions(views="dino")


def test_same_seed_same_views_in_every_arm():
    images = torch.randint(0, 256, (4, 3, 24, 24), dtype=torch.uint8)
    for mode in ("baseline", "mi"):
        views = make_views(mode, size=16, channels=3, options=AugmentOptions(views="byol", mi_policy="random"))
        a = views(images, torch.Generator().manual_seed(3))
        b = views(images, torch.Generator().manual_seed(3))
        assert all(torch.equal(x, y) for x, y in zip(a, b))
