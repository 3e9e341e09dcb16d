"""How :class:`~mi_augment.transforms.MIPairTransform` renders: the perturbation chain applied step by step
(the public implementation: each model's ``apply``) and the speed paths beside it.

A model opts into a speed path by defining ``_fused_kind(params) -> "illumination" | "motion" | None``: the
shipped :class:`~mi_augment.perturbations.IlluminationModel` and
:class:`~mi_augment.perturbations.MotionModel` return their kind while their ``apply`` is the library's and the
params are ones the fused kernels render; any other model takes the step-by-step path. Speed paths are off
inside ``mi_augment.kernel_options(fast_paths=False)``, which is how the tests compare them with the steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.chunks import chunk_rows
from ..core.options import current
from ..core.params import Params
from ..functional import color as fcolor
from ..functional.crops import _bilinear_crop_one, luma, resized_crop


def stack_views(params: Params, batch: int, views: int) -> Params:
    """Params drawn for ``batch * views`` samples (sample-major) as tensors ``(batch, views, ...)``."""
    return params._map(lambda t: t.reshape(batch, views, *t.shape[1:]))


def flatten_views(params: Params) -> Params:
    """``(B, V, ...)`` params as ``(B * V, ...)`` (sample-major)."""
    return params._map(lambda t: t.flatten(0, 1))


def check_finite(params: Params, name: str = "params") -> None:
    values = list(params._tensors().values())
    if len(values) > 1 and all(isinstance(v, Tensor) and v.is_floating_point() for v in values) and bool(
            torch.isfinite(torch.cat([v.reshape(-1) for v in values])).all()):
        return  # one check for all tensors (a few ops instead of three per tensor); the loop names a bad one
    for key, value in params._tensors().items():
        if isinstance(value, Params):
            check_finite(value, f"{name}.{key}")
        elif not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name}.{key} contains NaN or inf values")


def fused_kind(model: Any, params: Params) -> str | None:
    """The speed path ``model`` opts into for ``params`` (None: the model's own ``apply``)."""
    hook = getattr(model, "_fused_kind", None)
    if hook is None or not current().fast_paths:
        return None
    return hook(params)


def in_view_frame(models: Sequence[Any], params: Sequence[Params], boxes: Tensor, height: int,
                  width: int) -> list[Params]:
    """Each model's per-view params ``(B, V, ...)`` in the frame of its view.

    Scoring applies the draws to the whole image and then crops; the views apply them after cropping. A
    model whose params are fractions of the image size (camera motion: translation and blur length)
    defines ``to_view_frame(params, zoom)`` to rescale them by ``zoom = image side / crop side`` ``(B, V)``,
    so a view moves and smears as many scene pixels as the scored crop did."""
    if not models:
        return []
    crop_side = torch.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]).clamp_min(1e-6)
    zoom = max(height, width) / crop_side
    return [model.to_view_frame(p, zoom) if hasattr(model, "to_view_frame") else p
            for model, p in zip(models, params)]


def apply_chain(models: Sequence[Any], images: Tensor, params: Sequence[Params], luma_only: bool = False) -> Tensor:
    """The models in order (each on the previous one's output), per-sample params ``(N, ...)`` for ``images``
    ``(N, C, H, W)``, clamped to [0, 1]. ``luma_only=True`` returns the luma ``(N, 1, H, W)``; a final
    motion-kind model (a warp and a blur: linear, convex combinations of pixels, so they commute with luma)
    then moves one channel instead of three, to float rounding of the luma of the full result."""
    out = images
    last = len(models) - 1
    for i, (model, p) in enumerate(zip(models, params)):
        if i == last and fused_kind(model, p) == "motion":
            if luma_only:
                out, luma_only = luma(out), False
            p.check_batch(out.shape[0])
            check_finite(p)
            # a new tensor from the shipped kernels: clamped in place, never anything a caller owns
            return model._apply_float(out, p).clamp_(0.0, 1.0)
        out = model.apply(out, p)
    out = out.clamp(0.0, 1.0)
    return luma(out) if luma_only else out


