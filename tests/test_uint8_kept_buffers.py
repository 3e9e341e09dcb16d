"""The uint8 backend's per-call savings keep its results.

* :func:`mi_augment.functional.uint8.proxies` writes its image and sampling grid into tensors each thread keeps
  per shape: a result is never overwritten by a later call, calls of other shapes in between, calls inside
  ``torch.inference_mode`` and calls from several threads give the proxies a fresh call gives.
* The kernels' ``check=False`` (:func:`~mi_augment.functional.uint8.resized_crop` for a one-image call's sampler
  rows, :func:`~mi_augment.functional.uint8.color_jitter` for ``ColorJitter``'s own drawn row) renders what the
  checked call renders.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mi_augment.functional import uint8 as U


def lumas_and_boxes(seed: int, side: int, k: int = 16):
    rng = np.random.default_rng(seed)
    lum = U.luma(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
    w = rng.uniform(2.0, side, (k, 2))
    x1 = rng.uniform(0.0, 1.0, (k, 2)) * (side - w)
    return lum, np.concatenate([x1, x1 + w], 1).astype(np.float32)


def test_proxies_stay_the_same_across_later_calls_shapes_modes_and_threads():
    cases = [lumas_and_boxes(seed, side) for seed, side in [(0, 32), (1, 32), (2, 57), (3, 256)]]
    fresh = [U.proxies(lum, boxes, 32).copy() for lum, boxes in cases]
    first = U.proxies(*cases[0], 32)
    later = [U.proxies(lum, boxes, 32) for lum, boxes in cases[1:]]  # same and other shapes after it
    assert np.array_equal(first, fresh[0])  # not overwritten by the calls after it
    assert all(np.array_equal(a, b) for a, b in zip(later, fresh[1:]))
    with torch.inference_mode():  # buffers made here are normal tensors: usable outside it afterwards
        inside = [U.proxies(lum, boxes, 16) for lum, boxes in cases]
    outside = [U.proxies(lum, boxes, 16) for lum, boxes in cases]
    assert all(np.array_equal(a, b) for a, b in zip(inside, outside))
    with ThreadPoolExecutor(4) as pool:  # each thread its own buffers
        threaded = list(pool.map(lambda i: U.proxies(*cases[i % 4], 32), range(64)))
    assert all(np.array_equal(t, fresh[i % 4]) for i, t in enumerate(threaded))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2 ** 31 - 1), side=st.integers(8, 80), out=st.integers(4, 48), flip=st.booleans(),
       at_multiple=st.booleans())
def test_resized_crop_unchecked_renders_what_the_checked_call_renders(seed, side, out, flip, at_multiple):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (side, side + 3, 3), dtype=np.uint8)
    w = rng.uniform(1.0, side)
    if at_multiple:  # a side at a multiple of the output side, or one float32 step above it: the supersampling edge
        w = float(np.nextafter(np.float32(min(side, out * rng.integers(1, 4))), np.float32(np.inf))
                  if rng.random() < 0.5 else min(side, out * rng.integers(1, 4)))
    x1 = float(rng.uniform(0.0, side + 3 - w))
    box = [float(v) for v in np.array([x1, 0.0, x1 + w, side], np.float32)]
    checked = U.resized_crop(image, box, (out, out + 1), flip)
    assert np.array_equal(U.resized_crop(image, box, (out, out + 1), flip, check=False), checked)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2 ** 31 - 1), factors=st.tuples(*[st.floats(0.0, 2.0)] * 3), hue=st.floats(-0.5, 0.5),
       order=st.permutations([0, 1, 2, 3]), channels=st.sampled_from([1, 3]))
def test_color_jitter_unchecked_renders_what_the_checked_call_renders(seed, factors, hue, order, channels):
    image = np.random.default_rng(seed).integers(0, 256, (9, 11, channels), dtype=np.uint8)
    checked = U.color_jitter(image, *factors, hue, order)
    assert np.array_equal(U.color_jitter(image, *factors, hue, list(order), check=False), checked)


def test_a_replayed_colour_jitter_row_is_still_checked():
    """Only a row the transform drew itself is rendered unchecked: params handed back (a replay) that no draw could
    make are refused with the argument's name, per image and in a CPU batch, as the torch path refuses them."""
    import dataclasses

    from mi_augment.transforms import MIPairTransform

    t = MIPairTransform.simclr(48)
    image = np.random.default_rng(0).integers(0, 256, (56, 56, 3), dtype=np.uint8)
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()
    for x in (image, batch):
        _, info = t(x, generator=torch.Generator().manual_seed(1), return_info=True)
        first = info.params.views[0][0]  # view 0's ColorJitter draw and gate
        bad = dataclasses.replace(first, params=dataclasses.replace(first.params, brightness=torch.tensor([-1.0])),
                                  applied=torch.tensor([True]))
        params = dataclasses.replace(info.params, views=((bad, *info.params.views[0][1:]), *info.params.views[1:]))
        with pytest.raises(ValueError, match="brightness"):
            t(x, params=params)
