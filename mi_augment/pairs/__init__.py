"""Candidate crop-pair sampling and MI-guided selection (see docs/mi_pairs.md): the four steps of
:class:`~mi_augment.transforms.MIPairTransform`, each public and replayable.

* steps: :func:`plan_candidates` (:mod:`.plan`), :func:`score_candidates` (:mod:`.score`),
  :func:`choose_candidate` (:mod:`.choose`) and :func:`render_views` / :func:`run_view_pipelines`
  (:mod:`.render`, the one renderer of a pair's views, for one image and for batches).

* :class:`BoxSampler`: vectorised RandomResizedCrop boxes, many candidates per image in one call.
* scorers: :class:`PixelMIScorer` (MI of aligned proxy pixels, the default), :class:`FeatureScorer`
  (pointwise MI of encoder features) and :class:`CropImageScorer` (pointwise MI of each crop with its
  whole image); :func:`pointwise_mi`, :func:`check_scores`; :func:`render_proxies` renders candidate crops
  on the common proxy grid.
* :data:`SCORERS` names every scorer class; :func:`make_scorer` builds one from its name and settings.
* policies: which candidate becomes the positive pair (``"max"``, ``"min"``, ``"band"``, ``"threshold"``,
  ``"topk"``, ``"softmax"``, ``"random"``).
"""

from .choose import PairInfo, choose_candidate, replay_info
from .controls import ObjectCoverageScorer, OverlapScorer, box_coverage
from .plan import PairCandidates, PairParams, plan_candidates
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
from .render import render_views, run_view_pipelines, view_matrices
from .sampler import BoxSampler, box_iou_pairs
from .score import score_candidates
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
    "PairCandidates", "PairInfo", "PairParams", "choose_candidate", "plan_candidates", "render_views",
    "replay_info", "run_view_pipelines", "score_candidates", "view_matrices",
]
