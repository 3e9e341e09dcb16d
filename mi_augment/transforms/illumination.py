"""``NaturalIllumination``: exposure, white-balance, tone and shading changes sampled from an
:class:`IlluminationModel` fitted to real footage; the drop-in for ``ColorJitter``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..core.validation import check_positive_int, to_float_batch
from ..perturbations.illumination import IlluminationModel
from .base import ModelTransform

__all__ = ["NaturalIllumination", "brightness_spread"]

#: images :meth:`NaturalIllumination.matching` needs at least, for its 5-95 % range to mean something
MIN_MATCHING_IMAGES = 20


def brightness_spread(changed: Tensor, images: Tensor, quantiles: tuple[float, float] = (0.05, 0.95)) -> float:
    """How much a transform changes brightness: the 5-95 % range (``quantiles``) over images of the log ratio
    of each image's mean intensity, ``changed`` over ``images`` (both ``[N, C, H, W]``, the same images in
    the same order). ColorJitter(0.4, ...) at p 0.8 gives about 0.73; the shipped illumination model at its
    fitted strength about 0.02 (real exposure changes between frames are small)."""
    if changed.shape != images.shape:
        raise ValueError(f"changed must have the shape of images {tuple(images.shape)}, got {tuple(changed.shape)}")
    ratio = (changed.flatten(1).float().mean(1).clamp_min(1e-4) / images.flatten(1).float().mean(1).clamp_min(1e-4))
    q = torch.quantile(ratio.log(), torch.tensor(quantiles, dtype=torch.float32))
    return float(q[1] - q[0])


class NaturalIllumination(ModelTransform):
    """Change each image's illumination by a per-sample draw from an :class:`IlluminationModel`.

    ::

        transform = NaturalIllumination()                                        # shipped, fitted on real video
        transform = NaturalIllumination(IlluminationModel().fit(["a.mp4", "b.mp4"]))   # your own footage
        transform = NaturalIllumination(IlluminationModel.uniform(0.4, 0.4, 0.4, 0.1))  # ColorJitter's prior
        transform = NaturalIllumination.matching(T.ColorJitter(0.4, 0.4, 0.4, 0.1), images)  # its spread, fitted shape

    For training, use :meth:`matching` (or ``strength`` about 50): at the fitted strength the changes are real
    footage's, far milder than ColorJitter's, and trained worse in the ablation (docs/results.md).

    Args:
        model: a fitted :class:`IlluminationModel`; ``None`` loads :meth:`IlluminationModel.default`.
        p: probability of applying the change to each sample. The fitted density already holds the
            near-identity changes that real footage shows, so the default is 1.0.
        strength: how far from "no change" each draw goes, keeping the fitted shape (correlations between
            gains, gamma and shading): 0 = identity, 1 = as fitted, 2 = twice as far in the log-gain / gamma /
            shading coordinates (see :meth:`PerturbationModel.sample`).

    Works on RGB and greyscale images (greyscale uses the mean gain and skips saturation and hue).
    """

    model_class = IlluminationModel

    @classmethod
    def matching(cls, reference: Callable[[Any], Any], images: Any, *, model: IlluminationModel | None = None,
                 p: float = 1.0, seed: int = 0, batched: bool = False, strength_range: tuple[float, float] = (2**-7, 2**10),
                 iterations: int = 24) -> NaturalIllumination:
        """The transform whose brightness changes spread as far as ``reference``'s, keeping the fitted shape.

        At its fitted strength the shipped model changes brightness far less than ColorJitter does (real
        exposure changes between frames are small), and trained worse in our ablation (docs/results.md);
        matched to ColorJitter's spread it was level with it. This finds that strength for your reference
        and images::

            natural = NaturalIllumination.matching(T.ColorJitter(0.4, 0.4, 0.4, 0.1), sample_images)
            natural.strength        # about 50 for the shipped model

        Args:
            reference: the transform to match, called on each image ``[C, H, W]`` float in [0, 1] (so
                torchvision's transforms draw per image), or once on the whole batch when ``batched``.
            images: at least 20 images of your domain (``[N, C, H, W]`` float in [0, 1] or uint8, or a
                list of PIL images / tensors); about 1,000 match within ~5 % (the 5-95 % range of a few
                hundred draws is noisy).
            model, p: as in the constructor.
            seed: seeds both sides' draws (torch's global generator for ``reference``, restored after);
                the match is deterministic for a given seed.
            strength_range: the strengths searched (bisection in log2).
            iterations: bisection steps.

        Raises ``ValueError`` when the reference does not change brightness, or changes it more than the
        largest strength in ``strength_range`` does.
        """
        if not callable(reference):
            raise TypeError(f"reference must be a callable transform, got {type(reference).__name__}")
        batch = _matching_images(images)
        lo, hi = (float(v) for v in strength_range)
        if not (0 < lo < hi and math.isfinite(hi)):
            raise ValueError(f"strength_range must be two finite numbers 0 < low < high, got {strength_range!r}")
        iterations = check_positive_int(iterations, "iterations")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if batched:
                changed = reference(batch)
            else:
                changed = torch.cat([to_float_batch(reference(img), "reference's output")[0] for img in batch])
        if batched:
            changed = to_float_batch(changed, "reference's output")[0]
        if changed.shape != batch.shape:
            raise ValueError(f"reference must return images of the input's shape {tuple(batch.shape[1:])}, "
                             f"got {tuple(changed.shape)}")
        target = brightness_spread(changed, batch)
        natural = cls(model, p=p, strength=1.0)

        def spread(strength: float) -> float:
            natural.strength = strength
            return brightness_spread(natural(batch, generator=torch.Generator().manual_seed(seed)), batch)

        if not target > 0:
            raise ValueError("reference does not change the images' brightness (spread 0): nothing to match")
        reach = spread(hi)
        if target > reach:
            raise ValueError(f"reference's brightness spread {target:.3g} is beyond what strength {hi:g} reaches "
                             f"({reach:.3g}); widen strength_range")
        a, b = math.log2(lo), math.log2(hi)
        for _ in range(iterations):
            mid = (a + b) / 2
            a, b = (mid, b) if spread(2**mid) < target else (a, mid)
        natural.strength = round(2 ** ((a + b) / 2), 2)
        return natural


def _matching_images(images: Any) -> Tensor:
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError(f"images must hold at least {MIN_MATCHING_IMAGES} images, got an empty sequence")
        parts = [to_float_batch(im, f"images[{i}]")[0] for i, im in enumerate(images)]
        if len({tuple(t.shape[1:]) for t in parts}) > 1:
            raise ValueError("images must all have one shape [C, H, W]; resize them first")
        batch = torch.cat(parts)
    else:
        batch = to_float_batch(images, "images")[0]
    if batch.shape[0] < MIN_MATCHING_IMAGES:
        raise ValueError(f"images must hold at least {MIN_MATCHING_IMAGES} images for a 5-95 % range, "
                         f"got {batch.shape[0]}")
    return batch
