"""How twin patches are mined: :class:`MiningOptions`, validated, and the constants the stages share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ...core.validation import check_positive_int, check_probability
from ..tracking import DepthFn

__all__ = ["CAMERA_MODELS", "FEATURES", "MIN_STEPS", "MI_ESTIMATORS", "MiningOptions"]

#: trajectory features a patch can be described by
FEATURES = ("position", "colour")
#: all-pairs MI estimators (see :func:`mi_augment.mi.pairwise_mi`)
MI_ESTIMATORS = ("kl3", "ksg")
#: global motion models removed before comparing patches
CAMERA_MODELS = ("similarity", "affine", "homography", "none")
#: fewest feature samples (frame steps) the kNN estimators are asked to work with
MIN_STEPS = 8


@dataclass(frozen=True)
class MiningOptions:
    """How twin patches are mined (the keyword arguments of :func:`mine_twin_patches`, validated)."""

    patch_size: int = 32
    stride: int | None = None
    features: tuple[str, ...] = ("position",)
    estimator: str = "kl3"
    k: int = 3
    exclude_neighbors: bool = True
    alpha: float = 0.01
    n_shuffles: int = 4
    min_motion: float = 0.3
    min_colour: float = 0.01
    camera_motion: str = "similarity"
    points_per_side: int = 3
    min_texture: float = 5e-5
    window_size: int = 15
    fb_threshold: float = 1.0
    depth: DepthFn | None = None

    def __post_init__(self):
        check_positive_int(self.patch_size, "patch_size")
        if self.stride is not None:
            check_positive_int(self.stride, "stride")
        chosen = (self.features,) if isinstance(self.features, str) else tuple(self.features)
        if not chosen or any(f not in FEATURES for f in chosen) or len(set(chosen)) != len(chosen):
            raise ValueError(f"features must be a non-empty selection of {FEATURES} without repeats, "
                             f"got {self.features!r}")
        object.__setattr__(self, "features", chosen)
        if self.estimator not in MI_ESTIMATORS:
            raise ValueError(f"estimator must be one of {MI_ESTIMATORS}, got {self.estimator!r}")
        if self.camera_motion not in CAMERA_MODELS:
            raise ValueError(f"camera_motion must be one of {CAMERA_MODELS}, got {self.camera_motion!r}")
        check_positive_int(self.k, "k")
        check_positive_int(self.n_shuffles, "n_shuffles")
        check_positive_int(self.points_per_side, "points_per_side")
        check_positive_int(self.window_size, "window_size", minimum=3)
        check_probability(self.alpha, "alpha")
        for name in ("min_motion", "min_colour", "min_texture", "fb_threshold"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.depth is not None and not callable(self.depth):
            raise TypeError(f"depth must be a callable frame -> depth map, or None, got {type(self.depth).__name__}")

    def settings(self) -> dict[str, Any]:
        """JSON-ready record of the options (the depth callable is recorded as present or not)."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "depth"}
        out["features"] = list(self.features)
        out["stride"] = self.stride or self.patch_size
        out["depth"] = self.depth is not None
        return out


