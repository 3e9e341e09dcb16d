"""The natural models' per-image speed paths (issue 23) against the forms they stand in for, through public
functions: each fast form outside ``kernel_options(fast_paths=False)`` and its reference inside it.

* The shaded illumination given the field's root encodes the values at or below the sRGB knee one by one from
  the bright branch (``x = (b / 1.055) ** 2.4``) instead of from a second image of the linear value: the same
  levels above the dark side (bit for bit), within 1 level on it (float32 rounding ties; levels <= 11).
* The illumination followed by the motion blur in a pair (``apply_illumination``'s ``blur``) blurs the float
  values and rounds once, as the torch kernels' float chain: within 1 level of blurring the rounded output,
  which rounds twice.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mi_augment import kernel_options
from mi_augment.functional import uint8
from mi_augment.functional.geometry import motion_blur_kernel, motion_blur_kernel_size
from mi_augment.functional.shading import shading_fields

SETTINGS = dict(max_examples=60, deadline=None, derandomize=True)


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), height=st.integers(1, 40), width=st.integers(1, 40),
       channels=st.sampled_from([1, 3]), dark_share=st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0]),
       log_gain=st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3), log_gamma=st.floats(-0.8, 0.8),
       shading=st.lists(st.floats(-0.8, 0.8), min_size=5, max_size=5))
def test_shaded_dark_side_one_by_one_is_the_dense_encoding(seed, height, width, channels, dark_share, log_gain,
                                                          log_gamma, shading):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    dark = rng.random((height, width, channels)) < dark_share  # levels near the knee (and black)
    image[dark] = rng.integers(0, 24, int(dark.sum()), dtype=np.uint8)
    root = shading_fields([[v / 2.4 for v in shading]], height, width)[0]
    fast = uint8.apply_illumination(image, log_gain, log_gamma, shading, field_root=root)
    with kernel_options(fast_paths=False):
        dense = uint8.apply_illumination(image, log_gain, log_gamma, shading, field_root=root)
    assert fast.shape == dense.shape == image.shape and fast.dtype == np.uint8
    d = np.abs(fast.astype(np.int16) - dense)
    assert d.max(initial=0) <= 1
    assert (dense[d > 0] <= 11).all()  # only on the dark side, where both forms round the same float near a tie


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), height=st.integers(1, 40), width=st.integers(1, 40),
       channels=st.sampled_from([1, 3]), length=st.floats(0.0, 9.0), angle=st.floats(-4.0, 4.0),
       log_gain=st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3), log_gamma=st.floats(-0.8, 0.8),
       shaded=st.booleans(), shading=st.lists(st.floats(-0.8, 0.8), min_size=5, max_size=5))
def test_illumination_with_its_blur_is_the_blur_of_its_output(seed, height, width, channels, length, angle,
                                                              log_gain, log_gamma, shaded, shading):
    """``apply_illumination(..., blur=kernel)`` (the pair renderer's illumination then motion blur: blurred on the
    float values, rounded once) is ``motion_blur`` of the rounded output within 1 level (that rounds twice)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    shading = shading if shaded else [0.0] * 5
    k = motion_blur_kernel_size(length)
    kernel = np.array(motion_blur_kernel(length, angle, k), np.float32).reshape(k, k)
    root = shading_fields([[v / 2.4 for v in shading]], height, width)[0]
    fused = uint8.apply_illumination(image, log_gain, log_gamma, shading, None, root, blur=kernel)
    apart = uint8.motion_blur(uint8.apply_illumination(image, log_gain, log_gamma, shading, None, root), length,
                              angle, kernel=kernel)
    assert fused.shape == apart.shape == image.shape and fused.dtype == np.uint8
    assert int(np.abs(fused.astype(np.int16) - apart).max(initial=0)) <= 1
