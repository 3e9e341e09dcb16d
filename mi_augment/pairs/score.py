"""Step 2 of a pair, *score*: what view 0's candidate box ``k`` shares with each partner view's box ``k``.

``"luma"`` / ``"image"`` scorers get the crops of each view's perturbed image on a small proxy grid;
``"boxes"`` scorers get the unperturbed images with the boxes (one encoder pass per image). Large batches are
scored a few images at a time (peak memory bounded by :func:`mi_augment.kernel_options`' working set).

The proxies are rendered with the default kernels whatever ``kernel_options(fast_paths=...)`` says: a
rounding-level difference between kernel backends must not change which candidate is chosen (the views would
then differ entirely), so that switch compares the renderers of the same choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.chunks import chunk_rows
from ..core.options import kernel_options
from ..core.params import Params
from ..functional.crops import luma
from .plan import PairCandidates, flatten_views
from .render import folds_warp
from .scorers import check_scores, render_proxies, scorer_input_kind

__all__ = ["apply_chain", "score_candidates", "working_images"]


def apply_chain(models: Sequence[Any], images: Tensor, params: Sequence[Params]) -> Tensor:
    """The models' ``apply`` in order (each on the previous output), per-sample params ``(N, ...)`` for
    ``images (N, C, H, W)``, clamped to [0, 1] (a new tensor).

    Example:
        >>> from mi_augment.perturbations import IlluminationModel
        >>> model = IlluminationModel.default()
        >>> apply_chain([model], torch.rand(2, 3, 8, 8), [model.sample(2)]).shape
        torch.Size([2, 3, 8, 8])
    """
    out = images
    for model, p in zip(models, params):
        out = model.apply(out, p)
    return out.clamp(0.0, 1.0)


def working_images(images: Tensor, proxy_size: int, min_scale: float) -> tuple[Tensor, Tensor]:
    """The images at the resolution scoring needs: the smallest allowed crop (area fraction ``min_scale``)
    still covers about ``proxy_size`` pixels per side. Returns the (possibly downscaled) images and the
    factors ``(4,)`` that map boxes ``(x1, y1, x2, y2)`` onto them.

    Example:
        >>> small, factors = working_images(torch.rand(1, 3, 256, 256), 32, 0.08)
        >>> small.shape[-1], round(float(factors[0]), 3)
        (114, 0.445)
    """
    h, w = images.shape[-2:]
    factor = min(1.0, proxy_size / math.sqrt(min_scale * h * w))
    hh, ww = max(1, math.ceil(h * factor)), max(1, math.ceil(w * factor))
    if hh >= h and ww >= w:
        return images, torch.ones(4, device=images.device)
    small = F.interpolate(images, size=(hh, ww), mode="bilinear", antialias=True, align_corners=False)
    fx, fy = ww / w, hh / h  # the actual factors after rounding
    return small, torch.tensor([fx, fy, fx, fy], device=images.device)


def score_candidates(images: Tensor, candidates: PairCandidates, scorer: Callable[..., Tensor],
                     models: Sequence[Any] = (), proxy_size: int = 32, min_scale: float = 0.08) -> Tensor:
    """Scores ``(B, V - 1, K)``: what view 0's box ``k`` shares with partner view ``p``'s box ``k``.

    Args:
        images: ``[B, C, H, W]`` float in [0, 1].
        candidates: the plan step's :class:`~mi_augment.pairs.plan.PairCandidates`.
        scorer: any scorer (see :mod:`mi_augment.pairs.scorers`; its ``input_kind`` says what it takes).
        models: the perturbation chain whose per-view draws (``candidates.perturbations``) are applied to
            the whole image before cropping, so the scores see each view's perturbation.
        proxy_size: side of the square grid the crops are rendered on for ``"luma"`` / ``"image"`` scorers.
        min_scale: the smallest crop's area fraction (the working resolution keeps it ``proxy_size`` wide).

    Example:
        >>> from mi_augment.pairs import BoxSampler, PixelMIScorer
        >>> from mi_augment.pairs.plan import plan_candidates
        >>> x = torch.rand(2, 3, 32, 32)
        >>> score_candidates(x, plan_candidates(x, BoxSampler(), 2, 4, 0.5), PixelMIScorer()).shape
        torch.Size([2, 1, 4])
    """
    x = images.detach().float()  # scores in float32 whatever the image dtype; a score is a statistic, no graph
    b = x.shape[0]
    candidates.check_batch(b, "candidates")
    v, k = candidates.n_views, candidates.n_candidates
    kind = scorer_input_kind(scorer)
    with kernel_options(fast_paths=True):  # one scoring backend (see the module docs)
        if kind == "boxes":
            return torch.stack([check_scores(scorer(x, candidates.boxes[:, 0], candidates.boxes[:, p]), b, k,
                                             "the scorer").float() for p in range(1, v)], 1)
        if kind == "luma" and not models:  # every view sees the image itself: its luma first, one channel to
            x = luma(x.clamp(0.0, 1.0))  # downscale instead of three (the luma of the clamped image, as before)
        small, factor = working_images(x, proxy_size, min_scale)
        c, hh, ww = small.shape[1:]
        proxy_elems = proxy_size ** 2 * (c if kind == "image" else 1)
        step = chunk_rows(small, v * (c * hh * ww + 4 * k * proxy_elems))
        out = []
        for r0 in range(0, b, step):
            rows = slice(r0, min(b, r0 + step))
            part = candidates.index(rows)
            proxies = _proxies(models, small[rows], part.boxes * factor, part.perturbations, proxy_size, kind)
            m = rows.stop - r0
            out.append(torch.stack([check_scores(scorer(proxies[0], proxies[p]), m, k, "the scorer").float()
                                    for p in range(1, v)], 1))
    return out[0] if len(out) == 1 else torch.cat(out)


def _proxies(models: Sequence[Any], small: Tensor, boxes: Tensor, perturbations: tuple[Params, ...],
             proxy_size: int, kind: str) -> list[Tensor]:
    """For each view ``v``: ``g_v(x)`` at the working resolution, cropped to its boxes on the proxy grid."""
    b = small.shape[0]
    v = boxes.shape[1]
    if not models:  # every view sees the image itself ("luma": already its luma): every view's boxes in one call
        same = small.clamp(0.0, 1.0)
        same = luma(same) if kind == "luma" else same
        proxies = render_proxies(same, boxes.flatten(1, 2), proxy_size, kind, pyramid=True)
        return list(proxies.view(b, v, boxes.shape[2], *proxies.shape[2:]).unbind(1))
    flat = [flatten_views(p) for p in perturbations]
    # luma before the trailing camera models: their warp and blur treat every channel alike, so this is the
    # luma of the whole chain's result to float rounding, moving one channel instead of three
    cut = len(models)
    while kind == "luma" and cut > 0 and folds_warp(models[cut - 1]):
        cut -= 1
    perturbed = apply_chain(models[:cut], small.repeat_interleave(v, 0), flat[:cut])
    if kind == "luma":
        perturbed = apply_chain(models[cut:], luma(perturbed), flat[cut:])
    perturbed = perturbed.view(b, v, *perturbed.shape[1:])
    return [render_proxies(perturbed[:, i], boxes[:, i], proxy_size, kind, pyramid=True) for i in range(v)]
