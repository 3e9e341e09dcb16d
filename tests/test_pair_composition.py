"""MIPairTransform as a composition: plan -> score -> choose -> render, per-view pipelines, any perturbation
model, any scorer kind."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch
from torch import Tensor

from mi_augment.core.params import Params
from mi_augment.pairs import render_proxies
from mi_augment.perturbations.illumination import IlluminationModel
from mi_augment.transforms import MIPairTransform, NaturalIllumination, PairCandidates, PairParams

CLEAN = dict(view_transforms=None)  # crops and flips only (the natural models are off by default)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- a perturbation model written in one file, used in pairs without touching the library -------------------
@dataclasses.dataclass(frozen=True)
class GainParams(Params):
    gain: Tensor  # (B,)


class GainModel:
    """A toy perturbation model: multiply the image by a per-sample gain in [1 - spread, 1]."""

    def __init__(self, spread: float = 0.5):
        self.spread = spread

    def sample(self, n, generator=None, device=None, strength=1.0):
        u = torch.rand(n, generator=generator, device=device)
        return GainParams(1.0 - self.spread * strength * u)

    def apply(self, images, params):
        return images * params.gain.view(-1, 1, 1, 1).to(images)


def test_the_four_steps_equal_the_one_call():
    x = torch.rand(4, 3, 48, 56, generator=_gen(0))
    t = MIPairTransform(24)
    g = _gen(1)
    candidates = t.plan(x, g)
    assert isinstance(candidates, PairCandidates) and candidates.boxes.shape == (4, 2, 8, 4)
    scores = t.score(x, candidates)
    info = t.choose(candidates, scores, g)
    views = t.render(x, info.params, g)
    one_call, one_info = t(x, generator=_gen(1), return_info=True)
    assert all(torch.equal(a, b) for a, b in zip(views, one_call))
    assert torch.equal(one_info.scores, scores) and torch.equal(one_info.chosen, info.chosen)


def test_scores_are_the_pixel_mi_of_each_views_crop():
    """Without perturbations, a candidate's score is the histogram MI of the two boxes' luma proxies."""
    from mi_augment.mi import histogram_mi

    x = torch.rand(3, 1, 40, 40, generator=_gen(2))
    t = MIPairTransform(16, scale=(0.5, 1.0), **CLEAN)  # no downscaling for scoring at this size
    candidates = t.plan(x, _gen(3))
    a = render_proxies(x, candidates.boxes[:, 0], 32, pyramid=True)
    b = render_proxies(x, candidates.boxes[:, 1], 32, pyramid=True)
    expect = histogram_mi(a, b, bins=16, range=(0.0, 1.0))
    assert torch.allclose(t.score(x, candidates)[:, 0], expect, atol=1e-5)


def test_a_boxes_scorer_sees_the_unperturbed_images_and_every_box():
    seen = {}

    class BoxScorer:
        input_kind = "boxes"

        def __call__(self, images, boxes_a, boxes_b):
            seen["images"], seen["a"], seen["b"] = images, boxes_a, boxes_b
            return -(boxes_a - boxes_b).abs().sum(-1)  # prefer boxes that nearly coincide

    x = torch.rand(5, 3, 32, 32, generator=_gen(4))
    t = MIPairTransform(16, scorer=BoxScorer(), policy="max", n_candidates=6)
    views, info = t(x, generator=_gen(5), return_info=True)
    assert torch.equal(seen["images"], x)
    assert torch.equal(seen["a"], info.candidates.boxes[:, 0]) and torch.equal(seen["b"], info.candidates.boxes[:, 1])
    gap = (info.candidates.boxes[:, 0] - info.candidates.boxes[:, 1]).abs().sum(-1)
    assert torch.equal(info.chosen, gap.argmin(1))


@pytest.mark.parametrize("bad, match", [(lambda a, b: a.mean(-1)[:, :3], "shape"),
                                        (lambda a, b: torch.full(a.shape[:2], float("nan")), "NaN"),
                                        (lambda a, b: [0.0], "Tensor")])
def test_bad_scorer_output_is_named(bad, match):
    t = MIPairTransform(16, scorer=bad, **CLEAN)
    with pytest.raises((ValueError, TypeError), match=match):
        t(torch.rand(2, 3, 32, 32))


def test_choose_checks_its_inputs():
    t = MIPairTransform(16, **CLEAN)
    x = torch.rand(2, 3, 32, 32)
    candidates = t.plan(x, _gen(0))
    with pytest.raises(ValueError, match="needs the scores"):
        t.choose(candidates, None)
    with pytest.raises(ValueError, match=r"\(B, V - 1, K\)"):
        t.choose(candidates, torch.zeros(2, 8))


def test_each_view_gets_its_own_pipeline_draw_and_replays():
    jitter = NaturalIllumination(IlluminationModel.uniform(0.4, 0.4, 0.4, 0.1), p=0.5)
    t = MIPairTransform(12, policy="random", view_transforms=[jitter])
    x = torch.rand(200, 3, 16, 16, generator=_gen(6))
    views, info = t(x, generator=_gen(7), return_info=True)
    gate_a, gate_b = info.params.views[0][0].applied, info.params.views[1][0].applied
    assert 0 < int((gate_a != gate_b).sum()) < 200  # independent decisions per view, not one shared draw
    again = t(x, params=info.params)
    assert all(torch.equal(a, b) for a, b in zip(views, again))
    plain = MIPairTransform(12, policy="random", **CLEAN)(x, params=dataclasses.replace(info.params, views=()))
    changed = (views[0] - plain[0]).abs().flatten(1).amax(1) > 0
    assert torch.equal(changed, gate_a)  # the pipeline ran exactly where its gate says


def test_one_pipeline_per_view_is_asymmetric():
    darken = NaturalIllumination(IlluminationModel.uniform(0.0, 0.0, 0.0, 0.0), p=1.0)  # identity jitter
    solar = _Invert()
    t = MIPairTransform(12, policy="random", flip=0.0, view_transforms=[[darken], [solar]])
    x = torch.rand(3, 3, 16, 16, generator=_gen(8))
    a, b = t(x, generator=_gen(9))
    plain_a, plain_b = MIPairTransform(12, policy="random", flip=0.0, **CLEAN)(x, generator=_gen(9))
    assert torch.allclose(a, plain_a, atol=1e-6) and torch.allclose(b, 1.0 - plain_b, atol=1e-6)
    with pytest.raises(ValueError, match="per-view lists"):
        MIPairTransform(12, view_transforms=[[darken], [solar], [solar]])
    with pytest.raises(TypeError, match="callable"):
        MIPairTransform(12, view_transforms=[[3], [solar]])


class _Invert:
    """A plain batched callable (no params): called as it is."""

    def __call__(self, x):
        return 1.0 - x


def test_a_new_perturbation_model_works_in_pairs_scored_and_rendered():
    x = torch.rand(6, 3, 32, 32, generator=_gen(10))
    t = MIPairTransform(16, perturbations=[GainModel()], flip=0.0, **CLEAN)
    views, info = t(x, generator=_gen(11), return_info=True)
    (gain,) = info.params.perturbations
    assert isinstance(gain, GainParams) and gain.gain.shape == (6, 2)
    plain = MIPairTransform(16, flip=0.0, **CLEAN).render(x, dataclasses.replace(info.params, perturbations=()))
    for v in range(2):
        assert torch.allclose(views[v], plain[v] * gain.gain[:, v].view(-1, 1, 1, 1), atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(views, t(x, params=info.params)))
    assert t.perturbation_names == ("GainModel_0",)
    with pytest.raises(TypeError, match=r"perturbations\[0\]"):
        MIPairTransform(16, perturbations=["gain"], **CLEAN)
    with pytest.raises(ValueError, match="perturbation models"):
        MIPairTransform(16, **CLEAN)(x, params=info.params)


def test_presets_render_their_recipe_with_independent_view_draws():
    x = torch.rand(64, 3, 40, 40, generator=_gen(12))
    for preset in (MIPairTransform.simclr, MIPairTransform.byol, MIPairTransform.moco_v3):
        t = preset(24)
        views, info = t(x, generator=_gen(13), return_info=True)
        assert len(views) == 2 and all(v.shape == (64, 3, 24, 24) for v in views)
        assert len(info.params.views) == 2 and all(len(p) > 0 for p in info.params.views)
        assert all(torch.equal(a, b) for a, b in zip(views, t(x, params=info.params)))
        clone = pickle.loads(pickle.dumps(t))
        assert all(torch.equal(a, b) for a, b in zip(clone(x[:4], generator=_gen(1)), t(x[:4], generator=_gen(1))))
    byol = MIPairTransform.byol(24)
    assert repr(byol.view_transforms[0]) != repr(byol.view_transforms[1])  # asymmetric blur / solarize
    assert MIPairTransform.simclr(24, policy="max").policy.name == "max"  # overrides reach the constructor


def test_replayed_params_render_on_a_new_device_or_dtype_of_the_same_batch():
    t = MIPairTransform(16, **CLEAN)
    x = torch.rand(3, 3, 32, 32, generator=_gen(14))
    views, info = t(x, generator=_gen(15), return_info=True)
    assert isinstance(info.params, PairParams)
    again = t((x * 255).round().to(torch.uint8), params=info.params)
    assert all(a.dtype == torch.uint8 and (a.float() / 255 - v).abs().max() <= 1 / 255 + 1e-3
               for a, v in zip(again, views))
    with pytest.raises(ValueError, match="leading size"):
        t(x[:2], params=info.params)


def test_the_steps_check_their_images_like_the_one_call():
    t = MIPairTransform(16, **CLEAN)
    x = torch.rand(2, 3, 32, 32)
    candidates = t.plan(x, _gen(0))
    info = t.choose(candidates, t.score(x, candidates), _gen(0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        t.score(x * 255, candidates)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        t.render(x * 255, info.params)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        t.plan(x[0], _gen(0))
    half = t.render(x.half(), info.params)  # half precision is rendered in float32
    assert all(v.dtype == torch.float32 for v in half)
    assert all((a - b).abs().max() < 1e-2 for a, b in zip(half, t.render(x, info.params)))


def test_inputs_that_require_grad_give_views_without_a_graph():
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    for t in (MIPairTransform(16), MIPairTransform.simclr(16)):
        views = t(x, generator=_gen(0))
        assert not any(v.requires_grad for v in views)
        assert all(torch.equal(a, b) for a, b in zip(views, t(x.detach(), generator=_gen(0))))
