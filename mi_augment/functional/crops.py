"""Batched resized crops from boxes: the kernel behind RandomResizedCrop-style views and MI proxies.

Boxes are ``(x1, y1, x2, y2)`` in pixel coordinates of the input (continuous: ``(0, 0, W, H)`` is the
whole image, pixel ``i`` covers ``[i, i + 1)``). Sub-pixel boxes are allowed. Each output pixel is the mean of
a small grid of bilinear samples inside its bin (``torchvision.ops.roi_align`` with ``aligned=True``), so
shrinking a large box is anti-aliased and enlarging a small one is plain bilinear interpolation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align

from ..core.options import current
from .color import rgb_to_grayscale

__all__ = ["resized_crop", "pyramid_crop", "luma"]

#: The package's one luma (ITU-R BT.601 weights 0.299, 0.587, 0.114, Kornia's kernel), under the name the
#: crop scorers use; torchvision's ``rgb_to_grayscale`` weighs red 0.2989, see :func:`.color.rgb_to_grayscale`.
luma = rgb_to_grayscale


def resized_crop(images: Tensor, boxes: Tensor, size: int | tuple[int, int], flip: Tensor | None = None,
                 sampling_ratio: int = -1) -> Tensor:
    """Crop boxes out of a batch and resize each crop to ``size``.

    Args:
        images: float ``[B, C, H, W]``.
        boxes: ``[B, 4]`` (one box per image) or ``[B, K, 4]`` (K boxes per image), ``(x1, y1, x2, y2)`` in
            pixels, ``x1 < x2``, ``y1 < y2``. Boxes may extend past the border (samples there read zero), but
            the samplers in :mod:`mi_augment.pairs` always keep them inside.
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
    n = flat.shape[0]
    flips = None
    if flip is not None:
        flips = flip.reshape(-1).to(images.device)
        if flips.shape[0] != n:
            raise ValueError(f"flip must have one entry per box ({n}), got shape {tuple(flip.shape)}")
    # Speed path: boxes no larger than the output take one bilinear sample per bin (roi_align's adaptive
    # ratio is ceil(box side / output side) = 1): plain bilinear interpolation at the bin centres, which one
    # grid_sample does faster, with the flip folded into the sampling positions. roi_align for every box
    # inside kernel_options(fast_paths=False).
    if not current().fast_paths:
        one = torch.zeros(n, dtype=torch.bool, device=images.device)
    elif sampling_ratio == 1:
        one = torch.ones(n, dtype=torch.bool, device=images.device)
    elif sampling_ratio == -1:
        one = ((flat[:, 2] - flat[:, 0]) <= out_w) & ((flat[:, 3] - flat[:, 1]) <= out_h)
    else:
        one = torch.zeros(n, dtype=torch.bool, device=images.device)
    all_one = bool(one.all())
    if all_one or bool(one.any()):
        out = _bilinear_crop(images, flat.view(b, per_image, 4), out_h, out_w,
                             None if flips is None else flips.view(b, per_image))
        if not all_one:  # redo the larger boxes with roi_align's area-averaging
            big = (~one).nonzero().squeeze(1)
            out.index_copy_(0, big, _roi_crop(images, big // per_image, flat[big], out_h, out_w, sampling_ratio,
                                              None if flips is None else flips[big]))
    else:
        index = torch.arange(b, device=images.device).repeat_interleave(per_image)
        out = _roi_crop(images, index, flat, out_h, out_w, sampling_ratio, flips)
    if boxes.ndim == 3:
        out = out.view(b, per_image, *out.shape[1:])
    return out


def _roi_crop(images: Tensor, index: Tensor, boxes: Tensor, out_h: int, out_w: int, sampling_ratio: int,
              flips: Tensor | None) -> Tensor:
    """``roi_align`` crops ``(N, C, out_h, out_w)`` of ``boxes (N, 4)`` from ``images[index]``, then flips."""
    rois = torch.cat([index.to(images.dtype)[:, None], boxes], dim=1)
    out = roi_align(images, rois, (out_h, out_w), spatial_scale=1.0, sampling_ratio=sampling_ratio, aligned=True)
    if flips is not None:
        # Mirror only the flipped crops, in place on roi_align's output (which we own).
        idx = flips.nonzero().squeeze(1)
        if idx.numel():
            out.index_copy_(0, idx, out.index_select(0, idx).flip(-1))
    return out


