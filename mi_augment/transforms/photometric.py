"""Per-view photometric transforms of the SimCLR / BYOL / MoCo v3 recipes: :class:`ColorJitter`,
:class:`RandomGrayscale`, :class:`GaussianBlur` and :class:`RandomSolarize`.

Each follows ``torchvision.transforms.v2``'s semantics, batched: every sample of a batch gets its own draw (factors,
order, sigma, and the ``p`` gate) from an optional ``torch.Generator``, and ``forward(x, params=...)`` replays it.
The kernels are Kornia's (``kornia.enhance``, ``kornia.filters``, ``kornia.color``), through
:mod:`mi_augment.functional` where it adds argument checks (:func:`~mi_augment.functional.color_jitter` for
ColorJitter's per-sample order).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import kornia
import numpy as np
import torch
from torch import Tensor

from ..core.params import Params
from ..core.random import as_float32, as_float32s
from ..functional import color, uint8
from ..functional.jitter import color_jitter
from .base import RandomTransform

__all__ = [
    "ColorJitter",
    "ColorJitterParams",
    "GaussianBlur",
    "BlurParams",
    "RandomGrayscale",
    "RandomSolarize",
    "NoParams",
]


@dataclass(frozen=True)
class NoParams(Params):
    """The params of a transform whose only per-sample draw is the ``p`` gate: an empty ``(B, 0)`` tensor that
    carries the batch size and device."""

    empty: Tensor

    @classmethod
    def like(cls, images: Tensor) -> NoParams:
        return cls(images.new_empty(images.shape[0], 0))


# ---------------------------------------------------------------------------------------------------- jitter
_JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


@dataclass(frozen=True)
class ColorJitterParams(Params):
    """Per-sample factors ``(B,)`` (1 = unchanged for brightness, contrast and saturation; hue in turns, 0 =
    unchanged) and ``order (B, 4)``: the indices of brightness, contrast, saturation, hue (0-3) in the order
    they are applied to each sample."""

    brightness: Tensor
    contrast: Tensor
    saturation: Tensor
    hue: Tensor
    order: Tensor


def _jitter_range(value, name: str, center: float, low: float, high: float) -> tuple[float, float] | None:
    """torchvision's ``ColorJitter._check_input``: a number ``v`` means ``[center - v, center + v]`` clipped to
    ``low``; a ``(min, max)`` pair is taken as given. None (or a range that is just ``center``) disables it."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        v = float(value)
        if not (0.0 <= v < math.inf) or (name == "hue" and v > 0.5):
            limit = "[0, 0.5]" if name == "hue" else "a non-negative number"
            raise ValueError(f"{name} must be {limit} or a (min, max) pair, got {value!r}")
        lo, hi = max(low, center - v), center + v
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
        lo, hi = float(value[0]), float(value[1])
        if not (low <= lo <= hi <= high):
            raise ValueError(f"{name} range must satisfy {low} <= min <= max <= {high}, got {tuple(value)}")
    else:
        raise ValueError(f"{name} must be a number or a (min, max) pair, got {value!r}")
    return None if lo == hi == center else (lo, hi)


