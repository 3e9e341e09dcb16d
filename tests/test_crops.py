"""Crop sampler, crop kernel, policies and scorers (mi_augment.pairs, mi_augment.functional.crops)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mi_augment.functional.crops import luma, resized_crop
from mi_augment.pairs import (
    POLICIES,
    BandPolicy,
    BoxSampler,
    FeatureScorer,
    MaxPolicy,
    MinPolicy,
    RandomPolicy,
    SoftmaxPolicy,
    ThresholdPolicy,
    box_iou_pairs,
    make_policy,
    render_proxies,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _feasible(scale, ratio, h, w) -> bool:
    """Whether some box of the image meets the bounds (the condition the sampler's projection uses)."""
    lo_area = scale[0] * h * w
    return max(ratio[0], lo_area / h**2) <= min(ratio[1], w**2 / lo_area) * (1 + 1e-9)


# ---------------------------------------------------------------------------------------------------------
# sampler
# ---------------------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 300), w=st.integers(1, 300),
    s_lo=st.floats(0.01, 1.0), s_span=st.floats(0.0, 1.0),
    r_lo=st.floats(0.2, 3.0), r_span=st.floats(1.0, 4.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_sampler_boxes_inside_and_within_bounds(h, w, s_lo, s_span, r_lo, r_span, seed):
    scale = (s_lo, s_lo + (1.0 - s_lo) * s_span)
    ratio = (r_lo, r_lo * r_span)
    boxes = BoxSampler(scale, ratio).sample((6, 5), h, w, generator=_gen(seed)).double()
    assert boxes.shape == (6, 5, 4)
    x1, y1, x2, y2 = boxes.unbind(-1)
    assert bool((x1 >= 0).all() and (y1 >= 0).all() and (x2 <= w).all() and (y2 <= h).all())
    assert bool((x2 > x1).all() and (y2 > y1).all())
    if _feasible(scale, ratio, h, w):
        area = (x2 - x1) * (y2 - y1) / (h * w)
        r = (x2 - x1) / (y2 - y1)
        assert bool((area >= scale[0] * (1 - 1e-4)).all() and (area <= scale[1] * (1 + 1e-4)).all()), area
        assert bool((r >= ratio[0] * (1 - 1e-4)).all() and (r <= ratio[1] * (1 + 1e-4)).all()), r


def test_sampler_infeasible_bounds_fall_back_to_largest_box():
    # a 1:1 box of the whole area cannot fit a 40x80 image: largest box with the closest ratio, inside
    boxes = BoxSampler((1.0, 1.0), (1.0, 1.0)).sample((10,), 40, 80, generator=_gen(0))
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    assert torch.allclose(w, torch.full_like(w, 40.0)) and torch.allclose(h, torch.full_like(h, 40.0))
    assert bool((boxes[:, 2] <= 80).all())


def test_sampler_matches_torchvision_distribution():
    """Area fraction and log-ratio moments agree with torchvision's RandomResizedCrop.get_params."""
    from torchvision.transforms import RandomResizedCrop

    torch.manual_seed(0)
    img = torch.zeros(3, 120, 160)
    tv = torch.tensor([RandomResizedCrop.get_params(img, (0.08, 1.0), (3 / 4, 4 / 3)) for _ in range(3000)],
                      dtype=torch.float64)
    tv_area = tv[:, 2] * tv[:, 3] / (120 * 160)
    ours = BoxSampler().sample((3000,), 120, 160, generator=_gen(1)).double()
    ow, oh = ours[:, 2] - ours[:, 0], ours[:, 3] - ours[:, 1]
    assert abs(float((ow * oh / (120 * 160)).mean() - tv_area.mean())) < 0.02
    assert abs(float((ow / oh).log().mean() - (tv[:, 3] / tv[:, 2]).log().mean())) < 0.03
    centre_x = (ours[:, 0] + ours[:, 2]) / 2
    assert abs(float(centre_x.mean()) - 80.0) < 3.0


def test_sampler_uses_a_fixed_number_of_draws():
    """Vectorised: one call, and the generator advances by the same amount whatever was accepted."""
    g1, g2 = _gen(5), _gen(5)
    BoxSampler((0.9, 1.0), (0.2, 5.0)).sample((4, 3), 20, 200, generator=g1)  # many rejections
    BoxSampler().sample((4, 3), 200, 200, generator=g2)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


def test_sampler_same_seed_same_boxes_and_argument_errors():
    s = BoxSampler()
    assert torch.equal(s.sample((3,), 50, 60, generator=_gen(2)), s.sample((3,), 50, 60, generator=_gen(2)))
    with pytest.raises(ValueError, match="scale"):
        BoxSampler(scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="scale"):
        BoxSampler(scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="ratio"):
        BoxSampler(ratio=(2.0, 1.0))
    with pytest.raises(ValueError, match="height"):
        s.sample((3,), 0, 10)


def test_box_iou_pairs():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 0.0, 3.0, 2.0], [2.0, 2.0, 3.0, 3.0]])
    assert torch.allclose(box_iou_pairs(a, b), torch.tensor([2.0 / 6.0, 0.0]))


