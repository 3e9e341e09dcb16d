"""Global (camera) motion between consecutive frames, robust to independently moving objects.

For each pair ``(t, t+1)``:

1. corners are detected in frame ``t`` (``cv2.goodFeaturesToTrack``, spread over the frame);
2. they are tracked into ``t+1`` with pyramidal Lucas-Kanade and back again; a track is kept only when the
   round trip returns within ``fb_threshold`` pixels (a forward-backward check that drops occlusions and
   tracks that slid along edges);
3. a similarity (``cv2.estimateAffinePartial2D``), affine (``cv2.estimateAffine2D``) or homography
   (``cv2.findHomography``) is fitted with RANSAC. Points on independently moving objects disagree with the
   camera motion and end up as outliers, as long as the static background supplies most of the tracks.

A pair is *invalid* (``valid[t]`` false, with a reason) when too few tracks survive or RANSAC finds too small a
consensus: the typical signature of a hard cut, a blank or heavily blurred frame.

Besides the matrices the result reports, per pair, the inlier fraction, the median reprojection error of the
inliers (how well one global motion explains the background) and the median residual displacement of the
outliers (how fast the independently moving content moves relative to the camera). Twin-patch mining can reuse
the matrices to remove camera motion before comparing patches.

All distances are in pixels of the frames as given (matrices are rescaled back when ``max_side`` made the
estimator work on a smaller copy).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from .cuts import frames_to_numpy

__all__ = ["GlobalMotion", "estimate_global_motion", "mean_displacement", "similarity_from_matrix"]

_MODELS = ("similarity", "affine", "homography")


@dataclass(frozen=True)
class GlobalMotion:
    """Per-pair global motion of a clip of T frames (arrays have length T-1)."""

    matrices: np.ndarray  #: ``(T-1, 3, 3)`` float64: pixel ``p`` of frame t moves to ``M p`` in frame t+1
    valid: np.ndarray  #: ``(T-1,)`` bool
    reasons: tuple[str, ...]  #: ``""`` for a valid pair, else why it was rejected
    n_tracked: np.ndarray  #: ``(T-1,)`` tracks that passed the forward-backward check
    inlier_fraction: np.ndarray  #: ``(T-1,)`` RANSAC inliers / tracked (0 when invalid)
    residual_px: np.ndarray  #: ``(T-1,)`` median reprojection error of inliers (NaN when invalid)
    local_motion_px: np.ndarray  #: ``(T-1,)`` median residual motion of outliers (NaN when none)
    size: tuple[int, int]  #: ``(H, W)`` of the frames the matrices refer to

    @property
    def reason_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.reasons:
            if r:
                out[r] = out.get(r, 0) + 1
        return out


def _grey(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.shape[2] == 3 else frame[:, :, 0]


def _fit(model: str, src: np.ndarray, dst: np.ndarray, threshold: float) -> tuple[np.ndarray | None, np.ndarray]:
    import cv2

    if model == "homography":
        m, inliers = cv2.findHomography(src, dst, cv2.RANSAC, threshold, maxIters=2000, confidence=0.995)
    else:
        fit = cv2.estimateAffinePartial2D if model == "similarity" else cv2.estimateAffine2D
        m, inliers = fit(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=2000,
                         confidence=0.995, refineIters=10)
        if m is not None:
            m = np.vstack([m, [0.0, 0.0, 1.0]])
    if m is None or inliers is None:
        return None, np.zeros(len(src), dtype=bool)
    return m.astype(np.float64), inliers.ravel().astype(bool)


def _project(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 3x3 pixel matrix to ``(N, 2)`` points."""
    out = pts @ m[:2, :2].T + m[:2, 2]
    return out / (pts @ m[2, :2] + m[2, 2])[:, None]


