"""One image per call (a DataLoader worker's way) takes a lean path through ``MIPairTransform``: it must give
exactly what the public steps give (``plan`` -> ``score`` -> ``choose`` -> ``render``) for the same generator
seed: the same views, bit for bit, the same ``info``, and the same draws left on the generator."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image

from mi_augment import kernel_options
from mi_augment.pairs import PixelMIScorer, ThresholdPolicy
from mi_augment.transforms import ColorJitter, GaussianBlur, RandomGrayscale
from mi_augment.transforms.pair import MIPairTransform


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mirror_rows(views: torch.Tensor) -> torch.Tensor:
    """A plain callable in a view pipeline (not one of ours: called as it is)."""
    return views.flip(-2)


NATURAL = dict(illumination="default", motion="default", view_transforms=None)  # the shipped models alone

CONFIGS = {
    "simclr_random": lambda s: MIPairTransform.simclr(s, policy="random", blur=False),
    "simclr_k8": lambda s: MIPairTransform.simclr(s, n_candidates=8, blur=False),
    "simclr_blur": lambda s: MIPairTransform.simclr(s, n_candidates=3, blur=True),
    "byol": lambda s: MIPairTransform.byol(s, n_candidates=4),
    "defaults": lambda s: MIPairTransform(s),
    "natural_random": lambda s: MIPairTransform(s, policy="random", **NATURAL),
    "natural_k8": lambda s: MIPairTransform(s, n_candidates=8, **NATURAL),
    "three_views_max": lambda s: MIPairTransform(s, policy="max", n_views=3, illumination=False, motion=False,
                                                 view_transforms=[ColorJitter(0.4, 0, 0.4, 0, p=0.5)]),
    "jitter_only_hue": lambda s: MIPairTransform(s, policy="random", illumination=False, motion=False, flip=1.0,
                                                 view_transforms=[ColorJitter(hue=0.3, p=1.0),
                                                                  RandomGrayscale(p=0.5)]),
    "jitter_nothing": lambda s: MIPairTransform(s, policy="random", illumination=False, motion=False,
                                               view_transforms=[ColorJitter(0.0, 0.0, 0.0, 0.0, p=0.5)]),
    "foreign_callable": lambda s: MIPairTransform(s, policy="random", illumination=False, motion=False,
                                                 view_transforms=[ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
                                                                  _mirror_rows, RandomGrayscale(p=0.5)]),
    "sampling_ratio_1": lambda s: MIPairTransform(s, policy="random", illumination=False, motion=False,
                                                  sampling_ratio=1),
    "sampling_ratio_2": lambda s: MIPairTransform(s, policy="random", illumination=False, motion=False,
                                                  sampling_ratio=2),
    "large_crops": lambda s: MIPairTransform(s, scale=(0.9, 1.0), n_candidates=2, illumination=False, motion=False,
                                             view_transforms=[GaussianBlur(3, p=0.5)]),
    "boxes_never_fit": lambda s: MIPairTransform(s, scale=(0.9, 1.0), ratio=(3.0, 4.0), policy="random",
                                                 illumination=False, motion=False),
    "bounds_unmeetable": lambda s: MIPairTransform(s, scale=(0.9, 1.0), ratio=(5.0, 6.0), policy="random",
                                                   illumination=False, motion=False),
}


def _image(kind: str, h: int, w: int, seed: int):
    rng = np.random.default_rng(seed)
    grey = kind.endswith("_l")
    arr = (rng.random((h, w) if grey else (h, w, 3)) * 255).astype(np.uint8)
    chw = torch.from_numpy(arr[:, :, None] if grey else arr).permute(2, 0, 1).contiguous()
    if kind.startswith("pil"):
        return Image.fromarray(arr)
    if kind.startswith("uint8"):
        return chw
    if kind.startswith("float64"):
        return chw.double() / 255
    return chw.float() / 255


def _as_float_batch(image) -> torch.Tensor:
    """The float batch the transform works on: uint8 levels / 255, floats as they are."""
    if isinstance(image, Image.Image):
        arr = np.asarray(image)
        image = torch.from_numpy((arr[:, :, None] if arr.ndim == 2 else arr).copy()).permute(2, 0, 1)
    return (image.float() / 255 if image.dtype == torch.uint8 else image)[None]


def _steps(t: MIPairTransform, image, generator: torch.Generator | None):
    """The public steps, one at a time: (float views, info)."""
    x = _as_float_batch(image)
    candidates = t.plan(x, generator)
    scores = t.score(x, candidates) if t.policy.needs_scores else None
    info = t.choose(candidates, scores, generator)
    views, params = t.render(x, info.params, generator, return_params=True)
    return views, dataclasses.replace(info, params=params)


def _as_float(view) -> torch.Tensor:
    if isinstance(view, Image.Image):
        arr = np.asarray(view)
        view = torch.from_numpy((arr[:, :, None] if arr.ndim == 2 else arr).copy()).permute(2, 0, 1)
    return view


def _expected(view: torch.Tensor, image) -> torch.Tensor:
    """A float view ``[1, C, h, w]`` as the input's type returns it (uint8 and PIL: rounded levels)."""
    if isinstance(image, Image.Image) or image.dtype == torch.uint8:
        return view[0].mul(255).clamp(0, 255).round().to(torch.uint8)
    return view[0].to(image.dtype)


