"""Per-view photometric transforms of the SimCLR / BYOL / MoCo v3 recipes: :class:`ColorJitter`,
:class:`RandomGrayscale`, :class:`GaussianBlur` and :class:`RandomSolarize`.

Each follows ``torchvision.transforms.v2``'s semantics, batched: every sample of a batch gets its own draw (factors,
order, sigma, and the ``p`` gate) from an optional ``torch.Generator``, and ``forward(x, params=...)`` replays it.
The kernels are Kornia's (``kornia.enhance``, ``kornia.filters``, ``kornia.color``), through
:mod:`mi_augment.functional` where it adds argument checks and speed paths (tested against Kornia's).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import kornia
import torch
from torch import Tensor

from ..core.options import current
from ..core.params import GatedParams, Params
from ..core.random import as_float32, as_float32s, rand, sampling_device, uniform
from ..functional import color
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
# ColorJitter groups samples by their sequence of operations from this many elements per sample (the copies it
# saves outweigh its up to 96 kernel calls: 0.95x / 1.1x / 1.4x / 1.35x at 32 / 64 / 96 / 224 px, one CPU thread)
_GROUPED_MIN_ELEMENTS = 3 * 64 * 64


# brightness, contrast, saturation without argument checks: (images, factor, inplace) -> images
_UNCHECKED = (color._brightness, color._contrast, color._saturation)


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


def _changes(params: ColorJitterParams, channels: int) -> list[Tensor]:
    """Per operation, ``(B,)`` bool: the sample's factor changes something (saturation and hue leave grey
    images alone)."""
    changes = [params.brightness != 1.0, params.contrast != 1.0, params.saturation != 1.0, params.hue != 0.0]
    if channels == 1:
        changes[2] = changes[3] = torch.zeros_like(changes[3])
    return changes


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

    def make_params(self, images: Tensor, generator: torch.Generator | None = None) -> ColorJitterParams:
        b, d = images.shape[0], images.device
        order = rand((b, 4), generator, d).argsort(dim=1)  # a uniform random permutation per sample
        factors = {}
        for name in _JITTER_OPS:
            bounds = getattr(self, name)
            identity = 0.0 if name == "hue" else 1.0
            factors[name] = (torch.full((b,), identity, device=d) if bounds is None
                             else uniform((b,), bounds[0], bounds[1], generator, d))
        return ColorJitterParams(order=order, **factors)

    def _draw_gated(self, x: Tensor, generator: torch.Generator | None) -> GatedParams:
        """Speed path of :meth:`make_params` and the gate's draw: on a CPU generator, consecutive ``torch.rand``
        calls give the numbers of one call of their total size, in order, so the order's ``(B, 4)``, each
        factor's ``(B,)`` and the gate's ``(B,)`` draws are one ``rand`` split (6 calls fewer, same values)."""
        b, d = x.shape[0], x.device
        if (sampling_device(generator, d).type != "cpu" or not current().fast_paths
                or type(self).make_params is not ColorJitter.make_params):  # a subclass's own draws
            return super()._draw_gated(x, generator)
        ranges = (self.brightness, self.contrast, self.saturation, self.hue)
        drawn = [r for r in ranges if r is not None]
        m = len(drawn)
        u = rand((b * (5 + m),), generator, d)
        order = u[:4 * b].view(b, 4).argsort(dim=1)
        if m:  # uniform()'s expression, low + (high - low) * u, for every factor in one float32 op each
            low = torch.tensor([r[0] for r in drawn], device=d)
            span = torch.tensor([r[1] - r[0] for r in drawn], device=d)
            values = (low[:, None] + span[:, None] * u[4 * b:(4 + m) * b].view(m, b)).unbind(0)
        factors, at = [], 0
        for i, bounds in enumerate(ranges):
            if bounds is None:
                factors.append(torch.full((b,), 0.0 if i == 3 else 1.0, device=d))
            else:
                factors.append(values[at])
                at += 1
        return GatedParams(ColorJitterParams(*factors, order), u[(4 + m) * b:] < self.p)

    def _one_draws(self) -> int | None:
        if not self._is_own(ColorJitter, "make_params", "transform", "_draw_gated"):
            return None
        return 5 + sum(r is not None for r in (self.brightness, self.contrast, self.saturation, self.hue))

    def _transform_one(self, x: Tensor, draws: list[float], owned: bool) -> Tensor:
        keys = draws[:4]
        if len(set(keys)) == 4:  # argsort of distinct numbers; ties take torch's own argsort
            order = sorted(range(4), key=keys.__getitem__)
        else:
            order = torch.tensor(keys, dtype=torch.float32).view(1, 4).argsort(dim=1)[0].tolist()
        ranges = (self.brightness, self.contrast, self.saturation, self.hue)
        drawn = [r for r in ranges if r is not None]
        # make_params's float32 low + (high - low) * u, every factor at once (products and sums of float32
        # numbers computed in float64 and rounded once are the float32 results)
        lows = as_float32s([r[0] for r in drawn])
        spans = as_float32s([r[1] - r[0] for r in drawn])
        products = as_float32s([s * v for s, v in zip(spans, draws[4:4 + len(drawn)])])
        factors = iter(as_float32s([lo + p for lo, p in zip(lows, products)]))
        values = [(0.0 if i == 3 else 1.0) if r is None else next(factors) for i, r in enumerate(ranges)]
        # a float RGB view with factors drawn in range needs none of the kernels' argument checks
        return self._jitter_one(x, values, order, owned, checked=not (x.shape[1] == 3 and x.is_floating_point()))

    @staticmethod
    def _jitter_one(images: Tensor, values: list[float], order: list[int], owned: bool = False,
                    checked: bool = True) -> Tensor:
        """Speed path for one image (a DataLoader worker's call): its kernels in its order on its factors as
        numbers, no row selection (16 mask and index ops fewer, no factor tensors); into ``images`` if
        ``owned``. ``checked=False`` (a float RGB image, factors known valid): the kernels' maths without
        their argument checks (what :func:`~mi_augment.functional.color._adjust_inplace` runs after them)."""
        kernels = (color.adjust_brightness, color.adjust_contrast, color.adjust_saturation, color.adjust_hue)
        grey = images.shape[1] != 3
        out = images
        for op in order:
            if values[op] == (0.0 if op == 3 else 1.0) or (op >= 2 and grey):  # no change; grey: no colour ops
                continue
            fresh = out is images and not owned  # the first kernel makes a new tensor; the next may write into it
            if not checked:
                out = color._hue(out, values[3]) if op == 3 else _UNCHECKED[op](out, values[op], inplace=not fresh)
            elif fresh:
                out = kernels[op](out, values[op])
            else:
                out = color._adjust_inplace(out, op, values[op])
        return images.clone() if out is images and not owned else out

    def transform(self, images: Tensor, params: ColorJitterParams) -> Tensor:
        factors = [params.brightness, params.contrast, params.saturation, params.hue]
        if images.shape[0] == 1 and current().fast_paths:
            values = torch.cat([f.reshape(1) for f in factors]).tolist()
            return self._jitter_one(images, values, params.order[0].tolist())
        if current().fast_paths and images[0].numel() >= _GROUPED_MIN_ELEMENTS:
            return self._by_sequence(images, params, torch.empty_like(images))  # every sample is in one group
        changes = _changes(params, images.shape[1])
        out = images.clone()
        # One kernel call per (step, operation) on the samples doing that operation at that step: each sample
        # goes through its four operations once, in its order; "no change" factors are skipped, so exact.
        for step in range(4):
            for op in range(4):
                rows = ((params.order[:, step] == op) & changes[op]).nonzero().squeeze(1)
                if rows.numel():
                    out.index_copy_(0, rows, color._adjust_inplace(out.index_select(0, rows), op, factors[op][rows]))
        return out

    def _transform_rows(self, out: Tensor, rows: Tensor, params: ColorJitterParams) -> None:
        if current().fast_paths and out[0].numel() >= _GROUPED_MIN_ELEMENTS:
            self._by_sequence(out, params, out, rows)  # the gate's rows grouped directly: two copies fewer
        else:
            super()._transform_rows(out, rows, params)

    @staticmethod
    def _by_sequence(images: Tensor, params: ColorJitterParams, out: Tensor, rows: Tensor | None = None) -> Tensor:
        """Speed path from 64 x 64 pixels: the samples (``rows``, default all) grouped by the sequence of
        operations they do (at most 24 orders), each group selected once, run through its kernels in place on
        that copy and written to ``out`` (which may be ``images``): the batch is copied twice instead of 9 times
        (the same kernel maths on the same factors per sample)."""
        if rows is not None:
            params = params.index(rows)
        factors = [params.brightness, params.contrast, params.saturation, params.hue]
        order = params.order
        done = torch.stack(_changes(params, images.shape[1]), 1).gather(1, order)  # (N, 4): step s does its op
        # key: the order in base 4 (0-255), plus 256 times the 4 bits of the steps that do something
        key = (order * torch.tensor([64, 16, 4, 1], device=order.device)).sum(1)
        key += (done.long() * torch.tensor([2048, 1024, 512, 256], device=order.device)).sum(1)
        keys, group = key.unique(return_inverse=True)
        for i, k in enumerate(keys.tolist()):
            ops = [(k // 4 ** (3 - s)) % 4 for s in range(4) if (k >> (11 - s)) & 1]
            members = (group == i).nonzero().squeeze(1)
            where = members if rows is None else rows.index_select(0, members)
            if not ops and out is images:
                continue
            y = images.index_select(0, where)  # our own copy: the kernels may write into it
            for op in ops:
                y = color._adjust_inplace(y, op, factors[op].index_select(0, members))
            out.index_copy_(0, where, y)
        return out

    def extra_repr(self) -> str:
        parts = [f"{name}={getattr(self, name)}" for name in _JITTER_OPS if getattr(self, name) is not None]
        return ", ".join(parts + [f"p={self.p}"])


# ------------------------------------------------------------------------------------------------ grayscale
class RandomGrayscale(RandomTransform):
    """Convert each sample to greyscale with probability ``p`` (``torchvision.transforms.v2.RandomGrayscale``):
    an RGB image becomes its luma (:func:`mi_augment.functional.rgb_to_grayscale`, BT.601) in all three
    channels; a 1-channel image is unchanged."""

    def __init__(self, p: float = 0.1):
        super().__init__(p=p)

    def make_params(self, images: Tensor, generator: torch.Generator | None = None) -> NoParams:
        return NoParams.like(images)

    def transform(self, images: Tensor, params: NoParams) -> Tensor:
        return color.rgb_to_grayscale(images).expand_as(images)

    def _one_draws(self) -> int | None:
        return 1 if self._is_own(RandomGrayscale, "make_params", "transform", "_draw_gated") else None

    def _transform_one(self, x: Tensor, draws: list[float], owned: bool) -> Tensor:
        return color.rgb_to_grayscale(x).expand_as(x)


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

    def make_params(self, images: Tensor, generator: torch.Generator | None = None) -> BlurParams:
        return BlurParams(uniform((images.shape[0],), *self.sigma, generator, images.device))

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

    def _one_draws(self) -> int | None:
        return 2 if self._is_own(GaussianBlur, "make_params", "transform", "_draw_gated") else None

    def _transform_one(self, x: Tensor, draws: list[float], owned: bool) -> Tensor:
        lo, hi = self.sigma  # make_params's float32 low + (high - low) * u
        sigma = as_float32(as_float32(lo) + as_float32(as_float32(hi - lo) * draws[0]))
        return self.transform(x, BlurParams(torch.tensor([sigma], device=x.device)))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, sigma={self.sigma}, p={self.p}"


# ------------------------------------------------------------------------------------------------- solarize
class RandomSolarize(RandomTransform):
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

    def make_params(self, images: Tensor, generator: torch.Generator | None = None) -> NoParams:
        return NoParams.like(images)

    def transform(self, images: Tensor, params: NoParams) -> Tensor:
        return kornia.enhance.solarize(images, self.threshold)

    def _one_draws(self) -> int | None:
        return 1 if self._is_own(RandomSolarize, "make_params", "transform", "_draw_gated") else None

    def _transform_one(self, x: Tensor, draws: list[float], owned: bool) -> Tensor:
        return self.transform(x, NoParams.like(x))

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, p={self.p}"
