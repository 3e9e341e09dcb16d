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
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "motion_blur",
    "motion_blur_kernels",
    "similarity_matrices",
    "warp_affine",
    "warp_homography",
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
    m = torch.zeros(b, 3, 3, dtype=log_scale.dtype, device=log_scale.device)
    m[:, 0, 0], m[:, 0, 1] = cos, -sin
    m[:, 1, 0], m[:, 1, 1] = sin, cos
    m[:, 0, 2] = cx - (cos * cx - sin * cy) + translation[:, 0] * side
    m[:, 1, 2] = cy - (sin * cx + cos * cy) + translation[:, 1] * side
    m[:, 2, 2] = 1.0
    return m


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
    if not bool(torch.isfinite(length).all()) or not bool(torch.isfinite(angle).all()):
        raise ValueError("motion blur length and angle must be finite")
    if bool((length < 0).any()):
        raise ValueError("motion blur length must be >= 0")
    b = length.shape[0]
    longest = float(length.max()) if b else 0.0
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
    present = j < counts[:, None]
    t = torch.where(present, j / (counts[:, None] - 1) - 0.5, torch.zeros_like(j))  # in [-0.5, 0.5]
    centre = (k - 1) / 2.0
    px = centre + t * (length * torch.cos(angle)).to(dtype)[:, None]  # (B, N)
    py = centre + t * (length * torch.sin(angle)).to(dtype)[:, None]
    x0, y0 = torch.floor(px), torch.floor(py)
    fx, fy = px - x0, py - y0
    kernels = torch.zeros(b, k * k, dtype=dtype, device=length.device)
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = (x0 + dx).long(), (y0 + dy).long()
        inside = present & (xi >= 0) & (xi < k) & (yi >= 0) & (yi < k)
        index = (yi.clamp(0, k - 1) * k + xi.clamp(0, k - 1))
        kernels.scatter_add_(1, index, torch.where(inside, weight, torch.zeros_like(weight)))
    kernels = kernels / kernels.sum(1, keepdim=True)
    return kernels.reshape(b, k, k)


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
    padded = F.pad(images.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode=mode)
    weight = kernels.repeat_interleave(c, dim=0).unsqueeze(1)  # (B*C, 1, K, K)
    # conv2d is a correlation; the kernels are point-symmetric, so this equals the convolution.
    return F.conv2d(padded, weight, groups=b * c).reshape(b, c, h, w)
