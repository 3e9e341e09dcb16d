"""``functional.uint8.block_mean``: every factor's OpenCV call gives each block's mean rounded to a nearest level."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mi_augment.functional.uint8 import block_mean


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rows=st.integers(1, 3), cols=st.integers(1, 3), h=st.integers(1, 9),
       w=st.integers(1, 9), c=st.sampled_from([1, 3]))
def test_block_mean_is_each_blocks_mean_rounded(seed, rows, cols, h, w, c):
    image = np.random.default_rng(seed).integers(0, 256, (h * rows, w * cols, c), dtype=np.uint8)
    out = block_mean(image, rows, cols)
    exact = image.astype(np.float64).reshape(h, rows, w, cols, c).mean(axis=(1, 3))
    assert out.shape == (h, w, c) and out.dtype == np.uint8
    assert np.abs(out - exact).max() <= 0.5 + 1e-3  # a nearest level: ties may round either way


def test_block_mean_rejects_blocks_that_do_not_tile_the_image():
    with pytest.raises(ValueError, match="blocks"):
        block_mean(np.zeros((5, 4, 3), np.uint8), 2, 1)
    with pytest.raises(ValueError, match="rows and cols"):
        block_mean(np.zeros((4, 4, 3), np.uint8), 0, 1)
