"""The CPU uint8 backend: public kernels on one numpy ``uint8`` image ``[H, W, C]`` (OpenCV and look-up tables),
with the same parameters and the same meaning as the batched torch kernels of :mod:`mi_augment.functional`.

A DataLoader worker renders one image per call; there OpenCV's uint8 kernels (one ``cv2.warpAffine`` for
crop + resize + flip, LUTs for brightness / contrast / gamma / solarize, ``cv2.cvtColor`` for hue, saturation
and grey) are several times faster than float tensor ops. The two backends agree within a documented
tolerance: mean ``|d| <= 1`` level and 99.9th percentile ``<= 4`` levels on a view
(``tests/test_uint8_backend.py``), and the candidate scores within 1e-4 nats.

OpenCV is imported on first use by each kernel, so importing this package (or :mod:`mi_augment.transforms`)
does not load ``cv2``. The scorer's sampling, bins and MI run compiled (:mod:`.compiled`, numba, probed against
torch on first use) where numba is installed; else numpy and torch compute the same scores.
"""

from . import compiled
from .color import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    color_jitter,
    illuminate,
    rgb_to_grayscale,
    solarize,
)
from .geometry import (
    apply_motion,
    crop_matrix,
    crop_warp,
    gaussian_blur,
    motion_blur,
    resized_crop,
    warp_affine,
)
from .illumination import apply_illumination, illumination_table
from .image import as_hwc, block_mean, check_image, hwc_to_tensor, opencv, to_hwc_uint8
from .scoring import candidate_scores, histogram_mi, luma, proxies, proxy_grid, working_luma, xlogx_table

#: The backend's kernel of each view transform class, ``kernel(transform, image, row) -> image``: ``row`` is one
#: sample's params as Python numbers (:meth:`~mi_augment.core.params.Params.row`, or the transform's
#: ``row_from_uniforms``), ``image`` uint8 ``[H, W, C]``. A transform module registers its classes (exact
#: types: a subclass that changes ``transform`` is not covered); :mod:`mi_augment.pairs.one_image` renders a
#: pipeline on this backend only when every entry is registered.
TRANSFORM_KERNELS: dict = {}

#: Kernels, ``kernel(transform, image, row) -> image`` as above, for a row the transform's own
#: ``row_from_uniforms`` drew (a one-image call's lean loop): valid by construction, so rendered without argument
#: checks where checking costs (``ColorJitter``: ``color_jitter(..., check=False)``). A class missing here uses its
#: :data:`TRANSFORM_KERNELS` kernel; rows from params (a batch, a replay) always take the checked kernels.
DRAWN_ROW_KERNELS: dict = {}

__all__ = [
    "TRANSFORM_KERNELS",
    "compiled",
    "DRAWN_ROW_KERNELS",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "apply_illumination",
    "block_mean",
    "color_jitter",
    "illuminate",
    "illumination_table",
    "rgb_to_grayscale",
    "solarize",
    "apply_motion",
    "crop_matrix",
    "crop_warp",
    "gaussian_blur",
    "motion_blur",
    "resized_crop",
    "warp_affine",
    "as_hwc",
    "check_image",
    "hwc_to_tensor",
    "opencv",
    "to_hwc_uint8",
    "candidate_scores",
    "histogram_mi",
    "luma",
    "proxies",
    "proxy_grid",
    "working_luma",
    "xlogx_table",
]
