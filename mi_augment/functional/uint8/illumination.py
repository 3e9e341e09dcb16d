"""Illumination kernels of the CPU uint8 backend: :func:`mi_augment.functional.apply_illumination` on one
``[H, W, C]`` uint8 image, with the torch kernel's maths (Kornia's sRGB transfer).

Without shading the change is one per-channel look-up table (:func:`illumination_table`). With a shading field
the linear value is separable, ``table_c(level) * field(x, y)``, and so is the bright branch of the sRGB
encoding, ``1.055 x ** (1 / 2.4) = root_table_c(level) * root(x, y)`` with ``root = field ** (1 / 2.4)`` (the field
of the coefficients over 2.4): one float LUT times the root, no power per pixel; the dark (linear) branch is
taken only for the values at or below the sRGB knee (none on most views). Rounded once. Given only the field,
the bright branch is one ``cv2.pow`` of the linear value. Within 1 level of the torch kernel followed by
rounding (``tests/test_uint8_color.py``); :func:`mi_augment.functional.uint8.illuminate` chains it with the
jitter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...core.options import current
from ..shading import shading_fields
from .image import as_hwc, check_image, opencv

__all__ = ["apply_illumination", "illumination_table"]

_LINEAR_LEVELS = (np.arange(256, dtype=np.float32) / np.float32(255.0)).astype(np.float64)  # level / 255, decoded
_LINEAR_LEVELS = np.where(_LINEAR_LEVELS > 0.04045, ((_LINEAR_LEVELS + 0.055) / 1.055) ** 2.4, _LINEAR_LEVELS / 12.92)
_LINEAR_LEVELS.flags.writeable = False
_KNEE = 0.0031308  # sRGB: linear values up to the knee encode as 12.92 x, above it as 1.055 x ** (1 / 2.4) - 0.055
_LIFT = 1.055 ** 2.4  # carried by the linear table, so that x ** (1 / 2.4) of it is 1.055 x ** (1 / 2.4)


def _gains(log_gain: Any) -> list[float]:
    flat = type(log_gain) is list and len(log_gain) == 3 and type(log_gain[0]) is float  # a .tolist() row
    gains = log_gain if flat else [float(v) for v in np.ravel(np.asarray(log_gain, dtype=np.float64))]
    if len(gains) != 3 or not (math.isfinite(gains[0]) and math.isfinite(gains[1]) and math.isfinite(gains[2])):
        raise ValueError(f"log_gain must hold 3 finite numbers, got {np.asarray(log_gain).tolist()}")
    return gains


def _log_gamma(value: Any) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"log_gamma must be a number, got {type(value).__name__}") from None
    if not math.isfinite(f):
        raise ValueError(f"log_gamma must be a finite number, got {value!r}")
    return f


def _srgb_tables(gains: list[float], log_gamma: float, channels: int, scales: tuple = (1.0, 1.055)) -> np.ndarray:
    """For each channel and the 256 levels (float64 ``(2, channels, 256)``): ``scales[0]`` times the linear value
    ``gain_c * decode(level) ** gamma`` and ``scales[1]`` times its power ``1 / 2.4``, the power taken per level
    and per gain apart (``(g x) ** p = g ** p * x ** p``), channel-major (numpy's inner loop is the levels)."""
    gamma = math.exp(log_gamma)
    gains = gains if channels == 3 else [sum(gains) / 3.0]
    factors = np.array([[scales[0] * math.exp(g) for g in gains], [scales[1] * math.exp(g / 2.4) for g in gains]])
    powers = np.empty((2, 1, 256))
    np.power(_LINEAR_LEVELS, gamma, out=powers[0, 0])
    np.power(_LINEAR_LEVELS, gamma / 2.4, out=powers[1, 0])
    return np.multiply(factors[:, :, None], powers)


def _lut(gains: list[float], log_gamma: float, channels: int, root: bool) -> np.ndarray:
    """The float32 table ``cv2.LUT`` takes (``(1, 256, 3)``, or ``(256,)`` for one channel) of the shaded
    illumination's linear value times ``1.055 ** 2.4`` (``gain_c * decode(level) ** gamma``), or with ``root`` of
    its power ``1 / 2.4`` times 1.055: :func:`_srgb_tables` with ``scales = (1.055 ** 2.4, 1.055)``, one row (the
    same numbers)."""
    gamma = math.exp(log_gamma)
    gains = gains if channels == 3 else [sum(gains) / 3.0]
    if root:
        power, factors = gamma / 2.4, [1.055 * math.exp(g / 2.4) for g in gains]
    else:
        power, factors = gamma, [_LIFT * math.exp(g) for g in gains]
    table = np.multiply.outer(np.power(_LINEAR_LEVELS, power), factors).astype(np.float32)  # (256, C)
    return table.reshape(1, 256, 3) if channels == 3 else table[:, 0]


def _srgb_table(gains: list[float], log_gamma: float, channels: int) -> np.ndarray:
    """The encoded value in [0, 1] of each level per channel, float32 ``(256, channels)``."""
    linear, powered = _srgb_tables(gains, log_gamma, channels)
    return np.where(linear > _KNEE, np.minimum(powered - 0.055, 1.0), 12.92 * linear).astype(np.float32).T


def _separable(image: np.ndarray, lut: np.ndarray, field: np.ndarray) -> np.ndarray:
    """``table_c(level) * field(x, y)`` in float32 ``[H, W, C]``: one float32 ``cv2.LUT`` of the table (:func:`_lut`),
    times the ``[H, W]`` field (repeated over the channels)."""
    cv2, c = opencv(), image.shape[2]
    if field.shape != image.shape[:2]:
        raise ValueError(f"a shading field must be [H, W] = {list(image.shape[:2])}, got {list(field.shape)}")
    field = np.ascontiguousarray(field, np.float32)
    out = cv2.LUT(image, lut)
    return cv2.multiply(out, cv2.cvtColor(field, cv2.COLOR_GRAY2RGB) if c == 3 else field, dst=out)


def _shaded(image: np.ndarray, gains: list[float], log_gamma: float, coeffs: list[float], field: np.ndarray | None,
            root: np.ndarray | None, blur: np.ndarray | None) -> np.ndarray:
    """The illumination with a shading field: the linear value ``x = table_c(level) * field``, encoded as
    ``max(1.055 x ** (1 / 2.4) - 0.055, 12.92 min(x, knee))`` (within 0.003 levels of the exact branch choice:
    the two branches meet at the knee with nearly equal slopes), rounded once.

    With the field's ``root`` (``field ** (1 / 2.4)``) the bright branch is the separable
    ``1.055 (table_c(level) * field) ** (1 / 2.4) = root_table_c(level) * root``, and the dark branch is taken only
    where a value lies at or below the knee (:func:`_dark_side`): no image of ``x`` at all where none does.
    Otherwise (or when that is most of the image, or inside ``kernel_options(fast_paths=False)``) both branches
    are images: ``x`` from the ``field`` (rendered from ``coeffs`` when not given), the bright branch by
    ``cv2.pow`` of it (its table carries ``1.055 ** 2.4``) or by the root's product."""
    cv2, c = opencv(), image.shape[2]
    bright = None
    if root is not None:
        bright = _separable(image, _lut(gains, log_gamma, c, True), root)
        if current().fast_paths and _dark_side(bright):
            return _encoded(bright, c, blur)
    if field is None:
        field = shading_fields([coeffs], *image.shape[:2])[0]
    lin = _separable(image, _lut(gains, log_gamma, c, False), field)
    if bright is None:
        bright = cv2.pow(lin, 1.0 / 2.4)
    cv2.threshold(lin, _LIFT * _KNEE, 0.0, cv2.THRESH_TRUNC, dst=lin)
    cv2.max(bright, cv2.addWeighted(lin, 12.92 / _LIFT, lin, 0.0, 0.055, dst=lin), dst=bright)
    return _encoded(bright, c, blur)


def _encoded(bright: np.ndarray, channels: int, blur: np.ndarray | None) -> np.ndarray:
    """The encoded values ``bright - 0.055`` (>= 0) as uint8 levels, rounded once; with a ``blur`` kernel, clamped
    to 1 and blurred first (``cv2.filter2D`` on float32: the torch kernels' order, and ~1.7x faster than OpenCV's
    uint8 filter)."""
    cv2 = opencv()
    if blur is not None and blur.shape[-1] > 1:
        cv2.threshold(bright, 1.055, 0.0, cv2.THRESH_TRUNC, dst=bright)  # sRGB <= 1, as the torch kernel clamps
        bright = cv2.filter2D(bright, -1, blur, borderType=_blur_border(bright.shape, blur.shape[-1]))
    return as_hwc(cv2.convertScaleAbs(bright, alpha=255.0, beta=-255.0 * 0.055), channels)  # >= 0 before the abs


def _blur_border(shape: tuple[int, ...], k: int) -> int:
    """:func:`~mi_augment.functional.uint8.motion_blur`'s border: reflected, repeated where the kernel is wider
    than the image."""
    cv2 = opencv()
    pad = k // 2
    return cv2.BORDER_REFLECT_101 if pad < shape[0] and pad < shape[1] else cv2.BORDER_REPLICATE


#: the dark branch's largest value ``12.92 knee + 0.055`` (at the knee, in the bright branch's units ``+ 0.055``) and
#: a margin above float32 rounding: a bright value above it is the encoding as it stands
_DARK_TOP = 12.92 * _KNEE + 0.055 + 1e-6
#: the share of values at or below the knee up to which :func:`_dark_side` encodes them one by one
_SPARSE_DARK = 0.125


def _dark_side(bright: np.ndarray) -> bool:
    """Encode, in place, the values of the bright branch ``b = 1.055 x ** (1 / 2.4)`` that lie at or below the
    knee: ``max(b, 12.92 min(x, knee) + 0.055)`` with ``x = (b / 1.055) ** 2.4`` in float64 (the dense form's
    ``x`` within float32 rounding: the same levels but for rounding ties). False, touching nothing, where more
    than :data:`_SPARSE_DARK` of the values do (the dense form is cheaper then)."""
    if float(bright.min()) >= _DARK_TOP:  # (numpy's reduction: ~7 us at 224 x 224 x 3)
        return True
    flat = bright.reshape(-1)
    dark = np.flatnonzero(flat < _DARK_TOP)
    if dark.size > _SPARSE_DARK * flat.size:
        return False
    b = flat[dark]
    x = np.minimum((b.astype(np.float64) / 1.055) ** 2.4, _KNEE)
    flat[dark] = np.maximum(b, 12.92 * x + 0.055)
    return True


def apply_illumination(image: np.ndarray, log_gain: Any, log_gamma: float, shading: Any = None,
                       field: np.ndarray | None = None, field_root: np.ndarray | None = None, *,
                       blur: np.ndarray | None = None) -> np.ndarray:
    """A physical illumination change (:func:`mi_augment.functional.apply_illumination` on one image): in
    linear RGB, channel ``c`` becomes ``gain_c * field(x, y) * value ** gamma``, encoded back to sRGB.

    Args:
        image: uint8 sRGB ``[H, W, C]``.
        log_gain: 3 natural-log linear gains (a 1-channel image takes their mean).
        log_gamma: natural log of the exponent on linear intensity.
        shading: the ``S`` shading coefficients of :func:`~mi_augment.functional.render_shading_field`, or None.
        field: their field ``[H, W]`` when the caller rendered it already (several views at once).
        field_root: ``field ** (1 / 2.4)`` ``[H, W]`` float32 (the field of ``shading / 2.4``), when the caller
            rendered it already: then no power is taken per pixel. Used only with shading. Without ``field``
            and ``field_root`` the root is rendered here; with ``field`` alone the bright branch is a
            ``cv2.pow`` of the linear value. The outputs agree within 1 level.
        blur: a ``(K, K)`` float32 kernel (a motion blur's, :func:`~mi_augment.functional.motion_blur_kernels`)
            applied after the change, as :func:`~mi_augment.functional.uint8.motion_blur` of the output does
            (reflected borders): with shading, to the encoded float values clamped to 1 before they are rounded
            (one rounding, as the torch kernels' float chain; within 1 level of blurring the uint8 output).

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: the same.

    Example:
        >>> apply_illumination(np.full((2, 2, 3), 128, np.uint8), [0.0, 0.0, 0.0], 0.0)[0, 0].tolist()
        [128, 128, 128]
        >>> field, root = np.full((2, 2), 2.0, np.float32), np.full((2, 2), 2.0 ** (1 / 2.4), np.float32)
        >>> apply_illumination(np.full((2, 2, 3), 128, np.uint8), [0.0] * 3, 0.0, [1.0], field, root)[0, 0].tolist()
        [176, 176, 176]
    """
    check_image(image)
    blur = None if blur is None else np.asarray(blur, np.float32)
    if type(shading) is list and shading and type(shading[0]) is float:  # a .tolist() row: as is
        coeffs = shading
    else:
        coeffs = [] if shading is None else [float(v) for v in np.ravel(np.asarray(shading, dtype=np.float32))]
    gains, log_gamma = _gains(log_gain), _log_gamma(log_gamma)
    if not any(coeffs):
        table = np.round(np.clip(_srgb_table(gains, log_gamma, image.shape[2]), 0.0, 1.0) * np.float32(255.0))
        table = table.astype(np.uint8)
        out = as_hwc(opencv().LUT(image, table[:, 0] if image.shape[2] == 1 else table.reshape(1, 256, 3)),
                     image.shape[2])
        if blur is None or blur.shape[-1] == 1:
            return out
        return as_hwc(opencv().filter2D(out, -1, blur, borderType=_blur_border(out.shape, blur.shape[-1])), out.shape[2])
    if field is None and field_root is None:  # the root (H, W) float32: the field of the coefficients / 2.4
        field_root = shading_fields([[v / 2.4 for v in coeffs]], *image.shape[:2])[0]
    return _shaded(image, gains, log_gamma, coeffs, field, field_root, blur)  # a new array


def illumination_table(log_gain: Any, log_gamma: float, channels: int = 3) -> np.ndarray:
    """The float32 ``(256, channels)`` table of :func:`apply_illumination` without shading: the sRGB value in
    [0, 1] of each input level per channel (round ``255 x`` for uint8).

    Example:
        >>> [round(v, 4) for v in illumination_table([0.0, 0.0, 0.0], 0.0)[128].tolist()]
        [0.502, 0.502, 0.502]
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    return np.ascontiguousarray(_srgb_table(_gains(log_gain), _log_gamma(log_gamma), channels))
