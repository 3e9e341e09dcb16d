"""Input checking and image type conversion shared by every public entry point.

Errors name the argument and say what was expected, as torchvision's ``_check_input`` does.
"""

from __future__ import annotations

import math
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


@dataclass(frozen=True)
class ImageSpec:
    """How an image arrived, so that the output can be returned as the same type."""

    kind: str  # "tensor", "pil" or "numpy"
    batched: bool
    dtype: torch.dtype
    pil_mode: str | None = None


def image_to_uint8(image: Any, name: str = "images") -> tuple[Tensor, ImageSpec] | None:
    """A PIL image or a numpy ``HxW`` / ``HxWxC`` uint8 array as a uint8 ``[C, H, W]`` tensor (PIL modes other
    than RGB and L are converted to RGB) and its :class:`ImageSpec`; None for anything else."""
    if _PILImage is not None and isinstance(image, _PILImage.Image):
        mode = image.mode
        arr = np.asarray(image.convert("RGB") if mode not in ("RGB", "L") else image, dtype=np.uint8)
        spec = ImageSpec("pil", False, torch.uint8, mode)
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise TypeError(
                f"{name}: numpy input must be an HxW or HxWxC uint8 array, got dtype {image.dtype} "
                f"and shape {image.shape}"
            )
        arr = image
        spec = ImageSpec("numpy", image.ndim == 2, torch.uint8)  # batched flag re-used for "was 2-D"
    else:
        return None
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1), spec


def to_float_batch(images: Any, name: str = "images", channels: tuple[int, ...] = (1, 3)) -> tuple[Tensor, ImageSpec]:
    """Convert tensors ``[C,H,W]`` / ``[B,C,H,W]`` (float in [0,1] or uint8), PIL images or numpy
    ``HWC`` uint8 arrays to a float batch ``[B,C,H,W]`` in [0, 1].

    Returns the batch and an :class:`ImageSpec` for :func:`restore`.
    """
    converted = image_to_uint8(images, name)
    if converted is not None:
        t, spec = converted
        return t[None].float().div_(255.0), spec
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, PIL image or numpy uint8 array, got {type(images).__name__}")
    if images.ndim not in (3, 4):
        raise ValueError(f"{name} must have shape [C, H, W] or [B, C, H, W], got shape {tuple(images.shape)}")
    batched = images.ndim == 4
    x = images if batched else images.unsqueeze(0)
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (B=0); expected at least one image")
    if x.shape[1] not in channels:
        raise ValueError(f"{name} must have {' or '.join(map(str, channels))} channels, got {x.shape[1]} "
                         f"(shape {tuple(images.shape)}; channels come before height and width)")
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"{name} has zero height or width: shape {tuple(images.shape)}")
    if x.dtype == torch.uint8:
        xf = x.float().div(255.0)
    elif x.is_floating_point():
        check_finite(x, name)
        xf = x
    else:
        raise TypeError(f"{name} must be float (values in [0, 1]) or uint8, got dtype {x.dtype}")
    return xf, ImageSpec("tensor", batched, images.dtype)


def restore(x: Tensor, spec: ImageSpec) -> Any:
    """Inverse of :func:`to_float_batch`: return ``x`` (float ``[B,C,H,W]``) as the type that came in."""
    if spec.kind == "pil":
        arr = x[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        img = _PILImage.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
        return img.convert(spec.pil_mode) if spec.pil_mode not in ("RGB", "L") else img
    if spec.kind == "numpy":
        arr = x[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        return arr[:, :, 0] if spec.batched else arr  # batched flag re-used for "was 2-D"
    out = x if spec.batched else x[0]
    if spec.dtype == torch.uint8:
        return out.clamp(0, 1).mul(255).round().to(torch.uint8)
    return out.to(spec.dtype)
