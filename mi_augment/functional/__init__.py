"""Pure, batched kernels. They never draw random numbers: parameters come in as tensors.

Colour-space maths (sRGB curve, luma, ``adjust_*``) is Kornia's kernels with argument checks; ``luma`` is
``rgb_to_grayscale`` (one luma, BT.601). Blur and solarisation for the recipes' views are Kornia's
``kornia.filters.gaussian_blur2d`` and ``kornia.enhance.solarize``, called by :mod:`mi_augment.transforms.photometric`.
"""

from .color import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    apply_illumination,
    linear_to_srgb,
    render_shading_field,
    rgb_to_grayscale,
    srgb_to_linear,
)
from .crops import luma, resized_crop
from .geometry import motion_blur, motion_blur_kernels, similarity_matrices, warp_affine, warp_homography

__all__ = [
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "apply_illumination",
    "linear_to_srgb",
    "render_shading_field",
    "rgb_to_grayscale",
    "srgb_to_linear",
    "luma",
    "resized_crop",
    "motion_blur",
    "motion_blur_kernels",
    "similarity_matrices",
    "warp_affine",
    "warp_homography",
]
