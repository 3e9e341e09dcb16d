"""Scoring on the CPU uint8 backend: the luma proxies of candidate crops and their histogram MI for one image,
the scores of ``MIPairTransform.score`` (pixel-MI scorer, no perturbation model) within 1e-4 nats.

A histogram puts each proxy value in a bin by ``floor(16 v)``, so one float rounding that moves a value across
a bin edge moves the MI by about 1e-3 nats. The proxies are therefore the torch kernels' float32 values bit
for bit: the luma's fused multiply-adds and the 2x average pooling of
:func:`~mi_augment.functional.crops.pyramid_crop` operation by operation in numpy, the sampling positions with
the same IEEE operations in the same order, and the bilinear samples by the torch scorer's own kernel: one
``grid_sample`` call on the same float32 grid (all views' boxes at once). A large image is scored at a lower
resolution: its luma (by the torch operations of the luma) downscaled by torch's own antialiased
``F.interpolate``, one call on one channel, as the torch scorer does. The MI is computed from integer count tables (one ``bincount`` for all problems) and a ``c log c`` table.

Where :func:`mi_augment.functional.uint8.compiled.available` (numba, probed against torch in this process), the luma,
the pyramid, and the samples with their bins, count tables and MI are each one compiled pass with the same values
(the MI within 1e-12 nats); ``kernel_options(compiled_kernels=False)`` runs the numpy + torch form described above.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...core.kept import kept
from . import compiled
from .image import check_image, opencv

__all__ = ["luma", "working_luma", "proxies", "proxy_grid", "histogram_mi", "candidate_scores", "xlogx_table", "luma_tables",
           "torch_grid_samples"]

_F32 = np.float32


def luma(image: np.ndarray) -> np.ndarray:
    """The float32 luma ``[H, W]`` in [0, 1] of a uint8 image, bit for bit
    :func:`mi_augment.functional.rgb_to_grayscale` of ``image / 255``.

    Args:
        image: uint8 ``[H, W, C]``, ``C`` = 1 or 3.

    Shape:
        - Input: :math:`(H, W, C)`, uint8. Output: :math:`(H, W)`, float32.

    Example:
        >>> float(luma(np.full((1, 1, 3), 255, np.uint8))[0, 0])
        1.0
    """
    check_image(image)
    return _uint8_luma(image)


@functools.lru_cache(maxsize=1)
def luma_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per level ``v`` of 255: ``v / 255`` (float32), its red term rounded to float32, and its green and blue
    products in float64 (exact: the products of two float32 numbers): the operands of the luma's fused
    multiply-adds (``(r * 0.299 + g * 0.587) + b * 0.114``, each sum rounded once to float32). Made once.

    Example:
        >>> unit, red, green, blue = luma_tables()
        >>> float(unit[255]), unit.dtype, green.dtype
        (1.0, dtype('float32'), dtype('float64'))
    """
    x = np.arange(256, dtype=_F32) / _F32(255.0)
    x64 = x.astype(np.float64)
    return x, x * _F32(0.299), x64 * np.float64(_F32(0.587)), x64 * np.float64(_F32(0.114))


def _uint8_luma(image: np.ndarray) -> np.ndarray:
    """The luma of ``image / 255`` (:func:`mi_augment.functional.rgb_to_grayscale`'s operations) by look-up: the
    same float32 roundings of the same operands (compiled where :func:`.compiled.available`: one pass, the same
    values for all 2 ** 24 colours)."""
    if compiled.available():
        return compiled.luma(image)
    unit, red, green, blue = luma_tables()
    if image.shape[2] == 1:
        return unit.take(image[:, :, 0])
    out = (green.take(image[:, :, 1]) + red.take(image[:, :, 0])).astype(_F32)
    return (blue.take(image[:, :, 2]) + out).astype(_F32)


