"""mi_augment: augmentations learned from real footage and positive pairs chosen by mutual information."""

from .core.options import kernel_options

__version__ = "0.1.0"
__all__ = ["kernel_options"]
