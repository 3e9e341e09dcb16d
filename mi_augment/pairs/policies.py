"""Selection policies: which of K scored candidate pairs becomes the positive pair.

Every policy is a categorical distribution over the K candidates of each image, computed from their scores:
``probabilities(scores (B, K)) -> (B, K)``. ``select`` draws one index per image from it with exactly one
uniform number per image (inverse CDF), so the count of random draws never depends on the scores or the
policy. The candidates with non-zero probability are the ones the policy *keeps* (shown by ``mi-augment
preview``).

* ``"max"``: the highest-scoring candidate (ties: the first).
* ``"min"``: the lowest-scoring candidate.
* ``"band"``: uniform among candidates whose score lies in ``band=(lo, hi)`` nats, or between the per-image
  ``quantiles=(qlo, qhi)`` of the K scores (InfoMin's quantile band); if none does, the candidate closest to
  the band.

Policies that rank the candidates (all but ``random``, ``softmax`` and an absolute ``band``) raise a
``ValueError`` for K = 1: there is nothing to rank.
* ``"threshold"``: reject the lowest: drop the lowest-scoring fraction ``drop`` (``floor(drop * K)`` candidates
  and any tied with them, never all), uniform among the rest.
* ``"topk"``: uniform among the ``k`` highest-scoring candidates (a count: for large sets such as a queue).
* ``"softmax"``: probability proportional to ``exp(score / temperature)``.
* ``"random"``: uniform; needs no scores, so :class:`~mi_augment.transforms.pair.MIPairTransform` skips
  scoring altogether (plain RandomResizedCrop pairs).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from ..core.random import as_float32, as_float32s, rand
from ..core.validation import check_range

__all__ = [
    "BandPolicy", "MaxPolicy", "MinPolicy", "POLICIES", "Policy", "RandomPolicy", "SoftmaxPolicy",
    "ThresholdPolicy", "TopKPolicy", "make_policy",
]


@dataclass(frozen=True)
class Policy:
    """Base class: subclasses implement :meth:`_probabilities`.

    Every method takes an optional ``mask (B, K)`` bool: the candidates that may be chosen (default all). A
    masked-out candidate gets probability 0 and does not count in ranks, quantiles or fractions (used by
    :func:`mi_augment.ssl.positives.choose_partners` to exclude a sample's own queue entry).
    """

    #: registry name
    name = "policy"
    #: False only for policies that ignore the scores (then scoring is skipped)
    needs_scores = True

    @property
    def rank_based(self) -> bool:
        """True when the choice depends on the candidates' ranks: such a policy needs K >= 2 candidates."""
        return True

    def probabilities(self, scores: Tensor, mask: Tensor | None = None) -> Tensor:
        """Selection probabilities ``(B, K)`` (rows sum to 1) for candidate scores ``(B, K)``.

        Raises ``ValueError`` for scores that are not ``(B, K)``, NaN / inf among the allowed candidates,
        K = 1 with a rank-based policy, or a row whose mask allows no candidate.
        """
        if not isinstance(scores, Tensor):
            raise TypeError(f"scores must be a Tensor (B, K), got {type(scores).__name__}")
        if scores.ndim != 2 or scores.shape[1] < 1:
            raise ValueError(f"scores must have shape (B, K) with K >= 1, got {tuple(scores.shape)}")
        if self.rank_based and scores.shape[1] < 2:
            raise ValueError(f"policy {self.name!r} ranks the candidates and needs K >= 2 candidates per image, "
                             f"got K={scores.shape[1]}; use more candidates or policy='random'")
        if mask is not None:
            if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != scores.shape:
                raise ValueError(f"mask must be a bool Tensor of the scores' shape {tuple(scores.shape)}, got "
                                 f"{getattr(mask, 'dtype', type(mask).__name__)} {tuple(getattr(mask, 'shape', ()))}")
            if not bool(mask.any(1).all()):
                raise ValueError("mask allows no candidate in some row: every row needs at least one")
        if self.needs_scores:
            finite = torch.isfinite(scores)
            if not bool((finite if mask is None else finite.logical_or(~mask)).all()):
                raise ValueError("scores contain NaN or inf: the scorer must return finite values")
        if mask is None:
            mask = torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
        return self._probabilities(scores.float(), mask)

    def _probabilities(self, scores: Tensor, mask: Tensor) -> Tensor:
        raise NotImplementedError

    def keep_mask(self, scores: Tensor, mask: Tensor | None = None) -> Tensor:
        """Candidates the policy may choose: bool ``(B, K)``."""
        return self.probabilities(scores, mask) > 0

    def select(self, scores: Tensor, generator: torch.Generator | None = None, mask: Tensor | None = None) -> Tensor:
        """One candidate index per image, ``(B,)`` long, drawn from :meth:`probabilities`."""
        return self._draw(self.probabilities(scores, mask), generator)

    def select_and_keep(self, scores: Tensor, generator: torch.Generator | None = None,
                        mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(select(...), keep_mask(...))`` from one computation of the probabilities: the chosen index
        ``(B,)`` and the candidates the policy could choose ``(B, K)``; the same draws as :meth:`select`."""
        probs = self.probabilities(scores, mask)
        return self._draw(probs, generator), probs > 0

    def probabilities_one(self, scores: Sequence[float]) -> list[float]:
        """:meth:`probabilities` of one image's ``K`` scores as Python floats (no mask): the same float32
        values, computed without tensor ops where the policy has a Python form (``max``, ``min``,
        ``threshold``, ``topk``, ``random``; not in a subclass that overrides the tensor form), through
        :meth:`probabilities` otherwise. Raises as it does.

        Example:
            >>> make_policy("threshold").probabilities_one([0.1, 0.4, 0.3, 0.2])
            [0.0, 0.5, 0.5, 0.0]
        """
        rounded = list(as_float32s([float(s) for s in scores]))  # the float32 scores the tensor form compares
        out = None
        if _python_form(type(self)) and rounded and not (self.rank_based and len(rounded) < 2) and (
                not self.needs_scores or math.isfinite(sum(rounded))):  # float32 values: the sum overflows never
            out = self._probabilities_one(rounded)
        # the tensor form where there is no Python one, and to raise what is wrong
        return self.probabilities(torch.tensor([rounded]))[0].tolist() if out is None else out

    def _probabilities_one(self, scores: list[float]) -> list[float] | None:
        """The Python form of :meth:`_probabilities` for one row of float32 values; None: use the tensor form."""
        return None

    @property
    def takes_drawn_uniform(self) -> bool:
        """Whether :meth:`select_one` can take its one uniform number drawn beforehand (``u``): the policy's
        Python form stands for its tensor form (no subclass below it changes how probabilities are computed or
        drawn)."""
        return _python_form(type(self))

    def select_one(self, scores: Sequence[float], generator: torch.Generator | None = None,
                   device: Any = "cpu", u: float | None = None) -> tuple[int, list[bool]]:
        """:meth:`select_and_keep` of one image's ``K`` scores as Python floats: the chosen index and the
        candidates the policy could choose, from the same single uniform draw (on ``generator``, for a
        ``device`` image; or ``u``, that number drawn beforehand, where :attr:`takes_drawn_uniform`) and with
        the same float32 arithmetic, so the same choice.

        Example:
            >>> g = torch.Generator().manual_seed(0)
            >>> make_policy("max").select_one([0.1, 0.4, 0.3], g)
            (1, [False, True, False])
        """
        if not _python_form(type(self)):  # a subclass's own tensor form decides (the same single draw)
            if u is not None:
                raise ValueError(f"{type(self).__name__} draws its own number (takes_drawn_uniform is False); pass "
                                 "u=None")
            chosen, keep = self.select_and_keep(torch.tensor([[float(s) for s in scores]], device=device), generator)
            return int(chosen[0]), keep[0].tolist()
        probs = self.probabilities_one(scores)
        if u is None:
            u = float(rand((1, 1), generator, device))
        return _draw_one(probs, u), [p > 0 for p in probs]

    @staticmethod
    def _draw(probs: Tensor, generator: torch.Generator | None) -> Tensor:
        """Inverse-CDF draw of one index per row of ``probs`` (one uniform number per row)."""
        u = rand((probs.shape[0], 1), generator, probs.device).to(probs.dtype)
        cdf = probs.cumsum(1)
        cdf = cdf / cdf[:, -1:]
        return (cdf <= u).sum(1).clamp_max(probs.shape[1] - 1)


@functools.lru_cache(maxsize=64)
def _python_form(cls: type) -> bool:
    """Whether ``cls``'s Python form stands for its tensor form: no class below the one that defines
    ``_probabilities_one`` overrides how probabilities are computed or drawn."""
    def owner(name: str) -> type:
        return next(k for k in cls.__mro__ if name in vars(k))

    one = owner("_probabilities_one")
    return one is not Policy and all(issubclass(one, owner(name)) for name in (
        "probabilities", "_probabilities", "select_and_keep", "_draw"))


def _draw_one(probs: list[float], u: float) -> int:
    """:meth:`Policy._draw` of one row of float32 probabilities with its uniform number ``u``: the running sum
    accumulated in float64 and rounded to float32 at each step (CPU ``cumsum``'s accumulator), divided by the
    total in float32, and the count of entries ``<= u``."""
    cdf = as_float32s(list(itertools.accumulate(probs)))  # float64 running sums (left to right), each rounded
    last = cdf[-1]
    if u != u:  # NaN: no quotient is <= it
        return 0
    # the quotients are non-decreasing (rounding is monotone): the count of those <= u is a bisection
    return min(bisect.bisect_right(as_float32s([c / last for c in cdf]), u), len(probs) - 1)


def _uniform_one(keep: list[bool]) -> list[float]:
    """:func:`_uniform_over` of one row: ``float32(1 / count)`` on the kept entries."""
    share = as_float32(1.0 / max(1, sum(keep)))
    return [share if k else 0.0 for k in keep]


def _uniform_over(mask: Tensor) -> Tensor:
    m = mask.to(torch.float32)
    return m / m.sum(1, keepdim=True).clamp_min(1.0)


def _one_hot(index: Tensor, k: int) -> Tensor:
    return torch.nn.functional.one_hot(index, k).to(torch.float32)


def _ascending(scores: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Allowed scores sorted ascending per row (masked ones pushed to the end as +inf), and their count (B, 1)."""
    return scores.masked_fill(~mask, math.inf).sort(1).values, mask.sum(1, keepdim=True)


@dataclass(frozen=True)
class MaxPolicy(Policy):
    """The highest-scoring candidate: the 'easiest' positive (NNCLR's nearest neighbour). InfoMin predicts
    too-easy pairs hurt."""

    name = "max"

    def _probabilities(self, scores: Tensor, mask: Tensor) -> Tensor:
        return _one_hot(scores.masked_fill(~mask, -math.inf).argmax(1), scores.shape[1])

    def _probabilities_one(self, scores: list[float]) -> list[float]:
        best = scores.index(max(scores))  # the first of ties, as argmax
        return [1.0 if i == best else 0.0 for i in range(len(scores))]


@dataclass(frozen=True)
class MinPolicy(Policy):
    """The lowest-scoring candidate: the hardest positive."""

    name = "min"

    def _probabilities(self, scores: Tensor, mask: Tensor) -> Tensor:
        return _one_hot(scores.masked_fill(~mask, math.inf).argmin(1), scores.shape[1])

    def _probabilities_one(self, scores: list[float]) -> list[float]:
        worst = scores.index(min(scores))  # the first of ties, as argmin
        return [1.0 if i == worst else 0.0 for i in range(len(scores))]


@dataclass(frozen=True)
class RandomPolicy(Policy):
    """Uniform over candidates, scores ignored: the plain RandomResizedCrop baseline."""

    name = "random"
    needs_scores = False

    @property
    def rank_based(self) -> bool:
        return False

    def _probabilities(self, scores: Tensor, mask: Tensor) -> Tensor:
        return _uniform_over(mask)

    def _probabilities_one(self, scores: list[float]) -> list[float]:
        return _uniform_one([True] * len(scores))


@dataclass(frozen=True)
class ThresholdPolicy(Policy):
    """Reject the lowest: drop the lowest-scoring ``drop`` fraction of the candidates, then choose uniformly
    among the rest (drops the likely false positives, e.g. a crop that misses the object).

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

    def _probabilities(self, scores: Tensor, mask: Tensor) -> Tensor:
        ordered, count = _ascending(scores, mask)
        n_drop = torch.minimum((self.drop * count.double() + 1e-9).floor().long(), count - 1)  # (B, 1)
        cut = ordered.gather(1, (n_drop - 1).clamp_min(0))  # the highest dropped score
        keep = mask & ((scores > cut) | (n_drop == 0))
        best = mask & (scores >= scores.masked_fill(~mask, -math.inf).amax(1, keepdim=True))
        return _uniform_over(torch.where(keep.any(1, keepdim=True), keep, best))

    def _probabilities_one(self, scores: list[float]) -> list[float]:
        count = len(scores)
        n_drop = min(math.floor(self.drop * count + 1e-9), count - 1)  # float64, as the tensor form
        cut = sorted(scores)[max(n_drop - 1, 0)]
        keep = [s > cut or n_drop == 0 for s in scores]
        if not any(keep):
            top = max(scores)
            keep = [s >= top for s in scores]
        return _uniform_one(keep)


@dataclass(frozen=True)
class TopKPolicy(Policy):
    """Uniform among the ``k`` highest-scoring candidates (and any tied with the k-th); all when there are
    fewer. A count, not a fraction: for large candidate sets such as a support queue of positives."""

    k: int = 5
    name = "topk"

    def __post_init__(self):
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be an integer >= 1, got {self.k!r}")

    def _probabilities(self, scores: Tensor, mask: Tensor) -> Tensor:
        descending = scores.masked_fill(~mask, -math.inf).sort(1, descending=True).values
        count = mask.sum(1, keepdim=True)
        cut = descending.gather(1, torch.clamp(count, max=self.k) - 1)
        return _uniform_over(mask & (scores >= cut))

    def _probabilities_one(self, scores: list[float]) -> list[float]:
        cut = sorted(scores, reverse=True)[min(len(scores), self.k) - 1]
        return _uniform_one([s >= cut for s in scores])


@dataclass(frozen=True)
class BandPolicy(Policy):
    """Uniform among candidates scoring inside a band; the closest candidate when none does.

    Give exactly one of ``band=(lo, hi)`` (absolute, in the scorer's units: nats for MI) or
    ``quantiles=(qlo, qhi)`` (per image, over its K candidate scores, ``0 <= qlo <= qhi <= 1``, linear
    interpolation as ``torch.quantile``): InfoMin's sweet spot, a rank range that does not depend on the
    scale of the scores. With neither, ``quantiles=(0.25, 0.75)``: the middle half.
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

    @property
    def rank_based(self) -> bool:
        return self.band is None

    def _probabilities(self, scores: Tensor, mask: Tensor) -> Tensor:
        if self.band is not None:
            lo = torch.full_like(scores[:, :1], self.band[0])
            hi = torch.full_like(scores[:, :1], self.band[1])
        else:
            ordered, count = _ascending(scores, mask)
            position = torch.tensor(self.quantiles, dtype=torch.float64, device=scores.device) * (count - 1)
            below = position.floor().long()
            above = position.ceil().long()
            low_value, high_value = ordered.gather(1, below), ordered.gather(1, above)
            bounds = low_value + (position - below).to(scores.dtype) * (high_value - low_value)
            lo, hi = bounds[:, :1], bounds[:, 1:]
        inside = mask & (scores >= lo) & (scores <= hi)
        distance = torch.maximum(lo - scores, scores - hi).clamp_min(0).masked_fill(~mask, math.inf)
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

    @property
    def rank_based(self) -> bool:
        return False

    def _probabilities(self, scores: Tensor, mask: Tensor) -> Tensor:
        return torch.softmax(scores.masked_fill(~mask, -math.inf) / self.temperature, dim=1)


POLICIES: dict[str, type[Policy]] = {
    cls.name: cls
    for cls in (MaxPolicy, MinPolicy, BandPolicy, ThresholdPolicy, TopKPolicy, SoftmaxPolicy, RandomPolicy)
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