def _assert_same(a, b, where: str = "info") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b) or (a.is_floating_point() and torch.equal(a.isnan(), b.isnan())
                                     and torch.equal(a.nan_to_num(), b.nan_to_num())), where
    elif dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            _assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _check(t: MIPairTransform, image, seed: int) -> None:
    ref_views, ref_info = _steps(t, image, _gen(seed))
    g = _gen(seed)
    views = t(image, generator=g)
    g_info = _gen(seed)
    views_info, info = t(image, generator=g_info, return_info=True)
    ref_g = _gen(seed)
    _steps(t, image, ref_g)
    after = torch.rand(4, generator=ref_g)
    assert torch.equal(torch.rand(4, generator=g), after)  # the same number of draws
    assert torch.equal(torch.rand(4, generator=g_info), after)
    assert len(views) == len(ref_views) == t.n_views
    for got, got_info, ref in zip(views, views_info, ref_views):
        assert type(got) is type(image)
        if isinstance(got, Image.Image):
            assert got.mode == image.mode == got_info.mode
        expected = _expected(ref, image)
        assert torch.equal(_as_float(got), expected)
        assert torch.equal(_as_float(got_info), expected)
    _assert_same(info, ref_info)


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("kind", ["pil", "pil_l", "uint8", "float32"])
def test_one_image_per_call_equals_the_public_steps(name, kind):
    for size, (h, w) in [(16, (16, 16)), (12, (37, 29))]:
        t = CONFIGS[name](size)
        for seed in range(2):
            _check(t, _image(kind, h, w, seed), seed)


@pytest.mark.parametrize("name", ["simclr_random", "natural_k8"])
def test_float64_and_one_channel_tensors_equal_the_public_steps(name):
    t = CONFIGS[name](20)
    for seed in range(3):
        _check(t, _image("float64", 31, 23, seed), seed)
        _check(t, _image("uint8_l", 24, 40, seed), seed)


@pytest.mark.parametrize("name", ["simclr_random", "simclr_k8", "natural_random"])
def test_the_global_generator_gives_the_public_steps_views(name):
    t = CONFIGS[name](16)
    image = _image("pil", 32, 32, 0)
    for seed in range(3):
        torch.manual_seed(seed)
        views = t(image)
        torch.manual_seed(seed)
        ref_views, _ = _steps(t, image, None)
        for got, ref in zip(views, ref_views):
            assert torch.equal(_as_float(got), _expected(ref, image))


@pytest.mark.parametrize("name", ["simclr_k8", "three_views_max", "large_crops"])
def test_tied_scores_of_a_flat_image_equal_the_public_steps(name):
    """A flat image scores every candidate alike (the threshold policy then keeps the tied best)."""
    t = CONFIGS[name](16)
    for seed in range(3):
        _check(t, torch.full((3, 24, 24), 0.25 * (seed + 1)), seed)


def test_factors_beyond_float32_range_equal_the_public_steps():
    """A brightness range past float32's largest number: factors overflow to inf as torch's cast does."""
    t = MIPairTransform(16, policy="random", illumination=False, motion=False,
                        view_transforms=[ColorJitter((0.0, 1e39), 0.4, 0.4, 0.1, p=1.0)])
    x = _image("float32", 24, 24, 0)
    x[:, :4] = 0.0  # 0 * inf: NaN pixels, compared as NaN
    for seed in range(4):
        views = t(x, generator=_gen(seed))
        ref, _ = _steps(t, x, _gen(seed))
        for got, want in zip(views, ref):
            assert torch.equal(got.isnan(), want[0].isnan())
            assert torch.equal(got.nan_to_num(), want[0].nan_to_num())


class _JitterDrawingMore(ColorJitter):
    """A subclass whose draws differ from ColorJitter's: it must take the general path."""

    def make_params(self, images, generator=None):
        torch.rand(1, generator=generator)
        return super().make_params(images, generator)


