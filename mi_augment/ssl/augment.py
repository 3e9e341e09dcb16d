"""The ``--augment`` arms under their former module name: the view pairs live in :mod:`mi_augment.ssl.views`,
the twin-patch stream in :mod:`mi_augment.ssl.twins` and the scoring feature maps in
:mod:`mi_augment.ssl.features`; this module re-exports them so existing imports keep working."""

from __future__ import annotations

from .features import EvalMode, FeatureMaps
from .twins import (
    SHIPPED_CLIPS,
    TWIN_CACHE_VERSION,
    TWIN_MINING,
    TwinBranch,
    TwinPairs,
    default_twin_cache,
    describe_twins,
    matched_random_control,
    twin_videos,
)
from .views import (
    ENCODER_SCORERS,
    MI_SCORERS,
    AugmentOptions,
    BaselineViews,
    MIViews,
    NaturalViews,
    ViewPairs,
    color_jitter,
    gaussian_blur,
    make_views,
    solarize,
    to_float,
)

__all__ = ["ENCODER_SCORERS", "MI_SCORERS", "SHIPPED_CLIPS", "TWIN_CACHE_VERSION", "TWIN_MINING", "AugmentOptions",
           "BaselineViews", "EvalMode", "FeatureMaps", "MIViews", "NaturalViews", "TwinBranch", "TwinPairs",
           "ViewPairs", "color_jitter", "default_twin_cache", "describe_twins", "gaussian_blur", "make_views",
           "matched_random_control", "solarize", "to_float", "twin_videos"]