def _bilinear_crop(images: Tensor, boxes: Tensor, out_h: int, out_w: int, flips: Tensor | None) -> Tensor:
    """What ``roi_align(aligned=True, sampling_ratio=1)`` computes, by ``grid_sample``: output bin ``j`` of a
    box ``(x1, x2)`` samples ``x1 + (j + 0.5) (x2 - x1) / out_w - 0.5`` bilinearly, coordinates clamped to
    the image (roi_align's border rule; boxes reach at most half a pixel past the border). A flipped crop
    samples its bins in reverse order.

    ``boxes`` ``(B, P, 4)``, ``flips`` ``(B, P)`` or None; returns ``(B * P, C, out_h, out_w)``. The P crops
    of an image are sampled as one tall grid of that image (the images are never copied P times).
    """
    b, c, h, w = images.shape
    p = boxes.shape[1]
    if b == 1 and h > 1 and w > 1 and images.device.type == "cpu":  # one image: positions by numpy
        return _bilinear_crop_one(images, boxes[0], flips, out_h, out_w).view(c, p, out_h, out_w).transpose(0, 1)
    b64 = boxes.to(torch.float64)
    j = torch.arange(out_w, device=images.device, dtype=torch.float64) + 0.5
    i = torch.arange(out_h, device=images.device, dtype=torch.float64) + 0.5
    if flips is not None:
        j = torch.where(flips[..., None], out_w - j, j)  # (B, P, out_w)
    xs = b64[..., 0:1] + j * ((b64[..., 2:3] - b64[..., 0:1]) / out_w) - 0.5  # (B, P, out_w)
    ys = b64[..., 1:2] + i * ((b64[..., 3:4] - b64[..., 1:2]) / out_h) - 0.5  # (B, P, out_h)
    # "border" padding clamps to the edge pixel centres as roi_align does
    return _sample_separable(images, xs, ys).transpose(1, 2).reshape(b * p, c, out_h, out_w)


def _bilinear_crop_one(image: Tensor, boxes: Tensor, flips: Tensor | None, out_h: int, out_w: int) -> Tensor:
    """:func:`_bilinear_crop` for one CPU image ``(1, C, H, W)`` (``H, W > 1``) and its boxes ``(P, 4)``: the
    same float64 sampling positions (the same IEEE operations in the same order, by numpy: a few vector ops
    instead of ~25 tensor ops, a DataLoader worker's per-image cost) and one ``grid_sample``. Returns
    ``(1, C, P * out_h, out_w)``: crop ``p`` is rows ``p * out_h`` to ``(p + 1) * out_h``."""
    h, w = image.shape[-2:]
    p = boxes.shape[0]
    b64 = boxes.detach().cpu().numpy().astype(np.float64)
    j = np.arange(out_w, dtype=np.float64) + 0.5
    i = np.arange(out_h, dtype=np.float64) + 0.5
    if flips is not None:
        j = np.where(flips.reshape(p).cpu().numpy()[:, None], out_w - j, j)  # (P, out_w)
    xs = b64[:, 0:1] + j * ((b64[:, 2:3] - b64[:, 0:1]) / out_w) - 0.5
    ys = b64[:, 1:2] + i * ((b64[:, 3:4] - b64[:, 1:2]) / out_h) - 0.5
    grid = np.empty((p, out_h, out_w, 2), dtype=np.float32 if image.dtype == torch.float32 else np.float64)
    grid[..., 0] = (xs * (2.0 / (w - 1)) - 1.0)[:, None, :]  # rounded to the image's dtype, as .to() does
    grid[..., 1] = (ys * (2.0 / (h - 1)) - 1.0)[:, :, None]
    return F.grid_sample(image, torch.from_numpy(grid).to(image.dtype).view(1, p * out_h, out_w, 2),
                         mode="bilinear", padding_mode="border", align_corners=True)


def _sample_separable(images: Tensor, xs: Tensor, ys: Tensor) -> Tensor:
    """Bilinear samples ``(B, C, P, h, w)`` of ``images (B, C, H, W)`` on the ``P`` separable grids per image
    whose columns sit at pixel coordinates ``xs (B, P, w)`` and rows at ``ys (B, P, h)`` (``"border"``
    padding), as one ``grid_sample`` per image of a tall grid: the images are never copied ``P`` times."""
    b, c, h, w = images.shape
    p, out_h, out_w = xs.shape[1], ys.shape[-1], xs.shape[-1]
    # align_corners=True normalisation: -1 and +1 are the centres of the first and last pixels
    gx = (xs * (2.0 / (w - 1)) - 1.0) if w > 1 else torch.zeros_like(xs)
    gy = (ys * (2.0 / (h - 1)) - 1.0) if h > 1 else torch.zeros_like(ys)
    shape = (b, p, out_h, out_w)
    grid = torch.stack([gx.to(images.dtype)[:, :, None, :].expand(shape),
                        gy.to(images.dtype)[:, :, :, None].expand(shape)], dim=-1)
    out = F.grid_sample(images, grid.view(b, p * out_h, out_w, 2), mode="bilinear", padding_mode="border",
                        align_corners=True)  # (B, C, P * out_h, out_w)
    return out.view(b, c, p, out_h, out_w)


