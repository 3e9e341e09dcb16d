"""Pure, batched kernels. They never draw random numbers: parameters come in as tensors.

Every transform and model renders through these public kernels (one per operation); each may run a faster
internal form for the inputs it covers, checked against its reference inside
``mi_augment.kernel_options(fast_paths=False)``. Modules: :mod:`.color` (sRGB, luma, illumination, the
``adjust_*``), :mod:`.jitter` (ColorJitter), :mod:`.crops` (resized crops), :mod:`.geometry` (similarities,
motion blur, moving points and boxes), :mod:`.warp` (image and mask warps, the one-pass ``crop_warp``).

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
from .geometry import blur_3x3, motion_blur, motion_blur_kernels, similarity_matrices, warp_boxes, warp_points
from .jitter import color_jitter
from .warp import crop_warp, warp_affine, warp_and_blur, warp_homography, warp_masks

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
    "blur_3x3",
    "color_jitter",
    "crop_warp",
    "motion_blur",
    "motion_blur_kernels",
    "similarity_matrices",
    "warp_affine",
    "warp_and_blur",
    "warp_boxes",
    "warp_homography",
    "warp_masks",
    "warp_points",
]
