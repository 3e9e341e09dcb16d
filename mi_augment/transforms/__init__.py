"""User-facing transforms."""

from .base import RandomTransform
from .motion import NaturalMotion

__all__ = ["RandomTransform", "NaturalMotion"]