def view_light(params: Params, channels: int, h: int, w: int, like: Tensor,
               ring: bool = False) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Per-view illumination parameters ``(B, V, ...)`` laid out for ``color._illuminate`` on views inside
    each image, ``(B, C, V, H, W)``: ``gamma (B, 1, V, 1, 1)``, ``log_gain (B, C, V, 1, 1)`` (the mean gain for
    one channel), and the shading coefficients ``(B, V, S)`` with the ``(S, H, W)`` basis (mirrored onto a
    one-pixel ring when ``ring``), or None twice without shading."""
    b, v = params.log_gain.shape[:2]
    log_gain = params.log_gain.to(like.dtype).reshape(b, v, 3)
    if channels == 1:
        log_gain = log_gain.mean(dim=2, keepdim=True)
    gamma = params.log_gamma.to(like.dtype).reshape(b, v).exp().view(b, 1, v, 1, 1)
    shading, basis = params.shading, None
    if shading.shape[-1] > 0:
        basis = fcolor._shading_basis(h, w, fcolor.shading_degree(shading.shape[-1]), like.device, like.dtype)
        if ring:
            basis = F.pad(basis[None], (1, 1, 1, 1), mode="reflect")[0]
        shading = shading.to(like.dtype).reshape(b, v, -1)
    else:
        shading = None
    return gamma, log_gain.transpose(1, 2).reshape(b, -1, v, 1, 1), shading, basis


def light_field(shading: Tensor | None, basis: Tensor | None) -> Tensor | None:
    """The log shading field ``(B, 1, V, H, W)`` of :func:`view_light`'s coefficients, or None."""
    return None if basis is None else torch.einsum("bvs,shw->bvhw", shading, basis).unsqueeze(1)


def _kinds(models: Sequence[Any], params: Sequence[Params]) -> list[str | None]:
    return [fused_kind(m, p) for m, p in zip(models, params)]


def scoring_luma(models: Sequence[Any], images: Tensor, params: Sequence[Params]) -> Tensor | None:
    """``luma(g_v(x))`` for every view ``v`` of each image, ``(B * V, 1, H, W)`` sample-major, without ``V``
    copies of the image: the ``V`` illuminations of an image share its logarithm. ``params`` are ``(B, V,
    ...)``. None unless the chain is an illumination-kind model, optionally followed by a motion-kind one."""
    kinds = _kinds(models, params)
    if images.ndim != 4 or kinds not in (["illumination"], ["illumination", "motion"]):
        return None
    b, c, h, w = images.shape
    v = params[0].log_gain.shape[1]
    flat = flatten_views(params[0])
    flat.check_batch(b * v)
    check_finite(flat)
    gamma, log_gain, shading, basis = view_light(params[0], c, h, w, images)
    lit = fcolor._illuminate(images.unsqueeze(2), gamma, log_gain, light_field(shading, basis))  # (B, C, V, H, W)
    out = luma(lit.movedim(2, 1)).reshape(b * v, 1, h, w)  # channels next to H, W, then sample-major
    if len(models) == 2:
        motion = flatten_views(params[1])
        motion.check_batch(b * v)
        check_finite(motion)
        out = models[1]._apply_float(out, motion)
    return out.clamp_(0.0, 1.0)


def render_steps(models: Sequence[Any], images: Tensor, boxes: Tensor, flip: Tensor, params: Sequence[Params],
                 size: tuple[int, int], sampling_ratio: int) -> list[Tensor]:
    """The public implementation: crop, resize and flip each view (:func:`resized_crop`), then the chain of
    models' ``apply``; ``V`` contiguous ``(B, C, h, w)`` views. A few images at a time on the CPU."""
    b, c = images.shape[:2]
    v = boxes.shape[1]
    views = [images.new_empty(b, c, *size) for _ in range(v)]
    step = chunk_rows(images, v * c * size[0] * size[1])
    for r0 in range(0, b, step):
        rows = slice(r0, min(b, r0 + step))
        crops = resized_crop(images[rows], boxes[rows], size, flip=flip[rows], sampling_ratio=sampling_ratio)
        if not models:  # no perturbation: the clamp writes the views (one pass instead of a clamp and a copy)
            for i in range(v):
                torch.clamp(crops[:, i], 0.0, 1.0, out=views[i][rows])
            continue
        out = apply_chain(models, crops.flatten(0, 1), [flatten_views(p.index(rows)) for p in params])
        out = out.view(rows.stop - r0, v, *out.shape[1:])
        for i in range(v):
            views[i][rows] = out[:, i]
    return views


def render_one(image: Tensor, boxes: Tensor, flip: Tensor, size: tuple[int, int],
               sampling_ratio: int) -> list[Tensor] | None:
    """Speed path of :func:`render_steps` without models for one image ``(1, C, H, W)``, its boxes ``(V, 4)``
    and flips ``(V,)``, when every box takes one bilinear sample per bin (where :func:`resized_crop` samples
    with ``grid_sample``): all views in one sampling of the image, each clamped into its own tensor. None
    where it does not apply."""
    out_h, out_w = size
    h, w = image.shape[-2:]
    if (h < 2 or w < 2 or sampling_ratio not in (-1, 1) or image.dtype not in (torch.float32, torch.float64)
            or image.device.type != "cpu" or not current().fast_paths):
        return None
    flat = boxes.to(image.dtype)
    if sampling_ratio == -1:  # resized_crop's test, in the image's dtype (numpy: IEEE, as torch)
        b = flat.numpy()
        if not (bool((b[:, 2] - b[:, 0] <= out_w).all()) and bool((b[:, 3] - b[:, 1] <= out_h).all())):
            return None
    sampled = _bilinear_crop_one(image.detach(), flat, flip, out_h, out_w)
    return [sampled[:, :, i * out_h:(i + 1) * out_h].clamp(0.0, 1.0) for i in range(boxes.shape[0])]


