"""Hard-cut (shot boundary) detection, so that a jump between two shots is never mistaken for motion.

Method: a colour histogram per frame (joint RGB, ``bins`` per channel, on a small downscaled copy), the
histogram-intersection distance ``d_t = 1 - sum(min(h_t, h_{t+1}))`` between consecutive frames (0: same
colour content, 1: disjoint), and an *adaptive* threshold: pair ``t`` is a cut when

* ``d_t >= strong_distance`` (an unmistakable change), or
* ``d_t >= min_distance`` and ``d_t >= ratio * (median of d over the ``window`` pairs either side of t)``,
  i.e. a spike well above the local level, so a fast pan or a lighting change that raises ``d`` over many
  frames does not fire, but a cut inside such a stretch still does.

Histograms miss cuts between shots with the same colour distribution; callers that also align frames (the
motion estimator) should additionally treat a pair that cannot be aligned as a boundary (see
:class:`mi_augment.perturbations.motion.MotionModel`).

Frames are given as ``(T, C, H, W)`` tensors (uint8, or float in [0, 1]), ``(T, H, W, C)`` uint8 arrays or a
video path. A cut "at frame i" means frame ``i`` is the first frame of a new shot (the pair ``(i-1, i)``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["CutDetection", "detect_cuts", "frames_to_numpy", "histogram_distances"]


def frames_to_numpy(frames: str | os.PathLike | Tensor | np.ndarray, *, max_side: int | None = None,
                    name: str = "frames", min_frames: int = 1) -> np.ndarray:
    """Frames as a ``(T, H, W, C)`` uint8 numpy array (C = 1 or 3, RGB), optionally downscaled so the longer
    side is at most ``max_side`` (area interpolation). Accepts a video path, a ``(T, C, H, W)`` tensor (uint8 or
    float in [0, 1]) or a ``(T, H, W, C)`` uint8 array. Float input is checked for NaN / inf."""
    import cv2

    from .io import read_video

    if isinstance(frames, (str, os.PathLike)):
        frames = read_video(frames, max_side=max_side)
    if isinstance(frames, Tensor):
        if frames.ndim != 4 or frames.shape[1] not in (1, 3):
            raise ValueError(f"{name} must have shape (T, C, H, W) with C = 1 or 3 channels, got "
                             f"{tuple(frames.shape)}")
        if frames.dtype == torch.uint8:
            arr = frames.permute(0, 2, 3, 1).cpu().numpy()
        elif frames.is_floating_point():
            if not bool(torch.isfinite(frames).all()):
                raise ValueError(f"{name} contains NaN or inf values; expected finite numbers in [0, 1]")
            arr = frames.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        else:
            raise TypeError(f"{name} must be uint8 or float, got dtype {frames.dtype}")
    elif isinstance(frames, np.ndarray):
        if frames.ndim != 4 or frames.dtype != np.uint8 or frames.shape[3] not in (1, 3):
            raise ValueError(f"{name}: numpy frames must be a (T, H, W, C) uint8 array with C = 1 or 3, got "
                             f"{frames.dtype} {frames.shape}")
        arr = frames
    else:
        raise TypeError(f"{name} must be a video path, a (T, C, H, W) tensor or a (T, H, W, C) uint8 array, "
                        f"got {type(frames).__name__}")
    if arr.shape[0] < min_frames:
        raise ValueError(f"{name} has {arr.shape[0]} frame(s); at least {min_frames} are needed")
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"{name} has zero height or width: {arr.shape}")
    h, w = arr.shape[1:3]
    if max_side is not None and max(h, w) > max_side:
        s = max_side / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        arr = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1)
                        for f in arr])
    return np.ascontiguousarray(arr)


def histogram_distances(frames: str | os.PathLike | Tensor | np.ndarray, *, bins: int = 8,
                        work_side: int = 160) -> np.ndarray:
    """Histogram-intersection distances ``(T-1,)`` in [0, 1] between consecutive frames."""
    import cv2

    arr = frames_to_numpy(frames, max_side=work_side, min_frames=2)
    c = arr.shape[3]
    channels = list(range(c))
    hist_bins = [bins] * c if c == 3 else [4 * bins]
    hists = []
    for f in arr:
        h = cv2.calcHist([f], channels, None, hist_bins, [0, 256] * len(channels)).ravel()
        hists.append(h / max(float(h.sum()), 1.0))
    h = np.stack(hists)
    return 1.0 - np.minimum(h[1:], h[:-1]).sum(axis=1)


@dataclass(frozen=True)
class CutDetection:
    """Result of :func:`detect_cuts`."""

    cuts: tuple[int, ...]  #: first frame of each new shot (pair ``(i-1, i)`` is a cut)
    distances: np.ndarray  #: ``(T-1,)`` histogram distance between frames ``t`` and ``t+1``
    thresholds: np.ndarray  #: ``(T-1,)`` the adaptive threshold each distance was compared with

    @property
    def is_cut(self) -> np.ndarray:
        """``(T-1,)`` bool: pair ``(t, t+1)`` straddles a cut."""
        mask = np.zeros(self.distances.shape[0], dtype=bool)
        mask[[i - 1 for i in self.cuts]] = True
        return mask


def detect_cuts(frames: str | os.PathLike | Tensor | np.ndarray, *, min_distance: float = 0.15,
                strong_distance: float = 0.5, ratio: float = 3.0, window: int = 8, bins: int = 8) -> CutDetection:
    """Find hard cuts from spikes of the colour-histogram distance (see the module docstring).

    Args:
        frames: a video path, ``(T, C, H, W)`` tensor or ``(T, H, W, C)`` uint8 array, T >= 2.
        min_distance: a spike must reach this distance to count (0..1).
        strong_distance: any pair at or above this distance is a cut whatever its neighbours do.
        ratio: a spike must be this many times the local median distance.
        window: pairs on either side that define the local level.
        bins: histogram bins per colour channel.
    """
    if not (0 < min_distance <= strong_distance <= 1):
        raise ValueError(f"need 0 < min_distance <= strong_distance <= 1, got {min_distance}, {strong_distance}")
    if ratio < 1 or window < 1:
        raise ValueError(f"ratio must be >= 1 and window >= 1, got {ratio}, {window}")
    d = histogram_distances(frames, bins=bins)
    n = d.shape[0]
    local = np.empty(n)
    for t in range(n):
        neighbours = np.concatenate([d[max(0, t - window):t], d[t + 1:t + 1 + window]])
        local[t] = np.median(neighbours) if neighbours.size else 0.0
    thresholds = np.minimum(np.maximum(min_distance, ratio * local), strong_distance)
    cuts = tuple(int(t + 1) for t in np.flatnonzero(d >= thresholds))
    return CutDetection(cuts=cuts, distances=d, thresholds=thresholds)
