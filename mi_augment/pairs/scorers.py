"""Scoring candidate crop pairs: render both crops on a small common proxy grid, then score each pair.

A *scorer* is any callable ``scorer(proxy_a, proxy_b) -> scores (B, K)``; higher means the two views share
more. What it receives depends on its ``input_kind`` attribute (plain callables count as ``"luma"``):

* ``"luma"``: ``(B, K, N)`` luma values in [0, 1], ``N = proxy_size ** 2`` pixels in row-major order. Pixel
  ``i`` of ``proxy_a`` and pixel ``i`` of ``proxy_b`` sit at the same *relative* position in their crops.
* ``"image"``: ``(B, K, C, h, w)`` crops (for encoders).
* ``"boxes"``: ``scorer(images (B, C, H, W), boxes_a (B, K, 4), boxes_b (B, K, 4))``: the unperturbed full
  images in [0, 1] and the candidate boxes ``(x1, y1, x2, y2)`` in input pixels, so a scorer can run one
  encoder forward per image and pool every box from the feature map.

:class:`PixelMIScorer` (the default) treats the N aligned pixel pairs as N samples of a pair of random
variables and estimates their mutual information in nats. :class:`FeatureScorer` gives the InfoNCE critic's
pointwise MI of the two crops' encoder features (:func:`pointwise_mi`); :class:`CropImageScorer` the
pointwise MI between each crop and its whole image. :func:`check_scores` validates any scorer's output.
See docs/mi_pairs.md for what this measures and why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..core.options import current
from ..core.validation import check_positive_int
from ..functional.crops import luma, pyramid_crop, resized_crop

__all__ = [
    "INPUT_KINDS", "SCORERS", "CropImageScorer", "FeatureScorer", "PixelMIScorer", "Scorer", "check_scores",
    "make_scorer", "pointwise_mi", "render_proxies", "scorer_input_kind",
]

Scorer = Callable[..., Tensor]

#: what a scorer may receive (its ``input_kind``)
INPUT_KINDS = ("luma", "image", "boxes")


def scorer_input_kind(scorer: Any) -> str:
    """``"luma"``, ``"image"`` or ``"boxes"``: what ``scorer`` takes (``"luma"`` when it does not say)."""
    kind = getattr(scorer, "input_kind", "luma")
    if kind not in INPUT_KINDS:
        raise ValueError(f"scorer.input_kind must be one of {INPUT_KINDS}, got {kind!r}")
    return kind


def check_scores(scores: Any, b: int, k: int, name: str = "scorer") -> Tensor:
    """``scores`` if it is a finite floating ``(b, k)`` Tensor; else a ``TypeError`` / ``ValueError`` that
    names ``name`` and says what was expected."""
    if not isinstance(scores, Tensor):
        raise TypeError(f"{name} must return a Tensor of shape (B, K) = {(b, k)}, got {type(scores).__name__}")
    if tuple(scores.shape) != (b, k):
        raise ValueError(f"{name} returned shape {tuple(scores.shape)}, expected (B, K) = {(b, k)}")
    if not scores.is_floating_point():
        raise ValueError(f"{name} returned {scores.dtype} scores, expected a floating dtype")
    if not bool(torch.isfinite(scores).all()):
        bad = int((~torch.isfinite(scores)).sum())
        raise ValueError(f"{name} returned {bad} NaN or inf scores out of {b * k}; scores must be finite")
    return scores


def pointwise_mi(critic: Tensor, positives: Tensor | None = None) -> Tensor:
    """The InfoNCE critic's pointwise MI (nats) of each row's positive pair.

    ``critic (..., N, M)`` holds ``s(a_i, b_j)``: row ``i`` scores sample ``a_i`` against every ``b_j`` of
    the batch, where ``b_{positives[i]}`` is ``a_i``'s partner (default ``positives = arange(N)``, the
    diagonal, needing ``N == M``) and the other ``b_j`` stand in for the marginal. Returns ``(..., N)``::

        s(a_i, b_{p_i}) - log( (1 / M) * sum_j exp s(a_i, b_j) )       # j over all M columns, p_i included

    With the optimal critic ``s = log p(b | a) / p(b) + c(a)`` this tends to ``log p(b_{p_i} | a_i) /
    p(b_{p_i})`` as M grows; every value is at most ``log M`` and the batch mean is the InfoNCE lower bound
    on ``I(A; B)``.
    """
    if not isinstance(critic, Tensor) or critic.ndim < 2:
        raise ValueError(f"critic must be a Tensor (..., N, M), got {getattr(critic, 'shape', type(critic))}")
    n, m = critic.shape[-2:]
    if positives is None:
        if n != m:
            raise ValueError(f"critic must be square (..., N, N) without positives=, got {tuple(critic.shape)}")
        positive = critic.diagonal(dim1=-2, dim2=-1)
    else:
        positives = torch.as_tensor(positives, device=critic.device)
        if positives.shape != (n,) or positives.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"positives must be an integer Tensor ({n},), got {positives.dtype} "
                             f"{tuple(positives.shape)}")
        if n and not (0 <= int(positives.min()) and int(positives.max()) < m):
            raise ValueError(f"positives must index the critic's {m} columns")
        index = positives.long().expand(*critic.shape[:-2], n).unsqueeze(-1)
        positive = critic.gather(-1, index).squeeze(-1)
    return positive - (torch.logsumexp(critic, dim=-1) - math.log(m))


def render_proxies(images: Tensor, boxes: Tensor, proxy_size: int, kind: str = "luma",
                   sampling_ratio: int = -1, pyramid: bool = False) -> Tensor:
    """Crops ``boxes (B, K, 4)`` of ``images (B, C, H, W)`` resized to ``proxy_size`` squares, not flipped
    (area-averaged when shrinking, see :func:`~mi_augment.functional.crops.resized_crop`).

    Returns ``(B, K, N)`` luma for ``kind="luma"``, ``(B, K, C, proxy_size, proxy_size)`` for ``"image"``
    (a ``"boxes"`` scorer takes the images and boxes themselves: nothing to render).
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


