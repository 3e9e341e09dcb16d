"""Selection policies: which of K scored candidate pairs becomes the positive pair.

Every policy is a categorical distribution over the K candidates of each image, computed from their scores:
``probabilities(scores (B, K)) -> (B, K)``. ``select`` draws one index per image from it with exactly one
uniform number per image (inverse CDF), so the count of random draws never depends on the scores or the
policy. The candidates with non-zero probability are the ones the policy *keeps* (shown by ``mi-augment
preview``).

* ``"max"``: the highest-scoring candidate (ties: the first).
* ``"min"``: the lowest-scoring candidate.
* ``"band"``: uniform among candidates whose score lies in ``band=(lo, hi)`` nats, or between the per-image
  ``quantiles=(qlo, qhi)`` of the K scores; if none does, the candidate closest to the band.
* ``"threshold"``: drop the lowest-scoring fraction ``drop`` (``floor(drop * K)`` candidates and any tied with
  them, never all), uniform among the rest.
* ``"softmax"``: probability proportional to ``exp(score / temperature)``.
* ``"random"``: uniform; needs no scores, so :class:`~mi_augment.transforms.pair.MIPairTransform` skips
  scoring altogether (plain RandomResizedCrop pairs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from .._random import rand
from .._validation import check_range

__all__ = [
    "BandPolicy", "MaxPolicy", "MinPolicy", "POLICIES", "Policy", "RandomPolicy", "SoftmaxPolicy",
    "ThresholdPolicy", "make_policy",
]


@dataclass(frozen=True)
class Policy:
    """Base class: subclasses implement :meth:`probabilities`."""

    #: registry name
    name = "policy"
    #: False only for policies that ignore the scores (then scoring is skipped)
    needs_scores = True

    def probabilities(self, scores: Tensor) -> Tensor:
        """Selection probabilities ``(B, K)`` (rows sum to 1) for candidate scores ``(B, K)``."""
        raise NotImplementedError

    def keep_mask(self, scores: Tensor) -> Tensor:
        """Candidates the policy may choose: bool ``(B, K)``."""
        return self.probabilities(scores) > 0

    def select(self, scores: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One candidate index per image, ``(B,)`` long, drawn from :meth:`probabilities`."""
        if scores.ndim != 2 or scores.shape[1] < 1:
            raise ValueError(f"scores must have shape (B, K) with K >= 1, got {tuple(scores.shape)}")
        probs = self.probabilities(scores)
        u = rand((scores.shape[0], 1), generator, scores.device).to(probs.dtype)
        cdf = probs.cumsum(1)
        cdf = cdf / cdf[:, -1:]
        return (cdf <= u).sum(1).clamp_max(scores.shape[1] - 1)


def _uniform_over(mask: Tensor) -> Tensor:
    m = mask.to(torch.float32)
    return m / m.sum(1, keepdim=True).clamp_min(1.0)


def _one_hot(index: Tensor, k: int) -> Tensor:
    return torch.nn.functional.one_hot(index, k).to(torch.float32)


@dataclass(frozen=True)
class MaxPolicy(Policy):
    """The highest-scoring candidate: the 'easiest' positive. InfoMin predicts too-easy pairs hurt."""

    name = "max"

    def probabilities(self, scores: Tensor) -> Tensor:
        return _one_hot(scores.argmax(1), scores.shape[1])


@dataclass(frozen=True)
class MinPolicy(Policy):
    """The lowest-scoring candidate: the hardest positive."""

    name = "min"

    def probabilities(self, scores: Tensor) -> Tensor:
        return _one_hot(scores.argmin(1), scores.shape[1])


@dataclass(frozen=True)
class RandomPolicy(Policy):
    """Uniform over candidates, scores ignored: the plain RandomResizedCrop baseline."""

    name = "random"
    needs_scores = False

    def probabilities(self, scores: Tensor) -> Tensor:
        return torch.full(scores.shape, 1.0 / scores.shape[1], device=scores.device)


