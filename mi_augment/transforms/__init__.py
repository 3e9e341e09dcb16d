"""User-facing transforms."""

from .base import RandomTransform
from .illumination import NaturalIllumination
from .motion import NaturalMotion
from .pair import MIPairAlbumentations, MIPairTransform, PairInfo, PairParams

__all__ = [
    "RandomTransform",
    "NaturalIllumination",
    "NaturalMotion",
    "MIPairTransform",
    "MIPairAlbumentations",
    "PairInfo",
    "PairParams",
]
