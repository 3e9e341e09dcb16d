"""A figure of what a fit produced: the fitted model's ranges next to the hand-tuned prior's."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["effect_values", "plot_fit"]


def effect_values(model: Any, n: int = 4000, seed: int = 0) -> dict[str, Tensor]:
    """``n`` draws of each quantity a model changes, in units people read, as ``(n,)`` tensors.

    Illumination models give their probe measurements
    (:meth:`~mi_augment.perturbations.IlluminationModel.probe_values`: brightness, contrast, white balance,
    saturation, hue in degrees, shading, gamma). Motion models give translation, rotation, zoom and blur in
    pixels / degrees / percent at the model's ``reference_size``.

    Args:
        model: a fitted :class:`~mi_augment.perturbations.IlluminationModel` or
            :class:`~mi_augment.perturbations.MotionModel`.
        n: draws.
        seed: seed of the draws.

    Example:
        >>> from mi_augment.perturbations import MotionModel
        >>> values = effect_values(MotionModel.uniform(), n=100)
        >>> sorted(values)[:2], tuple(values["rotation_deg"].shape)
        (['blur_length_px', 'rotation_deg'], (100,))
    """
    if hasattr(model, "probe_values"):
        return model.probe_values(n, seed)
    params = model.sample(n, generator=torch.Generator().manual_seed(seed))
    side = float(model.config["reference_size"])
    return {
        "translation_x_px": params.translation[:, 0] * side,
        "translation_y_px": params.translation[:, 1] * side,
        "rotation_deg": torch.rad2deg(params.rotation[:, 0]),
        "scale_percent": 100 * torch.expm1(params.log_scale[:, 0]),
        "blur_length_px": params.blur_length[:, 0] * side,
    }


def plot_fit(model: Any, path: str | os.PathLike, reference: Any = None, n: int = 4000, seed: int = 0) -> Path:
    """Histograms of each quantity under the fitted model and under the hand-tuned prior, saved as a PNG.

    Args:
        model: a fitted illumination or motion model.
        path: the PNG to write (atomically).
        reference: the model drawn for comparison (default: ``type(model).uniform()``, i.e. ColorJitter's or
            RandomAffine-like ranges).
        n: draws per model.
        seed: seed of the draws.

    Returns:
        The path written.
    """
    from ...figures import pyplot, save_figure

    reference = reference if reference is not None else type(model).uniform()
    fitted, prior = effect_values(model, n, seed), effect_values(reference, n, seed)
    keys = [k for k in fitted if k in prior]
    cols = 3
    rows = math.ceil(len(keys) / cols)
    plt = pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        a, b = fitted[key].double(), prior[key].double()
        both = torch.cat([a, b])
        lo, hi = (float(v) for v in torch.quantile(both, torch.tensor([0.005, 0.995], dtype=torch.float64)))
        if hi <= lo:  # a quantity one model leaves fixed: widen so both bars show
            lo, hi = lo - 0.5, hi + 0.5
        bins = torch.linspace(lo, hi, 41).tolist()
        ax.hist(b.clamp(lo, hi).tolist(), bins=bins, alpha=0.5, color="tab:grey", label="hand-tuned prior")
        ax.hist(a.clamp(lo, hi).tolist(), bins=bins, alpha=0.6, color="tab:blue", label="fitted")
        ax.set_title(key, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.subplots_adjust(hspace=0.45)
    used = model.fit_info.get("n_used", "?")
    fig.suptitle(f"{type(model).__name__} fitted on {used} observations (blue) vs the hand-tuned prior (grey)",
                 fontsize=10)
    return save_figure(fig, path)
