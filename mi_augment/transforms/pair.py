"""``MIPairTransform``: positive pairs of views chosen among K candidate crop pairs by the information they
share under natural perturbation (see docs/mi_pairs.md).

One call, for each image of a batch ``[B, C, H, W]`` (or one image, PIL, uint8 tensor, ...):

1. draw a natural perturbation ``g_v`` for every view ``v`` (illumination and motion models) and a horizontal
   flip flag per view;
2. draw K candidate crop pairs ``(a_k, b_k)`` with RandomResizedCrop semantics;
3. score every candidate: crop ``a_k`` of ``g_0(x)`` and crop ``b_k`` of ``g_1(x)``, both resized to a small
   proxy grid (32x32 luma by default) and scored by a batched estimator (histogram MI in nats by default);
4. let the policy choose one candidate per image from the K scores;
5. render the views at full quality: crop, resize to ``size``, flip, then apply the view's own perturbation.

With ``n_views > 2``, view 0 (the first crop of the chosen pair) is the anchor, and every further view
``v >= 2`` is chosen by the same policy among K fresh candidate crops scored against the anchor (crop ``a`` of
``g_0(x)`` vs candidate of ``g_v(x)``). With the ``"random"`` policy no candidates are scored: the views are
plain RandomResizedCrop + flip + perturbation.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._chunks import chunk_rows
from .._random import rand, sampling_device
from .._validation import (
    check_generator,
    check_positive_int,
    check_probability,
    image_to_uint8,
    restore,
    to_float_batch,
)
from ..crops.policies import Policy, make_policy
from ..crops.sampler import BoxSampler, box_iou_pairs
from ..crops.scoring import PixelMIScorer, render_proxies, scorer_input_kind
from ..functional.crops import luma, resized_crop
from ..params import Params
from ..perturbations.base import check_strength

__all__ = ["MIPairTransform", "PairInfo", "PairParams", "MIPairAlbumentations", "MIPairCollate", "NoParams"]


@dataclass(frozen=True)
class NoParams(Params):
    """Stand-in for a disabled perturbation model: an empty ``(B, V, 0)`` tensor."""

    empty: Tensor


@dataclass(frozen=True)
class PairParams(Params):
    """Everything needed to render the views again (``transform(images, params)``); leading dim ``B``.

    Attributes:
        boxes: ``(B, V, 4)`` crop boxes ``(x1, y1, x2, y2)`` in input pixels, one per view.
        flip: ``(B, V)`` bool, mirror the view left-right (after cropping).
        illumination, motion: per-view parameters of the models, every tensor shaped ``(B, V, ...)``;
            :class:`NoParams` when the model is disabled.
    """

    boxes: Tensor
    flip: Tensor
    illumination: Params
    motion: Params

    @property
    def n_views(self) -> int:
        return int(self.boxes.shape[1])


@dataclass(frozen=True)
class PairInfo:
    """Parameters and diagnostics of one call (``return_info=True``). ``P = n_views - 1`` partner views.

    Attributes:
        params: the :class:`PairParams` (replay with ``t(images, params=info.params)``).
        scores: ``(B, P, K)`` candidate scores (nats for MI scorers); None with the ``"random"`` policy.
        keep: ``(B, P, K)`` bool, the candidates the policy could choose; None with ``"random"``.
        chosen: ``(B, P)`` index of the chosen candidate (0 with ``"random"``).
        chosen_score: ``(B, P)`` its score (NaN with ``"random"``).
        anchor_boxes: ``(B, K, 4)`` candidate boxes of view 0 (the ``a`` crops).
        partner_boxes: ``(B, P, K, 4)`` candidate boxes of the partner views.
        candidate_iou: ``(B, P, K)`` overlap (IoU) of each candidate pair.
        iou: ``(B, P)`` overlap of the chosen pairs (view 0 with view ``p + 1``).
    """

    params: PairParams
    scores: Tensor | None
    keep: Tensor | None
    chosen: Tensor
    chosen_score: Tensor
    anchor_boxes: Tensor
    partner_boxes: Tensor
    candidate_iou: Tensor
    iou: Tensor


def _stack_views(params: Params, batch: int, views: int) -> Params:
    """Reshape params drawn for ``batch * views`` samples (sample-major) to tensors ``(batch, views, ...)``."""
    return params._map(lambda t: t.reshape(batch, views, *t.shape[1:]))


def _flatten_views(params: Params) -> Params:
    return params._map(lambda t: t.flatten(0, 1))


def _motion_in_view_frame(motion: Params, boxes: Tensor, height: int, width: int) -> Params:
    """Express camera motion drawn for the whole image in the frame of each view.

    :class:`~mi_augment.perturbations.motion.MotionParams` translations and blur lengths are fractions of the
    longer side of the image they are applied to. Scoring applies them to the whole image before cropping;
    the views apply them after cropping, so they are scaled by ``image side / crop side`` to move and smear
    the same number of scene pixels in the view as in the scored crop. Other params pass unchanged.
    """
    try:
        from ..perturbations.motion import MotionParams
    except ImportError:  # pragma: no cover - the motion module ships with the package
        return motion
    if not isinstance(motion, MotionParams):
        return motion
    crop_side = torch.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]).clamp_min(1e-6)
    factor = (max(height, width) / crop_side).unsqueeze(-1).to(motion.translation.dtype)  # (B, V, 1)
    return dataclasses.replace(motion, translation=motion.translation * factor,
                               blur_length=motion.blur_length * factor)


def _shipped_motion(model: Any, params: Params) -> bool:
    """True for a :class:`~mi_augment.perturbations.motion.MotionModel` whose ``apply`` is the library's (a warp
    and a blur): it may be called through its unchecked ``_apply_float`` and commutes with luma."""
    from ..perturbations.motion import MotionModel, MotionParams

    return (isinstance(model, MotionModel) and type(model).apply is MotionModel.apply
            and isinstance(params, MotionParams))


def _shipped_illumination(model: Any, params: Params) -> bool:
    """True for the library's :class:`~mi_augment.perturbations.illumination.IlluminationModel` (``apply``
    not overridden) with params without ColorJitter factors: the illumination the fused kernels render."""
    from ..perturbations.illumination import IlluminationModel, IlluminationParams

    return (isinstance(model, IlluminationModel) and type(model).apply is IlluminationModel.apply
            and isinstance(params, IlluminationParams) and params.jitter_is_identity())


def _view_light(params: Params, channels: int, h: int, w: int, like: Tensor,
                ring: bool = False) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Per-view illumination parameters ``(B, V, ...)`` laid out for
    :func:`~mi_augment.functional.color._illuminate` on views inside each image, ``(B, C, V, H, W)``:
    ``gamma (B, 1, V, 1, 1)``, ``log_gain (B, C, V, 1, 1)`` (the mean gain for one channel), and the shading
    coefficients ``(B, V, S)`` with the ``(S, H, W)`` basis (mirrored onto a one-pixel ring when ``ring``),
    or None twice without shading; :func:`_light_field` renders the field of some rows."""
    from ..functional import color as fcolor

    b, v = params.log_gain.shape[:2]
    log_gain = params.log_gain.to(like.dtype).reshape(b, v, 3)
    if channels == 1:
        log_gain = log_gain.mean(dim=2, keepdim=True)
    gamma = params.log_gamma.to(like.dtype).reshape(b, v).exp().view(b, 1, v, 1, 1)
    shading, basis = params.shading, None
    if shading.shape[-1] > 0:
        basis = fcolor._shading_basis(h, w, fcolor.shading_degree(shading.shape[-1]), like.device, like.dtype)
        if ring:
            basis = F.pad(basis[None], (1, 1, 1, 1), mode="reflect")[0]
        shading = shading.to(like.dtype).reshape(b, v, -1)
    else:
        shading = None
    return gamma, log_gain.transpose(1, 2).reshape(b, -1, v, 1, 1), shading, basis


