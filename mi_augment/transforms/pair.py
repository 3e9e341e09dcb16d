"""``MIPairTransform``: positive pairs of views chosen among K candidate crop pairs by the information they
share under natural perturbation (see docs/mi_pairs.md).

A composition of four public steps, each replayable, so a training step can run them on a GPU batch with its
own encoder as the scorer:

1. :meth:`MIPairTransform.plan` draws K candidate crop tuples per image (one box per view, RandomResizedCrop
   semantics), one flip flag per view and each view's draw of every perturbation model: a
   :class:`PairCandidates`;
2. :meth:`MIPairTransform.score` scores candidate ``k``: the information view 0's box ``k`` shares with each
   partner view's box ``k`` (``(B, V - 1, K)``; by default histogram MI of their luma on a 32x32 proxy grid
   after each view's perturbation; any scorer, e.g. an encoder's pointwise MI);
3. :meth:`MIPairTransform.choose` lets the policy pick one candidate per image from the mean score over the
   partner views: a :class:`PairInfo` whose ``params`` (:class:`PairParams`) say how to render;
4. :meth:`MIPairTransform.render` renders the views: crop, resize, flip, the perturbation chain, then each
   view's own pipeline (``view_transforms``) with independent draws.

``t(images)`` runs the four steps. With the ``"random"`` policy nothing is scored (K = 1): the views are
plain RandomResizedCrop + flip + perturbation + the view pipelines.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_unflatten  # the pytree utilities torchvision v2 uses
from torchvision import tv_tensors as _tv

from ..core.chunks import chunk_rows
from ..core.options import current
from ..core.params import Params
from ..core.random import rand, sampling_device
from ..core.validation import (
    check_generator,
    check_positive_int,
    check_probability,
    restore,
    restore_views,
    to_float_batch,
)
from ..functional.crops import _bilinear_crop_one
from ..pairs.policies import Policy, make_policy
from ..pairs.sampler import BoxSampler, box_iou_pairs
from ..pairs.scorers import PixelMIScorer, check_scores, render_proxies, scorer_input_kind
from ..perturbations.base import check_strength
from . import _pair_render as R
from .base import _image_leaves

__all__ = ["MIPairTransform", "PairCandidates", "PairInfo", "PairParams"]


@dataclass(frozen=True)
class PairCandidates(Params):
    """What :meth:`MIPairTransform.plan` draws for a batch; leading dim ``B``.

    Attributes:
        boxes: ``(B, V, K, 4)`` candidate boxes ``(x1, y1, x2, y2)`` in input pixels: candidate ``k`` is the
            tuple of view boxes ``boxes[:, :, k]``; view 0 is the anchor.
        flip: ``(B, V)`` bool, mirror each view left-right (after cropping).
        perturbations: one entry per model of the transform's chain (``t.perturbations``), each the params
            of that model for every view, tensors shaped ``(B, V, ...)``.
    """

    boxes: Tensor
    flip: Tensor
    perturbations: tuple[Params, ...]

    @property
    def n_views(self) -> int:
        return int(self.boxes.shape[1])

    @property
    def n_candidates(self) -> int:
        return int(self.boxes.shape[2])


@dataclass(frozen=True)
class PairParams(Params):
    """Everything needed to render the views again (``t(images, params=info.params)``); leading dim ``B``.

    Attributes:
        boxes: ``(B, V, 4)`` crop boxes ``(x1, y1, x2, y2)`` in input pixels, one per view.
        flip: ``(B, V)`` bool, mirror the view left-right (after cropping).
        perturbations: per model of the chain, its per-view params ``(B, V, ...)``.
        views: per view, the params of its pipeline's transforms (one :class:`~mi_augment.core.params.GatedParams`
            per :class:`~mi_augment.transforms.RandomTransform`); empty until the views are rendered.
    """

    boxes: Tensor
    flip: Tensor
    perturbations: tuple[Params, ...]
    views: tuple[tuple[Params, ...], ...] = ()

    @property
    def n_views(self) -> int:
        return int(self.boxes.shape[1])


@dataclass(frozen=True)
class PairInfo:
    """The steps' results for one call (``return_info=True``). ``P = n_views - 1`` partner views.

    Attributes:
        params: the :class:`PairParams` (replay with ``t(images, params=info.params)``).
        candidates: the :class:`PairCandidates` the choice was made among (None for replayed params).
        scores: ``(B, P, K)`` candidate scores (nats for MI scorers); None when nothing was scored.
        keep: ``(B, K)`` bool, the candidates the policy could choose; None when nothing was scored.
        chosen: ``(B,)`` index of the chosen candidate.
        chosen_score: ``(B,)`` its mean score over the partner views (NaN when nothing was scored).
        candidate_iou: ``(B, P, K)`` overlap (IoU) of view 0's box with each partner's, per candidate.
        iou: ``(B, P)`` overlap of the chosen pairs (view 0 with view ``p + 1``).
    """

    params: PairParams
    candidates: PairCandidates | None
    scores: Tensor | None
    keep: Tensor | None
    chosen: Tensor
    chosen_score: Tensor
    candidate_iou: Tensor
    iou: Tensor


def _check_size(size: Any) -> tuple[int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        return check_positive_int(size, "size"), check_positive_int(size, "size")
    try:
        h, w = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be an int or an (height, width) pair, got {size!r}") from None
    return check_positive_int(h, "size[0]"), check_positive_int(w, "size[1]")


def _is_model(value: Any) -> bool:
    return callable(getattr(value, "sample", None)) and callable(getattr(value, "apply", None))


def _resolve_model(value: Any, name: str) -> Any:
    """``"default"`` or a path -> the shipped / saved model; None or False -> disabled (None); a model -> itself."""
    if value is None or value is False:
        return None
    if value is True:
        raise ValueError(f"{name}=True is ambiguous: pass 'default' for the shipped model, None to leave it out, "
                         "or a model instance")
    if isinstance(value, (str, os.PathLike)):
        if name == "illumination":
            from ..perturbations.illumination import IlluminationModel

            return IlluminationModel.from_spec(value, name)
        from ..perturbations.motion import MotionModel

        return MotionModel.from_spec(value, name)
    if not _is_model(value):
        raise TypeError(f"{name} must be 'default' (the shipped model), a model file's path, None (off) or a "
                        f"perturbation model with sample() and apply(), got {type(value).__name__}")
    return value


#: ``view_transforms`` by name: the recipes' per-view pipelines (:mod:`mi_augment.transforms.presets`)
_VIEW_RECIPES = ("simclr", "byol")


def _view_pipelines(value: Any, n_views: int, size: tuple[int, int]) -> tuple[tuple[Callable, ...], ...]:
    """``view_transforms``: a recipe's name, None, one list for every view, or one list per view."""
    if value is None:
        return tuple(() for _ in range(n_views))
    if isinstance(value, str):
        from .presets import byol_views, simclr_views

        if value not in _VIEW_RECIPES:
            raise ValueError(f"view_transforms={value!r}: expected one of {list(_VIEW_RECIPES)}, None, or a list of "
                             "transforms")
        if value == "byol":
            if n_views != 2:
                raise ValueError(f"view_transforms='byol' is an asymmetric recipe for 2 views, got n_views={n_views}")
            return tuple(tuple(p) for p in byol_views(size))
        return tuple(tuple(simclr_views(size)) for _ in range(n_views))
    if not isinstance(value, (list, tuple)):
        raise TypeError("view_transforms must be a list of transforms (applied to every view) or a list of "
                        f"{n_views} such lists (one per view), got {type(value).__name__}")
    per_view = len(value) > 0 and all(isinstance(v, (list, tuple)) for v in value)
    pipelines = [list(v) for v in value] if per_view else [list(value)] * n_views
    if len(pipelines) != n_views:
        raise ValueError(f"view_transforms has {len(pipelines)} per-view lists, this transform makes {n_views} views")
    for v, pipeline in enumerate(pipelines):
        for i, t in enumerate(pipeline):
            if not callable(t):
                raise TypeError(f"view_transforms[{v}][{i}] must be callable, got {type(t).__name__}")
    return tuple(tuple(p) for p in pipelines)


