"""Step 3 of a pair, *choose*: one candidate per image by a policy, from the mean score over the partner views.

:func:`choose_candidate` returns a :class:`PairInfo`: the :class:`~mi_augment.pairs.plan.PairParams` to render
and what the choice was made from (scores, the candidates the policy could keep, overlaps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .plan import PairCandidates, PairParams
from .policies import Policy
from .sampler import box_iou_pairs

__all__ = ["PairInfo", "choose_candidate", "replay_info"]


@dataclass(frozen=True)
class PairInfo:
    """The steps' results for one call (``return_info=True``). ``P = n_views - 1`` partner views.

    Attributes:
        params: the :class:`~mi_augment.pairs.plan.PairParams` (replay with ``t(images, params=info.params)``).
        candidates: the candidates the choice was made among (None for replayed params).
        scores: ``(B, P, K)`` candidate scores (nats for MI scorers); None when nothing was scored.
        keep: ``(B, K)`` bool, the candidates the policy could choose; None when nothing was scored.
        chosen: ``(B,)`` index of the chosen candidate.
        chosen_score: ``(B,)`` its mean score over the partner views (NaN when nothing was scored).
        candidate_iou: ``(B, P, K)`` overlap (IoU) of view 0's box with each partner's, per candidate.
        iou: ``(B, P)`` overlap of the chosen pairs (view 0 with view ``p + 1``).
    """

    params: PairParams
    candidates: PairCandidates | None
    scores: Tensor | None
    keep: Tensor | None
    chosen: Tensor
    chosen_score: Tensor

    @property
    def candidate_iou(self) -> Tensor:
        # computed when asked: a DataLoader worker's call never reads it
        boxes = self.candidates.boxes if self.candidates is not None else self.params.boxes[:, :, None]
        return box_iou_pairs(boxes[:, :1], boxes[:, 1:])

    @property
    def iou(self) -> Tensor:
        return box_iou_pairs(self.params.boxes[:, :1], self.params.boxes[:, 1:])


def choose_candidate(candidates: PairCandidates, policy: Policy, scores: Tensor | None = None,
                     generator: torch.Generator | None = None) -> PairInfo:
    """Pick one candidate per image by ``policy`` from the mean of the scores over the partner views.

    One image on the CPU (a DataLoader worker's call) is chosen by
    :meth:`~mi_augment.pairs.policies.Policy.select_one` on Python floats: the same draw and the same choice
    as the batched tensor form, without a dozen tensor ops on ``K`` numbers.

    Args:
        candidates: the plan step's candidates (boxes ``(B, V, K, 4)``).
        policy: the :class:`~mi_augment.pairs.policies.Policy` that chooses.
        scores: ``(B, V - 1, K)`` scores; None takes the first candidate (policies that need no scores).
        generator: the generator a random policy draws from.

    Shape:
        - Output ``params.boxes``: ``(B, V, 4)``; ``chosen``: ``(B,)``.

    Example:
        >>> from mi_augment.pairs import BoxSampler, make_policy
        >>> from mi_augment.pairs.plan import plan_candidates
        >>> c = plan_candidates(torch.rand(2, 3, 32, 32), BoxSampler(), 2, 4, 0.5)
        >>> info = choose_candidate(c, make_policy("max"), torch.rand(2, 1, 4))
        >>> info.params.boxes.shape, info.chosen.shape
        (torch.Size([2, 2, 4]), torch.Size([2]))
    """
    b, v, k = candidates.boxes.shape[:3]
    dev = candidates.boxes.device
    if scores is None:
        if policy.needs_scores and k > 1:
            raise ValueError(f"policy {policy.name!r} needs the scores of the {k} candidates")
        keep = None
        if b == 1 and dev.type == "cpu":  # one image (a DataLoader worker's call): numpy's few-element tensors
            chosen, chosen_score = torch.from_numpy(np.zeros(1, np.int64)), torch.from_numpy(np.array([np.nan], np.float32))
        else:
            chosen, chosen_score = torch.zeros(b, dtype=torch.long, device=dev), torch.full((b,), math.nan, device=dev)
    else:
        if not isinstance(scores, Tensor) or scores.shape != (b, v - 1, k):
            raise ValueError(f"scores must have shape (B, V - 1, K) = {(b, v - 1, k)}, got "
                             f"{tuple(getattr(scores, 'shape', ()))}")
        if b == 1 and dev.type == "cpu":  # one image (a DataLoader worker's call): the policy on Python floats
            return _choose_one(candidates, policy, scores, generator)
        total = scores.float().mean(1)
        chosen, keep = policy.select_and_keep(total, generator)  # the probabilities once
        chosen_score = total.gather(1, chosen[:, None])[:, 0]
    boxes = candidates.boxes.select(2, 0) if k == 1 else candidates.boxes[torch.arange(b, device=dev), :, chosen]
    params = PairParams(boxes, candidates.flip, candidates.perturbations)
    return PairInfo(params, candidates, scores, keep, chosen, chosen_score)


def _choose_one(candidates: PairCandidates, policy: Policy, scores: Tensor,
                generator: torch.Generator | None) -> PairInfo:
    """:func:`choose_candidate` for one CPU image by :meth:`~mi_augment.pairs.policies.Policy.select_one`: the
    same draw and choice without tensor ops on the ``K`` scores (the mean over one partner is the score)."""
    total = scores.float()
    row = (total.reshape(-1) if total.shape[1] == 1 else total.mean(1)[0]).tolist()
    index, kept = policy.select_one(row, generator, "cpu")
    boxes = torch.from_numpy(candidates.boxes.detach().numpy()[:, :, index].copy())  # (1, V, 4), a new tensor
    return PairInfo(PairParams(boxes, candidates.flip, candidates.perturbations), candidates, scores,
                    torch.from_numpy(np.array([kept])), torch.from_numpy(np.array([index], np.int64)),
                    torch.from_numpy(np.array([row[index]], np.float32)))


def replay_info(params: PairParams) -> PairInfo:
    """A :class:`PairInfo` for replayed params (no candidates or scores are known)."""
    b = params.boxes.shape[0]
    dev = params.boxes.device
    return PairInfo(params, None, None, None, torch.zeros(b, dtype=torch.long, device=dev),
                    torch.full((b,), math.nan, device=dev))