def render_fused(models: Sequence[Any], images: Tensor, boxes: Tensor, flip: Tensor, params: Sequence[Params],
                 size: tuple[int, int], sampling_ratio: int) -> list[Tensor] | None:
    """The ``V`` views of :func:`render_steps` in one sampling pass, or None where it does not apply.

    The crop and the camera motion's warp are one affine map from view pixels to image pixels, sampled once
    (``geometry._crop_warp_ring``), together with the one-pixel mirrored ring the blur reads; the
    illumination is applied to that buffer (its shading mirrored onto the ring), then the blur's 3x3 taps.
    So the warp reads the scene around the crop (what a moving camera sees), and each view is resampled once
    instead of twice. Applies to a chain of a motion-kind model, optionally after an illumination-kind one,
    when at least one streak in the batch is shorter than the 3x3 fast blur (the longer ones get the dense
    blur). On the CPU a few images at a time (``_chunks.chunk_rows``): every pass stays in cache.
    """
    from ..functional.geometry import (
        _blur_taps3,
        _crop_warp_ring,
        motion_blur,
        motion_blur_kernels,
        similarity_matrices,
    )

    h, w = size
    kinds = _kinds(models, params)
    if images.ndim != 4 or h < 3 or w < 3 or kinds not in (["motion"], ["illumination", "motion"]):
        return None
    motion_model, motion = models[-1], params[-1]
    ill = params[0] if len(models) == 2 else None
    mp = flatten_views(motion)
    n = mp.log_scale.shape[0]
    mp.check_batch(n)
    check_finite(mp)
    mp = mp.to(images.device)
    length = (mp.blur_length.reshape(-1).clamp_min(0) * float(max(h, w))).to(images.dtype)
    angle = mp.blur_angle.reshape(-1).to(images.dtype)
    short = length < 2.0
    if not bool(short.any()):
        return None
    kernels = motion_blur_kernels(length, angle)
    pad = kernels.shape[-1] // 2
    if pad >= h or pad >= w:
        return None
    b, c = images.shape[:2]
    v = boxes.shape[1]
    hg, wg = h + 2, w + 2
    inverse = torch.linalg.inv(similarity_matrices(mp.log_scale.to(torch.float64), mp.rotation.to(torch.float64),
                                                   mp.translation.to(torch.float64), h, w))
    # Per-view parameters shaped (B, 1 or C, V, 1, 1) / (B, 1, V, hg, wg): they broadcast over the view-major
    # buffer (B, C, V, hg, wg) that the sampling writes.
    light = None
    if ill is not None:
        flatten_views(ill).check_batch(n)
        ill = ill.to(images.device)
        if not ill.photometric_is_identity():
            light = view_light(ill, c, h, w, images, ring=True)
    taps = None
    if pad:
        taps = torch.where(short[:, None, None], kernels, 0.0)[:, pad - 1:pad + 2, pad - 1:pad + 2].view(b, v, 3, 3)
    any_long = not bool(short.all())
    views = [images.new_empty(b, c, h, w) for _ in range(v)]
    padding_mode = motion_model.config["padding_mode"]
    step = chunk_rows(images, v * c * hg * wg)
    for r0 in range(0, b, step):
        rows = slice(r0, min(b, r0 + step))
        sampled = _crop_warp_ring(images[rows], boxes[rows], flip[rows], inverse[r0 * v:rows.stop * v], h, w,
                                  padding_mode=padding_mode, sampling_ratio=sampling_ratio,
                                  view_major=True)  # (m, C, V, hg, wg)
        if light is not None:
            gamma, log_gain, shading, basis = light
            field = light_field(None if shading is None else shading[rows], basis)
            sampled = fcolor._illuminate(sampled, gamma[rows], log_gain[rows], field)
        for i in range(v):
            out = views[i][rows]
            if pad == 0:
                out.copy_(sampled[:, :, i, 1:-1, 1:-1])
            else:
                _blur_taps3(None, taps[rows, i], "reflect", padded=sampled[:, :, i], out=out)
            if any_long:
                idx = (~short.view(b, v)[rows, i]).nonzero().squeeze(1)
                if idx.numel():  # the few longer streaks: the dense blur of their (illuminated) views
                    inner = sampled[:, :, i].index_select(0, idx)[:, :, 1:-1, 1:-1]
                    sel = (idx + r0) * v + i
                    out.index_copy_(0, idx, motion_blur(inner, length.index_select(0, sel),
                                                        angle.index_select(0, sel)))
            out.clamp_(0.0, 1.0)  # while the chunk is in cache
    return views
