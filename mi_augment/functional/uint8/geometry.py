"""Geometric kernels of the CPU uint8 backend on one ``[H, W, C]`` uint8 image: crop + resize + flip as one
``cv2.warpAffine``, warps, the Gaussian and the motion blur, with the sampling rules of the torch kernels in
:mod:`mi_augment.functional` (bilinear; reflection about the edge pixel centres is ``cv2.BORDER_REFLECT_101``).

OpenCV's bilinear warp places samples on a 1/32-pixel grid with fixed-point weights, so a warp differs from
torch's ``grid_sample`` by a fraction of the local gradient over 1/32 px (below one level on natural images).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ...core.random import as_float32s
from ..geometry import motion_blur_kernels, similarity_matrices
from .image import as_hwc, block_mean, check_image, opencv

__all__ = ["crop_matrix", "warp_affine", "resized_crop", "crop_warp", "gaussian_blur", "motion_blur", "apply_motion"]

_BORDERS = {"reflection": "BORDER_REFLECT_101", "border": "BORDER_REPLICATE", "zeros": "BORDER_CONSTANT"}


def _size(size: Any) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    return int(h), int(w)


def _box(box: Any) -> tuple[float, float, float, float]:
    if type(box) in (list, tuple) and len(box) == 4 and all(type(v) is float for v in box):  # a .tolist() row
        x1, y1, x2, y2 = box
        if x1 < x2 and y1 < y2:
            return x1, y1, x2, y2
    values = box.detach().reshape(-1).tolist() if isinstance(box, torch.Tensor) else list(np.asarray(box).reshape(-1))
    x1, y1, x2, y2 = (float(v) for v in values) if len(values) == 4 else (math.nan,) * 4
    if not (x1 < x2 and y1 < y2):  # also rejects NaN
        raise ValueError(f"box must be (x1, y1, x2, y2) with x1 < x2 and y1 < y2, got {list(values)}")
    return x1, y1, x2, y2


def crop_matrix(box: Any, size: Any, flip: bool = False, supersample: tuple[int, int] = (1, 1)) -> np.ndarray:
    """The ``2 x 3`` map from output pixels to input pixels of a resized crop (``cv2.WARP_INVERSE_MAP``).

    Output column ``j`` of a box ``(x1, x2)`` resized to ``w`` columns samples ``x1 + (j + 0.5) (x2 - x1) / w
    - 0.5``, the bin centres of :func:`mi_augment.functional.resized_crop`; a flipped crop reads its columns
    in reverse. ``supersample (sy, sx)`` places ``sy x sx`` samples per output bin, as ``roi_align`` does.

    Args:
        box: ``(x1, y1, x2, y2)`` in input pixels (continuous: ``(0, 0, W, H)`` is the whole image).
        size: output ``(height, width)`` or one int.
        flip: mirror the crop left-right.
        supersample: samples per bin along ``(y, x)``.

    Example:
        >>> crop_matrix((0, 0, 8, 8), 4).tolist()
        [[2.0, 0.0, 0.5], [0.0, 2.0, 0.5]]
    """
    return _crop_matrix(_box(box), _size(size), flip, supersample)


def _crop_matrix(box: tuple[float, float, float, float], size: tuple[int, int], flip: bool,
                 supersample: tuple[int, int]) -> np.ndarray:
    (x1, y1, x2, y2), (h, w), (sy, sx) = box, size, supersample
    step_x, step_y = (x2 - x1) / (w * sx), (y2 - y1) / (h * sy)
    if flip:
        return np.array([[-step_x, 0.0, x2 - 0.5 - 0.5 * step_x], [0.0, step_y, y1 - 0.5 + 0.5 * step_y]])
    return np.array([[step_x, 0.0, x1 - 0.5 + 0.5 * step_x], [0.0, step_y, y1 - 0.5 + 0.5 * step_y]])


def warp_affine(image: np.ndarray, matrix: Any, size: Any = None, *, padding_mode: str = "reflection",
                inverse: bool = False) -> np.ndarray:
    """Bilinear ``cv2.warpAffine``: :func:`mi_augment.functional.warp_affine` on one uint8 image.

    Args:
        image: uint8 ``[H, W, C]``.
        matrix: ``2 x 3`` (or ``3 x 3`` affine) pixel matrix, input to output (output to input if ``inverse``).
        size: output ``(height, width)``; default the input's.
        padding_mode: ``"reflection"`` (about the edge pixel centres), ``"border"`` or ``"zeros"``.
        inverse: ``matrix`` maps output pixels to input pixels.

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: :math:`(h, w, C)`.

    Example:
        >>> warp_affine(np.zeros((6, 8, 3), np.uint8), np.eye(3)[:2], (4, 5)).shape
        (4, 5, 3)
    """
    check_image(image)
    if padding_mode not in _BORDERS:
        raise ValueError(f"padding_mode must be one of {sorted(_BORDERS)}, got {padding_mode!r}")
    m = np.asarray(matrix.detach().cpu() if isinstance(matrix, torch.Tensor) else matrix, dtype=np.float64)
    if m.shape not in ((2, 3), (3, 3)) or not np.isfinite(m).all() or (m.shape == (3, 3) and (m[2] != (0, 0, 1)).any()):
        raise ValueError(f"matrix must be a finite 2 x 3 (or affine 3 x 3) matrix, got shape {m.shape}")
    h, w = image.shape[:2] if size is None else _size(size)
    cv2 = opencv()
    flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse else 0)
    out = cv2.warpAffine(image, m[:2], (w, h), flags=flags, borderMode=getattr(cv2, _BORDERS[padding_mode]),
                         borderValue=0)
    return as_hwc(out, image.shape[2])


def resized_crop(image: np.ndarray, box: Any, size: Any, flip: bool = False, *, check: bool = True) -> np.ndarray:
    """Crop ``box`` out of ``image``, resize it to ``size`` and optionally mirror it: one ``cv2.warpAffine``
    (and, for a box larger than the output, the mean of each bin's sub-samples, :func:`block_mean`), the same samples as
    :func:`mi_augment.functional.resized_crop` (``roi_align``, adaptive sampling ratio, edge pixels repeated).

    Args:
        image: uint8 ``[H, W, C]``.
        box: ``(x1, y1, x2, y2)`` in pixels, as the torch kernel takes it.
        size: output ``(height, width)`` or one int.
        flip: mirror the crop left-right.
        check: check the arguments (False: the caller vouches for them: ``image`` a uint8 ``[H, W, C]`` array,
            ``box`` four floats with ``x1 < x2``, ``y1 < y2``, ``size`` a ``(height, width)`` pair of positive
            ints, as a one-image call's sampler rows and transform size are).

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: :math:`(h, w, C)`.

    Example:
        >>> img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
        >>> resized_crop(img, (0, 0, 4, 4), 2)[:, :, 0].tolist()
        [[8, 14], [32, 38]]
    """
    if check:
        check_image(image)
        x1, y1, x2, y2 = _box(box)
        h, w = _size(size)
    else:
        (x1, y1, x2, y2), (h, w) = box, size
    sx, sy = _supersampling(x1, y1, x2, y2, h, w)
    m = _crop_matrix((x1, y1, x2, y2), (h, w), flip, (sy, sx))
    cv2 = opencv()
    out = cv2.warpAffine(image, m, (w * sx, h * sy), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    if sx > 1 or sy > 1:  # the mean of each bin's sy x sx samples
        out = block_mean(as_hwc(out, image.shape[2]), sy, sx)
    return as_hwc(out, image.shape[2])


def _supersampling(x1: float, y1: float, x2: float, y2: float, h: int, w: int) -> tuple[int, int]:
    """roi_align's adaptive grid ``(sx, sy)``: ``ceil(box side / output side)`` (at least 1) in float32, as the
    torch kernel computes it on the float32 box, by Python floats: a float32 sum or quotient is the float64 one
    rounded to float32 (float64 carries more than twice float32's precision), and a side no larger than the
    integer output side gives 1 without the quotient (rounding is monotone)."""
    fx1, fy1, fx2, fy2 = as_float32s([x1, y1, x2, y2])
    dx, dy = fx2 - fx1, fy2 - fy1
    if dx <= w and dy <= h:
        return 1, 1
    rx, ry = as_float32s([dx, dy])  # the float32 sides
    qx, qy = as_float32s([rx / w, ry / h])
    return max(1, math.ceil(qx)), max(1, math.ceil(qy))


def crop_warp(image: np.ndarray, box: Any, size: Any, matrix: Any = None, flip: bool = False, *,
              padding_mode: str = "reflection") -> np.ndarray:
    """A resized crop then warped in its own frame, sampled from ``image`` in one ``cv2.warpAffine``:
    :func:`mi_augment.functional.crop_warp` on one uint8 image (output pixel ``p`` reads the image at
    ``crop(M^-1 p)``, so the warp sees the scene around the box; ``roi_align``'s adaptive sub-samples for a
    box larger than the output, averaged by :func:`block_mean`).

    Args:
        image: uint8 ``[H, W, C]``.
        box: ``(x1, y1, x2, y2)`` in pixels.
        size: output ``(height, width)`` or one int.
        matrix: ``3 x 3`` affine input-to-output matrix in the crop's frame (view pixels; an array, a tensor or
            nested lists); None: identity.
        flip: mirror the crop left-right (before its warp).
        padding_mode: ``"reflection"``, ``"border"`` or ``"zeros"``.

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: :math:`(h, w, C)`.

    Example:
        >>> crop_warp(np.zeros((16, 16, 3), np.uint8), (0, 0, 8, 8), 4, np.eye(3)).shape
        (4, 4, 3)
    """
    check_image(image)
    if padding_mode not in _BORDERS:
        raise ValueError(f"padding_mode must be one of {sorted(_BORDERS)}, got {padding_mode!r}")
    x1, y1, x2, y2 = _box(box)
    h, w = _size(size)
    m = _affine_rows(matrix)
    # the torch kernel's adaptive sub-samples, ceil(box side / output side) in float64
    sx, sy = max(1, math.ceil((x2 - x1) / w)), max(1, math.ceil((y2 - y1) / h))
    inverse = _compose_inverse(m, (x1, y1, x2, y2), (h, w), flip, (sy, sx))
    cv2 = opencv()
    source, border = image, getattr(cv2, _BORDERS[padding_mode])
    if padding_mode == "reflection":
        source, inverse, border = _reflection_by_padding(image, inverse, (w * sx, h * sy))
    out = cv2.warpAffine(source, np.array(inverse), (w * sx, h * sy), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=border, borderValue=0)
    if sx > 1 or sy > 1:  # the mean of each pixel's sy x sx sub-samples
        out = block_mean(as_hwc(out, image.shape[2]), sy, sx)
    return as_hwc(out, image.shape[2])


def _affine_rows(matrix: Any) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The top two rows of a finite affine ``3 x 3`` matrix (None: the identity) as Python floats."""
    if matrix is None:
        return (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)
    rows = matrix if type(matrix) is list else (
        matrix.detach().cpu() if isinstance(matrix, torch.Tensor) else np.asarray(matrix, np.float64)).tolist()
    ok = len(rows) == 3 and all(isinstance(r, list) and len(r) == 3 for r in rows)
    values = [float(v) for r in rows for v in r] if ok else []
    if not ok or not all(map(math.isfinite, values)) or values[6:] != [0.0, 0.0, 1.0]:
        raise ValueError(f"matrix must be a finite affine 3 x 3 matrix, got {rows}")
    return tuple(values[0:3]), tuple(values[3:6])


def _reflection_by_padding(image: np.ndarray, inverse: list[list[float]],
                           size: tuple[int, int]) -> tuple[np.ndarray, list[list[float]], int]:
    """The source, map and border that sample ``image`` through ``inverse`` (output -> input, ``2 x 3`` nested
    lists; output ``size`` ``(width, height)``) with reflection about the edge pixels, by ``cv2.warpAffine``'s
    replicated border (its reflected border takes a slower remap, ~2.3x at 224 px): none is read where every
    sample lies inside the image; else the image reflected by ``cv2.copyMakeBorder`` just far enough; a warp
    reaching further than one reflection keeps ``BORDER_REFLECT_101``. The two borders' bilinear paths round
    alike within one level."""
    cv2 = opencv()
    (a, b, c), (d, e, f) = inverse
    xs = [c, a * (size[0] - 1) + c]
    ys = [f, e * (size[1] - 1) + f]
    xs = [x + b * (size[1] - 1) for x in xs] + xs  # the four corners: an affine map's extremes
    ys = [y + d * (size[0] - 1) for y in ys] + ys
    height, width = image.shape[:2]
    margin = 1.0 / 16  # beyond OpenCV's fixed-point rounding of the sample positions (1/1024 px, floored to 1/32)
    reach = max(margin - min(xs), margin - min(ys), max(xs) - (width - 1 - margin), max(ys) - (height - 1 - margin))
    if reach <= 0:
        return image, inverse, cv2.BORDER_REPLICATE
    pad = math.ceil(reach) + 1
    if pad >= min(height, width):  # more than one reflection
        return image, inverse, cv2.BORDER_REFLECT_101
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    return padded, [[a, b, c + pad], [d, e, f + pad]], cv2.BORDER_REPLICATE


def _compose_inverse(m: tuple, box: tuple[float, float, float, float], size: tuple[int, int], flip: bool,
                     supersample: tuple[int, int]) -> list[list[float]]:
    """``crop @ m^-1 @ sub`` as the ``2 x 3`` map of :func:`crop_warp` (sub-sample -> view -> unwarped view ->
    image) on Python floats: ``m``'s affine inverse by the 2 x 2 formula, the products written out."""
    (a, b, c), (d, e, f) = m
    if b or d or a != 1 or e != 1:
        det = a * e - b * d
        ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    else:
        ia, ib, id_, ie = 1.0, 0.0, 0.0, 1.0
    ic, if_ = -(ia * c + ib * f), -(id_ * c + ie * f)  # the inverse's translation, -a_inv @ t
    (x1, y1, x2, y2), (h, w) = box, size  # view -> image (axis-aligned): _crop_matrix's numbers
    step_x, step_y = (x2 - x1) / w, (y2 - y1) / h
    ce, cf = step_y, y1 - 0.5 + 0.5 * step_y
    ca, cc = (-step_x, x2 - 0.5 - 0.5 * step_x) if flip else (step_x, x1 - 0.5 + 0.5 * step_x)
    sy, sx = supersample
    ux, uy = 1.0 / sx, 1.0 / sy
    ox, oy = 0.5 / sx - 0.5, 0.5 / sy - 0.5  # sub-sample -> view: p * u + o
    # crop @ unwarp: rows (ca * (ia, ib, ic) + (0, 0, cc)), (ce * (id, ie, if) + (0, 0, cf))
    r0 = (ca * ia, ca * ib, ca * ic + cc)
    r1 = (ce * id_, ce * ie, ce * if_ + cf)
    return [[r0[0] * ux, r0[1] * uy, r0[0] * ox + r0[1] * oy + r0[2]],
            [r1[0] * ux, r1[1] * uy, r1[0] * ox + r1[1] * oy + r1[2]]]


def gaussian_blur(image: np.ndarray, kernel_size: Any, sigma: float) -> np.ndarray:
    """Gaussian blur with reflected borders: ``kornia.filters.gaussian_blur2d(..., border_type="reflect")``
    (the kernel ``GaussianBlur`` renders) by ``cv2.GaussianBlur``.

    Args:
        image: uint8 ``[H, W, C]``.
        kernel_size: odd side, or ``(height, width)``.
        sigma: standard deviation in pixels (> 0), the same on both axes.

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: the same.

    Example:
        >>> gaussian_blur(np.full((5, 5, 3), 7, np.uint8), 3, 1.0)[2, 2].tolist()
        [7, 7, 7]
    """
    check_image(image)
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, (int, np.integer)) else kernel_size
    if kh < 1 or kw < 1 or kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size!r}")
    s = float(sigma)
    if not (s > 0 and math.isfinite(s)):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    cv2 = opencv()
    out = cv2.GaussianBlur(image, (int(kw), int(kh)), sigmaX=s, sigmaY=s, borderType=cv2.BORDER_REFLECT_101)
    return as_hwc(out, image.shape[2])


