"""mi_augment: augmentations learned from real footage and positive pairs chosen by mutual information."""

__version__ = "0.1.0"
