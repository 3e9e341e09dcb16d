"""``NaturalIllumination``: exposure, white-balance, tone and shading changes sampled from an
:class:`IlluminationModel` fitted to real footage; the drop-in for ``ColorJitter``."""

from __future__ import annotations

from ..perturbations.illumination import IlluminationModel
from .base import ModelTransform

__all__ = ["NaturalIllumination"]


class NaturalIllumination(ModelTransform):
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

    model_class = IlluminationModel