def motion_blur(image: np.ndarray, length: float, angle: float, kernel: Any = None) -> np.ndarray:
    """Linear motion blur: :func:`mi_augment.functional.motion_blur` on one image (its kernel,
    :func:`~mi_augment.functional.motion_blur_kernels`, by ``cv2.filter2D``; reflected borders, repeated
    where the kernel is wider than the image).

    Args:
        image: uint8 ``[H, W, C]``.
        length: streak length in pixels (>= 0; 0 leaves the image unchanged).
        angle: streak direction in radians.
        kernel: this streak's ``(K, K)`` kernel when the caller made several at once (one
            :func:`~mi_augment.functional.motion_blur_kernels` call; zero padding to a larger ``K`` is harmless).

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: the same.

    Example:
        >>> motion_blur(np.full((6, 6, 3), 9, np.uint8), 3.0, 0.5)[3, 3].tolist()
        [9, 9, 9]
    """
    check_image(image)
    if kernel is None:
        kernel = motion_blur_kernels(torch.tensor([float(length)]), torch.tensor([float(angle)]))[0].numpy()
    kernel = np.asarray(kernel, dtype=np.float32)
    k = kernel.shape[-1]
    if k == 1:
        return image.copy()
    cv2 = opencv()
    pad = k // 2
    border = cv2.BORDER_REFLECT_101 if pad < image.shape[0] and pad < image.shape[1] else cv2.BORDER_REPLICATE
    return as_hwc(cv2.filter2D(image, -1, kernel, borderType=border), image.shape[2])


