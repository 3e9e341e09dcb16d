"""One image's per-call steps on Python numbers: the same draws and values as the tensor forms they replace.

The box sampler's few-box path (one image's boxes on Python floats: ``math.exp`` and ``math.sqrt``, or one torch
``exp`` and one ``sqrt`` where a value is too close to call) returns the tensor form's boxes bit for bit
(``kernel_options(fast_paths=False)`` runs the tensor form), whatever the bounds, including draws that the
feasible-ratio clamp moves, sides a ulp from the image's (torch's float64 ``sqrt`` is not always correctly
rounded) and draws at 0. torch's float64 ``exp`` and ``sqrt`` of an element do not depend on where it lies in the
tensor (what the single ``exp`` and ``sqrt`` calls rely on), and lie within 2 ulp / 1 ulp of ``math``'s (what
the ``math`` form's margins rely on). The plan step's flips and boxes
are one ``rand`` call on the CPU: the same numbers as the flips' and the sampler's own calls.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from mi_augment import kernel_options
from mi_augment.pairs import BoxSampler, plan_candidates
from mi_augment.transforms import MIPairTransform

SETTINGS = dict(max_examples=150, deadline=None)


@settings(**SETTINGS)
@example(seed=0, n=1, h=129, w=186, s_lo=0.9999999999999999, s_span=0.0, r_lo=1.0, r_span=1.0, tries=1)
@example(seed=3, n=16, h=64, w=64, s_lo=1.0, s_span=0.0, r_lo=1.0, r_span=0.0, tries=3)  # sides at their bounds
@example(seed=5, n=16, h=37, w=211, s_lo=0.9, s_span=0.1, r_lo=0.5, r_span=6.0, tries=10)  # tries that do not fit
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 24), h=st.integers(1, 300), w=st.integers(1, 300),
       s_lo=st.floats(0.001, 1.0), s_span=st.floats(0.0, 1.0), r_lo=st.floats(0.05, 4.0),
       r_span=st.floats(0.0, 8.0), tries=st.integers(1, 12))
def test_few_boxes_equal_the_tensor_form_exactly(seed, n, h, w, s_lo, s_span, r_lo, r_span, tries):
    sampler = BoxSampler((s_lo, min(1.0, s_lo + s_span)), (r_lo, r_lo + r_span), tries)
    fast = sampler.sample((n,), h, w, generator=torch.Generator().manual_seed(seed))
    with kernel_options(fast_paths=False):
        plain = sampler.sample((n,), h, w, generator=torch.Generator().manual_seed(seed))
    assert fast.dtype == plain.dtype == torch.float32
    assert torch.equal(fast, plain)


@settings(**SETTINGS)
@given(values=st.lists(st.floats(-700.0, 700.0), min_size=1, max_size=40), data=st.data(),
       op=st.sampled_from(["exp", "sqrt"]))
def test_float64_exp_and_sqrt_of_an_element_do_not_depend_on_its_place(values, data, op):
    if op == "sqrt":
        values = [abs(v) ** 1.7 for v in values]
    whole = getattr(torch.tensor(values, dtype=torch.float64), op)().tolist()
    i = data.draw(st.integers(0, len(values) - 1))
    j = data.draw(st.integers(0, len(values) - 1))
    assert getattr(torch.tensor(values[i:j + 1], dtype=torch.float64), op)().tolist() == whole[i:j + 1]
    assert getattr(torch.tensor([values[i]], dtype=torch.float64), op)().tolist() == [whole[i]]


@settings(**SETTINGS)
@given(x=st.floats(-30.0, 30.0))
def test_torch_float64_exp_and_sqrt_lie_within_the_math_forms_margins(x):
    """What the few-box path's ``math`` form assumes: torch's float64 ``exp`` within 2 ulp of ``math.exp`` (each within
    1 ulp of the true value), its ``sqrt`` within 1 ulp of ``math.sqrt``."""
    e = torch.tensor([x], dtype=torch.float64).exp().item()
    assert abs(e - math.exp(x)) <= 2 * math.ulp(math.exp(x))
    y = math.exp(x)
    assert abs(torch.tensor([y], dtype=torch.float64).sqrt().item() - math.sqrt(y)) <= math.ulp(math.sqrt(y))


@pytest.mark.parametrize("case", ["position at 0", "side at the image's", "no try fits"])
def test_few_boxes_too_close_to_call_by_math_are_still_the_tensor_forms(case):
    """Draws whose boxes the ``math`` form cannot vouch for (a coordinate at 0, a side at the image's; boxes clamped
    to the image) are computed with torch's ``exp`` and ``sqrt``: still the tensor form's boxes bit for bit."""
    sampler, (h, w) = BoxSampler((0.08, 1.0)), (48, 48)
    u = torch.rand(4, sampler.draws_per_box, generator=torch.Generator().manual_seed(7))
    t = sampler.tries
    if case == "position at 0":
        u[:, 2 * t:] = 0.0
    elif case == "side at the image's":
        sampler = BoxSampler((0.08, 1.0), (1.0, 1.0))  # ratio exactly 1: the full area is a box of the image's sides
        u[:, 0] = 1.0
    else:
        sampler = BoxSampler((0.9, 1.0), (3.0, 4.0))  # no try fits: every box is clamped to the image
        h, w = 20, 60
    rows = sampler.box_rows(u.view(-1).tolist(), h, w)
    with kernel_options(fast_paths=False):
        assert rows == sampler.boxes_from_uniforms(u, (4,), h, w).tolist()
    if case == "position at 0":
        assert all(r[0] == 0.0 and r[1] == 0.0 for r in rows)
    elif case == "side at the image's":
        assert all(r == [0.0, 0.0, 48.0, 48.0] for r in rows)


def test_few_boxes_of_numbers_outside_the_unit_interval_are_the_tensor_forms():
    """``box_rows`` of a caller's own numbers outside [0, 1) (a negative area draw, a huge ratio draw): the tensor
    form's values (NaN where its sqrt is of a negative number), not an error from ``math``."""
    sampler = BoxSampler((0.08, 1.0))
    u = torch.rand(2, sampler.draws_per_box, generator=torch.Generator().manual_seed(1))
    u[0, :sampler.tries] = -5.0  # every try's area negative
    u[1, sampler.tries:2 * sampler.tries] = 1e6  # every try's ratio beyond exp's range
    rows = sampler.box_rows(u.view(-1).tolist(), 32, 32)
    with kernel_options(fast_paths=False):
        reference = sampler.boxes_from_uniforms(u, (2,), 32, 32)
    assert torch.equal(torch.tensor(rows).isnan(), reference.isnan())
    assert torch.equal(torch.tensor(rows).nan_to_num(), reference.nan_to_num())


