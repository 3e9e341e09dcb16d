"""Step 1 of a pair, *plan*: K candidate crop tuples per image, the flips and every view's perturbation draws.

:func:`plan_candidates` returns a :class:`PairCandidates`; :class:`PairParams` is what the *choose* step keeps
of it (one candidate per image) and what the *render* step renders. Both are replayable
:class:`~mi_augment.core.params.Params` with leading dim ``B``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core.params import Params
from ..core.random import as_float32, rand, sampling_device
from .sampler import BoxSampler

__all__ = ["PairCandidates", "PairParams", "draw_one_image", "flatten_views", "one_image_draws",
           "one_image_from_uniforms", "plan_candidates", "stack_views"]


@dataclass(frozen=True)
class PairCandidates(Params):
    """What the plan step draws for a batch; leading dim ``B``.

    Attributes:
        boxes: ``(B, V, K, 4)`` candidate boxes ``(x1, y1, x2, y2)`` in input pixels: candidate ``k`` is the
            tuple of view boxes ``boxes[:, :, k]``; view 0 is the anchor.
        flip: ``(B, V)`` bool, mirror each view left-right (after cropping).
        perturbations: one entry per model of the chain, each the params of that model for every view,
            tensors shaped ``(B, V, ...)``.
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
        views: per view, the params of its pipeline's transforms (one
            :class:`~mi_augment.core.params.GatedParams` per replayable transform); empty until rendered.
    """

    boxes: Tensor
    flip: Tensor
    perturbations: tuple[Params, ...]
    views: tuple[tuple[Params, ...], ...] = ()

    @property
    def n_views(self) -> int:
        return int(self.boxes.shape[1])


def stack_views(params: Params, batch: int, views: int) -> Params:
    """Params drawn for ``batch * views`` samples (sample-major) as tensors ``(batch, views, ...)``.

    Example:
        >>> from mi_augment.perturbations import MotionModel
        >>> stack_views(MotionModel.default().identity_params(6), 2, 3).rotation.shape
        torch.Size([2, 3, 1])
    """
    return params.map(lambda t: t.reshape(batch, views, *t.shape[1:]))


def flatten_views(params: Params) -> Params:
    """``(B, V, ...)`` params as ``(B * V, ...)`` (sample-major): the inverse of :func:`stack_views`."""
    return params.map(lambda t: t.flatten(0, 1))


def plan_candidates(images: Tensor, sampler: BoxSampler, n_views: int, n_candidates: int, flip: float,
                    models: Sequence[Any] = (), strengths: Sequence[float] = (),
                    generator: torch.Generator | None = None) -> PairCandidates:
    """Draw the candidates for a float batch: every model's draws for the ``B * V`` views (in chain order),
    then the flips ``(B, V)``, then the boxes ``(B, V, K)``. Uses only the images' shape and device.

    Args:
        images: ``[B, C, H, W]``.
        sampler: the box sampler (RandomResizedCrop semantics).
        n_views, n_candidates: ``V`` views, ``K`` candidates per image.
        flip: probability of mirroring each view.
        models, strengths: the perturbation chain (anything with ``sample(n, generator=, device=,
            strength=)``; ``sample_views(batch, views, ...)`` where a model defines it) and each model's strength.
        generator: the generator every draw comes from.

    Shape:
        - Output boxes: ``(B, V, K, 4)``.

    Example:
        >>> c = plan_candidates(torch.rand(2, 3, 32, 32), BoxSampler(), 2, 4, 0.5)
        >>> c.boxes.shape, c.flip.shape
        (torch.Size([2, 2, 4, 4]), torch.Size([2, 2]))
    """
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a [B, C, H, W] tensor, got {getattr(images, 'shape', type(images))}")
    b, _, h, w = images.shape
    dev = images.device
    drawn = []
    on = sampling_device(generator, dev)
    for model, strength in zip(models, strengths):
        if callable(getattr(model, "sample_views", None)):  # the draws in (B, V) layout (one image's, built so)
            params = model.sample_views(b, n_views, generator=generator, device=on, strength=strength)
        else:
            params = stack_views(model.sample(b * n_views, generator=generator, device=on, strength=strength), b,
                                 n_views)
        drawn.append(params if on == dev else params.to(dev))
    shape, n_flips = (b, n_views, n_candidates), b * n_views
    if b == 1 and on.type == "cpu" and dev.type == "cpu":  # one image: its draws as Python numbers, then tensors
        flip_list, box_rows = draw_one_image(sampler, n_views, n_candidates, flip, h, w, generator)
        flips = torch.from_numpy(np.array([flip_list]))
        boxes = torch.from_numpy(np.array(box_rows, np.float32)).view(*shape, 4)
    elif on.type == "cpu" and dev.type == "cpu":  # one call: the CPU generator's numbers in the same order
        u = rand((n_flips + n_flips * n_candidates * sampler.draws_per_box,), generator, dev).numpy()
        flips = torch.from_numpy(u[:n_flips].reshape(b, n_views) < np.float32(flip))  # torch compares in float32
        boxes = sampler.boxes_from_uniforms(torch.from_numpy(u[n_flips:].reshape(-1, sampler.draws_per_box)), shape,
                                            h, w)
    else:
        flips = rand((b, n_views), generator, dev) < flip
        boxes = sampler.sample(shape, h, w, generator=generator, device=dev)
    return PairCandidates(boxes, flips, tuple(drawn))


def draw_one_image(sampler: BoxSampler, n_views: int, n_candidates: int, flip: float, height: int, width: int,
                   generator: torch.Generator | None = None) -> tuple[list[bool], list[list[float]]]:
    """One image's flips and candidate boxes as Python values, the draws :func:`plan_candidates` makes after the
    models' for a batch of one on the CPU (it calls this): one ``rand`` call, the ``V`` flips first (compared
    in float32, as torch compares), then ``V * K`` boxes (:meth:`BoxSampler.box_rows`, view-major).

    Args:
        sampler: the box sampler. n_views, n_candidates: ``V`` and ``K``. flip: the mirroring probability.
        height, width: the image's size. generator: a CPU generator (or None: the default one).

    Returns:
        ``V`` flips and ``V * K`` boxes ``[x1, y1, x2, y2]`` (float32 values).

    Example:
        >>> flips, boxes = draw_one_image(BoxSampler(), 2, 3, 0.5, 32, 32, torch.Generator().manual_seed(0))
        >>> len(flips), len(boxes)
        (2, 6)
    """
    u = rand((one_image_draws(sampler, n_views, n_candidates),), generator, "cpu").tolist()
    return one_image_from_uniforms(sampler, n_views, flip, height, width, u)


def one_image_draws(sampler: BoxSampler, n_views: int, n_candidates: int) -> int:
    """How many uniform numbers :func:`draw_one_image` draws: ``V`` flips and ``V * K`` boxes."""
    return n_views + n_views * n_candidates * sampler.draws_per_box


def one_image_from_uniforms(sampler: BoxSampler, n_views: int, flip: float, height: int, width: int,
                            u: Sequence[float]) -> tuple[list[bool], list[list[float]]]:
    """:func:`draw_one_image`'s flips and boxes from its uniform numbers ``u`` (a list of
    :func:`one_image_draws` float32 values, e.g. the head of a larger ``rand`` call's ``tolist()``: one CPU
    ``rand`` call gives the same numbers as consecutive calls of the sizes it spans).

    Example:
        >>> s = BoxSampler()
        >>> flips, boxes = one_image_from_uniforms(s, 2, 0.5, 32, 32, [0.25] * one_image_draws(s, 2, 1))
        >>> flips, len(boxes)
        ([True, True], 2)
    """
    threshold = as_float32(flip)
    return [x < threshold for x in u[:n_views]], sampler.box_rows(u[n_views:], height, width)