def apply_motion(image: np.ndarray, params: Any, index: int = 0, *, padding_mode: str = "reflection") -> np.ndarray:
    """Render sample ``index`` of ``MotionParams`` (or any object with its fields) on one image, as
    ``MotionModel.apply`` does: the similarity warp (:func:`~mi_augment.functional.similarity_matrices`), then
    the motion blur of ``blur_length`` times the longer side.

    Args:
        image: uint8 ``[H, W, C]``.
        params: fields ``translation (B, 2)``, ``rotation``, ``log_scale``, ``blur_length``, ``blur_angle``
            ``(B, 1)``.
        index: which sample of the params.
        padding_mode: the warp's borders (the model's ``config["padding_mode"]``).

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: the same.
    """
    check_image(image)
    h, w = image.shape[:2]
    i = slice(index, index + 1)
    matrix = similarity_matrices(params.log_scale[i].to(torch.float64), params.rotation[i].to(torch.float64),
                                 params.translation[i].to(torch.float64), h, w)[0]
    out = warp_affine(image, matrix.numpy(), padding_mode=padding_mode)
    # the torch kernel's float32 length and angle (the same kernel taps)
    length = params.blur_length[i].reshape(-1).float().clamp_min(0) * float(max(h, w))
    angle = params.blur_angle[i].reshape(-1).float()
    if float(length[0]) > 0:
        out = motion_blur(out, float(length[0]), float(angle[0]))
    return out
