"""Colour kernels of the CPU uint8 backend: look-up tables (LUTs), affine maps and ``cv2.cvtColor`` on one
``[H, W, C]`` uint8 image, with the maths of the torch kernels in :mod:`mi_augment.functional.color` (Kornia's).

A chain of adjustments (:func:`color_jitter`, :func:`illuminate`; a single kernel is a chain of one) is rounded
once at its end, as the torch reference is. Brightness and contrast compose into one levels map: the torch
formula on the 256 levels (float32 on ``uint8 / 255``; the contrast's mean exact), applied as one affine
(``cv2.convertScaleAbs``, ``cv2.addWeighted``) while no clamp sits inside it, else as one LUT. The saturation's
luma blend (``cv2.transform``) and the hue rotation (an HSV round trip, Kornia's hexcone hue) run on float32 in
level units ([0, 255]; every step is homogeneous). :func:`illuminate` starts the chain with the illumination of
:mod:`mi_augment.functional.uint8.illumination` (its table joins the levels map). Each single kernel is within
1 level of the torch kernel followed by rounding (``tests/test_uint8_color.py``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .illumination import apply_illumination, illumination_table
from .image import as_hwc, check_image, opencv

__all__ = ["adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue", "rgb_to_grayscale",
           "solarize", "color_jitter", "illuminate"]

_LEVELS = np.arange(256, dtype=np.float32) / np.float32(255.0)  # the float image's values, as torch divides
_LEVELS.flags.writeable = False
_LUMA = (0.299, 0.587, 0.114)  # BT.601, functional.color.rgb_to_grayscale's weights


def _lut(image: np.ndarray, table: np.ndarray, scale: np.float32 | None = None) -> np.ndarray:
    """``cv2.LUT`` of a level table, ``(256,)`` for every channel (one single-channel LUT) or ``(256, C)``: a
    uint8 table as is, a float table in [0, 1] rounded half to even to levels (``scale`` None, clamped) or as
    float32 times ``scale``."""
    if table.dtype != np.uint8:
        table = (np.round(np.clip(table, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8) if scale is None
                 else (table * scale if scale != 1.0 else table).astype(np.float32, copy=False))
    c = image.shape[2]
    if table.ndim == 2:
        table = table[:, 0] if c == 1 or table.shape[1] == 1 else np.ascontiguousarray(table).reshape(1, 256, c)
    return as_hwc(opencv().LUT(image, table), c)


def _factor(value: Any, name: str, nonnegative: bool = True) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if not math.isfinite(f) or (nonnegative and f < 0):
        raise ValueError(f"{name} must be a finite {'non-negative ' if nonnegative else ''}number, got {value!r}")
    return f


def adjust_brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """Multiply by ``factor`` (>= 0, 1 = unchanged) and clamp: :func:`mi_augment.functional.adjust_brightness`.

    Args:
        image: uint8 ``[H, W, C]``.
        factor: the brightness factor.

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: the same.

    Example:
        >>> adjust_brightness(np.full((2, 2, 3), 100, np.uint8), 1.5)[0, 0].tolist()
        [150, 150, 150]
    """
    check_image(image)
    return _jitter(image, None, [_factor(factor, "brightness factor"), 1.0, 1.0, 0.0], [0])


def adjust_contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the mean of the luma (0 = flat grey, 1 = unchanged): :func:`mi_augment.functional.adjust_contrast`.

    Args:
        image: uint8 ``[H, W, C]``.
        factor: the contrast factor (>= 0).

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: the same.

    Example:
        >>> adjust_contrast(np.array([[[0, 0, 0], [200, 200, 200]]], np.uint8), 0.0)[0, 0].tolist()
        [100, 100, 100]
    """
    check_image(image)
    return _jitter(image, None, [1.0, _factor(factor, "contrast factor"), 1.0, 0.0], [1])