def _separate_draws(seed, b, v, k, flip, sampler, h, w):
    """The flips, then the boxes, each drawn by its own call (the draws plan_candidates documents)."""
    g = torch.Generator().manual_seed(seed)
    flips = torch.rand((b, v), generator=g) < flip
    return flips, sampler.sample((b, v, k), h, w, generator=g), torch.rand(3, generator=g)


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 3), v=st.integers(1, 4), k=st.integers(1, 9),
       flip=st.floats(0.0, 1.0), fast=st.booleans())
def test_plan_draws_the_flips_then_the_boxes(seed, b, v, k, flip, fast):
    sampler = BoxSampler((0.05, 1.0))
    g = torch.Generator().manual_seed(seed)
    with kernel_options(fast_paths=fast):
        c = plan_candidates(torch.empty(b, 3, 21, 34), sampler, v, k, flip, generator=g)
        flips, boxes, after = _separate_draws(seed, b, v, k, flip, sampler, 21, 34)
    assert torch.equal(c.flip, flips) and c.flip.dtype == torch.bool
    assert torch.equal(c.boxes, boxes)
    assert torch.equal(torch.rand(3, generator=g), after)  # the same count of draws


@pytest.mark.parametrize("b", [1, 2])  # one image's Python draws and a batch's tensor draws
def test_plan_flips_compare_in_float32_as_torch_does(b):
    """A flip probability a hair above a float32 draw (equal to it in float32): torch's comparison is False."""
    seed, v = 3, 3
    u = torch.rand((b, v), generator=torch.Generator().manual_seed(seed)).view(-1).tolist()
    for x in u:
        flip = math.nextafter(x, 1.0)
        c = plan_candidates(torch.empty(b, 3, 16, 16), BoxSampler(), v, 1, flip,
                            generator=torch.Generator().manual_seed(seed))
        assert torch.equal(c.flip, torch.tensor(u).view(b, v) < flip)


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 24), h=st.integers(1, 200), w=st.integers(1, 200),
       s_lo=st.floats(0.001, 1.0), r_lo=st.floats(0.05, 4.0), r_span=st.floats(0.0, 8.0), fast=st.booleans())
def test_box_rows_are_the_tensor_boxes(seed, n, h, w, s_lo, r_lo, r_span, fast):
    """``BoxSampler.box_rows`` (Python numbers) holds the values of ``boxes_from_uniforms``, bounds that cannot
    be met and more than 16 boxes included."""
    sampler = BoxSampler((s_lo, 1.0), (r_lo, r_lo + r_span))
    u = torch.rand(n, sampler.draws_per_box, generator=torch.Generator().manual_seed(seed))
    with kernel_options(fast_paths=fast):
        rows = sampler.box_rows(u.view(-1).tolist(), h, w)
    assert rows == sampler.boxes_from_uniforms(u, (n,), h, w).tolist()