class _NegatedScorer(PixelMIScorer):
    """A subclass scoring its own way."""

    def __call__(self, proxy_a, proxy_b):
        return -super().__call__(proxy_a, proxy_b)


class _KeepTopHalf(ThresholdPolicy):
    """A subclass with its own probabilities (keeps the upper half, drops nothing else)."""

    def _probabilities(self, scores, mask):
        return torch.softmax(scores * 10, 1)


@pytest.mark.parametrize("make", [
    lambda: MIPairTransform(16, policy="random", illumination=False, motion=False,
                            view_transforms=[_JitterDrawingMore(0.4, 0.4, 0.4, 0.1, p=0.8)]),
    lambda: MIPairTransform(16, n_candidates=6, illumination=False, motion=False, scorer=_NegatedScorer()),
    lambda: MIPairTransform(16, n_candidates=6, illumination=False, motion=False, policy=_KeepTopHalf()),
])
def test_subclasses_with_their_own_draws_or_scores_equal_the_public_steps(make):
    t = make()
    for seed in range(3):
        _check(t, _image("pil", 24, 24, seed), seed)


def test_views_are_the_callers_own_tensors():
    t = CONFIGS["simclr_random"](16)
    x = _image("float32", 32, 32, 1)
    before = x.clone()
    views = t(x, generator=_gen(0))
    assert torch.equal(x, before)  # the input is not written into
    assert all(v.is_contiguous() for v in views)
    assert views[0].data_ptr() != views[1].data_ptr()
    views[0].zero_()  # writing into one view leaves the other alone
    assert torch.equal(views[1], t(x, generator=_gen(0))[1])


def test_an_input_that_requires_grad_gives_views_without_a_graph():
    t = CONFIGS["simclr_random"](16)
    x = _image("float32", 32, 32, 2).requires_grad_()
    assert not any(v.requires_grad for v in t(x, generator=_gen(0)))


def test_replayed_params_reproduce_the_views():
    t = CONFIGS["simclr_k8"](16)
    image = _image("pil", 32, 32, 3)
    views, info = t(image, generator=_gen(4), return_info=True)
    again = t(image, params=info.params)
    for a, b in zip(views, again):
        assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("name", ["simclr_random", "natural_random"])
def test_without_fast_paths_one_image_is_the_batch_of_one(name):
    """Inside kernel_options(fast_paths=False) the lean path is off: a single image is its batch of one."""
    t = CONFIGS[name](16)
    x = _image("float32", 32, 32, 5)
    with kernel_options(fast_paths=False):
        one = t(x, generator=_gen(6))
        batch = t(x[None], generator=_gen(6))
    for a, b in zip(one, batch):
        assert torch.equal(a, b[0])


@pytest.mark.parametrize("jitter", [(0.4, 0.4, 0.4, 0.1), (0.4, 0.0, 0.2, 0.0), (0.0, 0.0, 0.0, 0.3),
                                    ((0.2, 1.7), (0.3, 0.35), 1e-3, (-0.5, 0.5)), (0.0, 0.0, 0.0, 0.0)])
@pytest.mark.parametrize("batch", [1, 4])
def test_color_jitter_draws_make_params_then_the_gate(jitter, batch):
    """ColorJitter's forward draws what make_params draws, then the p gate's (B,) uniform draw."""
    t = ColorJitter(*jitter, p=0.7)
    x = torch.rand(batch, 3, 8, 8, generator=_gen(0))
    g, ref_g = _gen(batch), _gen(batch)
    _, params = t(x, generator=g, return_params=True)
    inner = t.make_params(x, generator=ref_g)
    applied = torch.rand(batch, generator=ref_g) < 0.7
    _assert_same(params.params, inner, "params")
    assert torch.equal(params.applied, applied)
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=ref_g))
    with kernel_options(fast_paths=False):
        _, slow = t(x, generator=_gen(batch), return_params=True)
    _assert_same(params, slow, "params")


def test_a_color_jitter_subclass_draws_through_its_own_make_params():
    t = _JitterDrawingMore(0.4, 0.4, 0.4, 0.1, p=0.7)
    x = torch.rand(3, 3, 8, 8, generator=_gen(0))
    g, ref_g = _gen(1), _gen(1)
    _, params = t(x, generator=g, return_params=True)
    inner = t.make_params(x, generator=ref_g)
    applied = torch.rand(3, generator=ref_g) < 0.7
    _assert_same(params.params, inner, "params")
    assert torch.equal(params.applied, applied)


def test_nan_chosen_score_when_nothing_is_scored():
    _, info = CONFIGS["simclr_random"](16)(_image("pil", 32, 32, 0), generator=_gen(0), return_info=True)
    assert info.scores is None and math.isnan(float(info.chosen_score[0]))
