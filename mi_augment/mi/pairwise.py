"""MI between all pairs of a set of trajectories (twin-patch mining)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..core.options import current
from ..core.validation import check_finite, check_generator
from ._common import (
    DEFAULT_MAX_ELEMENTS,
    as_float_tensor,
    check_chunk_size,
    check_k,
    constant_problems,
    digamma,
    radius_floor,
    resolve_noise,
    standardize,
)
from ._neighbours import maxnorm_distances, smallest_k
from .histogram import histogram_mi


def _count_below(sorted_rows: Tensor, radius: Tensor, right: bool) -> Tensor:
    """Entries of sorted rows below ``radius (c, T)`` (``<=`` if ``right``), shape ``(c, T)``. ``sorted_rows``
    is ``(c, T, T)``, or ``(T, T)`` shared by the whole block."""
    if sorted_rows.ndim == 3:
        return torch.searchsorted(sorted_rows, radius[..., None], right=right).squeeze(-1)
    return torch.searchsorted(sorted_rows, radius.transpose(0, 1).contiguous(), right=right).transpose(0, 1)


def _pair_blocks(p: int, t: int, device: torch.device, pairs_per_chunk: int | None, flat: bool):
    """Blocks ``(a, b)`` covering the pairs ``a <= b``. On the CPU a block shares its first trajectory (a
    scalar ``a``, so its distance matrix broadcasts instead of being copied) and is small enough to stay in
    cache; on accelerators blocks are large flat lists of pairs, to keep the number of kernel launches low."""
    if not flat:
        chunk = pairs_per_chunk or max(1, min(p, (1 << 19) // (t * t)))
        for a in range(p):
            for start in range(a, p, chunk):
                yield a, slice(start, min(p, start + chunk))
    else:
        ia, ib = torch.triu_indices(p, p, device=device)
        chunk = pairs_per_chunk or max(1, DEFAULT_MAX_ELEMENTS // (4 * t * t))
        for start in range(0, ia.numel(), chunk):
            yield ia[start:start + chunk], ib[start:start + chunk]


def _knn_pairwise(
    z: Tensor, estimator: str, k: int, variant: int, pairs_per_chunk: int | None, noise: Any, generator: Any,
    flat: bool | None = None,
) -> Tensor:
    """All-pairs KSG / KL estimates from per-trajectory distance matrices (see :func:`pairwise_mi`).
    ``flat`` picks the block layout of :func:`_pair_blocks` (default: flat lists of pairs off the CPU)."""
    p, t, d = z.shape
    z = z.detach()
    constant = constant_problems(z)  # a constant trajectory shares no information: its row and column are 0
    warn_as = "pairwise_mi(estimator='kl3')" if estimator == "kl3" else None
    z = standardize(z, resolve_noise(noise, z.dtype), generator, role="trajectories", warn_as=warn_as,
                    robust=estimator == "kl3")  # each estimator's own scaling, so the two routes agree
    marg = maxnorm_distances(z, z)  # (P, T, T), the max-norm distances within every trajectory
    marg.diagonal(dim1=-2, dim2=-1).fill_(float("inf"))  # a sample is not its own neighbour
    psi_t, psi_k = digamma(z.new_tensor(float(t))), digamma(z.new_tensor(float(k)))
    psi = digamma(torch.arange(t + 2, dtype=z.dtype, device=z.device))  # psi of every possible count
    if estimator == "kl3":
        log_r = smallest_k(marg, k)[-1].clamp_min(radius_floor(z.dtype)).log().mean(-1)  # (P,): mean log k-th neighbour distance per trajectory
    else:
        sorted_marg = marg.sort(dim=-1).values  # neighbour counts by binary search in sorted rows
    out = z.new_empty(p, p)
    flat = z.device.type != "cpu" if flat is None else flat
    for a, b in _pair_blocks(p, t, z.device, pairs_per_chunk, flat):
        joint = torch.maximum(marg[a], marg[b])  # (c, T, T): max-norm distances in the joint space
        eps = smallest_k(joint, k)[-1]  # (c, T): k-th neighbour distance in the joint space
        if estimator == "kl3":
            log_eps = eps.clamp_min(radius_floor(z.dtype)).log()
            value = psi_t - psi_k + d * (log_r[a] + log_r[b]) - 2 * d * log_eps.mean(-1)
        elif variant == 1:
            nx = _count_below(sorted_marg[a], eps, right=False)
            ny = _count_below(sorted_marg[b], eps, right=False)
            value = psi_k + psi_t - (psi[nx + 1] + psi[ny + 1]).mean(-1)
        else:
            inside = joint <= eps[..., None]  # the k nearest (and any sample tied with the k-th)
            none = torch.tensor(-1.0, dtype=z.dtype, device=z.device)
            eps_x = torch.where(inside, marg[a], none).amax(-1)
            eps_y = torch.where(inside, marg[b], none).amax(-1)
            nx = _count_below(sorted_marg[a], eps_x, right=True)
            ny = _count_below(sorted_marg[b], eps_y, right=True)
            value = psi_k - 1.0 / k + psi_t - (psi[nx] + psi[ny]).mean(-1)
        out[a, b] = value
        out[b, a] = value
    return out.masked_fill(constant[:, None] | constant[None, :], 0.0)


def _generic_pairwise(trajectories: Tensor, fn: Callable[..., Tensor], chunk_size: int | None, **kwargs: Any) -> Tensor:
    p, t, d = trajectories.shape
    ia, ib = torch.triu_indices(p, p, device=trajectories.device)
    out = trajectories.new_empty(p, p)
    per_chunk = chunk_size or max(1, DEFAULT_MAX_ELEMENTS // (t * max(d, 16) * 8))
    for start in range(0, ia.numel(), per_chunk):
        a, b = ia[start:start + per_chunk], ib[start:start + per_chunk]
        x, y = trajectories[a], trajectories[b]
        if fn is histogram_mi:  # scalar samples (..., N)
            x, y = x[..., 0], y[..., 0]
        value = fn(x, y, **kwargs).to(out.dtype)
        out[a, b] = value
        out[b, a] = value
    return out


def pairwise_mi(
    trajectories: Any,
    estimator: str = "kl3",
    *,
    k: int = 3,
    variant: int = 1,
    noise: float | str = "auto",
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
    **kwargs: Any,
) -> Tensor:
    """The ``(P, P)`` matrix of MI (nats) between every pair of ``P`` trajectories ``(P, T, D)``.

    Entry ``[a, b]`` estimates ``I(traj_a; traj_b)`` from the ``T`` paired samples (frames) of the two
    trajectories; the matrix is symmetric and its diagonal holds each estimator's value for a trajectory
    with itself (for the kNN estimators the ceiling ``psi(T) - psi(k)``). For the kNN estimators a constant
    trajectory (a grey patch) has a row and column of exact zeros. Used by twin-patch mining.

    Args:
        trajectories: ``(P, T, D)`` (or ``(P, T)`` for scalar samples).
        estimator: a key of :data:`~mi_augment.mi.ESTIMATORS` (``"kl3"``, ``"ksg"``, ``"gaussian"``,
            ``"histogram"``; histogram needs ``D = 1``).
        k, variant: neighbours and KSG variant for the kNN estimators.
        noise, generator: tie-breaking jitter, as in :func:`~mi_augment.mi.ksg_mi`. It is drawn once per
            trajectory, so with ``noise=0`` entry ``[a, b]`` equals ``ksg_mi(traj[a], traj[b])``
            (respectively ``kl3_mi``) exactly.
        chunk_size: pairs processed at once.
        **kwargs: passed to the estimator for ``"gaussian"`` and ``"histogram"``.

    For the kNN estimators the ``(T, T)`` max-norm distance matrix of every trajectory is computed once; the
    joint distance matrix of a pair is the elementwise maximum of two of them, so each of the
    ``P (P + 1) / 2`` pairs costs a few elementwise passes over ``T x T`` values (k-th smallest by a min/max
    tournament, neighbour counts by binary search in pre-sorted rows). Cost ``O(P^2 T^2)``, memory
    ``O(P T^2)``. Inside ``mi_augment.kernel_options(fast_paths=False)`` every pair goes through the estimator.
    """
    from . import ESTIMATORS  # late import: the registry lives in the package

    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {sorted(ESTIMATORS)}, got {estimator!r}")
    z = as_float_tensor(trajectories, "trajectories")
    if z.ndim == 2:
        z = z[..., None]
    if z.ndim != 3:
        raise ValueError(f"trajectories must have shape (P, T, D) or (P, T), got {tuple(z.shape)}")
    check_finite(z, "trajectories")
    check_generator(generator)
    chunk_size = check_chunk_size(chunk_size)
    p, t, d = z.shape
    if p == 0:
        return z.new_empty(0, 0)
    if estimator in ("kl3", "ksg"):
        k = check_k(k)
        if t <= k:
            raise ValueError(f"trajectories need more samples than k: T={t}, k={k} (N <= k)")
        if variant not in (1, 2) or isinstance(variant, bool):
            raise ValueError(f"variant must be 1 or 2, got {variant!r}")
        if current().fast_paths and p * t * t <= DEFAULT_MAX_ELEMENTS:  # speed path: shared distance matrices
            return _knn_pairwise(z, estimator, k, variant, chunk_size, noise, generator)
        # The public implementation (and the route when too many distance matrices to hold at once): score
        # pairs through the estimator itself.
        extra = {"k": k, "noise": noise, "generator": generator, **kwargs}
        if estimator == "ksg":
            extra["variant"] = variant
        return _generic_pairwise(z, ESTIMATORS[estimator], chunk_size, **extra)
    if estimator == "histogram" and d != 1:
        raise ValueError(f"the histogram estimator needs scalar samples (D = 1), got D={d}")
    return _generic_pairwise(z, ESTIMATORS[estimator], chunk_size, **kwargs)


__all__ = ["pairwise_mi"]
