"""``NaturalMotion``: camera motion and motion blur sampled from a :class:`MotionModel` fitted to real video."""

from __future__ import annotations

import torch
from torch import Tensor

from ..perturbations.base import check_strength
from ..perturbations.motion import MotionModel, MotionParams
from .base import RandomTransform

__all__ = ["NaturalMotion"]


class NaturalMotion(RandomTransform):
    """Warp each image by a natural camera motion (similarity: shift, rotation, zoom) and blur it with the
    motion blur that motion implies, all drawn per sample from a fitted :class:`MotionModel`.

    A drop-in for hand-tuned ``RandomAffine`` + motion blur::

        transform = NaturalMotion()                      # the shipped model, fitted on real footage
        transform = NaturalMotion(MotionModel().fit(["a.mp4", "b.mp4"]))   # or your own footage

    Args:
        model: a fitted :class:`MotionModel`; ``None`` loads :meth:`MotionModel.default`.
        p: probability of applying the motion to each sample. The default is 1.0 because the fitted density
            already contains "no motion": static cameras contribute near-identity observations in the
            proportion the footage shows them, so an extra gate would double-count stillness. Lower it only
            to mix in untouched images on purpose.
        strength: how far from "no motion" each draw goes, keeping the fitted shape (correlations between
            shift, rotation, zoom and blur): 0 = identity, 1 = as fitted, 2 = twice the shift, rotation,
            log-zoom and blur (see :meth:`PerturbationModel.sample`).

    Borders are reflected (no black corners), per the model's ``padding_mode``.
    """

    def __init__(self, model: MotionModel | None = None, p: float = 1.0, strength: float = 1.0):
        super().__init__(p=p)
        self.strength = check_strength(strength)
        if model is None:
            model = MotionModel.default()
        if not isinstance(model, MotionModel):
            raise TypeError(f"model must be a MotionModel or None, got {type(model).__name__}")
        if not model.is_fitted:
            raise ValueError("model has no fitted density; call model.fit(clips) or use MotionModel.default()")
        self.model = model

    def make_params(self, images: Tensor, generator: torch.Generator | None = None) -> MotionParams:
        return self.model.sample(images.shape[0], generator=generator, device=images.device, strength=self.strength)

    def transform(self, images: Tensor, params: MotionParams) -> Tensor:
        return self.model.apply(images, params)

    def extra_repr(self) -> str:
        return f"p={self.p}, strength={self.strength}, model={type(self.model).__name__}({self.model.density!r})"
