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
from ..core.random import as_float32s, cpu_uniforms, rand
from ..core.validation import UNIT_RANGE_TOLERANCE, to_float_batch
from ..functional import uint8
from .choose import replay_info
from .plan import PairCandidates, PairParams, one_image_draws, one_image_from_uniforms
from .render import frame_rows, render_rows_uint8, render_views_uint8, renders_uint8, view_warp_rows
from .scorers import PixelMIScorer

__all__ = ["score_uint8", "pipeline_draws", "run_view_pipelines_uint8", "views_uint8", "views_uint8_batch",
           "BATCH_UINT8_MIN_PIXELS"]


def score_uint8(scorer: Any, models: Sequence[Any], image: np.ndarray, candidates: PairCandidates,
                min_scale: float, index: int = 0) -> Tensor | None:
    """The candidates' scores ``(1, V - 1, K)`` from one uint8 image ``[H, W, C]``, image ``index`` of
    ``candidates`` (:func:`mi_augment.functional.uint8.candidate_scores`, within 1e-4 nats of
    :func:`~mi_augment.pairs.score.score_candidates`), for the default pixel-MI histogram scorer on the
    unperturbed image; None otherwise (the caller scores with the torch scorer)."""
    if models or not _scores_on_uint8(scorer):
        return None
    scores = uint8.candidate_scores(image, candidates.boxes[index], scorer.proxy_size, scorer.bins, min_scale)
    return torch.from_numpy(scores).to(torch.float32)[None]


def _scores_on_uint8(scorer: Any) -> bool:
    """Whether :func:`mi_augment.functional.uint8.candidate_scores` gives ``scorer``'s scores: the default
    pixel-MI histogram scorer (on an image without perturbation models)."""
    return (type(scorer) is PixelMIScorer and scorer.estimator == "histogram"
            and scorer.options == {"range": (0.0, 1.0)})


def pipeline_draws(pipelines: Sequence[Sequence[Any]]) -> int | None:
    """How many uniform numbers :func:`run_view_pipelines_uint8` draws for one image's views (every transform's
    ``uniforms_per_sample`` and its gate), or None when a transform draws otherwise.

    Example:
        >>> from mi_augment.transforms import MIPairTransform
        >>> pipeline_draws(MIPairTransform.simclr(32, blur=False).view_transforms)  # 2 x (8 + 1 and 0 + 1)
        20
    """
    counts = [t.uniforms_per_sample() for pipeline in pipelines for t in pipeline]
    return None if any(n is None for n in counts) else sum(n + 1 for n in counts)


def run_view_pipelines_uint8(views: Sequence[np.ndarray], pipelines: Sequence[Sequence[Any]], replay: tuple = (),
                             generator: torch.Generator | None = None, record: bool = True,
                             uniforms: Sequence[float] | None = None
                             ) -> tuple[list[np.ndarray], tuple[tuple[GatedParams, ...], ...] | None]:
    """:func:`~mi_augment.pairs.render.run_view_pipelines` on uint8 views ``[h, w, C]``: every transform draws
    what its ``apply_gated`` draws for one image (its params, then the ``p`` gate), or replays ``replay[v]``,
    and renders with its :data:`~mi_augment.functional.uint8.TRANSFORM_KERNELS` kernel. Needs
    :func:`~mi_augment.pairs.render.renders_uint8`.

    When every transform draws uniforms (``uniforms_per_sample``), all views' draws are one ``torch.rand``-equal draw (the
    same numbers, in the same order, as the per-transform calls) mapped by each transform's
    ``row_from_uniforms`` on Python numbers; the :class:`~mi_augment.core.params.GatedParams` (for replay and
    ``return_info``) are built from the same uniforms by ``params_from_uniforms`` only when ``record``.
    ``uniforms``: those :func:`pipeline_draws` numbers drawn beforehand (the tail of a larger draw).

    Returns:
        the views, and per view the pipeline's ``GatedParams`` (None when not ``record``).
    """
    if uniforms is not None and not record and not replay:  # a one-image call's own numbers: the lean loop
        return _run_drawn(views, pipelines, uniforms), None
    counts = [[t.uniforms_per_sample() for t in pipeline] for pipeline in pipelines]
    if replay or any(n is None for c in counts for n in c):  # a replay, or a transform that draws otherwise:
        if uniforms is not None:
            raise ValueError("uniforms drawn beforehand need pipelines that draw uniforms and no replay")
        batches, drawn = _batch_pipelines([[view] for view in views], pipelines, replay, generator)  # a batch of 1
        return [batch[0] for batch in batches], drawn
    total = sum(n + 1 for c in counts for n in c)
    if uniforms is not None and len(uniforms) != total:
        raise ValueError(f"uniforms must hold the pipelines' {total} numbers, got {len(uniforms)}")
    if uniforms is not None:
        u = uniforms
    elif generator is None or generator.device.type == "cpu":
        u = cpu_uniforms(total, generator)
    else:  # drawn on the generator's device, as apply_gated draws
        u = rand((total,), generator, "cpu").tolist()
    ps = iter(as_float32s([t.p for pipeline in pipelines for t in pipeline]))  # the torch gate compares in float32
    out, drawn, at = [], [], 0
    for view, pipeline, ns in zip(views, pipelines, counts):
        mine = []
        for t, n in zip(pipeline, ns):
            draws, gate, at = u[at:at + n], u[at + n], at + n + 1
            applied = gate < next(ps)
            if applied:
                view = uint8.TRANSFORM_KERNELS[type(t)](t, view, t.row_from_uniforms(draws))
            if record:
                made = t.params_from_uniforms(torch.tensor([draws], dtype=torch.float32, device="cpu").view(1, n))
                mine.append(GatedParams(made, torch.tensor([applied], device="cpu")))
        out.append(view)
        drawn.append(tuple(mine))
    return out, tuple(drawn) if record else None


