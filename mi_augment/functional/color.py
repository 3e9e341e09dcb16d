"""Colour and illumination kernels: pure, batched, never sample randomness.

Every kernel takes a float batch ``[B, C, H, W]`` with values in [0, 1] (``C`` = 1 or 3) and per-sample
parameters with leading dimension ``B``; it returns a new tensor and never modifies its inputs.

Two families live here:

* **Physical illumination** in linear RGB (:func:`apply_illumination`): a per-channel gain (exposure and
  white balance), a gamma on linear intensity (tone-curve changes) and a smooth multiplicative shading field
  rendered from a few coefficients (:func:`render_shading_field`, vignetting and light fall-off).
* **ColorJitter-style adjustments** in sRGB (:func:`adjust_brightness`, :func:`adjust_contrast`,
  :func:`adjust_saturation`, :func:`adjust_hue`), with per-sample factors; for float input each matches
  ``torchvision.transforms.v2.functional`` applied image by image (to 1e-4: the luma weights, see
  :func:`rgb_to_grayscale`).

Colour-space maths (sRGB curve, luma, the adjustments, HSV) is Kornia's (``kornia.color``, ``kornia.enhance``);
this module checks arguments, gives Kornia's kernels the shapes they take, and adds the physical illumination
kernel, which Kornia does not have. The luma, the adjustments and the hue have speed paths beside Kornia's
kernels (the same maths without Kornia's per-call overhead, and a hue rotation without the HSV planes; the
measured reasons are at each one); ``mi_augment.kernel_options(fast_paths=False)`` runs Kornia's.
"""

from __future__ import annotations

import math

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.options import current
from .shading import (
    cached_shading_basis,
    render_shading_field,
    shading_basis,
    shading_cache_bytes,
    shading_degree,
    shading_size,
)

__all__ = [
    "srgb_to_linear",
    "linear_to_srgb",
    "rgb_to_grayscale",
    "shading_basis",
    "shading_cache_bytes",
    "shading_degree",
    "shading_size",
    "render_shading_field",
    "apply_illumination",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
    "adjust_inplace",
]

# sRGB curve: the knee of the decoding (the encoding's knee 0.0031308 maps to it) and log(1.055).
_SRGB_KNEE = 0.04045
_LOG_1055 = 0.05354076692802976


# ---------------------------------------------------------------------------------------------------------
# sRGB transfer function and luma (Kornia's kernels)
# ---------------------------------------------------------------------------------------------------------
def _elementwise(kernel, x: Tensor) -> Tensor:
    """Run a Kornia colour kernel that acts element by element but takes only ``(*, 3, H, W)`` on a tensor of
    any shape (grey images, per-pixel vectors, scalars), as a ``(N, 3, 1, 1)`` view of its elements."""
    flat = x.reshape(-1)
    n = flat.numel()
    if n % 3:
        flat = torch.cat([flat, flat.new_zeros(3 - n % 3)])
    return kernel(flat.view(-1, 3, 1, 1)).reshape(-1)[:n].view(x.shape)


def srgb_to_linear(images: Tensor) -> Tensor:
    """Decode sRGB values in [0, 1] to linear light (IEC 61966-2-1 piecewise curve,
    ``kornia.color.rgb_to_linear_rgb``), element by element on any shape.

    Values are clamped to [0, 1] first, so the output is in [0, 1] too.
    """
    return _elementwise(kornia.color.rgb_to_linear_rgb, images.clamp(0.0, 1.0))


def linear_to_srgb(images: Tensor) -> Tensor:
    """Encode linear light in [0, 1] to sRGB values (inverse of :func:`srgb_to_linear`,
    ``kornia.color.linear_rgb_to_rgb``); clamps to [0, 1]."""
    return _elementwise(kornia.color.linear_rgb_to_rgb, images.clamp(0.0, 1.0))


def rgb_to_grayscale(images: Tensor) -> Tensor:
    """Luma ``[..., 1, H, W]`` of images ``[..., C, H, W]`` with ``C`` = 1 or 3 (a 1-channel input is returned
    as is): ITU-R BT.601 weights 0.299, 0.587, 0.114, by ``kornia.color.rgb_to_grayscale``.

    The package's only luma (``mi_augment.functional.crops.luma`` is this function). torchvision's
    ``rgb_to_grayscale`` weighs red 0.2989 (its weights sum to 0.9999), so it differs from this by up to 1e-4.
    """
    if not isinstance(images, Tensor) or images.ndim < 3:
        raise ValueError(f"images must be a [..., C, H, W] tensor, got {getattr(images, 'shape', type(images))}")
    if images.shape[-3] == 1:
        return images
    if images.shape[-3] != 3:
        raise ValueError(f"images must have 1 or 3 channels, got {images.shape[-3]} (shape {tuple(images.shape)})")
    if current().fast_paths and images.is_floating_point():
        return _luma(images)
    return kornia.color.rgb_to_grayscale(images)