def _float_batch(images: Any) -> Tensor:
    """The steps' input: a ``[B, C, H, W]`` tensor, checked and converted as ``forward`` does (uint8 and half
    precision to float32; floats outside [0, 1], NaN and wrong shapes refused)."""
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a [B, C, H, W] tensor, got {getattr(images, 'shape', type(images))}")
    return to_float_batch(images, "images", (1, 3))[0]


def _target_in_view(target: Any, matrix: Tensor, image_size: tuple[int, int], view_size: tuple[int, int],
                    padding_mode: str) -> Any:
    """A ``BoundingBoxes`` / ``Mask`` / ``KeyPoints`` of the image, moved onto one view's canvas by its
    ``(1, 3, 3)`` input-to-view matrix."""
    from torchvision.transforms.v2 import functional as tvf

    from ..functional.geometry import warp_boxes, warp_masks, warp_points

    plain = target.as_subclass(Tensor)
    canvas = tuple(target.canvas_size) if hasattr(target, "canvas_size") else tuple(target.shape[-2:])
    if canvas != tuple(image_size):
        raise ValueError(f"{type(target).__name__} canvas {canvas} (height, width) does not match the image's "
                         f"{tuple(image_size)}")
    if isinstance(target, _tv.Mask):
        h, w = image_size
        moved = warp_masks(plain.reshape(1, -1, h, w), matrix, padding_mode=padding_mode, size=view_size)
        return _tv.wrap(moved.reshape(*plain.shape[:-2], *view_size), like=target)
    if isinstance(target, _tv.KeyPoints):
        moved = warp_points(plain.reshape(1, -1, 2), matrix).reshape(plain.shape)
        return _tv.wrap(moved, like=target, canvas_size=view_size)
    if _tv.is_rotated_bounding_format(target.format):
        raise ValueError(f"MIPairTransform moves axis-aligned BoundingBoxes; got format {target.format}")
    xyxy = tvf.convert_bounding_box_format(plain, old_format=target.format, new_format=_tv.BoundingBoxFormat.XYXY)
    clamp = view_size if target.clamping_mode is not None else None
    moved = warp_boxes(xyxy.reshape(1, -1, 4), matrix, canvas_size=clamp).reshape(xyxy.shape)
    moved = tvf.convert_bounding_box_format(moved, old_format=_tv.BoundingBoxFormat.XYXY, new_format=target.format)
    return _tv.wrap(moved, like=target, canvas_size=view_size)


def _replayable(t: Any) -> bool:
    """Our transform contract (generator + replay); other callables (torchvision, kornia) are called as is."""
    from .base import RandomTransform

    return isinstance(t, RandomTransform)


def _check_scores(scores: Any, b: int, k: int) -> Tensor:
    return check_scores(scores, b, k, "the scorer").float()


