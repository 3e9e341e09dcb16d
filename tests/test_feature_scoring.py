"""Feature-space scores in nats: the critic's pointwise MI, FeatureScorer, CropImageScorer, policies in pMI."""

import math

import pytest
import torch
from torch import nn

from mi_augment.pairs import (
    BandPolicy,
    CropImageScorer,
    FeatureScorer,
    MaxPolicy,
    MinPolicy,
    RandomPolicy,
    SoftmaxPolicy,
    ThresholdPolicy,
    TopKPolicy,
    check_scores,
    make_policy,
    pointwise_mi,
    scorer_input_kind,
)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------------------
# pointwise MI against a closed form: correlated Gaussians with the optimal critic
# ---------------------------------------------------------------------------------------------------------
def _gaussian_pairs(n, rho, d, generator):
    """(x, y), each (n, d): d independent pairs of standard normals with correlation rho."""
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    y = rho * x + math.sqrt(1 - rho ** 2) * torch.randn(n, d, generator=generator, dtype=torch.float64)
    return x, y


def _log_density_ratio(x, y, rho):
    """critic[i, j] = log p(y_j | x_i) / p(y_j), the optimal critic, in closed form."""
    v = 1 - rho ** 2
    sq_y = (y ** 2).sum(1)[None, :]
    sq_x = (x ** 2).sum(1)[:, None]
    return (-0.5 * x.shape[1] * math.log(v) - (sq_y - 2 * rho * x @ y.T + rho ** 2 * sq_x) / (2 * v) + sq_y / 2)


def test_pointwise_mi_matches_the_analytic_pointwise_mi_of_correlated_gaussians():
    # the batch estimate differs from the analytic log p(y_i | x_i) / p(y_i) by log mean_j r(x_i, y_j),
    # which shrinks like 1 / sqrt(B); documented tolerance at B = 2048, rho = 0.5: median |error| <= 0.03
    # nats and 99 % of the samples within 0.15 nats
    x, y = _gaussian_pairs(2048, 0.5, 1, _gen(0))
    critic = _log_density_ratio(x, y, 0.5)
    estimate = pointwise_mi(critic)
    error = (estimate - critic.diagonal()).abs()
    assert estimate.shape == (2048,)
    assert float(error.median()) <= 0.03
    assert float(error.quantile(0.99)) <= 0.15


def test_batch_mean_rises_to_the_true_mi_from_below_capped_by_log_batch():
    rho, d = 0.9, 4
    true_mi = -0.5 * d * math.log(1 - rho ** 2)  # 3.32 nats
    g = _gen(1)
    means = []
    for b in (2, 8, 32, 128, 1024):
        repeats = max(8192 // b, 4)
        estimates = []
        for _ in range(repeats):
            x, y = _gaussian_pairs(b, rho, d, g)
            estimate = pointwise_mi(_log_density_ratio(x, y, rho))
            assert float(estimate.max()) <= math.log(b) + 1e-9  # each value is capped by log B
            estimates.append(estimate)
        means.append(float(torch.cat(estimates).mean()))
    assert all(a < b for a, b in zip(means, means[1:]))
    assert all(m <= true_mi + 0.05 for m in means)
    assert means[0] > 0.9 * math.log(2)  # the cap binds at small B
    assert true_mi - means[-1] <= 0.25


def test_pointwise_mi_with_positive_columns_equals_the_diagonal_form():
    critic = torch.randn(6, 6, generator=_gen(2))
    order = torch.randperm(6, generator=_gen(3))
    shuffled = critic[:, order]  # column j of shuffled is column order[j]
    positives = torch.argsort(order)
    assert torch.allclose(pointwise_mi(shuffled, positives), pointwise_mi(critic))
    batched = torch.stack([critic, 2 * critic])
    assert torch.allclose(pointwise_mi(batched)[1], pointwise_mi(2 * critic))


def test_pointwise_mi_bad_input():
    with pytest.raises(ValueError, match="square"):
        pointwise_mi(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="positives"):
        pointwise_mi(torch.zeros(3, 4), torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match="critic"):
        pointwise_mi(torch.zeros(3))


# ---------------------------------------------------------------------------------------------------------
# FeatureScorer
# ---------------------------------------------------------------------------------------------------------
class _Counting(nn.Module):
    """Wraps a module and records the batch size of every call."""

    def __init__(self, module):
        super().__init__()
        self.module = module
        self.calls = []

    def forward(self, x):
        self.calls.append(x.shape[0])
        return self.module(x)


def _map_encoder():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1)).eval()