def _luma(images: Tensor) -> Tensor:
    """Speed path of :func:`rgb_to_grayscale` for float images: Kornia's sum in its order, without its per-call
    weight tensor (7.5 vs 20 us on a 32 px image, one CPU thread; same values)."""
    r, g, b = images.unbind(-3)
    return (r * 0.299).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(-3)


# ---------------------------------------------------------------------------------------------------------
# Physical illumination in linear RGB
# ---------------------------------------------------------------------------------------------------------
def _per_sample(x: Tensor, batch: int, name: str, width: int | None = None) -> Tensor:
    """Reshape per-sample parameters ``(B,)`` / ``(B, 1)`` / ``(B, width)`` to ``(B, width or 1)``."""
    if not isinstance(x, Tensor):
        x = torch.as_tensor(x, dtype=torch.float32)
    if x.ndim == 0:
        x = x.expand(batch)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] != batch or (width is not None and x.shape[1] != width):
        want = f"(B={batch}, {width})" if width is not None else f"(B={batch},) or (B={batch}, 1)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    return x


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a [B, C, H, W] tensor, got {getattr(images, 'shape', type(images))}")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {images.shape[1]}")
    if not images.is_floating_point():
        raise TypeError(f"images must be float in [0, 1], got dtype {images.dtype}")


def apply_illumination(images: Tensor, log_gain: Tensor, log_gamma: Tensor, shading: Tensor | None = None,
                       *, ring: bool = False) -> Tensor:
    """Apply a physical illumination change to sRGB images.

    In linear RGB, each channel becomes ``gain_c * field(x, y) * value ** gamma`` (clamped to [0, 1]), i.e.
    in the log domain ``log out = log_gain_c + shading_field + gamma * log in``; the result is encoded back
    to sRGB.

    Args:
        images: ``[B, C, H, W]`` float sRGB in [0, 1], ``C`` = 1 or 3.
        log_gain: ``(B, 3)`` natural-log gains of the linear R, G, B channels. A 1-channel image uses the
            mean of the three (the geometric-mean gain).
        log_gamma: ``(B,)`` or ``(B, 1)`` natural log of the exponent on linear intensity (0 = unchanged).
        shading: ``(B, S)`` shading coefficients for :func:`render_shading_field`, or None for a flat field.
        ring: the images carry a one-pixel ring (``[B, C, H + 2, W + 2]``) mirroring the ``H x W`` image inside
            it: the shading field is that of the inner image, mirrored onto the ring the same way (so the
            inner pixels get exactly what the ``H x W`` image would).

    Implementation: decode, gamma, gain, shading and encode are fused into one exponential. Where both the
    input and the output lie on the power segments of the sRGB curve (almost every pixel),
    ``out = 1.055 * exp(gamma * log((x + 0.055) / 1.055) + (log_gain_c + log_field) / 2.4) - 0.055``: the
    2.4 of the decoding and the 1 / 2.4 of the encoding cancel. The few pixels on a linear segment (input
    or output sRGB value <= 0.04045) are recomputed with the exact piecewise formula. Inside
    ``mi_augment.kernel_options(fast_paths=False)`` the definition runs instead (decode, ``pow``, multiply,
    encode); the two agree to float rounding.
    """
    _check_images(images)
    b, c, h, w = images.shape
    log_gain = _per_sample(log_gain, b, "log_gain", 3).to(images)
    log_gamma = _per_sample(log_gamma, b, "log_gamma", 1).to(images)
    if c == 1:
        log_gain = log_gain.mean(dim=1, keepdim=True)
    gamma = log_gamma.exp().view(b, 1, 1, 1)
    log_field = None
    if shading is not None and shading.shape[-1] > 0:
        shading = _per_sample(shading, b, "shading", shading.shape[-1]).to(images)
        ih, iw = (h - 2, w - 2) if ring else (h, w)
        basis = cached_shading_basis(ih, iw, shading_degree(shading.shape[1]), images.device, images.dtype)
        log_field = torch.einsum("bs,shw->bhw", shading, basis).unsqueeze(1)  # (B, 1, H, W)
        if ring:
            log_field = F.pad(log_field, (1, 1, 1, 1), mode="reflect").contiguous()
    if not current().fast_paths:  # the definition, unfused
        out = srgb_to_linear(images).pow(gamma) * log_gain.exp().view(b, c, 1, 1)
        return linear_to_srgb(out if log_field is None else out * log_field.exp())
    return _illuminate(images, gamma, log_gain.view(b, c, 1, 1), log_field)