class ColorJitter(RandomTransform):
    """Randomly change brightness, contrast, saturation and hue, in a random order per sample, with
    ``torchvision.transforms.v2.ColorJitter``'s semantics (the SimCLR / BYOL / MoCo v3 colour distortion).

    ::

        jitter = ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8)     # SimCLR's, as RandomApply([ColorJitter(...)], p=0.8)

    Args:
        brightness, contrast, saturation: a number ``v`` (factor uniform in ``[max(0, 1 - v), 1 + v]``) or a
            ``(min, max)`` pair of non-negative factors; 0 or None leaves it out.
        hue: a number ``v`` in [0, 0.5] (shift uniform in ``[-v, v]`` turns) or a ``(min, max)`` pair in
            [-0.5, 0.5]; 0 or None leaves it out.
        p: probability of jittering each sample.

    Each sample draws its four factors and one of the 24 orders, as torchvision draws them per call; a
    1-channel image gets brightness and contrast only. Kernels: :func:`mi_augment.functional.adjust_brightness`
    and its siblings (Kornia's ``adjust_*``).

    ``NaturalIllumination(IlluminationModel.uniform(b, c, s, h))`` draws the same factors but applies them in a
    fixed order (brightness, contrast, saturation, hue), and it is a perturbation model (``log_prob``,
    ``strength``, scored by ``MIPairTransform``); use this class to reproduce torchvision's recipe.
    """

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, p: float = 1.0):
        super().__init__(p=p)
        self.brightness = _jitter_range(brightness, "brightness", 1.0, 0.0, math.inf)
        self.contrast = _jitter_range(contrast, "contrast", 1.0, 0.0, math.inf)
        self.saturation = _jitter_range(saturation, "saturation", 1.0, 0.0, math.inf)
        self.hue = _jitter_range(hue, "hue", 0.0, -0.5, 0.5)

    def uniforms_per_sample(self) -> int:
        """Four keys whose argsort is the sample's order (a uniform random permutation), then one uniform per
        enabled factor, in the order brightness, contrast, saturation, hue."""
        return (4 + (self.brightness is not None) + (self.contrast is not None) + (self.saturation is not None)
                + (self.hue is not None))  # no generator: called per image (one-image calls, ~1 % at 32 px)

    def params_from_uniforms(self, u: Tensor) -> ColorJitterParams:
        b, d = u.shape[0], u.device
        drawn = iter(u[:, 4:].unbind(1))
        factors = [torch.full((b,), 0.0 if i == 3 else 1.0, device=d) if r is None else r[0] + (r[1] - r[0]) * next(drawn)
                   for i, r in enumerate(getattr(self, name) for name in _JITTER_OPS)]
        return ColorJitterParams(*factors, order=u[:, :4].argsort(dim=1, stable=True))

    def row_from_uniforms(self, u: Sequence[float]) -> tuple:
        ranges = tuple(getattr(self, name) for name in _JITTER_OPS)
        cached = self.__dict__.get("_float32_ranges")
        if cached is None or cached[0] != ranges:  # the enabled ranges' lows and spans in float32, once
            enabled = [r for r in ranges if r is not None]
            cached = (ranges, np.array([r[0] for r in enabled], np.float32),
                      np.array([r[1] - r[0] for r in enabled], np.float32))
            self.__dict__["_float32_ranges"] = cached
        _, lows, spans = cached
        # float32 products, then float32 sums: torch's two kernels (low + span * u), rounded as there
        values = iter((lows + spans * np.array(u[4:], np.float32)).tolist())
        factors = [(0.0 if i == 3 else 1.0) if r is None else next(values) for i, r in enumerate(ranges)]
        keys = u[:4]
        return (*factors, sorted(range(4), key=keys.__getitem__))

    def transform(self, images: Tensor, params: ColorJitterParams) -> Tensor:
        return color_jitter(images, params.brightness, params.contrast, params.saturation, params.hue, params.order)

    def extra_repr(self) -> str:
        parts = [f"{name}={getattr(self, name)}" for name in _JITTER_OPS if getattr(self, name) is not None]
        return ", ".join(parts + [f"p={self.p}"])


class _GateOnly(RandomTransform):
    """A transform whose only per-sample draw is the ``p`` gate: no uniforms, empty :class:`NoParams`."""

    def uniforms_per_sample(self) -> int:
        return 0

    def params_from_uniforms(self, u: Tensor) -> NoParams:
        return NoParams(u)

    def row_from_uniforms(self, u: Sequence[float]) -> tuple:
        return ([],)


# ------------------------------------------------------------------------------------------------ grayscale
class RandomGrayscale(_GateOnly):
    """Convert each sample to greyscale with probability ``p`` (``torchvision.transforms.v2.RandomGrayscale``):
    an RGB image becomes its luma (:func:`mi_augment.functional.rgb_to_grayscale`, BT.601) in all three
    channels; a 1-channel image is unchanged."""

    def __init__(self, p: float = 0.1):
        super().__init__(p=p)

    def transform(self, images: Tensor, params: NoParams) -> Tensor:
        return color.rgb_to_grayscale(images).expand_as(images)



# ----------------------------------------------------------------------------------------------------- blur
@dataclass(frozen=True)
class BlurParams(Params):
    """Per-sample standard deviation ``sigma (B,)`` of the Gaussian, in pixels (the same on both axes)."""

    sigma: Tensor


def _kernel_size(value) -> tuple[int, int] | None:
    if value is None:
        return None
    sizes = (value, value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    if (not isinstance(sizes, (tuple, list)) or len(sizes) != 2
            or not all(isinstance(k, numbers.Integral) and not isinstance(k, bool) and k > 0 and k % 2 for k in sizes)):
        raise ValueError(f"kernel_size must be a positive odd integer, a (height, width) pair of them, or None; "
                         f"got {value!r}")
    return int(sizes[0]), int(sizes[1])


def _sigma_range(value) -> tuple[float, float]:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = (value, value)
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"sigma must be a positive number or a (min, max) pair, got {value!r}") from None
    if not (0.0 < lo <= hi < math.inf):
        raise ValueError(f"sigma must satisfy 0 < min <= max, got ({lo}, {hi})")
    return lo, hi


