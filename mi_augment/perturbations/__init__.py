"""Natural perturbation models fitted from data, and the densities over their parameters."""

from .base import Estimates, PerturbationModel
from .densities import Density, GaussianMixtureDensity, UniformDensity
from .illumination import IlluminationModel, IlluminationParams
from .motion import MotionModel, MotionParams

__all__ = [
    "Estimates",
    "PerturbationModel",
    "Density",
    "GaussianMixtureDensity",
    "UniformDensity",
    "IlluminationModel",
    "IlluminationParams",
    "MotionModel",
    "MotionParams",
]
