"""Video input, hard cuts, camera motion, point tracking and twin-patch mining (the paper's video route)."""

from .cuts import CutDetection, detect_cuts, iter_shot_windows
from .io import VideoReadError, as_clip, iter_video, read_video
from .motion_estimation import GlobalMotion, estimate_global_motion
from .tracking import shot_segments, track_patches, track_points
from .twins import (
    MiningOptions,
    TwinPatchDataset,
    TwinPatches,
    mine_shots,
    mine_twin_patches,
    mine_windows,
    plot_twins,
    twins_from_trajectories,
)

__all__ = [
    "CutDetection",
    "detect_cuts",
    "iter_shot_windows",
    "VideoReadError",
    "as_clip",
    "iter_video",
    "read_video",
    "GlobalMotion",
    "estimate_global_motion",
    "shot_segments",
    "track_patches",
    "track_points",
    "MiningOptions",
    "TwinPatchDataset",
    "TwinPatches",
    "mine_shots",
    "mine_twin_patches",
    "mine_windows",
    "plot_twins",
    "twins_from_trajectories",
]
