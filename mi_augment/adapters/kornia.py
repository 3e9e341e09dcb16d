"""``NaturalIllumination`` and ``NaturalMotion`` as Kornia augmentations.

They run inside ``kornia.augmentation.AugmentationSequential`` like Kornia's own classes::

    import kornia.augmentation as K
    from mi_augment.adapters.kornia import NaturalIllumination, NaturalMotion

    seq = K.AugmentationSequential(NaturalMotion(), NaturalIllumination(), K.RandomHorizontalFlip(),
                                   data_keys=["input", "bbox_xyxy", "mask", "keypoints"])
    image, boxes, mask, points = seq(image, boxes, mask, points)   # all moved by the same motion
    again = seq(image0, boxes0, mask0, points0, params=seq._params)  # Kornia's replay
    back = seq.inverse(image, boxes, mask, points)                    # motion undone (its blur is not)

Kornia's conventions hold: draws come from torch's global RNG (``torch.manual_seed`` makes them repeatable; a
seed taken from it drives the wrapped model's own generator), ``p`` / ``p_batch`` gate samples / the batch,
``same_on_batch`` shares one draw, ``keepdim`` keeps a ``[C, H, W]`` input's rank, and ``_params`` holds the
last draw as a dict of per-sample tensors (the fields of the model's params). ``NaturalMotion``'s
``transform_matrix`` is the similarity it renders (pixel centres at integers, input to output, Kornia's
convention), so boxes and keypoints move by it; masks are warped by nearest neighbour with the image's border
mode, and not blurred. ``NaturalIllumination`` moves no pixel: targets pass through.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
from kornia.augmentation import GeometricAugmentationBase2D, IntensityAugmentationBase2D
from kornia.constants import Resample
from torch import Tensor

from ..core.params import Params
from ..core.validation import check_unit_images
from ..functional.geometry import warp_homography, warp_masks
from ..perturbations.illumination import IlluminationModel
from ..perturbations.motion import MotionModel
from ..transforms import illumination as _illumination
from ..transforms import motion as _motion
from ..transforms.base import ModelTransform

__all__ = ["NaturalIllumination", "NaturalMotion"]

_KORNIA_KEYS = ("batch_prob", "forward_input_shape")


def _params_to_dict(params: Params) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for f in dataclasses.fields(params):
        _flatten_field(getattr(params, f.name), f.name, out)
    return out


def _flatten_field(value: Any, key: str, out: dict[str, Tensor]) -> None:
    if isinstance(value, Params):
        for f in dataclasses.fields(value):
            _flatten_field(getattr(value, f.name), f"{key}.{f.name}", out)
    elif isinstance(value, tuple):
        for i, item in enumerate(value):
            _flatten_field(item, f"{key}.{i}", out)
    else:
        out[key] = value


def _rebuild(template: Any, key: str, params: dict[str, Tensor], device: torch.device) -> Any:
    if isinstance(template, Params):
        return type(template)(**{f.name: _rebuild(getattr(template, f.name), f"{key}.{f.name}", params, device)
                                 for f in dataclasses.fields(template)})
    if isinstance(template, tuple):
        return tuple(_rebuild(item, f"{key}.{i}", params, device) for i, item in enumerate(template))
    if key not in params:
        raise KeyError(f"params is missing {key!r}; pass the dict this augmentation stored in _params")
    return params[key].to(device)


class _ModelAugmentation:
    """What both adapters share: draws through the wrapped mi_augment transform, params as a dict of tensors."""

    mi_transform: ModelTransform

    def _init_model(self, transform: ModelTransform) -> None:
        self.mi_transform = transform
        # "resample" is Kornia's flag for the interpolation; containers set it to nearest for masks.
        self.flags = {"resample": Resample.BILINEAR}

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, strength={self.mi_transform.strength})"

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        b = int(batch_shape[0])
        n = 1 if self.same_on_batch and b > 0 else b
        # One seed from torch's global RNG (Kornia's source of randomness) drives the model's generator.
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        shape = (n, *batch_shape[1:])
        drawn = self.mi_transform.make_params(torch.zeros((), device=self.device).expand(shape), generator=generator)
        out = _params_to_dict(drawn)
        if n != b:
            out = {k: v.expand(b, *v.shape[1:]).clone() for k, v in out.items()}
        return out

    def _model_params(self, params: dict[str, Tensor], images: Tensor) -> Params:
        """The dict of tensors back as the model's params (for the rows of ``images``)."""
        probe = torch.zeros((), device=images.device).expand(1, *images.shape[1:])
        template = self.mi_transform.make_params(probe, generator=torch.Generator().manual_seed(0))
        fields = {k: v for k, v in params.items() if k not in _KORNIA_KEYS}
        out = type(template)(**{f.name: _rebuild(getattr(template, f.name), f.name, fields, images.device)
                                for f in dataclasses.fields(template)})
        out.check_batch(images.shape[0])
        return out

    def validate_tensor(self, input: Tensor) -> None:
        super().validate_tensor(input)
        check_unit_images(input, "input", self.mi_transform.channels)  # the core transforms' checks, all rows

    def apply_transform(self, input: Tensor, params: dict[str, Tensor], flags: dict[str, Any],
                        transform: Tensor | None = None) -> Tensor:
        if input.shape[0] == 0:
            return input.clone()
        x = check_unit_images(input, "input", self.mi_transform.channels)
        return self.mi_transform.transform(x, self._model_params(params, x))


