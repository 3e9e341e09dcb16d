"""The image type of the CPU uint8 backend: one numpy ``uint8`` array ``[H, W, C]`` (``C`` = 1 or 3), as OpenCV,
PIL and albumentations hold images, and the conversions to and from the types the transforms accept.

OpenCV is imported on first use (:func:`opencv`), never when :mod:`mi_augment` is imported.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

__all__ = ["opencv", "check_image", "as_hwc", "to_hwc_uint8", "hwc_to_tensor", "block_mean"]


@functools.cache
def opencv() -> Any:
    """The ``cv2`` module, imported on first use (``import mi_augment.transforms`` stays free of OpenCV); the
    module is cached, so a kernel's many calls cost no import lookup."""
    import cv2

    return cv2


def check_image(image: Any, name: str = "image") -> np.ndarray:
    """Check that ``image`` is what the uint8 kernels take and return it.

    Args:
        image: a numpy ``uint8`` array ``[H, W, C]`` with ``C`` = 1 or 3 and ``H, W >= 1``.
        name: the argument's name in the error message.

    Raises:
        TypeError: not a numpy uint8 array. ValueError: not ``[H, W, 1 or 3]``.

    Example:
        >>> check_image(np.zeros((4, 5, 3), np.uint8)).shape
        (4, 5, 3)
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        got = f"dtype {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise TypeError(f"{name} must be a numpy uint8 array [H, W, C], got {got}")
    if image.ndim != 3 or image.shape[2] not in (1, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name} must have shape [H, W, C] with C = 1 or 3 and H, W >= 1, got {image.shape}")
    return image


def as_hwc(array: np.ndarray, channels: int) -> np.ndarray:
    """An OpenCV result as ``[H, W, channels]``: OpenCV returns ``[H, W]`` for one channel.

    Example:
        >>> as_hwc(np.zeros((4, 5), np.uint8), 1).shape
        (4, 5, 1)
    """
    return array.reshape(array.shape[0], array.shape[1], channels) if array.ndim == 2 else array


def to_hwc_uint8(image: Any) -> np.ndarray:
    """One image as the backend's ``[H, W, C]`` uint8 array: a PIL image (mode L or RGB), a numpy uint8 array
    ``[H, W]`` / ``[H, W, C]`` or a CPU uint8 tensor ``[C, H, W]``. Returns a view where it can.

    Raises:
        TypeError: another type or dtype. ValueError: another shape or channel count.

    Example:
        >>> to_hwc_uint8(torch.zeros(3, 4, 5, dtype=torch.uint8)).shape
        (4, 5, 3)
    """
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.ndim != 3 or image.device.type != "cpu":
            raise TypeError(f"image tensor must be a CPU uint8 [C, H, W] tensor, got {image.dtype} "
                            f"{tuple(image.shape)} on {image.device}")
        array = image.permute(1, 2, 0).numpy()
    elif isinstance(image, np.ndarray):
        array = image[:, :, None] if image.ndim == 2 else image
    elif type(image).__module__.startswith("PIL"):
        if image.mode not in ("L", "RGB"):
            raise ValueError(f"PIL image must be mode L or RGB, got {image.mode!r}")
        array = np.asarray(image)
        array = array[:, :, None] if array.ndim == 2 else array
    else:
        raise TypeError(f"image must be a PIL image, numpy uint8 array or uint8 tensor, got {type(image).__name__}")
    return check_image(array)


def hwc_to_tensor(image: np.ndarray) -> torch.Tensor:
    """A backend image ``[H, W, C]`` as a contiguous uint8 tensor ``[C, H, W]`` (a copy).

    Example:
        >>> hwc_to_tensor(np.zeros((4, 5, 3), np.uint8)).shape
        torch.Size([3, 4, 5])
    """
    h, w, c = check_image(image).shape
    out = np.empty((c, h, w), np.uint8)  # a writable copy: the channels split into its planes in one OpenCV call
    opencv().mixChannels([np.ascontiguousarray(image)], list(out), [k for ch in range(c) for k in (ch, ch)])
    return torch.from_numpy(out)


def block_mean(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The mean of each ``rows x cols`` block of ``image``, rounded to the nearest level: the reduction of
    ``roi_align``'s sub-samples that :func:`~mi_augment.functional.uint8.resized_crop` and
    :func:`~mi_augment.functional.uint8.crop_warp` take after sampling ``rows x cols`` points per output pixel.

    Picks OpenCV's fastest exact call per factor (the same means; ties may round either way, 1 level):
    row pairs by one ``cv2.addWeighted`` of the even and odd rows, column pairs by ``cv2.resize`` with
    ``INTER_LINEAR`` (at a factor of exactly 2 its two weights are 1/2), anything else by ``INTER_AREA``
    (its integer-factor path; it is ~3x slower for a factor of 2 along one axis only).

    Args:
        image: uint8 ``[H, W, C]`` with ``H`` a multiple of ``rows`` and ``W`` of ``cols``.
        rows, cols: the block's size (>= 1).

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: :math:`(H / rows, W / cols, C)`.

    Example:
        >>> block_mean(np.array([[[0], [10]], [[20], [30]]], np.uint8), 2, 2)[:, :, 0].tolist()
        [[15]]
    """
    check_image(image)
    if not (isinstance(rows, int) and isinstance(cols, int) and rows >= 1 and cols >= 1):
        raise ValueError(f"rows and cols must be ints >= 1, got {rows!r}, {cols!r}")
    h, w, c = image.shape
    if h % rows or w % cols:
        raise ValueError(f"image shape {image.shape} is not a whole number of {rows} x {cols} blocks")
    if rows == 1 and cols == 1:
        return image
    cv2 = opencv()
    if rows == 2 and cols == 1:
        return as_hwc(cv2.addWeighted(image[0::2], 0.5, image[1::2], 0.5, 0.0), c)
    mode = cv2.INTER_LINEAR if rows == 1 and cols == 2 else cv2.INTER_AREA
    return as_hwc(cv2.resize(image, (w // cols, h // rows), interpolation=mode), c)
