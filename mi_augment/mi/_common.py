"""Input checking, batching and preprocessing shared by the MI estimators.

Every estimator takes paired samples ``x (..., N, Dx)`` and ``y (..., N, Dy)``, flattens the leading
dimensions into one batch dimension ``B``, works on ``(B, N, D)`` tensors in chunks of problems so that
memory stays bounded, and reshapes the result back to ``(...)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core.validation import check_finite, check_generator, check_positive_int

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


# Fixed seeds of the tie-breaking jitter without a generator, one per role, so that the jitter of x and y is
# independent (the same seed for both once made two independent 3-level variables look 3 nats dependent).
JITTER_SEEDS = {"x": 0x6A09E667, "y": 0x3C6EF372, "trajectories": 0x510E527F}


def constant_problems(z: Tensor) -> Tensor:
    """``(B,)`` bool: the problems of ``z (B, N, D)`` whose samples are all equal (a constant variable)."""
    if z.shape[1] == 0:
        return torch.ones(z.shape[0], dtype=torch.bool, device=z.device)
    return (z.amax(dim=-2) == z.amin(dim=-2)).all(dim=-1)


def grid_step(z: Tensor) -> tuple[Tensor, Tensor]:
    """Ties in the samples ``z (B, N, D)``, from one sort per dimension.

    Returns ``step (B, 1, D)``: for every dimension that holds exact duplicates the smallest positive gap
    between its distinct values (the grid step of rounded or discrete data), 0 for dimensions without
    duplicates; and ``mixed (B,)``: problems with a dimension where over 10 % of the samples are tied but the
    step is too fine for the values to lie on a grid (more than ``N`` steps across the range), i.e. atoms
    mixed with continuous values, such as clipped data.
    """
    n = z.shape[1]
    s = z.sort(dim=-2).values
    gaps = s[:, 1:] - s[:, :-1]
    equal = gaps == 0
    positive = torch.where(gaps > 0, gaps, torch.full_like(gaps, math.inf)).amin(dim=-2, keepdim=True)
    grid = equal.any(dim=-2, keepdim=True) & torch.isfinite(positive)
    step = torch.where(grid, positive, torch.zeros_like(positive))
    pad = torch.zeros_like(equal[:, :1])
    tied = torch.cat([pad, equal], dim=1) | torch.cat([equal, pad], dim=1)
    many = tied.to(z.dtype).mean(dim=-2, keepdim=True) > 0.1
    fine = (s[:, -1:] - s[:, :1]) > n * step
    mixed = (grid & many & fine).flatten(1).any(dim=-1)
    return step, mixed


#: the interquartile range of a standard normal: IQR / this is a standard deviation robust to outliers
NORMAL_IQR = 1.3489795003921634


def robust_centre_scale(z: Tensor) -> tuple[Tensor, Tensor]:
    """Per-problem median and ``IQR / 1.349`` of every dimension of ``z (B, N, D)``, both ``(B, 1, D)``: the
    mean and standard deviation for Gaussian data, unmoved by a few outliers. Where the IQR is 0 (over half
    the samples tied) the standard deviation is used instead, and 1 for a constant dimension."""
    n = z.shape[1]
    s = z.sort(dim=-2).values

    def quantile(q: float) -> Tensor:  # linear interpolation between order statistics (numpy's default)
        pos = q * (n - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, n - 1)
        return s[:, lo:lo + 1] + (pos - lo) * (s[:, hi:hi + 1] - s[:, lo:lo + 1])

    scale = (quantile(0.75) - quantile(0.25)) / NORMAL_IQR
    std = z.std(dim=-2, keepdim=True, correction=0)
    scale = torch.where(scale > 0, scale, std)
    return quantile(0.5), torch.where(scale > 0, scale, torch.ones_like(scale))


def standardize(
    z: Tensor, noise: float, generator: torch.Generator | None, role: str = "x", warn_as: str | None = None,
    robust: bool = False,
) -> Tensor:
    """Centre every dimension of ``z (B, N, D)`` and scale it to unit standard deviation per problem, then
    break ties between duplicate samples with jitter.

    Constant dimensions are only centred (their standard deviation is replaced by 1). With ``robust`` the
    centre and scale are the median and ``IQR / 1.349`` (:func:`robust_centre_scale`), so that one outlier
    cannot shrink the other samples' spread by orders of magnitude against the other variable's. The jitter is
    ``noise``-scaled standard normal noise plus, in every dimension that holds exact duplicates, uniform noise
    one grid step wide (the smallest gap between its distinct values): rounded or discrete data is spread
    over its own grid cells ("dequantised"), which leaves the MI of discrete variables unchanged, instead of
    being piled into clusters far smaller than the gaps between values, which makes kNN estimates mix two
    length scales (several nats of bias). It is drawn on the generator's device (so one seed gives the same
    numbers on every device) or, without a generator, from a generator seeded with a fixed seed for ``role``
    (``"x"``, ``"y"`` or ``"trajectories"``), so the result is deterministic and x and y get independent jitter.
    With ``warn_as`` (an estimator's name) a ``UserWarning`` says when ties cannot be dequantised (atoms
    mixed with continuous values), where that estimator is biased.
    """
    if z.numel() == 0:
        return z
    if robust:
        mean, std = robust_centre_scale(z)
    else:
        std, mean = torch.std_mean(z, dim=-2, keepdim=True, correction=0)
        std = torch.where(std > 0, std, torch.ones_like(std))
    z = (z - mean) / std
    if noise > 0:
        generator = check_generator(generator)
        if generator is None:
            generator = torch.Generator(device=z.device)
            generator.manual_seed(JITTER_SEEDS[role])
        step, mixed = grid_step(z)
        if warn_as is not None and bool(mixed.any()):
            warnings.warn(
                f"{role} has many tied samples (over 10 % share a value) mixed with continuous values, e.g. "
                f"clipped data; {warn_as} is biased on such discrete-continuous mixtures (entropies of atoms "
                "are not finite): use ksg_mi, or remove the atoms", UserWarning, stacklevel=4,
            )
        jitter = torch.randn(z.shape, generator=generator, device=generator.device, dtype=z.dtype)
        spread = torch.rand(z.shape, generator=generator, device=generator.device, dtype=z.dtype) - 0.5
        z = z + noise * jitter.to(z.device) + step * spread.to(z.device)
    return z


def radius_floor(dtype: torch.dtype) -> float:
    """Smallest neighbour radius used in a logarithm: distances below the dtype's resolution near 1 (the
    scale of standardised samples) are not resolved, and a zero radius would make the estimate -inf or NaN."""
    return torch.finfo(dtype).eps


def digamma(t: Tensor) -> Tensor:
    return torch.special.digamma(t)


def same_device_and_dtype(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Refuse tensors on different devices; promote both to their common floating dtype."""
    if x.device != y.device:
        raise ValueError(f"x and y must be on the same device, got {x.device} and {y.device}")
    dtype = torch.promote_types(x.dtype, y.dtype)
    return x.to(dtype), y.to(dtype)
