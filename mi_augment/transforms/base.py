"""The transform contract shared by every mi_augment transform (see docs/conventions.md).

Subclasses write two methods:

* ``make_params(images, generator=None) -> Params``: draw per-sample parameters (leading dim B) for a float
  batch ``[B, C, H, W]``, on the images' device.
* ``transform(images, params) -> Tensor``: apply them with pure kernels from :mod:`mi_augment.functional`.

``forward`` is shared: it accepts a single image ``[C,H,W]`` or a batch ``[B,C,H,W]`` (float in [0, 1] or
uint8), a PIL image, a numpy ``HWC`` array or a ``tv_tensors.Image``, and returns the same type; or, as
``torchvision.transforms.v2`` passes them, a pytree of images and targets (``BoundingBoxes``, ``Mask``,
``KeyPoints`` move with a geometric transform through :meth:`RandomTransform.warp_matrices`; other leaves pass
through). It applies the per-sample ``p`` gate without branches, and replays ``params=`` from an earlier call.
No state is kept between calls.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_unflatten  # the pytree utilities torchvision v2 uses
from torchvision import tv_tensors as _tv
from torchvision.transforms.v2 import functional as _tvf

from ..core.chunks import chunk_rows
from ..core.params import GatedParams, Params
from ..core.random import rand
from ..core.validation import check_generator, check_probability, restore, to_float_batch
from ..functional.geometry import warp_boxes, warp_masks, warp_points
from ..perturbations.base import PerturbationModel, check_strength

try:
    from PIL.Image import Image as _PIL
except ImportError:  # pragma: no cover - PIL comes with torchvision
    _PIL = None


def _is_pure_tensor(x: Any) -> bool:
    return isinstance(x, Tensor) and not isinstance(x, _tv.TVTensor)


def image_leaves(flat: list[Any]) -> list[int]:
    """Indices of the images in a flattened pytree: ``tv_tensors.Image`` and PIL leaves, else the first plain
    tensor (torchvision v2's rule), else the first numpy array.

    Example:
        >>> image_leaves(["label", torch.rand(3, 4, 4), torch.rand(2)])
        [1]
    """
    found = [i for i, v in enumerate(flat) if isinstance(v, _tv.Image) or (_PIL is not None and isinstance(v, _PIL))]
    if found:
        return found
    for kind in (_is_pure_tensor, lambda v: isinstance(v, np.ndarray)):
        first = next((i for i, v in enumerate(flat) if kind(v)), None)
        if first is not None:
            return [first]
    return []


def _restore_like(y: Tensor, spec: Any, original: Any) -> Any:
    out = restore(y, spec)
    if isinstance(original, _tv.Image) and not isinstance(out, _tv.Image):
        out = _tv.wrap(out, like=original)
    return out


def _check_canvas(target: Any, size: tuple[int, int]) -> None:
    canvas = tuple(target.canvas_size) if hasattr(target, "canvas_size") else tuple(target.shape[-2:])
    if canvas != tuple(size):
        raise ValueError(f"{type(target).__name__} canvas {canvas} (height, width) does not match the image's {size}")


def _one_sample(target: Any, matrices: Tensor) -> Tensor:
    if matrices.shape[0] != 1:
        raise ValueError(f"{type(target).__name__} with a batch of {matrices.shape[0]} images is ambiguous (one "
                         "set of boxes or points per call); transform one image at a time, or use "
                         "mi_augment.adapters.kornia for batches with per-sample boxes")
    return matrices


def _move_target(target: Any, matrices: Tensor, size: tuple[int, int], padding_mode: str) -> Any:
    """A ``BoundingBoxes`` / ``Mask`` / ``KeyPoints`` moved by the image's ``(B, 3, 3)`` warp."""
    plain = target.as_subclass(Tensor)
    if isinstance(target, _tv.Mask):
        _check_canvas(target, size)
        b, (h, w) = matrices.shape[0], size
        if b > 1 and (plain.ndim < 3 or plain.shape[0] != b):
            raise ValueError(f"Mask of shape {tuple(plain.shape)} with a batch of {b} images: expected "
                             f"[{b}, ..., H, W], one mask per image")
        moved = warp_masks(plain.reshape(b, -1, h, w), matrices, padding_mode=padding_mode)
        return _tv.wrap(moved.reshape(plain.shape), like=target)
    _check_canvas(target, size)
    m = _one_sample(target, matrices)
    if isinstance(target, _tv.KeyPoints):
        return _tv.wrap(warp_points(plain.reshape(1, -1, 2), m).reshape(plain.shape), like=target)
    fmt, clamp = target.format, target.clamping_mode is not None
    if _tv.is_rotated_bounding_format(fmt):  # a similarity keeps rectangles: move the four corners exactly
        corners = _tvf.convert_bounding_box_format(plain, old_format=fmt, new_format=_tv.BoundingBoxFormat.XYXYXYXY)
        moved = warp_points(corners.reshape(1, -1, 2) - 0.5, m).reshape(corners.shape) + 0.5
        out = _tv.wrap(_tvf.convert_bounding_box_format(moved, old_format=_tv.BoundingBoxFormat.XYXYXYXY,
                                                        new_format=fmt), like=target)
        return _tvf.clamp_bounding_boxes(out) if clamp else out
    xyxy = _tvf.convert_bounding_box_format(plain, old_format=fmt, new_format=_tv.BoundingBoxFormat.XYXY)
    moved = warp_boxes(xyxy.reshape(1, -1, 4), m, canvas_size=size if clamp else None).reshape(xyxy.shape)
    return _tv.wrap(_tvf.convert_bounding_box_format(moved, old_format=_tv.BoundingBoxFormat.XYXY, new_format=fmt),
                    like=target)


class RandomTransform(nn.Module):
    """Base class for per-sample random transforms."""

    #: channel counts accepted by the transform
    channels: tuple[int, ...] = (1, 3)

    def __init__(self, p: float = 1.0):
        super().__init__()
        self.p = check_probability(p, "p")

    # -- to implement --
    def make_params(self, images: Tensor, generator: torch.Generator | None = None) -> Params:
        """Draw per-sample params for the float batch ``images`` ``[B, C, H, W]``. The default draws
        :meth:`uniforms_per_sample` uniforms per sample as one ``rand((B, n))`` call and maps them with
        :meth:`params_from_uniforms`; a transform that draws otherwise overrides this."""
        n = self.uniforms_per_sample()
        if n is None:
            raise NotImplementedError(f"{type(self).__name__} defines neither make_params nor uniforms_per_sample")
        return self.params_from_uniforms(rand((images.shape[0], n), generator, images.device))

    # -- optional: draws as uniforms, so one image's draws need no tensor op (the CPU uint8 backend) --
    def uniforms_per_sample(self) -> int | None:
        """How many uniform draws :meth:`make_params` takes per sample when it is one ``rand((B, n))`` call mapped
        by :meth:`params_from_uniforms` (the generator's numbers in order, so ``n`` uniforms per sample and then
        the ``p`` gate's one are the same numbers as one longer draw); None when the transform draws otherwise.

        Example:
            >>> from mi_augment.transforms import ColorJitter, RandomGrayscale
            >>> ColorJitter(0.4, 0.4, 0.4, 0.1).uniforms_per_sample(), RandomGrayscale().uniforms_per_sample()
            (8, 0)
        """
        return None

    def params_from_uniforms(self, u: Tensor) -> Params:
        """The params of a batch from its uniforms ``u`` ``(B, uniforms_per_sample())`` (float32 in [0, 1)):
        what :meth:`make_params` returns for those draws."""
        raise NotImplementedError

    def row_from_uniforms(self, u: Sequence[float]) -> tuple:
        """One sample's params from its ``uniforms_per_sample()`` uniforms as Python numbers, laid out as
        :meth:`~mi_augment.core.params.Params.row`: exactly ``params_from_uniforms(tensor([u])).row(0)`` (float32
        arithmetic emulated), without a tensor op. The uint8 kernels take this row."""
        raise NotImplementedError

    def transform(self, images: Tensor, params: Params) -> Tensor:
        raise NotImplementedError

    def warp_matrices(self, params: Params, height: int, width: int) -> Tensor | None:
        """The ``(B, 3, 3)`` input-to-output pixel matrices by which ``transform`` moves image content
        (:mod:`mi_augment.functional.geometry`'s convention), used to move boxes, masks and keypoints with the
        image; None for a transform that moves no pixel (targets then pass through unchanged)."""
        return None

    #: border handling when masks are warped by :meth:`warp_matrices` (match the image's, so they stay aligned)
    mask_padding_mode: str = "zeros"

    # -- shared --
    def forward(self, *inputs: Any, params: GatedParams | None = None, generator: torch.Generator | None = None,
                return_params: bool = False) -> Any:
        """Transform ``inputs``: one image (tensor ``[C, H, W]`` / ``[B, C, H, W]``, PIL, numpy, or
        ``tv_tensors.Image``), or any pytree of them with targets, as ``torchvision.transforms.v2`` passes them
        (``t(image, target)``, ``t({"image": ..., "boxes": ...})``).

        In a pytree the images are the ``tv_tensors.Image`` / PIL leaves, or else the first plain tensor (the
        torchvision rule); all get the same draw. ``BoundingBoxes``, ``Mask`` and ``KeyPoints`` move with a
        geometric transform (:meth:`warp_matrices`) and pass unchanged through a photometric one; every other
        leaf (labels, strings, numbers) passes through. Targets need one image per call (or a batch of one),
        except masks ``[B, ..., H, W]`` that match a batch of ``B`` images.

        Returns the same structure and types, and also the :class:`GatedParams` if ``return_params``.
        """
        if not inputs:
            raise TypeError("forward() needs an image or a pytree holding one, got no input")
        for extra in inputs[1:]:  # the pre-pytree signature took these positionally: refuse, never ignore
            if isinstance(extra, (GatedParams, torch.Generator)):
                name = "params" if isinstance(extra, GatedParams) else "generator"
                raise TypeError(f"pass {name} as a keyword ({name}=...); extra positional inputs are targets")
        check_generator(generator)
        if params is not None and not isinstance(params, GatedParams):
            raise TypeError("params must be the GatedParams returned by an earlier call with return_params=True, "
                            f"got {type(params).__name__}")
        single = inputs[0] if len(inputs) == 1 else None
        if single is not None and not isinstance(single, (tuple, list, dict)) and (
                not isinstance(single, _tv.TVTensor) or isinstance(single, _tv.Image)):
            x, spec = to_float_batch(single, "images", self.channels)
            y, params = self.apply_gated(x, params, generator)
            out = _restore_like(y, spec, single)
            return (out, params) if return_params else out
        out, params = self._forward_pytree(single if single is not None else inputs, params, generator)
        return (out, params) if return_params else out

    def apply_gated(self, images: Tensor, params: GatedParams | None = None,
                    generator: torch.Generator | None = None, inplace: bool = False) -> tuple[Tensor, GatedParams]:
        """Draw (or replay) the gated params for a checked float batch and apply them: what ``forward`` does
        after converting its input, for callers that hold float batches already (a pair's view pipelines).

        Args:
            images: ``[B, C, H, W]`` float in [0, 1] (not checked again).
            params: the :class:`GatedParams` of an earlier call to replay; None draws new ones
                (:meth:`make_params`, then the ``p`` gate's ``(B,)`` uniform draw).
            generator: the generator to draw from.
            inplace: ``images`` is the caller's own buffer: the samples the gate holds back are left in it
                rather than copied.

        Returns:
            the transformed batch and the params drawn or replayed.

        Example:
            >>> from mi_augment.transforms import RandomGrayscale
            >>> out, params = RandomGrayscale(p=1.0).apply_gated(torch.rand(2, 3, 4, 4))
            >>> out.shape, params.applied.tolist()
            (torch.Size([2, 3, 4, 4]), [True, True])
        """
        b = images.shape[0]
        if params is None:
            params = GatedParams(self.make_params(images, generator=generator),
                                 rand((b,), generator, images.device) < self.p)
        else:
            params.check_batch(b)
            params = params.to(images.device)
        applied = params.applied
        if b == 1 and images.device.type == "cpu":  # one image (a DataLoader worker's call): the gate as a number
            if bool(applied[0]):
                return self.transform(images, params.params), params
            return (images if inplace else images.clone()), params
        if images.device.type == "cpu" and b > 0:
            # On the CPU transform only the samples the gate lets through (p < 1 skips work); accelerators
            # keep the branchless form (no host sync).
            rows = applied.nonzero().squeeze(1)
            if rows.numel() == b:
                return self.transform(images, params.params), params
            out = images if inplace else images.clone()
            if rows.numel():
                out.index_copy_(0, rows, self.transform(out.index_select(0, rows), params.params.index(rows)))
            return out, params
        y = self.transform(images, params.params)
        return torch.where(applied.view(-1, 1, 1, 1), y, images), params

    def _forward_pytree(self, tree: Any, params: GatedParams | None, generator: torch.Generator | None
                        ) -> tuple[Any, GatedParams]:
        flat, structure = tree_flatten(tree)
        for leaf in flat:
            if isinstance(leaf, _tv.Video):
                raise TypeError(f"{type(self).__name__} does not take tv_tensors.Video; pass its frames "
                                "[T, C, H, W] as a plain tensor batch (one draw per frame)")
        images = image_leaves(flat)
        if not images:
            raise TypeError(f"{type(self).__name__} found no image among its inputs ({', '.join(sorted({type(v).__name__ for v in flat}))}); "
                            "expected a tv_tensors.Image, a PIL image or a plain tensor [C, H, W] / [B, C, H, W]")
        out = list(flat)
        x, spec = to_float_batch(flat[images[0]], "images", self.channels)
        y, params = self.apply_gated(x, params, generator)
        out[images[0]] = _restore_like(y, spec, flat[images[0]])
        for i in images[1:]:
            xi, spec_i = to_float_batch(flat[i], "images", self.channels)
            if xi.shape[0] != x.shape[0] or xi.shape[-2:] != x.shape[-2:]:
                raise ValueError(f"all images in one call must share batch size and height x width; got "
                                 f"{tuple(xi.shape)} after {tuple(x.shape)}")
            out[i] = _restore_like(self.apply_gated(xi, params, None)[0], spec_i, flat[i])
        targets = [i for i, leaf in enumerate(flat) if isinstance(leaf, (_tv.BoundingBoxes, _tv.Mask, _tv.KeyPoints))]
        if targets and bool(params.applied.any()):  # untouched when no sample is transformed (p gate)
            h, w = x.shape[-2:]
            matrices = self.warp_matrices(params.params, h, w)
            if matrices is not None:
                eye = torch.eye(3, dtype=matrices.dtype, device=matrices.device).expand_as(matrices)
                matrices = torch.where(params.applied.to(matrices.device).view(-1, 1, 1), matrices, eye)
                for i in targets:
                    out[i] = _move_target(flat[i], matrices, (h, w), self.mask_padding_mode)
        return tree_unflatten(out, structure), params

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ModelTransform(RandomTransform):
    """A transform that draws its parameters from a fitted :class:`PerturbationModel` and renders them with the
    model's ``apply``. Subclasses set ``model_class``; ``model`` is a model, ``"default"`` (also ``None``: the
    shipped model) or the path of a saved model (:meth:`PerturbationModel.from_spec`).

    ``strength`` scales each draw's distance from "no change" in the model's unconstrained coordinates,
    keeping the fitted shape: 0 = identity, 1 = as fitted (see :meth:`PerturbationModel.sample`).
    """

    model_class: ClassVar[type[PerturbationModel]] = PerturbationModel

    def __init__(self, model: PerturbationModel | str | os.PathLike | None = None, p: float = 1.0,
                 strength: float = 1.0):
        super().__init__(p=p)
        self.strength = check_strength(strength)
        cls = self.model_class
        model = cls.from_spec("default" if model is None else model, "model")
        if not model.is_fitted:
            raise ValueError(f"model has no fitted density; call model.fit(data) or use {cls.__name__}.default()")
        self.model = model

    def make_params(self, images: Tensor, generator: torch.Generator | None = None) -> Params:
        return self.model.sample(images.shape[0], generator=generator, device=images.device, strength=self.strength)

    def transform(self, images: Tensor, params: Params) -> Tensor:
        b = images.shape[0]
        step = chunk_rows(images, images[0].numel())
        if step >= b:
            return self.model.apply(images, params)
        # A large CPU batch a few images at a time: every pass of the model stays in cache (see _chunks).
        out = torch.empty_like(images)
        for r0 in range(0, b, step):
            rows = slice(r0, min(b, r0 + step))
            out[rows] = self.model.apply(images[rows], params.index(rows))
        return out

    def extra_repr(self) -> str:
        return f"p={self.p}, strength={self.strength}, model={self.model!r}"