class MIPairTransform(nn.Module):
    """Two (or ``n_views``) views per image, paired by the information they share.

    A drop-in replacement for "RandomResizedCrop + flip + ColorJitter, twice" in contrastive pipelines
    (SimCLR, MoCo's ``TwoCropsTransform``, lightly's multi-view transforms): ``t(x)`` returns a tuple of
    views. It works on one image (PIL, uint8 or float ``[C, H, W]`` tensor, in DataLoader workers and
    torchvision ``Compose``), returning the type it was given, and on a whole batch ``[B, C, H, W]`` on the GPU
    with the same semantics.

    The defaults follow the ablation (docs/results.md): SimCLR's per-view colour operations
    (``view_transforms="simclr"``: jitter p 0.8, grayscale p 0.2, blur p 0.5 above 64 px), with the crop pair
    chosen among ``n_candidates`` scored candidates, which trained level with SimCLR's own augmentation (no
    configuration has yet trained measurably better than it). The shipped natural models are opt-in
    (``illumination="default", motion="default"``): at their fitted strength, used instead of ColorJitter,
    they trained worse (-2.85 kNN@20 on ``fmnist_scenes``); matched to ColorJitter's brightness spread
    (``illumination_strength`` about 50) they were level with it. :meth:`byol` and :meth:`moco_v3` give those
    recipes' asymmetric views.

    Args:
        size: output size of every view (int or ``(h, w)``).
        scale, ratio: RandomResizedCrop bounds on the crop's area fraction and aspect ratio (``w / h``).
        n_candidates: K candidate crop tuples scored per image (ignored by the ``"random"`` policy).
        policy: ``"threshold"`` (default), ``"max"``, ``"min"``, ``"band"``, ``"softmax"``, ``"random"`` or a
            :class:`~mi_augment.pairs.Policy` instance.
        illumination, motion: ``"default"`` for the shipped model (fitted on real footage), None (default) to
            leave it out, or a model instance (e.g. ``IlluminationModel.uniform()`` for ColorJitter's prior).
            Each view gets its own draw; the draws are scored and applied.
        perturbations: further models (anything with ``sample(n, generator=, device=, strength=)`` and
            ``apply(images, params)``), applied after illumination and motion, each view with its own draw.
        flip: probability of mirroring each view left-right (drawn per view, independently of the scores).
        view_transforms: each view's own pipeline, applied after the perturbations with independent draws:
            ``"simclr"`` (default) or ``"byol"`` (the recipes' pipelines, :mod:`mi_augment.transforms.presets`),
            None for none, one list of transforms for every view, or one list per view (e.g. BYOL's asymmetric
            blur and solarize). :class:`~mi_augment.transforms.RandomTransform` entries replay exactly; other batched
            callables are called as they are (and draw again on replay).
        proxy_size: side of the square grid the candidate crops are rendered on for the pixel scorers.
        estimator, bins: the MI estimator of the default :class:`~mi_augment.pairs.PixelMIScorer`.
        n_views: number of views returned (>= 2).
        scorer: replaces the default scorer: a callable ``(proxy_a (B, K, N), proxy_b (B, K, N)) -> (B, K)``, or
            one whose ``input_kind`` is ``"image"`` (``(B, K, C, h, w)`` crops) or ``"boxes"`` (``(images,
            boxes_a, boxes_b)``: the unperturbed images and the boxes, for one encoder pass per image).
        sampling_ratio: samples per output bin for the view crops (see
            :func:`mi_augment.functional.crops.resized_crop`).
        illumination_strength, motion_strength: scale each draw's distance from "no change" while keeping the
            fitted shape (0 = identity, 1 = as fitted).
    """

    def __init__(self, size: int | tuple[int, int], scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0), n_candidates: int = 8,
                 policy: str | Policy = "threshold", illumination: Any = None, motion: Any = None,
                 flip: float = 0.5, proxy_size: int = 32, estimator: Any = "histogram", bins: int = 16,
                 n_views: int = 2, scorer: Any = None, sampling_ratio: int = -1,
                 illumination_strength: float = 1.0, motion_strength: float = 1.0,
                 perturbations: Sequence[Any] = (), view_transforms: Any = "simclr"):
        super().__init__()
        self.size = _check_size(size)
        self.sampler = BoxSampler(scale, ratio)
        self.n_candidates = check_positive_int(n_candidates, "n_candidates")
        self.policy = make_policy(policy)
        self.flip = check_probability(flip, "flip")
        self.proxy_size = check_positive_int(proxy_size, "proxy_size", minimum=2)
        self.n_views = check_positive_int(n_views, "n_views", minimum=2)
        if not (sampling_ratio == -1 or (isinstance(sampling_ratio, int) and sampling_ratio >= 1)):
            raise ValueError(f"sampling_ratio must be -1 (adaptive) or an integer >= 1, got {sampling_ratio!r}")
        self.sampling_ratio = int(sampling_ratio)
        if scorer is None:
            scorer = PixelMIScorer(estimator, bins) if self.policy.needs_scores else None
        else:
            if estimator != "histogram" or bins != 16:
                raise ValueError("estimator= and bins= configure the default pixel scorer; with scorer= given, "
                                 "configure the scorer itself")
            if not callable(scorer):
                raise TypeError(f"scorer must be callable, got {type(scorer).__name__}")
            scorer_input_kind(scorer)
        self.scorer = scorer
        if isinstance(perturbations, (str, bytes)) or not isinstance(perturbations, (list, tuple)):
            raise TypeError(f"perturbations must be a list of perturbation models, got {type(perturbations).__name__}")
        models, strengths = [], []
        for name, value, strength in (("illumination", illumination, illumination_strength),
                                      ("motion", motion, motion_strength)):
            model = _resolve_model(value, name)
            strength = check_strength(strength, f"{name}_strength")
            if model is None and strength != 1.0:
                raise ValueError(f"{name}_strength={strength} scales the {name} model, which is off; pass "
                                 f"{name}='default' (the shipped model) or a model instance")
            if model is not None:
                models.append((name, model))
                strengths.append(strength)
        for i, model in enumerate(perturbations):
            if not _is_model(model):
                raise TypeError(f"perturbations[{i}] must be a perturbation model with sample() and apply(), got "
                                f"{type(model).__name__}")
            models.append((f"{type(model).__name__}_{i}", model))
            strengths.append(1.0)
        self.perturbation_names = tuple(name for name, _ in models)
        self.perturbations = tuple(model for _, model in models)
        self.strengths = tuple(strengths)
        self.view_transforms = _view_pipelines(view_transforms, self.n_views, self.size)
        # registered so .to(device) / .eval() reach transforms and encoders that are modules
        self._view_modules = nn.ModuleList([t for p in self.view_transforms for t in p if isinstance(t, nn.Module)])

    # ---- presets ---------------------------------------------------------------------------------------------
    @classmethod
    def simclr(cls, size: int | tuple[int, int], *, jitter: float = 0.4, blur: bool | None = None,
               **kwargs: Any) -> MIPairTransform:
        """SimCLR's views (Chen et al. 2020) with MI-chosen crops: scale (0.08, 1), flip, colour jitter
        (``jitter`` brightness/contrast/saturation, ``jitter / 4`` hue) with p 0.8, grayscale p 0.2, Gaussian
        blur p 0.5 (``blur``: None = on above 64 px, as the paper does for ImageNet but not CIFAR). Crops
        are scored on the unperturbed image (the natural models off); any argument can be overridden
        (``MIPairTransform.simclr(32, scale=(0.2, 1), policy="max")``)."""
        from .presets import simclr_views

        return cls._preset(size, simclr_views(size, jitter=jitter, blur=blur), kwargs)

    @classmethod
    def byol(cls, size: int | tuple[int, int], **kwargs: Any) -> MIPairTransform:
        """BYOL's asymmetric views (Grill et al. 2020) with MI-chosen crops: jitter (0.4, 0.4, 0.2, 0.1) p 0.8,
        grayscale p 0.2; view 0 always blurred, view 1 blurred p 0.1 and solarized p 0.2."""
        from .presets import byol_views

        return cls._preset(size, byol_views(size), kwargs)

    @classmethod
    def moco_v3(cls, size: int | tuple[int, int], **kwargs: Any) -> MIPairTransform:
        """MoCo v3's views (Chen et al. 2021; BYOL's asymmetric recipe) with MI-chosen crops."""
        from .presets import byol_views

        return cls._preset(size, byol_views(size), kwargs)

    @classmethod
    def _preset(cls, size: Any, views: list, kwargs: dict[str, Any]) -> MIPairTransform:
        options = {"illumination": None, "motion": None, "view_transforms": views}
        options.update(kwargs)
        return cls(size, **options)

    # ---- properties ------------------------------------------------------------------------------------------
    @property
    def scale(self) -> tuple[float, float]:
        return self.sampler.scale

    @property
    def ratio(self) -> tuple[float, float]:
        return self.sampler.ratio

    # ---- 1. plan ---------------------------------------------------------------------------------------------
    def plan(self, images: Tensor, generator: torch.Generator | None = None) -> PairCandidates:
        """Draw K candidate crop tuples, the flips and every view's perturbations for a float batch
        ``[B, C, H, W]`` (K = 1 when the policy needs no scores). Uses only the images' shape and device."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise ValueError(f"images must be a [B, C, H, W] tensor, got {getattr(images, 'shape', type(images))}")
        b, _, h, w = images.shape
        dev = images.device
        v = self.n_views
        k = self.n_candidates if self.policy.needs_scores else 1
        drawn = []
        for model, strength in zip(self.perturbations, self.strengths):
            params = model.sample(b * v, generator=generator, device=sampling_device(generator, dev),
                                  strength=strength)
            if params.device != dev:  # drawn on the generator's device (mapping every field is per-call overhead)
                params = params.to(dev)
            drawn.append(R.stack_views(params, b, v))
        flip = rand((b, v), generator, dev) < self.flip
        boxes = self.sampler.sample((b, v, k), h, w, generator=generator, device=dev)
        return PairCandidates(boxes, flip, tuple(drawn))

    # ---- 2. score --------------------------------------------------------------------------------------------
    def score(self, images: Tensor, candidates: PairCandidates) -> Tensor:
        """Scores ``(B, V - 1, K)``: what view 0's box ``k`` shares with partner view ``p``'s box ``k``.

        ``"luma"`` / ``"image"`` scorers get both crops of each view's perturbed image on the proxy grid;
        ``"boxes"`` scorers get the unperturbed float images with the boxes. Large batches are scored a few
        images at a time (peak memory bounded by :func:`mi_augment.kernel_options`' working set)."""
        return self._score(_float_batch(images), candidates)

    def _score(self, x: Tensor, candidates: PairCandidates) -> Tensor:
        if self.scorer is None:
            raise ValueError(f"policy {self.policy.name!r} needs no scores and this transform has no scorer")
        x = x.detach().float()  # scores in float32 whatever the image dtype; a score is a statistic, no graph
        b = x.shape[0]
        candidates.check_batch(b, "candidates")
        v, k = candidates.n_views, candidates.n_candidates
        kind = scorer_input_kind(self.scorer)
        if kind == "boxes":
            return torch.stack([_check_scores(self.scorer(x, candidates.boxes[:, 0], candidates.boxes[:, p]), b, k)
                                for p in range(1, v)], 1)
        small, factor = self._working_images(x)
        c, hh, ww = small.shape[1:]
        proxy_elems = self.proxy_size ** 2 * (c if kind == "image" else 1)
        step = chunk_rows(small, v * (c * hh * ww + 4 * k * proxy_elems))
        out = []
        for r0 in range(0, b, step):
            rows = slice(r0, min(b, r0 + step))
            part = candidates.index(rows)
            proxies = self._proxies(small[rows], part.boxes * factor, part.perturbations, kind)
            m = rows.stop - r0
            out.append(torch.stack([_check_scores(self.scorer(proxies[0], proxies[p]), m, k)
                                    for p in range(1, v)], 1))
        return out[0] if len(out) == 1 else torch.cat(out)

    def _working_images(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The image at the resolution scoring needs: the smallest allowed crop still covers about
        ``proxy_size`` pixels per side. Returns the (possibly downscaled) image and the factors ``(4,)`` that
        map boxes ``(x1, y1, x2, y2)`` onto it."""
        h, w = x.shape[-2:]
        factor = min(1.0, self.proxy_size / math.sqrt(self.scale[0] * h * w))
        hh, ww = max(1, math.ceil(h * factor)), max(1, math.ceil(w * factor))
        if hh >= h and ww >= w:
            return x, torch.ones(4, device=x.device)
        small = F.interpolate(x, size=(hh, ww), mode="bilinear", antialias=True, align_corners=False)
        fx, fy = ww / w, hh / h  # the actual factors after rounding
        return small, torch.tensor([fx, fy, fx, fy], device=x.device)

    def _proxies(self, small: Tensor, boxes: Tensor, perturbations: tuple[Params, ...], kind: str) -> list[Tensor]:
        """For each view ``v``: ``g_v(x)`` at the working resolution, cropped to the view's candidate boxes
        ``boxes[:, v]`` on the proxy grid."""
        b = small.shape[0]
        v = boxes.shape[1]
        if not self.perturbations:  # every view sees the image itself: one clamp (and luma), no copy per view
            same = R.apply_chain((), small, (), luma_only=kind == "luma")
            return [render_proxies(same, boxes[:, i], self.proxy_size, kind, pyramid=True) for i in range(v)]
        perturbed = R.scoring_luma(self.perturbations, small, perturbations) if kind == "luma" else None
        if perturbed is None:  # g_v(x) for every view v of every image, by the models' own apply
            perturbed = R.apply_chain(self.perturbations, small.repeat_interleave(v, 0),
                                      [R.flatten_views(p) for p in perturbations], luma_only=kind == "luma")
        perturbed = perturbed.view(b, v, *perturbed.shape[1:])
        return [render_proxies(perturbed[:, i], boxes[:, i], self.proxy_size, kind, pyramid=True) for i in range(v)]

    # ---- 3. choose -------------------------------------------------------------------------------------------
    def choose(self, candidates: PairCandidates, scores: Tensor | None = None,
               generator: torch.Generator | None = None) -> PairInfo:
        """Pick one candidate per image by the policy, from the mean of ``scores (B, V - 1, K)`` over the
        partner views (None: the first candidate, for policies that need no scores)."""
        b, v, k = candidates.boxes.shape[:3]
        dev = candidates.boxes.device
        if scores is None:
            if self.policy.needs_scores and k > 1:
                raise ValueError(f"policy {self.policy.name!r} needs the scores of the {k} candidates")
            chosen = torch.zeros(b, dtype=torch.long, device=dev)
            keep, chosen_score = None, torch.full((b,), math.nan, device=dev)
        else:
            if not isinstance(scores, Tensor) or scores.shape != (b, v - 1, k):
                raise ValueError(f"scores must have shape (B, V - 1, K) = {(b, v - 1, k)}, got "
                                 f"{tuple(getattr(scores, 'shape', ()))}")
            total = scores.float().mean(1)
            chosen, keep = self.policy.select_and_keep(total, generator)  # the probabilities once
            chosen_score = total.gather(1, chosen[:, None])[:, 0]
        if k == 1:
            boxes = candidates.boxes[:, :, 0]  # (B, V, 4)
        else:
            boxes = candidates.boxes[torch.arange(b, device=dev), :, chosen]
        params = PairParams(boxes, candidates.flip, candidates.perturbations)
        candidate_iou = box_iou_pairs(candidates.boxes[:, :1], candidates.boxes[:, 1:])  # (B, P, K)
        # the chosen pairs' IoU is elementwise the same computation: gathered, not recomputed
        iou = candidate_iou[..., 0] if k == 1 else candidate_iou.gather(2, chosen.view(b, 1, 1).expand(b, v - 1, 1))[..., 0]
        return PairInfo(params, candidates, scores, keep, chosen, chosen_score, candidate_iou, iou)

    # ---- 4. render -------------------------------------------------------------------------------------------
    def render(self, images: Tensor, params: PairParams, generator: torch.Generator | None = None,
               return_params: bool = False) -> Any:
        """The ``V`` views ``[B, C, *size]`` of a float batch: crop, resize, flip, the perturbation chain, then
        each view's pipeline (its draws from ``generator``; replayed when ``params.views`` holds them).
        ``return_params=True`` also returns ``params`` with the pipelines' draws filled in."""
        return self._render(_float_batch(images), params, generator, return_params)

    def _render(self, images: Tensor, params: PairParams, generator: torch.Generator | None,
                return_params: bool, planned: bool = False) -> Any:
        if planned and not self.perturbations:  # boxes and flips this call drew for these images: nothing to check
            return self._render_checked(images, params, generator, return_params)
        if not isinstance(params, PairParams):
            raise TypeError(f"params must be the PairParams of an earlier call (info.params), got "
                            f"{type(params).__name__}")
        if params.n_views != self.n_views:
            raise ValueError(f"params hold {params.n_views} views, this transform makes {self.n_views}")
        if len(params.perturbations) != len(self.perturbations):
            raise ValueError(f"params hold draws of {len(params.perturbations)} perturbation models, this "
                             f"transform has {len(self.perturbations)} ({', '.join(self.perturbation_names)})")
        params.check_batch(images.shape[0])
        return self._render_checked(images, params.to(images.device), generator, return_params)

    def _render_checked(self, images: Tensor, params: PairParams, generator: torch.Generator | None,
                        return_params: bool) -> Any:
        views = self.transform(images, params)
        if any(self.view_transforms):
            views, drawn = self._run_pipelines(views, params.views, generator)
            params = replace(params, views=drawn)
        return (views, params) if return_params else views

    def transform(self, images: Tensor, params: PairParams) -> tuple[Tensor, ...]:
        """Crop, resize, flip and perturb each view of a float batch ``[B, C, H, W]`` (the views before their
        pipelines). Returns ``n_views`` contiguous batches ``[B, C, *size]``."""
        models = self.perturbations
        per_view = R.in_view_frame(models, params.perturbations, params.boxes, *images.shape[-2:])
        images = images.detach()  # a data transform: views carry no gradient (its kernels write into buffers)
        views = R.render_fused(models, images, params.boxes, params.flip, per_view, self.size, self.sampling_ratio)
        if views is None:
            views = R.render_steps(models, images, params.boxes, params.flip, per_view, self.size,
                                   self.sampling_ratio)
        return tuple(views)

    def _run_pipelines(self, views: tuple[Tensor, ...], replay: tuple, generator: torch.Generator | None
                       ) -> tuple[tuple[Tensor, ...], tuple[tuple[Params, ...], ...]]:
        if replay and len(replay) != len(views):
            raise ValueError(f"params.views holds {len(replay)} pipelines, this transform makes {len(views)} views")
        out, drawn = [], []
        for v, (view, pipeline) in enumerate(zip(views, self.view_transforms)):
            saved = iter(replay[v]) if replay else None
            mine: list[Params] = []
            owned = True  # the rendered view and our transforms' outputs are this call's own: gates write into them
            for i, t in enumerate(pipeline):
                if not _replayable(t):
                    before, view = view, t(view)
                    owned = owned and view is before
                    continue
                gated = None
                if saved is not None:
                    gated = next(saved, None)
                    if gated is None:
                        raise ValueError(f"params.views[{v}] holds fewer draws than view {v}'s pipeline has "
                                         f"random transforms (at view_transforms[{v}][{i}])")
                # the views are checked float batches already: the transform's gate and kernel, no re-checking
                before, (view, gated) = view, t._gated(view, gated, generator, owned=owned)
                if view is not before:  # a kernel's new tensor (an expanded or strided one is not written into)
                    owned = view.is_contiguous()
                mine.append(gated)
            out.append(view)
            drawn.append(tuple(mine))
        return tuple(out), tuple(drawn)

    # ---- the one-call form -----------------------------------------------------------------------------------
    def make_params(self, images: Tensor, generator: torch.Generator | None = None) -> PairParams:
        """Plan, score and choose for a float batch ``[B, C, H, W]``: the :class:`PairParams` to render."""
        return self._choose_for(images, generator).params

    def _choose_for(self, x: Tensor, generator: torch.Generator | None) -> PairInfo:
        candidates = self.plan(x, generator)
        scores = self._score(x, candidates) if self.policy.needs_scores else None
        return self.choose(candidates, scores, generator)

    def forward(self, *inputs: Any, generator: torch.Generator | None = None, params: PairParams | None = None,
                return_info: bool = False) -> Any:
        """Views of one image or a batch, as a tuple (each the type that came in); with ``return_info=True``
        also the :class:`PairInfo` (``(views, info)``). ``params`` replays an earlier call's ``info.params``.
        A data transform: the views carry no gradient, even for an input that requires grad.

        As ``torchvision.transforms.v2`` passes them, the input may be a pytree of one image and its targets
        (``t(image, target)``, ``t({"image": ..., "boxes": ...})``): then the result is one pytree per view,
        the image replaced by the view and ``BoundingBoxes``, ``Mask`` and ``KeyPoints`` cropped, resized,
        flipped and moved with it (:meth:`view_matrices`) onto the view's canvas; other leaves pass through.
        """
        if not inputs:
            raise TypeError("forward() needs an image or a pytree holding one, got no input")
        for extra in inputs[1:]:  # params / generator given positionally would be read as targets
            if isinstance(extra, (PairParams, torch.Generator)):
                name = "params" if isinstance(extra, PairParams) else "generator"
                raise TypeError(f"pass {name} as a keyword ({name}=...); extra positional inputs are targets")
        check_generator(generator)
        single = inputs[0] if len(inputs) == 1 else None
        if single is not None and not isinstance(single, (tuple, list, dict)) and (
                not isinstance(single, _tv.TVTensor) or isinstance(single, _tv.Image)):
            x, spec = to_float_batch(single, "images", (1, 3))
            views, info = self._views(x, generator, params, return_info)
            views = restore_views(views, spec)
            return (views, info) if return_info else views
        return self._forward_pytree(single if single is not None else inputs, generator, params, return_info)

    def _views(self, x: Tensor, generator: torch.Generator | None, params: PairParams | None,
               return_info: bool) -> tuple[tuple[Tensor, ...], PairInfo | None]:
        info = None
        if params is None and x.shape[0] == 1 and current().fast_paths:
            one = self._views_one(x, generator, return_info)
            if one is not None:
                return one
        if params is None:
            info = self._choose_for(x, generator)
            views, params = self._render(x, info.params, generator, return_params=True, planned=True)
        else:
            views, params = self._render(x, params, generator, return_params=True)
        if info is not None:
            info = replace(info, params=params)
        elif return_info:
            info = self._replay_info(params)
        return views, info

    def _views_one(self, x: Tensor, generator: torch.Generator | None, return_info: bool
                   ) -> tuple[tuple[Tensor, ...], PairInfo | None] | None:
        """Speed path of :meth:`_views` for one CPU image (a DataLoader worker's call): the same steps and draws
        with fewer tensor ops: the flips' and boxes' draws as one ``rand`` (consecutive CPU draws are one draw,
        split), the boxes by the sampler's few-box path, the choice without the IoU bookkeeping unless
        ``return_info``, the crops by one sampling of the image. None where it does not apply."""
        if x.device.type != "cpu" or sampling_device(generator, x.device).type != "cpu":
            return None
        _, _, h, w = x.shape
        v = self.n_views
        k = self.n_candidates if self.policy.needs_scores else 1
        drawn = []
        for model, strength in zip(self.perturbations, self.strengths):
            drawn.append(R.stack_views(model.sample(v, generator=generator, device=x.device, strength=strength), 1, v))
        per_box = 2 * self.sampler.tries + 2
        u = rand((v + v * k * per_box,), generator, x.device)  # plan's flip draw, then the sampler's
        boxes = self.sampler._from_uniform_few(u[v:].view(v * k, per_box), h, w)
        candidates = PairCandidates(boxes.view(1, v, k, 4), u[:v].view(1, v) < self.flip, tuple(drawn))
        scores = None
        if self.policy.needs_scores:
            scores = self._score_one(x, candidates)
            if scores is None:
                scores = self._score(x, candidates)
        if return_info:
            info = self.choose(candidates, scores, generator)
            params = info.params
        else:
            info = None
            if scores is None:
                c = 0
            else:
                total = scores.float().mean(1)
                select_one = getattr(self.policy, "_select_one", None)  # a policy's speed path for one image
                c = None if select_one is None else select_one(total[0].tolist(), generator)
                if c is None:
                    chosen, _ = self.policy.select_and_keep(total, generator)
                    c = int(chosen[0])
            params = PairParams(candidates.boxes[:, :, c], candidates.flip, candidates.perturbations)
        views = None
        if not self.perturbations:
            views = R.render_one(x, params.boxes[0], params.flip[0], self.size, self.sampling_ratio)
        if views is None:
            views = self.transform(x, params)
        if any(self.view_transforms):
            one = None if return_info else self._run_pipelines_one(views, generator)
            if one is not None:
                return one, None
            views, drawn_views = self._run_pipelines(views, (), generator)
            params = replace(params, views=drawn_views)
        if info is not None:
            info = replace(info, params=params)
        return views, info

    def _score_one(self, x: Tensor, candidates: PairCandidates) -> Tensor | None:
        """Speed path of :meth:`_score` for one image without perturbation models and a ``"luma"`` scorer, when
        the image needs no downscaling and every candidate box takes one sample per proxy bin (the proxies'
        ``resized_crop`` path of ``pyramid_crop``): every view's K proxies in one sampling of the luma, the
        same positions and values. None where it does not apply."""
        if self.perturbations or self.scorer is None or scorer_input_kind(self.scorer) != "luma":
            return None
        x = x.detach().float()
        h, w = x.shape[-2:]
        factor = min(1.0, self.proxy_size / math.sqrt(self.scale[0] * h * w))
        if h < 2 or w < 2 or math.ceil(h * factor) < h or math.ceil(w * factor) < w:
            return None
        n = self.proxy_size
        v, k = candidates.n_views, candidates.n_candidates
        flat = candidates.boxes.reshape(-1, 4).float()
        b = flat.numpy()
        sides = np.concatenate([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]])  # float32, as pyramid_crop's and
        if not (bool((sides <= n).all()) and bool((sides / np.float32(n) <= 1.0).all())):  # resized_crop's tests
            return None
        lum = R.apply_chain((), x, (), luma_only=True)
        sampled = _bilinear_crop_one(lum, flat, torch.zeros(v * k, dtype=torch.bool), n, n)
        views_scorer = getattr(self.scorer, "_score_views", None)  # a scorer's speed path for one image's views
        scores = None if views_scorer is None else views_scorer(sampled.view(v, k, n * n))
        if scores is not None:
            return torch.stack([_check_scores(s[None], 1, k) for s in scores], 1)
        proxies = sampled.view(v, 1, k, n * n).unbind(0)
        # proxies of a clamped image are finite: a scorer may skip checking that (PixelMIScorer does)
        scorer = getattr(self.scorer, "_score_finite", self.scorer)
        return torch.stack([_check_scores(scorer(proxies[0], proxies[p]), 1, k) for p in range(1, v)], 1)

    def _run_pipelines_one(self, views: tuple[Tensor, ...], generator: torch.Generator | None
                           ) -> tuple[Tensor, ...] | None:
        """Speed path of :meth:`_run_pipelines` for one CPU image's views when nobody asked for the draws:
        every pipeline's draws as one ``rand`` read as numbers (each transform's ``_one_draws``, in the order
        ``_run_pipelines`` draws them), each transform's gate and kernel on them. None unless every entry
        of every pipeline has that path."""
        counts = []
        for pipeline in self.view_transforms:
            for t in pipeline:
                n = t._one_draws() if _replayable(t) else None
                if n is None:
                    return None
                counts.append(n)
        u = rand((sum(counts),), generator, views[0].device).tolist()
        out, at, i = [], 0, 0
        for view, pipeline in zip(views, self.view_transforms):
            owned = True  # as in _run_pipelines: the rendered view and our kernels' new tensors are ours
            for t in pipeline:
                before, view = view, t._gated_one(view, u[at:at + counts[i]], owned)
                at, i = at + counts[i], i + 1
                if view is not before:
                    owned = view.is_contiguous()
            out.append(view)
        return tuple(out)

    def _forward_pytree(self, tree: Any, generator: torch.Generator | None, params: PairParams | None,
                        return_info: bool) -> Any:
        flat, structure = tree_flatten(tree)
        if any(isinstance(leaf, _tv.Video) for leaf in flat):
            raise TypeError("MIPairTransform does not take tv_tensors.Video; pass its frames [T, C, H, W] as a plain "
                            "tensor batch (one pair per frame)")
        images = _image_leaves(flat)
        if len(images) != 1:
            found = ", ".join(sorted({type(v).__name__ for v in flat}))
            raise TypeError(f"MIPairTransform takes one image per call with its targets, found {len(images)} images "
                            f"among the inputs ({found})")
        image = flat[images[0]]
        x, spec = to_float_batch(image, "images", (1, 3))
        views, info = self._views(x, generator, params, True)
        targets = [i for i, leaf in enumerate(flat) if isinstance(leaf, (_tv.BoundingBoxes, _tv.Mask, _tv.KeyPoints))]
        matrices = None
        if targets:
            if x.shape[0] != 1:
                raise ValueError(f"targets with a batch of {x.shape[0]} images are ambiguous; transform one image "
                                 "per call (its targets follow each view)")
            matrices = self.view_matrices(info.params, *x.shape[-2:])[0]  # (V, 3, 3)
        padding = next((m.config.get("padding_mode") for m in reversed(self.perturbations)
                        if hasattr(m, "warp_matrices") and isinstance(getattr(m, "config", None), dict)), "zeros")
        out = []
        for v, view in enumerate(views):
            leaves = list(flat)
            restored = restore(view, spec)
            leaves[images[0]] = restored if not isinstance(image, _tv.Image) or isinstance(restored, _tv.Image) \
                else _tv.wrap(restored, like=image)
            for i in targets:
                leaves[i] = _target_in_view(flat[i], matrices[v:v + 1], tuple(x.shape[-2:]), self.size, padding)
            out.append(tree_unflatten(leaves, structure))
        return (tuple(out), info) if return_info else tuple(out)

    def view_matrices(self, params: PairParams, height: int, width: int) -> Tensor:
        """Where each view's pixels come from: ``(B, V, 3, 3)`` float64 matrices from input pixels to view
        pixels (pixel centres at integer coordinates, :mod:`mi_augment.functional.geometry`'s convention) for
        images of ``height x width``: the crop resized to ``size``, the flip, then the warp of every model of
        the chain that defines ``warp_matrices(params, h, w)`` (camera motion), in the view's frame. Models
        without it are photometric (they move no pixel). Boxes and points of a view move by these."""
        boxes = params.boxes.to(torch.float64)
        b, v = boxes.shape[:2]
        h, w = self.size
        sx = w / (boxes[..., 2] - boxes[..., 0]).clamp_min(1e-12)
        sy = h / (boxes[..., 3] - boxes[..., 1]).clamp_min(1e-12)
        m = torch.zeros(b, v, 3, 3, dtype=torch.float64, device=boxes.device)
        m[..., 0, 0], m[..., 1, 1], m[..., 2, 2] = sx, sy, 1.0
        m[..., 0, 2] = sx * (0.5 - boxes[..., 0]) - 0.5  # box edges map to view edges; centres sit at +0.5
        m[..., 1, 2] = sy * (0.5 - boxes[..., 1]) - 0.5
        flip = torch.tensor([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64,
                            device=boxes.device)
        m = torch.where(params.flip.to(boxes.device)[..., None, None], flip @ m, m)
        per_view = R.in_view_frame(self.perturbations, params.perturbations, params.boxes, height, width)
        for model, drawn in zip(self.perturbations, per_view):
            hook = getattr(model, "warp_matrices", None)
            if hook is not None:
                warp = hook(R.flatten_views(drawn.to(boxes.device)), h, w).to(torch.float64).view(b, v, 3, 3)
                m = warp @ m
        return m

    def _replay_info(self, params: PairParams) -> PairInfo:
        """A :class:`PairInfo` for replayed params (no candidates or scores are known)."""
        b = params.boxes.shape[0]
        dev = params.boxes.device
        iou = box_iou_pairs(params.boxes[:, :1], params.boxes[:, 1:])
        return PairInfo(params, None, None, None, torch.zeros(b, dtype=torch.long, device=dev),
                        torch.full((b,), math.nan, device=dev), iou[..., None], iou)

    def extra_repr(self) -> str:
        parts = [f"size={self.size}", f"scale={self.scale}", f"ratio={tuple(round(r, 4) for r in self.ratio)}",
                 f"policy={self.policy}", f"flip={self.flip}", f"n_views={self.n_views}"]
        if self.policy.needs_scores:
            parts += [f"n_candidates={self.n_candidates}", f"proxy_size={self.proxy_size}", f"scorer={self.scorer!r}"]
        chain = [f"{n}={type(m).__name__}" + (f"(strength={s})" if s != 1.0 else "")
                 for n, m, s in zip(self.perturbation_names, self.perturbations, self.strengths)]
        parts.append("perturbations=[" + ", ".join(chain) + "]")
        if any(self.view_transforms):
            parts.append(f"view_transforms={[list(map(repr, p)) for p in self.view_transforms]}")
        return ", ".join(parts)