def _run_drawn(views: Sequence[np.ndarray], pipelines: Sequence[Sequence[Any]],
               uniforms: Sequence[float]) -> list[np.ndarray]:
    """:func:`run_view_pipelines_uint8` of ``uniforms`` drawn beforehand, nothing recorded: each transform's
    numbers, then its gate (compared with its ``p`` in float32, as the torch gate), in one pass with no count
    tables (a DataLoader worker's call: ~3 % of a K = 8 call at 32 px, docs/benchmarks.md round 8)."""
    ps, kernels, drawn = (as_float32s([t.p for pipeline in pipelines for t in pipeline]), uint8.TRANSFORM_KERNELS,
                          uint8.DRAWN_ROW_KERNELS)
    out, at, i, size = [], 0, 0, len(uniforms)
    for view, pipeline in zip(views, pipelines):
        for t in pipeline:
            n = t.uniforms_per_sample()
            if n is None:
                raise ValueError("uniforms drawn beforehand need pipelines that draw uniforms and no replay")
            if at + n >= size:
                break
            if uniforms[at + n] < ps[i]:  # its own drawn row: the unchecked kernel where one is registered
                view = (drawn.get(type(t)) or kernels[type(t)])(t, view, t.row_from_uniforms(uniforms[at:at + n]))
            at, i = at + n + 1, i + 1
        out.append(view)
    if at != size or i != len(ps):
        raise ValueError(f"uniforms must hold the pipelines' {pipeline_draws(pipelines)} numbers, got {size}")
    return out