def _broadcast_shape(*tensors: Tensor | None) -> torch.Size:
    """The broadcast shape of the given tensors (None skipped); cheaper than ``torch.broadcast_shapes`` for
    the few small calls a per-image transform makes."""
    shapes = [t.shape for t in tensors if t is not None]
    ndim = max(len(s) for s in shapes)
    out = [1] * ndim
    for s in shapes:
        for i, d in enumerate(s, ndim - len(s)):
            if d != 1:
                if out[i] not in (1, d):
                    raise ValueError(f"shapes {[tuple(x) for x in shapes]} do not broadcast")
                out[i] = d
    return torch.Size(out)


def _illuminate(images: Tensor, gamma: Tensor, log_gain: Tensor, log_field: Tensor | None) -> Tensor:
    """The kernel of :func:`apply_illumination` on any layout: ``images`` of any shape (float sRGB), and
    per-element parameters given as tensors that broadcast with it: ``gamma`` (the exponent), ``log_gain``
    (natural-log linear gain) and ``log_field`` (natural-log shading field) or None. The result has the
    broadcast shape: images ``(B, C, 1, H, W)`` with parameters for ``V`` sets ``(B, ., V, ., .)`` give the
    ``V`` illuminations of each image, sharing its logarithm. Returns a new tensor.

    This lets the pair renderer illuminate its views in the layout its sampling writes (views inside each
    image, ``(B, C, V, H, W)``) without transposing copies, with exactly the arithmetic of
    :func:`apply_illumination`."""
    shape = _broadcast_shape(images, gamma, log_gain, log_field)
    if images.shape != shape:  # images shared by several parameter sets: one log per image, not per set
        out = images.clamp(0.0, 1.0).add_(0.055).log_() * gamma.expand(shape)
    else:
        out = images.clamp(0.0, 1.0)
        # Main (power-segment) branch, in place on the buffer we own.
        out.add_(0.055).log_().mul_(gamma)
    out.add_(log_gain / 2.4 + (1.0 - gamma) * _LOG_1055)  # 1.055 * ...
    if log_field is not None:
        out.add_(log_field, alpha=1.0 / 2.4)
    out.exp_().sub_(0.055).clamp_(max=1.0)
    # Exact piecewise formula where the input or the output is on the linear segment of the curve.
    low = _low_elements(images, out, shape)
    if low.numel():
        def at(param: Tensor) -> Tensor:  # the parameter of every low element (broadcast dims not copied)
            return param.expand(shape).take(low)

        lin = srgb_to_linear(at(images))
        log_g = at(log_gain)
        if log_field is not None:
            log_g = log_g + at(log_field)
        val = (lin.pow(at(gamma)) * log_g.exp()).clamp(0.0, 1.0)
        out.put_(low, linear_to_srgb(val))
    return out


def _low_elements(images: Tensor, out: Tensor, shape: torch.Size) -> Tensor:
    """Row-major flat indices (ascending) of the elements of ``shape`` where ``min(images, out)`` is on the
    linear segment of the sRGB curve (``<= _SRGB_KNEE``; NaN never is): ``torch.minimum(images, out).le(knee)
    .view(-1).nonzero()``. From ~20k elements the rows' minima (a vectorised reduction, no minimum tensor)
    pick the few rows to search: 81 -> 46 us at 57k elements, 0.50 -> 0.16 ms for a 224 px pair's ring (306k)."""
    if out.numel() < 20_000 or shape[-1] == 0:  # a few small ops cost more than the flat pass
        return torch.minimum(images, out).le_(_SRGB_KNEE).reshape(-1).nonzero().squeeze(1)
    # a row's minimum is NaN if any of its elements is: search it too (its other elements may be low)
    rows = torch.minimum(images.amin(-1), out.amin(-1)).gt_(_SRGB_KNEE).logical_not_().reshape(-1).nonzero()
    if not rows.numel():
        return rows.view(-1)
    flat = rows.mul_(shape[-1]) + torch.arange(shape[-1], device=rows.device)  # (R, W): those rows' elements
    return flat[torch.minimum(images.expand(shape).take(flat), out.take(flat)).le(_SRGB_KNEE)]


