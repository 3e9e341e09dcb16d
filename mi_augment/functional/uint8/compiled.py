"""Compiled kernels of the CPU uint8 scorer (numba): the working luma, the pooled pyramid, and the bilinear samples of
the candidates' proxies with their histogram bins, joint count tables and MI, each in one compiled pass instead of
a ``grid_sample`` call and ~20 numpy calls. In a DataLoader worker's K = 8 call that is a third of the call at
32 px and a seventh at 224 px (docs/benchmarks.md, round 9).

The samples are those of torch's CPU ``grid_sample`` (bilinear, border padding, ``align_corners=True``) bit for bit:
the same float32 operations in the same order, with the fused multiply-adds torch's vectorised kernel is compiled
to (``((v_nw * nw + v_ne * ne) + v_sw * sw) + v_se * se`` as three ``fma``). That is a property of how torch was
built for this CPU, so it is checked, not assumed: before its first use in a process the compiled sampler is run
against ``torch.grid_sampler`` on probe grids (borders, whole-pixel coordinates, random points), and where one
sample differs by one bit the scorer keeps its numpy + torch form and warns (:func:`status` says why). The luma and
the pyramid are the numpy forms' float32 operations (the luma for all 2 ** 24 colours). The MI is summed in float64
in another order than numpy's pairwise sums: the scores agree with the numpy form within 1e-12 nats.

numba is a dependency of mi_augment. Where it cannot be installed, or with ``kernel_options(compiled_kernels=False)``,
:func:`mi_augment.functional.uint8.candidate_scores` computes the same scores with numpy and torch, slower. numba
caches the compiled code on disk (its ``cache=True``: ``__pycache__`` beside this file, else numba's user cache
directory), so a DataLoader worker loads it (~0.5 s with the probe) instead of compiling it again (~2 s).
"""

from __future__ import annotations

import threading
import types
import warnings
from typing import Any

import numpy as np

__all__ = ["available", "status", "luma", "pyramid_canvas", "grid_samples", "pair_scores"]

_LOCK = threading.Lock()
_STATE: dict[str, Any] = {}  # "kernels": the compiled functions, or None; "why": the reason they are not used


def _compile() -> tuple[Any, str]:
    """The compiled kernels (a namespace), or None and why not."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return None, "numba is not installed (pip install numba)"
    try:  # numba's own failures (a broken install, NUMBA_DISABLE_JIT, a compiler error) leave the numpy form
        from ._numba_kernels import grid_samples, luma, pair_scores, pyramid_canvas

        kernels = types.SimpleNamespace(grid_samples=grid_samples, pair_scores=pair_scores, luma=luma,
                                        pyramid_canvas=pyramid_canvas)
        mismatch = _probe(kernels)
    except Exception as error:  # noqa: BLE001 - any of them: the scores come from numpy and torch instead
        return None, f"numba could not compile or run the kernels ({type(error).__name__}: {error})"
    if mismatch is not None:
        return None, f"the compiled sampler differs from torch's grid_sample on this machine ({mismatch})"
    return kernels, ""


def _xlogx(n: int) -> np.ndarray:
    from .scoring import xlogx_table  # the numpy scorer's own table: the same float64 values

    return xlogx_table(n)


def _probe(kernels: Any) -> str | None:
    """Where the compiled sampler and ``torch.grid_sampler`` differ on probe grids (None: nowhere): canvases of
    1 x 1 up to 64 x 31 pixels, grids through the borders, beyond them (NaN and infinities too), on whole pixels and
    at random; the reference is the numpy + torch scorer's own ``grid_sample`` call."""
    from .scoring import torch_grid_samples

    rng = np.random.default_rng(20261207)
    for h, w in ((1, 1), (1, 7), (6, 1), (2, 2), (37, 53), (64, 31)):
        canvas = rng.random((h, w), dtype=np.float32)
        n = 24
        ends = np.array([-1.0, 1.0, -1.5, 1.5, 0.0, np.nan, np.inf, -np.inf], np.float32)
        whole_x = (np.arange(n, dtype=np.float32) % max(w, 1)) * np.float32(2.0 / max(w - 1, 1)) - np.float32(1.0)
        whole_y = (np.arange(n, dtype=np.float32) % max(h, 1)) * np.float32(2.0 / max(h - 1, 1)) - np.float32(1.0)
        axes = (rng.random((6, 2, n), dtype=np.float32) * np.float32(2.4) - np.float32(1.2)).astype(np.float32)
        axes[0, :, :8], axes[1, 0], axes[1, 1] = ends, whole_x, whole_y
        mine = kernels.grid_samples(canvas, axes)
        ref = torch_grid_samples(canvas, axes)
        differ = mine.view(np.uint32) != ref.view(np.uint32)
        if differ.any():
            return f"{int(differ.sum())} of {differ.size} samples on a {h} x {w} canvas"
    return None


