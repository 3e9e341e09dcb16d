"""``NaturalMotion``: camera motion and motion blur sampled from a :class:`MotionModel` fitted to real video."""

from __future__ import annotations

from torch import Tensor

from ..perturbations.motion import MotionModel, MotionParams
from .base import ModelTransform

__all__ = ["NaturalMotion"]


class NaturalMotion(ModelTransform):
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

    Targets in a ``torchvision.transforms.v2`` pytree move with the image: ``BoundingBoxes`` become the box
    of their warped corners (clamped to the canvas unless their ``clamping_mode`` is None; rotated formats are
    moved exactly), ``KeyPoints`` are moved (not clamped), and a ``Mask`` is warped by nearest neighbour with
    the image's border mode, so it stays aligned with reflected content too. The blur does not touch them.
    """

    model_class = MotionModel

    def warp_matrices(self, params: MotionParams, height: int, width: int) -> Tensor:
        """The similarity of each draw as ``(B, 3, 3)`` float64 pixel matrices, input to output (the warp
        :meth:`MotionModel.apply` renders before its blur)."""
        return self.model.warp_matrices(params, height, width)

    @property
    def mask_padding_mode(self) -> str:
        return self.model.padding_mode
