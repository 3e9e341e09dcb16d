"""Issue 24 item 11: the shading basis cache is bounded by bytes, and large bases are built a block at a time."""

import numpy as np
import torch
from numpy.polynomial import legendre

from mi_augment.functional import shading


def _reference_term(i: int, j: int, height: int, width: int, rows: slice) -> np.ndarray:
    u = (np.arange(width) + 0.5) * (2.0 / width) - 1.0
    v = (np.arange(height)[rows] + 0.5) * (2.0 / height) - 1.0
    return legendre.legval(v, [0] * j + [1])[:, None] * legendre.legval(u, [0] * i + [1])[None, :]


def test_a_wide_basis_built_in_row_blocks_matches_the_legendre_products():
    # 40000 px wide: a float64 block of 32 MiB holds ~100 rows, so 300 rows take three blocks
    height, width = 300, 40000
    basis = shading.shading_basis(height, width, 1)
    assert basis.shape == (2, height, width) and basis.dtype == torch.float32
    for rows in (slice(0, 3), slice(95, 115), slice(200, 215), slice(297, 300)):
        for k, (i, j) in enumerate([(1, 0), (0, 1)]):  # u then v, as documented
            expected = _reference_term(i, j, height, width, rows)
            assert np.abs(basis[k, rows].numpy() - expected).max() < 1e-6


def test_the_cache_stays_within_its_byte_bound_over_many_large_sizes():
    for k in range(6):  # 60 MB each at degree 2: an unbounded cache would hold 360 MB
        shading.shading_basis(1500 + k, 2000, 2)
    assert 0 < shading.shading_cache_bytes() <= shading.SHADING_CACHE_BYTES


def test_a_basis_above_the_bound_is_returned_but_not_kept():
    shading.shading_basis(64, 64, 1)
    before = shading.shading_cache_bytes()
    side = int((shading.SHADING_CACHE_BYTES / 4 / 2) ** 0.5) + 8  # two float32 terms just over the bound
    basis = shading.shading_basis(side, side, 1)
    assert basis.shape == (2, side, side)
    assert shading.shading_cache_bytes() == before
