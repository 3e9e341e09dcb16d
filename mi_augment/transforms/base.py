"""The transform contract shared by every mi_augment transform (see docs/conventions.md).

Subclasses write two methods:

* ``make_params(images, generator=None) -> Params``: draw per-sample parameters (leading dim B) for a float
  batch ``[B, C, H, W]``, on the images' device.
* ``transform(images, params) -> Tensor``: apply them with pure kernels from :mod:`mi_augment.functional`.

``forward`` is shared: it accepts a single image ``[C,H,W]`` or a batch ``[B,C,H,W]`` (float in [0, 1] or
uint8), a PIL image or a numpy ``HWC`` uint8 array, and returns the same type; it applies the per-sample
``p`` gate without branches; and it replays ``params`` from an earlier call. No state is kept between calls.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .._chunks import chunk_rows
from .._random import rand
from .._validation import check_generator, check_probability, restore, to_float_batch
from ..params import GatedParams, Params
from ..perturbations.base import PerturbationModel, check_strength


class RandomTransform(nn.Module):
    """Base class for per-sample random transforms."""

    #: channel counts accepted by the transform
    channels: tuple[int, ...] = (1, 3)

    def __init__(self, p: float = 1.0):
        super().__init__()
        self.p = check_probability(p, "p")

    # -- to implement --
    def make_params(self, images: Tensor, generator: torch.Generator | None = None) -> Params:
        raise NotImplementedError

    def transform(self, images: Tensor, params: Params) -> Tensor:
        raise NotImplementedError

    # -- shared --
    def forward(self, images: Any, params: GatedParams | None = None, generator: torch.Generator | None = None,
                return_params: bool = False) -> Any:
        x, spec = to_float_batch(images, "images", self.channels)
        check_generator(generator)
        b = x.shape[0]
        if params is None:
            inner = self.make_params(x, generator=generator)
            applied = rand((b,), generator, x.device) < self.p
            params = GatedParams(inner, applied)
        else:
            if not isinstance(params, GatedParams):
                raise TypeError("params must be the GatedParams returned by an earlier call with return_params=True")
            params.check_batch(b)
            params = params.to(x.device)
        y = self.transform(x, params.params)
        y = torch.where(params.applied.view(-1, 1, 1, 1), y, x)
        out = restore(y, spec)
        return (out, params) if return_params else out

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ModelTransform(RandomTransform):
    """A transform that draws its parameters from a fitted :class:`PerturbationModel` and renders them with the
    model's ``apply``. Subclasses set ``model_class``; ``model=None`` loads ``model_class.default()``.

    ``strength`` scales each draw's distance from "no change" in the model's unconstrained coordinates,
    keeping the fitted shape: 0 = identity, 1 = as fitted (see :meth:`PerturbationModel.sample`).
    """

    model_class: ClassVar[type[PerturbationModel]] = PerturbationModel

    def __init__(self, model: PerturbationModel | None = None, p: float = 1.0, strength: float = 1.0):
        super().__init__(p=p)
        self.strength = check_strength(strength)
        cls = self.model_class
        if model is None:
            model = cls.default()
        if not isinstance(model, cls):
            raise TypeError(f"model must be a {cls.__name__} or None, got {type(model).__name__}")
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