def _light_field(shading: Tensor | None, basis: Tensor | None) -> Tensor | None:
    """The log shading field ``(B, 1, V, H, W)`` of :func:`_view_light`'s coefficients, or None."""
    return None if basis is None else torch.einsum("bvs,shw->bvhw", shading, basis).unsqueeze(1)


def _check_finite_params(params: Params) -> None:
    for name, value in params._tensors().items():
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"params.{name} contains NaN or inf values")


def _check_size(size: Any) -> tuple[int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        return check_positive_int(size, "size"), check_positive_int(size, "size")
    try:
        h, w = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be an int or an (height, width) pair, got {size!r}") from None
    return check_positive_int(h, "size[0]"), check_positive_int(w, "size[1]")


def _resolve_model(value: Any, name: str, kind: str) -> Any:
    """None -> the shipped default model; False -> disabled (None); a model instance -> itself."""
    if value is False:
        return None
    if value is None:
        if kind == "illumination":
            from ..perturbations.illumination import IlluminationModel

            return IlluminationModel.default()
        from ..perturbations.motion import MotionModel

        return MotionModel.default()
    if value is True:
        raise ValueError(f"{name}=True is ambiguous: pass None for the shipped default model, False to disable "
                         "it, or a model instance")
    if not (callable(getattr(value, "sample", None)) and callable(getattr(value, "apply", None))):
        raise TypeError(f"{name} must be None (shipped default), False (disabled) or a perturbation model with "
                        f"sample() and apply(), got {type(value).__name__}")
    return value


class MIPairTransform(nn.Module):
    """Two (or ``n_views``) views per image, paired by the information they share under natural perturbation.

    A drop-in replacement for "RandomResizedCrop + flip + ColorJitter, twice" in contrastive pipelines
    (SimCLR, MoCo's ``TwoCropsTransform``, lightly's / solo-learn's multi-view transforms): ``t(x)`` returns a
    tuple of views. It works on one image (PIL, uint8 or float ``[C, H, W]`` tensor, in DataLoader workers and
    torchvision ``Compose``), returning the type it was given, and on a whole batch ``[B, C, H, W]`` on the GPU
    with the same semantics.

    Args:
        size: output size of every view (int or ``(h, w)``).
        scale, ratio: RandomResizedCrop bounds on the crop's area fraction and aspect ratio (``w / h``).
        n_candidates: K candidate pairs scored per image (ignored by the ``"random"`` policy).
        policy: ``"threshold"`` (default), ``"max"``, ``"min"``, ``"band"``, ``"softmax"``, ``"random"`` or a
            :class:`~mi_augment.crops.Policy` instance (``ThresholdPolicy(drop=0.3)``, ``BandPolicy(band=(lo,
            hi))``, ...).
        illumination, motion: None for the shipped default model (``IlluminationModel.default()`` /
            ``MotionModel.default()``), False to disable, or a model instance (e.g.
            ``IlluminationModel.uniform()`` for ColorJitter). Each view gets its own draw.
        flip: probability of mirroring each view left-right (drawn per view, independently of the scores).
        proxy_size: side of the square grid the candidate crops are rendered on for scoring.
        estimator, bins: the MI estimator (a name in ``mi_augment.mi.ESTIMATORS`` or a callable
            ``(x (..., N), y (..., N)) -> (...)``) and its bin count, for the default pixel scorer.
        n_views: number of views returned (>= 2); see the module docstring for how views beyond 2 are chosen.
        scorer: replaces the default :class:`~mi_augment.crops.PixelMIScorer`: any callable
            ``(proxy_a (B, K, N), proxy_b (B, K, N)) -> (B, K)``, or one with ``input_kind = "image"`` (such
            as :class:`~mi_augment.crops.FeatureScorer`) that receives ``(B, K, C, h, w)`` crops.
        sampling_ratio: samples per output bin for the view crops (see
            :func:`mi_augment.functional.crops.resized_crop`).
        illumination_strength, motion_strength: scale each draw's distance from "no change" while keeping the
            fitted shape (0 = identity, 1 = as fitted; see :meth:`PerturbationModel.sample`), as
            ``NaturalIllumination(strength=...)`` / ``NaturalMotion(strength=...)`` do. The same strengthened
            draws are scored and applied.
    """

    def __init__(self, size: int | tuple[int, int], scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0), n_candidates: int = 8,
                 policy: str | Policy = "threshold", illumination: Any = None, motion: Any = None,
                 flip: float = 0.5, proxy_size: int = 32, estimator: Any = "histogram", bins: int = 16,
                 n_views: int = 2, scorer: Any = None, sampling_ratio: int = -1,
                 illumination_strength: float = 1.0, motion_strength: float = 1.0):
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
        self.illumination = _resolve_model(illumination, "illumination", "illumination")
        self.motion = _resolve_model(motion, "motion", "motion")
        self.strengths = {"illumination": check_strength(illumination_strength, "illumination_strength"),
                          "motion": check_strength(motion_strength, "motion_strength")}

    @property
    def scale(self) -> tuple[float, float]:
        return self.sampler.scale

    @property
    def ratio(self) -> tuple[float, float]:
        return self.sampler.ratio

    # ------------------------------------------------------------------------------------------------------
    def _models(self) -> list[tuple[str, Any]]:
        return [("illumination", self.illumination), ("motion", self.motion)]

    def _sample_perturbations(self, b: int, generator: torch.Generator | None, device: torch.device) -> dict:
        out = {}
        for name, model in self._models():
            if model is None:
                out[name] = NoParams(torch.zeros(b, self.n_views, 0, device=device))
            else:
                drawn = model.sample(b * self.n_views, generator=generator,
                                     device=sampling_device(generator, device), strength=self.strengths[name]).to(device)
                out[name] = _stack_views(drawn, b, self.n_views)
        return out

    def _perturb(self, images: Tensor, illumination: Params, motion: Params, luma_only: bool = False) -> Tensor:
        """Apply the models (illumination, then motion: light reaches the sensor, then the exposure integrates
        the motion) with per-sample params whose leading dim matches ``images``.

        ``luma_only=True`` returns the luma ``[B, 1, H, W]`` of the result, for scoring. With the shipped
        :class:`~mi_augment.perturbations.motion.MotionModel` (a warp and a blur: linear, convex
        combinations of pixels, so they commute with luma and keep values in [0, 1]) the luma is taken
        before the motion, which then moves one channel instead of three; the result equals the luma of
        the three-channel result to float rounding."""
        out = images
        if self.illumination is not None:
            out = self.illumination.apply(out, illumination)
        fast = self.motion is not None and out.ndim == 4 and _shipped_motion(self.motion, motion)
        if luma_only and (self.motion is None or fast):
            out = luma(out)
        if fast:
            # The shipped MotionModel skips re-validating the float batch that forward() already checked.
            motion.check_batch(out.shape[0])
            _check_finite_params(motion)
            out = self.motion._apply_float(out, motion)
        elif self.motion is not None:
            out = self.motion.apply(out, motion)
        # The shipped motion kernels return a new tensor: clamp it in place (never anything a caller owns).
        out = out.clamp_(0.0, 1.0) if fast else out.clamp(0.0, 1.0)
        return luma(out) if luma_only else out

    def _scoring_luma(self, images: Tensor, illumination: Params, motion: Params) -> Tensor | None:
        """``luma(g_v(x))`` for every view ``v`` of each image, ``(B * V, 1, H, W)`` sample-major, like
        ``_perturb(images.repeat_interleave(V, 0), ..., luma_only=True)`` but without the ``V`` copies: the
        ``V`` illuminations of an image share its logarithm (:func:`~mi_augment.functional.color._illuminate`
        broadcasts ``(B, C, 1, H, W)`` against per-view parameters). ``illumination`` is shaped ``(B, V,
        ...)``, ``motion`` flat ``(B * V, ...)``. None unless the models are the shipped ones (or off) and
        the illumination has no ColorJitter factors."""
        from ..functional import color as fcolor

        if self.illumination is None or images.ndim != 4 or not _shipped_illumination(self.illumination, illumination):
            return None
        if self.motion is not None and not _shipped_motion(self.motion, motion):
            return None
        b, c, h, w = images.shape
        v = self.n_views
        flat = _flatten_views(illumination)
        flat.check_batch(b * v)
        _check_finite_params(flat)
        gamma, log_gain, shading, basis = _view_light(illumination, c, h, w, images)
        lit = fcolor._illuminate(images.unsqueeze(2), gamma, log_gain, _light_field(shading, basis))  # (B, C, V, H, W)
        out = luma(lit.movedim(2, 1)).reshape(b * v, 1, h, w)  # channels next to H, W, then sample-major
        if self.motion is not None:
            motion.check_batch(b * v)
            _check_finite_params(motion)
            out = self.motion._apply_float(out, motion)
        return out.clamp_(0.0, 1.0)

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

    def _render_candidate_proxies(self, small: Tensor, perturb: dict, anchor_boxes: Tensor, partner_boxes: Tensor,
                                  kind: str) -> list[Tensor]:
        """The scorer's inputs: for each view ``v``, ``g_v(x)`` at the working resolution (``small``), cropped
        to its candidate boxes (view 0: ``anchor_boxes (B, K, 4)``, view ``p + 1``: ``partner_boxes[:, p]``)
        on the proxy grid. Rendered a few images at a time on the CPU (see :meth:`_render_fused`)."""
        b, c = small.shape[:2]
        v = self.n_views
        illumination, motion = perturb["illumination"], perturb["motion"]
        step = chunk_rows(small, v * c * small.shape[-2] * small.shape[-1])
        chunks: list[list[Tensor]] = [[] for _ in range(v)]
        for r0 in range(0, b, step):
            rows = slice(r0, min(b, r0 + step))
            perturbed = None
            if kind == "luma":
                perturbed = self._scoring_luma(small[rows], illumination.index(rows),
                                               _flatten_views(motion.index(rows)))
            if perturbed is None:
                perturbed = self._perturb(  # g_v(x) for every view v of these images
                    small[rows].repeat_interleave(v, 0), _flatten_views(illumination.index(rows)),
                    _flatten_views(motion.index(rows)), luma_only=kind == "luma",
                )
            perturbed = perturbed.view(rows.stop - r0, v, *perturbed.shape[1:])
            for i in range(v):
                boxes = anchor_boxes[rows] if i == 0 else partner_boxes[rows, i - 1]
                chunks[i].append(render_proxies(perturbed[:, i], boxes, self.proxy_size, kind, pyramid=True))
        return [parts[0] if len(parts) == 1 else torch.cat(parts) for parts in chunks]

    # ------------------------------------------------------------------------------------------------------
    def plan(self, images: Tensor, generator: torch.Generator | None = None) -> PairInfo:
        """Draw candidates, score them, apply the policy: the :class:`PairInfo` for a float batch
        ``[B, C, H, W]`` (no views rendered)."""
        x = images
        b, _, h, w = x.shape
        dev = x.device
        v_count = self.n_views
        partners = v_count - 1
        scoring = self.policy.needs_scores
        k = self.n_candidates if scoring else 1

        perturb = self._sample_perturbations(b, generator, dev)
        flips = rand((b, v_count), generator, dev) < self.flip
        boxes = self.sampler.sample((b, v_count, k), h, w, generator=generator, device=dev)
        anchor_boxes, partner_boxes = boxes[:, 0], boxes[:, 1:]  # (B, K, 4), (B, P, K, 4)

        if scoring:
            kind = scorer_input_kind(self.scorer)
            small, factor = self._working_images(x.float())  # scores in float32 whatever the image dtype
            proxies = self._render_candidate_proxies(small, perturb, anchor_boxes * factor, partner_boxes * factor,
                                                     kind)
            anchor_proxy = proxies[0]
            scores, chosen, keep = [], [], []
            chosen_anchor = None
            for p in range(partners):
                partner_proxy = proxies[p + 1]
                a = anchor_proxy if chosen_anchor is None else chosen_anchor.expand_as(anchor_proxy)
                s = self.scorer(a, partner_proxy)
                if s.shape != (b, k):
                    raise ValueError(f"scorer returned shape {tuple(s.shape)}, expected (B, K) = {(b, k)}")
                s = s.float()
                idx = self.policy.select(s, generator)
                if chosen_anchor is None:  # the first round fixes the anchor crop
                    chosen_anchor = anchor_proxy[torch.arange(b, device=dev), idx].unsqueeze(1)
                    anchor_choice = idx
                scores.append(s)
                chosen.append(idx)
                keep.append(self.policy.keep_mask(s))
            scores_t = torch.stack(scores, 1)
            chosen_t = torch.stack(chosen, 1)
            keep_t = torch.stack(keep, 1)
            chosen_score = scores_t.gather(2, chosen_t.unsqueeze(2)).squeeze(2)
        else:
            scores_t = keep_t = None
            chosen_t = torch.zeros(b, partners, dtype=torch.long, device=dev)
            anchor_choice = chosen_t[:, 0]
            chosen_score = torch.full((b, partners), math.nan, device=dev)

        rows = torch.arange(b, device=dev)
        first = anchor_boxes[rows, anchor_choice]  # (B, 4)
        rest = partner_boxes[rows[:, None], torch.arange(partners, device=dev)[None], chosen_t]  # (B, P, 4)
        final_boxes = torch.cat([first[:, None], rest], 1)
        params = PairParams(final_boxes, flips, perturb["illumination"], perturb["motion"])
        candidate_iou = box_iou_pairs(anchor_boxes.unsqueeze(1), partner_boxes)  # (B, P, K)
        iou = box_iou_pairs(first.unsqueeze(1), rest)
        return PairInfo(params, scores_t, keep_t, chosen_t, chosen_score, anchor_boxes, partner_boxes,
                        candidate_iou, iou)

    def make_params(self, images: Tensor, generator: torch.Generator | None = None) -> PairParams:
        """Per-sample :class:`PairParams` for a float batch ``[B, C, H, W]`` (the transform contract)."""
        return self.plan(images, generator).params

    def transform(self, images: Tensor, params: PairParams) -> tuple[Tensor, ...]:
        """Render the views of a float batch ``[B, C, H, W]``: crop, resize, flip, perturb. Returns a tuple
        of ``n_views`` batches ``[B, C, *size]``."""
        params.check_batch(images.shape[0])
        params = params.to(images.device)
        b, v = params.boxes.shape[:2]
        motion = _motion_in_view_frame(params.motion, params.boxes, *images.shape[-2:])
        fused = self._render_fused(images, params, motion)
        if fused is not None:
            return tuple(fused)
        # Step by step (crop, then each model's apply), a few images at a time on the CPU (as the fused path).
        c = images.shape[1]
        views = [images.new_empty(b, c, *self.size) for _ in range(v)]
        step = chunk_rows(images, v * c * self.size[0] * self.size[1])
        for r0 in range(0, b, step):
            rows = slice(r0, min(b, r0 + step))
            crops = resized_crop(images[rows], params.boxes[rows], self.size, flip=params.flip[rows],
                                 sampling_ratio=self.sampling_ratio)
            out = self._perturb(crops.flatten(0, 1), _flatten_views(params.illumination.index(rows)),
                                _flatten_views(motion.index(rows)))  # (m * V, C, h, w), sample-major
            out = out.view(rows.stop - r0, v, *out.shape[1:])
            for i in range(v):
                views[i][rows] = out[:, i]
        return tuple(views)

    def _render_fused(self, images: Tensor, params: PairParams, motion: Params) -> list[Tensor] | None:
        """The ``V`` views (each a contiguous ``(B, C, h, w)``) with the shipped models in one sampling pass,
        or None (then :meth:`transform` crops and perturbs step by step).

        The crop and the camera motion's warp are one affine map from view pixels to image pixels, sampled
        once (:func:`~mi_augment.functional.geometry._crop_warp_ring`), together with the one-pixel mirrored
        ring the blur reads; the illumination is applied to that buffer (its shading mirrored onto the ring),
        then the blur's 3x3 taps. So the warp reads the scene around the crop (what a moving camera sees),
        not a mirror image of the crop, and the view is resampled once instead of twice. Taken when the
        motion model is the shipped :class:`~mi_augment.perturbations.motion.MotionModel` with every streak
        in the batch shorter than its 3x3 fast path, and the illumination model is off or the shipped
        :class:`~mi_augment.perturbations.illumination.IlluminationModel` without ColorJitter factors.

        On the CPU the batch is rendered a few images at a time (:func:`~mi_augment._chunks.chunk_rows`):
        every pass then runs over a buffer that stays in cache and is recycled by the allocator, instead of
        streaming (and page-faulting) a fresh batch-sized buffer through memory for each of the ~20 passes.
        """
        from ..functional import color as fcolor
        from ..functional.geometry import (
            _blur_taps3,
            _crop_warp_ring,
            motion_blur,
            motion_blur_kernels,
            similarity_matrices,
        )

        h, w = self.size
        if self.motion is None or images.ndim != 4 or h < 3 or w < 3 or not _shipped_motion(self.motion, motion):
            return None
        ill = self.illumination
        if ill is not None and not _shipped_illumination(ill, params.illumination):
            return None
        mp = _flatten_views(motion)
        n = mp.log_scale.shape[0]
        mp.check_batch(n)
        _check_finite_params(mp)
        mp = mp.to(images.device)
        length = (mp.blur_length.reshape(-1).clamp_min(0) * float(max(h, w))).to(images.dtype)
        angle = mp.blur_angle.reshape(-1).to(images.dtype)
        short = length < 2.0
        if not bool(short.any()):
            return None
        kernels = motion_blur_kernels(length, angle)
        pad = kernels.shape[-1] // 2
        if pad >= h or pad >= w:
            return None
        b, c = images.shape[:2]
        v = params.boxes.shape[1]
        hg, wg = h + 2, w + 2
        inverse = torch.linalg.inv(similarity_matrices(mp.log_scale.to(torch.float64), mp.rotation.to(torch.float64),
                                                       mp.translation.to(torch.float64), h, w))
        # Per-view parameters shaped (B, 1 or C, V, 1, 1) / (B, 1, V, hg, wg): they broadcast over the
        # view-major buffer (B, C, V, hg, wg) that the sampling writes.
        light = None
        if ill is not None:
            _flatten_views(params.illumination).check_batch(n)
            ill_params = params.illumination.to(images.device)
            if not ill_params.photometric_is_identity():
                light = _view_light(ill_params, c, h, w, images, ring=True)
        taps = None
        if pad:
            taps = torch.where(short[:, None, None], kernels, 0.0)[:, pad - 1:pad + 2, pad - 1:pad + 2].view(b, v, 3, 3)
        any_long = not bool(short.all())
        views = [images.new_empty(b, c, h, w) for _ in range(v)]
        padding_mode = self.motion.config["padding_mode"]
        step = chunk_rows(images, v * c * hg * wg)
        for r0 in range(0, b, step):
            rows = slice(r0, min(b, r0 + step))
            sampled = _crop_warp_ring(images[rows], params.boxes[rows], params.flip[rows],
                                      inverse[r0 * v:rows.stop * v], h, w, padding_mode=padding_mode,
                                      sampling_ratio=self.sampling_ratio, view_major=True)  # (m, C, V, hg, wg)
            if light is not None:
                gamma, log_gain, shading, basis = light
                field = _light_field(None if shading is None else shading[rows], basis)
                sampled = fcolor._illuminate(sampled, gamma[rows], log_gain[rows], field)
            for i in range(v):
                out = views[i][rows]
                if pad == 0:
                    out.copy_(sampled[:, :, i, 1:-1, 1:-1])
                else:
                    _blur_taps3(None, taps[rows, i], "reflect", padded=sampled[:, :, i], out=out)
                if any_long:
                    idx = (~short.view(b, v)[rows, i]).nonzero().squeeze(1)
                    if idx.numel():  # the few longer streaks: the dense blur of their (illuminated) views
                        inner = sampled[:, :, i].index_select(0, idx)[:, :, 1:-1, 1:-1]
                        sel = (idx + r0) * v + i
                        out.index_copy_(0, idx, motion_blur(inner, length.index_select(0, sel),
                                                            angle.index_select(0, sel)))
                out.clamp_(0.0, 1.0)  # while the chunk is in cache
        return views

    def forward(self, images: Any, generator: torch.Generator | None = None, params: PairParams | None = None,
                return_info: bool = False) -> Any:
        """Views of ``images`` as a tuple (each the type that came in); with ``return_info=True`` also the
        :class:`PairInfo` (``(views, info)``). ``params`` replays an earlier call's ``info.params``."""
        x, spec = to_float_batch(images, "images", (1, 3))
        check_generator(generator)
        info = None
        if params is None:
            info = self.plan(x, generator)
            params = info.params
        elif not isinstance(params, PairParams):
            raise TypeError(f"params must be the PairParams of an earlier call (info.params), got "
                            f"{type(params).__name__}")
        elif params.n_views != self.n_views:
            raise ValueError(f"params hold {params.n_views} views, this transform makes {self.n_views}")
        views = tuple(restore(v, spec) for v in self.transform(x, params))
        if return_info:
            if info is None:
                info = self._replay_info(params)
            return views, info
        return views

    def _replay_info(self, params: PairParams) -> PairInfo:
        """A :class:`PairInfo` for replayed params (no candidates or scores are known)."""
        b, v = params.boxes.shape[:2]
        dev = params.boxes.device
        first, rest = params.boxes[:, 0], params.boxes[:, 1:]
        return PairInfo(params, None, None, torch.zeros(b, v - 1, dtype=torch.long, device=dev),
                        torch.full((b, v - 1), math.nan, device=dev), first[:, None], rest[:, :, None],
                        box_iou_pairs(first[:, None, None], rest[:, :, None]), box_iou_pairs(first[:, None], rest))

    def extra_repr(self) -> str:
        parts = [f"size={self.size}", f"scale={self.scale}", f"ratio={tuple(round(r, 4) for r in self.ratio)}",
                 f"policy={self.policy}", f"flip={self.flip}", f"n_views={self.n_views}"]
        if self.policy.needs_scores:
            parts += [f"n_candidates={self.n_candidates}", f"proxy_size={self.proxy_size}", f"scorer={self.scorer!r}"]
        parts += [f"illumination={'off' if self.illumination is None else type(self.illumination).__name__}",
                  f"motion={'off' if self.motion is None else type(self.motion).__name__}"]
        parts += [f"{k}_strength={v}" for k, v in self.strengths.items() if v != 1.0]
        return ", ".join(parts)