class NaturalIllumination(_ModelAugmentation, IntensityAugmentationBase2D):
    """:class:`mi_augment.transforms.NaturalIllumination` as a Kornia intensity augmentation.

    Args:
        model: a fitted :class:`IlluminationModel`, ``"default"`` (or None: :meth:`IlluminationModel.default`)
            or the path of a file written by ``model.save``.
        strength: distance of each draw from "no change" (0 = identity, 1 = as fitted).
        p, p_batch, same_on_batch, keepdim: Kornia's (``p`` defaults to 1: the fitted density already holds
            the near-identity changes real footage shows).

    Shape:
        input ``(B, C, H, W)`` or ``(C, H, W)``, ``C`` in {1, 3}, floats in [0, 1]; output the same.

    Examples:
        >>> import torch
        >>> aug = NaturalIllumination(p=1.0)
        >>> aug(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(self, model: IlluminationModel | str | os.PathLike | None = None, strength: float = 1.0,
                 p: float = 1.0, p_batch: float = 1.0, same_on_batch: bool = False, keepdim: bool = False):
        super().__init__(p=p, p_batch=p_batch, same_on_batch=same_on_batch, keepdim=keepdim)
        self._init_model(_illumination.NaturalIllumination(model, strength=strength))


class NaturalMotion(_ModelAugmentation, GeometricAugmentationBase2D):
    """:class:`mi_augment.transforms.NaturalMotion` as a Kornia geometric augmentation.

    ``transform_matrix`` is the drawn similarity (the warp before the motion blur), so
    ``AugmentationSequential`` moves ``bbox_*`` and ``keypoints`` by it; masks are warped with the same
    similarity by nearest neighbour, with the model's border mode (reflection by default: aligned with the
    image's reflected borders), and are not blurred. ``inverse`` warps back by the inverse similarity; the blur
    and what the borders replaced cannot be undone.

    Args:
        model: a fitted :class:`MotionModel`, ``"default"`` (or None: :meth:`MotionModel.default`) or the path
            of a file written by ``model.save``.
        strength: distance of each draw from "no motion" (0 = identity, 1 = as fitted).
        p, p_batch, same_on_batch, keepdim: Kornia's (``p`` defaults to 1: the fitted density already holds
            "no motion" in the proportion real footage shows it).

    Shape:
        input ``(B, C, H, W)`` or ``(C, H, W)``, ``C`` in {1, 3}, floats in [0, 1]; output the same.

    Examples:
        >>> import torch
        >>> aug = NaturalMotion()
        >>> out = aug(torch.rand(2, 3, 16, 16))
        >>> aug.transform_matrix.shape
        torch.Size([2, 3, 3])
    """

    def __init__(self, model: MotionModel | str | os.PathLike | None = None, strength: float = 1.0,
                 p: float = 1.0, p_batch: float = 1.0, same_on_batch: bool = False, keepdim: bool = False):
        super().__init__(p=p, p_batch=p_batch, same_on_batch=same_on_batch, keepdim=keepdim)
        self._init_model(_motion.NaturalMotion(model, strength=strength))

    def compute_transformation(self, input: Tensor, params: dict[str, Tensor], flags: dict[str, Any]) -> Tensor:
        h, w = input.shape[-2:]
        matrices = self.mi_transform.warp_matrices(self._model_params(params, input), h, w)
        return matrices.to(device=input.device, dtype=input.dtype)

    def apply_transform_mask(self, input: Tensor, params: dict[str, Tensor], flags: dict[str, Any],
                             transform: Tensor | None = None) -> Tensor:
        if transform is None:
            transform = self.compute_transformation(input, params, flags)
        return warp_masks(input, transform.to(input.device), padding_mode=self.mi_transform.mask_padding_mode)

    def inverse_transform(self, input: Tensor, flags: dict[str, Any], transform: Tensor | None = None,
                          size: tuple[int, int] | None = None) -> Tensor:
        if transform is None:
            raise ValueError("NaturalMotion.inverse_transform needs the inverse matrices as transform")
        nearest = flags.get("resample") in (Resample.NEAREST, "nearest")
        return warp_homography(input, transform.to(input.device), padding_mode=self.mi_transform.mask_padding_mode,
                               interpolation="nearest" if nearest else "bilinear")