def _kernels() -> Any:
    """The compiled kernels where they may be used in this process (compiled and probed once), else None."""
    if "kernels" not in _STATE:
        with _LOCK:
            if "kernels" not in _STATE:
                kernels, why = _compile()
                if kernels is None and not why.startswith("numba is not installed"):
                    warnings.warn(f"mi_augment: the compiled uint8 scorer is off: {why}; scoring with numpy and "
                                  "torch instead (the same scores, slower)", RuntimeWarning, stacklevel=3)
                _STATE["why"], _STATE["kernels"] = why, kernels
    return _STATE["kernels"]


def available() -> bool:
    """Whether :func:`mi_augment.functional.uint8.candidate_scores` uses these kernels: numba is installed, the
    compiled sampler matched torch's ``grid_sample`` on this machine, and ``kernel_options(compiled_kernels=...)``
    is on. The first call compiles (or loads numba's cache) and probes: about a second the first time on a machine.

    Example:
        >>> isinstance(available(), bool)
        True
    """
    from ...core.options import current

    return current().compiled_kernels and _kernels() is not None


def status() -> str:
    """Why the compiled kernels are or are not used, in words.

    Example:
        >>> isinstance(status(), str)
        True
    """
    from ...core.options import current

    if _kernels() is None:
        return f"not used: {_STATE['why']}"
    if not current().compiled_kernels:
        return "not used: kernel_options(compiled_kernels=False)"
    return "used: numba kernels, probed against torch's grid_sample on this machine"


def _need() -> Any:
    kernels = _kernels()
    if kernels is None:
        raise RuntimeError(f"the compiled uint8 kernels are not available: {_STATE['why']}")
    return kernels


def _checked(canvas: Any, axes: Any) -> tuple[np.ndarray, np.ndarray]:
    canvas, axes = np.asarray(canvas), np.asarray(axes)
    if canvas.dtype != np.float32 or canvas.ndim != 2 or 0 in canvas.shape:
        raise ValueError(f"canvas must be a non-empty float32 [H, W] array, got {canvas.dtype} {canvas.shape}")
    if axes.dtype != np.float32 or axes.ndim != 3 or axes.shape[1] != 2 or 0 in axes.shape:
        raise ValueError(f"axes must be a float32 (P, 2, n) array of grid columns and rows, got {axes.dtype} "
                         f"{axes.shape}")
    return np.ascontiguousarray(canvas), np.ascontiguousarray(axes)


def grid_samples(canvas: Any, axes: Any) -> np.ndarray:
    """``grid_sample`` (bilinear, border, ``align_corners=True``) of ``canvas [H, W]`` on the separable grids
    ``axes (P, 2, n)`` (normalised columns ``x``, then rows ``y``): ``(P, n * n)`` float32, row by row, torch's
    samples bit for bit (where :func:`available`). Raises RuntimeError where the kernels are not available.

    Example:
        >>> if available():
        ...     v = grid_samples(np.array([[0, 1]], np.float32), np.zeros((1, 2, 1), np.float32))
        ...     print(float(v[0, 0]))
        ... else:
        ...     print(0.5)
        0.5
    """
    canvas, axes = _checked(canvas, axes)
    return _need().grid_samples(canvas, axes)