def estimate_global_motion(frames: str | os.PathLike | Tensor | np.ndarray, *, model: str = "similarity",
                           max_side: int | None = None, max_corners: int = 400, fb_threshold: float = 1.0,
                           ransac_threshold: float = 1.0, min_inliers: int = 12,
                           min_inlier_fraction: float = 0.3) -> GlobalMotion:
    """Global motion for every consecutive frame pair of a clip.

    Args:
        frames: a video path, ``(T, C, H, W)`` tensor (uint8 or float in [0, 1]) or ``(T, H, W, C)`` uint8
            array with T >= 2.
        model: ``"similarity"`` (rotation, uniform scale, translation; default, what a panning / shaking
            camera mostly does), ``"affine"`` or ``"homography"``.
        max_side: work on a copy whose longer side is at most this (faster); results are in the frames' pixels.
        max_corners: corners detected per frame.
        fb_threshold: forward-backward tracking tolerance, pixels of the working copy.
        ransac_threshold: RANSAC inlier tolerance, pixels of the working copy.
        min_inliers, min_inlier_fraction: a pair with less consensus is invalid ("alignment failed").

    Returns:
        a :class:`GlobalMotion`.
    """
    import cv2

    if model not in _MODELS:
        raise ValueError(f"model must be one of {_MODELS}, got {model!r}")
    full = frames_to_numpy(frames, name="frames", min_frames=2)
    h_full, w_full = full.shape[1:3]
    work = frames_to_numpy(full, max_side=max_side) if max_side is not None else full
    h, w = work.shape[1:3]
    # scale: working pixel = s * full pixel (pixel centres: x_w + 0.5 = s (x_f + 0.5))
    sx, sy = w / w_full, h / h_full
    to_work = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
    to_full = np.linalg.inv(to_work)

    n = work.shape[0] - 1
    mats = np.tile(np.eye(3), (n, 1, 1))
    valid = np.zeros(n, dtype=bool)
    reasons = [""] * n
    n_tracked = np.zeros(n, dtype=np.int64)
    inlier_fraction = np.zeros(n)
    residual = np.full(n, np.nan)
    local = np.full(n, np.nan)
    lk = {"winSize": (21, 21), "maxLevel": 3,
          "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)}
    min_distance = max(3.0, max(h, w) / 60.0)
    grey_next = _grey(work[0])
    for t in range(n):
        grey, grey_next = grey_next, _grey(work[t + 1])
        corners = cv2.goodFeaturesToTrack(grey, maxCorners=max_corners, qualityLevel=0.01,
                                          minDistance=min_distance, blockSize=7)
        if corners is None or len(corners) < min_inliers:
            reasons[t] = "too few features"
            continue
        fwd, st1, _ = cv2.calcOpticalFlowPyrLK(grey, grey_next, corners, None, **lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(grey_next, grey, fwd, None, **lk)
        ok = (st1.ravel() == 1) & (st2.ravel() == 1)
        ok &= np.linalg.norm((back - corners).reshape(-1, 2), axis=1) < fb_threshold
        src, dst = corners.reshape(-1, 2)[ok], fwd.reshape(-1, 2)[ok]
        n_tracked[t] = len(src)
        if len(src) < min_inliers:
            reasons[t] = "alignment failed"
            continue
        m, inliers = _fit(model, src, dst, ransac_threshold)
        fraction = float(inliers.mean()) if len(inliers) else 0.0
        if m is None or inliers.sum() < min_inliers or fraction < min_inlier_fraction:
            reasons[t] = "alignment failed"
            continue
        err = np.linalg.norm(_project(m, src) - dst, axis=1)
        valid[t] = True
        inlier_fraction[t] = fraction
        residual[t] = float(np.median(err[inliers])) / np.sqrt(sx * sy)
        if (~inliers).any():
            local[t] = float(np.median(err[~inliers])) / np.sqrt(sx * sy)
        mats[t] = to_full @ m @ to_work
    return GlobalMotion(matrices=mats, valid=valid, reasons=tuple(reasons), n_tracked=n_tracked,
                        inlier_fraction=inlier_fraction, residual_px=residual, local_motion_px=local,
                        size=(int(h_full), int(w_full)))


def similarity_from_matrix(matrix: np.ndarray, height: int, width: int) -> tuple[float, float, np.ndarray]:
    """Decompose a pixel matrix into ``(log_scale, rotation, translation_px)`` of a similarity about the image
    centre, the inverse of :func:`mi_augment.functional.geometry.similarity_matrices` (up to the translation
    being in pixels here). The linear part is projected onto the nearest rotation-and-scale."""
    a = matrix[:2, :2] / matrix[2, 2]
    # nearest similarity [[p, -q], [q, p]] in the least-squares sense
    p = 0.5 * (a[0, 0] + a[1, 1])
    q = 0.5 * (a[1, 0] - a[0, 1])
    scale = float(np.hypot(p, q))
    rotation = float(np.arctan2(q, p))
    c = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    moved_centre = _project(matrix / matrix[2, 2], c[None])[0]
    return float(np.log(max(scale, 1e-12))), rotation, moved_centre - c


def mean_displacement(matrix: np.ndarray, height: int, width: int, grid: int = 5) -> float:
    """Mean displacement in pixels of a ``grid x grid`` lattice of points spread over the frame."""
    xs, ys = np.meshgrid(np.linspace(0, width - 1, grid), np.linspace(0, height - 1, grid))
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1)
    return float(np.linalg.norm(_project(matrix / matrix[2, 2], pts) - pts, axis=1).mean())
