"""One image's score and choose steps against the torch forms they stand in for.

* The uint8 backend's luma (per-level tables) is the scorer's :func:`mi_augment.functional.crops.luma` of
  ``image / 255`` bit for bit.
* Its proxies (:func:`mi_augment.functional.uint8.proxies`) are
  :func:`~mi_augment.functional.crops.pyramid_crop` bit for bit, and its histogram MI (count tables and a
  ``c log c`` table) is :func:`mi_augment.mi.histogram_mi` within 1e-9 nats on float64 samples.
* A policy's one-image form on Python floats (:meth:`~mi_augment.pairs.Policy.select_one`, which
  :func:`~mi_augment.pairs.choose_candidate` uses for one CPU image) gives exactly the probabilities, the
  uniform draw and the choice of its tensor form (:meth:`~mi_augment.pairs.Policy.select_and_keep`).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mi_augment
from mi_augment import mi
from mi_augment.functional import uint8 as U
from mi_augment.functional.crops import luma, pyramid_crop
from mi_augment.pairs import BoxSampler, choose_candidate, make_policy, plan_candidates


def boxes_in(rng: np.random.Generator, k: int, h: int, w: int) -> np.ndarray:
    """``k`` random float32 boxes ``(x1, y1, x2, y2)`` inside a ``h x w`` image, at least 1 px wide."""
    bw = rng.uniform(1.0, w, k)
    bh = rng.uniform(1.0, h, k)
    x1, y1 = rng.uniform(0.0, 1.0, k) * (w - bw), rng.uniform(0.0, 1.0, k) * (h - bh)
    return np.stack([x1, y1, x1 + bw, y1 + bh], 1).astype(np.float32)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2 ** 31 - 1), h=st.integers(1, 64), w=st.integers(1, 64), channels=st.sampled_from([1, 3]))
def test_luma_equals_the_torch_kernel_bit_for_bit(seed, h, w, channels):
    image = np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)
    image[0, 0] = 255  # the extreme levels
    image[-1, -1] = 0
    reference = luma(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)[0, 0].numpy()
    mine = U.luma(image)
    assert mine.dtype == np.float32 and np.array_equal(mine, reference)


def test_luma_of_every_red_green_pair_equals_the_torch_kernel():
    grid = np.stack(np.meshgrid(*[np.arange(256, dtype=np.uint8)] * 2, indexing="ij"), -1)
    for blue in (0, 1, 77, 128, 254, 255):
        rgb = np.concatenate([grid, np.full((256, 256, 1), blue, np.uint8)], 2)
        reference = luma(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)[0, 0].numpy()
        assert np.array_equal(U.luma(rgb), reference)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2 ** 31 - 1), h=st.integers(1, 150), w=st.integers(1, 150), k=st.integers(1, 16),
       proxy_size=st.sampled_from([4, 8, 16, 32]), noise=st.sampled_from([0.0, 0.2, 1.0]))
def test_proxies_equal_pyramid_crop_bit_for_bit(seed, h, w, k, proxy_size, noise):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, (1, 1, 3)) * (1 - noise)
    image = np.clip(base + noise * rng.uniform(0, 255, (h, w, 3)), 0, 255).round().astype(np.uint8)
    lum = U.luma(image)
    boxes = boxes_in(rng, k, h, w)
    with mi_augment.kernel_options(fast_paths=True):  # the kernels the torch scorer renders proxies with
        reference = pyramid_crop(torch.from_numpy(np.ascontiguousarray(lum))[None, None],
                                 torch.from_numpy(boxes)[None], proxy_size)
    mine = U.proxies(lum, boxes, proxy_size)
    assert mine.dtype == np.float32 and mine.shape == (k, proxy_size ** 2)
    assert np.array_equal(mine, reference.reshape(k, -1).numpy())


@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2 ** 31 - 1), problems=st.integers(1, 9), n=st.integers(2, 300), bins=st.integers(2, 20),
       levels=st.sampled_from([0, 3, 17]), spill=st.booleans())
def test_histogram_mi_matches_the_estimator(seed, problems, n, bins, levels, spill):
    """Continuous or few-valued samples (ties, values on bin edges), some outside [0, 1] (the edge bins)."""
    rng = np.random.default_rng(seed)
    lo, hi = (-0.3, 1.3) if spill else (0.0, 1.0)
    x = rng.uniform(lo, hi, (problems, n))
    y = 0.5 * x + 0.5 * rng.uniform(lo, hi, (problems, n))
    if levels:
        x, y = np.round(x * levels) / levels, np.round(y * levels) / levels
    reference = mi.histogram_mi(torch.from_numpy(x), torch.from_numpy(y), bins, range=(0, 1)).numpy()
    np.testing.assert_allclose(U.histogram_mi(x, y, bins), reference, rtol=0, atol=1e-9)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    reference32 = mi.histogram_mi(torch.from_numpy(x32), torch.from_numpy(y32), bins, range=(0, 1)).numpy()
    np.testing.assert_allclose(U.histogram_mi(x32, y32, bins), reference32, rtol=0, atol=1e-5)


POLICY_OPTIONS = st.one_of(
    st.tuples(st.just("max"), st.just({})), st.tuples(st.just("min"), st.just({})),
    st.tuples(st.just("random"), st.just({})),
    st.tuples(st.just("threshold"), st.fixed_dictionaries({"drop": st.floats(0.0, 0.99)})),
    st.tuples(st.just("topk"), st.fixed_dictionaries({"k": st.integers(1, 12)})),
    st.tuples(st.just("softmax"), st.fixed_dictionaries({"temperature": st.floats(0.01, 10.0)})),
    st.tuples(st.just("band"), st.fixed_dictionaries({"quantiles": st.tuples(st.floats(0, 0.5), st.floats(0.5, 1))})),
    st.tuples(st.just("band"), st.fixed_dictionaries({"band": st.tuples(st.floats(0, 1), st.floats(1, 3))})),
)
# scores from a few values (ties, as flat crops give) or any floats, some not float32-representable
SCORES = st.one_of(st.lists(st.sampled_from([0.0, 0.25, 1.0 / 3.0, 1.5, 2.0]), min_size=1, max_size=12),
                   st.lists(st.floats(-5.0, 5.0, allow_nan=False), min_size=1, max_size=12))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(policy=POLICY_OPTIONS, scores=SCORES, seed=st.integers(0, 2 ** 31 - 1))
def test_policy_one_image_form_equals_its_tensor_form(policy, scores, seed):
    p = make_policy(policy[0], **policy[1])
    row = torch.tensor([scores])
    try:
        reference = p.probabilities(row)
    except ValueError as error:
        with pytest.raises(ValueError, match=str(error)[:30]):
            p.probabilities_one(scores)
        return
    assert p.probabilities_one(scores) == reference[0].tolist()
    g_one, g_tensor = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    index, keep = p.select_one(scores, g_one)
    chosen, keep_tensor = p.select_and_keep(row, g_tensor)
    assert index == int(chosen[0]) and keep == keep_tensor[0].tolist()
    assert torch.equal(g_one.get_state(), g_tensor.get_state())  # one uniform number each


@settings(max_examples=60, deadline=None, derandomize=True)
@given(policy=POLICY_OPTIONS, seed=st.integers(0, 2 ** 31 - 1), k=st.integers(2, 10), views=st.integers(2, 3),
       ties=st.booleans())
def test_choose_candidate_for_one_image_equals_the_policy_tensor_form(policy, seed, k, views, ties):
    p = make_policy(policy[0], **policy[1])
    g = torch.Generator().manual_seed(seed)
    candidates = plan_candidates(torch.rand(1, 3, 40, 48, generator=g), BoxSampler(), views, k, 0.5, generator=g)
    scores = torch.rand(1, views - 1, k, generator=g)
    if ties:
        scores = (scores * 3).round() / 3
    info = choose_candidate(candidates, p, scores, torch.Generator().manual_seed(seed))
    total = scores.mean(1)
    chosen, keep = p.select_and_keep(total, torch.Generator().manual_seed(seed))
    assert torch.equal(info.chosen, chosen) and torch.equal(info.keep, keep)
    assert torch.equal(info.chosen_score, total.gather(1, chosen[:, None])[:, 0])
    assert torch.equal(info.params.boxes, candidates.boxes[0, :, int(chosen[0])][None])
    assert info.params.boxes.is_contiguous() and torch.equal(info.params.flip, candidates.flip)


def test_a_subclass_that_overrides_the_tensor_form_chooses_by_it_for_one_image():
    """The Python form stands for the class that defines it: a subclass's own ``_probabilities`` decides."""
    from dataclasses import dataclass

    from mi_augment.pairs import ThresholdPolicy

    @dataclass(frozen=True)
    class LastPolicy(ThresholdPolicy):
        def _probabilities(self, scores, mask):
            out = torch.zeros_like(scores)
            out[:, -1] = 1.0
            return out

    g = torch.Generator().manual_seed(0)
    candidates = plan_candidates(torch.rand(1, 3, 32, 32, generator=g), BoxSampler(), 2, 5, 0.5, generator=g)
    info = choose_candidate(candidates, LastPolicy(), torch.rand(1, 1, 5, generator=g), g)
    assert int(info.chosen[0]) == 4 and info.keep[0].tolist() == [False] * 4 + [True]
    assert LastPolicy().probabilities_one([0.3, 0.1, 0.2]) == [0.0, 0.0, 1.0]
    # its own tensor form draws its number: it takes none drawn beforehand, and says so
    assert not LastPolicy().takes_drawn_uniform and ThresholdPolicy().takes_drawn_uniform
    with pytest.raises(ValueError, match="draws its own number"):
        LastPolicy().select_one([0.3, 0.1, 0.2], g, u=0.5)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(policy=POLICY_OPTIONS, scores=st.lists(st.floats(-5.0, 5.0, allow_nan=False), min_size=2, max_size=12),
       seed=st.integers(0, 2 ** 31 - 1))
def test_select_one_with_its_number_drawn_beforehand_chooses_the_same(policy, scores, seed):
    """``select_one(u=)`` (the lean one-image call draws the policy's number with the boxes' in one ``rand``
    call) chooses what ``select_one`` drawing that number itself does."""
    p = make_policy(policy[0], **policy[1])
    u = float(torch.rand((1, 1), generator=torch.Generator().manual_seed(seed)))
    if not p.takes_drawn_uniform:  # no Python form (softmax): its tensor form draws, the lean call lets it
        with pytest.raises(ValueError, match="draws its own number"):
            p.select_one(scores, u=u)
        return
    assert p.select_one(scores, u=u) == p.select_one(scores, torch.Generator().manual_seed(seed))
