"""Reading clips into ``(T, C, H, W)`` uint8 tensors (OpenCV's FFmpeg-backed reader, no system ffmpeg)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..core.validation import check_positive_int


class VideoReadError(ValueError):
    """A video file could not be decoded."""


def read_video(path: str | os.PathLike, *, start: int = 0, max_frames: int | None = None, stride: int = 1,
               max_side: int | None = None, min_frames: int = 1) -> Tensor:
    """Decode a video file to a ``(T, 3, H, W)`` uint8 RGB tensor.

    Args:
        path: a file OpenCV/FFmpeg can decode (mp4, avi, ...).
        start: index of the first frame to keep.
        max_frames: keep at most this many frames (after ``stride``); None keeps all.
        stride: keep every ``stride``-th frame.
        max_side: if given, downscale (area interpolation) so the longer side is at most this many pixels.
        min_frames: raise :class:`VideoReadError` if fewer frames than this were decoded.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    stride = check_positive_int(stride, "stride")
    start = check_positive_int(start, "start", minimum=0)
    if max_frames is not None:
        max_frames = check_positive_int(max_frames, "max_frames")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoReadError(f"cannot open video {path}: not a video OpenCV/FFmpeg can decode")
    frames: list[np.ndarray] = []
    i = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if i >= start and (i - start) % stride == 0:
                if frame.ndim == 2:
                    frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
                frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                if max_side is not None and max(frame.shape[:2]) > max_side:
                    s = max_side / max(frame.shape[:2])
                    frame = cv2.resize(frame, (max(1, round(frame.shape[1] * s)), max(1, round(frame.shape[0] * s))),
                                       interpolation=cv2.INTER_AREA)
                frames.append(frame)
                if max_frames is not None and len(frames) >= max_frames:
                    break
            i += 1
    finally:
        cap.release()
    if len(frames) < max(min_frames, 1):
        raise VideoReadError(
            f"{path}: decoded {len(frames)} frame(s), need at least {max(min_frames, 1)} "
            "(unreadable, truncated or too short video)"
        )
    arr = np.stack(frames)  # (T, H, W, 3)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


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
        return video.float() / 255.0
    if not video.is_floating_point():
        raise TypeError(f"{name} must be uint8 or float, got {video.dtype}")
    if not bool(torch.isfinite(video).all()):
        raise ValueError(f"{name} contains NaN or inf values")
    return video.float()
