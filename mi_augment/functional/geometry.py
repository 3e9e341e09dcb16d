"""Batched geometric kernels: similarity matrices, per-sample motion blur, and moving points and boxes.

Pure functions on ``[B, C, H, W]`` float tensors; they never draw random numbers. The warps of images and masks
(:func:`~mi_augment.functional.warp.warp_homography`, ``warp_affine``, ``warp_masks``, the one-pass
``crop_warp`` and ``warp_and_blur``) live in :mod:`mi_augment.functional.warp`.

Coordinate convention (the same as OpenCV's ``cv2.warpAffine`` / ``cv2.warpPerspective``): pixel centres sit at
integer coordinates ``x = 0 .. W-1`` (columns, rightwards) and ``y = 0 .. H-1`` (rows, downwards); a warp
matrix maps a point of the *input* image to where it lands in the *output* image, so the output is
``out(M p) = in(p)``. Rotations are in radians, positive from +x towards +y (clockwise on screen, since y
points down).

Speed paths inside the kernels (the 3x3 blur taps) are skipped inside
``mi_augment.kernel_options(fast_paths=False)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.options import current

__all__ = [
    "blur_3x3",
    "motion_blur",
    "motion_blur_kernel",
    "motion_blur_kernel_size",
    "motion_blur_kernels",
    "similarity_matrices",
    "similarity_matrix",
    "warp_boxes",
    "warp_points",
]

def check_image_batch(images: Tensor, name: str = "images") -> None:
    """Raise a ``ValueError`` / ``TypeError`` naming ``name`` unless ``images`` is a non-empty float
    ``[B, C, H, W]`` tensor (the argument check the geometric kernels share)."""
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"{name} must be a [B, C, H, W] tensor, got {getattr(images, 'shape', type(images))}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got dtype {images.dtype}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (B=0); expected at least one image")


def check_per_sample(value: Tensor, batch: int, name: str, trailing: tuple[int, ...] = ()) -> Tensor:
    """``value`` as a tensor of shape ``(batch, *trailing)`` with finite values, or a ``ValueError`` naming
    ``name`` (the per-sample parameter check the geometric kernels share)."""
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
    if (b <= _FEW and log_scale.dtype == torch.float64 and log_scale.device.type == "cpu"
            and rotation.dtype == translation.dtype == torch.float64 and current().fast_paths):
        # speed path: a few float64 matrices (one image's views) as Python floats, the same IEEE operations
        rows = zip(log_scale.tolist(), rotation.tolist(), translation.tolist())
        return torch.tensor([similarity_matrix(s, r, dx, dy, height, width) for s, r, (dx, dy) in rows],
                            dtype=torch.float64).view(b, 3, 3)
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


def similarity_matrix(log_scale: float, rotation: float, dx: float, dy: float, height: int,
                      width: int) -> list[list[float]]:
    """One matrix of :func:`similarity_matrices` as Python floats (float64), ``3 x 3`` nested lists: its
    arithmetic in the same order (``exp``, ``cos`` and ``sin`` are the C library's, within an ulp of
    torch's). :func:`similarity_matrices` takes this form for a few float64 matrices on the CPU.

    Args:
        log_scale: natural log of the zoom factor.
        rotation: radians.
        dx, dy: translation as fractions of ``max(height, width)``.
        height, width: the image's size in pixels.

    Example:
        >>> similarity_matrix(0.0, 0.0, 0.25, 0.0, 8, 8)
        [[1.0, -0.0, 2.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    s = math.exp(log_scale)
    cos, sin = s * math.cos(rotation), s * math.sin(rotation)
    side = float(max(height, width))
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    tx = cx - (cos * cx - sin * cy) + dx * side
    ty = cy - (sin * cx + cos * cy) + dy * side
    return [[cos, -sin, tx], [sin, cos, ty], [0.0, 0.0, 1.0]]


#: batch sizes up to which the geometric kernels compute on Python floats (one image's views)
_FEW = 8


def motion_blur_kernel_size(longest: float) -> int:
    """The smallest odd kernel side holding a streak of ``longest`` pixels centred on the kernel centre:
    :func:`motion_blur_kernels`' default ``K``.

    Example:
        >>> motion_blur_kernel_size(0.0), motion_blur_kernel_size(1.5), motion_blur_kernel_size(2.0)
        (1, 3, 5)
    """
    return 2 * (math.floor(longest / 2.0) + 1) + 1 if longest > 0 else 1


def motion_blur_kernel(length: float, angle: float, kernel_size: int) -> list[float]:
    """One kernel of :func:`motion_blur_kernels` on Python floats: the same points and bilinear splats,
    accumulated in float64 (the torch kernel accumulates in its dtype: the taps agree within float32
    rounding). :func:`motion_blur_kernels` takes this form for a few kernels on the CPU.

    Args:
        length: streak length in pixels (>= 0, finite).
        angle: direction in radians.
        kernel_size: odd ``K``, at least :func:`motion_blur_kernels`' default for this length.

    Returns:
        the ``K * K`` taps, row-major, summing to 1.

    Example:
        >>> motion_blur_kernel(0.0, 0.0, 1)
        [1.0]
    """
    k = int(kernel_size)
    n = int(math.ceil(4 * length)) + 2  # points every <= 0.25 px
    centre = (k - 1) / 2.0
    dx, dy = length * math.cos(angle), length * math.sin(angle)
    taps = [0.0] * (k * k)
    for i in range(n):
        t = i / (n - 1) - 0.5
        px, py = centre + t * dx, centre + t * dy
        x0, y0 = math.floor(px), math.floor(py)
        fx, fy = px - x0, py - y0
        if 0 <= x0 < k - 1 and 0 <= y0 < k - 1:  # all four taps inside (always, for a large enough kernel_size)
            at, gx, gy = y0 * k + x0, 1.0 - fx, 1.0 - fy
            taps[at] += gy * gx
            taps[at + 1] += gy * fx
            taps[at + k] += fy * gx
            taps[at + k + 1] += fy * fx
            continue
        for y, wy in ((y0, 1.0 - fy), (y0 + 1, fy)):
            if 0 <= y < k:
                for x, wx in ((x0, 1.0 - fx), (x0 + 1, fx)):
                    if 0 <= x < k:
                        taps[y * k + x] += wy * wx
    total = math.fsum(taps)
    return [tap / total for tap in taps]


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
    few = 0 < b <= _FEW and length.device.type == "cpu" and current().fast_paths  # one image's few kernels
    if few:  # speed path: the checks and the kernels on Python floats
        lengths, angles = length.tolist(), angle.tolist()
        lo, longest = min(lengths), max(lengths)
        finite = all(map(math.isfinite, lengths)) and all(map(math.isfinite, angles))
    else:  # one reduction for the length checks (NaN and inf show in the extremes)
        lo, longest = (float(e) for e in torch.aminmax(length)) if b else (0.0, 0.0)
        finite = math.isfinite(lo) and math.isfinite(longest) and bool(torch.isfinite(angle).all())
    if not finite:
        raise ValueError("motion blur length and angle must be finite")
    if lo < 0:
        raise ValueError("motion blur length must be >= 0")
    needed = motion_blur_kernel_size(longest)
    if kernel_size is None:
        kernel_size = needed
    elif kernel_size % 2 == 0 or kernel_size < needed:
        raise ValueError(f"kernel_size must be an odd integer >= {needed} (to hold a {longest:.2f} px streak), "
                         f"got {kernel_size}")
    k = int(kernel_size)
    dtype = length.dtype if length.is_floating_point() else torch.float32
    if few:
        return torch.tensor([motion_blur_kernel(s, a, k) for s, a in zip(lengths, angles)], dtype=dtype).view(b, k, k)
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
    check_image_batch(images)
    if border not in ("reflect", "replicate", "constant"):
        raise ValueError(f"border must be 'reflect', 'replicate' or 'constant', got {border!r}")
    b, c, h, w = images.shape
    length = check_per_sample(length.reshape(-1) if isinstance(length, Tensor) else length, b, "length")
    angle = check_per_sample(angle.reshape(-1) if isinstance(angle, Tensor) else angle, b, "angle")
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
        return blur_3x3(images, kernels[:, pad - 1:pad + 2, pad - 1:pad + 2], mode)
    if not bool(short.any()):
        return _blur_conv(images, kernels, mode)
    out = blur_3x3(images, torch.where(short[:, None, None], kernels, 0.0)[:, pad - 1:pad + 2, pad - 1:pad + 2],
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


def blur_3x3(images: Tensor | None, kernels: Tensor, border: str = "reflect", padded: Tensor | None = None,
             out: Tensor | None = None) -> Tensor:
    """Correlate each image with its own 3x3 kernel, as 9 shifted multiply-adds (taps no sample uses are
    skipped): the kernel :func:`motion_blur` uses for streaks shorter than 2 px.

    Args:
        images: ``[B, C, H, W]`` float (not read when ``padded`` is given).
        kernels: ``(B, 3, 3)`` per-sample taps.
        border: ``F.pad`` mode of the one-pixel border (``"reflect"``, ``"replicate"``, ``"constant"``).
        padded: ``images`` already padded by one pixel with ``border`` (``[B, C, H + 2, W + 2]``, any strides),
            e.g. written so by a warp that samples its own border.
        out: an optional ``[B, C, H, W]`` buffer, not overlapping ``padded``, to write into.

    Shape:
        - Output: ``[B, C, H, W]``.

    Example:
        >>> box = torch.full((1, 3, 3), 1 / 9)
        >>> blur_3x3(torch.ones(1, 1, 4, 4), box).shape
        torch.Size([1, 1, 4, 4])
    """
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


# ---------------------------------------------------------------------------------------------------------------
# Moving annotations with a warp: points, boxes and masks follow the image through the same matrices.


def check_matrices(matrices: Tensor, batch: int, name: str = "matrices") -> Tensor:
    """``matrices`` if it is ``(batch, 3, 3)``, else a ``ValueError`` naming ``name``."""
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
    m = check_matrices(matrices, points.shape[0]).to(device=points.device, dtype=torch.float64)
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




def __getattr__(name: str) -> Any:
    # the image warps moved to functional.warp (issue 21); imports from here keep working
    if name in ("warp_homography", "warp_affine", "warp_masks"):
        from . import warp

        return getattr(warp, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