@dataclass(frozen=True)
class ThresholdPolicy(Policy):
    """Drop the lowest-scoring ``drop`` fraction of the candidates, then choose uniformly among the rest.

    ``floor(drop * K)`` candidates are dropped (at most ``K - 1``). Candidates tied with the highest dropped
    score are dropped too (no tie is broken by candidate order), unless that would drop them all, in which
    case the best-scoring ones are kept.
    """

    drop: float = 0.5
    name = "threshold"

    def __post_init__(self):
        if isinstance(self.drop, bool) or not isinstance(self.drop, Real) or not 0.0 <= float(self.drop) < 1.0:
            raise ValueError(f"drop must be a fraction in [0, 1), got {self.drop!r}")
        object.__setattr__(self, "drop", float(self.drop))

    def probabilities(self, scores: Tensor) -> Tensor:
        k = scores.shape[1]
        n_drop = min(int(math.floor(self.drop * k + 1e-9)), k - 1)
        if n_drop == 0:
            return _uniform_over(torch.ones_like(scores, dtype=torch.bool))
        cut = scores.sort(dim=1).values[:, n_drop - 1 : n_drop]  # the highest dropped score
        keep = scores > cut
        keep = torch.where(keep.any(1, keepdim=True), keep, scores >= scores.amax(1, keepdim=True))
        return _uniform_over(keep)


@dataclass(frozen=True)
class BandPolicy(Policy):
    """Uniform among candidates scoring inside a band; the closest candidate when none does.

    Give exactly one of ``band=(lo, hi)`` (absolute, in the scorer's units: nats for MI) or
    ``quantiles=(qlo, qhi)`` (per image, over its K candidate scores, ``0 <= qlo <= qhi <= 1``).
    With neither, ``quantiles=(0.25, 0.75)``: the middle half.
    """

    band: tuple[float, float] | None = None
    quantiles: tuple[float, float] | None = None
    name = "band"

    def __post_init__(self):
        if self.band is not None and self.quantiles is not None:
            raise ValueError("give either band=(lo, hi) in nats or quantiles=(qlo, qhi), not both")
        if self.band is not None:
            object.__setattr__(self, "band", check_range(self.band, "band"))
        else:
            q = (0.25, 0.75) if self.quantiles is None else self.quantiles
            object.__setattr__(self, "quantiles", check_range(q, "quantiles", 0.0, 1.0))

    def probabilities(self, scores: Tensor) -> Tensor:
        if self.band is not None:
            lo = torch.full_like(scores[:, :1], self.band[0])
            hi = torch.full_like(scores[:, :1], self.band[1])
        else:
            q = torch.tensor(self.quantiles, dtype=scores.dtype, device=scores.device)
            lo, hi = torch.quantile(scores, q, dim=1, keepdim=True)  # each (B, 1)
        inside = (scores >= lo) & (scores <= hi)
        distance = torch.maximum(lo - scores, scores - hi).clamp_min(0)
        nearest = _one_hot(distance.argmin(1), scores.shape[1]).bool()
        keep = torch.where(inside.any(1, keepdim=True), inside, nearest)
        return _uniform_over(keep)


@dataclass(frozen=True)
class SoftmaxPolicy(Policy):
    """Probability proportional to ``exp(score / temperature)``: a soft 'max' (small temperature) that tends
    to uniform (large temperature)."""

    temperature: float = 0.1
    name = "softmax"

    def __post_init__(self):
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, Real) or not (math.isfinite(t) and t > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {t!r}")
        object.__setattr__(self, "temperature", float(t))

    def probabilities(self, scores: Tensor) -> Tensor:
        return torch.softmax(scores.float() / self.temperature, dim=1)


POLICIES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (MaxPolicy, MinPolicy, BandPolicy, ThresholdPolicy, SoftmaxPolicy, RandomPolicy)
}


def make_policy(policy: str | Policy, **options: Any) -> Policy:
    """A policy from its name and options (``make_policy("band", quantiles=(0.25, 0.75))``), or the given one.

    Raises ``ValueError`` for unknown names and for options the policy does not take.
    """
    if isinstance(policy, Policy):
        if options:
            raise ValueError(f"options {sorted(options)} were given with a ready-made {type(policy).__name__}; "
                             "set them on the policy instead")
        return policy
    if not isinstance(policy, str) or policy not in POLICIES:
        raise ValueError(f"policy must be one of {sorted(POLICIES)} or a Policy instance, got {policy!r}")
    cls = POLICIES[policy]
    try:
        return cls(**options)
    except TypeError:
        import dataclasses

        allowed = [f.name for f in dataclasses.fields(cls)]
        raise ValueError(f"policy {policy!r} takes options {allowed or 'none'}, got {sorted(options)}") from None