def _unit_range_histogram_mi(x: Tensor, y: Tensor, bins: int, finite: bool = False) -> Tensor | None:
    """``mi.histogram_mi(x, y, bins, range=(0, 1))`` for float ``(..., N)`` proxies, in fewer passes.

    The same bins (``floor(v * bins)`` clamped to the edge bins: exactly the estimator's
    ``floor((v - 0) / 1 * bins)``) and the same plug-in formula; the joint bin indices are formed in float
    (exact integers) and counted as int32. Returns None (the caller then uses the estimator, which also
    reports bad input) for anything else: integer or mismatched inputs, NaN / inf, or too many problems for
    exact float indices. ``finite=True``: the caller knows the inputs are finite (the check is skipped).
    """
    from ..mi.histogram import mi_from_joint

    if (not x.is_floating_point() or x.dtype != y.dtype or x.shape != y.shape or x.ndim < 2
            or x.shape[-1] < 2 or x.device != y.device):
        return None
    n = x.shape[-1]
    batch_shape = x.shape[:-1]
    problems = math.prod(batch_shape)
    if problems == 0 or problems * bins * bins >= 2 ** 24 or not (finite or bool(torch.isfinite(x.sum() + y.sum()))):
        return None
    xf, yf = x.reshape(problems, n), y.reshape(problems, n)
    index = (xf * bins).floor_().clamp_(0, bins - 1).mul_(bins)
    index.add_((yf * bins).floor_().clamp_(0, bins - 1))
    index.add_(torch.arange(problems, device=x.device, dtype=x.dtype)[:, None] * (bins * bins))
    counts = torch.bincount(index.view(-1).to(torch.int32), minlength=problems * bins * bins)
    return mi_from_joint(counts.view(problems, bins, bins).to(x.dtype) / n).reshape(batch_shape)