# ---------------------------------------------------------------------------------------------------------
# ColorJitter-style adjustments in sRGB (per-sample factors)
# ---------------------------------------------------------------------------------------------------------
def _factor(factor: Tensor | float, images: Tensor, name: str, nonnegative: bool = True) -> Tensor | float:
    if isinstance(factor, float) and current().fast_paths:
        # speed path: one number for every sample stays a number (no tensor to build, no device sync to check)
        if nonnegative and factor < 0:
            raise ValueError(f"{name} factors must be non-negative, got minimum {factor}")
        return factor
    f = _per_sample(factor, images.shape[0], name).to(images)
    if nonnegative and bool((f < 0).any()):
        raise ValueError(f"{name} factors must be non-negative, got minimum {float(f.min())}")
    return f.view(-1, 1, 1, 1)


def adjust_brightness(images: Tensor, factor: Tensor | float) -> Tensor:
    """Multiply by ``factor`` (``(B,)`` or ``(B, 1)``, >= 0; 1 = unchanged) and clamp, per sample
    (``kornia.enhance.adjust_brightness_accumulative``; Kornia's ``adjust_brightness`` adds instead)."""
    _check_images(images)
    f = _factor(factor, images, "brightness")
    if current().fast_paths:
        return _brightness(images, f)
    return kornia.enhance.adjust_brightness_accumulative(images, f)


def adjust_contrast(images: Tensor, factor: Tensor | float) -> Tensor:
    """Blend each image with the mean of its luma: 0 gives a flat grey image, 1 the original
    (``kornia.enhance.adjust_contrast_with_mean_subtraction``)."""
    _check_images(images)
    f = _factor(factor, images, "contrast")
    if current().fast_paths:
        return _contrast(images, f)
    return kornia.enhance.adjust_contrast_with_mean_subtraction(images, f)


def adjust_saturation(images: Tensor, factor: Tensor | float) -> Tensor:
    """Blend each RGB image with its luma: 0 gives greyscale, 1 the original
    (``kornia.enhance.adjust_saturation_with_gray_subtraction``). 1-channel images are returned unchanged (as
    torchvision and PIL do), as a new tensor."""
    _check_images(images)
    f = _factor(factor, images, "saturation")
    if images.shape[1] == 1:
        return images.clone()
    if current().fast_paths:
        return _saturation(images, f)
    return kornia.enhance.adjust_saturation_with_gray_subtraction(images, f)


def adjust_hue(images: Tensor, shift: Tensor | float) -> Tensor:
    """Rotate hue by ``shift`` turns (``(B,)`` or ``(B, 1)`` in [-0.5, 0.5]; 0 = unchanged), per sample
    (``kornia.enhance.adjust_hue``, which takes radians). 1-channel images are returned unchanged."""
    _check_images(images)
    s = _hue_shift(shift, images)
    if images.shape[1] == 1:
        return images.clone()
    if current().fast_paths:
        return _hue(images, s)
    return kornia.enhance.adjust_hue(images, s * (2 * math.pi))


def _hue_shift(shift: Tensor | float, images: Tensor) -> Tensor | float:
    s = _factor(shift, images, "hue", nonnegative=False)
    if abs(s) > 0.5 if isinstance(s, float) else bool((s.abs() > 0.5).any()):
        raise ValueError(f"hue shifts must be in [-0.5, 0.5], got {[s] if isinstance(s, float) else s.flatten().tolist()}")
    return s


def adjust_inplace(images: Tensor, operation: int, factor: Tensor | float) -> Tensor:
    """For callers that own ``images``: ``operation`` 0-3 (:func:`adjust_brightness`,
    :func:`adjust_contrast`, :func:`adjust_saturation`, :func:`adjust_hue`) with the same checks and maths,
    written into ``images`` where the maths allows (an in-place pass is ~2.5x faster than a new tensor at
    224 px, one CPU thread). Returns the result (``images`` itself, or a new tensor for hue).

    Args:
        images: ``[B, C, H, W]`` float in [0, 1], owned by the caller (it may be overwritten).
        operation: 0 brightness, 1 contrast, 2 saturation, 3 hue.
        factor: ``(B,)`` factors (turns for hue), or one number for every sample.

    Example:
        >>> x = torch.full((1, 3, 2, 2), 0.5)
        >>> adjust_inplace(x, 0, 1.5)[0, 0, 0, 0].item()
        0.75
    """
    if not current().fast_paths:
        return (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)[operation](images, factor)
    _check_images(images)
    if operation == 3:
        s = _hue_shift(factor, images)
        return images if images.shape[1] == 1 else _hue(images, s)
    f = _factor(factor, images, _JITTER_NAMES[operation])
    if operation == 2 and images.shape[1] == 1:
        return images
    return (_brightness, _contrast, _saturation)[operation](images, f, inplace=True)


