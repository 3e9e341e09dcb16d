"""Estimating an :class:`~mi_augment.perturbations.IlluminationModel` from video clips or exposure stacks.

Video: pairs ``(t, t + gap)`` for each configured gap, motion-compensated by
:func:`~mi_augment.perturbations.fitting.alignment.align_pair` (pairs that fail, including hard cuts, are
rejected). Stacks: consecutive shots, not aligned unless ``ExposureStack(align=True)``. Each pair is fitted by
:func:`~mi_augment.perturbations.fitting.robust.estimate_pair` and judged against the model's thresholds.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...core.validation import check_finite
from ..base import Estimates
from ..illumination import brightness_log_gain, invert_vector
from .alignment import align_pair
from .provenance import describe_file
from .robust import PairEstimate, estimate_pair

if TYPE_CHECKING:
    from ..illumination import IlluminationModel

__all__ = ["ExposureStack", "estimate_illumination", "fit_illumination"]

_STILL_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass
class ExposureStack:
    """Aligned images of one scene at different exposures, ordered (e.g. brightest first).

    Wrap a tensor (uint8 or float in [0, 1]) or a list of images so that
    :meth:`~mi_augment.perturbations.IlluminationModel.fit` treats it as a stack (pairs of consecutive shots,
    no motion compensation unless ``align=True``) instead of as a video clip. ``fit(data, kind="stack")``
    does the wrapping.

    Args:
        images: the shots.
        align: motion-compensate consecutive shots before fitting them.

    Shape:
        - images: :math:`(N, C, H, W)` or a list of :math:`(C, H, W)`, ``C`` = 1 or 3.

    Example:
        >>> ExposureStack(torch.rand(4, 3, 16, 16)).align
        False
    """

    images: Any
    align: bool = False


class _OneThread:
    """Run torch on one thread inside the block: estimation is many small tensor ops, for which extra
    threads only add contention (several times slower on a busy 2-core machine). Restores the setting."""

    def __enter__(self) -> None:
        self._saved = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self._saved)


def _downscale(x: Tensor, max_side: int | None) -> Tensor:
    """Area-downscale a float ``(T, C, H, W)`` batch so its longer side is at most ``max_side``."""
    h, w = x.shape[-2:]
    if max_side is None or max(h, w) <= max_side:
        return x
    s = max_side / max(h, w)
    return F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))), mode="area")


def _as_float_frames(x: Any, name: str) -> Tensor:
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError(f"{name} is empty")
        x = torch.stack([torch.as_tensor(t) for t in x])
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor) or x.ndim != 4:
        raise ValueError(f"{name} must be a (T, C, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have 1 or 3 channels (T, C, H, W), got {x.shape[1]} "
                         f"(shape {tuple(x.shape)})")
    if x.shape[0] == 0 or x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise TypeError(f"{name} must be uint8 or float in [0, 1], got {x.dtype}")
    check_finite(x, name)
    return x.float()


def _sources(data: Any) -> list[tuple[str, Any]]:
    """Flatten ``data`` into ``(name, clip-or-stack)`` items without decoding anything yet."""
    if isinstance(data, ExposureStack):
        return [("stack", data)]
    if isinstance(data, (str, os.PathLike)):
        return [(Path(data).name, Path(data))]
    if isinstance(data, (Tensor, np.ndarray)):
        return [("clip", data)]
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError("no data given: the list of clips is empty")
        out = []
        for i, item in enumerate(data):
            for name, src in _sources(item):
                out.append((f"{name}[{i}]" if name in ("clip", "stack") else name, src))
        return out
    raise TypeError(f"cannot fit an IlluminationModel on {type(data).__name__}; give a video path, a (T, C, H, W) "
                    "tensor, a list of them, or an ExposureStack")


def _load_frames(cfg: dict[str, Any], name: str, src: Any) -> Tensor:
    if isinstance(src, Path):
        from ...video.io import read_video

        if src.suffix.lower() in _STILL_SUFFIXES:
            raise ValueError(f"{src} is a still image; for an exposure stack pass ExposureStack(images) "
                             "(e.g. mi_augment.datasets.samples.load_exposure_stack())")
        src = read_video(src, max_side=cfg["max_side"], max_frames=cfg.get("max_frames"))
    frames = _as_float_frames(src.images if isinstance(src, ExposureStack) else src, name)
    return _downscale(frames, cfg["max_side"])


def _pairs(cfg: dict[str, Any], n_frames: int, stack: bool) -> list[tuple[int, int]]:
    if stack:
        return [(i, i + 1) for i in range(n_frames - 1)]
    pairs = []
    for gap in cfg["gaps"]:
        if gap >= n_frames:
            continue
        count = min(cfg["pairs_per_gap"], n_frames - gap)
        anchors = np.unique(np.round(np.linspace(0, n_frames - 1 - gap, count)).astype(int))
        pairs += [(int(t), int(t) + gap) for t in anchors]
    return pairs


def _rejection(est: PairEstimate | None, cfg: dict[str, Any], stack: bool) -> str | None:
    """Why a pair's fit is not used as an observation, or None when it is."""
    if est is None:
        return "too few usable pixels"
    if est.inlier_fraction < cfg["min_inliers"]:
        return "poor fit (too few inliers)"
    if est.residual_scale > cfg["max_residual"]:
        return "poor fit (scene changed)"
    change = float(brightness_log_gain(est.log_gain[None], torch.tensor([[est.log_gamma]])))
    if not stack and abs(change) > cfg["max_log_gain"]:
        return "implausible change for a static scene"
    if not 0.25 < math.exp(est.log_gamma) < 4.0:
        return "implausible gamma"
    return None