def test_box_rows_names_a_bad_draw_count():
    with pytest.raises(ValueError, match="draws_per_box"):
        BoxSampler().box_rows([0.5] * 5, 8, 8)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), h=st.integers(1, 90), w=st.integers(1, 90), channels=st.sampled_from([1, 3]),
       kind=st.sampled_from(["numpy", "tensor", "pil"]), views=st.integers(2, 3), flip=st.floats(0.0, 1.0),
       preset=st.sampled_from(["simclr", "simclr_blur", "plain", "natural", "default"]), size=st.integers(8, 64),
       policy=st.sampled_from(["random", "max", "min", "threshold", "band", "softmax", "topk"]),
       candidates=st.integers(2, 9), strength=st.sampled_from([1.0, 0.0, 0.5, 1.7]))
def test_one_image_without_info_is_the_recorded_path(seed, h, w, channels, kind, views, flip, preset, size, policy,
                                                     candidates, strength):
    """A one-image call without ``return_info``, unscored (with or without the natural models) or scored by the
    default pixel-MI scorer without models (its draws as Python numbers, the policy on Python floats, the views
    rendered from the rows, no params built), gives the views of the same call with ``return_info=True`` (the
    plan / score / choose / render steps) bit for bit, and draws as many numbers."""
    options = dict(policy=policy, n_candidates=candidates, n_views=views, flip=flip)
    if preset == "plain":
        t = MIPairTransform(size, illumination=None, motion=None, **options)
    elif preset == "natural":
        t = MIPairTransform(size, illumination="default", motion="default", view_transforms=None,
                            illumination_strength=strength, motion_strength=2.0 - strength, **options)
    elif preset == "default":
        t = MIPairTransform(size, **options)
    else:
        t = MIPairTransform.simclr(size, blur=preset == "simclr_blur", **options)
    array = np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)
    image = {"numpy": array, "tensor": torch.from_numpy(array).permute(2, 0, 1).contiguous(),
             "pil": Image.fromarray(array[:, :, 0] if channels == 1 else array)}[kind]
    g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    lean = t(image, generator=g1)
    recorded, _ = t(image, generator=g2, return_info=True)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(lean, recorded))
    assert torch.equal(g1.get_state(), g2.get_state())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), views=st.integers(2, 3), k=st.integers(1, 9), flip=st.floats(0.0, 1.0),
       h=st.integers(1, 80), w=st.integers(1, 80))
def test_numbers_drawn_beforehand_give_the_steps_own_draws(seed, views, k, flip, h, w):
    """The lean call's single ``rand``: the plan's flips and boxes from their numbers
    (``one_image_from_uniforms``) and the pipelines from theirs (``run_view_pipelines_uint8(uniforms=)``) are what
    ``draw_one_image`` and the pipelines' own draw give, from the same generator state."""
    from mi_augment.pairs.one_image import pipeline_draws, run_view_pipelines_uint8
    from mi_augment.pairs.plan import draw_one_image, one_image_draws, one_image_from_uniforms

    sampler = BoxSampler()
    t = MIPairTransform.simclr(16, n_views=views)
    n_box, n_pipe = one_image_draws(sampler, views, k), pipeline_draws(t.view_transforms)
    u = torch.rand(n_box + n_pipe, generator=torch.Generator().manual_seed(seed)).tolist()
    g = torch.Generator().manual_seed(seed)
    assert one_image_from_uniforms(sampler, views, flip, h, w, u[:n_box]) == draw_one_image(sampler, views, k, flip,
                                                                                              h, w, g)
    images = [np.random.default_rng(seed + v).integers(0, 256, (16, 16, 3), dtype=np.uint8) for v in range(views)]
    mine, _ = run_view_pipelines_uint8(images, t.view_transforms, record=False, uniforms=u[n_box:])
    theirs, _ = run_view_pipelines_uint8(images, t.view_transforms, generator=g, record=False)
    assert all(np.array_equal(a, b) for a, b in zip(mine, theirs))


def test_numbers_drawn_beforehand_must_be_the_pipelines_count():
    from mi_augment.pairs.one_image import pipeline_draws, run_view_pipelines_uint8

    t = MIPairTransform.simclr(16)
    images = [np.zeros((16, 16, 3), np.uint8)] * 2
    with pytest.raises(ValueError, match=f"uniforms must hold the pipelines' {pipeline_draws(t.view_transforms)}"):
        run_view_pipelines_uint8(images, t.view_transforms, record=False, uniforms=[0.5] * 3)
