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

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..core.validation import check_positive_int

__all__ = ["CutDetection", "detect_cuts", "frames_to_numpy", "histogram_distances", "iter_shot_windows"]


def frames_to_numpy(frames: str | os.PathLike | Tensor | np.ndarray, *, max_side: int | None = None,
                    name: str = "frames", min_frames: int = 1) -> np.ndarray:
    """Frames as a ``(T, H, W, C)`` uint8 numpy array (C = 1 or 3, RGB), optionally downscaled so the longer
    side is at most ``max_side`` (area interpolation). Accepts a video path, a ``(T, C, H, W)`` tensor (uint8 or
    float in [0, 1]) or a ``(T, H, W, C)`` uint8 array. Float input is checked for NaN / inf."""
    import cv2

    from .io import read_video

    if max_side is not None:
        max_side = check_positive_int(max_side, "max_side")
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
            arr = np.empty((frames.shape[0], *frames.shape[2:], frames.shape[1]), dtype=np.uint8)
            for i in range(0, frames.shape[0], 8):  # a few frames at a time: a window's float copy is 100s of MB
                chunk = frames[i:i + 8].detach().clamp(0, 1).mul_(255).round_().to(torch.uint8)
                arr[i:i + 8] = chunk.permute(0, 2, 3, 1).cpu().numpy()
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

    arr = frames_to_numpy(frames, max_side=work_side, min_frames=2)
    h = np.stack([_histogram(f, bins) for f in arr])
    return 1.0 - np.minimum(h[1:], h[:-1]).sum(axis=1)


def _histogram(frame: np.ndarray, bins: int) -> np.ndarray:
    """Normalised joint colour histogram of one ``(H, W, C)`` uint8 frame (grey frames: ``4 * bins`` bins)."""
    import cv2

    c = frame.shape[2]
    channels = list(range(c))
    hist_bins = [bins] * c if c == 3 else [4 * bins]
    h = cv2.calcHist([frame], channels, None, hist_bins, [0, 256] * len(channels)).ravel()
    return h / max(float(h.sum()), 1.0)


def _threshold(d: np.ndarray, t: int, min_distance: float, strong_distance: float, ratio: float,
               window: int) -> float:
    """The adaptive threshold of pair ``t``: ``ratio`` times the median of the ``window`` distances either side,
    kept within ``[min_distance, strong_distance]``."""
    neighbours = np.concatenate([d[max(0, t - window):t], d[t + 1:t + 1 + window]])
    local = np.median(neighbours) if neighbours.size else 0.0
    return float(min(max(min_distance, ratio * local), strong_distance))


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
    _check_cut_options(min_distance, strong_distance, ratio, window)
    d = histogram_distances(frames, bins=bins)
    thresholds = np.array([_threshold(d, t, min_distance, strong_distance, ratio, window) for t in range(len(d))])
    cuts = tuple(int(t + 1) for t in np.flatnonzero(d >= thresholds))
    return CutDetection(cuts=cuts, distances=d, thresholds=thresholds)


def _check_cut_options(min_distance: float, strong_distance: float, ratio: float, window: int) -> None:
    if not (0 < min_distance <= strong_distance <= 1):
        raise ValueError(f"need 0 < min_distance <= strong_distance <= 1, got {min_distance}, {strong_distance}")
    if ratio < 1 or window < 1:
        raise ValueError(f"ratio must be >= 1 and window >= 1, got {ratio}, {window}")


# ------------------------------------------------------------------------------------------------ streaming


