"""Estimating perturbation models from footage: alignment (ECC), robust regression, camera motion.

The models in :mod:`mi_augment.perturbations` delegate ``fit`` / ``estimate`` here. This package is the only
place a model touches :mod:`mi_augment.video`; OpenCV is imported inside the functions that need it. The
motion estimator (which needs :mod:`mi_augment.video`) is imported on first use, so importing this package
stays light.
"""

from .alignment import align_pair
from .illumination import ExposureStack, estimate_illumination, fit_illumination
from .provenance import check_observations, describe_file, library_version, minimum_observations
from .robust import PairEstimate, estimate_pair, tukey_weights

__all__ = [
    "ExposureStack",
    "PairEstimate",
    "align_pair",
    "check_observations",
    "describe_file",
    "estimate_illumination",
    "estimate_motion",
    "estimate_pair",
    "fit_illumination",
    "library_version",
    "minimum_observations",
    "tukey_weights",
]


def __getattr__(name: str):
    if name == "estimate_motion":  # loads mi_augment.video, so only when asked for
        from .motion import estimate_motion

        return estimate_motion
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
