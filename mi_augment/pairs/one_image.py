"""One image on the CPU uint8 backend (a DataLoader worker's call): :func:`views_uint8` runs a pair's four steps
for one PIL / numpy / uint8 CPU tensor image with the transform's public ``plan`` and ``choose``, scores with
:func:`mi_augment.functional.uint8.candidate_scores`, renders with :func:`~mi_augment.pairs.render.render_views_uint8`
and :func:`run_view_pipelines_uint8`, and returns the views as the input's type. The draws and replay are the
torch path's (:mod:`mi_augment.pairs.render`); only the kernels differ, within the backend's documented tolerance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core.options import current
from ..core.params import GatedParams
from ..core.random import as_float32, rand
from ..functional import uint8
from .choose import replay_info
from .plan import PairCandidates, PairParams
from .render import render_views_uint8, renders_uint8
from .scorers import PixelMIScorer

__all__ = ["score_uint8", "run_view_pipelines_uint8", "views_uint8"]


def score_uint8(scorer: Any, models: Sequence[Any], image: np.ndarray, candidates: PairCandidates,
                min_scale: float) -> Tensor | None:
    """The candidates' scores ``(1, V - 1, K)`` from one uint8 image ``[H, W, C]``
    (:func:`mi_augment.functional.uint8.candidate_scores`, within 1e-4 nats of
    :func:`~mi_augment.pairs.score.score_candidates`), for the default pixel-MI histogram scorer on the
    unperturbed image; None otherwise (the caller scores with the torch scorer)."""
    if (models or type(scorer) is not PixelMIScorer or scorer.estimator != "histogram"
            or scorer.options != {"range": (0.0, 1.0)}):
        return None
    scores = uint8.candidate_scores(image, candidates.boxes[0], scorer.proxy_size, scorer.bins, min_scale)
    return torch.from_numpy(scores).to(torch.float32)[None]

def run_view_pipelines_uint8(views: Sequence[np.ndarray], pipelines: Sequence[Sequence[Any]], replay: tuple = (),
                             generator: torch.Generator | None = None, record: bool = True
                             ) -> tuple[list[np.ndarray], tuple[tuple[GatedParams, ...], ...] | None]:
    """:func:`~mi_augment.pairs.render.run_view_pipelines` on uint8 views ``[h, w, C]``: every transform draws
    what its ``apply_gated`` draws for one image (its params, then the ``p`` gate), or replays ``replay[v]``,
    and renders with its :data:`~mi_augment.functional.uint8.TRANSFORM_KERNELS` kernel. Needs
    :func:`~mi_augment.pairs.render.renders_uint8`.

    When every transform draws uniforms (``uniforms_per_sample``), all views' draws are one ``rand`` call (the
    same numbers, in the same order, as the per-transform calls) mapped by each transform's
    ``row_from_uniforms`` on Python numbers; the :class:`~mi_augment.core.params.GatedParams` (for replay and
    ``return_info``) are built from the same uniforms by ``params_from_uniforms`` only when ``record``.

    Returns:
        the views, and per view the pipeline's ``GatedParams`` (None when not ``record``).
    """
    if replay:
        return _replay_pipelines(views, pipelines, replay)
    counts = [[t.uniforms_per_sample() for t in pipeline] for pipeline in pipelines]
    if any(n is None for c in counts for n in c):  # a transform that draws otherwise: its own calls, in order
        return _draw_pipelines(views, pipelines, generator)
    u = rand((sum(n + 1 for c in counts for n in c),), generator, "cpu").tolist()
    out, drawn, at = [], [], 0
    for view, pipeline, ns in zip(views, pipelines, counts):
        mine = []
        for t, n in zip(pipeline, ns):
            draws, gate, at = u[at:at + n], u[at + n], at + n + 1
            applied = gate < as_float32(t.p)  # the torch gate compares in float32
            if applied:
                view = uint8.TRANSFORM_KERNELS[type(t)](t, view, t.row_from_uniforms(draws))
            if record:
                made = t.params_from_uniforms(torch.tensor([draws], dtype=torch.float32).view(1, n))
                mine.append(GatedParams(made, torch.tensor([applied])))
        out.append(view)
        drawn.append(tuple(mine))
    return out, tuple(drawn) if record else None


def _replay_pipelines(views: Sequence[np.ndarray], pipelines: Sequence[Sequence[Any]], replay: tuple
                      ) -> tuple[list[np.ndarray], tuple[tuple[GatedParams, ...], ...]]:
    if len(replay) != len(views):
        raise ValueError(f"params.views holds {len(replay)} pipelines, this transform makes {len(views)} views")
    out = []
    for v, (view, pipeline) in enumerate(zip(views, pipelines)):
        saved = list(replay[v])
        if len(saved) != len(pipeline):
            raise ValueError(f"params.views[{v}] holds {len(saved)} draws, view {v}'s pipeline has {len(pipeline)}")
        for t, gated in zip(pipeline, saved):
            gated.check_batch(1)
            if bool(gated.applied[0]):
                view = uint8.TRANSFORM_KERNELS[type(t)](t, view, gated.params.row(0))
        out.append(view)
    return out, tuple(tuple(r) for r in replay)


def _draw_pipelines(views: Sequence[np.ndarray], pipelines: Sequence[Sequence[Any]],
                    generator: torch.Generator | None) -> tuple[list[np.ndarray], tuple[tuple[GatedParams, ...], ...]]:
    out, drawn = [], []
    for view, pipeline in zip(views, pipelines):
        mine = []
        for t in pipeline:  # apply_gated's draws for a batch of one, in its order
            shape = torch.empty(1, view.shape[2], *view.shape[:2])
            gated = GatedParams(t.make_params(shape, generator=generator), rand((1,), generator, "cpu") < t.p)
            if bool(gated.applied[0]):
                view = uint8.TRANSFORM_KERNELS[type(t)](t, view, gated.params.row(0))
            mine.append(gated)
        out.append(view)
        drawn.append(tuple(mine))
    return out, tuple(drawn)


def _uint8_input(image: Any) -> tuple[np.ndarray, Callable[[np.ndarray], Any]] | None:
    """One image the uint8 backend takes, as ``[H, W, C]`` uint8 and the function that returns a view as the
    input's type: a PIL L / RGB image, a numpy uint8 ``[H, W]`` / ``[H, W, 1 or 3]`` array or a plain CPU uint8
    ``[C, H, W]`` tensor (1 or 3 channels). None for anything else."""
    pil = type(image).__module__.startswith("PIL")
    shape = (image.size[1], image.size[0]) if pil else getattr(image, "shape", None)
    if shape is None or len(shape) < 2 or 0 in tuple(shape):
        return None  # the torch path names what is wrong (an empty image, another type)
    if type(image) is torch.Tensor:  # a plain tensor (tv_tensors keep the torch path)
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] not in (1, 3) or image.device.type != "cpu":
            return None
        return np.ascontiguousarray(image.permute(1, 2, 0).numpy()), uint8.hwc_to_tensor
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
            return None
        return (image[:, :, None], lambda v: v[:, :, 0]) if image.ndim == 2 else (image, lambda v: v)
    if pil and getattr(image, "mode", None) in ("L", "RGB"):
        from PIL import Image

        mode = image.mode
        return uint8.to_hwc_uint8(image), lambda v: Image.fromarray(v[:, :, 0] if mode == "L" else v, mode)
    return None

def views_uint8(transform: Any, image: Any, generator: torch.Generator | None = None,
                params: PairParams | None = None, return_info: bool = False) -> tuple[tuple[Any, ...], Any] | None:
    """``transform(image, ...)`` of one PIL / numpy / uint8 CPU tensor image on the CPU uint8 backend: the same
    steps (``transform.plan``, scores, ``transform.choose``), the same draws and replay as the torch path, the
    views rendered by :func:`render_views_uint8` and :func:`run_view_pipelines_uint8` and returned as the
    input's type. Returns ``(views, info)`` (info None unless asked for: the draws' params are built only then), or None where the
    backend does not apply (``kernel_options(uint8_backend=False)``, normalised views, another input type, a
    model or transform without a uint8 kernel, a fixed ``sampling_ratio``, a generator off the CPU).

    Example:
        >>> from mi_augment.transforms import MIPairTransform
        >>> views, info = views_uint8(MIPairTransform(8), np.zeros((16, 16, 3), np.uint8))
        >>> [v.shape for v in views]
        [(8, 8, 3), (8, 8, 3)]
    """
    models, pipelines = transform.perturbations, transform.view_transforms
    if (not current().uint8_backend or transform.normalize is not None or transform.sampling_ratio != -1
            or (generator is not None and generator.device.type != "cpu") or not renders_uint8(models, pipelines)):
        return None
    converted = _uint8_input(image)
    if converted is None:
        return None
    hwc, restore = converted
    info = None
    if params is None:
        shape = torch.empty(1, hwc.shape[2], *hwc.shape[:2])  # plan reads only the shape
        candidates = transform.plan(shape, generator)
        scores = None
        if transform.policy.needs_scores:
            scores = score_uint8(transform.scorer, models, hwc, candidates, transform.scale[0])
            if scores is None:
                scores = transform.score(uint8.hwc_to_tensor(hwc)[None], candidates)
        info = transform.choose(candidates, scores, generator)
        params = info.params
    elif not isinstance(params, PairParams) or params.n_views != transform.n_views or len(
            params.perturbations) != len(models):
        return None  # the torch path reports what is wrong with these params
    else:
        params.check_batch(1)
        params = params.to("cpu")
    views = render_views_uint8(models, hwc, params, transform.size)
    if any(pipelines):
        views, drawn = run_view_pipelines_uint8(views, pipelines, params.views, generator, record=return_info)
        if return_info:
            params = dataclasses.replace(params, views=drawn)
    if not return_info:
        info = None
    elif info is not None:
        info = dataclasses.replace(info, params=params)
    else:
        info = replay_info(params)
    return tuple(restore(v) for v in views), info