def pyramid_crop(images: Tensor, boxes: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Fast approximate :func:`resized_crop` (no flips) for boxes ``[B, K, 4]``: one bilinear sample per output
    bin from a 2x average-pooled pyramid of ``images``.

    Each box is read from the pyramid level ``l`` (the image average-pooled ``2**l`` times; 0 is the image)
    where it is between 1x and 2x the output size (``l = floor(log2(box side / output side))``, at least 0),
    so a large box costs one bilinear sample per bin instead of ``roi_align``'s ``ceil(shrink)**2``. The
    levels are laid side by side on one canvas, so all boxes of an image are one ``grid_sample``. Differs
    from the exact area average by the pooling's box filter and the mild aliasing of a < 2x bilinear shrink;
    boxes no larger than the output (level 0) are sampled exactly as :func:`resized_crop` does.

    Returns ``[B, K, C, h, w]``.
    """
    if images.ndim != 4 or boxes.ndim != 3 or boxes.shape[0] != images.shape[0] or boxes.shape[-1] != 4:
        raise ValueError(f"pyramid_crop expects images [B, C, H, W] and boxes [B, K, 4], got "
                         f"{tuple(images.shape)} and {tuple(boxes.shape)}")
    out_h, out_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    b, c, h, w = images.shape
    bx = boxes.to(device=images.device, dtype=torch.float32)
    shrink = torch.maximum((bx[..., 2] - bx[..., 0]) / out_w, (bx[..., 3] - bx[..., 1]) / out_h)  # (B, K)
    levels = [images]
    while min(levels[-1].shape[-2:]) >= 2 and float(shrink.max()) >= 2.0 ** len(levels):
        levels.append(F.avg_pool2d(levels[-1], 2))
    if float(shrink.max()) <= 1.0:  # every box is read at one sample per bin anyway
        return resized_crop(images, boxes, (out_h, out_w))
    n_levels = len(levels)
    level = torch.log2(shrink.clamp_min(1.0)).floor_().clamp_(0, n_levels - 1)  # (B, K)
    widths = [lv.shape[-1] for lv in levels]
    offsets = [0]
    for lw in widths[:-1]:
        offsets.append(offsets[-1] + lw)
    canvas = images
    if n_levels > 1:
        canvas = images.new_zeros(b, c, h, offsets[-1] + widths[-1])
        for lv, off in zip(levels, offsets):
            canvas[:, :, :lv.shape[-2], off:off + lv.shape[-1]] = lv
    li = level.long()
    scale = torch.exp2(-level)[..., None]  # (B, K, 1): image px -> level px
    lw_t = torch.tensor(widths, dtype=torch.float32, device=images.device)[li][..., None]
    lh_t = torch.tensor([lv.shape[-2] for lv in levels], dtype=torch.float32, device=images.device)[li][..., None]
    off_t = torch.tensor(offsets, dtype=torch.float32, device=images.device)[li][..., None]
    j = torch.arange(out_w, device=images.device, dtype=torch.float32) + 0.5
    i = torch.arange(out_h, device=images.device, dtype=torch.float32) + 0.5
    # Bin centres in level pixels, clamped to the level's edge pixel centres (roi_align's border rule), then
    # shifted to the level's place on the canvas: bilinear neighbours never cross into another level.
    xs = ((bx[..., 0:1] + j * ((bx[..., 2:3] - bx[..., 0:1]) / out_w)) * scale - 0.5)
    xs = torch.minimum(xs.clamp_(min=0.0), lw_t - 1) + off_t
    ys = ((bx[..., 1:2] + i * ((bx[..., 3:4] - bx[..., 1:2]) / out_h)) * scale - 0.5)
    ys = torch.minimum(ys.clamp_(min=0.0), lh_t - 1)
    return _sample_separable(canvas, xs, ys).transpose(1, 2).contiguous()