def _plane_luma(image: np.ndarray) -> np.ndarray:
    """The luma of ``image / 255`` by :func:`mi_augment.functional.rgb_to_grayscale`'s operations
    (``(r * 0.299).add_(g, alpha=0.587).add_(b, alpha=0.114)``) on contiguous planes, as the torch scorer's batch holds
    them: each channel split out (``cv2.extractChannel``) and mapped to float32 by a 256-entry table (``v / 255``; the red
    one times ``0.299`` rounded, the first operation of the luma), then the two fused multiply-adds by
    ``cv2.scaleAdd``, which rounds as torch's ``add_(..., alpha=)`` does (the same float32 value for every one of the
    2 ** 24 colours, ``tests/test_scoring_speed_paths.py``): the NCHW float image's luma without a torch call."""
    unit, red, _, _ = luma_tables()
    cv2 = opencv()
    if image.shape[2] == 1:
        return cv2.LUT(np.ascontiguousarray(image[:, :, 0]), unit)
    r, g, b = (cv2.extractChannel(image, c) for c in range(3))  # (~25% faster than cv2.split at 256 px)
    out = cv2.LUT(r, red)
    cv2.scaleAdd(cv2.LUT(g, unit), 0.587, out, dst=out)
    return cv2.scaleAdd(cv2.LUT(b, unit), 0.114, out, dst=out)


def working_luma(image: np.ndarray, proxy_size: int, min_scale: float) -> tuple[np.ndarray, float, float]:
    """The luma at the resolution scoring needs (the smallest allowed crop still covers about ``proxy_size``
    pixels per side), and the factors ``(fx, fy)`` that map box coordinates onto it.

    Args:
        image: uint8 ``[H, W, C]``.
        proxy_size: side of the square proxies.
        min_scale: the smallest crop area as a fraction of the image (the sampler's ``scale[0]``).

    Example:
        >>> lum, fx, fy = working_luma(np.zeros((256, 256, 3), np.uint8), 32, 0.08)
        >>> lum.shape, round(fx, 3)
        ((114, 114), 0.445)
    """
    check_image(image)
    h, w = image.shape[:2]
    factor = min(1.0, proxy_size / math.sqrt(min_scale * h * w))
    hh, ww = max(1, math.ceil(h * factor)), max(1, math.ceil(w * factor))
    if hh >= h and ww >= w:
        return _uint8_luma(image), 1.0, 1.0
    # the luma first, then one channel to downscale, as the torch scorer: the same float32 plane, the same call
    x = torch.from_numpy(compiled.luma(image) if compiled.available() else _plane_luma(image)).reshape(1, 1, h, w)
    small = F.interpolate(x, size=(hh, ww), mode="bilinear", antialias=True, align_corners=False)
    return small.view(hh, ww).clamp_(0.0, 1.0).numpy(), ww / w, hh / h