def adjust_saturation(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend an RGB image with its luma (0 = grey, 1 = unchanged): :func:`mi_augment.functional.adjust_saturation`,
    in float32 (``cv2.cvtColor``, ``cv2.addWeighted``). A 1-channel image is returned unchanged (a copy).

    Args:
        image: uint8 ``[H, W, C]``.
        factor: the saturation factor (>= 0).

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: the same.

    Example:
        >>> adjust_saturation(np.array([[[255, 0, 0]]], np.uint8), 0.0)[0, 0].tolist()
        [76, 76, 76]
    """
    check_image(image)
    return _jitter(image, None, [1.0, 1.0, _factor(factor, "saturation factor"), 0.0], [2])


def adjust_hue(image: np.ndarray, shift: float) -> np.ndarray:
    """Rotate the hue by ``shift`` turns (in [-0.5, 0.5]): :func:`mi_augment.functional.adjust_hue`, by a float32
    HSV round trip (OpenCV's hexcone HSV is Kornia's). A 1-channel image is returned unchanged (a copy).

    Args:
        image: uint8 ``[H, W, C]``.
        shift: the hue shift in turns.

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: the same.

    Example:
        >>> adjust_hue(np.array([[[255, 0, 0]]], np.uint8), 1 / 3)[0, 0].tolist()
        [0, 255, 0]
    """
    check_image(image)
    s = _factor(shift, "hue shift", nonnegative=False)
    if abs(s) > 0.5:
        raise ValueError(f"hue shift must be in [-0.5, 0.5] turns, got {shift!r}")
    return _jitter(image, None, [1.0, 1.0, 1.0, s], [3])


def rgb_to_grayscale(image: np.ndarray, channels: int = 3) -> np.ndarray:
    """The luma (BT.601) in ``channels`` channels (1, or 3 as ``RandomGrayscale`` returns it), by
    ``cv2.cvtColor``: :func:`mi_augment.functional.rgb_to_grayscale`. A 1-channel image is repeated.

    Args:
        image: uint8 ``[H, W, C]``.
        channels: 1 or 3 output channels.

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: :math:`(H, W, channels)`.

    Example:
        >>> rgb_to_grayscale(np.array([[[255, 0, 0]]], np.uint8))[0, 0].tolist()
        [76, 76, 76]
    """
    check_image(image)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    cv2 = opencv()
    grey = image[:, :, 0] if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return as_hwc(grey.copy(), 1) if channels == 1 else cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


def solarize(image: np.ndarray, threshold: float) -> np.ndarray:
    """Invert the values at or above ``threshold`` (float image units, [0, 1]): ``kornia.enhance.solarize``.

    Args:
        image: uint8 ``[H, W, C]``.
        threshold: in [0, 1].

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: the same.

    Example:
        >>> solarize(np.array([[[10, 200, 128]]], np.uint8), 0.5)[0, 0].tolist()
        [10, 55, 127]
    """
    check_image(image)
    t = _factor(threshold, "threshold")
    if t > 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    levels = np.arange(256, dtype=np.uint8)
    return _lut(image, np.where(_LEVELS < np.float32(t), levels, 255 - levels).astype(np.uint8))


def _channel_means(image: np.ndarray, table: np.ndarray) -> list[float]:
    """Per-channel means of the level table ``table`` applied to ``image`` (in [0, 1]), exactly: the mapped
    image's mean for a small image (2 calls), the histograms (one ``calcHist`` per channel) for a large one."""
    cv2, c = opencv(), image.shape[2]
    if image.shape[0] * image.shape[1] <= 4096:
        return list(cv2.mean(_lut(image, table, np.float32(1.0)))[:c])
    n = image.shape[0] * image.shape[1]
    columns = table.reshape(256, -1).astype(np.float64)
    hists = [cv2.calcHist([image], [i], None, [256], [0, 256]).reshape(-1).astype(np.float64) for i in range(c)]
    return [float(h @ columns[:, min(i, columns.shape[1] - 1)]) / n for i, h in enumerate(hists)]


class _Pending:
    """The levels map a chain holds on its image (uint8, or float32 in level units): a float32 level table
    (``(256,)`` shared by the channels, or ``(256, C)``; built only when needed) and, while the table is
    ``clip(a * level + k, 0, 1)`` with the clamp only at its end, the affine ``(a, k)``: then the map is one
    ``cv2.convertScaleAbs`` / ``cv2.addWeighted``. A float image's map stays affine (:meth:`keeps`)."""

    __slots__ = ("identity", "_table", "_steps", "affine")

    def __init__(self, table: np.ndarray | None) -> None:
        self.identity, self._table, self._steps = table is None, table, []  # table: _table after the steps
        self.affine: tuple[float, float] | None = (1.0, 0.0) if table is None else None

    @property
    def table(self) -> np.ndarray:
        """The float32 level table, as the torch kernels compute each step on ``level / 255``."""
        table = _LEVELS if self._table is None else self._table
        for op, f, mean in self._steps:  # brightness (0) and contrast (1) in float32, clamped where f > 1
            ff = np.float32(f)
            table = table * ff if op == 0 else table * ff + np.float32(mean) * (np.float32(1.0) - ff)
            table = table if f <= 1.0 else np.clip(table, 0.0, 1.0)
        self._table, self._steps = table, []
        return table

    def _clamps(self) -> tuple[bool, bool]:  # whether some level maps below 0 / above 1 before the clamp
        a, k = self.affine
        return k < 0.0, a + k > 1.0

    def brightness(self, f: float) -> None:
        self.identity = False
        self._steps.append((0, f, 0.0))
        if self.affine is not None:  # a clamp at 1 before the factor stays one iff the factor is >= 1
            self.affine = (self.affine[0] * f, self.affine[1] * f) if f >= 1.0 or not self._clamps()[1] else None

    def contrast(self, f: float, image: np.ndarray) -> None:
        means = self.means(image)
        mean = sum(w * m for w, m in zip(_LUMA, means)) if len(means) == 3 else means[0]
        self.identity = False
        self._steps.append((1, f, mean))
        if self.affine is not None:  # clamps before the blend stay clamps iff the factor is >= 1
            a, k = self.affine
            self.affine = (a * f, k * f + mean * (1.0 - f)) if f >= 1.0 or not any(self._clamps()) else None

    def means(self, image: np.ndarray) -> list[float]:
        """The mapped image's per-channel means in [0, 1], exactly: an affine's ``a * mean + k``, less ``a / 255 *
        E[(level - t)+]`` if it clamps at 1 from level ``t`` (E[(level - ceil t)+] + (ceil t - t) P(level >= t))."""
        low, high = self._clamps() if self.affine is not None else (True, True)
        if low or (high and (image.dtype != np.uint8 or image.size <= 12288)):  # small: the table's 2 calls
            return _channel_means(image, self.table)
        cv2, (a, k), c = opencv(), self.affine, image.shape[2]
        means = [a * m / 255.0 + k for m in cv2.mean(image)[:c]]
        if high:
            t = 255.0 * (1.0 - k) / a
            top = max(math.ceil(t), 0)
            over = cv2.mean(cv2.subtract(image, (float(top),) * 4))[:c]
            share = cv2.mean(cv2.threshold(image, top - 1.0, 1.0, cv2.THRESH_BINARY)[1])[:c]
            means = [m - a / 255.0 * (o + (top - t) * p) for m, o, p in zip(means, over, share)]
        return means

    def levels(self, image: np.ndarray) -> np.ndarray:
        """The mapped image as uint8 levels, rounded once."""
        if self.identity:
            return image
        if self.affine is not None and self.affine[1] >= 0.0:  # a, k >= 0: |a x + k| is a x + k
            return as_hwc(opencv().convertScaleAbs(image, alpha=self.affine[0], beta=255.0 * self.affine[1]),
                          image.shape[2])
        return _lut(image, self.table)

    def keeps(self, op: int, f: float) -> bool:
        """Whether brightness (0) / contrast (1) by ``f`` stays affine with no table (else a float image's map is
        applied first)."""
        low, high = self._clamps()
        return (f >= 1.0 or not high) if op == 0 else not (low or high)

    def float_view(self, image: np.ndarray) -> np.ndarray:
        """The mapped image as float32 ``[H, W, C]`` in level units, [0, 255], never rounded (a float
        ``image`` with nothing pending is returned as is)."""
        if self.identity:
            return image if image.dtype == np.float32 else image.astype(np.float32, order="C")  # cv2 writes in
        if self.affine is None:
            return _lut(image, self.table, np.float32(255.0))
        cv2, a, k = opencv(), self.affine[0], 255.0 * self.affine[1]
        own = image if image.dtype == np.float32 else None  # the chain's own float image: in place
        return _clamp(as_hwc(cv2.addWeighted(image, a, image, 0.0, k, dst=own, dtype=cv2.CV_32F), image.shape[2]),
                      *self._clamps())

    def finish(self, x: np.ndarray, clamped: bool) -> np.ndarray:
        """The mapped float image ``x`` (level units; ``clamped``: already in [0, 255]) rounded to uint8 in one
        pass: ``cv2.convertScaleAbs`` (with the affine where nothing it maps is negative), or a saturating
        ``cv2.addWeighted`` for the affine and the clamp."""
        cv2 = opencv()
        if self.identity and clamped:
            return as_hwc(cv2.convertScaleAbs(x), x.shape[2])
        a, k = self.affine
        if clamped and a >= 0.0 and k >= 0.0:  # a x + k >= 0: the absolute value changes nothing (~2x faster)
            return as_hwc(cv2.convertScaleAbs(x, alpha=a, beta=255.0 * k), x.shape[2])
        return as_hwc(cv2.addWeighted(x, a, x, 0.0, 255.0 * k, dtype=cv2.CV_8U), x.shape[2])


def _clamp(x: np.ndarray, low: bool = True, high: bool = True) -> np.ndarray:
    """Clamp float32 level values to [0, 255] in place (only the ends named)."""
    cv2 = opencv()  # two thresholds cost less than np.clip's dispatch on small images
    if high:
        cv2.threshold(x, 255.0, 255.0, cv2.THRESH_TRUNC, dst=x)
    if low:
        cv2.threshold(x, 0.0, 0.0, cv2.THRESH_TOZERO, dst=x)
    return x


def _saturation_matrix(v: float) -> np.ndarray:
    """The luma blend as ``cv2.transform``'s ``3 x 4`` matrix: row ``c`` is ``(1 - v) * luma + v * e_c``."""
    r, g, b = ((1.0 - v) * w for w in _LUMA)
    return np.array([[r + v, g, b, 0.0], [r, g + v, b, 0.0], [r, g, b + v, 0.0]])


def _float_step(x: np.ndarray, op: int, v: float, clamp: bool) -> np.ndarray:
    """The saturation (2) or the hue (3) on a float32 image in level units ([0, 255], the torch kernel's [0, 1]
    times 255: both are homogeneous); a saturation above 1 is clamped when ``clamp`` (the hue stays in range)."""
    cv2 = opencv()
    if op == 2:
        x = cv2.transform(x, _saturation_matrix(v))
        return _clamp(x) if v > 1.0 and clamp else x
    hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)  # HSV is scale invariant (V in levels)
    cv2.add(hsv, (float(np.float32((v * 360.0) % 360.0)), 0.0, 0.0, 0.0), dst=hsv)  # HSV2RGB wraps >= 360
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB, dst=x)


