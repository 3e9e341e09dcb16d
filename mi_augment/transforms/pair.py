"""``MIPairTransform``: positive pairs of views chosen among K candidate crop pairs by the information they
share under natural perturbation (see docs/mi_pairs.md).

A composition of the four public steps of :mod:`mi_augment.pairs`, each replayable, so a training step can run
them on a GPU batch with its own encoder as the scorer: :meth:`~MIPairTransform.plan`
(:mod:`~mi_augment.pairs.plan`), :meth:`~MIPairTransform.score` (:mod:`~mi_augment.pairs.score`),
:meth:`~MIPairTransform.choose` (:mod:`~mi_augment.pairs.choose`) and :meth:`~MIPairTransform.render`
(:mod:`~mi_augment.pairs.render`). ``t(images)`` runs the four; with the ``"random"`` policy nothing is scored
(K = 1): the views are plain RandomResizedCrop + flip + perturbation + the view pipelines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_unflatten  # the pytree utilities torchvision v2 uses
from torchvision import tv_tensors

from ..core.validation import (
    check_generator,
    check_positive_int,
    check_probability,
    restore_views,
    to_float_batch,
)
from ..pairs.choose import PairInfo, choose_candidate, replay_info
from ..pairs.one_image import views_uint8, views_uint8_batch
from ..pairs.plan import PairCandidates, PairParams, plan_candidates
from ..pairs.policies import Policy, make_policy
from ..pairs.render import render_views, run_view_pipelines, view_matrices
from ..pairs.sampler import BoxSampler
from ..pairs.score import score_candidates
from ..pairs.scorers import make_scorer
from ..pairs.targets import TARGET_TYPES, target_in_view
from .base import image_leaves
from .pair_options import (
    check_size,
    float_batch,
    normalize_stats,
    perturbation_chain,
    refuse_moved,
    view_pipelines,
)

__all__ = ["MIPairTransform", "PairCandidates", "PairInfo", "PairParams"]


class MIPairTransform(nn.Module):
    """Two (or ``n_views``) views per image, paired by the information they share.

    A drop-in replacement for "RandomResizedCrop + flip + ColorJitter, twice" in contrastive pipelines
    (SimCLR, MoCo's ``TwoCropsTransform``, lightly's multi-view transforms): ``t(x)`` returns a tuple of
    views. It works on one image (PIL, uint8 or float ``[C, H, W]`` tensor, in DataLoader workers and
    torchvision ``Compose``), returning the type it was given, and on a whole batch ``[B, C, H, W]`` on the
    GPU with the same semantics. Views come back as float tensors when ``normalize`` is set or a view
    pipeline leaves [0, 1] (e.g. ``v2.Normalize``): never clamped into uint8 or PIL.

    The defaults follow the ablation (docs/results.md): SimCLR's per-view colour operations
    (``view_transforms="simclr"``), with the crop pair chosen among ``n_candidates`` scored candidates. The
    shipped natural models are opt-in (``illumination="default", motion="default"``). :meth:`byol` and
    :meth:`moco_v3` give those recipes' asymmetric views.

    Args:
        size: output size of every view (int or ``(h, w)``).
        scale, ratio: RandomResizedCrop bounds on the crop's area fraction and aspect ratio (``w / h``).
        n_candidates: K candidate crop tuples scored per image (ignored by the ``"random"`` policy).
        policy: a name in :data:`~mi_augment.pairs.POLICIES` (``"threshold"`` by default) or a Policy.
        illumination, motion: a model instance, ``"default"`` (the shipped model, fitted on real footage), the
            path of a saved model, or None (default: off). Each view gets its own draw, scored and applied.
        perturbations: further models (``sample(n, generator=, device=, strength=)`` and ``apply``), after
            illumination and motion, each view with its own draw.
        flip: probability of mirroring each view left-right.
        n_views: number of views returned (>= 2).
        scorer: a name in :data:`~mi_augment.pairs.SCORERS` (default ``"pixel"``: histogram MI of luma on a
            32 x 32 proxy grid), a scorer instance, or any callable (see :mod:`mi_augment.pairs.scorers`).
            The scorer owns its settings (``estimator``, ``bins``, ``proxy_size``).
        sampling_ratio: samples per output bin for the view crops (:func:`~mi_augment.functional.resized_crop`).
        illumination_strength, motion_strength: scale each draw's distance from "no change" (0 = identity).
        view_transforms: each view's own pipeline after the perturbations: ``"simclr"`` (default),
            ``"byol"``, None, one list for every view, or one list per view. Our transforms replay exactly;
            other callables are called as they are.
        normalize: None, True (ImageNet's mean and std) or ``{"mean": ..., "std": ...}``: views come back as
            normalised float tensors (lightly's ``SimCLRTransform(normalize=...)``).

    Example:
        >>> t = MIPairTransform(16, view_transforms=None)
        >>> a, b = t(torch.rand(3, 32, 32), generator=torch.Generator().manual_seed(0))
        >>> a.shape, b.shape
        (torch.Size([3, 16, 16]), torch.Size([3, 16, 16]))
    """

    def __init__(self, size: int | tuple[int, int], scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0), n_candidates: int = 8,
                 policy: str | Policy = "threshold", illumination: Any = None, motion: Any = None,
                 flip: float = 0.5, n_views: int = 2, scorer: Any = "pixel", sampling_ratio: int = -1,
                 illumination_strength: float = 1.0, motion_strength: float = 1.0,
                 perturbations: Sequence[Any] = (), view_transforms: Any = "simclr", normalize: Any = None,
                 **moved: Any):
        super().__init__()
        refuse_moved(moved)
        self.size = check_size(size)
        self.sampler = BoxSampler(scale, ratio)
        self.n_candidates = check_positive_int(n_candidates, "n_candidates")
        self.policy = make_policy(policy)
        self.flip = check_probability(flip, "flip")
        self.n_views = check_positive_int(n_views, "n_views", minimum=2)
        if not (sampling_ratio == -1 or (isinstance(sampling_ratio, int) and sampling_ratio >= 1)):
            raise ValueError(f"sampling_ratio must be -1 (adaptive) or an integer >= 1, got {sampling_ratio!r}")
        self.sampling_ratio = int(sampling_ratio)
        scorer = "pixel" if scorer is None else scorer
        self.scorer = make_scorer(scorer) if self.policy.needs_scores or not isinstance(scorer, str) else None
        self.perturbation_names, self.perturbations, self.strengths = perturbation_chain(
            illumination, motion, illumination_strength, motion_strength, perturbations)
        self.view_transforms = view_pipelines(view_transforms, self.n_views, self.size)
        self.normalize = normalize_stats(normalize)
        # registered so .to(device) / .eval() reach transforms and encoders that are modules
        self._view_modules = nn.ModuleList([t for p in self.view_transforms for t in p if isinstance(t, nn.Module)])

    @classmethod
    def simclr(cls, size: int | tuple[int, int], *, jitter: float = 0.4, blur: bool | None = None,
               **kwargs: Any) -> MIPairTransform:
        """SimCLR's views (Chen et al. 2020) with MI-chosen crops: scale (0.08, 1), flip, colour jitter
        (``jitter`` brightness/contrast/saturation, ``jitter / 4`` hue) p 0.8, grayscale p 0.2, Gaussian blur
        p 0.5 (``blur``: None = on from 64 px, as every preset). Any argument can be overridden."""
        from .presets import simclr_views

        return cls(size, **{"view_transforms": simclr_views(size, jitter=jitter, blur=blur), **kwargs})

    @classmethod
    def byol(cls, size: int | tuple[int, int], **kwargs: Any) -> MIPairTransform:
        """BYOL's asymmetric views (Grill et al. 2020) with MI-chosen crops: jitter (0.4, 0.4, 0.2, 0.1) p 0.8,
        grayscale p 0.2; view 0 always blurred, view 1 blurred p 0.1 and solarized p 0.2."""
        from .presets import byol_views

        return cls(size, **{"view_transforms": byol_views(size), **kwargs})

    @classmethod
    def moco_v3(cls, size: int | tuple[int, int], **kwargs: Any) -> MIPairTransform:
        """MoCo v3's views (Chen et al. 2021; BYOL's asymmetric recipe) with MI-chosen crops."""
        return cls.byol(size, **kwargs)

    @property
    def scale(self) -> tuple[float, float]:
        return self.sampler.scale

    @property
    def ratio(self) -> tuple[float, float]:
        return self.sampler.ratio

    @property
    def proxy_size(self) -> int:
        """The scorer's proxy grid side (32 for scorers that do not say)."""
        return int(getattr(self.scorer, "proxy_size", 32))

    # ---- the four steps ------------------------------------------------------------------------------------
    def plan(self, images: Tensor, generator: torch.Generator | None = None) -> PairCandidates:
        """Step 1: K candidate crop tuples, the flips and every view's perturbations for a float batch."""
        k = self.n_candidates if self.policy.needs_scores else 1
        return plan_candidates(images, self.sampler, self.n_views, k, self.flip, self.perturbations,
                               self.strengths, generator)

    def score(self, images: Tensor, candidates: PairCandidates) -> Tensor:
        """Step 2: scores ``(B, V - 1, K)``, what view 0's box ``k`` shares with partner view ``p``'s box ``k``."""
        if self.scorer is None:
            raise ValueError(f"policy {self.policy.name!r} needs no scores and this transform has no scorer")
        return score_candidates(float_batch(images), candidates, self.scorer, self.perturbations, self.proxy_size,
                                self.scale[0])

    def choose(self, candidates: PairCandidates, scores: Tensor | None = None,
               generator: torch.Generator | None = None) -> PairInfo:
        """Step 3: one candidate per image by the policy, from the mean score over the partner views."""
        return choose_candidate(candidates, self.policy, scores, generator)

    def render(self, images: Tensor, params: PairParams, generator: torch.Generator | None = None,
               return_params: bool = False) -> Any:
        """Step 4: the ``V`` views ``[B, C, *size]`` of a float batch (crop, flip, perturbations, then each
        view's pipeline, replayed when ``params.views`` holds its draws). ``return_params=True`` also returns
        ``params`` with the pipelines' draws filled in."""
        return self._render(float_batch(images), params, generator, return_params)

    def _render(self, x: Tensor, params: PairParams, generator: torch.Generator | None, return_params: bool) -> Any:
        if not isinstance(params, PairParams):
            raise TypeError(f"params must be the PairParams of an earlier call (info.params), got "
                            f"{type(params).__name__}")
        if params.n_views != self.n_views:
            raise ValueError(f"params hold {params.n_views} views, this transform makes {self.n_views}")
        if len(params.perturbations) != len(self.perturbations):
            raise ValueError(f"params hold draws of {len(params.perturbations)} perturbation models, this "
                             f"transform has {len(self.perturbations)} ({', '.join(self.perturbation_names)})")
        params.check_batch(x.shape[0])
        params = params.to(x.device)
        views = tuple(render_views(self.perturbations, x, params, self.size, self.sampling_ratio))
        if any(self.view_transforms):
            views, drawn = run_view_pipelines(views, self.view_transforms, params.views, generator)
            params = replace(params, views=drawn)
        views = tuple(self._normalised(v) for v in views)
        return (views, params) if return_params else views

    def make_params(self, images: Tensor, generator: torch.Generator | None = None) -> PairParams:
        """Plan, score and choose for a float batch ``[B, C, H, W]``: the :class:`PairParams` to render."""
        return self._choose_for(images, generator).params

    def view_matrices(self, params: PairParams, height: int, width: int) -> Tensor:
        """``(B, V, 3, 3)`` float64 input-to-view pixel matrices (:func:`~mi_augment.pairs.render.view_matrices`)."""
        return view_matrices(self.perturbations, params, height, width, self.size)

    # ---- the one-call form ---------------------------------------------------------------------------------
    def forward(self, *inputs: Any, generator: torch.Generator | None = None, params: PairParams | None = None,
                return_info: bool = False) -> Any:
        """Views of one image or a batch, as a tuple (each the type that came in, or float, see the class
        docs); with ``return_info=True`` also the :class:`PairInfo`. ``params`` replays an earlier call's
        ``info.params``. The input may be a torchvision v2 pytree of one image and its targets: then one
        pytree per view, ``BoundingBoxes``, ``Mask`` and ``KeyPoints`` moved onto the view's canvas."""
        if not inputs:
            raise TypeError("forward() needs an image or a pytree holding one, got no input")
        for extra in inputs[1:]:  # params / generator given positionally would be read as targets
            if isinstance(extra, (PairParams, torch.Generator)):
                name = "params" if isinstance(extra, PairParams) else "generator"
                raise TypeError(f"pass {name} as a keyword ({name}=...); extra positional inputs are targets")
        check_generator(generator)
        single = inputs[0] if len(inputs) == 1 else None
        if single is not None and not isinstance(single, (tuple, list, dict)) and (
                not isinstance(single, tv_tensors.TVTensor) or isinstance(single, tv_tensors.Image)):
            one = views_uint8(self, single, generator, params, return_info)  # the CPU uint8 backend, where it applies
            if one is None and type(single) is torch.Tensor and single.ndim == 4:
                one = views_uint8_batch(self, single, generator, params, return_info)
            if one is not None:
                return one if return_info else one[0]
            x, spec = to_float_batch(single, "images", (1, 3))
            views, info = self._views(x, generator, params, return_info)
            views = self._restore(views, spec)
            return (views, info) if return_info else views
        return self._forward_pytree(single if single is not None else inputs, generator, params, return_info)

    def _choose_for(self, x: Tensor, generator: torch.Generator | None) -> PairInfo:
        candidates = self.plan(x, generator)
        scores = None
        if self.policy.needs_scores:  # x is checked already: the step itself, not its public wrapper
            scores = score_candidates(x, candidates, self.scorer, self.perturbations, self.proxy_size, self.scale[0])
        return self.choose(candidates, scores, generator)

    def _views(self, x: Tensor, generator: torch.Generator | None, params: PairParams | None,
               return_info: bool) -> tuple[tuple[Tensor, ...], PairInfo | None]:
        info = self._choose_for(x, generator) if params is None else None
        views, params = self._render(x, info.params if info is not None else params, generator, True)
        if info is not None:
            info = replace(info, params=params)
        elif return_info:
            info = replay_info(params)
        return views, info

    def _normalised(self, view: Tensor) -> Tensor:
        if self.normalize is None:
            return view
        mean, std = (torch.tensor(s, dtype=view.dtype, device=view.device).view(-1, 1, 1) for s in self.normalize)
        return (view - mean) / std

    def _restore(self, views: tuple[Tensor, ...], spec: Any) -> tuple[Any, ...]:
        """The views as the input's type, unless they are normalised or a pipeline left [0, 1]: then float
        tensors (``[C, h, w]`` for one image), so no value is clamped away."""
        foreign = any(not callable(getattr(t, "apply_gated", None)) for p in self.view_transforms for t in p)
        if self.normalize is not None or (foreign and any(float(v.min()) < 0 or float(v.max()) > 1 for v in views)):
            return tuple(v if spec.kind == "tensor" and spec.batched else v[0] for v in views)
        return restore_views(views, spec)

    def _forward_pytree(self, tree: Any, generator: torch.Generator | None, params: PairParams | None,
                        return_info: bool) -> Any:
        flat, structure = tree_flatten(tree)
        if any(isinstance(leaf, tv_tensors.Video) for leaf in flat):
            raise TypeError("MIPairTransform does not take tv_tensors.Video; pass its frames [T, C, H, W] as a plain "
                            "tensor batch (one pair per frame)")
        images = image_leaves(flat)
        if len(images) != 1:
            found = ", ".join(sorted({type(v).__name__ for v in flat}))
            raise TypeError(f"MIPairTransform takes one image per call with its targets, found {len(images)} images "
                            f"among the inputs ({found})")
        image = flat[images[0]]
        x, spec = to_float_batch(image, "images", (1, 3))
        views, info = self._views(x, generator, params, True)
        targets = [i for i, leaf in enumerate(flat) if isinstance(leaf, TARGET_TYPES)]
        matrices = None
        if targets:
            if x.shape[0] != 1:
                raise ValueError(f"targets with a batch of {x.shape[0]} images are ambiguous; transform one image "
                                 "per call (its targets follow each view)")
            matrices = self.view_matrices(info.params, *x.shape[-2:])[0]  # (V, 3, 3)
        padding = next((m.padding_mode for m in reversed(self.perturbations) if hasattr(m, "padding_mode")), "zeros")
        out = []
        for v, restored in enumerate(self._restore(views, spec)):
            leaves = list(flat)
            if isinstance(image, tv_tensors.Image) and not isinstance(restored, tv_tensors.Image):
                restored = tv_tensors.wrap(restored, like=image)
            leaves[images[0]] = restored
            for i in targets:
                leaves[i] = target_in_view(flat[i], matrices[v:v + 1], tuple(x.shape[-2:]), self.size, padding)
            out.append(tree_unflatten(leaves, structure))
        return (tuple(out), info) if return_info else tuple(out)

    def __repr__(self) -> str:  # the view transforms once (not again as registered children)
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        parts = [f"size={self.size}", f"scale={self.scale}", f"ratio={tuple(round(r, 4) for r in self.ratio)}",
                 f"policy={self.policy}", f"flip={self.flip}", f"n_views={self.n_views}"]
        if self.policy.needs_scores:
            parts += [f"n_candidates={self.n_candidates}", f"scorer={self.scorer!r}"]
        chain = [f"{n}={type(m).__name__}" + (f"(strength={s})" if s != 1.0 else "")
                 for n, m, s in zip(self.perturbation_names, self.perturbations, self.strengths)]
        parts.append("perturbations=[" + ", ".join(chain) + "]")
        if any(self.view_transforms):
            parts.append(f"view_transforms={[list(map(repr, p)) for p in self.view_transforms]}")
        if self.normalize is not None:
            parts.append(f"normalize={{'mean': {self.normalize[0]}, 'std': {self.normalize[1]}}}")
        return ", ".join(parts)

