"""The shading field of the illumination model: a low-order Legendre polynomial in the log domain.

:func:`shading_basis` gives the basis at pixel centres, :func:`render_shading_field` the multiplicative field
for per-sample coefficients. Bases are memoised up to :data:`SHADING_CACHE_BYTES` in all, and built a block of
rows at a time, so a huge image never needs a multi-GB float64 buffer.
"""

from __future__ import annotations

import collections
import threading

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "SHADING_CACHE_BYTES",
    "cached_shading_basis",
    "render_shading_field",
    "shading_fields",
    "shading_basis",
    "shading_cache_bytes",
    "shading_degree",
    "shading_size",
]


def shading_size(degree: int) -> int:
    """Number of shading coefficients ``S`` for a 2-D polynomial of total ``degree`` without its constant
    term (the constant is the gain): 0 -> 0, 1 -> 2, 2 -> 5, 3 -> 9."""
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"shading degree must be an integer >= 0, got {degree!r}")
    return (degree + 1) * (degree + 2) // 2 - 1


def shading_degree(size: int) -> int:
    """Inverse of :func:`shading_size`; raises ``ValueError`` for a count that is not ``shading_size(d)``."""
    d = 0
    while shading_size(d) < size:
        d += 1
    if shading_size(d) != size:
        raise ValueError(f"{size} shading coefficients do not form a complete polynomial basis; "
                         f"expected one of {[shading_size(k) for k in range(5)]}")
    return d


def _legendre(n: int, t: Tensor) -> Tensor:
    """Legendre polynomial ``P_n(t)`` by the three-term recurrence (orthogonal on [-1, 1])."""
    p_prev, p = torch.ones_like(t), t
    if n == 0:
        return p_prev
    for k in range(1, n):
        p_prev, p = p, ((2 * k + 1) * t * p - k * p_prev) / (k + 1)
    return p


def shading_basis(height: int, width: int, degree: int, device=None, dtype=torch.float32) -> Tensor:
    """The shading basis ``[S, H, W]`` at pixel centres of an ``H x W`` image.

    Coordinates are normalised to [-1, 1] on both axes (``u`` across, ``v`` down), so coefficients mean the
    same thing at every resolution. Basis function ``(i, j)`` with ``1 <= i + j <= degree`` is
    ``P_i(u) * P_j(v)`` (Legendre polynomials), ordered by total degree then by ``j``: for degree 2 the
    order is ``u, v, P2(u), u*v, P2(v)``. Legendre products are nearly orthogonal over the image, so the
    field's mean log value is close to 0 and the gain keeps its meaning.
    """
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height} x {width}")
    return cached_shading_basis(int(height), int(width), int(degree), torch.device(device or "cpu"),
                                dtype).clone()


#: Bound on the bytes of shading bases kept between calls (all sizes, devices and dtypes together, least
#: recently used dropped first); a basis larger than this is built for its call and not kept. 128 MiB holds
#: a 2000 x 1500 degree-2 float32 basis (60 MB) twice, or about 25 of 512 x 512.
SHADING_CACHE_BYTES = 128 * 2**20
_SHADING_CHUNK_BYTES = 32 * 2**20  # float64 working memory per block of rows while a basis is built
_shading_cache: collections.OrderedDict[tuple, Tensor] = collections.OrderedDict()
_shading_cache_lock = threading.Lock()


def shading_cache_bytes() -> int:
    """Bytes held by the memoised shading bases, at most :data:`SHADING_CACHE_BYTES`.

    Example:
        >>> _ = shading_basis(64, 64, 2)
        >>> 0 < shading_cache_bytes() <= SHADING_CACHE_BYTES
        True
    """
    with _shading_cache_lock:
        return sum(t.numel() * t.element_size() for t in _shading_cache.values())


