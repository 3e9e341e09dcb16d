"""Scoring candidate crop pairs: render both crops on a small common proxy grid, then score each pair.

A *scorer* is any callable ``scorer(proxy_a, proxy_b) -> scores (B, K)``; higher means the two views share
more. What it receives depends on its ``input_kind`` attribute (plain callables count as ``"luma"``):

* ``"luma"``: ``(B, K, N)`` luma values in [0, 1], ``N = proxy_size ** 2`` pixels in row-major order. Pixel
  ``i`` of ``proxy_a`` and pixel ``i`` of ``proxy_b`` sit at the same *relative* position in their crops.
* ``"image"``: ``(B, K, C, h, w)`` crops (for encoders).

:class:`PixelMIScorer` (the default) treats the N aligned pixel pairs as N samples of a pair of random
variables and estimates their mutual information in nats; :class:`FeatureScorer` compares encoder features.
See docs/mi_pairs.md for what this measures and why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .._validation import check_positive_int
from ..functional.crops import luma, pyramid_crop, resized_crop

__all__ = ["FeatureScorer", "PixelMIScorer", "Scorer", "render_proxies", "scorer_input_kind"]

Scorer = Callable[[Tensor, Tensor], Tensor]


def scorer_input_kind(scorer: Any) -> str:
    """``"luma"`` or ``"image"``: what :func:`render_proxies` should give ``scorer``."""
    kind = getattr(scorer, "input_kind", "luma")
    if kind not in ("luma", "image"):
        raise ValueError(f"scorer.input_kind must be 'luma' or 'image', got {kind!r}")
    return kind


def render_proxies(images: Tensor, boxes: Tensor, proxy_size: int, kind: str = "luma",
                   sampling_ratio: int = -1, pyramid: bool = False) -> Tensor:
    """Crops ``boxes (B, K, 4)`` of ``images (B, C, H, W)`` resized to ``proxy_size`` squares, not flipped
    (area-averaged when shrinking, see :func:`~mi_augment.functional.crops.resized_crop`).

    Returns ``(B, K, N)`` luma for ``kind="luma"``, ``(B, K, C, proxy_size, proxy_size)`` for ``"image"``.
    Luma is taken before cropping (one channel to resample instead of three). ``pyramid=True`` renders with
    :func:`~mi_augment.functional.crops.pyramid_crop` (one bilinear sample per bin from a 2x pooled pyramid,
    ignoring ``sampling_ratio``): what :class:`~mi_augment.transforms.MIPairTransform` scores.
    """
    def crop(imgs: Tensor) -> Tensor:
        if pyramid:
            return pyramid_crop(imgs, boxes, proxy_size)
        return resized_crop(imgs, boxes, proxy_size, sampling_ratio=sampling_ratio)

    if kind == "luma":
        return crop(luma(images)).flatten(2)
    if kind == "image":
        return crop(images)
    raise ValueError(f"kind must be 'luma' or 'image', got {kind!r}")


def _unit_range_histogram_mi(x: Tensor, y: Tensor, bins: int) -> Tensor | None:
    """``mi.histogram_mi(x, y, bins, range=(0, 1))`` for float ``(..., N)`` proxies, in fewer passes.

    The same bins (``floor(v * bins)`` clamped to the edge bins: exactly the estimator's
    ``floor((v - 0) / 1 * bins)``) and the same plug-in formula; the joint bin indices are formed in float
    (exact integers) and counted as int32. Returns None (the caller then uses the estimator, which also
    reports bad input) for anything else: integer or mismatched inputs, NaN / inf, or too many problems for
    exact float indices.
    """
    from ..mi.histogram import _mi_from_joint

    if (not x.is_floating_point() or x.dtype != y.dtype or x.shape != y.shape or x.ndim < 2
            or x.shape[-1] < 2 or x.device != y.device):
        return None
    n = x.shape[-1]
    batch_shape = x.shape[:-1]
    problems = math.prod(batch_shape)
    if problems == 0 or problems * bins * bins >= 2 ** 24 or not bool(torch.isfinite(x.sum() + y.sum())):
        return None
    xf, yf = x.reshape(problems, n), y.reshape(problems, n)
    index = (xf * bins).floor_().clamp_(0, bins - 1).mul_(bins)
    index.add_((yf * bins).floor_().clamp_(0, bins - 1))
    index.add_(torch.arange(problems, device=x.device, dtype=x.dtype)[:, None] * (bins * bins))
    counts = torch.bincount(index.view(-1).to(torch.int32), minlength=problems * bins * bins)
    return _mi_from_joint(counts.view(problems, bins, bins).to(x.dtype) / n).reshape(batch_shape)


class PixelMIScorer:
    """MI (nats) between the aligned luma pixels of two proxy crops, with an estimator from
    :data:`mi_augment.mi.ESTIMATORS`.

    Args:
        estimator: a name in ``mi_augment.mi.ESTIMATORS`` (``"histogram"`` by default) or a callable
            ``(x (..., N), y (..., N)) -> (...)``.
        bins: histogram bins per axis (histogram estimator only).
        **options: passed on to the estimator (e.g. ``soft=True`` for the histogram estimator). The histogram
            estimator bins over the fixed range ``(0, 1)`` of luma values unless ``range=`` is given: a nearly
            flat crop then fills one or two bins and scores about 0, instead of having its noise stretched
            over all the bins (``range=None``, each crop's own min and max).
    """

    input_kind = "luma"

    def __init__(self, estimator: str | Callable[..., Tensor] = "histogram", bins: int = 16, **options: Any):
        if isinstance(estimator, str):
            from .. import mi

            if estimator not in mi.ESTIMATORS:
                raise ValueError(f"estimator must be one of {sorted(mi.ESTIMATORS)} or a callable, got {estimator!r}")
        elif not callable(estimator):
            raise TypeError(f"estimator must be a name or a callable, got {type(estimator).__name__}")
        self.estimator = estimator
        self.bins = check_positive_int(bins, "bins", minimum=2)
        self.options = dict(options)
        if estimator == "histogram":
            self.options.setdefault("range", (0.0, 1.0))

    def __call__(self, proxy_a: Tensor, proxy_b: Tensor) -> Tensor:
        if callable(self.estimator):
            return self.estimator(proxy_a, proxy_b, **self.options)
        from .. import mi

        fn = mi.ESTIMATORS[self.estimator]
        if self.estimator == "histogram":
            if self.options == {"range": (0.0, 1.0)}:
                fast = _unit_range_histogram_mi(proxy_a, proxy_b, self.bins)
                if fast is not None:
                    return fast
            return fn(proxy_a, proxy_b, bins=self.bins, **self.options)
        # sample-based estimators take (..., N, D) samples
        return fn(proxy_a.unsqueeze(-1), proxy_b.unsqueeze(-1), **self.options)

    def __repr__(self) -> str:
        name = self.estimator if isinstance(self.estimator, str) else getattr(self.estimator, "__name__", "custom")
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"PixelMIScorer(estimator={name!r}, bins={self.bins}{opts})"


class FeatureScorer(nn.Module):
    """Score candidate pairs by the cosine similarity of an encoder's features of the two proxy crops.

    Under the InfoNCE model that contrastive training fits, ``cos(f(a), f(b)) / tau`` is the pointwise MI
    of the pair up to a per-image constant, so rank-based policies (max, min, threshold, per-image quantile
    band) and softmax (with ``temperature = tau``) behave as with an MI estimate. An absolute ``band`` is in
    cosine units, not nats.

    Args:
        encoder: module mapping ``(M, C, h, w)`` images in [0, 1] to ``(M, D)`` features (or ``(M, D, ...)``,
            flattened). It runs under ``torch.no_grad`` in its current train/eval mode; put it in eval mode
            (and on the images' device) yourself. Use ``mean`` / ``std`` to normalise inputs.
        mean, std: optional per-channel normalisation applied before the encoder.
        channels: 3 repeats 1-channel proxies to RGB for encoders that expect colour; None leaves them.
    """

    input_kind = "image"

    def __init__(self, encoder: nn.Module, mean: tuple[float, ...] | None = None,
                 std: tuple[float, ...] | None = None, channels: int | None = None):
        super().__init__()
        if not callable(encoder):
            raise TypeError(f"encoder must be a callable module, got {type(encoder).__name__}")
        self.encoder = encoder
        self.mean = None if mean is None else tuple(float(m) for m in mean)
        self.std = None if std is None else tuple(float(s) for s in std)
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {std!r}")
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be None, 1 or 3, got {channels!r}")
        self.channels = channels

    @torch.no_grad()
    def forward(self, proxy_a: Tensor, proxy_b: Tensor) -> Tensor:
        b, k = proxy_a.shape[:2]
        both = torch.cat([proxy_a.flatten(0, 1), proxy_b.flatten(0, 1)])
        if self.channels == 3 and both.shape[1] == 1:
            both = both.expand(-1, 3, -1, -1)
        if self.mean is not None:
            both = both - torch.tensor(self.mean, device=both.device, dtype=both.dtype).view(1, -1, 1, 1)
        if self.std is not None:
            both = both / torch.tensor(self.std, device=both.device, dtype=both.dtype).view(1, -1, 1, 1)
        feats = self.encoder(both).flatten(1).float()
        feats = nn.functional.normalize(feats, dim=1)
        fa, fb = feats.split(b * k)
        return (fa * fb).sum(1).view(b, k)
