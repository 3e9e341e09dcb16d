"""Targets that follow a pair's views: ``BoundingBoxes``, ``Mask`` and ``KeyPoints`` moved onto a view's canvas."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as tvf

from ..functional.geometry import warp_boxes, warp_points
from ..functional.warp import warp_masks

__all__ = ["TARGET_TYPES", "target_in_view"]

#: the torchvision targets a view moves (other leaves of a sample pass through)
TARGET_TYPES = (tv_tensors.BoundingBoxes, tv_tensors.Mask, tv_tensors.KeyPoints)


def target_in_view(target: Any, matrix: Tensor, image_size: tuple[int, int], view_size: tuple[int, int],
                   padding_mode: str) -> Any:
    """A ``BoundingBoxes`` / ``Mask`` / ``KeyPoints`` of the image, moved onto one view's canvas by its
    ``(1, 3, 3)`` input-to-view matrix (:func:`~mi_augment.pairs.render.view_matrices`).

    Args:
        target: the tv_tensor, on the image's canvas ``image_size`` (height, width).
        matrix: ``(1, 3, 3)`` input-to-view pixel matrix.
        image_size, view_size: ``(height, width)`` of the image and of the view.
        padding_mode: how a mask is filled from outside the image (the image's warp border).

    Example:
        >>> import torch
        >>> boxes = tv_tensors.BoundingBoxes([[0, 0, 4, 4]], format="XYXY", canvas_size=(8, 8))
        >>> half = torch.diag(torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64))[None]
        >>> target_in_view(boxes, half, (8, 8), (4, 4), "zeros").canvas_size
        (4, 4)
    """
    plain = target.as_subclass(Tensor)
    canvas = tuple(target.canvas_size) if hasattr(target, "canvas_size") else tuple(target.shape[-2:])
    if canvas != tuple(image_size):
        raise ValueError(f"{type(target).__name__} canvas {canvas} (height, width) does not match the image's "
                         f"{tuple(image_size)}")
    if isinstance(target, tv_tensors.Mask):
        h, w = image_size
        moved = warp_masks(plain.reshape(1, -1, h, w), matrix, padding_mode=padding_mode, size=view_size)
        return tv_tensors.wrap(moved.reshape(*plain.shape[:-2], *view_size), like=target)
    if isinstance(target, tv_tensors.KeyPoints):
        moved = warp_points(plain.reshape(1, -1, 2), matrix).reshape(plain.shape)
        return tv_tensors.wrap(moved, like=target, canvas_size=view_size)
    if tv_tensors.is_rotated_bounding_format(target.format):
        raise ValueError(f"MIPairTransform moves axis-aligned BoundingBoxes; got format {target.format}")
    xyxy = tvf.convert_bounding_box_format(plain, old_format=target.format,
                                           new_format=tv_tensors.BoundingBoxFormat.XYXY)
    clamp = view_size if target.clamping_mode is not None else None
    moved = warp_boxes(xyxy.reshape(1, -1, 4), matrix, canvas_size=clamp).reshape(xyxy.shape)
    moved = tvf.convert_bounding_box_format(moved, old_format=tv_tensors.BoundingBoxFormat.XYXY,
                                            new_format=target.format)
    return tv_tensors.wrap(moved, like=target, canvas_size=view_size)