# ---------------------------------------------------------------------------------------------------------
# crop kernel
# ---------------------------------------------------------------------------------------------------------
def test_resized_crop_whole_box_is_identity_and_integer_box_is_a_slice():
    x = torch.rand(2, 3, 10, 12, generator=_gen(0))
    whole = torch.tensor([[0.0, 0.0, 12.0, 10.0]] * 2)
    assert torch.allclose(resized_crop(x, whole, (10, 12)), x, atol=1e-6)
    box = torch.tensor([[2.0, 3.0, 7.0, 9.0], [0.0, 1.0, 5.0, 7.0]])
    out = resized_crop(x, box, (6, 5))
    assert torch.allclose(out[0], x[0, :, 3:9, 2:7], atol=1e-6)
    assert torch.allclose(out[1], x[1, :, 1:7, 0:5], atol=1e-6)


def test_resized_crop_flip_and_candidate_layout():
    x = torch.rand(2, 1, 16, 16, generator=_gen(1))
    boxes = BoxSampler().sample((2, 3), 16, 16, generator=_gen(2))
    flip = torch.tensor([[True, False, True], [False, False, True]])
    plain = resized_crop(x, boxes, 8)
    flipped = resized_crop(x, boxes, 8, flip=flip)
    assert plain.shape == (2, 3, 1, 8, 8)
    for i in range(2):
        for k in range(3):
            expect = plain[i, k].flip(-1) if flip[i, k] else plain[i, k]
            assert torch.equal(flipped[i, k], expect)
            single = resized_crop(x[i:i + 1], boxes[i, k][None], 8)
            assert torch.allclose(single[0], plain[i, k], atol=1e-6)


def test_resized_crop_antialiases_when_shrinking_and_checks_input():
    # a one-pixel checkerboard shrunk 8x averages to grey instead of aliasing to black or white
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    board = ((xx + yy) % 2).float()[None, None]
    out = resized_crop(board, torch.tensor([[0.0, 0.0, 64.0, 64.0]]), 8)
    assert torch.allclose(out, torch.full_like(out, 0.5), atol=0.05)
    with pytest.raises(ValueError, match="boxes"):
        resized_crop(board, torch.zeros(2, 4), 8)
    with pytest.raises(TypeError, match="float"):
        resized_crop(board.to(torch.uint8), torch.zeros(1, 4), 8)


def test_luma():
    rgb = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert torch.allclose(luma(rgb), torch.full((1, 1, 2, 2), 0.299))
    gray = torch.rand(1, 1, 2, 2)
    assert luma(gray) is gray


# ---------------------------------------------------------------------------------------------------------
# policies
# ---------------------------------------------------------------------------------------------------------
SCORES = torch.tensor([[0.1, 0.5, 0.3, 0.9, 0.2, 0.7, 0.4, 0.6],
                       [1.0, 0.0, 2.0, 3.0, 0.5, 0.5, 0.5, 0.5]])


def test_max_min_policies_pick_the_extremes():
    assert torch.equal(MaxPolicy().select(SCORES, _gen(0)), torch.tensor([3, 3]))
    assert torch.equal(MinPolicy().select(SCORES, _gen(0)), torch.tensor([0, 1]))


def test_threshold_policy_keeps_the_top_fraction_uniformly():
    p = ThresholdPolicy(drop=0.5).probabilities(SCORES)
    assert torch.allclose(p.sum(1), torch.ones(2))
    kept = p > 0
    # row 0: the top four; row 1: the four 0.5s tie with the highest dropped score, so all four go
    assert kept.sum(1).tolist() == [4, 3]
    assert kept[1].tolist() == [True, False, True, True, False, False, False, False]
    all_tied = ThresholdPolicy(drop=0.5).keep_mask(torch.zeros(1, 8))
    assert bool(all_tied.all())  # never drops everything
    assert kept[0].tolist() == [False, True, False, True, False, True, False, True]
    # selection frequencies over many draws: uniform over the kept four
    scores = SCORES[:1].expand(4000, -1)
    idx = ThresholdPolicy(drop=0.5).select(scores, _gen(1))
    counts = torch.bincount(idx, minlength=8).float() / 4000
    assert torch.allclose(counts[[1, 3, 5, 7]], torch.full((4,), 0.25), atol=0.03)
    assert float(counts[[0, 2, 4, 6]].sum()) == 0.0
    assert (ThresholdPolicy(drop=0.99).keep_mask(SCORES).sum(1) == 1).all()  # never drops everything