class PixelMIScorer:
    """MI (nats) between the aligned luma pixels of two proxy crops, with an estimator from
    :data:`mi_augment.mi.ESTIMATORS`.

    Args:
        estimator: a name in ``mi_augment.mi.ESTIMATORS`` (``"histogram"`` by default) or a callable
            ``(x (..., N), y (..., N)) -> (...)``.
        bins: histogram bins per axis (histogram estimator only).
        proxy_size: side of the square grid both crops are rendered on (``proxy_size ** 2`` pixel pairs).
        **options: passed on to the estimator (e.g. ``soft=True`` for the histogram estimator). The histogram
            estimator bins over the fixed range ``(0, 1)`` of luma values unless ``range=`` is given: a nearly
            flat crop then fills one or two bins and scores about 0, instead of having its noise stretched
            over all the bins (``range=None``, each crop's own min and max).
    """

    input_kind = "luma"

    def __init__(self, estimator: str | Callable[..., Tensor] = "histogram", bins: int = 16, proxy_size: int = 32,
                 **options: Any):
        if isinstance(estimator, str):
            from .. import mi

            if estimator not in mi.ESTIMATORS:
                raise ValueError(f"estimator must be one of {sorted(mi.ESTIMATORS)} or a callable, got {estimator!r}")
        elif not callable(estimator):
            raise TypeError(f"estimator must be a name or a callable, got {type(estimator).__name__}")
        self.estimator = estimator
        self.bins = check_positive_int(bins, "bins", minimum=2)
        self.proxy_size = check_positive_int(proxy_size, "proxy_size", minimum=2)
        self.options = dict(options)
        if estimator == "histogram":
            self.options.setdefault("range", (0.0, 1.0))

    def __call__(self, proxy_a: Tensor, proxy_b: Tensor) -> Tensor:
        if callable(self.estimator):
            return self.estimator(proxy_a, proxy_b, **self.options)
        from .. import mi

        fn = mi.ESTIMATORS[self.estimator]
        if self.estimator == "histogram":
            if self.options == {"range": (0.0, 1.0)} and current().fast_paths:
                fast = _unit_range_histogram_mi(proxy_a, proxy_b, self.bins)
                if fast is not None:
                    return fast
            return fn(proxy_a, proxy_b, bins=self.bins, **self.options)
        # sample-based estimators take (..., N, D) samples
        return fn(proxy_a.unsqueeze(-1), proxy_b.unsqueeze(-1), **self.options)

    def __repr__(self) -> str:
        name = self.estimator if isinstance(self.estimator, str) else getattr(self.estimator, "__name__", "custom")
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        size = "" if self.proxy_size == 32 else f", proxy_size={self.proxy_size}"
        return f"PixelMIScorer(estimator={name!r}, bins={self.bins}{size}{opts})"


