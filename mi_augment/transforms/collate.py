"""Wrappers around :class:`~mi_augment.transforms.MIPairTransform` for data-loading pipelines:
:class:`MIPairCollate` (the views of a whole batch in each DataLoader worker)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..core.validation import image_to_uint8
from .pair import MIPairTransform

__all__ = ["MIPairCollate", "transform_or_kwargs"]


def transform_or_kwargs(transform: MIPairTransform | None, kwargs: dict[str, Any]) -> MIPairTransform:
    """The wrappers' ``transform`` argument: a ready :class:`MIPairTransform`, or None and its keyword arguments."""
    if transform is None:
        transform = MIPairTransform(**kwargs)
    elif kwargs:
        raise ValueError("pass either a ready MIPairTransform or its keyword arguments, not both")
    if not isinstance(transform, MIPairTransform):
        raise TypeError(f"transform must be an MIPairTransform, got {type(transform).__name__}")
    return transform


class MIPairCollate:
    """A DataLoader ``collate_fn`` that makes the views of a whole batch in the worker, with the batched path.

    Calling :class:`MIPairTransform` per image in DataLoader workers pays its per-call overhead on every
    image (a few hundred small tensor operations); collating first and transforming the batch in the worker
    keeps the workers' parallelism and gets the batched speed (see docs/mi_pairs.md#throughput)::

        loader = DataLoader(dataset, batch_size=256, num_workers=8, collate_fn=MIPairCollate(MIPairTransform(32)))
        for (view_a, view_b), labels in loader: ...

    Samples are images (PIL, ``HxWxC`` uint8 numpy arrays, or ``[C, H, W]`` uint8 / float tensors), tuples
    whose first element is the image (the rest is collated by ``default_collate``), or dicts holding the
    image under ``image_key`` (Hugging Face datasets style, ``{"image": ..., "label": ...}``), returned as a
    dict with the views under ``image_key`` and the other keys collated. Every image of a batch must have the
    same size and channel count (a fixed-size dataset such as CIFAR or STL, or a ``Resize`` / ``CenterCrop``
    before); otherwise use the transform per image. Views come out as float ``[B, C, h, w]`` in [0, 1]
    (``to_float=False`` keeps uint8 input as uint8 views). Randomness comes from torch's global RNG, which
    DataLoader seeds per worker.

    Args:
        transform: the :class:`MIPairTransform` (or its keyword arguments).
        to_float: convert uint8 batches to float in [0, 1] before transforming.
        image_key: the key of the image in dict samples.

    Shape:
        images ``(C, H, W)`` each (or PIL / numpy); views ``(B, C, h, w)`` each, ``(h, w)`` the transform's size.

    Example:
        >>> import torch
        >>> collate = MIPairCollate(MIPairTransform(8))
        >>> batch = collate([{"image": torch.rand(3, 16, 16), "label": i} for i in range(4)])
        >>> [tuple(v.shape) for v in batch["image"]], batch["label"].tolist()
        ([(4, 3, 8, 8), (4, 3, 8, 8)], [0, 1, 2, 3])
    """

    def __init__(self, transform: MIPairTransform | None = None, *, to_float: bool = True,
                 image_key: str = "image", **kwargs: Any):
        self.transform = transform_or_kwargs(transform, kwargs)
        self.to_float = bool(to_float)
        if not isinstance(image_key, str) or not image_key:
            raise TypeError(f"image_key must be a non-empty string (the image's key in dict samples), "
                            f"got {image_key!r}")
        self.image_key = image_key

    @staticmethod
    def _as_tensor(image: Any, i: int) -> Tensor:
        """One sample's image as a ``[C, H, W]`` tensor (PIL and numpy as uint8, without a float copy)."""
        if isinstance(image, Tensor):
            if image.ndim != 3:
                raise ValueError(f"batch[{i}] must be one image [C, H, W], got shape {tuple(image.shape)}")
            return image
        converted = image_to_uint8(image, f"batch[{i}]")
        if converted is None:
            raise TypeError(f"batch[{i}] must be a PIL image, a numpy HxWxC uint8 array or a [C, H, W] "
                            f"tensor, got {type(image).__name__}")
        return converted[0]

    def __call__(self, batch: list[Any]) -> Any:
        from torch.utils.data import default_collate

        if not isinstance(batch, (list, tuple)) or len(batch) == 0:
            raise ValueError("MIPairCollate needs a non-empty list of samples")
        if isinstance(batch[0], Mapping):
            return self._collate_dicts(batch)
        paired = isinstance(batch[0], (tuple, list))
        images = [s[0] if paired else s for s in batch]
        views = self._views(images)
        if not paired:
            return views
        rest = default_collate([tuple(s[1:]) for s in batch])
        return (views, *rest)

    def _collate_dicts(self, batch: list[Any]) -> dict[str, Any]:
        from torch.utils.data import default_collate

        key = self.image_key
        for i, sample in enumerate(batch):
            if not isinstance(sample, Mapping):
                raise TypeError(f"batch[{i}] is a {type(sample).__name__} but batch[0] is a dict; samples must be "
                                "all dicts or all not")
            if key not in sample:
                raise KeyError(f"batch[{i}] has no {key!r} key (keys: {sorted(map(str, sample))}); pass "
                               f"MIPairCollate(image_key=...) naming the image's key")
        out = {key: self._views([s[key] for s in batch])}
        rest = [{k: v for k, v in s.items() if k != key} for s in batch]
        if rest[0]:
            out.update(default_collate(rest))
        return out

    def _views(self, images: list[Any]) -> Any:
        tensors = [self._as_tensor(img, i) for i, img in enumerate(images)]
        first = tensors[0]
        for i, t in enumerate(tensors):
            if t.shape != first.shape or t.dtype != first.dtype:
                raise ValueError(f"MIPairCollate needs images of one size and type; batch[0] is {tuple(first.shape)} "
                                 f"{first.dtype}, batch[{i}] is {tuple(t.shape)} {t.dtype}. Resize / crop them to "
                                 f"one size first, or call the transform per image")
        x = torch.stack(tensors)
        if self.to_float and x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        return self.transform(x)

    def __repr__(self) -> str:
        return f"MIPairCollate({self.transform!r}, to_float={self.to_float}, image_key={self.image_key!r})"