def torch_grid_samples(canvas: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """``grid_sample`` (bilinear, border, ``align_corners=True``) of ``canvas [H, W]`` on the separable
    normalised float32 grids ``axes (P, 2, n)`` (columns ``x``, then rows ``y``), as one tall grid: ``(P, n * n)``
    float32. The same kernel on the same float32 grid as the torch scorer's, so the same samples bit for bit.

    The image and the grid are written into tensors this thread keeps per shape (:func:`_sample_buffers`): a
    fresh 128 KB grid per call (K = 8, 32 px proxies) cost ~5 % of a DataLoader worker's whole K = 8 call at
    32 px (measured in-process A/B, docs/benchmarks.md round 8). Each grid point is its ``(x, y)`` float32 pair,
    written as one 64-bit word (``x``'s bits low, ``y``'s high: the pair's little-endian layout) by one
    broadcast ``bitwise_or`` instead of two strided float writes. The kernel is ``torch.grid_sampler``, the call
    ``F.grid_sample`` makes after its argument checks (mode 0 bilinear, padding 1 border)."""
    p, n = axes.shape[0], axes.shape[2]
    bits = axes.view(np.uint32).astype(np.uint64)
    image, image_np, grid, grid_words = _sample_buffers(p, n, *canvas.shape)
    image_np[...] = canvas
    np.bitwise_or(bits[:, None, 0, :], bits[:, 1, :, None] << np.uint64(32), out=grid_words)
    return torch.grid_sampler(image, grid, 0, 1, True).numpy().reshape(p, n * n)


def _sample_buffers(p: int, n: int, h: int, w: int) -> tuple[Tensor, np.ndarray, Tensor, np.ndarray]:
    """This thread's float32 image ``(1, 1, h, w)`` and grid ``(1, p * n, n, 2)`` tensors for :func:`torch_grid_samples`
    (:func:`~mi_augment.core.kept.kept`, on the CPU), with numpy views to write them (the image ``[h, w]``; the grid
    as ``(p, n, n)`` 64-bit words). Overwritten by this thread's next call of the same shape."""
    return kept(("uint8 scorer", p, n, h, w), lambda: _new_sample_buffers(p, n, h, w))


def _new_sample_buffers(p: int, n: int, h: int, w: int) -> tuple[Tensor, np.ndarray, Tensor, np.ndarray]:
    if sys.byteorder != "little":  # pragma: no cover - the word layout assumes x in the low half
        raise RuntimeError("the uint8 scorer's grid words assume a little-endian machine")
    image = torch.empty((1, 1, h, w), dtype=torch.float32, device="cpu")
    grid = torch.empty((1, p * n, n, 2), dtype=torch.float32, device="cpu")
    return image, image.numpy().reshape(h, w), grid, grid.numpy().view(np.uint64).reshape(p, n, n)


@functools.lru_cache(maxsize=16)
def _centres(n: int) -> np.ndarray:
    """The bin centres ``j + 0.5`` of ``n`` bins, float64 (read only)."""
    out = np.arange(n, dtype=np.float64) + 0.5
    out.flags.writeable = False
    return out


def _pyramid(lum: np.ndarray, shrink_max: float) -> tuple[np.ndarray, list[tuple[int, int]], np.ndarray]:
    """The 2x average-pooled levels :func:`~mi_augment.functional.crops.pyramid_crop` reads boxes up to
    ``shrink_max`` times the proxy from (``F.avg_pool2d``'s sums in its order), laid side by side on one
    zero canvas (compiled where :func:`.compiled.available`); returns the canvas, the levels' shapes and their
    column offsets."""
    shapes = [lum.shape]
    while min(shapes[-1]) >= 2 and shrink_max >= 2.0 ** len(shapes):
        shapes.append((shapes[-1][0] // 2, shapes[-1][1] // 2))
    widths = [sw for _, sw in shapes]
    offsets = np.cumsum([0] + widths[:-1])
    if len(shapes) == 1:
        return lum, shapes, offsets
    if compiled.available():
        return compiled.pyramid_canvas(lum, len(shapes)), shapes, offsets
    levels = [lum]
    for _ in shapes[1:]:
        lv = levels[-1]
        hh, ww = lv.shape[0] // 2 * 2, lv.shape[1] // 2 * 2
        levels.append((((lv[0:hh:2, 0:ww:2] + lv[0:hh:2, 1:ww:2]) + lv[1:hh:2, 0:ww:2]) + lv[1:hh:2, 1:ww:2])
                      * _F32(0.25))
    canvas = np.zeros((lum.shape[0], int(offsets[-1]) + widths[-1]), _F32)
    for lv, off in zip(levels, offsets):
        canvas[:lv.shape[0], off:off + lv.shape[1]] = lv
    return canvas, shapes, offsets


def proxies(lum: np.ndarray, boxes: Any, proxy_size: int) -> np.ndarray:
    """The ``(K, proxy_size ** 2)`` float32 proxies of boxes ``(K, 4)`` of a luma plane, bit for bit
    :func:`~mi_augment.functional.crops.pyramid_crop` of the same boxes (one bilinear sample per bin from a 2x
    pooled pyramid): the same sampling positions, by numpy, and the same ``grid_sample`` call.

    Args:
        lum: float32 ``[H, W]`` (:func:`working_luma`).
        boxes: ``(K, 4)`` float32 ``(x1, y1, x2, y2)`` in ``lum``'s pixels. Pass every view's boxes in one
            call, as the torch scorer does: whether the pyramid is used depends on the largest box.
        proxy_size: side of the square proxies.

    Example:
        >>> proxies(np.ones((8, 8), np.float32), np.array([[0, 0, 8, 8]], np.float32), 4).shape
        (1, 16)
    """
    return torch_grid_samples(*proxy_grid(lum, boxes, proxy_size))


def proxy_grid(lum: np.ndarray, boxes: Any, proxy_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Where :func:`proxies` samples: the canvas (``lum``, or its 2x pooled pyramid levels side by side) and the
    separable normalised grid ``(K, 2, proxy_size)`` float32 (columns ``x``, then rows ``y``) of ``grid_sample``
    (bilinear, border, ``align_corners=True``) on it: :func:`~mi_augment.functional.crops.pyramid_crop`'s sampling
    positions, its operations in its order.

    Example:
        >>> canvas, axes = proxy_grid(np.ones((8, 8), np.float32), np.array([[0, 0, 8, 8]], np.float32), 4)
        >>> canvas.shape, axes.shape, axes.dtype  # a box twice the proxy reads the 2x level, beside the image
        ((8, 12), (1, 2, 4), dtype('float32'))
    """
    b = np.asarray(boxes, dtype=_F32).reshape(-1, 4)
    n, (h, w) = int(proxy_size), lum.shape
    step = (b[:, 2:] - b[:, :2]) / _F32(n)  # (P, 2) float32, as torch: the bins' widths and heights
    shrink = step.max(1)  # max(width / n, height / n)
    largest = float(shrink.max())
    if largest <= 1.0:  # pyramid_crop hands these to resized_crop: float64 bin centres
        b64 = b.astype(np.float64)
        # (P, 2, n): x then y of the bin centres, resized_crop's operations in its order
        centres = b64[:, :2, None] + _centres(n) * ((b64[:, 2:] - b64[:, :2]) / n)[:, :, None] - 0.5
        grid = centres * np.array([[2.0 / max(w - 1, 1)], [2.0 / max(h - 1, 1)]]) - 1.0
        if w == 1 or h == 1:  # one pixel wide or tall: the torch kernels' zero grid coordinate
            grid[:, [w == 1, h == 1]] = 0.0
        return lum, grid.astype(_F32)  # rounded to float32, as the torch kernels' .to()
    canvas, shapes, offsets = _pyramid(lum, largest)
    level = np.clip(np.floor(np.log2(np.maximum(shrink, _F32(1.0)))), 0, len(shapes) - 1).astype(np.intp)
    # per box from its level: the scale 2 ** -level, the level's last pixel centre (x, y), its column offset
    scale, last, shift = _level_table(tuple(shapes), tuple(offsets.tolist()))
    # (P, 2, n): x then y in level pixels, clamped to the level's edge pixel centres, x moved to its place, then
    # the grid coordinate: pyramid_crop's float32 operations in its order, in place on one array
    centres = b[:, :2, None] + _centres32(n) * step[:, :, None]
    centres *= scale[level]
    centres -= _F32(0.5)
    np.maximum(centres, _F32(0.0), out=centres)
    np.minimum(centres, last[level], out=centres)
    centres += shift[level]
    wide, high = canvas.shape[1], h
    centres *= np.array([[2.0 / max(wide - 1, 1)], [2.0 / max(high - 1, 1)]], _F32)
    centres -= _F32(1.0)
    if wide == 1 or high == 1:
        centres[:, [wide == 1, high == 1]] = 0.0
    return canvas, centres


@functools.lru_cache(maxsize=16)
def _centres32(n: int) -> np.ndarray:
    """The bin centres ``j + 0.5`` of ``n`` bins, float32 (read only)."""
    out = _centres(n).astype(_F32)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=64)
def _level_table(shapes: tuple[tuple[int, int], ...], offsets: tuple[int, ...]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pyramid level (levels of ``shapes`` at column ``offsets``), float32 and read only: the scale
    ``2 ** -level`` ``(L, 1, 1)``, the last pixel centre ``(width - 1, height - 1)`` ``(L, 2, 1)`` and the shift
    ``(offset, 0)`` ``(L, 2, 1)`` of a box read from it."""
    scale = np.exp2(-np.arange(len(shapes), dtype=_F32)).astype(_F32).reshape(-1, 1, 1)
    last = np.array([[sw - 1, sh - 1] for sh, sw in shapes], _F32).reshape(-1, 2, 1)
    shift = np.array([[off, 0] for off in offsets], _F32).reshape(-1, 2, 1)
    for a in (scale, last, shift):
        a.flags.writeable = False
    return scale, last, shift


def _bin_index(v: np.ndarray, bins: int, non_negative: bool = False) -> np.ndarray:
    """``floor(bins v)`` clamped to ``[0, bins - 1]`` as int32 (clamped in float, then truncated: the floor of
    what is left). ``non_negative``: the caller knows ``v >= 0`` (the lower clamp is skipped)."""
    q = v * _F32(bins) if v.dtype == _F32 else v * float(bins)
    np.minimum(q, bins - 1, out=q)
    if not non_negative:
        np.maximum(q, 0, out=q)
    return q.astype(np.int32)


@functools.lru_cache(maxsize=8)
def xlogx_table(n: int) -> np.ndarray:
    """``c log c`` for the counts ``c = 0 .. n`` (``0 log 0 = 0``), float64, read only: the plug-in MI's terms
    of a table of ``n`` samples.

    Example:
        >>> [round(float(v), 4) for v in xlogx_table(2)]
        [0.0, 0.0, 1.3863]
    """
    c = np.arange(n + 1, dtype=np.float64)
    out = c * np.log(np.maximum(c, 1.0))
    out.flags.writeable = False
    return out


def _mi_of_counts(counts: np.ndarray, n: int) -> np.ndarray:
    """Plug-in MI (nats) of joint count tables ``(P, bins, bins)`` of ``n`` samples each:
    ``H(X) + H(Y) - H(X, Y) = log n + (sum c_xy log c_xy - sum c_x log c_x - sum c_y log c_y) / n``."""
    table, add = xlogx_table(n), np.add.reduce
    joint = add(table.take(counts.reshape(len(counts), -1)), 1)
    return math.log(n) + (joint - add(table.take(add(counts, 2)), 1) - add(table.take(add(counts, 1)), 1)) / n


def _joint_counts(qx: np.ndarray, qy: np.ndarray, bins: int) -> np.ndarray:
    """Joint count tables ``(P, bins, bins)`` of bin indices ``qy (..., N)`` (``P`` problems) and ``qx``
    (broadcast against ``qy``): one ``bincount`` for all."""
    problems = math.prod(qy.shape[:-1])
    cells = problems * bins * bins
    index = np.multiply(qx, bins, dtype=np.intp if cells >= 2 ** 31 else np.int32)
    index = index + qy
    index += _problem_offsets(qy.shape[:-1], bins * bins, index.dtype)
    return np.bincount(index.ravel(), minlength=cells).reshape(problems, bins, bins)


@functools.lru_cache(maxsize=32)
def _problem_offsets(shape: tuple[int, ...], cells: int, dtype: Any) -> np.ndarray:
    """``(*shape, 1)`` read-only offsets ``problem * cells`` that put each problem's joint bins apart."""
    out = (np.arange(math.prod(shape), dtype=dtype) * cells).reshape(shape + (1,))
    out.flags.writeable = False
    return out


def histogram_mi(x: np.ndarray, y: np.ndarray, bins: int = 16) -> np.ndarray:
    """Plug-in MI (nats) of paired samples in [0, 1] on a ``bins x bins`` grid (``floor(bins v)``, clamped to
    the edge bins): ``mi_augment.mi.histogram_mi(x, y, bins, range=(0, 1))`` for one image's problems.

    Args:
        x, y: ``(..., N)`` float samples.
        bins: bins per axis (>= 2).

    Shape:
        - Input: :math:`(..., N)`. Output: :math:`(...)`, float64.

    Example:
        >>> v = np.linspace(0, 1, 64, dtype=np.float32)
        >>> round(float(histogram_mi(v, v, 4)), 4)  # log 4
        1.3863
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape or x.ndim < 1 or x.shape[-1] < 2:
        raise ValueError(f"x and y must have the same shape (..., N) with N >= 2, got {x.shape} and {y.shape}")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    bins, n = int(bins), x.shape[-1]
    qx, qy = (_bin_index(v.reshape(-1, n), bins) for v in (x, y))
    return _mi_of_counts(_joint_counts(qx, qy, bins), n).reshape(x.shape[:-1])


def candidate_scores(image: np.ndarray, boxes: Any, proxy_size: int = 32, bins: int = 16,
                     min_scale: float = 0.08) -> np.ndarray:
    """Scores ``(V - 1, K)`` of one image's candidates ``boxes (V, K, 4)``: the histogram MI between view 0's
    proxy ``k`` and partner view ``p``'s proxy ``k``, as ``MIPairTransform.score`` computes with its default
    pixel-MI scorer and no perturbation model (within 1e-4 nats).

    Args:
        image: uint8 ``[H, W, C]``.
        boxes: ``(V, K, 4)`` candidate boxes in image pixels (``PairCandidates.boxes[i]``).
        proxy_size: side of the proxies (``MIPairTransform.proxy_size``).
        bins: histogram bins per axis.
        min_scale: ``MIPairTransform.scale[0]``.

    Shape:
        - Output: :math:`(V - 1, K)`, float64.

    Example:
        >>> img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        >>> box = np.array([[[0, 0, 16, 16]], [[0, 0, 16, 16]]], np.float32)
        >>> candidate_scores(img, box).shape
        (1, 1)
    """
    b = np.asarray(boxes.detach().cpu().numpy() if isinstance(boxes, torch.Tensor) else boxes, dtype=_F32)
    if b.ndim != 3 or b.shape[0] < 2 or b.shape[2] != 4:
        raise ValueError(f"boxes must be (V, K, 4) with V >= 2 views, got shape {b.shape}")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    v, k = b.shape[:2]
    lum, fx, fy = working_luma(image, proxy_size, min_scale)
    flat = b.reshape(v * k, 4)
    if fx != 1.0 or fy != 1.0:
        flat = flat * np.array([fx, fy, fx, fy], _F32)
    # every view's boxes in one call, as the torch scorer: the largest box decides the sampling path
    canvas, axes = proxy_grid(lum, flat, proxy_size)
    if compiled.available():  # the same samples, bins and tables in one compiled pass
        return compiled.pair_scores(canvas, axes, v, k, int(bins))
    levels = _bin_levels_(torch_grid_samples(canvas, axes), int(bins)).reshape(v, k, -1)
    return _mi_of_counts(_pair_counts(levels, int(bins)), levels.shape[-1]).reshape(v - 1, k)


def _bin_levels_(v: np.ndarray, bins: int) -> np.ndarray:
    """:func:`_bin_index` of float32 samples ``v >= 0`` (bilinear samples of a luma in [0, 1], non-negative
    weights) in place, as float32 whole numbers: ``floor(min(bins v, bins - 1))``, the float32 product as there.
    Returns ``v``."""
    np.multiply(v, _F32(bins), out=v)
    np.minimum(v, _F32(bins - 1), out=v)
    return np.floor(v, out=v)


def _pair_counts(levels: np.ndarray, bins: int) -> np.ndarray:
    """Joint count tables ``((V - 1) K, bins, bins)`` of view 0's bin levels against each partner view's,
    ``levels (V, K, N)`` float32 whole numbers (:func:`_bin_levels_`): the tables' cell of every sample as
    ``bins * x + y`` plus its problem's offset, computed in float32 while that is exact (fewer than ``2 ** 24``
    cells), then one ``bincount``. The tables :func:`_joint_counts` makes of the integer indices."""
    cells = (levels.shape[0] - 1) * levels.shape[1] * bins * bins
    if cells >= 2 ** 24:  # float32 no longer exact: the integer form
        q = levels.astype(np.int64)
        return _joint_counts(q[0], q[1:], bins)
    index = levels[0] * _F32(bins)
    index = levels[1:] + index
    index += _problem_offsets(index.shape[:-1], bins * bins, np.float32)
    return np.bincount(index.astype(np.intp).ravel(), minlength=cells).reshape(-1, bins, bins)
