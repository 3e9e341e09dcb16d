"""User-facing transforms."""

from .base import RandomTransform
from .collate import MIPairCollate
from .illumination import NaturalIllumination
from .motion import NaturalMotion
from .pair import MIPairTransform, PairCandidates, PairInfo, PairParams
from .photometric import ColorJitter, GaussianBlur, RandomGrayscale, RandomSolarize

__all__ = [
    "RandomTransform",
    "NaturalIllumination",
    "NaturalMotion",
    "ColorJitter",
    "GaussianBlur",
    "RandomGrayscale",
    "RandomSolarize",
    "MIPairTransform",
    "MIPairCollate",
    "PairCandidates",
    "PairInfo",
    "PairParams",
]
