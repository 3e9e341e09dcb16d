"""Reading clips into ``(T, C, H, W)`` uint8 tensors (OpenCV's FFmpeg-backed reader, no system ffmpeg)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..core.validation import check_positive_int


class VideoReadError(ValueError):
    """A video file could not be decoded."""


def _check_read_arguments(path, start: int, max_frames: int | None, stride: int,
                          max_side: int | None) -> tuple[Path, int, int | None, int, int | None]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    stride = check_positive_int(stride, "stride")
    start = check_positive_int(start, "start", minimum=0)
    if max_frames is not None:
        max_frames = check_positive_int(max_frames, "max_frames")
    if max_side is not None:
        max_side = check_positive_int(max_side, "max_side")
    return path, start, max_frames, stride, max_side


def _to_rgb(frame: np.ndarray, max_side: int | None) -> np.ndarray:
    """A decoded BGR (or grey) frame as ``(H, W, 3)`` RGB, downscaled so its longer side is at most ``max_side``."""
    import cv2

    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    if max_side is not None and max(frame.shape[:2]) > max_side:
        s = max_side / max(frame.shape[:2])
        size = (max(1, round(frame.shape[1] * s)), max(1, round(frame.shape[0] * s)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return frame


def iter_video(path: str | os.PathLike, *, start: int = 0, max_frames: int | None = None, stride: int = 1,
               max_side: int | None = None) -> Iterator[Tensor]:
    """Decode a video file frame by frame: memory holds one decoded frame, whatever the clip's length.

    Arguments are checked when this is called; the file is opened on the first ``next``. When the file ends
    before the frame count its header announces (a truncated or damaged file), a :class:`UserWarning` says
    how many of how many frames were decoded.

    Args:
        path: a file OpenCV/FFmpeg can decode (mp4, avi, ...).
        start: index of the first frame to keep.
        max_frames: yield at most this many frames (after ``stride``); None yields all.
        stride: keep every ``stride``-th frame.
        max_side: if given (an integer >= 1), downscale (area interpolation) so the longer side is at most this
            many pixels.

    Returns:
        an iterator of ``(3, H, W)`` uint8 RGB tensors.

    Example:
        >>> import tempfile, cv2, numpy as np
        >>> path = tempfile.mkdtemp() + "/clip.avi"
        >>> writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
        >>> for _ in range(5):
        ...     _ = writer.write(np.zeros((48, 64, 3), np.uint8))
        >>> writer.release()
        >>> [tuple(f.shape) for f in iter_video(path, max_side=32, max_frames=2)]
        [(3, 24, 32), (3, 24, 32)]
    """
    path, start, max_frames, stride, max_side = _check_read_arguments(path, start, max_frames, stride, max_side)
    return _decode_frames(path, start, max_frames, stride, max_side)


def _decode_frames(path: Path, start: int, max_frames: int | None, stride: int,
                   max_side: int | None) -> Iterator[Tensor]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoReadError(f"cannot open video {path}: not a video OpenCV/FFmpeg can decode")
        announced = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        decoded = kept = 0
        while max_frames is None or kept < max_frames:
            ok, frame = cap.read()
            if not ok:
                if 0 < decoded < announced:
                    warnings.warn(f"{path}: decoded {decoded} of the {announced} frames its header announces "
                                  "(truncated or damaged file); using the frames decoded", stacklevel=2)
                return
            if decoded >= start and (decoded - start) % stride == 0:
                kept += 1
                yield torch.from_numpy(_to_rgb(frame, max_side)).permute(2, 0, 1).contiguous()
            decoded += 1
    finally:
        cap.release()


def read_video(path: str | os.PathLike, *, start: int = 0, max_frames: int | None = None, stride: int = 1,
               max_side: int | None = None, min_frames: int = 1) -> Tensor:
    """Decode a video file to a ``(T, 3, H, W)`` uint8 RGB tensor (the whole clip in memory: long clips are
    better streamed with :func:`iter_video`).

    Args:
        path: a file OpenCV/FFmpeg can decode (mp4, avi, ...).
        start: index of the first frame to keep.
        max_frames: keep at most this many frames (after ``stride``); None keeps all.
        stride: keep every ``stride``-th frame.
        max_side: if given (an integer >= 1), downscale (area interpolation) so the longer side is at most this
            many pixels.
        min_frames: raise :class:`VideoReadError` if fewer frames than this were decoded.

    Shape:
        - Output: :math:`(T, 3, H, W)` uint8.

    Example:
        >>> import tempfile, cv2, numpy as np
        >>> path = tempfile.mkdtemp() + "/clip.avi"
        >>> writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
        >>> for _ in range(6):
        ...     _ = writer.write(np.zeros((48, 64, 3), np.uint8))
        >>> writer.release()
        >>> tuple(read_video(path, stride=2).shape)
        (3, 3, 48, 64)
    """
    frames = list(iter_video(path, start=start, max_frames=max_frames, stride=stride, max_side=max_side))
    if len(frames) < max(min_frames, 1):
        raise VideoReadError(
            f"{path}: decoded {len(frames)} frame(s), need at least {max(min_frames, 1)} "
            "(unreadable, truncated or too short video)"
        )
    return torch.stack(frames)


def as_clip(video: str | os.PathLike | Tensor | np.ndarray, name: str = "video", **read_kwargs) -> Tensor:
    """Accept a path, a ``(T, C, H, W)`` tensor (uint8 or float in [0, 1]) or a ``(T, H, W, C)`` uint8 array;
    return a float ``(T, C, H, W)`` tensor in [0, 1]."""
    if isinstance(video, (str, os.PathLike)):
        video = read_video(video, **read_kwargs)
    if isinstance(video, np.ndarray):
        if video.ndim != 4 or video.dtype != np.uint8:
            raise ValueError(f"{name}: numpy clips must be (T, H, W, C) uint8, got {video.dtype} {video.shape}")
        video = torch.from_numpy(video).permute(0, 3, 1, 2)
    if not isinstance(video, Tensor):
        raise TypeError(f"{name} must be a path, a (T, C, H, W) tensor or a (T, H, W, C) uint8 array, "
                        f"got {type(video).__name__}")
    if video.ndim != 4 or video.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have shape (T, C, H, W) with C in (1, 3), got {tuple(video.shape)}")
    if video.dtype == torch.uint8:
        return video.float().div_(255.0)  # in place: one float copy of the clip, not two
    if not video.is_floating_point():
        raise TypeError(f"{name} must be uint8 or float, got {video.dtype}")
    if not bool(torch.isfinite(video).all()):
        raise ValueError(f"{name} contains NaN or inf values")
    return video.float()
