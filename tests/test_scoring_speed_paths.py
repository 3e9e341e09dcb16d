"""The one-image scoring steps' speed paths against the torch forms they stand in for.

* The uint8 backend's working luma (:func:`mi_augment.functional.uint8.working_luma`: the luma at full
  resolution, then one channel downscaled) is the torch scorer's working image of the luma bit for bit
  (:func:`mi_augment.pairs.score.working_images` of :func:`mi_augment.functional.crops.luma` of ``image / 255``),
  so the proxies, and so the scores, are the same; and that luma-first working image is the luma of the
  downscaled image (the order before) to float32 rounding.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mi_augment
from mi_augment.functional import uint8 as U
from mi_augment.functional.crops import luma
from mi_augment.pairs.score import working_images


def torch_working_luma(image: np.ndarray, proxy_size: int, min_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`~mi_augment.pairs.score.score_candidates` scores for a pixel-MI scorer and no model: the
    clamped luma of ``image / 255`` at the working resolution (clamped again after the downscale)."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with mi_augment.kernel_options(fast_paths=True):  # the kernels the torch scorer runs under
        small, factor = working_images(luma(x.clamp(0.0, 1.0)), proxy_size, min_scale)
    return small.clamp(0.0, 1.0)[0, 0].numpy(), factor.numpy()


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2 ** 31 - 1), h=st.integers(1, 300), w=st.integers(1, 300),
       channels=st.sampled_from([1, 3]), proxy_size=st.sampled_from([8, 16, 32]),
       min_scale=st.sampled_from([0.08, 0.2, 1.0]), noise=st.sampled_from([0.0, 0.3, 1.0]))
def test_working_luma_equals_the_torch_scorer_bit_for_bit(seed, h, w, channels, proxy_size, min_scale, noise):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, (1, 1, channels)) * (1 - noise)
    image = np.clip(base + noise * rng.uniform(0, 255, (h, w, channels)), 0, 255).round().astype(np.uint8)
    image[0, 0], image[-1, -1] = 255, 0  # the extreme levels
    reference, factor = torch_working_luma(image, proxy_size, min_scale)
    mine, fx, fy = U.working_luma(image, proxy_size, min_scale)
    assert mine.dtype == np.float32 and np.array_equal(mine, reference)
    assert np.array_equal(np.array([fx, fy, fx, fy], np.float32), factor)  # the box factors, as float32


def test_working_luma_of_every_colour_equals_the_torch_luma():
    # all 2 ** 24 colours in one 4096 x 4096 image; min_scale makes the working resolution 4095 x 4095
    levels = np.arange(256, dtype=np.uint8)
    image = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(4096, 4096, 3)
    reference, _ = torch_working_luma(image, 4095, 1.0)
    mine, _, _ = U.working_luma(image, 4095, 1.0)
    assert mine.shape == (4095, 4095) and np.array_equal(mine, reference)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2 ** 31 - 1), h=st.integers(40, 300), w=st.integers(40, 300))
def test_luma_first_is_the_luma_of_the_downscaled_image_to_float_rounding(seed, h, w):
    # the torch scorer takes the luma before the downscale (one channel to resample): the same quantity as the
    # luma of the downscaled image (both linear), to float32 rounding
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))
    with mi_augment.kernel_options(fast_paths=True):
        first, _ = working_images(luma(x), 32, 0.08)
        after, _ = working_images(x, 32, 0.08)
        after = luma(after)
    assert first.shape == after.shape and float((first - after).abs().max()) <= 1e-6
