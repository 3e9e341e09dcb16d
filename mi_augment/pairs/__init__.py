"""Candidate crop-pair sampling and MI-guided selection (see docs/mi_pairs.md).

* :class:`BoxSampler`: vectorised RandomResizedCrop boxes, many candidates per image in one call.
* scorers: :class:`PixelMIScorer` (MI of aligned proxy pixels, the default), :class:`FeatureScorer`
  (pointwise MI of encoder features) and :class:`CropImageScorer` (pointwise MI of each crop with its
  whole image); :func:`pointwise_mi`, :func:`check_scores`; :func:`render_proxies` renders candidate crops
  on the common proxy grid.
* :data:`SCORERS` names every scorer class; :func:`make_scorer` builds one from its name and settings.
* policies: which candidate becomes the positive pair (``"max"``, ``"min"``, ``"band"``, ``"threshold"``,
  ``"topk"``, ``"softmax"``, ``"random"``).
"""

from .controls import ObjectCoverageScorer, OverlapScorer, box_coverage
from .policies import (
    POLICIES,
    BandPolicy,
    MaxPolicy,
    MinPolicy,
    Policy,
    RandomPolicy,
    SoftmaxPolicy,
    ThresholdPolicy,
    TopKPolicy,
    make_policy,
)
from .sampler import BoxSampler, box_iou_pairs
from .scorers import (
    INPUT_KINDS,
    SCORERS,
    CropImageScorer,
    FeatureScorer,
    PixelMIScorer,
    Scorer,
    check_scores,
    make_scorer,
    pointwise_mi,
    render_proxies,
    scorer_input_kind,
)

__all__ = [
    "INPUT_KINDS", "POLICIES", "SCORERS", "BandPolicy", "BoxSampler", "CropImageScorer", "FeatureScorer",
    "MaxPolicy", "MinPolicy", "ObjectCoverageScorer", "OverlapScorer", "PixelMIScorer", "Policy", "RandomPolicy",
    "Scorer", "SoftmaxPolicy", "ThresholdPolicy", "TopKPolicy", "box_coverage", "box_iou_pairs", "check_scores",
    "make_policy", "make_scorer", "pointwise_mi", "render_proxies", "scorer_input_kind",
]
