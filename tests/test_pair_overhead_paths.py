"""The per-call paths of a pair made lean for one image at a time: each checked against a plain reference
(policy choice and keep mask from one computation, the chosen pairs' IoU, crop boxes, motion-blur kernels,
similarity matrices) and for reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from mi_augment.functional import motion_blur_kernels, similarity_matrices
from mi_augment.pairs import BoxSampler, box_iou_pairs, make_policy
from mi_augment.transforms.pair import MIPairTransform


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


POLICY_CASES = [("max", {}), ("min", {}), ("threshold", {}), ("threshold", {"drop": 0.25}), ("topk", {"k": 2}),
                ("band", {}), ("band", {"band": (0.2, 0.6)}), ("softmax", {"temperature": 0.3}), ("random", {})]


@pytest.mark.parametrize("name, options", POLICY_CASES)
@pytest.mark.parametrize("masked", [False, True])
def test_select_and_keep_is_select_and_keep_mask_with_the_same_draws(name, options, masked):
    policy = make_policy(name, **options)
    scores = torch.rand(6, 5, generator=_gen(0)).round(decimals=1)  # ties included
    mask = torch.rand(6, 5, generator=_gen(1)) < 0.7 if masked else None
    if mask is not None:
        mask[:, 0] = True
    g1, g2 = _gen(7), _gen(7)
    chosen, keep = policy.select_and_keep(scores, g1, mask=mask)
    assert torch.equal(chosen, policy.select(scores, g2, mask=mask))
    assert torch.equal(keep, policy.keep_mask(scores, mask=mask))
    assert bool(keep.gather(1, chosen[:, None]).all())  # the chosen candidate is one the policy keeps
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))  # same count of draws


def test_select_and_keep_refuses_what_select_refuses():
    with pytest.raises(ValueError, match="NaN or inf"):
        make_policy("max").select_and_keep(torch.tensor([[0.1, math.nan]]))
    with pytest.raises(ValueError, match="K >= 2"):
        make_policy("threshold").select_and_keep(torch.zeros(2, 1))


@pytest.mark.parametrize("policy", ["threshold", "max", "softmax"])
def test_choose_reports_the_policys_choice_and_the_chosen_pairs_overlap(policy):
    t = MIPairTransform(32, n_candidates=6, n_views=3, policy=policy, illumination=False, motion=False)
    x = torch.rand(4, 3, 40, 48, generator=_gen(2))
    candidates = t.plan(x, _gen(3))
    scores = t.score(x, candidates)
    info = t.choose(candidates, scores, _gen(4))
    total = scores.mean(1)
    assert torch.equal(info.chosen, t.policy.select(total, _gen(4)))
    assert torch.equal(info.keep, t.policy.keep_mask(total))
    boxes = candidates.boxes[torch.arange(4), :, info.chosen]
    assert torch.equal(info.params.boxes, boxes)
    assert torch.equal(info.iou, box_iou_pairs(boxes[:, :1], boxes[:, 1:]))
    assert torch.equal(info.candidate_iou, box_iou_pairs(candidates.boxes[:, :1], candidates.boxes[:, 1:]))


def _reference_box(u: list[float], h: int, w: int, scale, ratio, tries: int) -> list[float]:
    """One RandomResizedCrop box from its uniform numbers, in plain Python (the first try that fits; this
    reference covers draws where one does)."""
    area_img = h * w
    for i in range(tries):
        area = (scale[0] + (scale[1] - scale[0]) * u[i]) * area_img
        r = math.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[tries + i])
        bw, bh = math.sqrt(area * r), math.sqrt(area / r)
        if bw <= w and bh <= h:
            x1, y1 = (w - bw) * u[2 * tries], (h - bh) * u[2 * tries + 1]
            return [x1, y1, min(x1 + bw, w), min(y1 + bh, h)]
    raise AssertionError("no try fits")


@pytest.mark.parametrize("h, w, scale, ratio", [(32, 32, (0.08, 1.0), (3 / 4, 4 / 3)), (20, 60, (0.2, 0.9), (0.5, 3.0))])
def test_box_sampler_matches_a_per_box_reference_from_the_same_draws(h, w, scale, ratio):
    sampler = BoxSampler(scale, ratio, tries=10)
    boxes = sampler.sample((3, 2, 4), h, w, generator=_gen(5))
    u = torch.rand(24, 22, generator=_gen(5)).double().tolist()  # the draws sample() makes, in its order
    expected = torch.tensor([_reference_box(row, h, w, scale, ratio, 10) for row in u], dtype=torch.float64)
    torch.testing.assert_close(boxes.view(24, 4).double(), expected, rtol=0, atol=1e-4)


def _reference_kernel(length: float, angle: float, k: int) -> np.ndarray:
    """A streak splatted bilinearly point by point (the documented construction, one sample at a time)."""
    n = max(2, math.ceil(4 * length) + 2)
    out = np.zeros((k, k))
    c = (k - 1) / 2
    for i in range(n):
        t = i / (n - 1) - 0.5
        x, y = c + t * length * math.cos(angle), c + t * length * math.sin(angle)
        x0, y0 = math.floor(x), math.floor(y)
        fx, fy = x - x0, y - y0
        for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            if 0 <= x0 + dx < k and 0 <= y0 + dy < k:
                out[y0 + dy, x0 + dx] += wgt
    return out / out.sum()


def test_motion_blur_kernels_match_a_point_by_point_reference_and_do_not_depend_on_the_batch():
    length = torch.tensor([0.0, 0.7, 1.9, 3.3, 6.0], dtype=torch.float64)
    angle = torch.tensor([0.3, -1.2, 2.5, 0.8, 4.0], dtype=torch.float64)
    kernels = motion_blur_kernels(length, angle)
    k = kernels.shape[-1]
    assert k == 2 * (math.floor(6.0 / 2) + 1) + 1
    for i in range(5):
        ref = _reference_kernel(float(length[i]), float(angle[i]), k)
        np.testing.assert_allclose(kernels[i].numpy(), ref, atol=1e-9)
        alone = motion_blur_kernels(length[i:i + 1], angle[i:i + 1], kernel_size=k)
        assert torch.equal(alone[0], kernels[i])
    assert kernels.dtype == torch.float64
    assert motion_blur_kernels(length.float(), angle.float()).dtype == torch.float32


@pytest.mark.parametrize("length, angle, message", [([math.nan], [0.0], "finite"), ([1.0], [math.inf], "finite"),
                                                    ([-0.5], [0.0], ">= 0")])
def test_motion_blur_kernels_refuse_bad_lengths_and_angles(length, angle, message):
    with pytest.raises(ValueError, match=message):
        motion_blur_kernels(torch.tensor(length), torch.tensor(angle))


def test_similarity_matrices_are_the_composed_transform_in_the_scales_dtype():
    log_scale = torch.tensor([0.1, -0.05])
    rotation = torch.tensor([0.2, -0.4])
    translation = torch.tensor([[0.01, -0.02], [0.0, 0.03]], dtype=torch.float64)
    m = similarity_matrices(log_scale, rotation, translation, 24, 40)
    assert m.dtype == torch.float32 and m.shape == (2, 3, 3)
    cx, cy = 19.5, 11.5
    for i in range(2):
        s, a = math.exp(float(log_scale[i])), float(rotation[i])
        rot = np.array([[s * math.cos(a), -s * math.sin(a), 0], [s * math.sin(a), s * math.cos(a), 0], [0, 0, 1]])
        shift = np.array([[1, 0, cx + 40 * float(translation[i, 0])], [0, 1, cy + 40 * float(translation[i, 1])],
                          [0, 0, 1]])
        ref = shift @ rot @ np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
        np.testing.assert_allclose(m[i].double().numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("make", [lambda: MIPairTransform(32), lambda: MIPairTransform(32, policy="random"),
                                  lambda: MIPairTransform.simclr(32, blur=False),
                                  lambda: MIPairTransform.simclr(32, policy="random", blur=False)])
def test_per_image_pairs_repeat_with_the_seed_and_replay_from_their_params(make):
    t = make()
    image = Image.fromarray((np.random.default_rng(0).random((36, 40, 3)) * 255).astype(np.uint8))
    views, info = t(image, generator=_gen(11), return_info=True)
    again = t(image, generator=_gen(11))
    replayed = t(image, params=info.params)
    for a, b, c in zip(views, again, replayed):
        assert isinstance(a, Image.Image) and a.size == (32, 32)
        assert np.array_equal(np.asarray(a), np.asarray(b))
        assert np.array_equal(np.asarray(a), np.asarray(c))