class _EncoderScorer(nn.Module):
    """Shared parts of the encoder scorers: input normalisation, features of crops or of boxes."""

    def __init__(self, encoder: nn.Module, temperature: float, head: nn.Module | None, input_kind: str,
                 mean: tuple[float, ...] | None, std: tuple[float, ...] | None, channels: int | None,
                 roi_size: int, sampling_ratio: int):
        super().__init__()
        if not callable(encoder):
            raise TypeError(f"encoder must be a callable module, got {type(encoder).__name__}")
        if head is not None and not callable(head):
            raise TypeError(f"head must be a callable module or None, got {type(head).__name__}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
                math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        if input_kind not in ("image", "boxes"):
            raise ValueError(f"input_kind must be 'image' or 'boxes', got {input_kind!r}")
        self.encoder = encoder
        self.head = head
        self.temperature = float(temperature)
        self.input_kind = input_kind
        self.mean = None if mean is None else tuple(float(m) for m in mean)
        self.std = None if std is None else tuple(float(s) for s in std)
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {std!r}")
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be None, 1 or 3, got {channels!r}")
        self.channels = channels
        self.roi_size = check_positive_int(roi_size, "roi_size")
        if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, int) or sampling_ratio < -1 \
                or sampling_ratio == 0:
            raise ValueError(f"sampling_ratio must be a positive integer or -1 (adaptive), got {sampling_ratio!r}")
        self.sampling_ratio = sampling_ratio

    def _normalise(self, x: Tensor) -> Tensor:
        if self.channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.mean is not None:
            x = x - torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        if self.std is not None:
            x = x / torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        return x

    def _embed(self, vectors: Tensor) -> Tensor:
        """``head`` (if any), then unit length: ``(M, D) -> (M, E)``."""
        if self.head is not None:
            vectors = self.head(vectors)
        return nn.functional.normalize(vectors.flatten(1).float(), dim=1)

    def _encode(self, images: Tensor) -> Tensor:
        """The encoder's output for ``images``: a tensor, or the first tensor of a tuple / list / dict it returns
        (e.g. ``(features, logits)``, a Hugging Face ``ModelOutput``)."""
        if images.is_meta:
            raise ValueError("the scorer got meta tensors (a shape without data); pass images with values")
        out = self.encoder(self._normalise(images))
        if isinstance(out, Tensor):
            return out
        items = list(out.values()) if isinstance(out, dict) else list(out) if isinstance(out, (tuple, list)) else []
        first = next((v for v in items if isinstance(v, Tensor)), None)
        if first is None:
            raise TypeError(f"encoder must return a Tensor, or a tuple / list / dict holding one first, got "
                            f"{type(out).__name__}")
        return first

    def _crop_features(self, crops: Tensor) -> Tensor:
        """Unit features ``(M, E)`` of crops ``(M, C, h, w)``: one forward each; maps are averaged."""
        out = self._encode(crops)
        if out.ndim == 4:
            out = out.mean((2, 3))
        return self._embed(out.flatten(1))

    def _feature_maps(self, images: Tensor) -> Tensor:
        if images.ndim != 4:
            raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
        maps = self._encode(images)
        if maps.ndim != 4 or maps.shape[0] != images.shape[0]:
            raise ValueError(f"input_kind='boxes' needs an encoder returning (B, D, h, w) feature maps (e.g. a "
                             f"ResNet without its average pool), got {getattr(maps, 'shape', type(maps))}")
        return maps

    def _box_features(self, maps: Tensor, image_size: tuple[int, int], *boxes: Tensor) -> list[Tensor]:
        """Unit features ``(B, K, E)`` of each ``boxes (B, K, 4)`` (input pixels), pooled from ``maps``
        with ``torchvision.ops.roi_align`` and averaged over the ``roi_size ** 2`` bins."""
        from torchvision.ops import roi_align

        b, _, h, w = maps.shape
        height, width = image_size
        scale = torch.tensor([w / width, h / height, w / width, h / height], device=maps.device)
        rois = []
        for box in boxes:
            if box.ndim != 3 or box.shape[0] != b or box.shape[2] != 4:
                raise ValueError(f"boxes must be (B, K, 4) with B = {b}, got shape {tuple(box.shape)}")
            k = box.shape[1]
            index = torch.arange(b, device=maps.device, dtype=torch.float32).repeat_interleave(k)[:, None]
            rois.append(torch.cat([index, box.reshape(-1, 4).to(maps.device, torch.float32) * scale], 1))
        pooled = roi_align(maps.float(), torch.cat(rois), self.roi_size, spatial_scale=1.0,
                           sampling_ratio=self.sampling_ratio, aligned=True).mean((2, 3))
        feats = self._embed(pooled)
        return [f.view(b, box.shape[1], -1) for f, box in zip(feats.split([x.shape[0] for x in rois]), boxes)]

    def _pair_features(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        """``(B, K, E)`` unit features of the two crops of each candidate, from either input kind."""
        if self.input_kind == "boxes":
            if len(inputs) != 3:
                raise TypeError("an input_kind='boxes' scorer takes (images, boxes_a, boxes_b)")
            images, boxes_a, boxes_b = inputs
            if boxes_a.shape != boxes_b.shape:
                raise ValueError(f"boxes_a and boxes_b must have the same shape, got {tuple(boxes_a.shape)} and "
                                 f"{tuple(boxes_b.shape)}")
            maps = self._feature_maps(images)
            fa, fb = self._box_features(maps, images.shape[-2:], boxes_a, boxes_b)
            return fa, fb
        if len(inputs) != 2:
            raise TypeError("an input_kind='image' scorer takes (crops_a, crops_b)")
        proxy_a, proxy_b = inputs
        if proxy_a.ndim != 5 or proxy_a.shape != proxy_b.shape:
            raise ValueError(f"crops must be two (B, K, C, h, w) tensors of one shape, got {tuple(proxy_a.shape)} "
                             f"and {tuple(proxy_b.shape)}")
        b, k = proxy_a.shape[:2]
        feats = self._crop_features(torch.cat([proxy_a.flatten(0, 1), proxy_b.flatten(0, 1)]))
        fa, fb = feats.split(b * k)
        return fa.view(b, k, -1), fb.view(b, k, -1)

    def _pair_mi(self, fa: Tensor, fb: Tensor) -> Tensor:
        b, k, _ = fa.shape
        if b * k < 2:
            raise ValueError(f"pointwise MI needs at least 2 candidates in the batch (B * K >= 2), got B={b}, K={k}")
        critic = fa.flatten(0, 1) @ fb.flatten(0, 1).T / self.temperature  # (B*K, B*K)
        return pointwise_mi(critic).view(b, k)


class FeatureScorer(_EncoderScorer):
    """Pointwise MI (nats) of each candidate pair under the InfoNCE critic of an encoder's features.

    With unit features ``f``, the critic ``s(a, b) = cos(f(a), f(b)) / temperature`` and the score of
    candidate ``k`` of image ``n`` is :func:`pointwise_mi` of the ``(B*K, B*K)`` critic matrix::

        s(a_nk, b_nk) - log mean_{m, l} exp s(a_nk, b_ml)      # all B*K partner crops of the batch

    so the other candidates of the same image and all candidates of the other images are the negatives
    (the positive itself is in the mean). Each score is at most ``log(B * K)``. The batch is what this call
    receives (one process's share under DDP: no gathering).

    Args:
        encoder: the encoder whose critic to use: the EMA / target encoder when the method has one (BYOL,
            MoCo), else the online encoder. It maps ``(M, C, h, w)`` images to ``(M, D)`` features or
            ``(M, D, h', w')`` feature maps (averaged over space for ``"image"``; required for ``"boxes"``);
            an encoder returning a tuple, list or dict (``(features, logits)``, a Hugging Face output) is
            read at its first tensor.
            It runs under ``torch.no_grad`` in its current train/eval mode: put it in eval mode (so
            BatchNorm statistics are untouched) and on the images' device yourself.
        temperature: the contrastive loss's temperature (SimCLR / MoCo's ``tau``).
        head: optional module applied to the pooled ``(M, D)`` features before normalising (the
            projection head the loss sees); None uses the pooled features.
        input_kind: ``"image"``: called with two ``(B, K, C, h, w)`` crop batches, ``2 * B * K`` encoder
            forwards; ``"boxes"``: called with ``(images (B, C, H, W), boxes_a (B, K, 4), boxes_b (B, K,
            4))``, one forward per whole image, each box pooled from the feature map with
            ``torchvision.ops.roi_align`` (``roi_size ** 2`` bins, averaged), serving all K candidates.
        mean, std: optional per-channel normalisation applied before the encoder.
        channels: 3 repeats 1-channel inputs to RGB for encoders that expect colour; None leaves them.
        roi_size, sampling_ratio: ``roi_align``'s output size and samples per bin (``"boxes"`` only).
        proxy_size: side of the crops the encoder sees (``"image"`` only).
    """

    def __init__(self, encoder: nn.Module, temperature: float = 0.2, *, head: nn.Module | None = None,
                 input_kind: str = "image", mean: tuple[float, ...] | None = None,
                 std: tuple[float, ...] | None = None, channels: int | None = None, roi_size: int = 3,
                 sampling_ratio: int = 2, proxy_size: int = 32):
        super().__init__(encoder, temperature, head, input_kind, mean, std, channels, roi_size, sampling_ratio)
        self.proxy_size = check_positive_int(proxy_size, "proxy_size", minimum=2)

    @torch.no_grad()
    def forward(self, *inputs: Tensor) -> Tensor:
        """Scores ``(B, K)`` in nats; inputs as ``input_kind`` says."""
        return self._pair_mi(*self._pair_features(inputs))


class CropImageScorer(_EncoderScorer):
    """How much each crop tells about its whole image: pointwise MI (nats) between a crop's feature and the
    full image's feature, with the other images of the batch as negatives; low for a background-only crop.

    For crop ``c`` of image ``n``, with ``g_m`` the whole-image feature (the feature map averaged over
    space) of image ``m`` and the critic ``s = cos / temperature``::

        crop_image_mi(c) = s(c, g_n) - log mean_{m = 1..B} exp s(c, g_m)       # at most log B

    A candidate pair's score is ``min(crop_image_mi(a), crop_image_mi(b))`` (``reduce="min"``: both crops
    must show the object) or their mean, plus ``pair_weight`` times :class:`FeatureScorer`'s pair score
    from the same forward (``pair_weight=0`` by default: crop-vs-image alone). Always ``input_kind =
    "boxes"``: one forward of each whole image; needs B >= 2 images. Arguments as :class:`FeatureScorer`.
    """

    def __init__(self, encoder: nn.Module, temperature: float = 0.2, *, head: nn.Module | None = None,
                 reduce: str = "min", pair_weight: float = 0.0, mean: tuple[float, ...] | None = None,
                 std: tuple[float, ...] | None = None, channels: int | None = None, roi_size: int = 3,
                 sampling_ratio: int = 2):
        super().__init__(encoder, temperature, head, "boxes", mean, std, channels, roi_size, sampling_ratio)
        if reduce not in ("min", "mean"):
            raise ValueError(f"reduce must be 'min' or 'mean', got {reduce!r}")
        if isinstance(pair_weight, bool) or not isinstance(pair_weight, (int, float)) or not math.isfinite(
                pair_weight):
            raise ValueError(f"pair_weight must be a finite number, got {pair_weight!r}")
        self.reduce = reduce
        self.pair_weight = float(pair_weight)

    def _crop_image_mi(self, crop_features: Tensor, image_features: Tensor) -> Tensor:
        b, k, _ = crop_features.shape
        if b < 2:
            raise ValueError(f"crop-vs-image MI needs at least 2 images per batch (the others are the negatives), "
                             f"got B={b}")
        critic = crop_features.flatten(0, 1) @ image_features.T / self.temperature  # (B*K, B)
        own = torch.arange(b, device=critic.device).repeat_interleave(k)
        return pointwise_mi(critic, own).view(b, k)

    @torch.no_grad()
    def crop_image_mi(self, images: Tensor, boxes: Tensor) -> Tensor:
        """Pointwise MI ``(B, K)`` in nats between each box ``(B, K, 4)`` (input pixels) and its image."""
        maps = self._feature_maps(images)
        (crops,) = self._box_features(maps, images.shape[-2:], boxes)
        return self._crop_image_mi(crops, self._embed(maps.float().mean((2, 3))))

    @torch.no_grad()
    def forward(self, images: Tensor, boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
        """Scores ``(B, K)`` in nats for the candidate pairs ``(boxes_a, boxes_b)``."""
        if boxes_a.shape != boxes_b.shape:
            raise ValueError(f"boxes_a and boxes_b must have the same shape, got {tuple(boxes_a.shape)} and "
                             f"{tuple(boxes_b.shape)}")
        maps = self._feature_maps(images)
        fa, fb = self._box_features(maps, images.shape[-2:], boxes_a, boxes_b)
        whole = self._embed(maps.float().mean((2, 3)))
        mi_a, mi_b = self._crop_image_mi(fa, whole), self._crop_image_mi(fb, whole)
        score = torch.minimum(mi_a, mi_b) if self.reduce == "min" else (mi_a + mi_b) / 2
        if self.pair_weight:
            score = score + self.pair_weight * self._pair_mi(fa, fb)
        return score


def _registry() -> dict[str, type]:
    from .controls import ObjectCoverageScorer, OverlapScorer

    return {
        "pixel": PixelMIScorer, "pixels": PixelMIScorer,
        "feature": FeatureScorer, "features": FeatureScorer,
        "crop-image": CropImageScorer,
        "iou": OverlapScorer, "overlap": OverlapScorer,
        "object-coverage": ObjectCoverageScorer,
    }


#: scorer classes by name (``"pixels"`` / ``"features"`` are the recipes' ``--mi-scorer`` spellings)
SCORERS: dict[str, type] = _registry()


def make_scorer(scorer: str | Callable[..., Tensor], **settings: Any) -> Callable[..., Tensor]:
    """A scorer from its name in :data:`SCORERS` and its settings, or the given scorer unchanged.

    Args:
        scorer: a name in :data:`SCORERS` (``"pixel"``, ``"feature"``, ``"crop-image"``, ``"iou"`` /
            ``"overlap"``, ``"object-coverage"``) or a ready scorer (any callable; see the module docs).
        **settings: the named scorer's constructor arguments (e.g. ``bins=8`` for ``"pixel"``,
            ``encoder=net`` for ``"feature"``); none with a ready scorer.

    Raises ``ValueError`` for an unknown name or settings the scorer does not take, ``TypeError`` for
    something that is neither a name nor a callable.

    Example:
        >>> make_scorer("pixel", bins=8)
        PixelMIScorer(estimator='histogram', bins=8, range=(0.0, 1.0))
        >>> a = torch.rand(2, 3, 64)
        >>> make_scorer("pixel")(a, a).shape
        torch.Size([2, 3])
    """
    if isinstance(scorer, str):
        if scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {sorted(SCORERS)} or a callable, got {scorer!r}")
        cls = SCORERS[scorer]
        try:
            return cls(**settings)
        except TypeError as exc:
            import inspect

            allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "options")]
            raise ValueError(f"scorer {scorer!r} ({cls.__name__}) takes settings {allowed or 'none'}, got "
                             f"{sorted(settings)}: {exc}") from None
    if not callable(scorer):
        raise TypeError(f"scorer must be a name in {sorted(SCORERS)} or a callable, got {type(scorer).__name__}")
    if settings:
        raise ValueError(f"settings {sorted(settings)} were given with a ready-made {type(scorer).__name__}; "
                         "set them on the scorer instead")
    scorer_input_kind(scorer)
    return scorer