class _CutStream:
    """Hard cuts decided as frames arrive, exactly as :func:`detect_cuts` decides them on the whole clip: pair
    ``t`` is decided once the ``window`` distances after it are known (or the stream has ended)."""

    def __init__(self, cuts: Sequence[int] | str | None, bins: int = 8, work_side: int = 160, **options):
        if isinstance(cuts, str) and cuts != "auto":
            raise ValueError(f"cuts must be 'auto', None or a sequence of frame indices, got {cuts!r}")
        self.auto = cuts == "auto"
        self.cuts = [] if self.auto or cuts is None else sorted({int(c) for c in cuts})
        self.options = {"min_distance": 0.15, "strong_distance": 0.5, "ratio": 3.0, "window": 8, **options}
        _check_cut_options(**self.options)
        self.bins, self.work_side = bins, work_side
        self.distances: list[float] = []
        self.previous: np.ndarray | None = None
        self.decided = 0  # pairs [0, decided) are decided: every cut at a frame <= decided is in self.cuts

    def add(self, frame: Tensor) -> None:
        if not self.auto:
            return
        h = _histogram(frames_to_numpy(frame[None], max_side=self.work_side)[0], self.bins)
        if self.previous is not None:
            self.distances.append(1.0 - float(np.minimum(h, self.previous).sum()))
        self.previous = h
        self._decide(final=False)

    def finish(self) -> None:
        if self.auto:
            self._decide(final=True)

    def _decide(self, final: bool) -> None:
        d = np.asarray(self.distances)
        window = self.options["window"]
        while self.decided < len(d) and (final or self.decided + window < len(d)):
            t = self.decided
            if d[t] >= _threshold(d, t, **self.options):
                self.cuts.append(t + 1)
            self.decided += 1

    def known_until(self) -> float:
        """Every cut at a frame up to this index is known."""
        return self.decided if self.auto else math.inf

    def next_cut(self, after: int) -> int | None:
        return next((c for c in self.cuts if c > after), None)


def _window_stop(stream: _CutStream, start: int, read: int, length: int | None, final: bool) -> int | None:
    """Where the window starting at ``start`` ends, or None while that is not known yet (``read`` frames in)."""
    end = None if length is None else start + length
    cut = stream.next_cut(start)
    if cut is not None and cut <= read and (end is None or cut <= end):
        return cut
    if end is not None and read >= end and stream.known_until() >= end - 1:
        return end
    if final:
        return read if end is None else min(read, end)
    return None


def iter_shot_windows(frames: Iterable[Tensor], length: int | None = None, cuts: Sequence[int] | str | None = "auto",
                      min_length: int = 2) -> Iterator[tuple[int, int, Tensor]]:
    """Split a stream of frames at hard cuts into shots, and each shot into windows of ``length`` frames,
    holding only the current window (plus the few frames the cut detector looks ahead) in memory.

    The shots are those of :func:`mi_augment.video.tracking.shot_segments` on the whole clip (cuts found by
    :func:`detect_cuts` with its defaults); each shot is cut into windows from its start.

    Args:
        frames: an iterable of ``(C, H, W)`` frames (uint8, or float in [0, 1]), e.g.
            :func:`mi_augment.video.io.iter_video`.
        length: frames per window (an integer >= 1); None: a window is a whole shot.
        cuts: ``"auto"`` (detect hard cuts), a sequence of shot starts, or None (one shot).
        min_length: windows shorter than this are skipped.

    Returns:
        an iterator of ``(start, stop, clip)``: frame indices (``stop`` exclusive) and the ``(T, C, H, W)`` clip.

    Example:
        >>> frames = [torch.full((3, 8, 8), 40 if t < 5 else 220, dtype=torch.uint8) for t in range(12)]
        >>> [(a, b, tuple(w.shape)) for a, b, w in iter_shot_windows(frames, length=4)]
        [(0, 4, (4, 3, 8, 8)), (5, 9, (4, 3, 8, 8)), (9, 12, (3, 3, 8, 8))]
    """
    if length is not None:
        length = check_positive_int(length, "length")
    min_length = check_positive_int(min_length, "min_length")
    return _shot_windows(iter(frames), length, _CutStream(cuts), min_length)


def _shot_windows(frames: Iterator[Tensor], length: int | None, stream: _CutStream,
                  min_length: int) -> Iterator[tuple[int, int, Tensor]]:
    buffer: list[Tensor] = []  # the frames from `start` on
    start, final = 0, False
    while True:
        frame = next(frames, None)
        if frame is None:
            stream.finish()
            final = True
        else:
            buffer.append(frame)
            stream.add(frame)
        while buffer:
            stop = _window_stop(stream, start, start + len(buffer), length, final)
            if stop is None:
                break
            if stop - start >= min_length:
                yield start, stop, torch.stack(buffer[: stop - start])
            buffer, start = buffer[stop - start:], stop
        if final:
            return
