"""Video input and (later) tracking and twin-patch mining."""

from .io import VideoReadError, as_clip, read_video

__all__ = ["VideoReadError", "as_clip", "read_video"]
