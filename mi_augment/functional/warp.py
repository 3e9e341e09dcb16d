"""Batched image warps: homographies and affine maps, masks, and the one-pass crop-and-warp.

Pure functions on ``[B, C, H, W]`` float tensors, in :mod:`mi_augment.functional.geometry`'s pixel-centre
convention (a matrix maps input pixels to output pixels). Borders: ``padding_mode="reflection"`` (default)
mirrors the image about its outermost pixel centres, so a warp never introduces black corners that a network
could use as a cue; ``"border"`` repeats the edge pixel and ``"zeros"`` fills with 0.

Speed paths inside the kernels (the affine grid as one broadcast sum, reflection through a mirrored margin,
the warp writing the blur's border) are skipped inside ``mi_augment.kernel_options(fast_paths=False)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.options import current
from .geometry import (
    blur_3x3,
    check_image_batch,
    check_matrices,
    check_per_sample,
    motion_blur,
    motion_blur_kernels,
)

__all__ = ["crop_warp", "warp_affine", "warp_and_blur", "warp_homography", "warp_masks"]

_PADDING_MODES = ("reflection", "border", "zeros")
_INTERPOLATIONS = ("bilinear", "nearest", "bicubic")


def _is_affine(inverse: Tensor) -> bool:
    return bool((inverse[:, 2, :2] == 0).all()) and bool((inverse[:, 2, 2] == 1).all())


def _affine_grid(inverse: Tensor, h: int, w: int, dtype: torch.dtype, ring: bool = False,
                 source: tuple[int, int] | None = None) -> Tensor:
    """``grid_sample`` grid ``(B, H, W, 2)`` (``align_corners=True``) of affine output -> input pixel maps
    ``inverse (B, 3, 3)`` (float64). ``source``: the ``(height, width)`` of the sampled image when it is not
    ``(h, w)`` (the output's size).

    The normalised source coordinates are an affine function of the output pixel, so the grid is one
    broadcast sum of a column term and a row term (no per-pixel matmul). Pixel coordinates are taken
    relative to the image centre (exact in float), so the float32 sum does not cancel large terms.

    ``ring=True`` adds a one-pixel ring whose coordinates are those of the pixel mirrored about the border
    pixel centre (``F.pad(..., mode="reflect")`` of the warped image): ``(B, H + 2, W + 2, 2)``.
    """
    device = inverse.device
    src_h, src_w = (h, w) if source is None else source
    sx, sy = 2.0 / max(src_w - 1, 1), 2.0 / max(src_h - 1, 1)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    theta = inverse[:, :2] * torch.tensor([sx, sy], dtype=torch.float64, device=device)[None, :, None]
    t0, t1, t2 = theta.unbind(2)
    t2.add_(t0 * cx + t1 * cy - 1.0)
    # theta (B, 2, 3): centred output pixel -> normalised input coordinate. The column and row terms are
    # small (B, W) / (B, H) tensors computed in float64 and rounded once; only their sum is float32.
    xs = torch.arange(w, device=device, dtype=torch.float64)
    ys = torch.arange(h, device=device, dtype=torch.float64)
    if ring:
        xs = torch.cat([xs[1:2], xs, xs[-2:-1]])
        ys = torch.cat([ys[1:2], ys, ys[-2:-1]])
    # theta's columns as (B, 1, 1, 2) and the coordinates as views: fewer indexing calls per grid
    t0, t1, t2 = theta.transpose(1, 2).reshape(theta.shape[0], 3, 1, 1, 2).unbind(1)
    col = (t0 * (xs - cx).view(1, 1, -1, 1)).to(dtype)  # (B, 1, W, 2)
    row = torch.addcmul(t2, t1, (ys - cy).view(1, -1, 1, 1))
    return col + row.to(dtype)  # (B, H, W, 2)


def warp_homography(images: Tensor, matrices: Tensor, *, padding_mode: str = "reflection",
                    interpolation: str = "bilinear") -> Tensor:
    """Warp each image by its own 3x3 homography (OpenCV convention: ``out(M p) = in(p)``).

    Args:
        images: ``[B, C, H, W]`` float.
        matrices: ``(B, 3, 3)`` pixel-coordinate homographies, input to output.
        padding_mode: ``"reflection"`` (default), ``"border"`` or ``"zeros"``.
        interpolation: ``"bilinear"`` (default), ``"nearest"`` or ``"bicubic"``.

    Returns:
        a new ``[B, C, H, W]`` tensor (the input is never modified).
    """
    check_image_batch(images)
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")
    b, _, h, w = images.shape
    matrices = check_per_sample(matrices, b, "matrices", (3, 3))
    # Output pixel -> input pixel: invert in float64 for accuracy, then sample.
    inverse = torch.linalg.inv(matrices.to(device=images.device, dtype=torch.float64))
    if current().fast_paths and _is_affine(inverse):  # speed path: the grid as one broadcast sum
        grid = _affine_grid(inverse, h, w, images.dtype)
        return F.grid_sample(images, grid, mode=interpolation, padding_mode=padding_mode, align_corners=True)
    ys, xs = torch.meshgrid(torch.arange(h, device=images.device, dtype=torch.float64),
                            torch.arange(w, device=images.device, dtype=torch.float64), indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, h * w, 3)
    src = points @ inverse.transpose(1, 2)  # (B, HW, 3)
    denom = src[..., 2:3]
    denom = torch.where(denom.abs() < 1e-12, torch.full_like(denom, 1e-12), denom)
    src = src[..., :2] / denom
    # align_corners=True: -1 and +1 are the centres of the first and last pixels.
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], dtype=torch.float64, device=images.device)
    grid = (src * scale - 1.0).reshape(b, h, w, 2).to(images.dtype)
    return F.grid_sample(images, grid, mode=interpolation, padding_mode=padding_mode, align_corners=True)


def warp_affine(images: Tensor, matrices: Tensor, *, padding_mode: str = "reflection",
                interpolation: str = "bilinear") -> Tensor:
    """Warp each image by its own 2x3 affine matrix (the matrix ``cv2.warpAffine`` takes, input to output).

    See :func:`warp_homography` for the arguments; ``matrices`` is ``(B, 2, 3)`` here.
    """
    check_image_batch(images)
    b = images.shape[0]
    matrices = check_per_sample(matrices, b, "matrices", (2, 3))
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=matrices.dtype, device=matrices.device).expand(b, 1, 3)
    return warp_homography(images, torch.cat([matrices, bottom], dim=1), padding_mode=padding_mode,
                           interpolation=interpolation)


def warp_masks(masks: Tensor, matrices: Tensor, *, padding_mode: str = "zeros",
               size: tuple[int, int] | None = None) -> Tensor:
    """Warp label or binary masks by each sample's homography with nearest-neighbour sampling, so every output
    value is one of the input's (no blended labels).

    Args:
        masks: ``[B, K, H, W]`` of any dtype (bool, integer labels up to 2**24, or float).
        matrices: ``(B, 3, 3)`` input-to-output matrices (:func:`warp_homography`'s).
        padding_mode: ``"zeros"`` (default: outside is background), ``"border"`` or ``"reflection"`` (pass
            the image's mode to keep the mask aligned with reflected image content too).
        size: ``(height, width)`` of the output canvas when it is not the input's (e.g. a resized crop, whose
            matrix maps image pixels to view pixels); affine matrices only.

    Returns:
        ``[B, K, H, W]`` masks of the input's dtype (``[B, K, *size]`` with ``size``).
    """
    if not isinstance(masks, Tensor) or masks.ndim != 4:
        raise ValueError(f"masks must be a [B, K, H, W] tensor, got {getattr(masks, 'shape', type(masks))}")
    if masks.shape[0] == 0 or masks.shape[1] == 0:
        return masks.clone()
    check_matrices(matrices, masks.shape[0])
    x = masks if masks.dtype in (torch.float32, torch.float64) else masks.to(torch.float32)
    if size is None or tuple(size) == tuple(masks.shape[-2:]):
        out = warp_homography(x, matrices, padding_mode=padding_mode, interpolation="nearest")
    else:
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        inverse = torch.linalg.inv(matrices.to(device=masks.device, dtype=torch.float64))
        if not _is_affine(inverse):
            raise ValueError("warp_masks with size= needs affine matrices (last row 0, 0, 1)")
        grid = _affine_grid(inverse, int(size[0]), int(size[1]), x.dtype, source=tuple(masks.shape[-2:]))
        out = F.grid_sample(x, grid, mode="nearest", padding_mode=padding_mode, align_corners=True)
    if masks.dtype == torch.bool:
        return out > 0.5
    if not masks.is_floating_point():
        return out.round().to(masks.dtype)
    return out.to(masks.dtype)


def warp_and_blur(images: Tensor, matrices: Tensor, length: Tensor, angle: Tensor, *,
                   padding_mode: str = "reflection") -> Tensor:
    """Warp then motion-blur each image: ``motion_blur(warp_homography(images, matrices,
    padding_mode=padding_mode), length, angle)``, the composition itself inside
    ``kernel_options(fast_paths=False)``.

    Args:
        images: ``[B, C, H, W]`` float.
        matrices: ``(B, 3, 3)`` input-to-output pixel matrices (:func:`warp_homography`'s).
        length, angle: ``(B,)`` streak lengths in pixels and directions in radians (:func:`motion_blur`'s).
        padding_mode: the warp's border (:func:`warp_homography`'s).

    Shape:
        - Output: ``[B, C, H, W]``.

    When every warp is affine and every streak is shorter than 2 px (the usual natural motion), the warp
    writes the warped image together with its one-pixel reflected ring (the border ``motion_blur`` pads
    with), so the blur's 3x3 taps read it directly: no separate padding pass. Otherwise the two kernels
    run one after the other.
    """
    check_image_batch(images)
    b, _, h, w = images.shape
    matrices = check_per_sample(matrices, b, "matrices", (3, 3))
    length = check_per_sample(length.reshape(-1) if isinstance(length, Tensor) else length, b, "length")
    angle = check_per_sample(angle.reshape(-1) if isinstance(angle, Tensor) else angle, b, "angle")
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
    inverse = torch.linalg.inv(matrices.to(device=images.device, dtype=torch.float64))
    length = length.to(images.device, images.dtype)
    angle = angle.to(images.device, images.dtype)
    short = length < 2.0
    kernels = motion_blur_kernels(length, angle)
    k = kernels.shape[-1]
    pad = k // 2
    # motion_blur mirrors the border unless its kernel is wider than the image (then it replicates it for
    # the whole batch): only the mirrored case is fused.
    if (not current().fast_paths or pad >= h or pad >= w or h < 2 or w < 2 or not _is_affine(inverse)
            or not bool(short.any())):
        return motion_blur(warp_homography(images, matrices, padding_mode=padding_mode), length, angle)
    source, mode = images, padding_mode
    if padding_mode == "reflection":  # mirror into a margin and sample it in the cheaper border mode
        source, theta, mode = _reflect_by_padding(images, inverse[:, :2], h, w)
        inverse = torch.cat([theta, inverse[:, 2:]], 1)
    grid = _affine_grid(inverse, h, w, images.dtype, ring=True, source=tuple(source.shape[-2:]))
    padded = F.grid_sample(source, grid, mode="bilinear", padding_mode=mode, align_corners=True)
    if k == 1:
        return padded[:, :, 1:-1, 1:-1].contiguous()
    all_short = bool(short.all())
    small = kernels if all_short else torch.where(short[:, None, None], kernels, 0.0)
    out = blur_3x3(images, small[:, pad - 1:pad + 2, pad - 1:pad + 2], "reflect", padded=padded)
    if not all_short:  # the few longer streaks: motion_blur on their warped images (same kernels and borders)
        idx = (~short).nonzero().squeeze(1)
        warped = padded.index_select(0, idx)[:, :, 1:-1, 1:-1]
        out.index_copy_(0, idx, motion_blur(warped, length.index_select(0, idx), angle.index_select(0, idx)))
    return out


def _reflect_by_padding(images: Tensor, theta: Tensor, out_h: int, out_w: int) -> tuple[Tensor, Tensor, str]:
    """Trade ``grid_sample``'s reflection padding for its cheaper border mode (~1.2x faster on this project's
    CPU VM for a 224 px view grid: ``benchmarks/cpu_breakdown.py``).

    ``theta`` ``(N, 2, 3)`` maps view pixels (``-0.5 .. out - 0.5``, every sample of the ring and the
    sub-sample offsets included) to image pixels. Returns ``(images, theta, padding_mode)`` to sample with:
    if every sample lands inside the image, the same images with ``"border"`` (no sample reads past an edge,
    so the modes agree); if they leave it by less than its size, the images mirrored into a margin that holds
    every sample (``F.pad``'s ``"reflect"`` mirrors about the edge pixel centres, as ``grid_sample``'s
    reflection with ``align_corners=True`` does, and bilinear interpolation of mirrored pixels is the mirrored
    interpolation), ``theta`` shifted onto it, and ``"border"``; otherwise everything unchanged with
    ``"reflection"``. CPU only: measured there, and on an accelerator the bounds would need a host
    synchronisation. Not taken inside ``kernel_options(fast_paths=False)``.
    """
    h, w = images.shape[-2:]
    if h < 2 or w < 2 or images.device.type != "cpu" or not current().fast_paths:
        return images, theta, "reflection"
    corners = torch.tensor([[-0.5, -0.5, out_w - 0.5, out_w - 0.5], [-0.5, out_h - 0.5, -0.5, out_h - 0.5]],
                           dtype=theta.dtype, device=theta.device)
    pts = theta[:, :, :2] @ corners + theta[:, :, 2:]  # (N, 2, 4): the affine map's extremes are at corners
    (lo_x, lo_y), (hi_x, hi_y) = pts.amin(dim=(0, 2)).tolist(), pts.amax(dim=(0, 2)).tolist()
    reach = max(-lo_x, -lo_y, hi_x - (w - 1), hi_y - (h - 1))
    if reach <= 0.0:
        return images, theta, "border"
    pad = math.ceil(reach) + 1
    if pad >= min(h, w):
        return images, theta, "reflection"
    theta = theta.clone()
    theta[:, :, 2].add_(pad)
    return F.pad(images, (pad, pad, pad, pad), mode="reflect"), theta, "border"


def crop_warp(images: Tensor, boxes: Tensor, size: int | tuple[int, int], matrices: Tensor | None = None, *,
              flip: Tensor | None = None, padding_mode: str = "reflection", sampling_ratio: int = -1) -> Tensor:
    """Resized crops of ``boxes``, each then warped in its own frame, sampled from ``images`` in ONE pass.

    Output pixel ``p`` of crop ``(b, v)`` reads the image at ``crop(M^-1 p)``, where ``crop`` maps the crop's
    pixels onto its box as :func:`~mi_augment.functional.crops.resized_crop` does (flip folded in) and ``M``
    is the crop's warp. So a warp reads the image content around the box (what a moving camera sees), not a
    mirrored copy of the crop, and every pixel is resampled once. Outside the image: ``padding_mode``.
    Boxes larger than the output take ``roi_align``'s adaptive ``ceil(box side / output side)`` samples per
    axis (or ``sampling_ratio`` when >= 1), spread over the pixel and averaged, in the warped frame.

    Args:
        images: ``[B, C, H, W]`` float.
        boxes: ``(B, V, 4)`` boxes ``(x1, y1, x2, y2)`` in input pixels.
        size: output ``(height, width)``, or one int for squares.
        matrices: ``(B, V, 3, 3)`` affine input-to-output pixel matrices in each crop's frame; None: identity
            (then this is :func:`~mi_augment.functional.crops.resized_crop` to float rounding).
        flip: optional ``(B, V)`` bool, mirror the crop left-right (before its warp).
        padding_mode: ``"reflection"`` (default), ``"border"`` or ``"zeros"``.
        sampling_ratio: samples per output pixel and axis for large boxes; -1 adapts (area averaging).

    Shape:
        - Output: ``(B, V, C, height, width)``.

    Example:
        >>> boxes = torch.tensor([[[0.0, 0.0, 8.0, 8.0], [4.0, 4.0, 12.0, 12.0]]])
        >>> crop_warp(torch.rand(1, 3, 16, 16), boxes, 4).shape
        torch.Size([1, 2, 3, 4, 4])
    """
    check_image_batch(images)
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
    out_h, out_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if out_h < 1 or out_w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    b = images.shape[0]
    if not isinstance(boxes, Tensor) or boxes.ndim != 3 or boxes.shape[0] != b or boxes.shape[2] != 4:
        raise ValueError(f"boxes must be ({b}, V, 4), got {tuple(getattr(boxes, 'shape', ()))}")
    v = boxes.shape[1]
    if not (sampling_ratio == -1 or (isinstance(sampling_ratio, int) and sampling_ratio >= 1)):
        raise ValueError(f"sampling_ratio must be -1 (adaptive) or an integer >= 1, got {sampling_ratio!r}")
    if matrices is None:
        inverse = torch.eye(3, dtype=torch.float64, device=images.device).expand(b * v, 3, 3)
    else:
        if not isinstance(matrices, Tensor) or tuple(matrices.shape) != (b, v, 3, 3):
            raise ValueError(f"matrices must be ({b}, {v}, 3, 3), got {tuple(getattr(matrices, 'shape', ()))}")
        inverse = torch.linalg.inv(matrices.reshape(b * v, 3, 3).to(device=images.device, dtype=torch.float64))
        if not _is_affine(inverse):
            raise ValueError("crop_warp needs affine matrices (last row 0, 0, 1)")
    if flip is not None and tuple(flip.shape) != (b, v):
        raise ValueError(f"flip must be ({b}, {v}) bool, got {tuple(flip.shape)}")
    return _crop_warp(images, boxes, flip, inverse, out_h, out_w, padding_mode, sampling_ratio)


def _crop_warp(images: Tensor, boxes: Tensor, flips: Tensor | None, inverse: Tensor, out_h: int, out_w: int,
               padding_mode: str, sampling_ratio: int) -> Tensor:
    """:func:`crop_warp` on checked arguments, ``inverse`` ``(B * V, 3, 3)`` float64 output-to-input maps."""
    b, c, h, w = images.shape
    v = boxes.shape[1]
    n = b * v
    dev = images.device
    x1, y1, x2, y2 = boxes.reshape(n, 4).to(device=dev, dtype=torch.float64).unbind(1)
    bw, bh = x2 - x1, y2 - y1
    ax, ay = bw / out_w, bh / out_h
    cx_ = x1 + 0.5 * ax - 0.5
    cy_ = y1 + 0.5 * ay - 0.5
    if flips is not None:
        f = flips.reshape(n).to(dev)
        cx_ = torch.where(f, x1 + (out_w - 0.5) * ax - 0.5, cx_)
        ax = torch.where(f, -ax, ax)
    # crop (view px -> image px, diagonal) o inverse motion, then align_corners=True normalisation
    zero = torch.zeros_like(ax)
    crop = torch.stack([ax, zero, cx_, zero, ay, cy_], 1).view(n, 2, 3)
    theta = crop @ inverse  # (N, 2, 3), view px -> image px
    if padding_mode == "reflection":
        images, theta, padding_mode = _reflect_by_padding(images, theta, out_h, out_w)
        h, w = images.shape[-2:]
    norm = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], dtype=torch.float64, device=dev)
    theta = theta * norm[None, :, None]
    theta[:, :, 2].sub_(1.0)
    if w == 1:
        theta[:, 0] = 0.0
    if h == 1:
        theta[:, 1] = 0.0
    xs = torch.arange(out_w, device=dev, dtype=torch.float64)
    ys = torch.arange(out_h, device=dev, dtype=torch.float64)
    if sampling_ratio >= 1:
        ry = rx = torch.full((n,), float(sampling_ratio), dtype=torch.float64, device=dev)
    else:  # roi_align's adaptive rule, per axis
        ry, rx = (bh / out_h).ceil().clamp_min(1.0), (bw / out_w).ceil().clamp_min(1.0)
    one = (ry <= 1.0) & (rx <= 1.0)

    def grid_for(idx: Tensor | None, sy: int, sx: int) -> Tensor:
        """(N', sy * sx * h, w, 2): one (h, w) plane per sub-sample offset, so that the average over the
        sy x sx sub-samples of a pixel is a mean over contiguous planes."""
        th = theta if idx is None else theta.index_select(0, idx)
        px = xs[None, :] + ((torch.arange(sx, device=dev, dtype=torch.float64) + 0.5) / sx - 0.5)[:, None]
        py = ys[None, :] + ((torch.arange(sy, device=dev, dtype=torch.float64) + 0.5) / sy - 0.5)[:, None]
        t0, t1, t2 = th.transpose(1, 2).reshape(th.shape[0], 3, 1, 1, 1, 1, 2).unbind(1)
        col = (t0 * px.view(1, 1, sx, 1, out_w, 1)).to(images.dtype)
        row = torch.addcmul(t2, t1, py.view(1, sy, 1, out_h, 1, 1)).to(images.dtype)
        return (col + row).view(th.shape[0], sy * sx * out_h, out_w, 2)

    all_one = bool(one.all())
    if all_one or bool(one.any()):
        out = F.grid_sample(images, grid_for(None, 1, 1).view(b, v * out_h, out_w, 2), mode="bilinear",
                            padding_mode=padding_mode, align_corners=True).view(b, c, v, out_h, out_w)
    else:
        out = images.new_empty(b, c, v, out_h, out_w)
    if not all_one:
        ratios = (ry * 4096 + rx).masked_fill(one, 0)  # one group per distinct (ry, rx), as roi_align
        for key in ratios.unique().tolist():
            if key == 0:
                continue
            sy, sx = divmod(int(key), 4096)
            big = (ratios == key).nonzero().squeeze(1)
            src = images.index_select(0, torch.div(big, v, rounding_mode="floor"))
            fine = F.grid_sample(src, grid_for(big, sy, sx), mode="bilinear", padding_mode=padding_mode,
                                 align_corners=True)
            out[torch.div(big, v, rounding_mode="floor"), :, big % v] = fine.view(-1, c, sy * sx, out_h, out_w).mean(2)
    return out.transpose(1, 2).contiguous()