def _view_rows(model: Any, views: int, generator: torch.Generator | None, strength: float) -> dict[str, list]:
    """``model``'s draws for one image's views as Python rows (its ``sample_view_rows``, else the same draws by
    ``sample_views``): what the plan step draws for a batch of one."""
    rows = model.sample_view_rows(views, generator, strength)
    if rows is None:
        drawn = model.sample_views(1, views, generator=generator, device="cpu", strength=strength)
        rows = {name: t.tolist()[0] for name, t in drawn.as_dict().items()}
    return rows


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
        return _hwc(image.numpy()), uint8.hwc_to_tensor
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
    input's type (a call that asks for no info, unscored, or scored by the default pixel-MI scorer without models,
    draws the plan step's own numbers as Python values: the models' by their ``sample_view_rows``, then the flips
    and boxes, the policy's number and the pipelines' numbers in one draw (:func:`~mi_augment.core.random.cpu_uniforms`,
    :func:`~mi_augment.pairs.plan.one_image_from_uniforms`); it chooses by the policy's ``select_one``, renders
    from the rows (:func:`~mi_augment.pairs.render.render_rows_uint8`) and builds no params).
    Returns ``(views, info)`` (info None unless asked for: the draws' params are built only then), or None where the
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
    scored = transform.policy.needs_scores
    lean = not scored or (not models and _scores_on_uint8(transform.scorer))
    if params is None and not return_info and lean and (not models or current().fast_paths):
        # nothing recorded; unscored, or scored by the uint8 scorer without models: the plan's draws as Python
        # values (the models' first, then the flips and boxes), the scores from the numpy boxes, the policy on
        # Python floats (what choose does for one image), the views rendered from the rows; no PairCandidates,
        # scores tensor or PairInfo is built
        n_views, k = transform.n_views, transform.n_candidates if scored else 1
        fields = [_view_rows(model, n_views, generator, strength)
                  for model, strength in zip(models, transform.strengths)]
        # the uniform numbers of the flips and boxes, the choice and the pipelines in one draw (the same numbers
        # as the steps' own rand calls), as far as each step takes its numbers drawn beforehand
        before = not scored or transform.policy.takes_drawn_uniform
        n_box, n_choose = one_image_draws(transform.sampler, n_views, k), int(scored and before)
        n_pipe = (pipeline_draws(pipelines) or 0) if before and any(pipelines) else 0
        u = cpu_uniforms(n_box + n_choose + n_pipe, generator)
        flips, rows = one_image_from_uniforms(transform.sampler, n_views, transform.flip, *hwc.shape[:2], u[:n_box])
        index = 0
        if scored:
            boxes = np.array(rows, np.float32).reshape(n_views, k, 4)
            scorer = transform.scorer
            scores = uint8.candidate_scores(hwc, boxes, scorer.proxy_size, scorer.bins, transform.scale[0])
            # choose's mean over the partner views, in float32 as torch computes it (one partner: the scores, which
            # select_one rounds to float32 itself)
            row = torch.from_numpy(scores).float().mean(0) if n_views > 2 else scores[0]
            index, _ = transform.policy.select_one(row.tolist(), generator, "cpu", u[n_box] if n_choose else None)
        chosen = [rows[i * k + index] for i in range(n_views)]
        if models:
            framed = frame_rows(models, fields, chosen, *hwc.shape[:2])
            views = render_rows_uint8(models, hwc, chosen, flips, framed, transform.size,
                                      view_warp_rows(models, framed, transform.size))
        else:
            # the sampler's float32 rows and the transform's checked size: nothing for the kernel to check
            views = [uint8.resized_crop(hwc, box, transform.size, flip, check=False)
                     for box, flip in zip(chosen, flips)]
        if any(pipelines):
            views, _ = run_view_pipelines_uint8(views, pipelines, (), generator, record=False,
                                                uniforms=u[n_box + n_choose:] if n_pipe else None)
        return tuple(restore(v) for v in views), None
    if params is None:
        shape = torch.empty(1, hwc.shape[2], *hwc.shape[:2], device="cpu")  # plan reads only the shape and device
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


#: the smallest view (pixels) for which a CPU batch is rendered image by image on the uint8 kernels: below it the
#: batched torch kernels are faster per pair (measured by benchmarks/throughput.py, docs/benchmarks.md)
BATCH_UINT8_MIN_PIXELS = 48 * 48


def views_uint8_batch(transform: Any, images: Any, generator: torch.Generator | None = None,
                      params: PairParams | None = None, return_info: bool = False
                      ) -> tuple[tuple[Tensor, ...], Any] | None:
    """``transform(images, ...)`` of a plain CPU batch ``[B, C, H, W]`` (uint8, or float in [0, 1]) with the
    draws of the torch batch path (``plan``, ``score`` and ``choose`` on the batch, then per view and transform
    ``make_params`` for the batch and its gate, all drawn before any pixel is touched) and each image rendered
    start to end by the uint8 kernels while its data is in cache (:func:`~mi_augment.pairs.render.render_views_uint8`,
    the view pipelines' kernels on the rows of the batch's params, written into the output batch): at larger
    views several times faster than the float kernels on the CPU. A float batch is rendered from its levels
    (rounded to 1/255; each image's range checked as it is read, unless scoring checked the batch) and returned
    as float: within the backend's tolerance of the torch kernels. Returns None where it does not apply (as :func:`views_uint8`, or views smaller than
    :data:`BATCH_UINT8_MIN_PIXELS`, a tv_tensor, another device or dtype, a batch that requires grad).

    Example:
        >>> from mi_augment.transforms import MIPairTransform
        >>> views, _ = views_uint8_batch(MIPairTransform.simclr(64), torch.zeros(2, 3, 80, 80, dtype=torch.uint8))
        >>> [tuple(v.shape) for v in views], views[0].dtype
        ([(2, 3, 64, 64), (2, 3, 64, 64)], torch.uint8)
    """
    models, pipelines = transform.perturbations, transform.view_transforms
    if (type(images) is not torch.Tensor or images.ndim != 4 or images.device.type != "cpu"
            or images.dtype not in (torch.uint8, torch.float32) or images.shape[0] == 0 or images.requires_grad
            or transform.size[0] * transform.size[1] < BATCH_UINT8_MIN_PIXELS
            or not current().uint8_backend or transform.normalize is not None or transform.sampling_ratio != -1
            or (generator is not None and generator.device.type != "cpu") or not renders_uint8(models, pipelines)
            or (params is not None and not isinstance(params, PairParams))):
        return None
    if images.shape[1] not in (1, 3) or 0 in images.shape[2:]:
        return None  # the torch path names what is wrong
    b, info = images.shape[0], None
    scored = params is None and transform.policy.needs_scores
    x = to_float_batch(images, "images", (1, 3))[0] if scored and images.dtype != torch.uint8 else None
    if params is None:
        candidates = transform.plan(images, generator)  # plan reads only the shape and device
        scores = None
        if scored:
            scores = _batch_scores_uint8(transform, images, candidates) if x is None else None
            if scores is None:
                scores = transform.score(images.float().div_(255.0) if x is None else x, candidates)
        info = transform.choose(candidates, scores, generator)
        params = info.params
    params.check_batch(b)
    params = params.to("cpu")
    drawn = _draw_pipelines(b, (b, images.shape[1], *transform.size), pipelines, params.views, generator)
    if any(pipelines):
        params = dataclasses.replace(params, views=drawn)
    steps = _pipeline_steps(pipelines, drawn)
    geometry = dataclasses.replace(params, views=())  # what render_views_uint8 reads, indexed per image
    source = (images if x is None else x).numpy()  # [B, C, H, W]: uint8 levels, or float in [0, 1]
    check = x is None and images.dtype != torch.uint8  # an unchecked float batch: each image's range below
    out: list[np.ndarray] = []
    for i in range(b):  # one image at a time, start to end: its data stays in cache
        if check:
            _check_levels(images, i)
        views = render_views_uint8(models, _hwc(_levels(source[i])), geometry.index(i), transform.size)
        for v, view in enumerate(views):
            view = _apply_steps(view, steps[v], i)
            if not out:
                out = [_new_batch(b, view.shape, images.dtype) for _ in views]
            _write_chw(out[v], i, view)
    views_out = tuple(torch.from_numpy(o) for o in out)
    if not return_info:
        return views_out, None
    return views_out, dataclasses.replace(info, params=params) if info is not None else replay_info(params)


def _batch_scores_uint8(transform: Any, images: Tensor, candidates: PairCandidates) -> Tensor | None:
    """A uint8 batch's scores ``(B, V - 1, K)`` image by image from its levels (:func:`score_uint8`, the scores a
    one-image call computes), where the compiled uint8 scorer runs (:func:`mi_augment.functional.uint8.compiled.available`;
    without it the batched torch scorer is the faster one); None where the transform's scorer or models need the
    torch scorer."""
    if transform.perturbations or not _scores_on_uint8(transform.scorer) or not uint8.compiled.available():
        return None
    source = images.numpy()
    return torch.cat([score_uint8(transform.scorer, (), _hwc(source[i]), candidates, transform.scale[0], i)
                      for i in range(images.shape[0])])


def _check_levels(images: Tensor, i: int) -> None:
    """Image ``i`` of a float batch lies in [0, 1] within :data:`UNIT_RANGE_TOLERANCE` (the levels' saturating
    conversion is then the torch path's clamp); else the torch path's own check raises its message."""
    lo, hi = torch.aminmax(images[i])
    if not (float(lo) >= -UNIT_RANGE_TOLERANCE and float(hi) <= 1.0 + UNIT_RANGE_TOLERANCE):  # NaN fails too
        to_float_batch(images, "images", (1, 3))
        raise AssertionError("unreachable: to_float_batch accepts what this check refused")  # pragma: no cover


def _hwc(chw: np.ndarray) -> np.ndarray:
    """``[C, H, W]`` uint8 as a contiguous ``[H, W, C]`` (``cv2.merge``: ~30x faster than a strided copy)."""
    return np.ascontiguousarray(chw.transpose(1, 2, 0)) if chw.shape[0] == 1 else uint8.opencv().merge(list(chw))


def _levels(chw: np.ndarray) -> np.ndarray:
    """A ``[C, H, W]`` image as uint8 levels: itself, or float in [0, 1] times 255 rounded half to even and
    saturated (``cv2.convertScaleAbs``, one pass; values a tolerance below 0 round to 0)."""
    if chw.dtype == np.uint8:
        return chw
    c, h, w = chw.shape
    return uint8.opencv().convertScaleAbs(chw.reshape(c * h, w), alpha=255.0).reshape(c, h, w)


def _new_batch(b: int, shape: tuple[int, ...], dtype: torch.dtype) -> np.ndarray:
    """An empty ``[B, C, h, w]`` array for views of ``shape`` ``[h, w, C]``: uint8, or float32."""
    h, w, c = shape
    return np.empty((b, c, h, w), np.uint8 if dtype == torch.uint8 else np.float32)


def _write_chw(target: np.ndarray, i: int, view: np.ndarray) -> None:
    """Uint8 view ``[h, w, C]`` into ``target[i]`` (``[C, h, w]``): its channels split by one ``cv2.mixChannels``
    into the planes, and for a float target read through one ``cv2.LUT`` of the levels' quotients (the same
    float32 values as torch's ``x / 255``; ~2x faster than a strided copy and a torch division)."""
    cv2, (c, h, w) = uint8.opencv(), target.shape[1:]
    planes = target[i] if target.dtype == np.uint8 else np.empty((c, h, w), np.uint8)
    cv2.mixChannels([view], list(planes), [k for ch in range(c) for k in (ch, ch)])
    if target.dtype != np.uint8:
        cv2.LUT(planes.reshape(c * h, w), _QUOTIENTS, dst=target[i].reshape(c * h, w))


#: the float32 value of each level, ``level / 255`` as torch divides (``cv2.LUT``'s table)
_QUOTIENTS = (np.arange(256, dtype=np.float32) / np.float32(255.0)).reshape(1, 256)
_QUOTIENTS.flags.writeable = False


def _batch_pipelines(views: list[list[np.ndarray]], pipelines: Sequence[Sequence[Any]], replay: tuple,
                     generator: torch.Generator | None) -> tuple[list[list[np.ndarray]], tuple]:
    """Each view's pipeline on a batch of uint8 views (one list per view): the batch's draws
    (:func:`_draw_pipelines`), then each image's kernels on the params' rows."""
    n, (h, w, c) = len(views[0]), views[0][0].shape
    drawn = _draw_pipelines(n, (n, c, h, w), pipelines, replay, generator)
    for v, steps in enumerate(_pipeline_steps(pipelines, drawn)):
        views[v] = [_apply_steps(view, steps, j) for j, view in enumerate(views[v])]
    return views, drawn


def _draw_pipelines(n: int, shape: tuple[int, ...], pipelines: Sequence[Sequence[Any]], replay: tuple,
                    generator: torch.Generator | None) -> tuple:
    """Per view and transform, ``n`` images' draws as ``apply_gated`` draws them (``make_params`` for a batch of
    ``shape``, then the gate), or ``replay[v]`` (checked against the pipelines). The backend's transforms keep
    a view's shape, so every transform of a pipeline draws for the views' shape."""
    if replay and len(replay) != len(pipelines):
        raise ValueError(f"params.views holds {len(replay)} pipelines, this transform makes {len(pipelines)} views")
    drawn, like = [], torch.empty(shape, device="cpu")  # make_params reads only the shape and device
    for v, pipeline in enumerate(pipelines):
        saved = list(replay[v]) if replay else None
        if saved is not None and len(saved) != len(pipeline):
            raise ValueError(f"params.views[{v}] holds {len(saved)} draws, view {v}'s pipeline has {len(pipeline)}")
        mine = []
        for i, t in enumerate(pipeline):
            if saved is not None:
                gated = saved[i]
                gated.check_batch(n)
            else:
                gated = GatedParams(t.make_params(like, generator=generator),
                                    rand((n,), generator, "cpu") < t.p)
            mine.append(gated)
        drawn.append(tuple(mine))
    return tuple(drawn)


def _pipeline_steps(pipelines: Sequence[Sequence[Any]], drawn: tuple) -> list[list[tuple]]:
    """Per view, the ``(kernel, transform, applied, rows)`` of each transform: which images it applies to and
    every image's params as Python numbers (:meth:`~mi_augment.core.params.Params.rows`, built once)."""
    return [[(uint8.TRANSFORM_KERNELS[type(t)], t, applied, gated.params.rows() if any(applied) else [])
             for t, gated in zip(pipeline, gates) for applied in (gated.applied.tolist(),)]
            for pipeline, gates in zip(pipelines, drawn)]


def _apply_steps(view: np.ndarray, steps: list[tuple], j: int) -> np.ndarray:
    """Image ``j``'s view through its pipeline's ``steps`` (:func:`_pipeline_steps`)."""
    for kernel, t, applied, rows in steps:
        if applied[j]:
            view = kernel(t, view, rows[j])
    return view