def _jitter(image: np.ndarray, table: np.ndarray | None, values: list[float], order: list[int],
            fresh: bool = False) -> np.ndarray:
    """The adjustments in ``order`` on ``image`` seen through the float level table ``table`` (or None),
    rounded once; a new array (``image`` itself only when ``fresh`` says the caller made it). Brightness and
    contrast compose into the pending map (:class:`_Pending`; on a float image an affine, applied first where a
    clamp would sit inside it); a saturation with nothing pending on uint8 is one uint8 ``cv2.transform``
    (rounded once), else it and a hue run on float32 in level units. The last map and clamp join the rounding."""
    cv2, grey = opencv(), image.shape[2] == 1
    base, pending, clamped, floating = image, _Pending(table), True, False
    for i, op in enumerate(order):
        v = values[op]
        if v == (0.0 if op == 3 else 1.0) or (grey and op >= 2):
            continue
        if op == 3 or (op == 2 and (floating or not pending.identity)):
            clamped = op == 3 or v <= 1.0 or any(values[o] != (0.0 if o == 3 else 1.0) for o in order[i + 1:])
            base, pending, floating = _float_step(pending.float_view(base), op, v, clamped), _Pending(None), True
        elif op == 2:  # uint8 in and out: cv2.transform rounds and saturates (torch's clamp)
            base = cv2.transform(base, _saturation_matrix(v))
        else:
            if floating and not pending.keeps(op, v):
                base, pending = pending.float_view(base), _Pending(None)
            pending.brightness(v) if op == 0 else pending.contrast(v, base)
    if floating:
        return pending.finish(base, clamped)
    out = pending.levels(base)
    return out.copy() if out is image and not fresh else out