def _transform_or_kwargs(transform: MIPairTransform | None, kwargs: dict[str, Any]) -> MIPairTransform:
    """The wrappers' ``transform`` argument: a ready :class:`MIPairTransform`, or None and its keyword arguments."""
    if transform is None:
        transform = MIPairTransform(**kwargs)
    elif kwargs:
        raise ValueError("pass either a ready MIPairTransform or its keyword arguments, not both")
    if not isinstance(transform, MIPairTransform):
        raise TypeError(f"transform must be an MIPairTransform, got {type(transform).__name__}")
    return transform


class MIPairAlbumentations:
    """An albumentations-style callable for numpy ``HWC`` uint8 pipelines.

    ``aug(image=array)`` returns ``{"image": view_0, "views": (view_0, view_1, ...)}`` with every view a
    numpy uint8 array of the input's layout (``HxW`` or ``HxWxC``). Put it after an ``albumentations.Compose``
    (which transforms one image) to make the positive pair. Like albumentations transforms it owns a seeded
    random generator: ``seed`` makes a run reproducible; without one it draws from torch's global RNG (which
    DataLoader seeds per worker).

    Args:
        transform: a ready :class:`MIPairTransform`; or leave it out and pass its arguments as keywords.
        seed: optional integer seed.
    """

    def __init__(self, transform: MIPairTransform | None = None, *, seed: int | None = None, **kwargs: Any):
        self.transform = _transform_or_kwargs(transform, kwargs)
        self.seed = seed
        self._generator = None
        if seed is not None:
            self.set_random_seed(seed)

    def set_random_seed(self, seed: int) -> None:
        """Reseed the generator (albumentations' ``Compose.set_random_seed`` convention)."""
        self.seed = int(seed)
        self._generator = torch.Generator().manual_seed(self.seed)

    def __call__(self, *, image: Any, **kwargs: Any) -> dict[str, Any]:
        views = self.transform(image, generator=self._generator)
        return {**kwargs, "image": views[0], "views": views}

    def __getstate__(self) -> dict[str, Any]:  # torch.Generator objects do not pickle; keep its state
        state = dict(self.__dict__)
        gen = state.pop("_generator")
        state["_generator_state"] = None if gen is None else gen.get_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        gen_state = state.pop("_generator_state")
        self.__dict__.update(state)
        self._generator = None
        if gen_state is not None:
            self._generator = torch.Generator()
            self._generator.set_state(gen_state)

    def __repr__(self) -> str:
        return f"MIPairAlbumentations({self.transform!r}, seed={self.seed})"