def _boxes(b, k, size, seed):
    g = _gen(seed)
    lo = torch.rand(b, k, 2, generator=g) * size * 0.5
    extent = (0.3 + 0.5 * torch.rand(b, k, 2, generator=g)) * size * 0.5
    return torch.cat([lo, lo + extent], 2)


def test_boxes_kind_runs_one_forward_per_image_for_all_candidates():
    encoder = _Counting(_map_encoder())
    images = torch.rand(3, 3, 24, 24, generator=_gen(4))
    scorer = FeatureScorer(encoder, temperature=0.2, input_kind="boxes")
    assert scorer_input_kind(scorer) == "boxes"
    scores = scorer(images, _boxes(3, 8, 24, 5), _boxes(3, 8, 24, 6))
    assert encoder.calls == [3]
    assert scores.shape == (3, 8) and bool(torch.isfinite(scores).all())
    assert bool((scores <= math.log(3 * 8) + 1e-5).all())


def test_boxes_kind_pools_the_box_region_of_the_feature_map():
    # identity encoder: the "feature map" is the image, so a box's feature is the mean colour inside it
    images = torch.zeros(2, 3, 16, 16)
    images[:, 0, :, :8] = 1.0  # left half red
    images[:, 1, :, 8:] = 1.0  # right half green
    left = torch.tensor([[[0.0, 0.0, 8.0, 16.0]]]).expand(2, 1, 4)
    right = torch.tensor([[[8.0, 0.0, 16.0, 16.0]]]).expand(2, 1, 4)
    scorer = FeatureScorer(nn.Identity(), temperature=1.0, input_kind="boxes")
    boxes = torch.cat([left, right], 1)
    matched = scorer(images, boxes, boxes)
    swapped = scorer(images, boxes, boxes.flip(1))
    assert bool((matched > 0.2).all()) and bool((swapped < -0.2).all())  # same colours share, swapped do not


