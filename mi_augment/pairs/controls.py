"""Scorers that know something the MI scorers must find out: controls for what a score measures.

* :class:`OverlapScorer` scores a candidate pair by its IoU alone. Whatever an MI score adds beyond it is
  what the score knows of the content; on ``fmnist_scenes`` overlap alone finds the garment about as well as
  the pixel, feature and crop-vs-image MI scores do (``benchmarks/content_coverage.py``).
* :class:`ObjectCoverageScorer` scores a pair by how much of a *known* object box both crops hold (from
  annotations, or a generator that knows where it put the object): with ``policy="max"`` it keeps the pair
  that best shows the object, the ceiling a content-founded score could reach. The ablation's garment
  oracle uses it with :func:`mi_augment.datasets.scenes.garment_boxes`.

Both take ``input_kind = "boxes"`` (the images and the two views' candidate boxes) and run no network.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .sampler import box_iou_pairs

__all__ = ["ObjectCoverageScorer", "OverlapScorer", "box_coverage"]


def box_coverage(boxes: Tensor, objects: Tensor) -> Tensor:
    """Fraction of each object's box that a crop box holds: ``boxes (B, ..., 4)`` against ``objects (B, 4)``
    (all ``(x1, y1, x2, y2)``), shaped ``boxes.shape[:-1]``; NaN where the object box is NaN or empty."""
    if objects.ndim != 2 or objects.shape[-1] != 4 or boxes.shape[-1] != 4 or boxes.shape[0] != objects.shape[0]:
        raise ValueError(f"boxes must be (B, ..., 4) and objects (B, 4) with the same B, got {tuple(boxes.shape)} "
                         f"and {tuple(objects.shape)}")
    g = objects.to(boxes.dtype).view(objects.shape[0], *([1] * (boxes.ndim - 2)), 4)
    w = (torch.minimum(boxes[..., 2], g[..., 2]) - torch.maximum(boxes[..., 0], g[..., 0])).clamp_min(0)
    h = (torch.minimum(boxes[..., 3], g[..., 3]) - torch.maximum(boxes[..., 1], g[..., 1])).clamp_min(0)
    area = (g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1])
    return torch.where(area > 0, w * h / area.clamp_min(1e-12), torch.full_like(w, float("nan")))


class OverlapScorer:
    """Score = the IoU of the two crops (no pixels looked at): the overlap-only control for MI scores."""

    input_kind = "boxes"

    def __call__(self, images: Tensor, boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
        return box_iou_pairs(boxes_a, boxes_b).float()

    def __repr__(self) -> str:
        return "OverlapScorer()"


class ObjectCoverageScorer:
    """Score = the smaller, over the two crops, of the fraction of the object's box the crop holds.

    Args:
        objects: called with the float images ``(B, C, H, W)`` being scored, returns their object boxes
            ``(B, 4)`` ``(x1, y1, x2, y2)`` in their pixels (NaN rows for images without an object: those
            score 0 everywhere, so any policy draws among their candidates as if unscored).
    """

    input_kind = "boxes"

    def __init__(self, objects: Callable[[Tensor], Tensor]):
        if not callable(objects):
            raise TypeError(f"objects must be a callable returning (B, 4) boxes, got {type(objects).__name__}")
        self.objects = objects

    def __call__(self, images: Tensor, boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
        objects = self.objects(images)
        if not isinstance(objects, Tensor) or tuple(objects.shape) != (images.shape[0], 4):
            raise ValueError(f"objects(images) must return a ({images.shape[0]}, 4) tensor of boxes, got "
                             f"{tuple(getattr(objects, 'shape', ())) or type(objects).__name__}")
        objects = objects.to(boxes_a.device)
        score = torch.minimum(box_coverage(boxes_a, objects), box_coverage(boxes_b, objects))
        return score.nan_to_num(0.0).float()

    def __repr__(self) -> str:
        return f"ObjectCoverageScorer({self.objects!r})"