def _fit_pair(cfg: dict[str, Any], ref: Tensor, tgt: Tensor, stack: bool,
              align: bool) -> tuple[PairEstimate | None, str | None]:
    """One pair's estimate and, when it is not used, why."""
    valid = None
    if align:
        aligned = align_pair(ref, tgt, min_correlation=cfg["min_correlation"])
        if aligned is None:
            return None, "alignment failed or hard cut"
        ref, tgt, valid, _ = aligned
    est = estimate_pair(ref, tgt, cfg["shading_degree"], valid, cfg["dark"], cfg["saturated"])
    return est, _rejection(est, cfg, stack)


def _estimate_source(cfg: dict[str, Any], name: str, src: Any, progress: bool,
                     rows: list[Tensor], where: list[tuple[str, int, int]], rejected: Counter) -> dict[str, Any]:
    """Append the accepted pairs of one clip or stack to ``rows`` / ``where``; returns its bookkeeping."""
    stack = isinstance(src, ExposureStack)
    frames = _load_frames(cfg, name, src)
    if frames.shape[0] < 2:
        raise ValueError(f"{name}: needs at least 2 frames to estimate illumination changes, got "
                         f"{frames.shape[0]} (a one-frame video or a stack of one image)")
    pairs = _pairs(cfg, frames.shape[0], stack)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pairs), desc=f"illumination {name}", leave=False)
    used_before = len(rows)
    for i, j in pairs:
        est, reason = _fit_pair(cfg, frames[i], frames[j], stack, not stack or src.align)
        if reason is not None:
            rejected[reason] += 1
        else:
            rows.append(est.vector())
            where.append((name, i, j))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    info: dict[str, Any] = {"pairs": len(pairs), "used": len(rows) - used_before,
                            "frames": int(frames.shape[0]), "analysed_size": [int(s) for s in frames.shape[-2:]]}
    if isinstance(src, Path):
        info["file"] = describe_file(src)
    return info


def estimate_illumination(model: IlluminationModel, data: Any, progress: bool = False) -> Estimates:
    """Per-pair photometric changes from video or exposure stacks (see the module docstring).

    Args:
        model: supplies the settings (``model.config``: gaps, thresholds, ``max_side``, ``max_frames``).
        data: a video path, a clip tensor, an :class:`ExposureStack`, or a list mixing these.
        progress: show a progress bar per clip.

    Returns:
        :class:`~mi_augment.perturbations.Estimates` whose ``details`` hold ``rejected_reasons``,
        ``n_pairs_used``, per-source ``sources`` (pairs, used, frames, analysed size, and for files the
        name, size and SHA-256), ``max_side_used`` and ``observations`` (``(source, i, j)`` per row;
        inverse rows have ``j < i``).

    Shape:
        - vectors: :math:`(N, 4 + S)`.
    """
    cfg = model.config
    rows: list[Tensor] = []
    where: list[tuple[str, int, int]] = []
    rejected: Counter[str] = Counter()
    per_source: dict[str, dict[str, Any]] = {}
    with _OneThread():
        for name, src in _sources(data):
            per_source[name] = _estimate_source(cfg, name, src, progress, rows, where, rejected)
    n_pairs = len(rows)
    vectors = torch.stack(rows) if rows else torch.zeros(0, 4 + model.shading_size)
    if cfg["symmetric"] and n_pairs:
        vectors = torch.cat([vectors, invert_vector(vectors)])
        where = where + [(s, j, i) for s, i, j in where]
    details = {"rejected_reasons": dict(rejected), "sources": per_source, "symmetric": cfg["symmetric"],
               "n_pairs_used": n_pairs, "observations": where,
               "max_side_used": max(max(s["analysed_size"]) for s in per_source.values())}
    return Estimates(vectors=vectors, n_used=vectors.shape[0], n_rejected=sum(rejected.values()), details=details)


def fit_illumination(model: IlluminationModel, data: Any, progress: bool = False,
                     kind: str = "auto") -> IlluminationModel:
    """Estimate per-pair illumination changes from ``data`` and fit ``model``'s density to them.

    Args:
        model: an :class:`~mi_augment.perturbations.IlluminationModel` with ``groups=["photometric"]``.
        data: see :func:`estimate_illumination`.
        progress: show progress bars.
        kind: ``"auto"`` / ``"video"`` (tensors are clips) or ``"stack"`` (wrap ``data`` in
            :class:`ExposureStack`).

    Returns:
        ``model``, fitted. Raises ``ValueError`` when fewer pairs than
        :func:`~mi_augment.perturbations.fitting.provenance.minimum_observations` are usable.
    """
    if kind not in ("auto", "video", "stack"):
        raise ValueError(f"kind must be 'auto', 'video' or 'stack', got {kind!r}")
    if "photometric" not in model.config["groups"] or "jitter" in model.config["groups"]:
        raise ValueError("fit estimates gain, gamma and shading only; use groups=['photometric'] "
                         f"(this model has groups={model.config['groups']})")
    if kind == "stack" and not isinstance(data, ExposureStack):
        data = ExposureStack(data)
    return model.fit_estimates(estimate_illumination(model, data, progress=progress))