def test_image_kind_with_feature_map_encoder_averages_the_map():
    encoder = _map_encoder()
    crops_a = torch.rand(2, 4, 3, 12, 12, generator=_gen(7))
    crops_b = torch.rand(2, 4, 3, 12, 12, generator=_gen(8))
    with_head = FeatureScorer(encoder, temperature=0.3, head=nn.Identity())(crops_a, crops_b)
    pooled = nn.Sequential(encoder, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert torch.allclose(with_head, FeatureScorer(pooled, temperature=0.3)(crops_a, crops_b), atol=1e-5)


def test_feature_scorer_head_is_applied_before_the_critic():
    encoder = _map_encoder()
    head = nn.Linear(8, 4)
    images = torch.rand(2, 3, 16, 16, generator=_gen(9))
    a, b = _boxes(2, 3, 16, 10), _boxes(2, 3, 16, 11)
    plain = FeatureScorer(encoder, input_kind="boxes")(images, a, b)
    projected = FeatureScorer(encoder, input_kind="boxes", head=head)(images, a, b)
    assert not torch.allclose(plain, projected)


def test_feature_scorer_bad_input():
    with pytest.raises(ValueError, match="feature maps"):
        FeatureScorer(nn.Sequential(nn.Flatten()), input_kind="boxes")(torch.rand(2, 3, 8, 8), _boxes(2, 2, 8, 0),
                                                                       _boxes(2, 2, 8, 1))
    with pytest.raises(ValueError, match="temperature"):
        FeatureScorer(nn.Identity(), temperature=0.0)
    with pytest.raises(ValueError, match="input_kind"):
        FeatureScorer(nn.Identity(), input_kind="luma")
    with pytest.raises(ValueError, match="B \\* K >= 2"):
        FeatureScorer(nn.Identity(), input_kind="boxes")(torch.rand(1, 3, 8, 8), _boxes(1, 1, 8, 0), _boxes(1, 1, 8, 1))
    with pytest.raises(ValueError, match="boxes"):
        FeatureScorer(nn.Identity(), input_kind="boxes")(torch.rand(2, 3, 8, 8), torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="input_kind"):
        scorer_input_kind(type("S", (), {"input_kind": "pixels"})())


def test_check_scores_names_the_problem():
    good = torch.zeros(2, 3)
    assert check_scores(good, 2, 3) is good
    with pytest.raises(ValueError, match="shape"):
        check_scores(torch.zeros(3, 2), 2, 3)
    with pytest.raises(ValueError, match="NaN or inf"):
        check_scores(torch.tensor([[0.0, math.nan, 1.0], [0.0, 0.0, math.inf]]), 2, 3)
    with pytest.raises(TypeError, match="Tensor"):
        check_scores([[0.0] * 3] * 2, 2, 3)
    with pytest.raises(ValueError, match="floating"):
        check_scores(torch.zeros(2, 3, dtype=torch.long), 2, 3)


# ---------------------------------------------------------------------------------------------------------
# CropImageScorer
# ---------------------------------------------------------------------------------------------------------
def _objects_on_grey(b=3):
    """Grey images, each with a 12 px square of its own colour at the top left."""
    images = torch.full((b, 3, 32, 32), 0.5)
    for i in range(b):
        images[i, :, :12, :12] = 0.0
        images[i, i % 3, :12, :12] = 1.0
    object_box = torch.tensor([1.0, 1.0, 11.0, 11.0])
    background_box = torch.tensor([16.0, 16.0, 30.0, 30.0])
    return images, object_box, background_box


def test_crop_image_scorer_ranks_object_crops_above_background_crops():
    images, obj, bg = _objects_on_grey()
    boxes = torch.stack([obj, bg, obj, bg])[None].expand(3, 4, 4)
    scorer = CropImageScorer(nn.Identity(), temperature=0.1)
    per_box = scorer.crop_image_mi(images, boxes)
    assert bool((per_box[:, 0] > per_box[:, 1] + 0.5).all())
    assert bool((per_box[:, 1].abs() < 0.05).all())  # grey tells nothing about which image it came from
    assert bool((per_box <= math.log(3) + 1e-5).all())


def test_crop_image_pair_score_is_the_min_of_the_two_boxes_plus_the_weighted_pair_score():
    encoder = _map_encoder()
    images = torch.rand(3, 3, 16, 16, generator=_gen(12))
    a, b = _boxes(3, 4, 16, 13), _boxes(3, 4, 16, 14)
    alone = CropImageScorer(encoder, temperature=0.2)
    expected = torch.minimum(alone.crop_image_mi(images, a), alone.crop_image_mi(images, b))
    assert torch.allclose(alone(images, a, b), expected, atol=1e-6)
    mean = CropImageScorer(encoder, temperature=0.2, reduce="mean")(images, a, b)
    assert torch.allclose(mean, (alone.crop_image_mi(images, a) + alone.crop_image_mi(images, b)) / 2, atol=1e-6)
    combined = CropImageScorer(encoder, temperature=0.2, pair_weight=0.5)(images, a, b)
    pair = FeatureScorer(encoder, temperature=0.2, input_kind="boxes")(images, a, b)
    assert torch.allclose(combined, expected + 0.5 * pair, atol=1e-5)


def test_crop_image_scorer_bad_input():
    with pytest.raises(ValueError, match="at least 2 images"):
        CropImageScorer(nn.Identity())(torch.rand(1, 3, 8, 8), _boxes(1, 2, 8, 0), _boxes(1, 2, 8, 1))
    with pytest.raises(ValueError, match="reduce"):
        CropImageScorer(nn.Identity(), reduce="max")
    with pytest.raises(ValueError, match="pair_weight"):
        CropImageScorer(nn.Identity(), pair_weight=math.nan)


# ---------------------------------------------------------------------------------------------------------
# policies in pMI units
# ---------------------------------------------------------------------------------------------------------
ALL_POLICIES = [MaxPolicy(), MinPolicy(), BandPolicy(), BandPolicy(quantiles=(0.5, 0.9)), BandPolicy(band=(-0.5, 0.5)),
                ThresholdPolicy(0.25), ThresholdPolicy(0.75), TopKPolicy(3), SoftmaxPolicy(0.5), RandomPolicy()]


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=repr)
def test_masked_policy_equals_the_policy_on_the_allowed_candidates(policy):
    scores = torch.randn(5, 9, generator=_gen(15))
    allowed = torch.tensor([0, 2, 3, 5, 6, 8])
    mask = torch.zeros(5, 9, dtype=torch.bool)
    mask[:, allowed] = True
    masked = policy.probabilities(scores, mask)
    assert torch.allclose(masked[:, allowed], policy.probabilities(scores[:, allowed]), atol=1e-6)
    assert bool((masked[:, ~mask[0]] == 0).all())
    picks = policy.select(scores, _gen(16), mask=mask)
    assert bool(mask[torch.arange(5), picks].all())


