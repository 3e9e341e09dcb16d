"""albumentations-native transforms: real ``BasicTransform`` subclasses for ``A.Compose`` pipelines.

* :class:`NaturalIllumination` (``ImageOnlyTransform``): a draw from an ``IlluminationModel``.
* :class:`NaturalMotion` (``DualTransform``): a draw from a ``MotionModel``; the image is warped and blurred,
  masks are warped by the same similarity (nearest neighbour, the model's border mode), bboxes and keypoints
  are moved by it (bboxes: the box around the four moved corners; keypoints: angle and scale updated too).
* :class:`MIPair` (``DualTransform``): the views of an :class:`~mi_augment.transforms.MIPairTransform`, with
  masks, bboxes and keypoints cropped, resized and flipped as each view's box.

Images are numpy ``HxW`` or ``HxWxC`` arrays, uint8 or float32 in [0, 1] (albumentations' conventions),
returned with the same shape rules and dtype; :class:`MIPair`'s views that leave [0, 1] (``normalize=``, or a
``Normalize`` among its view transforms) come back as float32, never clamped.

**Return convention of** :class:`MIPair` (put it last in the ``Compose``: transforms after it see view 0 only)::

    out = pipeline(image=img, mask=mask, bboxes=boxes, labels=labels)
    out["image"], out["mask"], out["bboxes"], out["labels"]   # view 0, converted back by Compose as usual
    out["views"]                  # tuple of all n_views images (views[0] is out["image"])
    out["view_targets"]           # list, one dict per view: {"mask": ..., "bboxes": ..., "labels": ...}

``view_targets`` is present when a mask, masks, bboxes or keypoints were given; inside an ``A.Compose`` with
``bbox_params`` / ``keypoint_params`` its boxes and keypoints are in your format, filtered and clipped like
``out["bboxes"]``, with their label fields beside them.

**Serialization.** ``A.to_dict``, ``A.save(pipeline, "p.json")`` (or ``data_format="yaml"``) and ``A.load``
work for pipelines of these transforms when their models are given as ``"default"`` or as a saved model's
path (``model.save("my.json")``, then ``NaturalIllumination("my.json")``), and :class:`MIPair` is built from
keyword arguments (``MIPair(size=32, illumination="default")``); the file records those strings, never model
objects. Import this module before ``A.load`` so that albumentations finds the classes. In-memory models
cannot be serialised: ``to_dict`` says so and how to save them.

**Randomness.** Each transform draws from a ``torch.Generator`` driven by albumentations' own seeding:
``A.Compose([...], seed=s)`` (or ``set_random_seed(s)``). The generator is derived lazily, at the first call
in each process: from ``s`` alone in the main process, and from ``s`` and ``torch.initial_seed()`` inside a
DataLoader worker (which is the loader's base seed + the worker id). So workers draw differently under fork
and spawn, every epoch differs, and a run is reproducible for a fixed ``s`` and loader seed
(``torch.manual_seed`` or ``DataLoader(generator=...)``). Without a seed the draws come from torch's global
RNG, which DataLoader seeds per worker. The transforms pickle (spawn workers) without their generator.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from albumentations.core.transforms_interface import DualTransform, ImageOnlyTransform
from albumentations.core.type_definitions import Targets
from torch import Tensor

from ..functional.geometry import warp_homography
from ..transforms.collate import transform_or_kwargs
from ..transforms.illumination import NaturalIllumination as _IlluminationModule
from ..transforms.motion import NaturalMotion as _MotionModule
from ..transforms.pair import MIPairTransform
from ._albumentations_support import (
    TorchSeeded,
    finish_bboxes,
    model_spec,
    serialisable,
    to_numpy,
    to_tensor,
    view_to_numpy,
    warps_views,
)

__all__ = ["NaturalIllumination", "NaturalMotion", "MIPair"]

_GEOMETRIC = ("mask", "masks", "bboxes", "keypoints")


class _ModelBacked(TorchSeeded):
    """A single-view adapter around one of our model transforms (``_module_class``), applied with p = 1 inside
    (albumentations' own ``p`` gates it)."""

    _module_class: Any = None

    def __init__(self, model: Any = None, strength: float = 1.0, p: float = 1.0, seed: int | None = None):
        super().__init__(p=p)
        self.module = self._module_class(model, p=1.0, strength=strength)
        self.model_spec = model_spec(model)
        self.set_random_seed(seed)

    def get_transform_init_args(self) -> dict[str, Any]:
        return {"model": self.model_spec, "strength": self.strength}

    def to_dict_private(self) -> dict[str, Any]:
        if not isinstance(self.model_spec, str):
            raise TypeError(f"{type(self).__name__} holds an in-memory {type(self.model_spec).__name__}, "
                            "which albumentations cannot serialise; save it (model.save('model.json')) and pass "
                            f"the path: {type(self).__name__}('model.json')")
        return super().to_dict_private()

    @property
    def model(self) -> Any:
        return self.module.model

    @property
    def strength(self) -> float:
        return self.module.strength


# ------------------------------------------------------------------------------------------ transforms
class NaturalIllumination(_ModelBacked, ImageOnlyTransform):
    """albumentations form of :class:`mi_augment.transforms.NaturalIllumination`: a per-image illumination
    change drawn from an :class:`~mi_augment.perturbations.IlluminationModel`.

    Args:
        model: a fitted ``IlluminationModel``, ``"default"`` (or None: the shipped model) or the path of a
            saved one (the two forms that ``A.save`` can record).
        strength: distance of each draw from "no change" (0 identity, 1 as fitted).
        p: probability of applying it.
        seed: optional seed (an enclosing ``A.Compose`` re-seeds its transforms with its own ``seed``).

    Targets: image (RGB or greyscale, uint8 or float32 in [0, 1]).

    Shape:
        image ``(H, W, C)`` or ``(H, W)``; output the same shape and dtype.

    Example:
        >>> import numpy as np
        >>> NaturalIllumination("default", seed=0)(image=np.zeros((8, 8, 3), np.uint8))["image"].shape
        (8, 8, 3)
    """

    _module_class = _IlluminationModule

    def get_params(self) -> dict[str, Any]:
        return {"illumination": self.model.sample(1, generator=self.generator, strength=self.strength)}

    def apply(self, img: np.ndarray, illumination: Any = None, **params: Any) -> np.ndarray:
        x = to_tensor(img)
        return to_numpy(self.module.transform(x[None], illumination)[0], img)


class NaturalMotion(_ModelBacked, DualTransform):
    """albumentations form of :class:`mi_augment.transforms.NaturalMotion`: a natural camera motion (similarity
    warp about the image centre + motion blur) drawn from a :class:`~mi_augment.perturbations.MotionModel`.

    The image is warped and blurred by the model's ``apply``. Masks are warped by the same similarity with
    nearest-neighbour sampling and the model's border mode (reflection by default, like the image, so each mask
    pixel keeps labelling the image pixel it lies on); no blur. Bboxes become the axis-aligned box around
    their four moved corners (clipped and filtered by ``Compose``'s ``bbox_params``, or clipped to the image
    when used alone); keypoints move with the similarity, their angle turns with it and their scale zooms.

    Args:
        model: a fitted ``MotionModel``, ``"default"`` (or None: the shipped model) or the path of a
            saved one (the two forms that ``A.save`` can record).
        strength: distance of each draw from "no motion" (0 identity, 1 as fitted).
        p: probability of applying it.
        seed: optional seed (an enclosing ``A.Compose`` re-seeds its transforms with its own ``seed``).

    Targets: image, mask, masks, bboxes, keypoints.

    Shape:
        image ``(H, W, C)`` or ``(H, W)``, mask ``(H, W)``; outputs the same shape and dtype.

    Example:
        >>> import numpy as np
        >>> out = NaturalMotion("default", seed=0)(image=np.zeros((8, 8, 3), np.uint8), mask=np.ones((8, 8), bool))
        >>> out["image"].shape, out["mask"].dtype
        ((8, 8, 3), dtype('bool'))
    """

    _targets = (Targets.IMAGE, Targets.MASK, Targets.BBOXES, Targets.KEYPOINTS)

    _module_class = _MotionModule

    @property
    def targets(self) -> dict[str, Any]:
        return {"image": self.apply, "mask": self.apply_to_mask, "masks": self.apply_to_masks,
                "bboxes": self.apply_to_bboxes, "keypoints": self.apply_to_keypoints}

    def get_params(self) -> dict[str, Any]:
        return {"motion": self.model.sample(1, generator=self.generator, strength=self.strength)}

    def _matrix(self, motion: Any, shape: tuple[int, ...]) -> Tensor:
        """``(3, 3)`` float64 pixel matrix (pixel centres at integers) of this draw for an image of ``shape``."""
        return self.model.warp_matrices(motion, int(shape[0]), int(shape[1]))[0]

    def apply(self, img: np.ndarray, motion: Any = None, **params: Any) -> np.ndarray:
        return to_numpy(self.module.transform(to_tensor(img)[None], motion)[0], img)

    def apply_to_mask(self, mask: np.ndarray, motion: Any = None, **params: Any) -> np.ndarray:
        arr = mask[:, :, None] if mask.ndim == 2 else mask
        x = torch.from_numpy(np.ascontiguousarray(arr).astype(np.float64)).permute(2, 0, 1)[None]
        warped = warp_homography(x, self._matrix(motion, mask.shape)[None], interpolation="nearest",
                                 padding_mode=self.model.config.get("padding_mode", "reflection"))
        out = warped[0].permute(1, 2, 0).numpy()
        out = (out > 0.5) if mask.dtype == bool else out.astype(mask.dtype)
        return np.ascontiguousarray(out[:, :, 0] if mask.ndim == 2 else out)

    def apply_to_bboxes(self, bboxes: np.ndarray, motion: Any = None, shape: Any = None, **params: Any) -> np.ndarray:
        if len(bboxes) == 0:
            return bboxes
        h, w = int(shape[0]), int(shape[1])
        m = self._matrix(motion, shape).numpy()
        out = np.array(bboxes, dtype=np.float64, copy=True)
        x1, y1, x2, y2 = (out[:, 0] * w - 0.5, out[:, 1] * h - 0.5, out[:, 2] * w - 0.5, out[:, 3] * h - 0.5)
        xs = np.stack([x1, x2, x2, x1], 1)
        ys = np.stack([y1, y1, y2, y2], 1)
        mx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
        my = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
        out[:, 0], out[:, 2] = (mx.min(1) + 0.5) / w, (mx.max(1) + 0.5) / w
        out[:, 1], out[:, 3] = (my.min(1) + 0.5) / h, (my.max(1) + 0.5) / h
        return finish_bboxes(out, bboxes.dtype, clip=self.get_processor("bboxes") is None)

    def apply_to_keypoints(self, keypoints: np.ndarray, motion: Any = None, shape: Any = None,
                           **params: Any) -> np.ndarray:
        if len(keypoints) == 0:
            return keypoints
        m = self._matrix(motion, shape).numpy()
        out = np.array(keypoints, dtype=np.float64, copy=True)
        x, y = out[:, 0].copy(), out[:, 1].copy()
        out[:, 0] = m[0, 0] * x + m[0, 1] * y + m[0, 2]
        out[:, 1] = m[1, 0] * x + m[1, 1] * y + m[1, 2]
        if out.shape[1] >= 5:  # albumentations' internal columns: x, y, z, angle, scale
            out[:, 3] = np.mod(out[:, 3] + float(motion.rotation.reshape(-1)[0]), 2 * math.pi)
            out[:, 4] = out[:, 4] * math.exp(float(motion.log_scale.reshape(-1)[0]))
        return out.astype(keypoints.dtype, copy=False)


class MIPair(TorchSeeded, DualTransform):
    """The views of an :class:`~mi_augment.transforms.MIPairTransform` as an albumentations transform, with
    masks, bboxes and keypoints cropped, resized and flipped as each view's box.

    Returns the usual keys for view 0 plus ``"views"`` (all view images) and, when geometric targets were
    given, ``"view_targets"`` (one dict per view): see the module docstring. Always applied (no ``p``); put it
    last in the ``Compose``. Targets follow each view's crop, resize and flip only, so with geometric targets the
    pair transform must not warp its views: build it without a motion model (the default; a clear error says so
    otherwise)
    and keep its perturbations and ``view_transforms`` photometric; put :class:`NaturalMotion` before ``MIPair``
    to move image and targets together.

    Args:
        transform: a ready ``MIPairTransform``; or leave it out and pass its arguments as keywords (the form
            that ``A.save`` can record: models as ``"default"`` or paths).
        seed: optional seed (an enclosing ``A.Compose`` re-seeds its transforms with its own ``seed``).
        p: must be 1 (always applied); accepted because albumentations passes it back on ``A.load``.

    Targets: image (uint8 or float32 in [0, 1], RGB or greyscale), mask, masks, bboxes, keypoints.

    Shape:
        image ``(H, W, C)`` or ``(H, W)``; each view ``(h, w, C)`` (or ``(h, w)``), ``(h, w)`` the pair's size.

    Example:
        >>> import numpy as np
        >>> out = MIPair(size=16, seed=0)(image=np.zeros((32, 32, 3), np.uint8))
        >>> [v.shape for v in out["views"]]
        [(16, 16, 3), (16, 16, 3)]
    """

    _targets = (Targets.IMAGE, Targets.MASK, Targets.BBOXES, Targets.KEYPOINTS)

    def __init__(self, transform: MIPairTransform | None = None, *, seed: int | None = None, p: float = 1.0,
                 **kwargs: Any):
        if p != 1.0:
            raise ValueError(f"MIPair is always applied (it makes the views), so p must be 1, got {p!r}")
        super().__init__(p=1.0)
        self.transform = transform_or_kwargs(transform, kwargs)
        self.transform_kwargs = None if transform is not None else dict(kwargs)
        self.set_random_seed(seed)

    def get_transform_init_args(self) -> dict[str, Any]:
        return {"transform": self.transform} if self.transform_kwargs is None else dict(self.transform_kwargs)

    def to_dict_private(self) -> dict[str, Any]:
        if self.transform_kwargs is None:
            raise TypeError("MIPair built from a ready MIPairTransform cannot be serialised; build it from the "
                            "transform's keyword arguments instead, e.g. MIPair(size=32, illumination='default')")
        state = super().to_dict_private()
        return {k: v if k == "__class_fullname__" else serialisable(v, k, "MIPair") for k, v in state.items()}

    @property
    def targets(self) -> dict[str, Any]:
        return {"image": self.apply, "mask": self.apply_to_mask, "masks": self.apply_to_masks,
                "bboxes": self.apply_to_bboxes, "keypoints": self.apply_to_keypoints}

    def should_apply(self, force_apply: bool = False) -> bool:
        return True

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        if "image" not in data:
            raise ValueError("MIPair needs an image= argument")
        image = data["image"]
        views, info = self.transform(to_tensor(image), generator=self.generator, return_info=True)
        return {"views": tuple(view_to_numpy(v, image) for v in views), "pair_params": info.params,
                "boxes": info.params.boxes[0].double().numpy(), "flip": info.params.flip[0].numpy()}

    # -- one view's geometry: the crop box (x1, y1, x2, y2) in input pixels, resized to (h, w), then flipped --
    def _view(self, params: dict[str, Any], view: int) -> tuple[np.ndarray, bool, int, int]:
        h, w = self.transform.size
        return params["boxes"][view], bool(params["flip"][view]), h, w

    def apply(self, img: np.ndarray, view: int = 0, **params: Any) -> np.ndarray:
        return params["views"][view]

    def apply_to_mask(self, mask: np.ndarray, view: int = 0, **params: Any) -> np.ndarray:
        (x1, y1, x2, y2), flip, h, w = self._view(params, view)
        j = np.arange(w) + 0.5
        if flip:
            j = j[::-1]
        xs = np.clip(np.floor(x1 + j * (x2 - x1) / w), 0, mask.shape[1] - 1).astype(np.intp)
        ys = np.clip(np.floor(y1 + (np.arange(h) + 0.5) * (y2 - y1) / h), 0, mask.shape[0] - 1).astype(np.intp)
        return np.ascontiguousarray(mask[ys[:, None], xs[None, :]])

    def apply_to_masks(self, masks: np.ndarray, view: int = 0, **params: Any) -> np.ndarray:
        return np.stack([self.apply_to_mask(m, view=view, **params) for m in masks])

    def apply_to_bboxes(self, bboxes: np.ndarray, view: int = 0, shape: Any = None, **params: Any) -> np.ndarray:
        if len(bboxes) == 0:
            return bboxes
        (x1, y1, x2, y2), flip, _, _ = self._view(params, view)
        height, width = int(shape[0]), int(shape[1])
        out = np.array(bboxes, dtype=np.float64, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] * width - x1) / (x2 - x1)
        out[:, [1, 3]] = (out[:, [1, 3]] * height - y1) / (y2 - y1)
        if flip:
            out[:, [0, 2]] = 1.0 - out[:, [2, 0]]
        return finish_bboxes(out, bboxes.dtype, clip=self.get_processor("bboxes") is None)

    def apply_to_keypoints(self, keypoints: np.ndarray, view: int = 0, **params: Any) -> np.ndarray:
        if len(keypoints) == 0:
            return keypoints
        (x1, y1, x2, y2), flip, h, w = self._view(params, view)
        sx, sy = w / (x2 - x1), h / (y2 - y1)
        out = np.array(keypoints, dtype=np.float64, copy=True)
        out[:, 0] = (out[:, 0] + 0.5 - x1) * sx - 0.5  # pixel centres at integers, as albumentations
        out[:, 1] = (out[:, 1] + 0.5 - y1) * sy - 0.5
        if flip:
            out[:, 0] = (w - 1) - out[:, 0]
        if out.shape[1] >= 5:  # albumentations' internal columns: x, y, z, angle, scale
            if flip:
                out[:, 3] = np.mod(math.pi - out[:, 3], 2 * math.pi)
            out[:, 4] = out[:, 4] * max(sx, sy)
        return out.astype(keypoints.dtype, copy=False)

    def apply_with_params(self, params: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        kinds = {key: self._additional_targets.get(key, key) for key, value in kwargs.items()
                 if value is not None and key in self._key2func}
        unsupported = [k for k in ("images", "volume", "volumes", "mask3d", "masks3d") if kwargs.get(k) is not None]
        if unsupported:
            raise ValueError(f"MIPair transforms one image= (and its mask, masks, bboxes, keypoints); got "
                             f"{', '.join(unsupported)}")
        geometric = [key for key, kind in kinds.items() if kind in _GEOMETRIC]
        if geometric and warps_views(self.transform):
            raise ValueError(f"MIPair moves {', '.join(geometric)} with each view's crop and flip, but its "
                             "MIPairTransform also warps each view by a camera motion that they cannot follow: build "
                             "it with motion=None (the default; put NaturalMotion before MIPair to move image "
                             "and targets together)")
        extra_images = [key for key, kind in kinds.items() if kind == "image" and key != "image"]
        replayed = {key: self._replay(kwargs[key], params) for key in extra_images}
        out = dict(kwargs)
        for key in kinds:
            if key in replayed:
                out[key] = replayed[key][0]
            else:
                out[key] = self._key2func[key](np.ascontiguousarray(kwargs[key]), view=0, **params)
        out["views"] = params["views"]
        if geometric:
            out["view_targets"] = [self._view_targets(kwargs, geometric, params, v) for v in range(len(params["views"]))]
        return out

    def _replay(self, image: np.ndarray, params: dict[str, Any]) -> tuple[np.ndarray, ...]:
        """Another image target rendered with the same views' params (same boxes, flips and draws)."""
        views = self.transform(to_tensor(image), params=params["pair_params"])
        return tuple(view_to_numpy(v, image) for v in views)

    def _view_targets(self, kwargs: dict[str, Any], keys: list[str], params: dict[str, Any], view: int
                      ) -> dict[str, Any]:
        data = {"image": params["views"][view]}
        for key in keys:
            data[key] = self._key2func[key](np.ascontiguousarray(kwargs[key]), view=view, **params)
        # Inside a Compose with bbox_params / keypoint_params: back to the user's format, filtered, labels apart.
        for processor in self.processors.values():
            if any(key in data for key in processor.data_fields):
                processor.postprocess(data)
        data.pop("image")
        return data
