"""User-facing transforms."""

from .base import RandomTransform
from .collate import MIPairCollate
from .illumination import NaturalIllumination
from .motion import NaturalMotion
from .pair import MIPairTransform, PairCandidates, PairInfo, PairParams

__all__ = [
    "RandomTransform",
    "NaturalIllumination",
    "NaturalMotion",
    "MIPairTransform",
    "MIPairCollate",
    "PairCandidates",
    "PairInfo",
    "PairParams",
]
