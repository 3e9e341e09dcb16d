"""Checking :class:`~mi_augment.transforms.MIPairTransform`'s arguments: sizes, models, view pipelines,
output normalisation, and the keyword arguments that moved to the scorer."""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable
from typing import Any

from torch import Tensor

from ..core.validation import check_positive_int, to_float_batch
from ..perturbations.base import check_strength

__all__ = ["IMAGENET_NORMALIZE", "MOVED_TO_SCORER", "VIEW_RECIPES", "check_size", "float_batch", "is_model",
           "normalize_stats", "perturbation_chain", "refuse_moved", "resolve_model", "view_pipelines"]

#: ``normalize=True``: ImageNet's per-channel statistics (lightly's and torchvision's default)
IMAGENET_NORMALIZE = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}

#: MIPairTransform keywords that now belong to the scorer (each scorer owns its settings)
MOVED_TO_SCORER = ("estimator", "bins", "proxy_size")

#: ``view_transforms`` by name: the recipes' per-view pipelines (:mod:`mi_augment.transforms.presets`)
VIEW_RECIPES = ("simclr", "byol")


def check_size(size: Any) -> tuple[int, int]:
    """``(height, width)`` from an int or a pair of positive ints; ``ValueError`` naming ``size`` otherwise.

    Example:
        >>> check_size(32), check_size((24, 32))
        ((32, 32), (24, 32))
    """
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        return check_positive_int(size, "size"), check_positive_int(size, "size")
    try:
        h, w = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be an int or an (height, width) pair, got {size!r}") from None
    return check_positive_int(h, "size[0]"), check_positive_int(w, "size[1]")


def is_model(value: Any) -> bool:
    """Whether ``value`` has the perturbation-model interface a pair uses (``sample`` and ``apply``)."""
    return callable(getattr(value, "sample", None)) and callable(getattr(value, "apply", None))


def resolve_model(value: Any, name: str) -> Any:
    """``"default"`` or a file path -> the shipped / saved model; None or False -> off (None); a model -> itself.

    Example:
        >>> resolve_model(None, "motion") is None, type(resolve_model("default", "motion")).__name__
        (True, 'MotionModel')
    """
    if value is None or value is False:
        return None
    if value is True:
        raise ValueError(f"{name}=True is ambiguous: pass 'default' for the shipped model, None to leave it out, "
                         "or a model instance")
    if isinstance(value, (str, os.PathLike)):
        if name == "illumination":
            from ..perturbations.illumination import IlluminationModel

            return IlluminationModel.from_spec(value, name)
        from ..perturbations.motion import MotionModel

        return MotionModel.from_spec(value, name)
    if not is_model(value):
        raise TypeError(f"{name} must be 'default' (the shipped model), a model file's path, None (off) or a "
                        f"perturbation model with sample() and apply(), got {type(value).__name__}")
    return value


def view_pipelines(value: Any, n_views: int, size: tuple[int, int]) -> tuple[tuple[Callable, ...], ...]:
    """``view_transforms``: a recipe's name, None, one list for every view, or one list per view."""
    if value is None:
        return tuple(() for _ in range(n_views))
    if isinstance(value, str):
        from .presets import byol_views, simclr_views

        if value not in VIEW_RECIPES:
            raise ValueError(f"view_transforms={value!r}: expected one of {list(VIEW_RECIPES)}, None, or a list of "
                             "transforms")
        if value == "byol":
            if n_views != 2:
                raise ValueError(f"view_transforms='byol' is an asymmetric recipe for 2 views, got n_views={n_views}")
            return tuple(tuple(p) for p in byol_views(size))
        return tuple(tuple(simclr_views(size)) for _ in range(n_views))
    if not isinstance(value, (list, tuple)):
        raise TypeError("view_transforms must be a list of transforms (applied to every view) or a list of "
                        f"{n_views} such lists (one per view), got {type(value).__name__}")
    per_view = len(value) > 0 and all(isinstance(v, (list, tuple)) for v in value)
    pipelines = [list(v) for v in value] if per_view else [list(value)] * n_views
    if len(pipelines) != n_views:
        raise ValueError(f"view_transforms has {len(pipelines)} per-view lists, this transform makes {n_views} views")
    for v, pipeline in enumerate(pipelines):
        for i, t in enumerate(pipeline):
            if not callable(t):
                raise TypeError(f"view_transforms[{v}][{i}] must be callable, got {type(t).__name__}")
    return tuple(tuple(p) for p in pipelines)


