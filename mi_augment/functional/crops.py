"""Batched resized crops from boxes: the kernel behind RandomResizedCrop-style views and MI proxies.

Boxes are ``(x1, y1, x2, y2)`` in pixel coordinates of the input (continuous: ``(0, 0, W, H)`` is the
whole image, pixel ``i`` covers ``[i, i + 1)``). Sub-pixel boxes are allowed. Each output pixel is the mean of
a small grid of bilinear samples inside its bin (``torchvision.ops.roi_align`` with ``aligned=True``), so
shrinking a large box is anti-aliased and enlarging a small one is plain bilinear interpolation.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import roi_align

__all__ = ["resized_crop", "luma"]

#: ITU-R BT.601 luma weights (what PIL's ``convert("L")`` and torchvision's ``rgb_to_grayscale`` use)
_LUMA = (0.299, 0.587, 0.114)


def luma(images: Tensor) -> Tensor:
    """Luma ``[..., 1, H, W]`` of images ``[..., C, H, W]`` with 1 or 3 channels (1 channel is returned as is)."""
    if images.shape[-3] == 1:
        return images
    if images.shape[-3] != 3:
        raise ValueError(f"luma expects 1 or 3 channels, got {images.shape[-3]}")
    w = torch.tensor(_LUMA, dtype=images.dtype, device=images.device).view(3, 1, 1)
    return (images * w).sum(dim=-3, keepdim=True)


def resized_crop(images: Tensor, boxes: Tensor, size: int | tuple[int, int], flip: Tensor | None = None,
                 sampling_ratio: int = -1) -> Tensor:
    """Crop boxes out of a batch and resize each crop to ``size``.

    Args:
        images: float ``[B, C, H, W]``.
        boxes: ``[B, 4]`` (one box per image) or ``[B, K, 4]`` (K boxes per image), ``(x1, y1, x2, y2)`` in
            pixels, ``x1 < x2``, ``y1 < y2``. Boxes may extend past the border (samples there read zero), but
            the samplers in :mod:`mi_augment.crops` always keep them inside.
        size: output ``(height, width)`` or one int for a square.
        flip: optional bool ``[B]`` / ``[B, K]`` (matching ``boxes``): mirror that crop left-right.
        sampling_ratio: bilinear samples per output bin along each axis; ``-1`` (default) adapts to the bin size
            (``ceil(box_side / out_side)``: exact area averaging when shrinking), a small fixed number (e.g. 2)
            is faster for large shrink factors.

    Returns:
        ``[B, C, h, w]`` for ``[B, 4]`` boxes, ``[B, K, C, h, w]`` for ``[B, K, 4]`` boxes; same dtype.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a float tensor, got {images.dtype}")
    out_h, out_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if out_h < 1 or out_w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    b = images.shape[0]
    if boxes.ndim == 2:
        per_image = 1
    elif boxes.ndim == 3:
        per_image = boxes.shape[1]
    else:
        raise ValueError(f"boxes must be [B, 4] or [B, K, 4], got shape {tuple(boxes.shape)}")
    if boxes.shape[0] != b or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be [{b}, 4] or [{b}, K, 4] for {b} images, got shape {tuple(boxes.shape)}")
    flat = boxes.reshape(-1, 4).to(device=images.device, dtype=images.dtype)
    index = torch.arange(b, device=images.device, dtype=images.dtype).repeat_interleave(per_image)
    rois = torch.cat([index[:, None], flat], dim=1)
    out = roi_align(images, rois, (out_h, out_w), spatial_scale=1.0, sampling_ratio=sampling_ratio, aligned=True)
    if flip is not None:
        f = flip.reshape(-1).to(images.device)
        if f.shape[0] != out.shape[0]:
            raise ValueError(f"flip must have one entry per box ({out.shape[0]}), got shape {tuple(flip.shape)}")
        out = torch.where(f.view(-1, 1, 1, 1), out.flip(-1), out)
    if boxes.ndim == 3:
        out = out.view(b, per_image, *out.shape[1:])
    return out
