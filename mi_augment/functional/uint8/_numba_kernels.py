"""The numba kernels behind :mod:`mi_augment.functional.uint8.compiled` (imported only where numba is installed;
use them through that module, which probes them against torch first)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.core.extending import intrinsic

_OPTIONS = {"nogil": True, "error_model": "numpy", "boundscheck": False}


def _jit(function):
    """``njit`` with numba's on-disk cache, or without it where numba finds no writable place for one (a read-only
    install and home directory): compiled in memory in each process then, ~2 s on first use."""
    try:
        return njit(cache=True, **_OPTIONS)(function)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return njit(cache=False, **_OPTIONS)(function)


@intrinsic
def _fma32(typingctx, a, b, c):  # noqa: ARG001 - numba's intrinsic signature
    """``a * b + c`` rounded once (float32): the fused multiply-add torch's vectorised kernels are compiled to."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):  # noqa: ARG001
        return builder.fma(*args)

    return sig, codegen


@_jit
def _sample_into(canvas, axes, out):
    """torch's CPU ``grid_sample`` (bilinear, border, ``align_corners=True``) of ``canvas`` on the separable grids
    ``axes (P, 2, n)``, written into ``out (P, n * n)``: its float32 operations in its order (unnormalise
    ``(g + 1) * ((size - 1) / 2)``, clip to ``[0, size - 1]``, the floor, the four weights, the neighbours past the
    last row or column read as 0, and the sum as three fused multiply-adds)."""
    h, w = canvas.shape
    p, n = axes.shape[0], axes.shape[2]
    one, zero = np.float32(1.0), np.float32(0.0)
    half_w = np.float32(np.float32(w - 1) / np.float32(2.0))
    half_h = np.float32(np.float32(h - 1) / np.float32(2.0))
    last_w, last_h = np.float32(w - 1), np.float32(h - 1)
    col = np.empty(n, np.int64)
    east = np.empty(n, np.float32)
    west = np.empty(n, np.float32)
    inside = np.empty(n, np.bool_)
    for b in range(p):
        for j in range(n):  # the columns' terms: the same float32 values every row computes
            x = np.float32((axes[b, 0, j] + one) * half_w)
            x = x if x > zero else zero  # NaN to 0, as torch's clamp_min(0, x) (operands in that order)
            x = x if x < last_w else last_w
            xw = np.float32(math.floor(x))
            col[j] = int(xw)
            wt = np.float32(x - xw)
            west[j] = wt
            east[j] = np.float32(one - wt)
            inside[j] = int(xw) + 1 < w
        for i in range(n):
            y = np.float32((axes[b, 1, i] + one) * half_h)
            y = y if y > zero else zero
            y = y if y < last_h else last_h
            yn = np.float32(math.floor(y))
            row = int(yn)
            nd = np.float32(y - yn)
            sd = np.float32(one - nd)
            below = row + 1 < h
            at = i * n
            for j in range(n):
                x0, e, wt = col[j], east[j], west[j]
                v_nw = canvas[row, x0]
                v_ne = canvas[row, x0 + 1] if inside[j] else zero
                v_sw = canvas[row + 1, x0] if below else zero
                v_se = canvas[row + 1, x0 + 1] if (below and inside[j]) else zero
                total = np.float32(v_nw * np.float32(sd * e))
                total = _fma32(v_ne, np.float32(sd * wt), total)
                total = _fma32(v_sw, np.float32(nd * e), total)
                out[b, at + j] = _fma32(v_se, np.float32(nd * wt), total)


@_jit
def grid_samples(canvas, axes):
    out = np.empty((axes.shape[0], axes.shape[2] * axes.shape[2]), np.float32)
    _sample_into(canvas, axes, out)
    return out


@_jit
def pair_scores(canvas, axes, views, candidates, bins, table):
    """Histogram MI of view 0's proxy ``k`` against each partner view's (see ``compiled.pair_scores``)."""
    samples = np.empty((axes.shape[0], axes.shape[2] * axes.shape[2]), np.float32)
    _sample_into(canvas, axes, samples)
    p, m = samples.shape
    scale, top = np.float32(bins), np.float32(bins - 1)
    levels = np.empty((p, m), np.int64)
    for b in range(p):
        for s in range(m):
            q = np.float32(samples[b, s] * scale)  # floor(min(bins v, bins - 1)), v >= 0
            levels[b, s] = int(math.floor(min(q, top))) if q > 0 else 0
    out = np.empty((views - 1, candidates), np.float64)
    counts = np.empty((bins, bins), np.int64)
    log_m = math.log(m)
    for v in range(1, views):
        for k in range(candidates):
            counts[:, :] = 0
            first, other = levels[k], levels[v * candidates + k]
            for s in range(m):
                counts[first[s], other[s]] += 1
            joint = 0.0
            rows = 0.0
            for a in range(bins):
                total = 0
                for c in range(bins):
                    joint += table[counts[a, c]]
                    total += counts[a, c]
                rows += table[total]
            cols = 0.0
            for c in range(bins):
                total = 0
                for a in range(bins):
                    total += counts[a, c]
                cols += table[total]
            out[v - 1, k] = log_m + (joint - rows - cols) / m
    return out


@_jit
def luma(image, unit, red, green_weight, blue_weight):
    """The float32 luma of ``image [H, W, C]`` uint8: ``unit[v]`` for one channel, else
    ``fma(unit[b], blue_weight, fma(unit[g], green_weight, red[r]))`` (``unit[v] = v / 255``, ``red[v]`` its red
    term): the sums of exact products rounded once each, as the numpy tables compute them."""
    h, w, c = image.shape
    out = np.empty((h, w), np.float32)
    for i in range(h):
        for j in range(w):
            if c == 1:
                out[i, j] = unit[image[i, j, 0]]
            else:
                total = _fma32(unit[image[i, j, 1]], green_weight, red[image[i, j, 0]])
                out[i, j] = _fma32(unit[image[i, j, 2]], blue_weight, total)
    return out


@_jit
def pyramid_canvas(lum, levels, width):
    """``lum [H, W]`` and its ``levels - 1`` 2x average-pooled levels side by side on one zero canvas
    ``[H, width]``: each level ``((a + b) + c) + d) * 0.25`` of the even part of the one before (float32, in that
    order, as ``F.avg_pool2d`` sums)."""
    h, w = lum.shape
    canvas = np.zeros((h, width), np.float32)
    canvas[:, :w] = lum
    quarter = np.float32(0.25)
    src, lh, lw = 0, h, w
    for _ in range(levels - 1):
        dst, nh, nw = src + lw, lh // 2, lw // 2
        for i in range(nh):
            for j in range(nw):
                a = canvas[2 * i, src + 2 * j] + canvas[2 * i, src + 2 * j + 1]
                a = np.float32(a + canvas[2 * i + 1, src + 2 * j])
                a = np.float32(a + canvas[2 * i + 1, src + 2 * j + 1])
                canvas[i, dst + j] = np.float32(a * quarter)
        src, lh, lw = dst, nh, nw
    return canvas