def color_jitter(image: np.ndarray, brightness: float, contrast: float, saturation: float, hue: float,
                 order: Any = (0, 1, 2, 3), *, check: bool = True) -> np.ndarray:
    """``ColorJitter``'s four adjustments in ``order`` (0 brightness, 1 contrast, 2 saturation, 3 hue), each
    skipped when its factor changes nothing, as the torch transform renders ``ColorJitterParams``; the chain is
    rounded once (brightness and contrast are one levels map, an affine or a look-up table).

    Args:
        image: uint8 ``[H, W, C]``.
        brightness, contrast, saturation: factors (>= 0, 1 = unchanged). hue: turns in [-0.5, 0.5] (0 = unchanged).
        order: a permutation of ``0, 1, 2, 3``.
        check: check the arguments (False: the caller vouches for them, e.g. ``ColorJitter``'s kernel renders the
            row its ``row_from_uniforms`` drew: Python floats in range and a list permutation; the checks are ~4 %
            of a DataLoader worker's K = 8 call at 32 px, docs/benchmarks.md round 8).

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: the same.

    Example:
        >>> color_jitter(np.full((2, 2, 3), 100, np.uint8), 1.2, 1.0, 1.0, 0.0, [3, 2, 1, 0])[0, 0].tolist()
        [120, 120, 120]
    """
    if not check:
        return _jitter(image, None, [brightness, contrast, saturation, hue], order)
    check_image(image)
    values = [_factor(brightness, "brightness factor"), _factor(contrast, "contrast factor"),
              _factor(saturation, "saturation factor"), _factor(hue, "hue shift", nonnegative=False)]
    if abs(values[3]) > 0.5:
        raise ValueError(f"hue shift must be in [-0.5, 0.5] turns, got {hue!r}")
    order = [int(i) for i in order]
    if sorted(order) != [0, 1, 2, 3]:
        raise ValueError(f"order must be a permutation of 0, 1, 2, 3, got {order}")
    return _jitter(image, None, values, order)