def pair_scores(canvas: Any, axes: Any, views: int, candidates: int, bins: int = 16) -> np.ndarray:
    """The scores ``(views - 1, candidates)`` of one image's proxies, sampled from ``canvas`` on ``axes``
    (:func:`grid_samples`; the proxies of view ``v``'s candidate ``k`` are row ``v * candidates + k``): the
    histogram MI (``bins`` per axis, ``floor(bins * sample)`` clamped to the last bin) of view 0's proxy ``k``
    against partner view ``p``'s. Raises RuntimeError where the kernels are not available.

    Example:
        >>> if available():
        ...     axes = np.zeros((2, 2, 4), np.float32)
        ...     print(pair_scores(np.ones((3, 3), np.float32), axes, 2, 1).shape)
        ... else:
        ...     print((1, 1))
        (1, 1)
    """
    canvas, axes = _checked(canvas, axes)
    views, candidates, bins = int(views), int(candidates), int(bins)
    if views < 2 or candidates < 1 or views * candidates != axes.shape[0]:
        raise ValueError(f"axes must hold views * candidates = {views} * {candidates} grids (views >= 2), got "
                         f"{axes.shape[0]}")
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    n = axes.shape[2]
    return _need().pair_scores(canvas, axes, views, candidates, bins, _xlogx(n * n))


def luma(image: Any) -> np.ndarray:
    """The float32 luma ``[H, W]`` of a uint8 image ``[H, W, C]`` (C = 1 or 3): the values of
    :func:`mi_augment.functional.uint8.luma` (``rgb_to_grayscale`` of ``image / 255``, bit for bit for all 2 ** 24
    colours) in one compiled pass. Raises RuntimeError where the kernels are not available.

    Example:
        >>> if available():
        ...     print(float(luma(np.full((1, 1, 3), 255, np.uint8))[0, 0]))
        ... else:
        ...     print(1.0)
        1.0
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3) or 0 in image.shape:
        raise ValueError(f"image must be a non-empty uint8 [H, W, C] array with C = 1 or 3, got {image.dtype} "
                         f"{image.shape}")
    from .scoring import luma_tables  # the numpy scorer's tables, made once

    unit, red, _, _ = luma_tables()
    return _need().luma(np.ascontiguousarray(image), unit, red, np.float32(0.587), np.float32(0.114))


def pyramid_canvas(lum: Any, levels: int) -> np.ndarray:
    """``lum [H, W]`` float32 and its next ``levels - 1`` 2x average-pooled levels side by side on one zero
    canvas ``[H, W + W // 2 + ...]`` (``F.avg_pool2d``'s sums, in its order, each level from the one before): the
    canvas :func:`mi_augment.functional.uint8.proxy_grid` samples large boxes from. Raises RuntimeError where
    the kernels are not available.

    Example:
        >>> if available():
        ...     print(pyramid_canvas(np.ones((4, 4), np.float32), 3).shape)
        ... else:
        ...     print((4, 7))
        (4, 7)
    """
    lum, levels = np.asarray(lum), int(levels)
    if lum.dtype != np.float32 or lum.ndim != 2 or 0 in lum.shape:
        raise ValueError(f"lum must be a non-empty float32 [H, W] array, got {lum.dtype} {lum.shape}")
    h, w = lum.shape
    if levels < 1 or min(h, w) < 2 ** (levels - 1):
        raise ValueError(f"levels must be >= 1 and leave the last level at least 1 x 1 pixels, got {levels} for "
                         f"{lum.shape}")
    width = sum(w >> level for level in range(levels))
    return _need().pyramid_canvas(np.ascontiguousarray(lum), levels, width)
