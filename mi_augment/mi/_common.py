"""Input checking, batching and preprocessing shared by the MI estimators.

Every estimator takes paired samples ``x (..., N, Dx)`` and ``y (..., N, Dy)``, flattens the leading
dimensions into one batch dimension ``B``, works on ``(B, N, D)`` tensors in chunks of problems so that
memory stays bounded, and reshapes the result back to ``(...)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validation import check_finite, check_generator, check_positive_int

# Default memory budget: the largest temporary an estimator builds holds about this many elements
# (2**25 float32 values = 128 MiB). Chunks of problems are sized from it.
DEFAULT_MAX_ELEMENTS = 2**25

# Relative amplitude of the tie-breaking noise for ``noise="auto"``: about 1e-10 of a standard deviation in
# float64 (as scikit-learn does), and well above float32 resolution (eps ~ 1.2e-7) otherwise, since noise
# below the resolution of the dtype breaks no ties at all.
_AUTO_NOISE = {torch.float64: 1e-10, torch.float32: 1e-5}


def as_float_tensor(value: Any, name: str) -> Tensor:
    """Convert array-likes to a floating tensor (float32 unless the input is float64)."""
    if not isinstance(value, Tensor):
        if isinstance(value, (np.ndarray, list, tuple)) or np.isscalar(value):
            value = torch.as_tensor(np.asarray(value))
        else:
            raise TypeError(f"{name} must be a torch.Tensor or array-like, got {type(value).__name__}")
    if value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
    if value.dtype != torch.float64:
        value = value.to(torch.float32)
    return value


def prepare_pair(
    x: Any, y: Any, *, min_samples: int, context: str = "", allow_more_dims_than_samples: bool = False
) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """Validate a pair of sample tensors and return ``x (B, N, Dx)``, ``y (B, N, Dy)`` and the batch shape.

    A 1-D tensor ``(N,)`` is one problem of scalar samples; anything else is read as ``(..., N, D)``.
    Both tensors are promoted to a common floating dtype (float64 if either is float64, else float32)
    and must be on the same device. ``D > N`` is refused unless allowed: it is almost always a batch of
    scalar problems ``(B, N)`` passed without the trailing ``1``.
    """
    x, y = same_device_and_dtype(as_float_tensor(x, "x"), as_float_tensor(y, "y"))
    for name, t in (("x", x), ("y", y)):
        if t.ndim == 0:
            raise ValueError(f"{name} must have shape (N,) or (..., N, D), got a scalar")
    x = x.unsqueeze(-1) if x.ndim == 1 else x
    y = y.unsqueeze(-1) if y.ndim == 1 else y
    if x.shape[:-2] != y.shape[:-2]:
        raise ValueError(
            f"x and y must have the same leading (batch) dimensions, got x {tuple(x.shape)} and y {tuple(y.shape)}"
        )
    n = x.shape[-2]
    if y.shape[-2] != n:
        raise ValueError(f"x and y must have the same number of samples N, got {n} and {y.shape[-2]} "
                         f"(x {tuple(x.shape)}, y {tuple(y.shape)})")
    for name, t in (("x", x), ("y", y)):
        if t.shape[-1] == 0:
            raise ValueError(f"{name} has zero dimensions per sample: shape {tuple(t.shape)}")
        if t.shape[-1] > n and n > 0 and not allow_more_dims_than_samples:
            raise ValueError(
                f"{name} has D={t.shape[-1]} dimensions per sample but only N={n} samples{context}; "
                f"inputs are read as (..., N, D): for a batch of 1-D problems pass {name}[..., None]"
            )
    if n < min_samples:
        raise ValueError(f"x and y need at least N={min_samples} samples{context}, got N={n}")
    check_finite(x, "x")
    check_finite(y, "y")
    batch_shape = tuple(x.shape[:-2])
    return x.reshape(-1, n, x.shape[-1]), y.reshape(-1, n, y.shape[-1]), batch_shape


def check_k(k: Any) -> int:
    return check_positive_int(k, "k", minimum=1)


def check_chunk_size(chunk_size: Any) -> int | None:
    if chunk_size is None:
        return None
    return check_positive_int(chunk_size, "chunk_size", minimum=1)


def problems_per_chunk(per_problem_elements: int, chunk_size: int | None, max_elements: int = DEFAULT_MAX_ELEMENTS) -> int:
    """How many problems to process at once: ``chunk_size`` if given, else as many as fit the budget."""
    if chunk_size is not None:
        return chunk_size
    return max(1, max_elements // max(1, per_problem_elements))


def chunks(total: int, size: int) -> Iterator[slice]:
    for start in range(0, total, size):
        yield slice(start, min(total, start + size))


def run_chunked(fn: Callable[..., Tensor], tensors: tuple[Tensor, ...], size: int) -> Tensor:
    """Apply ``fn`` to consecutive slices of the batch dimension and concatenate the results."""
    total = tensors[0].shape[0]
    if total <= size:
        return fn(*tensors)
    return torch.cat([fn(*(t[s] for t in tensors)) for s in chunks(total, size)])


def resolve_noise(noise: Any, dtype: torch.dtype) -> float:
    """The relative tie-breaking noise amplitude: ``"auto"``, or a number >= 0."""
    if isinstance(noise, str):
        if noise != "auto":
            raise ValueError(f"noise must be 'auto' or a number >= 0, got {noise!r}")
        return _AUTO_NOISE.get(dtype, 1e-5)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be 'auto' or a finite number >= 0, got {noise!r}")
    return float(noise)


def standardize(z: Tensor, noise: float, generator: torch.Generator | None) -> Tensor:
    """Centre every dimension of ``z (B, N, D)`` and scale it to unit standard deviation per problem, then
    add ``noise``-scaled standard normal jitter to break ties between duplicate samples.

    Constant dimensions are only centred (their standard deviation is replaced by 1). The jitter is drawn on
    the generator's device (so one seed gives the same numbers on every device) or, without a generator,
    from a generator seeded with 0 on ``z``'s device, so that results are deterministic by default.
    """
    if z.numel() == 0:
        return z
    std, mean = torch.std_mean(z, dim=-2, keepdim=True, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    z = (z - mean) / std
    if noise > 0:
        generator = check_generator(generator)
        if generator is None:
            generator = torch.Generator(device=z.device)
            generator.manual_seed(0)
        jitter = torch.randn(z.shape, generator=generator, device=generator.device, dtype=z.dtype)
        z = z + noise * jitter.to(z.device)
    return z


def digamma(t: Tensor) -> Tensor:
    return torch.special.digamma(t)


def same_device_and_dtype(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Refuse tensors on different devices; promote both to their common floating dtype."""
    if x.device != y.device:
        raise ValueError(f"x and y must be on the same device, got {x.device} and {y.device}")
    dtype = torch.promote_types(x.dtype, y.dtype)
    return x.to(dtype), y.to(dtype)
