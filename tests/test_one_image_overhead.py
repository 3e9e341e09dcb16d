"""One image's per-call steps on Python numbers: the same draws and values as the tensor forms they replace.

The box sampler's few-box path (one image's boxes, on Python floats with a single torch ``exp``) returns the
tensor form's boxes bit for bit (``kernel_options(fast_paths=False)`` runs the tensor form), whatever the
bounds, including draws that the feasible-ratio clamp moves. torch's float64 ``exp`` of an element does not
depend on where it lies in the tensor (what that single ``exp`` relies on).
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mi_augment import kernel_options
from mi_augment.pairs import BoxSampler

SETTINGS = dict(max_examples=150, deadline=None)


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6), h=st.integers(1, 300), w=st.integers(1, 300),
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
@given(values=st.lists(st.floats(-700.0, 700.0), min_size=1, max_size=40), data=st.data())
def test_float64_exp_of_an_element_does_not_depend_on_its_place(values, data):
    whole = torch.tensor(values, dtype=torch.float64).exp().tolist()
    i = data.draw(st.integers(0, len(values) - 1))
    j = data.draw(st.integers(0, len(values) - 1))
    assert torch.tensor(values[i:j + 1], dtype=torch.float64).exp().tolist() == whole[i:j + 1]
    assert torch.tensor([values[i]], dtype=torch.float64).exp().tolist() == [whole[i]]