def illuminate(image: np.ndarray, params: Any, index: int = 0, field: np.ndarray | None = None,
               field_root: np.ndarray | None = None) -> np.ndarray:
    """Render sample ``index`` of ``IlluminationParams`` (or any object with its fields) on one image, as
    ``IlluminationModel.apply`` does: the physical change, then brightness, contrast, saturation and hue.

    Args:
        image: uint8 ``[H, W, C]``.
        params: fields ``log_gain (B, 3)``, ``log_gamma (B, 1)``, ``shading (B, S)``, ``brightness``,
            ``contrast``, ``saturation``, ``hue`` ``(B, 1)`` (tensors, or nested lists of numbers).
        index: which sample of the params.
        field: this sample's shading field ``[H, W]`` when the caller rendered several at once
            (:func:`~mi_augment.functional.render_shading_field`); None renders it here.
        field_root: its ``field ** (1 / 2.4)`` (the field of the coefficients over 2.4), or None: see
            :func:`~mi_augment.functional.uint8.apply_illumination`.

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: the same.
    """
    check_image(image)

    def row(name: str) -> list[float]:
        value = getattr(params, name)[index]
        if isinstance(value, torch.Tensor):
            return value.detach().reshape(-1).tolist()
        if type(value) is list and (not value or type(value[0]) is float):  # a row of .tolist(): as is
            return value
        return [float(v) for v in np.ravel(value)]

    out, table = image, None
    log_gain, log_gamma, shading = row("log_gain"), row("log_gamma")[0], row("shading")
    if any(shading):
        out = apply_illumination(out, log_gain, log_gamma, shading, field, field_root)
    elif any(log_gain) or log_gamma:  # a per-channel table: the jitter's brightness and contrast join it
        table = illumination_table(log_gain, log_gamma, image.shape[2])
    factors = [row(name)[0] for name in ("brightness", "contrast", "saturation", "hue")]
    return _jitter(out, table, factors, [0, 1, 2, 3], fresh=out is not image)
