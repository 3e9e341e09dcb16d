"""From trajectories to twins: all-pairs MI, best partner, significance against a shuffled baseline
(steps 6-7 of the mining pipeline in :mod:`mi_augment.video.twins.mine`)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ...core.validation import check_positive_int, check_probability
from .options import MI_ESTIMATORS, MIN_STEPS

__all__ = ["twins_from_trajectories"]

#: patches whose shifted sequences form the shuffled baseline (all of them when there are fewer)
_NULL_ROWS = 48


def _all_pairs(x: Tensor, estimator: str, k: int) -> Tensor:
    """``(P, P)`` MI between the sequences ``x (P, S, D)`` (:func:`mi_augment.mi.pairwise_mi`)."""
    from ...mi import pairwise_mi

    return pairwise_mi(x, estimator, k=k).float().cpu()


def _shifted_scores(x: Tensor, rows: Tensor, shifts: list[int], estimator: str, k: int) -> Tensor:
    """``(len(shifts), R, P)``: MI between row ``rows[r]`` circularly shifted by ``shifts[s]`` and every
    unshifted sequence of ``x (P, S, D)``, with the same estimator as the observed pairs.

    Two ways, whichever is cheaper: score the ``R * len(shifts) * P`` pairs one by one with the estimator, or
    stack the shifted rows under ``x`` and let :func:`~mi_augment.mi.pairwise_mi` score every pair of the stack
    (it shares each sequence's distance matrix between all its pairs, so a pair costs about a sixth of a
    separate call, even counting the shifted-vs-shifted pairs it computes for nothing).
    """
    p, r, n_shifts = x.shape[0], rows.numel(), len(shifts)
    direct_cost = 6 * r * n_shifts * p
    stacked_cost = (p + r * n_shifts) ** 2 / 2
    if stacked_cost <= direct_cost:
        stacked = torch.cat([x] + [torch.roll(x[rows], shifts=s, dims=1) for s in shifts])
        scores = _all_pairs(stacked, estimator, k)
        return scores[p:, :p].reshape(n_shifts, r, p)
    from ...mi import ESTIMATORS

    fn = ESTIMATORS[estimator]
    out = []
    for s in shifts:
        a = torch.roll(x[rows], shifts=s, dims=1)[:, None].expand(-1, p, -1, -1)
        b = x[None].expand(r, -1, -1, -1)
        out.append(fn(a, b, k=k).float().cpu())
    return torch.stack(out)


def _shifts(steps: int, count: int) -> list[int]:
    """``count`` distinct circular shifts spread over ``[steps / 8, steps - steps / 8]`` (far from 0 and from a
    full turn, where a smooth sequence still resembles itself); fewer if the sequence is too short."""
    low = max(1, steps // 8)
    high = max(low, steps - steps // 8)
    count = min(count, high - low + 1)
    return sorted({round(v) for v in np.linspace(low, high, count)})


def twins_from_trajectories(features: Tensor, *, active: Tensor | None = None, exclude: Tensor | None = None,
                            estimator: str = "kl3", k: int = 3, alpha: float = 0.01,
                            n_shuffles: int = 4) -> tuple[Tensor, Tensor, Tensor]:
    """The trajectory-to-twins stage: all-pairs MI, best partner, significance against a shuffled baseline.

    Args:
        features: ``(P, S, D)`` per-patch feature sequences (S time steps; velocities, colour changes, ...).
        active: ``(P,)`` bool, patches that may have (and be) a twin; default all.
        exclude: ``(P, P)`` bool, pairs never allowed as twins besides a patch and itself (e.g. neighbours).
        estimator: ``"kl3"`` or ``"ksg"`` (see :func:`mi_augment.mi.pairwise_mi`).
        k: neighbours of the kNN estimator.
        alpha: significance level; a best partner with p-value above it is not a twin.
        n_shuffles: circular shifts forming the baseline (more are used when needed for the baseline to hold
            at least ``1.5 / alpha`` maxima; it uses at most 48 patches' rows, spread over the active ones).

    Returns:
        ``mi (P, P)`` (nats; 0 on the diagonal and in the rows and columns of inactive patches),
        ``twins (P,)`` (partner index or -1) and ``p_values (P,)`` (1 for inactive patches).
    """
    if not isinstance(features, Tensor) or features.ndim != 3:
        raise ValueError(f"features must be a (P, S, D) tensor, got "
                         f"{tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__}")
    p_count, steps, _ = features.shape
    if estimator not in MI_ESTIMATORS:
        raise ValueError(f"estimator must be one of {MI_ESTIMATORS}, got {estimator!r}")
    alpha = check_probability(alpha, "alpha")
    n_shuffles = check_positive_int(n_shuffles, "n_shuffles")
    k = check_positive_int(k, "k")
    if not bool(torch.isfinite(features).all()):
        raise ValueError("features contains NaN or inf values")
    if steps < max(MIN_STEPS, k + 2):
        raise ValueError(f"features have {steps} time steps; MI needs at least {max(MIN_STEPS, k + 2)}")
    active = torch.ones(p_count, dtype=torch.bool) if active is None else active.bool().cpu()
    allowed = ~torch.eye(p_count, dtype=torch.bool)
    if exclude is not None:
        allowed &= ~exclude.bool().cpu()
    mi = torch.zeros(p_count, p_count)
    twins = torch.full((p_count,), -1, dtype=torch.long)
    p_values = torch.ones(p_count)
    idx = torch.nonzero(active).flatten()
    if idx.numel() < 2:
        return mi, twins, p_values
    x = features[idx].float()
    ok = allowed[idx][:, idx]
    has_partner = ok.any(1)
    # Baseline: up to _NULL_ROWS rows, each circularly shifted in time and scored against every (unshifted)
    # partner; MI(roll(x_i, s), x_j) uses the same sample pairs as MI(x_i, roll(x_j, -s)). Enough shifts for
    # the smallest attainable p-value, 1 / (1 + baseline size), to be below alpha.
    rows = torch.nonzero(has_partner).flatten()
    if rows.numel() == 0:
        return mi, twins, p_values
    null_rows = rows[torch.linspace(0, rows.numel() - 1, min(rows.numel(), _NULL_ROWS)).round().long().unique()]
    wanted = max(n_shuffles, math.ceil(1.5 / max(alpha, 1e-6) / null_rows.numel()))
    shifted = _shifted_scores(x, null_rows, _shifts(steps, wanted), estimator, k)
    null = shifted.masked_fill(~ok[null_rows], -math.inf).max(dim=-1).values.flatten()
    observed_mi = _all_pairs(x, estimator, k)
    observed = observed_mi.masked_fill(~ok, -math.inf).max(dim=1)
    exceed = (null[None, :] >= observed.values[:, None]).sum(1)
    p = (1.0 + exceed.float()) / (1.0 + null.numel())
    observed_mi.fill_diagonal_(0.0)
    mi[idx[:, None], idx[None, :]] = observed_mi
    p_values[idx] = torch.where(has_partner, p, torch.ones_like(p))
    keep = has_partner & (p <= alpha) & (observed.values > 0)
    twins[idx[keep]] = idx[observed.indices[keep]]
    return mi, twins, p_values


