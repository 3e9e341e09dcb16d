"""Twin-patch mining: positives across entities, found by the mutual information of patch trajectories.

After Chen & Yang, "Mutual Information guided Visual Contrastive Learning" (arXiv 2511.00028): two patches of
a video are *twins* when their trajectories share a lot of information: parts of one object, or objects that
move as one. A patch and its twin are a positive pair that no augmentation of a single image produces.

The pipeline, for one shot (hard cuts split a clip into shots; tracks never cross them):

1. **Patches.** A grid of ``patch_size`` boxes over the shot's first frame (the reference frame).
2. **Tracking.** Up to ``points_per_side ** 2`` textured points per patch (the strongest corner response in
   each cell of a small grid over the patch) are tracked with pyramidal Lucas-Kanade and a forward-backward
   check; the patch moves by the median step of its points, and lost points are re-seeded in the patch's new
   position (:func:`mi_augment.video.tracking.track_patches`). A patch that loses all its points at once
   (textureless, occluded, left the frame) has no trajectory.
3. **Camera motion removed.** The global motion of every frame pair
   (:func:`mi_augment.video.motion_estimation.estimate_global_motion`, RANSAC, so moving objects are outliers;
   then refitted on the points of the patches that stay stillest over the whole shot) predicts where each point
   would be if it were static background; the *residual velocity* (actual step minus predicted step) is what
   the patch does by itself. Velocities, not positions: positions of a random
   walk are non-stationary and any two of them look dependent; increments are (close to) independent samples.
4. **Features.** ``"position"``: the patch's residual velocity (median over its points; plus the depth change
   when a depth callable is given). ``"colour"``: the change of the patch's mean colour (a box that follows the
   patch), minus the median change over all patches (a global exposure change is not shared information).
5. **Low-entropy patches** (static, or with constant velocity, or textureless): the standard deviation of the
   features over time is below ``min_motion`` (pixels / frame) and ``min_colour``: no twin. The features are
   dithered with noise at a quarter of those thresholds, so that a sequence that is exactly still on most
   frames does not collapse the kNN distances.
6. **All-pairs MI** of the active patches' feature sequences with :func:`mi_augment.mi.pairwise_mi` (``kl3``
   by default, or ``ksg``). Twin = highest-MI partner, excluding the patch itself and, with
   ``exclude_neighbors``, the patches whose boxes touch or overlap it.
7. **Significance** against a shuffled baseline: the same best-partner maximum computed for (up to 48) patches
   whose sequences are circularly shifted in time (which keeps each sequence's own autocorrelation but
   destroys alignment), pooled over those patches and at least ``n_shuffles`` shifts. The p-value of a patch
   is the fraction of baseline maxima at least as large as its observed maximum. Patches with p > ``alpha`` (or a best MI <= 0) get no twin.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core.artifact import (
    ArtifactError,
    expect_dict,
    expect_int,
    expect_list,
    expect_str,
    expect_tensor,
    load_artifact,
    save_artifact,
)
from ..core.validation import check_positive_int, check_probability
from .io import as_clip, read_video
from .tracking import DepthFn, PatchTracks, sample_map, shot_segments, track_patches

__all__ = [
    "FEATURES",
    "MiningOptions",
    "TwinPatchDataset",
    "TwinPatches",
    "mine_shots",
    "mine_twin_patches",
    "neighbor_mask",
    "patch_grid",
    "plot_twins",
    "twins_from_trajectories",
]

#: trajectory features a patch can be described by
FEATURES = ("position", "colour")
_ESTIMATORS = ("kl3", "ksg")
_CAMERA_MODELS = ("similarity", "affine", "homography", "none")
#: fewest feature samples (frame steps) the kNN estimators are asked to work with
MIN_STEPS = 8
#: patches whose shifted sequences form the shuffled baseline (all of them when there are fewer)
_NULL_ROWS = 48


# --------------------------------------------------------------------------------------------- patches


def patch_grid(height: int, width: int, patch_size: int, stride: int | None = None) -> Tensor:
    """``(P, 4)`` float boxes ``(x1, y1, x2, y2)`` of a regular grid of ``patch_size`` squares, ``stride``
    apart (default: ``patch_size``, no overlap), centred in a ``height x width`` frame."""
    patch_size = check_positive_int(patch_size, "patch_size")
    stride = patch_size if stride is None else check_positive_int(stride, "stride")
    if patch_size > min(height, width):
        raise ValueError(f"patch_size={patch_size} is larger than the frame ({height}x{width} pixels); "
                         "choose a patch_size no larger than the shorter side")
    nx = (width - patch_size) // stride + 1
    ny = (height - patch_size) // stride + 1
    x0 = (width - (patch_size + (nx - 1) * stride)) // 2
    y0 = (height - (patch_size + (ny - 1) * stride)) // 2
    ys, xs = torch.meshgrid(torch.arange(ny) * stride + y0, torch.arange(nx) * stride + x0, indexing="ij")
    x1, y1 = xs.flatten().float(), ys.flatten().float()
    return torch.stack([x1, y1, x1 + patch_size, y1 + patch_size], dim=1)


def neighbor_mask(boxes: Tensor) -> Tensor:
    """``(P, P)`` bool: boxes that overlap or touch (edge or corner), the patch itself excluded."""
    lo, hi = boxes[:, :2], boxes[:, 2:]
    touch = (lo[:, None] <= hi[None] + 0.5) & (lo[None] <= hi[:, None] + 0.5)
    mask = touch.all(-1)
    mask.fill_diagonal_(False)
    return mask


# ------------------------------------------------------------------------------------------- features


def _fit_motion(model: str, src: np.ndarray, dst: np.ndarray, threshold: float) -> np.ndarray | None:
    """One 3x3 global motion matrix (``src`` -> ``dst`` points) by RANSAC, or None if it cannot be fitted."""
    import cv2

    if len(src) < (4 if model == "homography" else 3):
        return None
    if model == "homography":
        m, _ = cv2.findHomography(src, dst, cv2.RANSAC, threshold)
        return m
    fit = cv2.estimateAffinePartial2D if model == "similarity" else cv2.estimateAffine2D
    m, _ = fit(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold, refineIters=10)
    return None if m is None else np.vstack([m, [0.0, 0.0, 1.0]])


def _project(matrices: Tensor, points: Tensor) -> Tensor:
    """Apply ``(S, 3, 3)`` matrices to ``(S, M, 2)`` points."""
    m = matrices.to(points.dtype)
    moved = points @ m[:, :2, :2].transpose(1, 2) + m[:, None, :2, 2]
    scale = points @ m[:, 2, :2, None] + m[:, None, 2, 2:]
    return moved / scale


def _camera_motion(frames: Tensor, tracks: PatchTracks, model: str, still: float) -> tuple[Tensor, Tensor]:
    """``(T-1, 3, 3)`` global motion (point of frame t -> frame t+1) and ``(T-1,)`` validity.

    Two passes. First, :func:`~mi_augment.video.motion_estimation.estimate_global_motion` (RANSAC on corners of
    each frame pair). RANSAC alone is biased by movers whose step happens to be small on a given frame (they
    count as inliers there) and by movers grouped on one side of the frame (they tilt rotation and scale).
    Movers are, however, movers over the whole shot: the second pass keeps only the patches whose residual
    motion over the shot is small (RMS at most ``max(still, median over patches)``, so at least the stiller
    half) and refits every frame pair on their tracked points alone.
    """
    steps = frames.shape[0] - 1
    if model == "none":
        return torch.eye(3, dtype=torch.float64).repeat(steps, 1, 1), torch.ones(steps, dtype=torch.bool)
    from .motion_estimation import estimate_global_motion

    first = estimate_global_motion(frames, model=model)
    matrices, valid = torch.from_numpy(first.matrices), torch.from_numpy(first.valid)
    tracked = tracks.survivors()
    if int(tracked.sum()) < 4 or not bool(valid.any()):
        return matrices, valid
    residual = _patch_residuals(tracks, matrices)[:, :, :2]  # (T-1, P, 2)
    rms = residual[valid][:, tracked].pow(2).sum(-1).mean(0).sqrt()
    background = torch.zeros_like(tracked)
    background[torch.nonzero(tracked).flatten()] = rms <= max(still, float(rms.median()))
    refit = matrices.clone()
    for t in range(steps):
        src, dst = tracks.start[t, background].reshape(-1, 2), tracks.end[t, background].reshape(-1, 2)
        both = ~(torch.isnan(src[:, 0]) | torch.isnan(dst[:, 0]))
        m = _fit_motion(model, src[both].numpy(), dst[both].numpy(), threshold=max(0.5, still))
        if m is not None and np.isfinite(m).all():
            refit[t] = torch.from_numpy(m.astype(np.float64))
            valid[t] = True
    return refit, valid


def _patch_residuals(tracks: PatchTracks, matrices: Tensor) -> Tensor:
    """``(T-1, P, 2 or 3)``: per patch and frame step, the median over its points of (actual step - the step
    the camera motion predicts), plus the depth change when depth was tracked; NaN where no point was tracked."""
    steps, p_count, slots, _ = tracks.start.shape
    flat = tracks.start.reshape(steps, p_count * slots, 2).double()
    predicted = _project(matrices, flat).float().reshape(tracks.start.shape)
    residual = (tracks.end - predicted).nanmedian(dim=2).values
    if tracks.depth_start is not None:
        dz = (tracks.depth_end - tracks.depth_start).nanmedian(dim=2).values
        residual = torch.cat([residual, dz[..., None]], dim=2)
    return residual


def _box_means(clip: Tensor, centres: Tensor, patch_size: int) -> Tensor:
    """Mean colour ``(T, P, C)`` of the ``patch_size`` boxes centred on ``centres (T, P, 2)``: the frame is box
    filtered, then sampled bilinearly at the (sub-pixel) centres, so a box moving by a fraction of a pixel
    changes its mean smoothly. Centres are kept far enough inside the frame for the whole box to fit."""
    import cv2

    t_count, c, h, w = clip.shape
    half = patch_size / 2
    x = centres[..., 0].clamp(half - 0.5, w - half - 0.5)
    y = centres[..., 1].clamp(half - 0.5, h - half - 0.5)
    out = torch.zeros(t_count, centres.shape[1], c)
    for t in range(t_count):
        img = np.ascontiguousarray(clip[t].permute(1, 2, 0).numpy().astype(np.float32))
        blurred = cv2.blur(img, (patch_size, patch_size), borderType=cv2.BORDER_REFLECT)
        maps = torch.from_numpy(blurred.reshape(h, w, c))
        where = torch.stack([x[t], y[t]], dim=1)
        for ch in range(c):
            out[t, :, ch] = sample_map(maps[:, :, ch], where)
    return out


@dataclass
class _Trajectories:
    centres: Tensor  # (T, P, 2) patch centre (NaN once the patch is lost)
    tracked: Tensor  # (P,) bool: tracked through the whole shot
    position: Tensor  # (S, P, 2 or 3) residual velocity over the valid steps (0 for untracked patches)
    colour: Tensor  # (S, P, C) mean-colour change minus the median change
    steps: Tensor  # (T-1,) bool: frame steps kept (camera motion known)


def _trajectories(clip: Tensor, boxes: Tensor, opts: MiningOptions) -> _Trajectories:
    tracks = track_patches(clip, boxes, points_per_side=opts.points_per_side, min_texture=opts.min_texture,
                           window_size=opts.window_size, fb_threshold=opts.fb_threshold, depth=opts.depth)
    tracked = tracks.survivors()
    matrices, steps = _camera_motion(clip, tracks, opts.camera_motion, opts.min_motion)
    velocity = _patch_residuals(tracks, matrices)
    if velocity.shape[2] == 3:  # depth change minus the median change (a dolly moves everything alike)
        dz = velocity[:, tracked, 2:]
        velocity[:, :, 2:] -= dz.median(dim=1, keepdim=True).values if bool(tracked.any()) else 0.0
    velocity = torch.where(tracked[None, :, None], velocity, 0.0)
    centres = tracks.centres
    safe = torch.where(torch.isnan(centres), (boxes[:, :2] + boxes[:, 2:]) / 2, centres)
    means = _box_means(clip, safe, opts.patch_size)
    dc = means[1:] - means[:-1]
    if bool(tracked.any()):
        dc = dc - dc[:, tracked].median(dim=1, keepdim=True).values
    return _Trajectories(centres=centres, tracked=tracked, position=velocity[steps], colour=dc[steps], steps=steps)


# ---------------------------------------------------------------------------------------- MI and twins


def _all_pairs(x: Tensor, estimator: str, k: int) -> Tensor:
    """``(P, P)`` MI between the sequences ``x (P, S, D)`` (:func:`mi_augment.mi.pairwise_mi`)."""
    from ..mi import pairwise_mi

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
    from ..mi import ESTIMATORS

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
    if estimator not in _ESTIMATORS:
        raise ValueError(f"estimator must be one of {_ESTIMATORS}, got {estimator!r}")
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


# -------------------------------------------------------------------------------------------- result


@dataclass(frozen=True)
class TwinPatches:
    """Twin patches mined from one shot of a video.

    Attributes:
        boxes: ``(P, 4)`` float ``(x1, y1, x2, y2)`` in reference-frame pixels (the shot's first frame).
        mi: ``(P, P)`` MI between patch trajectories in nats (0 on the diagonal and for inactive patches).
        twins: ``(P,)`` int64, index of each patch's twin, -1 for none.
        significance: ``(P,)`` p-value of the best partner against the shuffled baseline (1 when not tested).
        active: ``(P,)`` bool, tracked through the shot and varying enough to be tested.
        tracked: ``(P,)`` bool, at least one of the patch's points survived the whole shot.
        centres: ``(T, P, 2)`` tracked centre of each patch in every frame of the shot (NaN if not tracked).
        frame_range: ``(start, stop)`` frames of the input clip the shot covers (``stop`` exclusive).
        settings: how the result was mined (patch size, features, estimator, thresholds, ...).
    """

    boxes: Tensor
    mi: Tensor
    twins: Tensor
    significance: Tensor
    active: Tensor
    tracked: Tensor
    centres: Tensor
    frame_range: tuple[int, int]
    settings: dict[str, Any] = field(default_factory=dict)

    KIND = "twin_patches"
    VERSION = 1

    @property
    def num_patches(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def num_twins(self) -> int:
        return int((self.twins >= 0).sum())

    def pairs(self) -> Tensor:
        """``(M, 2)`` int64 ``(patch, twin)`` index pairs."""
        i = torch.nonzero(self.twins >= 0).flatten()
        return torch.stack([i, self.twins[i]], dim=1)

    def twin_mi(self) -> Tensor:
        """``(P,)`` MI between each patch and its twin (NaN for patches without one)."""
        out = torch.full((self.num_patches,), float("nan"))
        i = torch.nonzero(self.twins >= 0).flatten()
        out[i] = self.mi[i, self.twins[i]]
        return out

    def summary(self) -> dict[str, Any]:
        """Counts and MI statistics, JSON-ready."""
        twin_mi = self.twin_mi()
        has = twin_mi[~torch.isnan(twin_mi)]
        return {
            "frames": list(self.frame_range),
            "patches": self.num_patches,
            "tracked": int(self.tracked.sum()),
            "active": int(self.active.sum()),
            "twins": self.num_twins,
            "median_twin_mi": float(has.median()) if has.numel() else None,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the result as a safe JSON artifact (see :mod:`mi_augment.core.artifact`)."""
        tensors = {"boxes": self.boxes, "mi": self.mi, "twins": self.twins, "significance": self.significance,
                   "active": self.active, "tracked": self.tracked, "centres": self.centres}
        meta = {"frame_range": list(self.frame_range), "settings": self.settings}
        return save_artifact(path, self.KIND, self.VERSION, meta, tensors)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TwinPatches:
        """Read a result written by :meth:`save`, validated (fields, shapes, dtypes, finite values, twin
        indices in range, one centre per frame of ``frame_range``); problems raise
        :class:`~mi_augment.core.artifact.ArtifactError` naming the file and the field."""
        meta, t, _ = load_artifact(path, cls.KIND, cls.VERSION, max_elements=MAX_TWIN_ELEMENTS)
        meta = expect_dict(meta, path, "meta", keys=("frame_range", "settings"), required=("frame_range",))
        frame_range = expect_list(meta["frame_range"], path, "meta.frame_range", 2)
        if len(frame_range) != 2:
            raise ArtifactError(f"{path}: meta.frame_range must be [start, stop], got {len(frame_range)} values")
        start = expect_int(frame_range[0], path, "meta.frame_range[0]", 0, 2**31 - 1)
        stop = expect_int(frame_range[1], path, "meta.frame_range[1]", start + 2, 2**31 - 1)
        settings = expect_dict(meta.get("settings", {}), path, "meta.settings")
        names = ("boxes", "mi", "twins", "significance", "active", "tracked", "centres")
        unknown = sorted(set(t) - set(names))
        if unknown:
            raise ArtifactError(f"{path}: unknown tensor(s) {unknown}; expected {list(names)}")
        boxes = expect_tensor(t, path, "boxes", (None, 4))
        p = boxes.shape[0]
        if bool((boxes[:, 2:] < boxes[:, :2]).any()):
            raise ArtifactError(f"{path}: tensors.boxes must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1")
        mi = expect_tensor(t, path, "mi", (p, p))
        twins = expect_tensor(t, path, "twins", (p,), "int", low=-1, high=p - 1)
        if bool((twins == torch.arange(p)).any()):
            raise ArtifactError(f"{path}: tensors.twins pairs a patch with itself")
        significance = expect_tensor(t, path, "significance", (p,), low=0.0, high=1.0)
        active = expect_tensor(t, path, "active", (p,), "bool")
        tracked = expect_tensor(t, path, "tracked", (p,), "bool")
        centres = expect_tensor(t, path, "centres", (stop - start, p, 2), finite=False)
        if bool(torch.isinf(centres).any()):
            raise ArtifactError(f"{path}: tensors.centres holds infinite values (NaN marks a lost patch)")
        return cls(boxes=boxes.float(), mi=mi.float(), twins=twins.long(), significance=significance.float(),
                   active=active, tracked=tracked, centres=centres.float(), frame_range=(start, stop),
                   settings=dict(settings))


#: element cap per tensor in twin files (a 16k-patch MI matrix is 2**28 values)
MAX_TWIN_ELEMENTS = 2**28


# ---------------------------------------------------------------------------------------------- mining


@dataclass(frozen=True)
class MiningOptions:
    """How twin patches are mined (the keyword arguments of :func:`mine_twin_patches`, validated)."""

    patch_size: int = 32
    stride: int | None = None
    features: tuple[str, ...] = ("position",)
    estimator: str = "kl3"
    k: int = 3
    exclude_neighbors: bool = True
    alpha: float = 0.01
    n_shuffles: int = 4
    min_motion: float = 0.3
    min_colour: float = 0.01
    camera_motion: str = "similarity"
    points_per_side: int = 3
    min_texture: float = 5e-5
    window_size: int = 15
    fb_threshold: float = 1.0
    depth: DepthFn | None = None

    def __post_init__(self):
        check_positive_int(self.patch_size, "patch_size")
        if self.stride is not None:
            check_positive_int(self.stride, "stride")
        chosen = (self.features,) if isinstance(self.features, str) else tuple(self.features)
        if not chosen or any(f not in FEATURES for f in chosen) or len(set(chosen)) != len(chosen):
            raise ValueError(f"features must be a non-empty selection of {FEATURES} without repeats, "
                             f"got {self.features!r}")
        object.__setattr__(self, "features", chosen)
        if self.estimator not in _ESTIMATORS:
            raise ValueError(f"estimator must be one of {_ESTIMATORS}, got {self.estimator!r}")
        if self.camera_motion not in _CAMERA_MODELS:
            raise ValueError(f"camera_motion must be one of {_CAMERA_MODELS}, got {self.camera_motion!r}")
        check_positive_int(self.k, "k")
        check_positive_int(self.n_shuffles, "n_shuffles")
        check_positive_int(self.points_per_side, "points_per_side")
        check_positive_int(self.window_size, "window_size", minimum=3)
        check_probability(self.alpha, "alpha")
        for name in ("min_motion", "min_colour", "min_texture", "fb_threshold"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.depth is not None and not callable(self.depth):
            raise TypeError(f"depth must be a callable frame -> depth map, or None, got {type(self.depth).__name__}")

    def settings(self) -> dict[str, Any]:
        """JSON-ready record of the options (the depth callable is recorded as present or not)."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "depth"}
        out["features"] = list(self.features)
        out["stride"] = self.stride or self.patch_size
        out["depth"] = self.depth is not None
        return out


def _spread(x: Tensor) -> Tensor:
    """Standard deviation over frame steps ``x (S, P, D) -> (P, D)``; 0 with fewer than two steps (a grey or
    untrackable clip), where ``std`` would warn about degrees of freedom and return NaN."""
    return x.std(dim=0) if x.shape[0] >= 2 else x.new_zeros(x.shape[1:])


def _mine_clip(clip: Tensor, frame_range: tuple[int, int], opts: MiningOptions) -> TwinPatches:
    """Mine one shot (no cuts inside) given as a float ``(T, C, H, W)`` clip."""
    boxes = patch_grid(clip.shape[2], clip.shape[3], opts.patch_size, opts.stride)
    traj = _trajectories(clip, boxes, opts)
    steps = int(traj.steps.sum())
    parts, moving = [], torch.zeros(boxes.shape[0], dtype=torch.bool)
    # Dither each feature with noise at a quarter of its stillness threshold, below what counts as motion:
    # sequences that sit exactly still on most frames would otherwise have near-zero neighbour distances,
    # which throws kNN entropy estimates far off. A fixed seed keeps results reproducible.
    dither = torch.Generator().manual_seed(0)
    if "position" in opts.features:
        moving |= _spread(traj.position).norm(dim=1) >= opts.min_motion
        noise = torch.randn(traj.position.shape, generator=dither) * (opts.min_motion / 4)
        parts.append(traj.position + noise)
    if "colour" in opts.features:
        moving |= _spread(traj.colour).norm(dim=1) >= opts.min_colour
        noise = torch.randn(traj.colour.shape, generator=dither) * (opts.min_colour / 4)
        parts.append(traj.colour + noise)
    active = traj.tracked & moving
    settings = {**opts.settings(), "steps": steps}
    p_count = boxes.shape[0]
    if steps < max(MIN_STEPS, opts.k + 2):  # camera motion unknown on most frame steps
        mi, twins, p_values = torch.zeros(p_count, p_count), torch.full((p_count,), -1), torch.ones(p_count)
        active = torch.zeros_like(active)
    else:
        seq = torch.cat(parts, dim=2).permute(1, 0, 2).contiguous()  # (P, S, D)
        exclude = neighbor_mask(boxes) if opts.exclude_neighbors else None
        mi, twins, p_values = twins_from_trajectories(seq, active=active, exclude=exclude, estimator=opts.estimator,
                                                      k=opts.k, alpha=opts.alpha, n_shuffles=opts.n_shuffles)
    return TwinPatches(boxes=boxes, mi=mi, twins=twins, significance=p_values, active=active,
                       tracked=traj.tracked, centres=traj.centres, frame_range=frame_range, settings=settings)


def _load_clip(video: Any, opts: MiningOptions, max_frames: int | None,
               read_kwargs: dict[str, Any] | None) -> Tensor:
    """The clip, validated; uint8 input stays uint8 (4x less memory) until each window is mined."""
    if isinstance(video, (str, os.PathLike)):
        clip = read_video(video, **(read_kwargs or {}))
    elif isinstance(video, Tensor) and video.dtype == torch.uint8 and video.ndim == 4 and video.shape[1] in (1, 3):
        clip = video
    else:
        clip = as_clip(video)
    h, w = clip.shape[2:]
    if opts.patch_size > min(h, w):
        raise ValueError(f"patch_size={opts.patch_size} is larger than the frame ({h}x{w} pixels); "
                         "choose a patch_size no larger than the shorter side")
    if clip.shape[0] < MIN_STEPS + 1:
        raise ValueError(f"the video has {clip.shape[0]} frame(s); twin mining needs at least {MIN_STEPS + 1} "
                         "frames of one shot to estimate MI between patch trajectories")
    if max_frames is not None:
        check_positive_int(max_frames, "max_frames", minimum=MIN_STEPS + 1)
    return clip


def mine_twin_patches(video: str | os.PathLike | Tensor | np.ndarray, patch_size: int = 32, *,
                      max_frames: int | None = 64, cuts: Sequence[int] | str | None = "auto",
                      read_kwargs: dict[str, Any] | None = None, **options: Any) -> TwinPatches:
    """Mine twin patches from the longest shot of a video (its first ``max_frames`` frames).

    Args:
        video: a path, a ``(T, C, H, W)`` tensor (uint8 or float in [0, 1]) or a ``(T, H, W, C)`` uint8 array.
        patch_size: side of the square patches, pixels of the video as given.
        max_frames: frames of the shot used (from its start); None uses the whole shot.
        cuts: ``"auto"`` (detect hard cuts), a list of shot starts, or None (the clip is one shot).
        read_kwargs: passed to :func:`mi_augment.video.read_video` when ``video`` is a path
            (e.g. ``{"max_side": 384, "stride": 2}``).
        **options: any field of :class:`MiningOptions`:

            * ``stride``: grid spacing (default ``patch_size``: patches tile the frame).
            * ``features``: ``"position"`` (residual velocity after camera-motion removal; the default) and/or
              ``"colour"`` (mean colour change of the patch). With both, each sample has 5 dimensions (10 for
              a pair) and ``kl3`` underestimates badly from a few dozen frames; use ``estimator="ksg"``.
            * ``estimator``: ``"kl3"`` (default) or ``"ksg"``, the all-pairs MI estimator; ``k`` its neighbours.
            * ``exclude_neighbors``: never pick a patch whose box touches or overlaps the patch's own (default).
            * ``alpha``, ``n_shuffles``: level and circular shifts of the shuffled-baseline test.
            * ``min_motion``: residual-velocity standard deviation (pixels / frame) below which a patch is still;
              ``min_colour``: the same for colour change (0..1 units / frame).
            * ``camera_motion``: global motion removed first (``"similarity"``, ``"affine"``, ``"homography"``),
              or ``"none"`` for a fixed camera.
            * ``points_per_side``: tracked points per patch side; ``min_texture``: corner response (smaller
              structure-tensor eigenvalue, 5x5, grey in [0, 1]) a point needs, so textureless patches have no
              trajectory; ``window_size``: Lucas-Kanade window; ``fb_threshold``: forward-backward tolerance.
            * ``depth``: optional callable ``frame (C, H, W) -> depth (H, W)``; adds the depth change to
              "position".

    Returns:
        a :class:`TwinPatches`; ``frame_range`` says which frames of ``video`` it covers.
    """
    opts = MiningOptions(patch_size=patch_size, **options)
    clip = _load_clip(video, opts, max_frames, read_kwargs)
    shots = shot_segments(clip, cuts, min_length=1)
    start, stop = max(shots, key=lambda s: s[1] - s[0])
    if max_frames is not None:
        stop = min(stop, start + max_frames)
    if stop - start < MIN_STEPS + 1:
        raise ValueError(f"the longest shot of the video has {stop - start} frame(s) (hard cuts split it); twin "
                         f"mining needs at least {MIN_STEPS + 1}")
    return _mine_clip(as_clip(clip[start:stop]), (start, stop), opts)


def mine_shots(video: str | os.PathLike | Tensor | np.ndarray, patch_size: int = 32, *,
               max_frames: int | None = 64, cuts: Sequence[int] | str | None = "auto",
               read_kwargs: dict[str, Any] | None = None, **options: Any) -> list[TwinPatches]:
    """Mine every shot of a video: split it at hard cuts, cut each shot into windows of ``max_frames`` frames
    and mine each window of at least ``MIN_STEPS + 1`` frames. Arguments as :func:`mine_twin_patches`."""
    opts = MiningOptions(patch_size=patch_size, **options)
    clip = _load_clip(video, opts, max_frames, read_kwargs)
    out = []
    for start, stop in shot_segments(clip, cuts, min_length=MIN_STEPS + 1):
        window = max_frames or (stop - start)
        for a in range(start, stop, window):
            b = min(stop, a + window)
            if b - a >= MIN_STEPS + 1:
                out.append(_mine_clip(as_clip(clip[a:b]), (a, b), opts))
    return out


# --------------------------------------------------------------------------------------------- dataset


def _crop_boxes(centres: Tensor, size: int, height: int, width: int) -> Tensor:
    """Top-left corners ``(..., 2)`` of ``size`` squares centred on ``centres``, rounded and kept inside."""
    x = (centres[..., 0] - size / 2).round().clamp(0, width - size)
    y = (centres[..., 1] - size / 2).round().clamp(0, height - size)
    return torch.stack([x, y], dim=-1).long()


class TwinPatchDataset(torch.utils.data.Dataset):
    """(patch, twin) crops for contrastive training: item ``i`` is a pair of ``(C, S, S)`` float tensors in
    [0, 1], the two patches cut from the same frame at their tracked positions.

    Build it with :meth:`from_result` (one mined shot plus its video), join several with :meth:`concat`, and
    store it with :meth:`save` / :meth:`load` (a safe JSON artifact: crops as uint8, nothing executed on load).

    Args:
        crops: ``(N, 2, C, S, S)`` uint8.
        info: per-item metadata tensors of length N: ``patch``, ``twin`` (patch indices in their shot),
            ``frame`` (frame index in the source video), ``mi`` (nats), ``p_value`` and ``source`` (index into
            ``sources``).
        sources: names of the videos / shots the items come from.
        transform: optional callable applied to each crop of a pair (e.g. a torchvision transform).
    """

    KIND = "twin_patch_dataset"
    VERSION = 1
    _INFO = ("patch", "twin", "frame", "mi", "p_value", "source")

    def __init__(self, crops: Tensor, info: dict[str, Tensor], sources: Sequence[str], transform=None):
        if not isinstance(crops, Tensor) or crops.ndim != 5 or crops.shape[1] != 2 or crops.dtype != torch.uint8:
            raise ValueError(f"crops must be an (N, 2, C, S, S) uint8 tensor, got "
                             f"{getattr(crops, 'dtype', type(crops).__name__)} {tuple(getattr(crops, 'shape', ()))}")
        missing = [k for k in self._INFO if k not in info]
        if missing:
            raise ValueError(f"info lacks {missing}")
        for key in self._INFO:
            if info[key].shape != (crops.shape[0],):
                raise ValueError(f"info[{key!r}] must have shape ({crops.shape[0]},), got {tuple(info[key].shape)}")
        self.crops = crops
        self.info = {k: info[k] for k in self._INFO}
        self.sources = [str(s) for s in sources]
        if crops.shape[0] and int(self.info["source"].max()) >= len(self.sources):
            raise ValueError("info['source'] refers to a source name that is not in sources")
        self.transform = transform

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        pair = self.crops[index].float() / 255.0
        patch, twin = pair[0], pair[1]
        if self.transform is not None:
            patch, twin = self.transform(patch), self.transform(twin)
        return patch, twin

    def describe(self, index: int) -> dict[str, Any]:
        """Where item ``index`` comes from: source, frame, patch and twin indices, MI and p-value."""
        out: dict[str, Any] = {k: self.info[k][index].item() for k in self._INFO}
        out["source"] = self.sources[int(out["source"])]
        return out

    @classmethod
    def from_result(cls, result: TwinPatches, video: str | os.PathLike | Tensor | np.ndarray, *,
                    frames_per_pair: int = 8, source: str = "video", crop_size: int | None = None,
                    read_kwargs: dict[str, Any] | None = None, transform=None) -> TwinPatchDataset:
        """Cut (patch, twin) crops from ``video`` (the same clip ``result`` was mined from) at
        ``frames_per_pair`` frames spread evenly over the shot. ``crop_size`` defaults to the patch size."""
        frames_per_pair = check_positive_int(frames_per_pair, "frames_per_pair")
        if isinstance(video, (str, os.PathLike)):
            clip = read_video(video, **(read_kwargs or {}))
        elif isinstance(video, Tensor) and video.dtype == torch.uint8:
            clip = video
        else:
            clip = (as_clip(video) * 255.0).round().to(torch.uint8)
        size = int(crop_size or result.settings.get("patch_size") or (result.boxes[0, 2] - result.boxes[0, 0]))
        _, c, h, w = clip.shape
        start, stop = result.frame_range
        if stop > clip.shape[0]:
            raise ValueError(f"result covers frames {start}..{stop} but the video has {clip.shape[0]} frames")
        pairs = result.pairs()
        t_local = torch.linspace(0, stop - start - 1, min(frames_per_pair, stop - start)).round().long().unique()
        n = pairs.shape[0] * t_local.numel()
        crops = torch.zeros(n, 2, c, size, size, dtype=torch.uint8)
        info = {key: torch.zeros(n, dtype=torch.long) for key in ("patch", "twin", "frame", "source")}
        info["mi"] = torch.zeros(n)
        info["p_value"] = torch.zeros(n)
        row = 0
        for i, j in pairs.tolist():
            for t in t_local.tolist():
                frame = clip[start + t]
                for side, patch in enumerate((i, j)):
                    x, y = _crop_boxes(result.centres[t, patch], size, h, w).tolist()
                    crops[row, side] = frame[:, y:y + size, x:x + size]
                info["patch"][row], info["twin"][row], info["frame"][row] = i, j, start + t
                info["mi"][row], info["p_value"][row] = result.mi[i, j], result.significance[i]
                row += 1
        return cls(crops, info, [source], transform=transform)

    @classmethod
    def empty(cls, channels: int = 3, size: int = 32) -> TwinPatchDataset:
        """A dataset with no items (``channels`` x ``size`` x ``size`` crops)."""
        info = {k: torch.zeros(0, dtype=torch.float32 if k in ("mi", "p_value") else torch.long) for k in cls._INFO}
        return cls(torch.zeros(0, 2, channels, size, size, dtype=torch.uint8), info, [])

    @classmethod
    def concat(cls, datasets: Sequence[TwinPatchDataset], transform=None) -> TwinPatchDataset:
        """One dataset holding the items of all ``datasets`` (crop sizes and channels must match)."""
        datasets = list(datasets)
        if not datasets:
            raise ValueError("concat needs at least one dataset")
        shapes = {tuple(d.crops.shape[2:]) for d in datasets if len(d)}
        if len(shapes) > 1:
            raise ValueError(f"cannot concatenate datasets with different crop shapes: {sorted(shapes)}")
        sources: list[str] = []
        info: dict[str, list[Tensor]] = {k: [] for k in cls._INFO}
        for d in datasets:
            for key in cls._INFO:
                info[key].append(d.info[key] + len(sources) if key == "source" else d.info[key])
            sources.extend(d.sources)
        shape = shapes.pop() if shapes else tuple(datasets[0].crops.shape[2:])
        crops = torch.cat([d.crops.reshape(-1, 2, *shape) for d in datasets])
        return cls(crops, {k: torch.cat(v) for k, v in info.items()}, sources, transform=transform)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the crops and metadata as a safe JSON artifact (atomic; see :mod:`mi_augment.core.artifact`)."""
        tensors = {"crops": self.crops, **{f"info.{k}": v for k, v in self.info.items()}}
        return save_artifact(path, self.KIND, self.VERSION, {"sources": self.sources}, tensors)

    @classmethod
    def load(cls, path: str | os.PathLike, transform=None) -> TwinPatchDataset:
        """Read a dataset written by :meth:`save`; never executes anything from the file. Fields, shapes,
        dtypes, ranges and source indices are validated; problems raise
        :class:`~mi_augment.core.artifact.ArtifactError` naming the file and the field."""
        meta, tensors, _ = load_artifact(path, cls.KIND, cls.VERSION, max_elements=MAX_TWIN_ELEMENTS)
        meta = expect_dict(meta, path, "meta", keys=("sources",), required=("sources",))
        sources = expect_list(meta["sources"], path, "meta.sources", 2**20)
        for i, name in enumerate(sources):
            expect_str(name, path, f"meta.sources[{i}]")
        names = ("crops", *(f"info.{k}" for k in cls._INFO))
        unknown = sorted(set(tensors) - set(names))
        if unknown:
            raise ArtifactError(f"{path}: unknown tensor(s) {unknown}; expected {list(names)}")
        crops = expect_tensor(tensors, path, "crops", (None, 2, None, None, None), "int")
        if crops.dtype != torch.uint8 or crops.shape[3] != crops.shape[4] or not 1 <= crops.shape[2] <= 4:
            raise ArtifactError(f"{path}: tensors.crops must be (N, 2, C, S, S) uint8 with 1 <= C <= 4, got "
                                f"{str(crops.dtype)[6:]} {tuple(crops.shape)}")
        n = crops.shape[0]
        info = {}
        for key in cls._INFO:
            if key in ("mi", "p_value"):
                high = 1.0 if key == "p_value" else None
                info[key] = expect_tensor(tensors, path, f"info.{key}", (n,), low=0.0 if high else None, high=high)
            else:
                info[key] = expect_tensor(tensors, path, f"info.{key}", (n,), "int", low=0).long()
        if n and int(info["source"].max()) >= len(sources):
            raise ArtifactError(f"{path}: tensors.info.source refers to source {int(info['source'].max())}, but "
                                f"meta.sources lists {len(sources)}")
        try:
            return cls(crops, info, sources, transform=transform)
        except (KeyError, ValueError) as exc:
            raise ArtifactError(f"{path}: not a valid twin-patch dataset ({exc})") from None


# --------------------------------------------------------------------------------------------- figure


def plot_twins(result: TwinPatches, frame: Tensor | np.ndarray, ax=None, *, title: str | None = None,
               colorbar: bool = True):
    """Draw ``frame`` (the reference frame: ``(C, H, W)`` tensor or ``(H, W, C)`` uint8 array) with an arrow
    from every patch to its twin, coloured by their MI; active patches without a twin are outlined in grey.
    Returns the matplotlib axes (matplotlib is imported here only)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if isinstance(frame, Tensor):
        img = frame.float() / 255.0 if frame.dtype == torch.uint8 else frame.float()
        img = img.permute(1, 2, 0).clamp(0, 1).cpu().numpy()
    else:
        img = np.asarray(frame)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 8 * img.shape[0] / img.shape[1]))
    ax.imshow(img.squeeze(), cmap="gray" if img.ndim == 2 or img.shape[-1] == 1 else None)
    for i in torch.nonzero(result.active & (result.twins < 0)).flatten().tolist():
        x1, y1, x2, y2 = result.boxes[i].tolist()
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=0.6, ec="0.8", alpha=0.7))
    pairs = result.pairs()
    if pairs.numel():
        values = result.mi[pairs[:, 0], pairs[:, 1]].numpy()
        norm = plt.Normalize(vmin=float(values.min()), vmax=float(max(values.max(), values.min() + 1e-6)))
        cmap = plt.get_cmap("plasma")
        centres = ((result.boxes[:, :2] + result.boxes[:, 2:]) / 2).numpy()
        for (i, j), v in zip(pairs.tolist(), values):
            (x0, y0), (x1, y1) = centres[i], centres[j]
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops=dict(arrowstyle="->", color=cmap(norm(v)), lw=1.3, shrinkA=0, shrinkB=2))
            ax.plot([x0], [y0], "o", ms=2.5, color=cmap(norm(v)))
        if colorbar:
            sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
            ax.figure.colorbar(sm, ax=ax, fraction=0.03, pad=0.01, label="MI with twin (nats)")
    s = result.summary()
    ax.set_title(title or f"frames {s['frames'][0]}-{s['frames'][1]}: {s['twins']} twins, {s['active']} active, "
                          f"{s['patches']} patches", fontsize=9)
    ax.set_axis_off()
    return ax