def test_band_policy_absolute_and_quantiles():
    p = BandPolicy(band=(0.25, 0.65)).keep_mask(SCORES)
    assert p[0].tolist() == [False, True, True, False, False, False, True, True]
    assert p[1].tolist() == [False, False, False, False, True, True, True, True]
    # nothing in the band: the closest candidate
    far = BandPolicy(band=(5.0, 6.0)).keep_mask(SCORES)
    assert far.sum(1).tolist() == [1, 1] and far[0, 3] and far[1, 3]
    q = BandPolicy(quantiles=(0.25, 0.75))
    keep = q.keep_mask(SCORES[:1])
    lo, hi = torch.quantile(SCORES[0], torch.tensor([0.25, 0.75]))
    assert torch.equal(keep[0], (SCORES[0] >= lo) & (SCORES[0] <= hi))
    idx = q.select(SCORES[:1].expand(500, -1), _gen(3))
    assert bool(((SCORES[0, idx] >= lo) & (SCORES[0, idx] <= hi)).all())


def test_softmax_and_random_policies():
    p = SoftmaxPolicy(temperature=0.5).probabilities(SCORES)
    assert torch.allclose(p, torch.softmax(SCORES / 0.5, 1))
    cold = SoftmaxPolicy(temperature=1e-3).select(SCORES, _gen(0))
    assert torch.equal(cold, torch.tensor([3, 3]))
    r = RandomPolicy()
    assert not r.needs_scores
    assert torch.allclose(r.probabilities(SCORES), torch.full_like(SCORES, 1 / 8))


def test_policy_selection_is_seeded_and_draws_one_number_per_image():
    for name in POLICIES:
        pol = make_policy(name)
        g1, g2 = _gen(7), _gen(7)
        assert torch.equal(pol.select(SCORES, g1), pol.select(SCORES, g2))
        g3 = _gen(7)
        torch.rand((2, 1), generator=g3)
        assert torch.equal(torch.rand(2, generator=g1), torch.rand(2, generator=g3)), name


def test_policy_argument_errors():
    with pytest.raises(ValueError, match="policy must be one of"):
        make_policy("best")
    with pytest.raises(ValueError, match="takes options"):
        make_policy("max", drop=0.5)
    with pytest.raises(ValueError, match="drop"):
        ThresholdPolicy(drop=1.0)
    with pytest.raises(ValueError, match="temperature"):
        SoftmaxPolicy(temperature=0.0)
    with pytest.raises(ValueError, match="not both"):
        BandPolicy(band=(0.1, 0.2), quantiles=(0.1, 0.9))
    with pytest.raises(ValueError, match="quantiles"):
        BandPolicy(quantiles=(0.5, 1.5))
    with pytest.raises(ValueError, match="band"):
        BandPolicy(band=(0.3, 0.1))
    with pytest.raises(ValueError, match="ready-made"):
        make_policy(MaxPolicy(), drop=0.1)
    assert make_policy("band", band=(0.1, 0.2)) == BandPolicy(band=(0.1, 0.2))


# ---------------------------------------------------------------------------------------------------------
# scoring plumbing
# ---------------------------------------------------------------------------------------------------------
def test_render_proxies_shapes_are_aligned_grids():
    x = torch.rand(2, 3, 40, 50, generator=_gen(0))
    boxes = BoxSampler().sample((2, 4), 40, 50, generator=_gen(1))
    lum = render_proxies(x, boxes, 16, "luma")
    img = render_proxies(x, boxes, 16, "image")
    assert lum.shape == (2, 4, 256) and img.shape == (2, 4, 3, 16, 16)
    assert torch.allclose(lum.view(2, 4, 16, 16), luma(img.flatten(0, 1)).view(2, 4, 16, 16), atol=1e-5)


def test_feature_scorer_is_pointwise_mi_of_the_cosine_critic():
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(2)).eval()
    scorer = FeatureScorer(encoder, temperature=0.5, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    a = torch.rand(2, 3, 3, 8, 8)
    b = torch.rand(2, 3, 3, 8, 8)
    s = scorer(a, b)
    feats = encoder((torch.cat([a.flatten(0, 1), b.flatten(0, 1)]) - 0.5) / 0.25).mean((2, 3))
    fa, fb = torch.nn.functional.normalize(feats, dim=1).split(6)
    critic = fa @ fb.T / 0.5
    expected = critic.diagonal() - (critic.logsumexp(1) - math.log(6))
    assert torch.allclose(s, expected.view(2, 3), atol=1e-5)
    assert bool((s <= math.log(6) + 1e-5).all())
    grey = FeatureScorer(encoder, channels=3)(a[:, :, :1], b[:, :, :1])
    assert torch.allclose(grey, FeatureScorer(encoder)(a[:, :, :1].expand_as(a), b[:, :, :1].expand_as(b)))
