"""Estimating a :class:`~mi_augment.perturbations.MotionModel` from video: global camera motion per frame pair.

Hard cuts (:func:`mi_augment.video.cuts.detect_cuts`) and pairs that cannot be aligned are rejected and never
counted as motion. Each usable pair gives the camera's similarity (tracked corners, forward-backward check,
RANSAC: :func:`mi_augment.video.motion_estimation.estimate_global_motion`) and the motion blur its velocity
implies. This module is where motion fitting touches :mod:`mi_augment.video` (imported here, never by the
model), so ``import mi_augment.transforms`` loads neither video code nor OpenCV.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ...video.cuts import detect_cuts, frames_to_numpy
from ...video.io import read_video
from ...video.motion_estimation import estimate_global_motion, mean_displacement, similarity_from_matrix
from ..base import Estimates
from .provenance import describe_file

if TYPE_CHECKING:
    from ..motion import MotionModel

__all__ = ["estimate_motion"]


def _clip_list(data: Any) -> list[Any]:
    if isinstance(data, (str, os.PathLike, np.ndarray)):
        return [data]
    if isinstance(data, Tensor):
        if data.ndim == 5:
            return list(data)
        return [data]
    if isinstance(data, Sequence) and not isinstance(data, (bytes, bytearray)):
        if len(data) == 0:
            raise ValueError("MotionModel.fit got an empty list of clips")
        return list(data)
    raise TypeError("MotionModel.fit expects a video path, a (T, C, H, W) tensor, a (T, H, W, C) uint8 array or a "
                    f"list of those, got {type(data).__name__}")


def _native_size(clip: Any) -> tuple[int, int] | None:
    """(H, W) of a clip before any downscaling (read from the file's header for paths)."""
    if isinstance(clip, (str, os.PathLike)):
        import cv2

        cap = cv2.VideoCapture(str(clip))
        try:
            w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        finally:
            cap.release()
        return (h, w) if h > 0 and w > 0 else None
    if isinstance(clip, Tensor) and clip.ndim == 4:
        return int(clip.shape[2]), int(clip.shape[3])
    if isinstance(clip, np.ndarray) and clip.ndim == 4:
        return int(clip.shape[1]), int(clip.shape[2])
    return None


def _observations(motion: Any, usable: np.ndarray, gaps: Sequence[int], exposure_fraction: float,
                  h: int, w: int) -> list[list[float]]:
    """One row ``[100 dx, 100 dy, degrees, 100 log scale, 100 bx, 100 by]`` per usable pair and gap."""
    n = len(usable)
    side = float(max(h, w))
    centre = np.full((n, 2), np.nan)  # centre displacement of every usable consecutive pair, fraction of side
    for t in np.flatnonzero(usable):
        centre[t] = similarity_from_matrix(motion.matrices[t], h, w)[2] / side
    rows = []
    for gap in gaps:
        for t in range(n - gap + 1):
            if not usable[t:t + gap].all():
                continue
            m = np.eye(3)
            for k in range(t, t + gap):
                m = motion.matrices[k] @ m
            log_s, rot, trans_px = similarity_from_matrix(m, h, w)
            # velocity at the target frame t+gap: mean of the usable pairs on either side of it
            around = [centre[k] for k in (t + gap - 1, t + gap) if k < n and usable[k]]
            blur = exposure_fraction * np.mean(around, axis=0)
            rows.append([100 * trans_px[0] / side, 100 * trans_px[1] / side, math.degrees(rot), 100 * log_s,
                         100 * blur[0], 100 * blur[1]])
    return rows


def _clip_statistics(motion: Any, usable: np.ndarray, h: int, w: int) -> dict[str, Any]:
    """Displacement and residual local motion of the usable pairs, as fractions of the longer side."""
    side = float(max(h, w))
    disp = np.array([mean_displacement(motion.matrices[t], h, w) for t in np.flatnonzero(usable)]) / side
    local = motion.local_motion_px[usable] if usable.any() else np.zeros(0)
    return {
        # per-frame displacement over the frame, fraction of the longer side (multiply by a side in px)
        "displacement_median": float(np.median(disp)) if disp.size else None,
        "displacement_p90": float(np.percentile(disp, 90)) if disp.size else None,
        "inlier_fraction_median": float(np.median(motion.inlier_fraction[usable])) if usable.any() else None,
        "residual_median": float(np.nanmedian(motion.residual_px[usable])) / side if usable.any() else None,
        "local_motion_median": (float(np.nanmedian(local)) / side
                                if local.size and np.isfinite(local).any() else None),
    }


def _estimate_clip(model: MotionModel, clip: Any, label: str) -> tuple[np.ndarray, dict[str, Any]]:
    cfg = model.config
    frames = frames_to_numpy(clip, max_side=cfg["max_side"], name=label)
    if frames.shape[0] < 2:
        raise ValueError(f"{label} has {frames.shape[0]} frame; motion needs at least 2 frames")
    h, w = frames.shape[1:3]
    cuts = detect_cuts(frames)
    motion = estimate_global_motion(frames)
    n = frames.shape[0] - 1
    usable = motion.valid & ~cuts.is_cut
    candidates = int((~cuts.is_cut).sum())
    minimum = math.ceil(cfg["min_consistent_share"] * candidates)
    if candidates and int(usable.sum()) < minimum:
        raise ValueError(
            f"{label}: only {int(usable.sum())} of {candidates} frame pairs (hard cuts aside) are consistent "
            f"with one camera motion; at least {minimum} (min_consistent_share="
            f"{cfg['min_consistent_share']:g}) are needed to trust them: is it noise, or a scene "
            f"without a static background? (rejected: {motion.reason_counts})")
    rows = _observations(motion, usable, cfg["gaps"], cfg["exposure_fraction"], h, w)
    counts: dict[str, int] = {}
    for t in np.flatnonzero(~usable):
        why = "hard cut" if cuts.is_cut[t] else motion.reasons[t]
        counts[why] = counts.get(why, 0) + 1
    info = {"clip": label, "frames": int(frames.shape[0]), "analysed_size": [int(h), int(w)], "n_pairs": int(n),
            "n_used": int(usable.sum()), "n_rejected": int(n - usable.sum()), "rejected_reasons": counts,
            "cuts": list(cuts.cuts), "unaligned_pairs": [int(t) for t in np.flatnonzero(~motion.valid)],
            "n_observations": len(rows), **_clip_statistics(motion, usable, h, w)}
    return np.asarray(rows, dtype=np.float64).reshape(-1, 6), info


def estimate_motion(model: MotionModel, data: Any, progress: bool = False) -> Estimates:
    """Per-pair motion observations from video(s), with ``model``'s settings.

    Args:
        model: supplies the settings (``model.config``: gaps, exposure fraction, ``max_side``, ``max_frames``,
            ``stride``, ``min_consistent_share``).
        data: a video path, a ``(T, C, H, W)`` tensor (uint8 or float in [0, 1]), a ``(T, H, W, C)`` uint8
            array, or a list of those (or an ``(N, T, C, H, W)`` tensor).
        progress: show a progress bar over clips.

    Returns:
        :class:`~mi_augment.perturbations.Estimates` whose ``n_used`` counts observations (one per usable pair
        and gap) and ``n_rejected`` the consecutive frame pairs rejected; ``details`` holds
        ``rejected_reasons``, ``n_pairs_used``, ``max_side_used``, and per-clip statistics (cuts, median
        displacement and residual local motion as fractions of the longer side, inlier fraction, and for
        files their name, size and SHA-256). Raises ``ValueError`` naming the clip when less than
        ``min_consistent_share`` of its frame pairs (hard cuts aside) are consistent with one camera motion.

    Shape:
        - vectors: :math:`(N, 6)`.
    """
    clips = _clip_list(data)
    iterator = clips
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(clips, desc="motion: clips", unit="clip")
    rows: list[np.ndarray] = []
    per_clip: list[dict[str, Any]] = []
    reasons: dict[str, int] = {}
    for index, clip in enumerate(iterator):
        is_file = isinstance(clip, (str, os.PathLike))
        label = str(clip) if is_file else f"clip {index}"
        native = _native_size(clip)
        file_info = describe_file(clip) if is_file else None
        if is_file:
            clip = read_video(clip, max_frames=model.config["max_frames"], stride=model.config["stride"],
                              max_side=model.config["max_side"])
        vectors, info = _estimate_clip(model, clip, label)
        info["native_size"] = list(native) if native else None
        if file_info is not None:
            info["file"] = file_info
        rows.append(vectors)
        per_clip.append(info)
        for k, v in info["rejected_reasons"].items():
            reasons[k] = reasons.get(k, 0) + v
    all_rows = np.concatenate(rows, axis=0)
    n_rejected = sum(c["n_rejected"] for c in per_clip)
    if all_rows.shape[0] == 0:
        raise ValueError(
            f"no usable frame pairs: all {n_rejected} pairs were rejected ({reasons}); a clip made only of "
            "hard cuts (or of frames that cannot be aligned) has no camera motion to learn from")
    details = {"rejected_reasons": reasons, "n_pairs_used": sum(c["n_used"] for c in per_clip),
               "clips": per_clip, "param_names": model.param_names,
               "max_side_used": max(max(c["analysed_size"]) for c in per_clip)}
    return Estimates(vectors=torch.from_numpy(all_rows), n_used=int(all_rows.shape[0]), n_rejected=n_rejected,
                     details=details)
