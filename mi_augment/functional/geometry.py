"""Batched geometric kernels: warps (affine / homography) and per-sample motion blur.

Pure functions on ``[B, C, H, W]`` float tensors; they never draw random numbers.

Coordinate convention (the same as OpenCV's ``cv2.warpAffine`` / ``cv2.warpPerspective``): pixel centres sit at
integer coordinates ``x = 0 .. W-1`` (columns, rightwards) and ``y = 0 .. H-1`` (rows, downwards); a warp
matrix maps a point of the *input* image to where it lands in the *output* image, so the output is
``out(M p) = in(p)``. Rotations are in radians, positive from +x towards +y (clockwise on screen, since y
points down).

Borders: ``padding_mode="reflection"`` (default) mirrors the image about its outermost pixel centres, so a warp
never introduces black corners that a network could use as a cue; ``"border"`` repeats the edge pixel and
``"zeros"`` fills with 0, like ``cv2.BORDER_CONSTANT``.

Speed paths (the affine warp grid, the 3x3 blur taps, the fused warp + blur, reflection through a mirrored
margin) sit beside the public kernels and are skipped inside ``mi_augment.kernel_options(fast_paths=False)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.options import current

__all__ = [
    "motion_blur",
    "motion_blur_kernels",
    "similarity_matrices",
    "warp_affine",
    "warp_boxes",
    "warp_homography",
    "warp_masks",
    "warp_points",
]

_PADDING_MODES = ("reflection", "border", "zeros")
_INTERPOLATIONS = ("bilinear", "nearest", "bicubic")


def _check_images(images: Tensor, name: str = "images") -> None:
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"{name} must be a [B, C, H, W] tensor, got {getattr(images, 'shape', type(images))}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got dtype {images.dtype}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (B=0); expected at least one image")


def _check_per_sample(value: Tensor, batch: int, name: str, trailing: tuple[int, ...] = ()) -> Tensor:
    if not isinstance(value, Tensor):
        value = torch.as_tensor(value, dtype=torch.float32)
    if value.shape != (batch, *trailing):
        raise ValueError(f"{name} must have shape {(batch, *trailing)} (one per image), got {tuple(value.shape)}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} contains NaN or inf values")
    return value


def similarity_matrices(log_scale: Tensor, rotation: Tensor, translation: Tensor, height: int, width: int) -> Tensor:
    """Pixel-coordinate matrices ``(B, 3, 3)`` of similarity transforms about the image centre.

    A point ``p`` moves to ``s R (p - c) + c + t`` with ``s = exp(log_scale)``, ``R`` the rotation by
    ``rotation`` radians, ``c`` the image centre and ``t = translation * max(height, width)`` pixels: the
    translation is a fraction of the longer side, so the same parameters mean the same motion of the field of
    view at any resolution.

    Args:
        log_scale: ``(B,)`` or ``(B, 1)``.
        rotation: ``(B,)`` or ``(B, 1)``, radians.
        translation: ``(B, 2)``, ``(dx, dy)`` as fractions of ``max(height, width)``.
    """
    log_scale = log_scale.reshape(-1)
    rotation = rotation.reshape(-1)
    b = log_scale.shape[0]
    if rotation.shape[0] != b or translation.shape != (b, 2):
        raise ValueError(f"log_scale ({b}), rotation {tuple(rotation.shape)} and translation "
                         f"{tuple(translation.shape)} must describe the same batch (translation is (B, 2))")
    s = torch.exp(log_scale)
    cos, sin = s * torch.cos(rotation), s * torch.sin(rotation)
    side = float(max(height, width))
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    tx = cx - (cos * cx - sin * cy) + translation[:, 0] * side
    ty = cy - (sin * cx + cos * cy) + translation[:, 1] * side
    tx, ty = tx.to(cos.dtype), ty.to(cos.dtype)  # the matrices keep log_scale's dtype
    zero, one = torch.zeros_like(cos), torch.ones_like(cos)
    # one stack, not nine indexed writes (each costs as much as the arithmetic on a few matrices)
    return torch.stack([cos, -sin, tx, sin, cos, ty, zero, zero, one], 1).view(b, 3, 3)


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
    _check_images(images)
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")
    b, _, h, w = images.shape
    matrices = _check_per_sample(matrices, b, "matrices", (3, 3))
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
    _check_images(images)
    b = images.shape[0]
    matrices = _check_per_sample(matrices, b, "matrices", (2, 3))
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=matrices.dtype, device=matrices.device).expand(b, 1, 3)
    return warp_homography(images, torch.cat([matrices, bottom], dim=1), padding_mode=padding_mode,
                           interpolation=interpolation)


def motion_blur_kernels(length: Tensor, angle: Tensor, kernel_size: int | None = None) -> Tensor:
    """Per-sample linear motion-blur kernels ``(B, K, K)``, each summing to 1.

    Each kernel is a straight streak of ``length`` pixels centred on the kernel centre, in the direction
    ``angle`` (radians, image coordinates), rendered with equal weight per unit length by splatting densely
    spaced points bilinearly, so sub-pixel lengths give smooth kernels. ``length = 0`` gives a unit impulse
    (the identity). The kernel is symmetric, so ``angle`` and ``angle + pi`` give the same kernel.

    Args:
        length: ``(B,)`` non-negative streak lengths in pixels.
        angle: ``(B,)`` directions in radians.
        kernel_size: odd K at least the default, which is the smallest odd size holding the longest streak.
    """
    length = length.reshape(-1)
    angle = angle.reshape(-1)
    if length.shape != angle.shape:
        raise ValueError(f"length {tuple(length.shape)} and angle {tuple(angle.shape)} must have the same size")
    b = length.shape[0]
    # one reduction for the length checks (NaN and inf show in the extremes): per-call overhead at 32 px
    lo, longest = (float(e) for e in torch.aminmax(length)) if b else (0.0, 0.0)
    if not (math.isfinite(lo) and math.isfinite(longest)) or not bool(torch.isfinite(angle).all()):
        raise ValueError("motion blur length and angle must be finite")
    if lo < 0:
        raise ValueError("motion blur length must be >= 0")
    needed = 2 * (math.floor(longest / 2.0) + 1) + 1 if longest > 0 else 1
    if kernel_size is None:
        kernel_size = needed
    elif kernel_size % 2 == 0 or kernel_size < needed:
        raise ValueError(f"kernel_size must be an odd integer >= {needed} (to hold a {longest:.2f} px streak), "
                         f"got {kernel_size}")
    k = int(kernel_size)
    dtype = length.dtype if length.is_floating_point() else torch.float32
    # Points every <= 0.25 px along each streak; the count depends only on that sample's own length, so a
    # kernel is the same whatever else is in the batch (padding to a larger K only adds zeros).
    counts = torch.ceil(4 * length.to(dtype)).clamp_min(0) + 2  # (B,)
    n_max = max(2, math.ceil(4 * longest) + 2)
    j = torch.arange(n_max, device=length.device, dtype=dtype)[None]  # (1, N)
    per_sample = counts.unsqueeze(1)
    present = j < per_sample
    t = torch.where(present, j / (per_sample - 1) - 0.5, 0.0)  # in [-0.5, 0.5]
    centre = (k - 1) / 2.0
    # x and y of every point as one (B, 2, N) tensor (the same arithmetic per axis, half the calls)
    direction = (length.unsqueeze(1) * torch.stack([torch.cos(angle), torch.sin(angle)], 1)).to(dtype)  # (B, 2)
    p = centre + t.unsqueeze(1) * direction.unsqueeze(2)
    p0 = torch.floor(p)
    f = p - p0
    # The four bilinear corners of every point, splatted in one scatter, corners in the order (x0, y0),
    # (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1): (B, 4N) indices and weights, laid out (B, dy, dx, N).
    corner = torch.stack([p0, p0 + 1], 1).long()  # (B, 2 offsets, 2 axes, N)
    fits_x, fits_y = ((corner >= 0) & (corner < k)).unbind(2)  # (B, 2 offsets, N) each
    frac_x, frac_y = torch.stack([1 - f, f], 1).unbind(2)
    corner_x, corner_y = corner.clamp(0, k - 1).unbind(2)
    weight = (frac_y.unsqueeze(2) * frac_x.unsqueeze(1)).view(b, 4 * n_max)
    inside = (fits_y.unsqueeze(2) & fits_x.unsqueeze(1) & present.view(b, 1, 1, n_max)).view(b, 4 * n_max)
    index = (corner_y.unsqueeze(2) * k + corner_x.unsqueeze(1)).view(b, 4 * n_max)
    kernels = torch.zeros(b, k * k, dtype=dtype, device=length.device)
    kernels.scatter_add_(1, index, torch.where(inside, weight, 0.0))
    kernels.div_(kernels.sum(1, keepdim=True))
    return kernels.view(b, k, k)


def motion_blur(images: Tensor, length: Tensor, angle: Tensor, *, border: str = "reflect") -> Tensor:
    """Blur each image with its own linear motion kernel (see :func:`motion_blur_kernels`).

    One grouped convolution handles the whole batch. ``border="reflect"`` (default) mirrors the image so a
    constant image stays constant; it falls back to ``"replicate"`` when the kernel is wider than the image.

    Args:
        images: ``[B, C, H, W]`` float.
        length: ``(B,)`` streak lengths in pixels (0 leaves the image unchanged).
        angle: ``(B,)`` directions in radians.
        border: ``"reflect"``, ``"replicate"`` or ``"constant"`` (zeros).
    """
    _check_images(images)
    if border not in ("reflect", "replicate", "constant"):
        raise ValueError(f"border must be 'reflect', 'replicate' or 'constant', got {border!r}")
    b, c, h, w = images.shape
    length = _check_per_sample(length.reshape(-1) if isinstance(length, Tensor) else length, b, "length")
    angle = _check_per_sample(angle.reshape(-1) if isinstance(angle, Tensor) else angle, b, "angle")
    kernels = motion_blur_kernels(length.to(images.device, images.dtype), angle.to(images.device, images.dtype))
    k = kernels.shape[-1]
    if k == 1:
        return images.clone()
    pad = k // 2
    mode = border if not (border == "reflect" and (pad >= h or pad >= w)) else "replicate"
    if h < 2 or w < 2 or not current().fast_paths:
        return _blur_conv(images, kernels, mode)
    # Speed path: streaks shorter than 2 px (almost all natural ones) fit the central 3x3 taps: blur the batch by 9
    # shifted multiply-adds of a 1-pixel padded copy (much cheaper than a dense grouped convolution), then
    # redo the few longer streaks with the convolution.
    short = length < 2.0
    if k == 3 or bool(short.all()):
        return _blur_taps3(images, kernels[:, pad - 1:pad + 2, pad - 1:pad + 2], mode)
    if not bool(short.any()):
        return _blur_conv(images, kernels, mode)
    out = _blur_taps3(images, torch.where(short[:, None, None], kernels, 0.0)[:, pad - 1:pad + 2, pad - 1:pad + 2],
                      mode)
    idx_long = (~short).nonzero().squeeze(1)
    out.index_copy_(0, idx_long, _blur_conv(images.index_select(0, idx_long), kernels.index_select(0, idx_long), mode))
    return out


def _blur_conv(images: Tensor, kernels: Tensor, mode: str) -> Tensor:
    """Per-sample ``(B, K, K)`` kernels as one grouped convolution (``mode``: ``F.pad`` border mode)."""
    b, c, h, w = images.shape
    pad = kernels.shape[-1] // 2
    padded = F.pad(images.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode=mode)
    weight = kernels.repeat_interleave(c, dim=0).unsqueeze(1)  # (B*C, 1, K, K)
    # conv2d is a correlation; the kernels are point-symmetric, so this equals the convolution.
    return F.conv2d(padded, weight, groups=b * c).reshape(b, c, h, w)


def _blur_taps3(images: Tensor | None, kernels: Tensor, border: str, padded: Tensor | None = None,
                out: Tensor | None = None) -> Tensor:
    """Per-sample ``(B, 3, 3)`` kernels as 9 shifted multiply-adds (taps no sample uses are skipped).
    ``padded``: ``images`` already padded by one pixel with ``border`` (then ``images`` is not read; any
    strides). ``out``: an optional ``(B, C, H, W)`` buffer, not overlapping ``padded``, to write into."""
    if padded is None:
        padded = F.pad(images, (1, 1, 1, 1), mode=border)
    b, c, h, w = padded.shape
    h, w = h - 2, w - 2
    used = (kernels != 0).any(0).view(9).tolist()
    weights = kernels.reshape(b, 9, 1, 1, 1).unbind(1)  # tap (i, j) at 3 i + j, each (B, 1, 1, 1)
    first = True
    for i in range(3):
        rows = padded.narrow(2, i, h)
        for j in range(3):
            if not used[3 * i + j]:
                continue
            tap, weight = rows.narrow(3, j, w), weights[3 * i + j]
            if first:
                out = torch.mul(tap, weight) if out is None else torch.mul(tap, weight, out=out)
                first = False
            else:
                out.addcmul_(tap, weight)
    if first:  # no tap used (all-zero kernels)
        out = padded.new_zeros(b, c, h, w) if out is None else out.zero_()
    return out


def _warp_and_blur(images: Tensor, matrices: Tensor, length: Tensor, angle: Tensor, *,
                   padding_mode: str = "reflection") -> Tensor:
    """``motion_blur(warp_homography(images, matrices, padding_mode=...), length, angle)`` (default borders);
    the composition itself inside ``kernel_options(fast_paths=False)``.

    When every warp is affine and every streak is shorter than 2 px (the usual natural motion), the warp
    writes the warped image together with its one-pixel reflected ring (the border ``motion_blur`` pads
    with), so the blur's 3x3 taps read it directly: no separate padding pass. Otherwise the two kernels
    run one after the other.
    """
    _check_images(images)
    b, _, h, w = images.shape
    matrices = _check_per_sample(matrices, b, "matrices", (3, 3))
    length = _check_per_sample(length.reshape(-1) if isinstance(length, Tensor) else length, b, "length")
    angle = _check_per_sample(angle.reshape(-1) if isinstance(angle, Tensor) else angle, b, "angle")
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
    out = _blur_taps3(images, small[:, pad - 1:pad + 2, pad - 1:pad + 2], "reflect", padded=padded)
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


def _crop_warp_ring(images: Tensor, boxes: Tensor, flips: Tensor | None, inverse: Tensor, out_h: int, out_w: int,
                    padding_mode: str = "reflection", sampling_ratio: int = -1, view_major: bool = False) -> Tensor:
    """Resized crops of ``boxes`` then an affine warp of each crop, as ONE sampling pass of ``images``.

    ``images`` ``(B, C, H, W)``; ``boxes`` ``(B, V, 4)`` ``(x1, y1, x2, y2)``; ``flips`` ``(B, V)`` or None;
    ``inverse`` ``(B * V, 3, 3)`` float64 affine maps from output view pixels to warped-from view pixels (the
    inverse of the motion in the view frame). Output pixel ``p`` of view ``v`` reads the image at
    ``crop_v(inverse_v p)``, where ``crop_v`` maps view pixels onto the box as
    :func:`~mi_augment.functional.crops.resized_crop` does (flip folded in). Samples that the motion moves
    outside the box read the neighbouring image content (outside the image: ``padding_mode``, about the edge
    pixel centres). Returns ``(B * V, C, out_h + 2, out_w + 2)`` with the one-pixel ring of
    :func:`_affine_grid` (``ring=True``: the mirrored pixel's sample, what the blur's reflect border reads).

    Views whose box is larger than the output take ``sy x sx`` samples per pixel (``roi_align``'s adaptive
    ``ceil(box side / output side)`` per axis, or ``sampling_ratio`` when >= 1; one pass per distinct pair)
    spread evenly over the pixel and averaged: ``roi_align``'s area averaging, in the warped frame. The
    others take one bilinear sample (what ``roi_align`` does for them).

    ``view_major=True`` returns ``(B, C, V, out_h + 2, out_w + 2)`` instead (view ``(b, v)`` at
    ``out[b, :, v]``): the layout the sampling writes, without the transposing copy.
    """
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
    theta = crop @ inverse.to(device=dev, dtype=torch.float64)  # (N, 2, 3), view px -> image px
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
    xs = torch.cat([xs[1:2], xs, xs[-2:-1]])  # the mirrored ring
    ys = torch.cat([ys[1:2], ys, ys[-2:-1]])
    if sampling_ratio >= 1:
        ry = rx = torch.full((n,), float(sampling_ratio), dtype=torch.float64, device=dev)
    else:  # roi_align's adaptive rule, per axis
        ry, rx = (bh / out_h).ceil().clamp_min(1.0), (bw / out_w).ceil().clamp_min(1.0)
    one = (ry <= 1.0) & (rx <= 1.0)

    def grid_for(idx: Tensor | None, sy: int, sx: int) -> Tensor:
        """(N', sy * sx * Hg, Wg, 2): one (Hg, Wg) plane per sub-sample offset (a, b), so that the average
        over the sy x sx sub-samples of a pixel is a mean over contiguous planes."""
        th = theta if idx is None else theta.index_select(0, idx)
        if sx == sy == 1:  # one sample per pixel: the offset is 0 (the same values, fewer calls)
            px, py = xs[None, :], ys[None, :]
        else:
            px = xs[None, :] + ((torch.arange(sx, device=dev, dtype=torch.float64) + 0.5) / sx - 0.5)[:, None]
            py = ys[None, :] + ((torch.arange(sy, device=dev, dtype=torch.float64) + 0.5) / sy - 0.5)[:, None]
        # theta's columns as (N', 1, 1, 1, 1, 2) and the offsets as views: fewer indexing calls per grid
        t0, t1, t2 = th.transpose(1, 2).reshape(th.shape[0], 3, 1, 1, 1, 1, 2).unbind(1)
        col = (t0 * px.view(1, 1, sx, 1, px.shape[1], 1)).to(images.dtype)
        row = torch.addcmul(t2, t1, py.view(1, sy, 1, py.shape[1], 1, 1)).to(images.dtype)
        grid = col + row  # (N', s_a, s_b, Hg, Wg, 2)
        return grid.view(grid.shape[0], sy * sx * py.shape[1], px.shape[1], 2)

    hg, wg = out_h + 2, out_w + 2
    all_one = bool(one.all())
    if all_one or bool(one.any()):
        grid = grid_for(None, 1, 1).view(b, v * hg, wg, 2)
        out = F.grid_sample(images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)
        out = out.view(b, c, v, hg, wg)
        if not view_major:
            out = out.transpose(1, 2).reshape(n, c, hg, wg)
    else:
        out = images.new_empty((b, c, v, hg, wg) if view_major else (n, c, hg, wg))
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
            mean = fine.view(big.shape[0], c, sy * sx, hg, wg).mean(2)
            if view_major:
                out[torch.div(big, v, rounding_mode="floor"), :, big % v] = mean
            else:
                out.index_copy_(0, big, mean)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Moving annotations with a warp: points, boxes and masks follow the image through the same matrices.


def _check_matrices_for(matrices: Tensor, batch: int, name: str = "matrices") -> Tensor:
    if not isinstance(matrices, Tensor) or matrices.ndim != 3 or matrices.shape[1:] != (3, 3):
        raise ValueError(f"{name} must be a (B, 3, 3) tensor, got {getattr(matrices, 'shape', type(matrices))}")
    if matrices.shape[0] != batch:
        raise ValueError(f"{name} has {matrices.shape[0]} matrices for a batch of {batch}; expected one per sample")
    return matrices


def warp_points(points: Tensor, matrices: Tensor) -> Tensor:
    """Move points by each sample's 3x3 homography, in this module's pixel-centre coordinates.

    Args:
        points: ``(B, N, 2)`` ``(x, y)`` points (pixel centres at integer coordinates, as torchvision's
            ``KeyPoints`` and kornia's ``Keypoints`` are).
        matrices: ``(B, 3, 3)`` input-to-output matrices, the ones :func:`warp_homography` takes.

    Returns:
        ``(B, N, 2)`` points where the warped image shows what was at ``points`` (same dtype).
    """
    if not isinstance(points, Tensor) or points.ndim != 3 or points.shape[-1] != 2:
        raise ValueError(f"points must be a (B, N, 2) tensor, got {getattr(points, 'shape', type(points))}")
    m = _check_matrices_for(matrices, points.shape[0]).to(device=points.device, dtype=torch.float64)
    p = points.to(torch.float64)
    out = p @ m[:, :2, :2].transpose(1, 2) + m[:, None, :2, 2]
    denom = p @ m[:, 2:3, :2].transpose(1, 2) + m[:, None, 2:3, 2]
    denom = torch.where(denom.abs() < 1e-12, torch.full_like(denom, 1e-12), denom)
    out = out / denom
    return out.to(points.dtype) if points.is_floating_point() else out.to(torch.float32)


def warp_boxes(boxes: Tensor, matrices: Tensor, canvas_size: tuple[int, int] | None = None) -> Tensor:
    """Axis-aligned boxes that enclose each warped box: the box of the four warped corners.

    Boxes are ``(x1, y1, x2, y2)`` in pixel-edge coordinates (the box of pixel column 0 alone is ``x1 = 0,
    x2 = 1``: torchvision's ``XYXY`` and the crop sampler's convention), so a corner ``e`` moves as the pixel
    centre ``e - 0.5`` does. Under a rotation the enclosing box is larger than the object, as in torchvision
    and kornia.

    Args:
        boxes: ``(B, N, 4)``.
        matrices: ``(B, 3, 3)`` input-to-output matrices (:func:`warp_homography`'s).
        canvas_size: ``(height, width)`` to clamp the result to ``[0, width] x [0, height]``; None: no clamp.

    Returns:
        ``(B, N, 4)`` boxes, same dtype.
    """
    if not isinstance(boxes, Tensor) or boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be a (B, N, 4) tensor of (x1, y1, x2, y2), got "
                         f"{getattr(boxes, 'shape', type(boxes))}")
    b, n = boxes.shape[:2]
    x1, y1, x2, y2 = boxes.to(torch.float64).unbind(-1)
    corners = torch.stack([torch.stack([x1, y1], -1), torch.stack([x2, y1], -1),
                           torch.stack([x1, y2], -1), torch.stack([x2, y2], -1)], 2)  # (B, N, 4, 2)
    moved = warp_points(corners.reshape(b, n * 4, 2) - 0.5, matrices).reshape(b, n, 4, 2) + 0.5
    out = torch.cat([moved.amin(2), moved.amax(2)], -1)  # (B, N, 4)
    if canvas_size is not None:
        h, w = (float(s) for s in canvas_size)
        out = torch.stack([out[..., 0].clamp(0, w), out[..., 1].clamp(0, h),
                           out[..., 2].clamp(0, w), out[..., 3].clamp(0, h)], -1)
    return out.to(boxes.dtype) if boxes.is_floating_point() else out.round().to(boxes.dtype)


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
    _check_matrices_for(matrices, masks.shape[0])
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
