"""Candidate crop-pair sampling and MI-guided selection (see docs/mi_pairs.md).

* :class:`BoxSampler`: vectorised RandomResizedCrop boxes, many candidates per image in one call.
* scorers: :class:`PixelMIScorer` (MI of aligned proxy pixels, the default) and :class:`FeatureScorer`
  (encoder features); :func:`render_proxies` renders candidate crops on the common proxy grid.
* policies: which candidate becomes the positive pair (``"max"``, ``"min"``, ``"band"``, ``"threshold"``,
  ``"softmax"``, ``"random"``).
"""

from .policies import (
    POLICIES,
    BandPolicy,
    MaxPolicy,
    MinPolicy,
    Policy,
    RandomPolicy,
    SoftmaxPolicy,
    ThresholdPolicy,
    make_policy,
)
from .sampler import BoxSampler, box_iou_pairs
from .scoring import FeatureScorer, PixelMIScorer, Scorer, render_proxies, scorer_input_kind

__all__ = [
    "POLICIES", "BandPolicy", "BoxSampler", "FeatureScorer", "MaxPolicy", "MinPolicy", "PixelMIScorer", "Policy",
    "RandomPolicy", "Scorer", "SoftmaxPolicy", "ThresholdPolicy", "box_iou_pairs", "make_policy", "render_proxies",
    "scorer_input_kind",
]
