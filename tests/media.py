"""Test media written in the formats users' footage comes in."""

from __future__ import annotations

import cv2
import numpy as np


def write_video(path, frames, fps: int = 10) -> None:
    """Write RGB frames, uint8 ``(T, H, W, 3)`` (numpy) or ``(T, 3, H, W)`` (tensor), as an MJPG .avi."""
    if not isinstance(frames, np.ndarray):
        frames = frames.permute(0, 2, 3, 1).numpy()
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for frame in frames:
        writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    writer.release()