# Speed paths: Kornia's maths inline (its per-call checks and constant tensors cost about as much as the kernel on
# a 32 px image: contrast 18 vs 36 us, saturation 16 vs 32 us on one CPU thread), into ``images`` if ``inplace``.
_JITTER_NAMES = ("brightness", "contrast", "saturation", "hue")


def _brightness(images: Tensor, f: Tensor | float, inplace: bool = False) -> Tensor:
    return (images.mul_(f) if inplace else images * f).clamp_(0.0, 1.0)


def _contrast(images: Tensor, f: Tensor | float, inplace: bool = False) -> Tensor:
    # _luma is rgb_to_grayscale's fast path for float RGB (the callers checked the images)
    mean = _luma(images).mean((-2, -1), True) if images.shape[1] == 3 else images.mean((-3, -2, -1), True)
    return (images.mul_(f) if inplace else images * f).add_(mean * (1 - f)).clamp_(0.0, 1.0)


def _saturation(images: Tensor, f: Tensor | float, inplace: bool = False) -> Tensor:
    grey = _luma(images).mul_(1 - f)  # RGB only (callers return grey images unchanged)
    return (images.mul_(f) if inplace else images * f).add_(grey).clamp_(0.0, 1.0)


# Each channel's share of the chroma as a function of the hue h in [0, 6): clamp(sign * |h - centre| + offset, 0, 1)
_HUE_TENTS = torch.tensor([[3.0, 2.0, 4.0], [1.0, -1.0, -1.0], [-1.0, 2.0, 2.0]]).view(3, 1, 3, 1, 1)


def _hue(images: Tensor, shift: Tensor | float) -> Tensor:
    """Kornia's hue rotation (hexcone hue of the first maximal channel, rotated, back to RGB keeping the
    channels' maximum and minimum) without the HSV and sextant planes: ~20 ops instead of ~75, ~3x faster on
    one CPU thread (224 px: 1.05 vs 3.6 ms). ``shift`` ``(B, 1, 1, 1)`` or one number, in turns."""
    if images.numel() <= _AMINMAX_MAX_ELEMENTS:  # one call for one small image
        low, maxc = torch.aminmax(images, dim=1, keepdim=True)
    else:  # aminmax over the channel dim is ~10-25x slower than amin + amax from 64 x 64 px (one CPU thread)
        low, maxc = images.amin(1, keepdim=True), images.amax(1, keepdim=True)
    chroma = maxc - low
    r, g, b = images.split_with_sizes((1, 1, 1), 1)  # RGB only; the views Tensor.split makes, one call
    # hue in sixths of a turn, from the first maximal channel (Kornia's tie-breaking: r >= g and r >= b is r == max)
    hue = torch.where(r == maxc, g - b,
                      torch.where(g >= b, (b - r).add_(chroma, alpha=2.0), (r - g).add_(chroma, alpha=4.0)))
    turn = shift * 6.0 if isinstance(shift, float) else shift.to(images.dtype) * 6.0
    # grey pixels (chroma 0) have hue numerator +0: any positive divisor gives Kornia's 0, as 1 does
    tiny = _TINY.get(images.dtype)
    divisor = chroma.clamp_min(tiny) if tiny is not None else torch.where(chroma == 0, 1.0, chroma)
    hue = hue.div_(divisor).add_(turn).remainder_(6.0)
    centre, sign, offset = _hue_tents(images)
    share = (hue - centre).abs_().mul_(sign).add_(offset).clamp_(0.0, 1.0)
    return share.mul_(chroma).add_(low)


# the largest image (elements) whose channel minimum and maximum take one aminmax call (one 32 x 32 RGB image)
_AMINMAX_MAX_ELEMENTS = 3 * 32 * 32

# the smallest positive float32 / float64 (a denormal: every nonzero chroma is at least this)
_TINY = {torch.float32: float(torch.finfo(torch.float32).smallest_normal) * 2.0 ** -23, torch.float64: 5e-324}


def _hue_tents(images: Tensor) -> Tensor:
    if images.device.type == "cpu" and images.dtype in _HUE_TENTS_CPU:
        return _HUE_TENTS_CPU[images.dtype]
    return _HUE_TENTS.to(images).unbind(0)


# the tents' centre, sign and offset rows on the CPU, per dtype (constants: two ops fewer per call)
_HUE_TENTS_CPU = {dt: _HUE_TENTS.to(dt).unbind(0) for dt in (torch.float32, torch.float64)}