def test_topk_keeps_the_k_best():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7, 0.2]])
    assert TopKPolicy(2).keep_mask(scores).tolist() == [[False, True, False, True, False]]
    assert TopKPolicy(9).keep_mask(scores).all()
    assert make_policy("topk", k=2) == TopKPolicy(2)
    with pytest.raises(ValueError, match="k must be"):
        TopKPolicy(0)


@pytest.mark.parametrize("policy", [MaxPolicy(), MinPolicy(), BandPolicy(), ThresholdPolicy(), TopKPolicy()], ids=repr)
def test_rank_policy_refuses_a_single_candidate(policy):
    with pytest.raises(ValueError, match="K >= 2"):
        policy.select(torch.zeros(4, 1))


def test_policies_without_ranks_accept_a_single_candidate():
    for policy in (RandomPolicy(), SoftmaxPolicy(), BandPolicy(band=(0.0, 1.0))):
        assert policy.select(torch.zeros(2, 1)).tolist() == [0, 0]


def test_policy_refuses_non_finite_scores():
    with pytest.raises(ValueError, match="NaN or inf"):
        ThresholdPolicy().select(torch.tensor([[0.0, math.nan, 1.0]]))
    with pytest.raises(ValueError, match="mask allows no candidate"):
        MaxPolicy().select(torch.zeros(1, 3), mask=torch.zeros(1, 3, dtype=torch.bool))


@pytest.mark.parametrize("wrap", [lambda f: (f, torch.zeros(1)), lambda f: [f], lambda f: {"pooler_output": f}])
def test_an_encoder_returning_a_tuple_list_or_dict_is_read_at_its_first_tensor(wrap):
    """Issue 24 item 18: (features, logits) tuples and Hugging Face style dicts score like the bare features."""
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, 3, 3, 8, 8, generator=g), torch.rand(2, 3, 3, 8, 8, generator=g)
    bare = FeatureScorer(nn.Flatten())(a, b)
    wrapped = FeatureScorer(lambda x: wrap(x.flatten(1)))(a, b)
    assert torch.allclose(bare, wrapped)


def test_an_encoder_returning_no_tensor_and_meta_inputs_are_refused_clearly():
    a = torch.rand(2, 3, 3, 8, 8)
    with pytest.raises(TypeError, match="encoder must return a Tensor"):
        FeatureScorer(lambda x: "features")(a, a)
    meta = torch.empty(2, 3, 3, 8, 8, device="meta")
    with pytest.raises(ValueError, match="meta tensors"):
        FeatureScorer(nn.Flatten())(meta, meta)
