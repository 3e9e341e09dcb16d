"""Input checking and image type conversion shared by every public entry point.

Errors name the argument and say what was expected, as torchvision's ``_check_input`` does.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import torch
from torch import Tensor

try:  # PIL is a torchvision dependency, so it is always present in practice.
    from PIL import Image as _PILImage
except ImportError:  # pragma: no cover
    _PILImage = None


def check_finite(x: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or inf.

    A finite sum proves every element finite (NaN and inf propagate through a sum), in one read-only pass
    without a mask the size of ``x``; only when the sum is not finite (a bad value, or an overflow of huge
    finite values) are the elements tested one by one."""
    if not x.is_floating_point() or x.numel() == 0:
        return
    if bool(torch.isfinite(x.sum())):
        return
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf values; expected finite numbers")


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_probability(value: Any, name: str = "p") -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not (0.0 <= float(value) <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_range(value: Any, name: str, low: float = -math.inf, high: float = math.inf) -> tuple[float, float]:
    """A ``(min, max)`` pair with ``low <= min <= max <= high``."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair of numbers, got {value!r}") from None
    if not (low <= a <= b <= high) or not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"{name} must satisfy {low} <= min <= max <= {high}, got ({a}, {b})")
    return a, b


def check_generator(generator: Any, device: torch.device | None = None) -> torch.Generator | None:
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


#: values this far outside [0, 1] are float noise and clamped; further out is an error (bfloat16: one rounding
#: step at 1.0, 2**-7, is allowed instead)
UNIT_RANGE_TOLERANCE = 1e-3

#: PIL modes taken as they are; each is returned in the same mode, except P (returned as RGB)
_PIL_MODES = ("L", "RGB", "P", "I;16", "I;16B", "I", "F")
_PIL_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
#: numpy dtypes taken: uint8 (/255), uint16 (/65535), floats in [0, 1]
_NUMPY_KINDS = ("uint8", "uint16", "float16", "float32", "float64")


@dataclass(frozen=True)
class ImageSpec:
    """How an image arrived, so that :func:`restore` returns the output as the same type."""

    kind: str  # "tensor", "pil" or "numpy"
    batched: bool  # tensor: came as [B, C, H, W] (False for PIL and numpy)
    dtype: torch.dtype  # tensor: the input's dtype; PIL / numpy: the working dtype
    pil_mode: str | None = None  # PIL: the mode to return
    numpy_dtype: np.dtype | None = None  # numpy: the dtype to return
    two_d: bool = False  # numpy: came as H x W (returned without a channel axis)
    tensor_type: type | None = None  # a torchvision tv_tensors class to re-wrap the output in


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half precision is computed in float32 (float16 grids and sums overflow or read out of bounds)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _check_unit_range(x: Tensor, name: str, tolerance: float, inplace: bool = False) -> Tensor:
    """``x`` (float) if it lies in [0, 1]; clamped if it lies within ``tolerance`` of it; else ``ValueError``.
    One read pass (``aminmax``) also finds NaN and inf, which propagate into the min or max."""
    lo, hi = (float(v) for v in torch.stack(torch.aminmax(x)).tolist())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or inf values; expected finite numbers")
    if lo >= 0.0 and hi <= 1.0:
        return x
    if lo >= -tolerance and hi <= 1.0 + tolerance:
        return x.clamp_(0.0, 1.0) if inplace else x.clamp(0.0, 1.0)
    if lo < 0.0:
        hint = "; normalised? apply this transform before Normalize, or undo it (x * std + mean)"
    elif hi <= 2.0:
        hint = "; clamp it first (x.clamp(0, 1)) if the excess is overshoot from an earlier step"
    elif hi <= 255.0 + tolerance:
        hint = "; divide by 255?"
    else:
        hint = "; divide by 65535 (16-bit) or by the data's maximum?"
    raise ValueError(f"{name}: expected floats in [0, 1]; got range [{lo:.6g}, {hi:.6g}]{hint}")


def _check_image_shape(x: Tensor, name: str, channels: tuple[int, ...], shown: tuple[int, ...], layout: str) -> None:
    """``x`` is a batch ``[B, C, H, W]``; ``shown`` the shape as the caller gave it, ``layout`` its axis names."""
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (B=0); expected at least one image")
    if x.shape[1] not in channels:
        raise ValueError(f"{name} must have {' or '.join(map(str, channels))} channels, got {x.shape[1]} "
                         f"(shape {shown}; {layout})")
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"{name} has zero height or width: shape {shown} ({layout})")


def check_unit_images(images: Tensor, name: str = "images", channels: tuple[int, ...] = (1, 3)) -> Tensor:
    """Check a float image batch as every mi_augment transform does, for entry points that take tensors only.

    The same checks and messages as :func:`to_float_batch` (channel count, size, finite values in [0, 1],
    values within :data:`UNIT_RANGE_TOLERANCE` of it clamped), except that an empty batch (``B = 0``) is
    accepted and returned as it is, as Kornia's augmentations accept it.

    Args:
        images: float tensor ``[B, C, H, W]`` in [0, 1].
        name: the argument's name in error messages.
        channels: accepted channel counts.

    Returns:
        ``images`` itself, or a clamped copy when it lies within the tolerance outside [0, 1].

    Shape:
        ``(B, C, H, W)`` in and out.

    Example:
        >>> import torch
        >>> check_unit_images(torch.rand(2, 3, 4, 4)).shape
        torch.Size([2, 3, 4, 4])
        >>> check_unit_images(torch.rand(1, 3, 4, 4) * 255)
        Traceback (most recent call last):
        ...
        ValueError: images: expected floats in [0, 1]; got range [...]; divide by 255?
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [B, C, H, W], got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape [B, C, H, W], got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be float (values in [0, 1]), got dtype {images.dtype}")
    if images.shape[0] == 0:
        return images
    _check_image_shape(images, name, channels, tuple(images.shape), "channels come before height and width")
    tolerance = max(UNIT_RANGE_TOLERANCE, torch.finfo(images.dtype).eps)
    return _check_unit_range(images, name, tolerance)


def _pil_array(image: Any, name: str) -> tuple[np.ndarray, str]:
    """The pixels of a PIL image as a numpy array and the mode to return it in, or a ``ValueError`` naming the
    mode when it cannot be taken without losing data."""
    mode = image.mode
    if mode in _PIL_ALPHA_MODES or (mode == "P" and image.has_transparency_data):
        raise ValueError(
            f"{name}: PIL mode {mode!r} has an alpha channel, which geometric transforms and crops would lose or "
            f"misalign; composite it onto a background, or drop it with image.convert('RGB') (or 'L')")
    if mode not in _PIL_MODES:
        raise ValueError(f"{name}: PIL mode {mode!r} is not supported (accepted: {', '.join(_PIL_MODES)}); "
                         f"convert it first, e.g. image.convert('RGB')")
    if mode == "P":  # the palette would re-quantise the output: return RGB instead
        return np.asarray(image.convert("RGB")), "RGB"
    arr = np.asarray(image)
    if mode == "I" and arr.size and (int(arr.min()) < 0 or int(arr.max()) > 65535):
        raise ValueError(f"{name}: PIL mode 'I' is read as 16-bit data (0..65535); got values in "
                         f"[{int(arr.min())}, {int(arr.max())}]; rescale to 0..65535 or pass a float image "
                         f"(mode 'F') in [0, 1]")
    return arr, mode


def image_to_uint8(image: Any, name: str = "images", channels: tuple[int, ...] = (1, 3)
                   ) -> tuple[Tensor, ImageSpec] | None:
    """A PIL image or a numpy ``H x W`` / ``H x W x C`` array as a ``[C, H, W]`` tensor and its
    :class:`ImageSpec`; None for anything else.

    8-bit input (PIL L / RGB / P, numpy uint8) comes back as uint8, without a float copy; 16-bit input (PIL
    I;16 / I;16B / I, numpy uint16) as float32 divided by 65535; float input (PIL F, numpy floats) as float
    (its range is checked by :func:`to_float_batch`). Shape, channel count and dtype are checked here.
    """
    if _PILImage is not None and isinstance(image, _PILImage.Image):
        mode = image.mode
        width, height = image.size
        if mode in ("RGB", "L") and width and height:  # 8-bit pixels straight from PIL's bytes (no numpy copy)
            c = 3 if mode == "RGB" else 1
            t = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(height, width, c)
            shown = (height, width, c) if c == 3 else (height, width)
            _check_image_shape(t.permute(2, 0, 1)[None], name, channels, shown,
                               f"PIL {mode} image of size {image.size}")
            return t.permute(2, 0, 1), ImageSpec("pil", False, torch.uint8, pil_mode=mode)
        arr, mode = _pil_array(image, name)
        source = f"PIL {image.mode} image of size {image.size}"
    elif isinstance(image, np.ndarray):
        arr, mode = image, None
        source = f"numpy array of shape {image.shape}"
        if image.dtype.name not in _NUMPY_KINDS:
            raise TypeError(f"{name}: numpy input must have dtype {', '.join(_NUMPY_KINDS)} (floats in [0, 1]), "
                            f"got {image.dtype}")
        if image.ndim not in (2, 3):
            raise ValueError(f"{name}: numpy input must be an H x W or H x W x C array, got shape {image.shape}")
    else:
        return None
    hwc = arr[:, :, None] if arr.ndim == 2 else arr
    if arr.dtype == np.uint8:
        t = torch.from_numpy(np.array(hwc, copy=True))
        work = torch.uint8
    elif arr.dtype.kind in "ui":  # uint16, or PIL mode I checked to 0..65535
        t = torch.from_numpy(hwc.astype(np.float32)).div_(65535.0)
        work = torch.float32
    else:
        t = torch.from_numpy(hwc.astype(np.float32 if arr.dtype.itemsize <= 4 else np.float64))
        work = t.dtype
    t = t.permute(2, 0, 1)
    layout = "numpy arrays are H x W x C, channels last" if mode is None else source
    _check_image_shape(t[None], name, channels, tuple(arr.shape), layout)
    if mode is not None:
        spec = ImageSpec("pil", False, work, pil_mode=mode)
    else:
        spec = ImageSpec("numpy", False, work, numpy_dtype=arr.dtype, two_d=arr.ndim == 2)
    return t, spec


def _tv_tensor_type(images: Tensor, name: str) -> type | None:
    """The torchvision ``tv_tensors`` class of ``images`` to re-wrap the output in (None for other tensors).
    Looked up without importing torchvision: a tv_tensor can only exist once it is imported."""
    tv = sys.modules.get("torchvision.tv_tensors")
    if tv is None or type(images) is Tensor or not isinstance(images, tv.TVTensor):
        return None
    if isinstance(images, tv.Image):
        return type(images)
    if isinstance(images, tv.Video):
        raise TypeError(f"{name} is a tv_tensors.Video; its frames would get independent draws. Pass the frames "
                        f"as a plain [B, C, H, W] tensor if that is meant, or one draw per clip with params=")
    raise TypeError(f"{name} is a tv_tensors.{type(images).__name__}, not an image; mi_augment transforms take "
                    f"images (tensors, tv_tensors.Image, PIL images or numpy arrays)")


def to_float_batch(images: Any, name: str = "images", channels: tuple[int, ...] = (1, 3)) -> tuple[Tensor, ImageSpec]:
    """Check ``images`` and convert it to a float batch ``[B, C, H, W]`` in [0, 1].

    Takes tensors ``[C, H, W]`` / ``[B, C, H, W]`` (float in [0, 1] or uint8; float16 / bfloat16 are computed
    in float32), ``tv_tensors.Image``, PIL images and numpy arrays (see :func:`image_to_uint8` and the table
    in docs/conventions.md). Floats further than :data:`UNIT_RANGE_TOLERANCE` outside [0, 1] raise
    ``ValueError``; nearer ones are clamped. Returns the batch (the input itself when it needs no conversion)
    and an :class:`ImageSpec` for :func:`restore`.
    """
    converted = image_to_uint8(images, name, channels)
    if converted is not None:
        t, spec = converted
        if t.dtype == torch.uint8:
            return t[None].float().div_(255.0), spec
        if spec.pil_mode == "F" or (spec.kind == "numpy" and spec.numpy_dtype.kind == "f"):
            t = _check_unit_range(t, name, UNIT_RANGE_TOLERANCE, inplace=True)
        return t[None], spec
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, PIL image or numpy array, got {type(images).__name__}")
    if images.is_meta:  # shape only: every kernel would fail deep inside
        raise ValueError(f"{name} is a meta tensor (a shape without data); pass images with values")
    tensor_type = _tv_tensor_type(images, name)
    if type(images) is not Tensor:
        images = images.as_subclass(Tensor)
    if images.ndim not in (3, 4):
        raise ValueError(f"{name} must have shape [C, H, W] or [B, C, H, W], got shape {tuple(images.shape)}")
    batched = images.ndim == 4
    x = images if batched else images.unsqueeze(0)
    _check_image_shape(x, name, channels, tuple(images.shape), "channels come before height and width")
    spec = ImageSpec("tensor", batched, images.dtype, tensor_type=tensor_type)
    if x.dtype == torch.uint8:
        return x.float().div(255.0), spec
    if not x.is_floating_point():
        raise TypeError(f"{name} must be float (values in [0, 1]) or uint8, got dtype {x.dtype}")
    work = _work_dtype(x.dtype)
    tolerance = max(UNIT_RANGE_TOLERANCE, torch.finfo(x.dtype).eps)
    if work != x.dtype:
        return _check_unit_range(x.to(work), name, tolerance, inplace=True), spec
    return _check_unit_range(x, name, tolerance), spec


def _quantise(x: Tensor, levels: float, dtype: torch.dtype) -> Tensor:
    # one new tensor, then in place; float -> int32 -> uint8 is 2x faster than float -> uint8 on the CPU
    out = x.mul(levels).clamp_(0, levels).round_().to(torch.int32)
    return out if dtype == torch.int32 else out.to(dtype)


def _uint8_levels(hwc: Tensor) -> Tensor:
    """:func:`_quantise`'s 8-bit levels of float values in [0, 1], straight to a contiguous uint8 tensor (2
    copies fewer)."""
    return hwc.mul(255.0).clamp_(0, 255.0).round_().to(torch.uint8, memory_format=torch.contiguous_format)


def _pil_from_uint8(arr: np.ndarray, mode: str) -> Any:
    """A PIL ``L`` / ``RGB`` image of a contiguous uint8 ``(H, W)`` / ``(H, W, 3)`` array: what ``fromarray``
    does for it, without reading its array interface."""
    return _PILImage.frombuffer(mode, (arr.shape[1], arr.shape[0]), arr, "raw", mode, 0, 1)


def restore_views(views: Sequence[Tensor], spec: ImageSpec) -> tuple[Any, ...]:
    """:func:`restore` of each of several views of one image (``[1, C, h, w]`` each): small PIL L / RGB views
    quantised together (one pass instead of one per view, the same levels)."""
    first = views[0] if views else None
    if (first is not None and spec.kind == "pil" and spec.pil_mode in ("L", "RGB") and first.shape[0] == 1
            and first.shape[-2] * first.shape[-1] < 4096 and first.device.type == "cpu"
            and all(v.shape == first.shape and v.dtype == first.dtype for v in views)):
        mode = spec.pil_mode
        arr = _uint8_levels(torch.stack([v[0] for v in views]).detach().permute(0, 2, 3, 1)).numpy()
        return tuple(_pil_from_uint8(a[:, :, 0] if mode == "L" else a, mode) for a in arr)
    return tuple(restore(v, spec) for v in views)


def restore(x: Tensor, spec: ImageSpec) -> Any:
    """Inverse of :func:`to_float_batch`: return ``x`` (float ``[B, C, H, W]`` in [0, 1]) as the type that came
    in (same tensor dtype and tv_tensors class, PIL mode, or numpy dtype and layout; PIL P comes back as RGB)."""
    if spec.kind == "tensor":
        out = x if spec.batched else x[0]
        out = _quantise(out, 255.0, torch.uint8) if spec.dtype == torch.uint8 else out.to(spec.dtype)
        return out.as_subclass(spec.tensor_type) if spec.tensor_type is not None else out
    hwc = x[0].detach().permute(1, 2, 0)
    if spec.kind == "pil":
        mode = spec.pil_mode
        if mode in ("L", "RGB") and hwc.shape[0] * hwc.shape[1] >= 4096:
            # quantised channels-first and merged as planes by PIL: 2-3x faster at 224 px (slower below 64 px)
            planes = [_PILImage.fromarray(p) for p in _quantise(x[0].detach(), 255.0, torch.uint8).cpu().numpy()]
            return planes[0] if len(planes) == 1 else _PILImage.merge("RGB", planes)
        if mode in ("L", "RGB"):
            return _pil_from_uint8(_uint8_levels(hwc).cpu().numpy(), mode)
        if mode == "F":
            arr = hwc.to(torch.float32).cpu().numpy()
        else:  # I;16, I;16B, I: 16-bit levels
            arr = _quantise(hwc, 65535.0, torch.int32).cpu().numpy()
            arr = arr.astype({"I;16": np.uint16, "I;16B": ">u2", "I": np.int32}[mode])
        return _PILImage.fromarray(np.ascontiguousarray(arr[:, :, 0] if arr.shape[2] == 1 else arr))
    dtype = spec.numpy_dtype
    if dtype.kind == "f":
        arr = hwc.cpu().numpy().astype(dtype)
    else:
        arr = _quantise(hwc, 255.0 if dtype == np.uint8 else 65535.0, torch.int32).cpu().numpy().astype(dtype)
    return arr[:, :, 0] if spec.two_d else arr
