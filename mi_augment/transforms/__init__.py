"""User-facing transforms."""

from .base import RandomTransform
from .illumination import NaturalIllumination
from .motion import NaturalMotion
from .pair import MIPairAlbumentations, MIPairCollate, MIPairTransform, PairInfo, PairParams

__all__ = [
    "RandomTransform",
    "NaturalIllumination",
    "NaturalMotion",
    "MIPairTransform",
    "MIPairAlbumentations",
    "MIPairCollate",
    "PairInfo",
    "PairParams",
]
