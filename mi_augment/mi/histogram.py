"""Plug-in joint-histogram MI for bounded scalar samples (pixel intensities), hard or soft-binned."""

from __future__ import annotations

import functools
import math
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from ..core.validation import check_finite, check_positive_int
from ._common import (
    as_float_tensor,
    check_chunk_size,
    problems_per_chunk,
    run_chunked,
    same_device_and_dtype,
)

#: bytes of temporaries that one chunk of problems may take (without autograd): chunks are sized from it
CHUNK_BYTES = 128 * 2**20


def _scalar_samples(t: Any, name: str) -> Tensor:
    t = as_float_tensor(t, name)
    if t.ndim >= 2 and t.shape[-1] == 1:
        t = t[..., 0]
    if t.ndim == 0:
        raise ValueError(f"{name} must have shape (..., N) or (..., N, 1), got a scalar")
    return t


def _check_range(value: Any) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """``None``, one ``(min, max)`` pair for both variables, or ``((xmin, xmax), (ymin, ymax))``."""
    if value is None:
        return None
    message = f"range must be None, (min, max) or ((xmin, xmax), (ymin, ymax)) with min < max, got {value!r}"
    try:
        items = list(value)
    except TypeError:
        raise ValueError(message) from None
    if len(items) != 2:
        raise ValueError(message)
    pairs = items if all(not isinstance(v, Real) for v in items) else [items, items]
    out = []
    for pair in pairs:
        try:
            lo, hi = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise ValueError(message) from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(message)
        out.append((lo, hi))
    return out[0], out[1]


def _bounds(t: Tensor, fixed: tuple[float, float] | None) -> tuple[Tensor, Tensor]:
    """Lower bound and bin span ``(B, 1)`` per problem: the fixed range, or the samples' min and max."""
    if fixed is not None:
        lo = t.new_full((t.shape[0], 1), fixed[0])
        return lo, t.new_full((t.shape[0], 1), fixed[1] - fixed[0])
    lo = t.amin(dim=-1, keepdim=True).detach()
    span = t.amax(dim=-1, keepdim=True).detach() - lo
    return lo, torch.where(span > 0, span, torch.ones_like(span))


def _mi_from_joint(joint: Tensor) -> Tensor:
    """MI of the normalised joint tables ``(B, bins, bins)``: ``H(X) + H(Y) - H(X, Y)`` with ``0 log 0 = 0``."""
    def entropy(p: Tensor, dims: tuple[int, ...]) -> Tensor:
        return -torch.special.xlogy(p, p).sum(dim=dims)

    return entropy(joint.sum(-1), (-1,)) + entropy(joint.sum(-2), (-1,)) - entropy(joint, (-2, -1))


def _paired_samples(x: Any, y: Any) -> tuple[Tensor, Tensor]:
    """``x``, ``y`` as float ``(..., N)`` tensors of one dtype and device, checked to pair up."""
    x, y = same_device_and_dtype(_scalar_samples(x, "x"), _scalar_samples(y, "y"))
    if x.shape[:-1] != y.shape[:-1]:
        raise ValueError(f"x and y must have the same leading (batch) dimensions, got x {tuple(x.shape)} "
                         f"and y {tuple(y.shape)}")
    n = x.shape[-1]
    if y.shape[-1] != n:
        raise ValueError(f"x and y must have the same number of samples N, got {n} and {y.shape[-1]}")
    if n < 2:
        raise ValueError(f"x and y need at least N=2 samples, got N={n}")
    check_finite(x, "x")
    check_finite(y, "y")
    return x, y


def _hard_mi(xc: Tensor, yc: Tensor, bins: int, ranges: tuple[Any, Any]) -> Tensor:
    """Hard-binned plug-in MI of the problems ``xc``, ``yc (b, N)``."""
    b, n = xc.shape
    # int32 bin indices (half of int64's bytes) while the chunk's joint tables fit them
    itype = torch.int32 if b * bins * bins < 2**31 else torch.int64
    index = None
    for t, fixed, stride in ((xc, ranges[0], bins), (yc, ranges[1], 1)):
        lo, span = _bounds(t, fixed)
        scaled = (t - lo).div_(span).mul_(bins).floor_().clamp_(0, bins - 1)  # one float temporary
        which = scaled.to(itype)
        del scaled
        index = which.mul_(stride) if index is None else index.add_(which)
    index.add_(torch.arange(b, device=xc.device, dtype=itype)[:, None] * (bins * bins))
    counts = torch.bincount(index.reshape(-1), minlength=b * bins * bins)
    return _mi_from_joint(counts.reshape(b, bins, bins).to(xc.dtype) / n)


def _parzen_mi(xc: Tensor, yc: Tensor, bins: int, ranges: tuple[Any, Any], bandwidth: float | None) -> Tensor:
    """Soft-binned (Gaussian Parzen weights on the bin centres) MI of the problems ``xc``, ``yc (b, N)``."""
    weights = []
    centres = (torch.arange(bins, device=xc.device, dtype=xc.dtype) + 0.5) / bins  # in units of the span
    for t, fixed in ((xc, ranges[0]), (yc, ranges[1])):
        lo, span = _bounds(t, fixed)
        sigma = (bandwidth / span) if bandwidth is not None else torch.full_like(span, 0.5 / bins)
        u = ((t - lo) / span).clamp(0, 1)  # (b, N) in [0, 1]
        d = u[..., None] - centres  # (b, N, bins)
        if d.requires_grad:
            logits = -0.5 * (d / sigma[..., None]) ** 2
        else:  # in place: one (b, N, bins) temporary instead of four
            logits = d.div_(sigma[..., None]).square_().mul_(-0.5)
        del d
        weights.append(torch.softmax(logits, dim=-1))  # (b, N, bins), each sample's mass sums to 1
        del logits
    joint = torch.bmm(weights[0].transpose(1, 2), weights[1]) / xc.shape[1]
    return _mi_from_joint(joint)