def normalize_stats(value: Any) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``normalize``: None / False (off), True (ImageNet's statistics) or ``{"mean": ..., "std": ...}``
    (one number per channel, or one for all), as ``(mean, std)``.

    Example:
        >>> normalize_stats({"mean": 0.5, "std": 0.25})
        ((0.5,), (0.25,))
    """
    if value is None or value is False:
        return None
    if value is True:
        value = IMAGENET_NORMALIZE
    if not isinstance(value, dict) or set(value) != {"mean", "std"}:
        raise TypeError(f"normalize must be None, True (ImageNet's statistics) or a dict with 'mean' and 'std', "
                        f"got {value!r}")
    stats = []
    for key in ("mean", "std"):
        v = value[key]
        items = (v,) if isinstance(v, numbers.Real) else tuple(v)
        if not items or len(items) > 3 or any(isinstance(x, bool) or not isinstance(x, numbers.Real) for x in items):
            raise ValueError(f"normalize[{key!r}] must be a number or 1 to 3 numbers (one per channel), got {v!r}")
        stats.append(tuple(float(x) for x in items))
    if any(not s > 0 for s in stats[1]):
        raise ValueError(f"normalize['std'] must be positive, got {value['std']!r}")
    return stats[0], stats[1]


def refuse_moved(moved: dict[str, Any]) -> None:
    """A ``TypeError`` for keywords MIPairTransform does not take, saying where the scorer's ones moved."""
    if not moved:
        return
    scorer_keys = sorted(k for k in moved if k in MOVED_TO_SCORER)
    if scorer_keys:
        args = ", ".join(f"{k}={moved[k]!r}" for k in scorer_keys)
        raise TypeError(f"MIPairTransform no longer takes {', '.join(scorer_keys)}: the scorer owns them; pass "
                        f"scorer=make_scorer('pixel', {args}) (mi_augment.pairs) or set them on your scorer")
    raise TypeError(f"MIPairTransform got unexpected keyword argument(s) {sorted(moved)}")


def float_batch(images: Any) -> Tensor:
    """The steps' input: a ``[B, C, H, W]`` tensor, checked and converted as ``forward`` does."""
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a [B, C, H, W] tensor, got {getattr(images, 'shape', type(images))}")
    return to_float_batch(images, "images", (1, 3))[0]


def perturbation_chain(illumination: Any, motion: Any, illumination_strength: float, motion_strength: float,
                       perturbations: Any) -> tuple[tuple[str, ...], tuple[Any, ...], tuple[float, ...]]:
    """The chain's names, models and strengths: illumination, motion (each resolved by :func:`resolve_model`,
    left out when off), then ``perturbations`` (strength 1)."""
    if isinstance(perturbations, (str, bytes)) or not isinstance(perturbations, (list, tuple)):
        raise TypeError(f"perturbations must be a list of perturbation models, got {type(perturbations).__name__}")
    chain = []
    for name, value, strength in (("illumination", illumination, illumination_strength),
                                  ("motion", motion, motion_strength)):
        model, strength = resolve_model(value, name), check_strength(strength, f"{name}_strength")
        if model is None and strength != 1.0:
            raise ValueError(f"{name}_strength={strength} scales the {name} model, which is off; pass "
                             f"{name}='default' (the shipped model) or a model instance")
        if model is not None:
            chain.append((name, model, strength))
    for i, model in enumerate(perturbations):
        if not is_model(model):
            raise TypeError(f"perturbations[{i}] must be a perturbation model with sample() and apply(), got "
                            f"{type(model).__name__}")
        chain.append((f"{type(model).__name__}_{i}", model, 1.0))
    return tuple(c[0] for c in chain), tuple(c[1] for c in chain), tuple(c[2] for c in chain)
