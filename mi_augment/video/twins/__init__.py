"""Twin-patch mining: positives across entities, found by the mutual information of patch trajectories.

One module per job: :mod:`~.options` (the settings), :mod:`~.trajectories` (patch grid, tracking, camera
motion removed, features), :mod:`~.matching` (all-pairs MI and the shuffled baseline), :mod:`~.mine` (the
pipeline over the shots of a video, streamed), :mod:`~.result` (one shot's :class:`TwinPatches`),
:mod:`~.dataset` (the crops for training) and :mod:`~.figure` (plotting). See :mod:`~.mine` for the method.
"""

from .dataset import TwinPatchDataset
from .figure import plot_twins
from .matching import twins_from_trajectories
from .mine import mine_shots, mine_twin_patches, mine_windows
from .options import FEATURES, MIN_STEPS, MiningOptions
from .result import MAX_TWIN_ELEMENTS, TwinPatches
from .trajectories import neighbor_mask, patch_grid

__all__ = [
    "FEATURES",
    "MAX_TWIN_ELEMENTS",
    "MIN_STEPS",
    "MiningOptions",
    "TwinPatchDataset",
    "TwinPatches",
    "mine_shots",
    "mine_twin_patches",
    "mine_windows",
    "neighbor_mask",
    "patch_grid",
    "plot_twins",
    "twins_from_trajectories",
]