def histogram_mi(
    x: Any,
    y: Any,
    bins: int = 16,
    *,
    range: Any = None,  # the name numpy.histogram uses
    soft: bool = False,
    bandwidth: float | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """Plug-in mutual information (nats) of the joint histogram of paired scalar samples, batched.

    Args:
        x: scalar samples ``(..., N)`` or ``(..., N, 1)``, e.g. the 1024 luma values of a 32x32 crop.
            Integer tensors are converted to float unchanged (uint8 pixels stay 0..255: pass
            ``range=(0, 255)`` or convert to [0, 1] first).
        y: paired samples of the same shape (leading dimensions and ``N`` must match).
        bins: bins per variable (``>= 2``); the joint table is ``bins x bins``.
        range: ``None`` (each problem's own min and max per variable, as ``numpy.histogram2d``), a
            ``(min, max)`` pair for both variables (``(0, 1)`` for pixel values) or
            ``((xmin, xmax), (ymin, ymax))``. Samples outside a fixed range go to the edge bins.
        soft: ``False`` counts samples into bins (fast, exact plug-in). ``True`` spreads every sample over
            the bins with Gaussian (Parzen) weights centred on the bin centres and normalised per sample, so
            the estimate is differentiable with respect to ``x`` and ``y``.
        bandwidth: standard deviation of the soft-binning kernel in data units; default half a bin width.
            Only used with ``soft=True``.
        chunk_size: problems processed at once; by default as many as keep the temporaries of a chunk
            within :data:`CHUNK_BYTES` (128 MiB). That bounds the computation, not the inputs: integer or
            float16 inputs are first converted to float32 whole, and with gradients (``soft=True`` on inputs
            that require them) autograd keeps about four ``(N, bins)`` tensors per problem until backward.

    Returns:
        MI of shape ``(...)`` on the inputs' device (float64 for float64 inputs, else float32), between 0
        and ``log(bins)``.

    Hard binning: bin ``floor((v - min) / (max - min) * bins)``, the maximum in the last bin (as numpy).
    The plug-in estimate is biased upwards by about ``(bins - 1)**2 / (2 N)`` for independent variables
    and downwards by the discretisation; see ``docs/mi_estimators.md``. The ranges found from the data are
    treated as constants for gradients.

    Shape:
        ``x (..., N)`` or ``(..., N, 1)``, ``y`` the same -> ``(...)``.

    Example:
        >>> import torch
        >>> x = torch.rand(8, 1024, generator=torch.Generator().manual_seed(0))
        >>> histogram_mi(x, x, bins=16, range=(0, 1)).shape   # MI of a variable with itself: log(16)
        torch.Size([8])
        >>> round(float(histogram_mi(x, x, bins=16, range=(0, 1)).mean()), 2)
        2.77
    """
    bins = check_positive_int(bins, "bins", minimum=2)
    if not isinstance(soft, bool):
        raise ValueError(f"soft must be True or False, got {soft!r}")
    if bandwidth is not None and (
        isinstance(bandwidth, bool) or not isinstance(bandwidth, Real) or not math.isfinite(bandwidth) or bandwidth <= 0
    ):
        raise ValueError(f"bandwidth must be None or a positive number, got {bandwidth!r}")
    ranges = _check_range(range)
    chunk_size = check_chunk_size(chunk_size)
    x, y = _paired_samples(x, y)
    n = x.shape[-1]
    batch_shape = tuple(x.shape[:-1])
    xf, yf = x.reshape(-1, n), y.reshape(-1, n)
    if xf.shape[0] == 0:
        return x.new_empty(batch_shape)
    x_range, y_range = ranges if ranges is not None else (None, None)
    if soft:
        solve = functools.partial(_parzen_mi, bins=bins, ranges=(x_range, y_range), bandwidth=bandwidth)
    else:
        solve = functools.partial(_hard_mi, bins=bins, ranges=(x_range, y_range))
    size = x.element_size()
    tables = bins * bins * (8 + 4 * size)  # counts (int64) and the joint table's entropy terms
    per_problem = n * bins * 4 * size + tables if soft else n * (8 + size) + tables
    per_chunk = problems_per_chunk(per_problem, chunk_size, CHUNK_BYTES)
    return run_chunked(solve, (xf, yf), per_chunk).reshape(batch_shape)


def mi_from_joint(joint: Tensor) -> Tensor:
    """MI (nats) of normalised joint tables ``(B, bins, bins)``: the plug-in formula :func:`histogram_mi` uses,
    for callers that count their own bins (the pair scorer's unit-range histogram)."""
    return _mi_from_joint(joint)


__all__ = ["histogram_mi", "mi_from_joint"]
