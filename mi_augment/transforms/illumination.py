"""``NaturalIllumination``: exposure, white-balance, tone and shading changes sampled from an
:class:`IlluminationModel` fitted to real footage; the drop-in for ``ColorJitter``."""

from __future__ import annotations

import torch
from torch import Tensor

from ..perturbations.base import check_strength
from ..perturbations.illumination import IlluminationModel, IlluminationParams
from .base import RandomTransform

__all__ = ["NaturalIllumination"]


class NaturalIllumination(RandomTransform):
    """Change each image's illumination by a per-sample draw from an :class:`IlluminationModel`.

    ::

        transform = NaturalIllumination()                                        # shipped, fitted on real video
        transform = NaturalIllumination(IlluminationModel().fit(["a.mp4", "b.mp4"]))   # your own footage
        transform = NaturalIllumination(IlluminationModel.uniform(0.4, 0.4, 0.4, 0.1))  # ColorJitter's prior

    Args:
        model: a fitted :class:`IlluminationModel`; ``None`` loads :meth:`IlluminationModel.default`.
        p: probability of applying the change to each sample. The fitted density already holds the
            near-identity changes that real footage shows, so the default is 1.0.
        strength: how far from "no change" each draw goes, keeping the fitted shape (correlations between
            gains, gamma and shading): 0 = identity, 1 = as fitted, 2 = twice as far in the log-gain / gamma /
            shading coordinates (see :meth:`PerturbationModel.sample`).

    Works on RGB and greyscale images (greyscale uses the mean gain and skips saturation and hue).
    """

    def __init__(self, model: IlluminationModel | None = None, p: float = 1.0, strength: float = 1.0):
        super().__init__(p=p)
        self.strength = check_strength(strength)
        if model is None:
            model = IlluminationModel.default()
        if not isinstance(model, IlluminationModel):
            raise TypeError(f"model must be an IlluminationModel or None, got {type(model).__name__}")
        if not model.is_fitted:
            raise ValueError("model has no fitted density; call model.fit(data) or use IlluminationModel.default()")
        self.model = model

    def make_params(self, images: Tensor, generator: torch.Generator | None = None) -> IlluminationParams:
        return self.model.sample(images.shape[0], generator=generator, device=images.device, strength=self.strength)

    def transform(self, images: Tensor, params: IlluminationParams) -> Tensor:
        return self.model.apply(images, params)

    def extra_repr(self) -> str:
        return f"p={self.p}, strength={self.strength}, model={type(self.model).__name__}(groups={self.model.config['groups']}, {self.model.density!r})"