class GaussianBlur(RandomTransform):
    """Blur each sample with a Gaussian of standard deviation drawn uniformly from ``sigma`` per sample
    (``torchvision.transforms.v2.GaussianBlur``; kernel ``kornia.filters.gaussian_blur2d``, reflected borders).

    Args:
        kernel_size: odd kernel side, or ``(height, width)``; None (default) uses SimCLR's rule, about a tenth of
            the image's shorter side (23 px at 224 px), odd, at least 3 and never more than the image allows.
        sigma: a number or a ``(min, max)`` range, in pixels.
        p: probability of blurring each sample (SimCLR: 0.5; BYOL: 1.0 and 0.1 for its two views).
    """

    def __init__(self, kernel_size: int | tuple[int, int] | None = None, sigma=(0.1, 2.0), p: float = 1.0):
        super().__init__(p=p)
        self.kernel_size = _kernel_size(kernel_size)
        self.sigma = _sigma_range(sigma)

    def uniforms_per_sample(self) -> int:
        return 1

    def params_from_uniforms(self, u: Tensor) -> BlurParams:
        low, high = self.sigma
        return BlurParams(low + (high - low) * u[:, 0])

    def row_from_uniforms(self, u: Sequence[float]) -> tuple:
        low, span = as_float32s([self.sigma[0], self.sigma[1] - self.sigma[0]])
        return (as_float32(low + as_float32(span * u[0])),)

    def kernel_for(self, height: int, width: int) -> tuple[int, int]:
        """The ``(height, width)`` kernel used for ``height x width`` images."""
        if self.kernel_size is not None:
            kh, kw = self.kernel_size
            if kh // 2 >= height or kw // 2 >= width:  # reflection needs a border narrower than the image
                raise ValueError(f"kernel_size {self.kernel_size} is too large for {height} x {width} images; "
                                 f"each side must be at most 2 * image side - 1")
            return kh, kw
        side = min(height, width)
        k = max(3, int(0.1 * side) // 2 * 2 + 1)
        k = min(k, 2 * side - 1)
        return k, k

    def transform(self, images: Tensor, params: BlurParams) -> Tensor:
        sigma = params.sigma.to(images).view(-1, 1).expand(-1, 2)
        return kornia.filters.gaussian_blur2d(images, self.kernel_for(*images.shape[-2:]), sigma,
                                              border_type="reflect")


    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, sigma={self.sigma}, p={self.p}"


# ------------------------------------------------------------------------------------------------- solarize
class RandomSolarize(_GateOnly):
    """Invert every pixel value at or above ``threshold`` (``v -> 1 - v``) with probability ``p``
    (``torchvision.transforms.v2.RandomSolarize``; kernel ``kornia.enhance.solarize``).

    ``threshold`` is in the float image's units, [0, 1]: a uint8 input is converted first, so torchvision's
    ``threshold=128`` on uint8 images is ``128 / 255`` here.
    """

    def __init__(self, threshold: float = 0.5, p: float = 0.5):
        super().__init__(p=p)
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a number in [0, 1] (float image units), got {threshold!r}")
        self.threshold = float(threshold)

    def transform(self, images: Tensor, params: NoParams) -> Tensor:
        return kornia.enhance.solarize(images, self.threshold)


    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, p={self.p}"


# The CPU uint8 backend's kernel of each class (one sample's params on one [H, W, C] uint8 image).
uint8.TRANSFORM_KERNELS.update({
    ColorJitter: lambda t, image, row: uint8.color_jitter(image, *row),
    RandomGrayscale: lambda t, image, row: uint8.rgb_to_grayscale(image, image.shape[2]),
    GaussianBlur: lambda t, image, row: uint8.gaussian_blur(image, t.kernel_for(*image.shape[:2]), row[0]),
    RandomSolarize: lambda t, image, row: uint8.solarize(image, t.threshold),
})
# row_from_uniforms' own row (a one-image call): no checks to pay for (~4 % of a K = 8 call at 32 px)
uint8.DRAWN_ROW_KERNELS[ColorJitter] = lambda t, image, row: uint8.color_jitter(image, *row, check=False)