class MIPairCollate:
    """A DataLoader ``collate_fn`` that makes the views of a whole batch in the worker, with the batched path.

    Calling :class:`MIPairTransform` per image in DataLoader workers pays its per-call overhead on every
    image (a few hundred small tensor operations); collating first and transforming the batch in the worker
    keeps the workers' parallelism and gets the batched speed (see docs/mi_pairs.md#throughput)::

        loader = DataLoader(dataset, batch_size=256, num_workers=8, collate_fn=MIPairCollate(MIPairTransform(32)))
        for (view_a, view_b), labels in loader: ...

    Samples are images (PIL, ``HxWxC`` uint8 numpy arrays, or ``[C, H, W]`` uint8 / float tensors) or tuples
    whose first element is the image (the rest is collated by ``default_collate``). Every image of a batch
    must have the same size and channel count (a fixed-size dataset such as CIFAR or STL, or a ``Resize`` /
    ``CenterCrop`` before); otherwise use the transform per image. Views come out as float ``[B, C, h, w]`` in
    [0, 1] (``to_float=False`` keeps uint8 input as uint8 views). Randomness comes from torch's global RNG,
    which DataLoader seeds per worker.

    Args:
        transform: the :class:`MIPairTransform` (or its keyword arguments).
        to_float: convert uint8 batches to float in [0, 1] before transforming.
    """

    def __init__(self, transform: MIPairTransform | None = None, *, to_float: bool = True, **kwargs: Any):
        self.transform = _transform_or_kwargs(transform, kwargs)
        self.to_float = bool(to_float)

    @staticmethod
    def _as_tensor(image: Any, i: int) -> Tensor:
        """One sample's image as a ``[C, H, W]`` tensor (PIL and numpy as uint8, without a float copy)."""
        if isinstance(image, Tensor):
            if image.ndim != 3:
                raise ValueError(f"batch[{i}] must be one image [C, H, W], got shape {tuple(image.shape)}")
            return image
        converted = image_to_uint8(image, f"batch[{i}]")
        if converted is None:
            raise TypeError(f"batch[{i}] must be a PIL image, a numpy HxWxC uint8 array or a [C, H, W] "
                            f"tensor, got {type(image).__name__}")
        return converted[0]

    def __call__(self, batch: list[Any]) -> Any:
        from torch.utils.data import default_collate

        if not isinstance(batch, (list, tuple)) or len(batch) == 0:
            raise ValueError("MIPairCollate needs a non-empty list of samples")
        paired = isinstance(batch[0], (tuple, list))
        images = [s[0] if paired else s for s in batch]
        tensors = [self._as_tensor(img, i) for i, img in enumerate(images)]
        first = tensors[0]
        for i, t in enumerate(tensors):
            if t.shape != first.shape or t.dtype != first.dtype:
                raise ValueError(f"MIPairCollate needs images of one size and type; batch[0] is {tuple(first.shape)} "
                                 f"{first.dtype}, batch[{i}] is {tuple(t.shape)} {t.dtype}. Resize / crop them to "
                                 f"one size first, or call the transform per image")
        x = torch.stack(tensors)
        if self.to_float and x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        views = self.transform(x)
        if not paired:
            return views
        rest = default_collate([tuple(s[1:]) for s in batch])
        return (views, *rest)

    def __repr__(self) -> str:
        return f"MIPairCollate({self.transform!r}, to_float={self.to_float})"
