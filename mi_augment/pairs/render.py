"""Step 4 of a pair, *render*: each view's crop, flip and perturbation chain, then its own pipeline.

The one renderer of :class:`~mi_augment.transforms.MIPairTransform`'s views, for one image (a DataLoader
worker's call) and for a batch alike; it calls only public methods of the models and kernels:

* a model that defines ``warp_matrices(params, h, w)`` and ``apply_after_warp(images, params)`` (camera
  motion: a warp, then what follows it) has its warp folded into the crop: each view is sampled once from the
  image through the crop and the warp (:func:`~mi_augment.functional.crop_warp`), so the warp reads the scene
  around the crop, as a moving camera sees it; the model then renders ``apply_after_warp`` (its blur). This
  is the definition of such a model in a pair, whatever ``kernel_options`` says;
* every other model renders its ``apply`` on the view, in chain order;
* then each view's pipeline: an entry with ``apply_gated`` (the transform contract,
  :class:`~mi_augment.transforms.RandomTransform`) draws from the generator and replays exactly; any other
  callable is called as it is.

Draws are per view frame: a model whose params are fractions of the image (motion) defines
``to_view_frame(params, zoom)`` (:func:`in_view_frame`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core.chunks import chunk_rows
from ..core.options import current
from ..core.params import Params
from ..core.random import as_float32, as_float32s
from ..functional import uint8
from ..functional.crops import resized_crop
from ..functional.geometry import motion_blur_kernel, motion_blur_kernel_size, similarity_matrix
from ..functional.shading import shading_fields
from ..functional.warp import crop_warp
from ..perturbations import IlluminationModel, MotionModel
from .plan import PairParams, flatten_views

__all__ = ["folds_warp", "in_view_frame", "render_views", "run_view_pipelines", "view_matrices", "renders_uint8",
           "render_views_uint8", "render_rows_uint8", "view_frame_rows", "frame_rows", "view_warp_rows"]


def folds_warp(model: Any) -> bool:
    """Whether ``model``'s warp is folded into the crop (it defines ``warp_matrices`` and
    ``apply_after_warp``).

    Example:
        >>> from mi_augment.perturbations import IlluminationModel, MotionModel
        >>> folds_warp(MotionModel.default()), folds_warp(IlluminationModel.default())
        (True, False)
    """
    return callable(getattr(model, "warp_matrices", None)) and callable(getattr(model, "apply_after_warp", None))


def in_view_frame(models: Sequence[Any], params: Sequence[Params], boxes: Tensor, height: int,
                  width: int) -> list[Params]:
    """Each model's per-view params ``(B, V, ...)`` in the frame of its view.

    Scoring applies the draws to the whole image and then crops; the views apply them after cropping. A
    model whose params are fractions of the image size (camera motion: translation and blur length)
    defines ``to_view_frame(params, zoom)`` to rescale them by ``zoom = image side / crop side`` ``(B, V)``,
    so a view moves and smears as many scene pixels as the scored crop did."""
    if not models:
        return []
    crop_side = torch.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]).clamp_min(1e-6)
    zoom = max(height, width) / crop_side
    return [model.to_view_frame(p, zoom) if hasattr(model, "to_view_frame") else p
            for model, p in zip(models, params)]


def _warps(models: Sequence[Any], params: Sequence[Params], size: tuple[int, int]) -> Tensor | None:
    """The composed ``(N, 3, 3)`` warps of the folding models (chain order) for ``(N, ...)`` params."""
    out = None
    for model, p in zip(models, params):
        if folds_warp(model):
            m = model.warp_matrices(p, *size).to(torch.float64)
            out = m if out is None else m @ out
    return out


def render_views(models: Sequence[Any], images: Tensor, params: PairParams, size: tuple[int, int],
                 sampling_ratio: int = -1) -> list[Tensor]:
    """The ``V`` views of a float batch before their pipelines: crop, resize and flip each view, fold the warps
    in, then the chain (see the module docs). A few images at a time on the CPU.

    Args:
        models: the perturbation chain (anything with ``apply``; camera models see :func:`folds_warp`).
        images: ``[B, C, H, W]`` float in [0, 1].
        params: the :class:`~mi_augment.pairs.plan.PairParams` to render; ``perturbations`` in the images'
            frame, as planned (:func:`in_view_frame` rescales them).
        size: ``(height, width)`` of every view.
        sampling_ratio: samples per output pixel for large boxes (-1 adapts: area averaging).

    Shape:
        - Output: ``V`` contiguous tensors ``[B, C, *size]``.

    Example:
        >>> from mi_augment.pairs.plan import PairParams
        >>> p = PairParams(torch.tensor([[[0.0, 0.0, 8.0, 8.0], [2.0, 2.0, 6.0, 6.0]]]), torch.zeros(1, 2).bool(), ())
        >>> [v.shape for v in render_views((), torch.rand(1, 3, 8, 8), p, (4, 4))]
        [torch.Size([1, 3, 4, 4]), torch.Size([1, 3, 4, 4])]
    """
    images = images.detach()  # a data transform: views carry no gradient
    b, c = images.shape[:2]
    v = params.boxes.shape[1]
    per_view = in_view_frame(models, params.perturbations, params.boxes, *images.shape[-2:])
    padding = next((m.padding_mode for m in models if folds_warp(m) and hasattr(m, "padding_mode")), "reflection")
    views = [images.new_empty(b, c, *size) for _ in range(v)]
    step = chunk_rows(images, v * c * size[0] * size[1])
    for r0 in range(0, b, step):
        rows = slice(r0, min(b, r0 + step))
        m = rows.stop - r0
        flat = [flatten_views(p.index(rows)) for p in per_view]
        warps = _warps(models, flat, size)
        if warps is None:
            crops = resized_crop(images[rows], params.boxes[rows], size, flip=params.flip[rows],
                                 sampling_ratio=sampling_ratio)
        else:
            crops = crop_warp(images[rows], params.boxes[rows], size, warps.view(m, v, 3, 3),
                              flip=params.flip[rows], padding_mode=padding, sampling_ratio=sampling_ratio)
        out = crops.flatten(0, 1)
        for model, p in zip(models, flat):
            out = model.apply_after_warp(out, p) if folds_warp(model) else model.apply(out, p)
        out = out.view(m, v, *out.shape[1:])
        for i in range(v):
            torch.clamp(out[:, i], 0.0, 1.0, out=views[i][rows])
    return views


def run_view_pipelines(views: Sequence[Tensor], pipelines: Sequence[Sequence[Callable]], replay: tuple = (),
                       generator: torch.Generator | None = None
                       ) -> tuple[tuple[Tensor, ...], tuple[tuple[Params, ...], ...]]:
    """Each view through its own pipeline. Entries with ``apply_gated`` draw from ``generator`` (or replay
    ``replay[v]``, the draws an earlier call returned) and write into the views they own; other callables are
    called as they are.

    Args:
        views: ``V`` float batches ``[B, C, h, w]``, owned by the caller.
        pipelines: one sequence of callables per view.
        replay: per view, the draws of an earlier call (``PairParams.views``); empty draws anew.
        generator: the generator the replayable entries draw from.

    Returns:
        the views and each view's draws (one :class:`~mi_augment.core.params.GatedParams` per replayable entry).

    Example:
        >>> views, drawn = run_view_pipelines([torch.ones(1, 3, 4, 4)] * 2, [[lambda v: v * 0.5], []])
        >>> views[0].max().item(), views[1].max().item(), drawn
        (0.5, 1.0, ((), ()))
    """
    if replay and len(replay) != len(views):
        raise ValueError(f"params.views holds {len(replay)} pipelines, this transform makes {len(views)} views")
    out, drawn = [], []
    for v, (view, pipeline) in enumerate(zip(views, pipelines)):
        saved = iter(replay[v]) if replay else None
        mine: list[Params] = []
        owned = True  # the rendered view and our transforms' outputs are this call's own
        for i, t in enumerate(pipeline):
            if not callable(getattr(t, "apply_gated", None)):
                before, view = view, t(view)
                owned = owned and view is before
                continue
            gated = None
            if saved is not None:
                gated = next(saved, None)
                if gated is None:
                    raise ValueError(f"params.views[{v}] holds fewer draws than view {v}'s pipeline has "
                                     f"random transforms (at view_transforms[{v}][{i}])")
            before, (view, gated) = view, t.apply_gated(view, gated, generator, inplace=owned)
            if view is not before:  # a kernel's new tensor (an expanded or strided one is not written into)
                owned = view.is_contiguous()
            mine.append(gated)
        out.append(view)
        drawn.append(tuple(mine))
    return tuple(out), tuple(drawn)


def view_matrices(models: Sequence[Any], params: PairParams, height: int, width: int,
                  size: tuple[int, int]) -> Tensor:
    """Where each view's pixels come from: ``(B, V, 3, 3)`` float64 matrices from input pixels to view pixels
    (pixel centres at integer coordinates, :mod:`mi_augment.functional.geometry`'s convention) for images of
    ``height x width``: the crop resized to ``size``, the flip, then the warp of every model of the chain
    that defines ``warp_matrices(params, h, w)``, in the view's frame. Boxes and points of a view move by
    these.

    Example:
        >>> from mi_augment.pairs.plan import PairParams
        >>> p = PairParams(torch.tensor([[[0.0, 0.0, 8.0, 8.0], [0.0, 0.0, 4.0, 4.0]]]), torch.zeros(1, 2).bool(), ())
        >>> view_matrices((), p, 8, 8, (4, 4))[0, 1, 0, 0].item()
        1.0
    """
    boxes = params.boxes.to(torch.float64)
    b, v = boxes.shape[:2]
    h, w = size
    sx = w / (boxes[..., 2] - boxes[..., 0]).clamp_min(1e-12)
    sy = h / (boxes[..., 3] - boxes[..., 1]).clamp_min(1e-12)
    m = torch.zeros(b, v, 3, 3, dtype=torch.float64, device=boxes.device)
    m[..., 0, 0], m[..., 1, 1], m[..., 2, 2] = sx, sy, 1.0
    m[..., 0, 2] = sx * (0.5 - boxes[..., 0]) - 0.5  # box edges map to view edges; centres sit at +0.5
    m[..., 1, 2] = sy * (0.5 - boxes[..., 1]) - 0.5
    flip = torch.tensor([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64,
                        device=boxes.device)
    m = torch.where(params.flip.to(boxes.device)[..., None, None], flip @ m, m)
    per_view = in_view_frame(models, params.perturbations, params.boxes, height, width)
    for model, drawn in zip(models, per_view):
        hook = getattr(model, "warp_matrices", None)
        if hook is not None:
            warp = hook(flatten_views(drawn.to(boxes.device)), h, w).to(torch.float64).view(b, v, 3, 3)
            m = warp @ m
    return m


# ---- the CPU uint8 backend: one PIL / numpy / uint8 tensor image, the same params ------------------------------
def renders_uint8(models: Sequence[Any], pipelines: Sequence[Sequence[Any]]) -> bool:
    """Whether the CPU uint8 backend renders this chain and these view pipelines: the models are the library's
    :class:`~mi_augment.perturbations.IlluminationModel` and :class:`~mi_augment.perturbations.MotionModel`
    (exact types), and every pipeline entry's class has a kernel in
    :data:`mi_augment.functional.uint8.TRANSFORM_KERNELS`.

    Example:
        >>> from mi_augment.perturbations import MotionModel
        >>> renders_uint8([MotionModel.default()], [[], []]), renders_uint8([], [[lambda v: v]])
        (True, False)
    """
    return (all(type(m) in (IlluminationModel, MotionModel) for m in models)
            and all(type(t) in uint8.TRANSFORM_KERNELS for p in pipelines for t in p))




def view_frame_rows(models: Sequence[Any], params: PairParams, height: int, width: int) -> list[dict[str, list]]:
    """One image's draws in the frame of each view as Python numbers: :func:`in_view_frame` then
    :func:`~mi_augment.pairs.plan.flatten_views` for params with ``B = 1``, per model a dict of its fields, each
    a list over the ``V`` views (a number or a list per view, as ``tolist`` gives them).

    A :class:`~mi_augment.perturbations.MotionModel`'s float32 draws are rescaled on Python floats, each
    float32 product and quotient of ``in_view_frame`` and ``to_view_frame`` rounded as torch rounds it (the
    same numbers, without a dozen tensor ops per call); other models, other dtypes and
    ``kernel_options(fast_paths=False)`` take the tensor functions.

    Example:
        >>> from mi_augment.pairs.plan import PairParams
        >>> from mi_augment.perturbations import MotionModel
        >>> p = PairParams(torch.tensor([[[0.0, 0.0, 8.0, 8.0], [0.0, 0.0, 4.0, 4.0]]]), torch.zeros(1, 2).bool(),
        ...                (MotionModel.default().identity_params(2).map(lambda t: (t + 0.5).view(1, 2, -1)),))
        >>> view_frame_rows([MotionModel.default()], p, 8, 8)[0]["blur_length"]
        [[0.5], [1.0]]
    """
    boxes = params.boxes
    fast = current().fast_paths and boxes.dtype == torch.float32 and boxes.shape[0] == 1
    out, framed = [], []
    for model, p in zip(models, params.perturbations):
        fields = {name: getattr(p, name) for name in _field_names(type(p))}
        raw = fast and type(model) is MotionModel and all(v.dtype == torch.float32 for v in fields.values())
        if raw or not hasattr(model, "to_view_frame"):
            out.append({k: v.tolist()[0] for k, v in fields.items()})
        else:
            framed_p = flatten_views(in_view_frame([model], [p], boxes, height, width)[0])
            out.append({f.name: getattr(framed_p, f.name).tolist() for f in dataclasses.fields(framed_p)})
        framed.append(not raw)
    return out if all(framed) else frame_rows(models, out, boxes.tolist()[0], height, width, framed)


def frame_rows(models: Sequence[Any], rows: list[dict[str, list]], boxes: list[list[float]], height: int, width: int,
               framed: Sequence[bool] | None = None) -> list[dict[str, list]]:
    """One image's float32 draws as Python rows (per model a dict of its fields, each a list over the ``V``
    views, as ``tolist`` gives them) moved into the frame of each view (``boxes``: the ``V`` views' boxes): a
    :class:`~mi_augment.perturbations.MotionModel`'s translation and blur length times the view's float32
    zoom, each product rounded as ``in_view_frame``'s torch ops round it; other models' rows as they are
    (``framed[i]``: model ``i``'s rows are in the frame already). Used under the fast paths only.

    Example:
        >>> from mi_augment.perturbations import MotionModel
        >>> rows = [{"translation": [[0.5, 0.0]], "rotation": [[0.0]], "log_scale": [[0.0]],
        ...          "blur_length": [[0.25]], "blur_angle": [[0.0]]}]
        >>> frame_rows([MotionModel.default()], rows, [[0.0, 0.0, 4.0, 4.0]], 8, 8)[0]["translation"]
        [[1.0, 0.0]]
    """
    zooms = None
    out = []
    for i, (model, r) in enumerate(zip(models, rows)):
        if type(model) is MotionModel and not (framed is not None and framed[i]):
            if zooms is None:
                zooms = _zooms(boxes, height, width)
            r = dict(r)
            r["translation"] = [list(as_float32s([x * z for x in t])) for t, z in zip(r["translation"], zooms)]
            r["blur_length"] = [list(as_float32s([x * z for x in b])) for b, z in zip(r["blur_length"], zooms)]
        out.append(r)
    return out


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    """The field names of a params dataclass (``dataclasses.fields`` once per class)."""
    return tuple(f.name for f in dataclasses.fields(cls))


def _zooms(boxes: list[list[float]], height: int, width: int) -> tuple[float, ...]:
    """:func:`in_view_frame`'s float32 ``zoom = max(H, W) / crop side`` of each box (``x1, y1, x2, y2``), on
    Python floats: torch's ``int / tensor`` is ``reciprocal() * int``, each step rounded to float32."""
    sides = as_float32s([v for x1, y1, x2, y2 in boxes for v in (x2 - x1, y2 - y1)])
    tiny = as_float32(1e-6)
    crop = [max(sides[2 * i], sides[2 * i + 1], tiny) for i in range(len(boxes))]
    return as_float32s([r * float(max(height, width)) for r in as_float32s([1.0 / c for c in crop])])


def view_warp_rows(models: Sequence[Any], rows: list[dict[str, list]], size: tuple[int, int],
                   params: PairParams | None = None, image_size: tuple[int, int] | None = None
                   ) -> list[list[list[float]]] | None:
    """Each view's composed ``3 x 3`` warp as nested lists (the folding models' ``warp_matrices`` in chain order,
    as :func:`view_matrices` composes them), a :class:`~mi_augment.perturbations.MotionModel`'s from its
    :func:`view_frame_rows` under the fast paths, another model's from ``params`` (then needed, with the
    ``image_size``); None when no model folds a warp.

    Example:
        >>> from mi_augment.perturbations import MotionModel
        >>> rows = [{"translation": [[0.0, 0.0]], "rotation": [[0.0]], "log_scale": [[0.0]],
        ...          "blur_length": [[0.0]], "blur_angle": [[0.0]]}]
        >>> view_warp_rows([MotionModel.default()], rows, (4, 4))[0][2]
        [0.0, 0.0, 1.0]
    """
    out = None
    for index, (model, r) in enumerate(zip(models, rows)):
        if not folds_warp(model):
            continue
        if type(model) is MotionModel and current().fast_paths:  # warp_matrices' float64 similarity
            mats = [similarity_matrix(ls[0], rot[0], t[0], t[1], *size)
                    for ls, rot, t in zip(r["log_scale"], r["rotation"], r["translation"])]
        else:
            if params is None or image_size is None:
                raise ValueError(f"{type(model).__name__}'s warps need the params and the image size")
            framed = flatten_views(in_view_frame([model], [params.perturbations[index]], params.boxes, *image_size)[0])
            mats = model.warp_matrices(framed, *size).to(torch.float64).tolist()
        out = mats if out is None else [[[sum(m[i][k] * o[k][j] for k in range(3)) for j in range(3)]
                                         for i in range(3)] for m, o in zip(mats, out)]
    return out


def render_views_uint8(models: Sequence[Any], image: np.ndarray, params: PairParams,
                       size: tuple[int, int]) -> list[np.ndarray]:
    """:func:`render_views` of one uint8 image ``[H, W, C]`` on the CPU uint8 backend: each view sampled once
    through its crop, flip and the folded camera warp (:func:`mi_augment.functional.uint8.crop_warp`), then
    the chain (illumination, the motion blur). Needs :func:`renders_uint8`. The draws are read once as
    Python numbers in the views' frames (:func:`view_frame_rows`). A shaded illumination without jitter followed
    by a motion blur is one call (``uint8.apply_illumination``'s ``blur``): the blur on the float values, rounded
    once, as the torch kernels' float chain."""
    h, w = image.shape[:2]
    rows = view_frame_rows(models, params, h, w)
    return render_rows_uint8(models, image, params.boxes.tolist()[0], params.flip.tolist()[0], rows, size,
                             view_warp_rows(models, rows, size, params, (h, w)))


def render_rows_uint8(models: Sequence[Any], image: np.ndarray, boxes: list[list[float]], flips: list[bool],
                      rows: list[dict[str, list]], size: tuple[int, int],
                      warps: list[list[list[float]]] | None = None) -> list[np.ndarray]:
    """:func:`render_views_uint8` from one image's draws as Python numbers: the ``V`` views' boxes and flips, the
    models' :func:`view_frame_rows` and the views' composed warps (:func:`view_warp_rows`; None when no model
    folds one). What a one-image call renders without building params.

    Example:
        >>> render_rows_uint8([], np.zeros((8, 8, 3), np.uint8), [[0.0, 0.0, 8.0, 8.0]] * 2, [False, True], [],
        ...                   (4, 4))[1].shape
        (4, 4, 3)
    """
    padding = next((m.padding_mode for m in models if folds_warp(m)), "reflection")
    # per model, what the V views need, computed once: illumination's draws and shading fields; motion's blur
    # lengths, angles and kernels
    prepared: list[Any] = []
    for model, r in zip(models, rows):
        if type(model) is MotionModel:  # the torch renderer's float32 lengths: clamp, times the longer side
            lengths = as_float32s([max(b, 0.0) * float(max(size)) for b in as_float32s([b[0] for b in r["blur_length"]])])
            angles = as_float32s([a[0] for a in r["blur_angle"]])
            if not all(map(math.isfinite, lengths + angles)):
                raise ValueError("motion blur length and angle must be finite")
            k = motion_blur_kernel_size(max(lengths))  # one size for the views, as motion_blur_kernels makes them
            kernels = [np.array(motion_blur_kernel(n, a, k), np.float32).reshape(k, k) if n > 0 else None
                       for n, a in zip(lengths, angles)]
            prepared.append(("motion", lengths, angles, kernels))
        else:
            roots = None  # the shading fields' 1/2.4 power, exp(s . B / 2.4): uint8.illuminate's field_root
            if any(any(s) for s in r["shading"]):
                roots = shading_fields([[c / 2.4 for c in s] for s in r["shading"]], *size)
            prepared.append(("illumination", SimpleNamespace(**r), roots))
    views = []
    for v, (box, flip) in enumerate(zip(boxes, flips)):
        if warps is None:
            view = uint8.resized_crop(image, box, size, flip)
        else:
            view = uint8.crop_warp(image, box, size, warps[v], flip, padding_mode=padding)
        skip = False
        for ready, after in zip(prepared, prepared[1:] + [None]):
            if skip:
                skip = False
            elif ready[0] == "illumination":
                _, r, roots = ready
                if after is not None and after[0] == "motion" and after[1][v] > 0 and _photometric(r, v):
                    # the blur that follows on the float values, rounded once as the torch kernels' float chain
                    # (apply_illumination's blur)
                    view = uint8.apply_illumination(view, r.log_gain[v], r.log_gamma[v][0], r.shading[v], None,
                                                    roots[v], blur=after[3][v])
                    skip = True
                else:
                    view = uint8.illuminate(view, r, v, None, None if roots is None else roots[v])
            elif ready[1][v] > 0:  # motion: its warp is folded in above; what follows it is the blur
                view = uint8.motion_blur(view, ready[1][v], ready[2][v], kernel=ready[3][v])
        views.append(view)
    return views


def _photometric(rows: SimpleNamespace, v: int) -> bool:
    """Whether view ``v``'s illumination draws are shaded and leave the jitter at identity."""
    return (any(rows.shading[v]) and rows.brightness[v][0] == 1.0 and rows.contrast[v][0] == 1.0
            and rows.saturation[v][0] == 1.0 and rows.hue[v][0] == 0.0)