def _build_shading_basis(height: int, width: int, degree: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """The basis in ``dtype``, built a block of rows at a time so the float64 products never need more than
    ``_SHADING_CHUNK_BYTES`` (an 8000 x 8000 image asked for 2.56 GB at once)."""
    u = (torch.arange(width, device=device, dtype=torch.float64) + 0.5) * (2.0 / width) - 1.0
    v = (torch.arange(height, device=device, dtype=torch.float64) + 0.5) * (2.0 / height) - 1.0
    orders = [(total - j, j) for total in range(1, degree + 1) for j in range(total + 1)]
    out = torch.empty(len(orders), height, width, device=device, dtype=dtype)
    across = {i: _legendre(i, u) for i in {i for i, _ in orders}}
    down = {j: _legendre(j, v) for j in {j for _, j in orders}}
    rows = max(1, _SHADING_CHUNK_BYTES // (8 * width))
    for top in range(0, height, rows):
        for k, (i, j) in enumerate(orders):
            out[k, top:top + rows] = (down[j][top:top + rows, None] * across[i][None, :]).to(dtype)
    return out


def cached_shading_basis(height: int, width: int, degree: int, device: torch.device,
                         dtype: torch.dtype) -> Tensor:
    """:func:`shading_basis` shared between calls, memoised within :data:`SHADING_CACHE_BYTES` (a pure function of
    its arguments, rebuilt on every call of a per-image transform otherwise). The tensor is shared: callers must
    not modify it.

    Args:
        height: rows of the image.
        width: columns of the image.
        degree: total degree of the polynomial.
        device: where the basis lives.
        dtype: its floating dtype.

    Shape:
        - Output: :math:`(S, H, W)`.

    Example:
        >>> cached_shading_basis(4, 6, 2, torch.device("cpu"), torch.float32).shape
        torch.Size([5, 4, 6])
    """
    key = (height, width, degree, device, dtype)
    with _shading_cache_lock:
        if key in _shading_cache:
            _shading_cache.move_to_end(key)
            return _shading_cache[key]
    basis = _build_shading_basis(height, width, degree, device, dtype)
    size = basis.numel() * basis.element_size()
    if size <= SHADING_CACHE_BYTES:
        with _shading_cache_lock:
            _shading_cache[key] = basis
            held = sum(t.numel() * t.element_size() for t in _shading_cache.values())
            while held > SHADING_CACHE_BYTES:
                _, dropped = _shading_cache.popitem(last=False)
                held -= dropped.numel() * dropped.element_size()
    return basis


def render_shading_field(coeffs: Tensor, height: int, width: int) -> Tensor:
    """Render the multiplicative shading field ``exp(sum_k coeffs[:, k] * basis_k)`` as ``[B, 1, H, W]``.

    ``coeffs`` is ``(B, S)`` with ``S`` one of :func:`shading_size`'s values (0 gives a field of ones). The
    field is smooth (a low-order polynomial in the exponent) and can be rendered at any resolution.
    """
    if coeffs.ndim != 2:
        raise ValueError(f"shading coefficients must have shape (B, S), got {tuple(coeffs.shape)}")
    degree = shading_degree(coeffs.shape[1])
    dtype = coeffs.dtype if coeffs.is_floating_point() else torch.float32
    basis = cached_shading_basis(height, width, degree, coeffs.device, dtype)
    # (B, S) @ (S, H W) as one matrix product: einsum's sum within float32 rounding, without its per-call parsing
    log_field = torch.mm(coeffs.to(dtype), basis.view(basis.shape[0], height * width))
    return log_field.exp_().view(coeffs.shape[0], 1, height, width)


def shading_fields(coeffs: list[list[float]], height: int, width: int) -> np.ndarray:
    """:func:`render_shading_field` on numpy for a few coefficient rows given as Python numbers (the CPU uint8
    backend's views): ``exp(coeffs @ basis)`` in float32, within float32 rounding of the tensor kernel.

    The log field is a sum of products ``c_k P_i(u) P_j(v)``, so it is a small product: per row, the sums
    ``sum_k c_k P_jk(v)`` grouped by ``i_k`` (``(H, D + 1)``, float64) times the Legendre polynomials across
    ``(D + 1, W)``, one float32 matrix product without reading the ``(S, H, W)`` basis; then OpenCV's ``exp``.

    Args:
        coeffs: ``B`` rows of ``S`` shading coefficients (``S`` one of :func:`shading_size`'s values).
        height, width: the field's size.

    Shape:
        - Output: :math:`(B, H, W)` float32.

    Example:
        >>> shading_fields([[0.0] * 5], 2, 3).tolist()
        [[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]]
    """
    import cv2  # (imported on first use, as the uint8 backend's kernels do)

    c = np.asarray(coeffs, dtype=np.float64).reshape(len(coeffs), -1)
    down, across, place = _legendre_factors(int(height), int(width), shading_degree(c.shape[1]))
    left = (down @ (c[:, :, None] * place)).astype(np.float32)  # (B, H, D + 1): sum_k c_k P_jk(v) at column i_k
    log_field = np.matmul(left, across)  # (B, H, D + 1) @ (D + 1, W)
    return cv2.exp(log_field.reshape(len(coeffs), -1), dst=log_field.reshape(len(coeffs), -1)).reshape(
        len(coeffs), height, width)  # ~2x numpy's float32 exp


_legendre_cache: collections.OrderedDict[tuple, tuple] = collections.OrderedDict()


def _legendre_factors(height: int, width: int, degree: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The factors of :func:`shading_basis`'s functions ``P_i(u) P_j(v)``: ``P_j(v)`` of each function float64
    ``(H, S)``, ``P_i(u)`` float32 ``(D + 1, W)`` (the basis's own 1-D values) and the one-hot ``(S, D + 1)`` of
    each function's ``i``; the last 64 sizes kept."""
    key = (height, width, degree)
    with _shading_cache_lock:
        if key in _legendre_cache:
            _legendre_cache.move_to_end(key)
            return _legendre_cache[key]
    u = (torch.arange(width, dtype=torch.float64) + 0.5) * (2.0 / width) - 1.0
    v = (torch.arange(height, dtype=torch.float64) + 0.5) * (2.0 / height) - 1.0
    orders = [(total - j, j) for total in range(1, degree + 1) for j in range(total + 1)]
    down = torch.stack([_legendre(j, v) for _, j in orders], 1).numpy() if orders else np.zeros((height, 0))
    across = torch.stack([_legendre(i, u) for i in range(degree + 1)]).numpy().astype(np.float32)
    place = np.zeros((len(orders), degree + 1))
    place[range(len(orders)), [i for i, _ in orders]] = 1.0
    factors = (down, across, place)
    with _shading_cache_lock:
        _legendre_cache[key] = factors
        while len(_legendre_cache) > 64:
            _legendre_cache.popitem(last=False)
    return factors
