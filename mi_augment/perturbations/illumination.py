"""Illumination perturbations estimated from real footage: :class:`IlluminationModel`.

What one observation is
    Two aligned images of the same scene, a *reference* ``A`` and a *target* ``B`` (two frames of a
    static-camera clip after motion compensation, or two shots of an exposure stack). In linear RGB the model
    is, per channel ``c`` and pixel ``x``::

        log B_c(x) = log_gain_c + shading(x) + gamma * log A_c(x)

    with ``shading(x) = sum_k s_k P_k(x)`` a low-order Legendre polynomial (see
    :func:`mi_augment.functional.color.shading_basis`). The equation is linear in the unknowns
    ``(log_gain, gamma, s)``, which :func:`mi_augment.perturbations.fitting.estimate_pair` finds by
    iteratively reweighted least squares (Tukey biweight, robust scale from a low residual quantile, symmetric
    Bland-Altman form) on pixels that are neither dark nor saturated in either image, so moving foreground,
    residual misalignment and specular highlights are down-weighted as outliers. Video frames are first
    aligned by :func:`mi_augment.perturbations.fitting.align_pair` (phase correlation + two-pass ECC); hard
    cuts fail its correlation test. The estimation lives in :mod:`mi_augment.perturbations.fitting`.

What is modelled
    The unconstrained vector of a fitted model is ``[log_gain_r, log_gain_g, log_gain_b, log_gamma, s_1..s_S]``
    and a Gaussian mixture (component count by BIC) is fitted on it. ``IlluminationModel.uniform`` is the
    hand-tuned ColorJitter prior instead: a uniform box on ``[brightness, contrast, saturation, hue]``
    factors (in their natural units, so the distribution is exactly ColorJitter's).

Order of operations in :meth:`IlluminationModel.apply`
    gain / gamma / shading in linear RGB, back to sRGB, then brightness, contrast, saturation, hue (a fixed
    order; torchvision's ColorJitter permutes the four at random per call).
"""

from __future__ import annotations

import importlib.resources
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kornia
import numpy as np
import torch
from torch import Tensor

from ..core.params import Params
from ..core.validation import check_positive_int
from ..functional import color
from .base import Estimates, PerturbationModel
from .densities import Density, UniformDensity

__all__ = [
    "IlluminationParams",
    "IlluminationModel",
    "invert_vector",
    "brightness_log_gain",
    "format_summary",
    "MID_GREY_LINEAR",
]

#: linear intensity used to express gain and gamma as one "brightness-equivalent" gain (18 % grey)
MID_GREY_LINEAR = 0.18
_GROUPS = ("photometric", "jitter")
_JITTER = ("brightness", "contrast", "saturation", "hue")


# ---------------------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IlluminationParams(Params):
    """Per-sample illumination parameters (leading dimension ``B``).

    Attributes:
        log_gain: ``(B, 3)`` natural-log gains of linear R, G, B (0 = unchanged).
        log_gamma: ``(B, 1)`` log of the exponent on linear intensity (0 = unchanged).
        shading: ``(B, S)`` coefficients of the log shading field (0 = flat).
        brightness, contrast, saturation: ``(B, 1)`` ColorJitter factors applied in sRGB (1 = unchanged).
        hue: ``(B, 1)`` hue rotation in turns, in [-0.5, 0.5] (0 = unchanged).
    """

    log_gain: Tensor
    log_gamma: Tensor
    shading: Tensor
    brightness: Tensor
    contrast: Tensor
    saturation: Tensor
    hue: Tensor

    @classmethod
    def identity(cls, batch_size: int, shading_size: int = 5, device: Any = None,
                 dtype: torch.dtype = torch.float32) -> IlluminationParams:
        """Parameters that leave every image unchanged."""
        z = torch.zeros(batch_size, 1, device=device, dtype=dtype)
        o = torch.ones(batch_size, 1, device=device, dtype=dtype)
        return cls(log_gain=torch.zeros(batch_size, 3, device=device, dtype=dtype), log_gamma=z,
                   shading=torch.zeros(batch_size, shading_size, device=device, dtype=dtype),
                   brightness=o, contrast=o.clone(), saturation=o.clone(), hue=z.clone())

    def photometric_is_identity(self) -> bool:
        return not (bool(self.log_gain.any()) or bool(self.log_gamma.any()) or bool(self.shading.any()))

    def jitter_is_identity(self) -> bool:
        return all(bool((getattr(self, k) == (0.0 if k == "hue" else 1.0)).all()) for k in _JITTER)


def brightness_log_gain(log_gain: Tensor, log_gamma: Tensor) -> Tensor:
    """One number per observation: the log of the factor by which 18 % grey (linear) changes, averaged
    over channels, ``mean_c(log_gain_c) + (gamma - 1) * log(0.18)``; shading is ignored (its mean is ~0).
    One photographic stop is ``log 2 = 0.693``."""
    gamma = log_gamma.reshape(log_gain.shape[0], -1)[:, 0].exp()
    return log_gain.mean(dim=-1) + (gamma - 1.0) * math.log(MID_GREY_LINEAR)


def invert_vector(v: Tensor) -> Tensor:
    """Parameters of the inverse change (target -> reference) for photometric vectors ``(N, 4 + S)``:
    ``log A = (log B - log_gain - shading) / gamma``."""
    gamma = v[:, 3:4].exp()
    return torch.cat([-v[:, :3] / gamma, -v[:, 3:4], -v[:, 4:] / gamma], dim=1)


# ---------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------
class IlluminationModel(PerturbationModel):
    """Natural illumination changes, fitted to real footage (see the module docstring).

    Args:
        density: density over the unconstrained vector (default: Gaussian mixture, count by BIC).
        groups: which parameter groups the density covers: ``["photometric"]`` (gain, gamma, shading; what
            ``fit`` estimates) and/or ``["jitter"]`` (ColorJitter factors). Groups not covered are fixed at
            identity.
        shading_degree: total degree of the log shading polynomial (2 -> 5 coefficients).
        max_side: frames are area-downscaled to this longer side before estimation.
        max_frames: read at most this many frames of each video file (None: all).
        gaps: temporal gaps (in frames) between the two frames of a video pair.
        pairs_per_gap: at most this many pairs per gap and clip (anchors evenly spaced).
        symmetric: also add the inverse of each estimated change (time reversal), so the fitted
            distribution does not depend on which frame came first.
        dark, saturated: sRGB thresholds of usable pixels (see :func:`.fitting.estimate_pair`).
        min_correlation: alignment correlation below which a video pair is rejected (hard cut, new scene).
        min_inliers: pairs whose robust fit keeps fewer inliers than this share are rejected.
        max_residual: pairs whose robust residual scale (relative sRGB error, see :func:`.fitting.estimate_pair`)
            exceeds this are rejected: the scene itself changed (a hand in front of the lens, leaves
            moving, a person covering most of the frame) and the photometric model does not explain it.
        max_log_gain: video pairs with a brightness-equivalent change beyond this (nats) are rejected as
            implausible for a static scene (a light switched on or a failed fit), not for exposure stacks.
        draws: what one draw of the fitted density is. ``"views"`` (default): the state of one view, fitted so
            that two independent draws differ like two real frames (use it when every view is perturbed, as
            :class:`~mi_augment.transforms.MIPairTransform` does). ``"changes"``: one observed change between
            two frames, for perturbing one image against its unperturbed original. See :meth:`fit_estimates`.
    """

    kind = "illumination"
    params_cls = IlluminationParams
    format_version = 1
    config_limits = {"shading_degree": (0, 8)}  # checked on load: the degree sets the parameter count

    def __init__(self, density: Density | None = None, *, groups: Sequence[str] = ("photometric",),
                 shading_degree: int = 2, max_side: int = 128, gaps: Sequence[int] = (1, 4, 16, 64),
                 pairs_per_gap: int = 40, symmetric: bool = True, dark: float = 0.1, saturated: float = 0.92,
                 min_correlation: float = 0.6, min_inliers: float = 0.5, max_residual: float = 0.06,
                 max_log_gain: float = math.log(4.0), draws: str = "views", max_frames: int | None = None):
        groups = list(groups)
        if not groups or any(g not in _GROUPS for g in groups) or len(set(groups)) != len(groups):
            raise ValueError(f"groups must be a non-empty subset of {list(_GROUPS)}, got {groups!r}")
        color.shading_size(shading_degree)
        check_positive_int(max_side, "max_side", minimum=8)
        gaps = [check_positive_int(g, "gaps") for g in gaps]
        if not gaps:
            raise ValueError("gaps must list at least one temporal gap")
        check_positive_int(pairs_per_gap, "pairs_per_gap")
        if max_frames is not None:
            check_positive_int(max_frames, "max_frames", minimum=2)
        if draws not in ("views", "changes"):
            raise ValueError(f"draws must be 'views' or 'changes', got {draws!r}")
        if not 0.0 <= dark < saturated <= 1.0:
            raise ValueError(f"need 0 <= dark < saturated <= 1, got dark={dark}, saturated={saturated}")
        super().__init__(density, groups=[g for g in _GROUPS if g in groups], shading_degree=int(shading_degree),
                         max_side=int(max_side), gaps=gaps, pairs_per_gap=int(pairs_per_gap),
                         symmetric=bool(symmetric), dark=float(dark), saturated=float(saturated),
                         min_correlation=float(min_correlation), min_inliers=float(min_inliers),
                         max_residual=float(max_residual), max_log_gain=float(max_log_gain), draws=draws,
                         max_frames=max_frames)

    # ---- constructors ----
    @classmethod
    def uniform(cls, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4,
                hue: float = 0.1) -> IlluminationModel:
        """The ColorJitter prior as a model: factors uniform in ``[max(0, 1 - x), 1 + x]`` for brightness,
        contrast and saturation, hue shift uniform in ``[-hue, hue]``; gain, gamma and shading fixed at
        identity. Unlike ColorJitter the four adjustments are applied in a fixed order."""
        low, high = [], []
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
            low.append(max(0.0, 1.0 - value))
            high.append(1.0 + value)
        if isinstance(hue, bool) or not isinstance(hue, (int, float)) or not 0 <= hue <= 0.5:
            raise ValueError(f"hue must be a number in [0, 0.5], got {hue!r}")
        low.append(-float(hue))
        high.append(float(hue))
        return cls(UniformDensity(low, high), groups=["jitter"])

    @classmethod
    def default(cls) -> IlluminationModel:
        """The model shipped with the package, fitted on real footage by ``scripts/fit_default_illumination.py``."""
        ref = importlib.resources.files("mi_augment") / "assets" / "illumination_default.json"
        with importlib.resources.as_file(ref) as path:
            if not Path(path).is_file():
                raise FileNotFoundError(f"the default illumination model is missing from the package ({path}); "
                                        "re-create it with: python scripts/fit_default_illumination.py")
            return cls.load(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> IlluminationModel:
        model = super().load(path)
        expected = model.vector_size
        if model.density.dim != expected:
            raise ValueError(f"{path}: density has {model.density.dim} dimensions, but groups "
                             f"{model.config['groups']} need {expected}")
        return model

    # ---- vector <-> params ----
    @property
    def shading_size(self) -> int:
        return color.shading_size(self.config["shading_degree"])

    @property
    def vector_size(self) -> int:
        return len(self.param_names)

    @property
    def param_names(self) -> list[str]:
        names: list[str] = []
        if "photometric" in self.config["groups"]:
            names += ["log_gain_r", "log_gain_g", "log_gain_b", "log_gamma"]
            names += [f"shading_{k}" for k in range(1, self.shading_size + 1)]
        if "jitter" in self.config["groups"]:
            names += list(_JITTER)
        return names

    def identity_params(self, n: int, device: Any = None) -> IlluminationParams:
        """``n`` parameters that leave every image unchanged (the centre that ``sample(strength=)`` scales about)."""
        return IlluminationParams.identity(n, self.shading_size, device=device)

    def params_to_vector(self, params: IlluminationParams) -> Tensor:
        if not isinstance(params, IlluminationParams):
            raise TypeError(f"expected IlluminationParams, got {type(params).__name__}")
        parts = []
        if "photometric" in self.config["groups"]:
            if params.shading.shape[1] != self.shading_size:
                raise ValueError(f"params have {params.shading.shape[1]} shading coefficients, the model "
                                 f"{self.shading_size}")
            parts += [params.log_gain, params.log_gamma, params.shading]
        if "jitter" in self.config["groups"]:
            parts += [getattr(params, k) for k in _JITTER]
        return torch.cat([p.reshape(p.shape[0], -1).float() for p in parts], dim=1)

    def params_from_vector(self, z: Tensor) -> IlluminationParams:
        groups, s = self.config["groups"], self.shading_size
        size = (4 + s if "photometric" in groups else 0) + (4 if "jitter" in groups else 0)  # vector_size
        if z.ndim != 2 or z.shape[1] != size:
            raise ValueError(f"expected vectors of shape (N, {size}), got {tuple(z.shape)}")
        n, like = z.shape[0], dict(device=z.device, dtype=z.dtype)
        # the groups the vector covers are views of it; the others are built at identity (only those)
        if "photometric" in groups:
            log_gain, log_gamma, shading = z[:, :3], z[:, 3:4], z[:, 4:4 + s]
        else:
            log_gain, log_gamma, shading = torch.zeros(n, 3, **like), torch.zeros(n, 1, **like), torch.zeros(n, s, **like)
        if "jitter" in groups:
            f = z[:, size - 4:size]
            brightness, contrast, saturation = (f[:, i:i + 1].clamp_min(0) for i in range(3))
            hue = f[:, 3:4].clamp(-0.5, 0.5)
        else:
            brightness = torch.ones(n, 1, **like)
            contrast, saturation, hue = brightness.clone(), brightness.clone(), torch.zeros(n, 1, **like)
        return IlluminationParams(log_gain=log_gain, log_gamma=log_gamma, shading=shading, brightness=brightness,
                                  contrast=contrast, saturation=saturation, hue=hue)

    def log_prob(self, params: IlluminationParams) -> Tensor:
        """Log density of the covered groups; ``-inf`` where a group the model does not cover is not identity."""
        lp = super().log_prob(params)
        ok = torch.ones_like(lp, dtype=torch.bool)
        if "photometric" not in self.config["groups"]:
            ok &= (params.log_gain == 0).all(1) & (params.log_gamma == 0).all(1) & (params.shading == 0).all(1)
        if "jitter" not in self.config["groups"]:
            for k in _JITTER:
                ok &= (getattr(params, k) == (0.0 if k == "hue" else 1.0)).all(1)
        return torch.where(ok, lp, torch.full_like(lp, -math.inf))

    def params_from_rows(self, rows: Any, shape: tuple[int, ...] | None = None) -> IlluminationParams:
        """:meth:`params_from_vector` of a few vectors given as Python numbers or a float32 array ``(N, D)``, with
        leading dims ``shape`` (default ``(N,)``): a photometric model's fields share one array that holds the
        vectors and the jitter's identity (the same values); other groups take :meth:`params_from_vector`.

        Example:
            >>> IlluminationModel.default().params_from_rows([[0.0] * 9], (1, 1)).brightness.tolist()
            [[[1.0]]]
        """
        full = self._photometric_fields(rows)
        if full is None:
            return super().params_from_rows(rows, shape)
        if shape is not None:
            full = full.reshape(*shape, full.shape[-1])
        # each field one torch.from_numpy of a column block (lighter than a view and a split)
        return IlluminationParams(*(torch.from_numpy(full[..., a:b]) for _, a, b in self._field_columns()))

    def fields_from_rows(self, rows: np.ndarray) -> dict[str, list]:
        """:meth:`params_from_rows`' values as Python numbers: for a photometric model one ``tolist`` of its
        array, no tensor; other groups through the params."""
        full = self._photometric_fields(rows)
        if full is None:
            return super().fields_from_rows(rows)
        values = full.tolist()
        return {name: [r[a:b] for r in values] for name, a, b in self._field_columns()}

    def _photometric_fields(self, rows: Any) -> np.ndarray | None:
        """A photometric-only model's rows ``(N, 4 + S)`` with the jitter's identity appended, float32
        ``(N, 8 + S)`` (the columns of :meth:`_field_columns`); None for other groups (or ragged rows)."""
        try:
            z = np.asarray(rows, dtype=np.float32)
        except ValueError:  # ragged rows: params_from_vector names what is wrong
            return None
        s = self.shading_size
        if self.config["groups"] != ["photometric"] or z.ndim != 2 or z.shape[1] != 4 + s:
            return None
        full = np.empty((z.shape[0], 8 + s), np.float32)
        full[:, :4 + s] = z
        full[:, 4 + s:] = (1.0, 1.0, 1.0, 0.0)  # the jitter's identity
        return full

    def _field_columns(self) -> tuple[tuple[str, int, int], ...]:
        """Each :class:`IlluminationParams` field's columns in :meth:`_photometric_fields`' array."""
        j = 4 + self.shading_size
        return (("log_gain", 0, 3), ("log_gamma", 3, 4), ("shading", 4, j), ("brightness", j, j + 1),
                ("contrast", j + 1, j + 2), ("saturation", j + 2, j + 3), ("hue", j + 3, j + 4))

    # ---- applying ----
    def apply(self, images: Tensor, params: IlluminationParams) -> Tensor:
        """Apply ``params`` to a float batch ``[B, C, H, W]`` in [0, 1] (C = 1 or 3); returns a new tensor."""
        if not isinstance(params, IlluminationParams):
            raise TypeError(f"expected IlluminationParams, got {type(params).__name__}")
        if not isinstance(images, Tensor) or images.ndim != 4:
            raise ValueError(f"images must be a [B, C, H, W] tensor, got {getattr(images, 'shape', type(images))}")
        params.check_batch(images.shape[0])
        params = params.to(images.device)
        out = images
        if not params.photometric_is_identity():
            out = color.apply_illumination(out, params.log_gain, params.log_gamma, params.shading)
        if not params.jitter_is_identity():
            out = color.adjust_brightness(out, params.brightness)
            out = color.adjust_contrast(out, params.contrast)
            out = color.adjust_saturation(out, params.saturation)
            if bool(params.hue.any()):
                out = color.adjust_hue(out, params.hue)
        return out.clone() if out is images else out

    # ---- estimation (the work lives in perturbations/fitting/, which may decode video) ----
    def fit(self, data: Any, progress: bool = False, kind: str = "auto") -> IlluminationModel:
        """Estimate per-pair illumination changes from ``data`` and fit the density to them.

        Args:
            data: a video path, a list of paths, a ``(T, C, H, W)`` clip (uint8 or float), a list of clips,
                an :class:`~mi_augment.perturbations.fitting.ExposureStack`, or a list mixing these. Tensors
                are taken as video clips unless wrapped in ``ExposureStack`` or ``kind="stack"`` is given.
            progress: show progress bars.
            kind: ``"auto"``, ``"video"`` or ``"stack"``.

        Returns:
            ``self``. Raises ``ValueError`` when fewer than
            :func:`~mi_augment.perturbations.fitting.minimum_observations` pairs (10 with the default
            shading) are usable, saying how many were used and rejected and why.
        """
        from .fitting.illumination import fit_illumination

        return fit_illumination(self, data, progress=progress, kind=kind)

    def fit_estimates(self, estimates: Estimates) -> IlluminationModel:
        """Fit the density to observed changes between two frames (the output of :meth:`estimate`).

        With ``draws="views"`` each draw is one view: the changes, made time-symmetric (each with its inverse,
        whatever ``symmetric`` is: two independent views have no order), are scaled by ``1 / sqrt(2)`` about
        the identity, so the difference of two independent draws has the second moments of the observed
        changes (two views differ like two frames). With ``draws="changes"`` the density is fitted to the
        changes as estimated. Returns ``self``.
        """
        from .fitting.provenance import check_observations, library_version, minimum_observations

        vectors, details = estimates.vectors, estimates.details
        symmetric = details.get("symmetric", False)
        pairs = details.get("n_pairs_used", estimates.n_used // 2 if symmetric else estimates.n_used)
        check_observations(type(self).__name__, pairs, minimum_observations(self.vector_size), estimates.n_rejected,
                           details.get("rejected_reasons", {}))
        if self.config["draws"] == "views":
            if not symmetric:
                vectors = torch.cat([vectors, invert_vector(vectors)])
            # log-domain changes compose by addition to first order, so two iid draws differ by ~z2 - z1, of
            # twice a draw's covariance; the symmetric changes have mean ~0, so 1/sqrt(2) about 0 undoes it
            vectors = vectors / math.sqrt(2.0)
        self.density.fit(vectors)
        self.fit_info = {"n_used": estimates.n_used, "n_rejected": estimates.n_rejected,
                         "library_version": library_version(),
                         **{k: v for k, v in details.items() if k != "observations"}}
        self.estimates_ = estimates  # per-row provenance stays in self.estimates_.details["observations"]
        return self

    def estimate(self, data: Any, progress: bool = False) -> Estimates:
        """Per-pair photometric changes (unconstrained vectors ``(N, 4 + S)``) from video or exposure stacks;
        see :func:`~mi_augment.perturbations.fitting.estimate_illumination`."""
        from .fitting.illumination import estimate_illumination

        return estimate_illumination(self, data, progress=progress)

    # ---- summaries ----
    def probe_values(self, n: int = 4000, seed: int = 0) -> dict[str, Tensor]:
        """``n`` draws of each quantity that :meth:`summary` reports, as ``(n,)`` tensors (for histograms)."""
        gen = torch.Generator().manual_seed(seed)
        p = self.sample(n, generator=gen)
        # One probe image whose 2 x 2 cells interleave grey 0.3, grey 0.7, grey 0.5 and a muted colour, so
        # every probe covers the whole frame evenly (shading averages out alike) and the image mean that
        # contrast pivots on is about mid grey.
        cell = torch.tensor([[[0.3, 0.7], [0.5, 0.6]], [[0.3, 0.7], [0.5, 0.45]], [[0.3, 0.7], [0.5, 0.35]]])
        probe = cell.repeat(1, 8, 8)  # (3, 16, 16)
        out = self.apply(probe.expand(n, -1, -1, -1).contiguous(), p)
        cells = out.unflatten(2, (8, 2)).unflatten(4, (8, 2)).mean(dim=(2, 4))  # (n, 3, 2, 2)
        dark_, light, grey, col = cells[..., 0, 0], cells[..., 0, 1], cells[..., 1, 0], cells[..., 1, 1]
        grey_linear = color.srgb_to_linear(torch.tensor(0.5))
        values = {
            "brightness": grey.mean(1) / 0.5,
            "linear_gain": color.srgb_to_linear(grey).mean(1) / grey_linear,
            "contrast": (light - dark_).mean(1) / 0.4,
            "red_green": grey[:, 0] / grey[:, 1].clamp_min(1e-6),
            "blue_green": grey[:, 2] / grey[:, 1].clamp_min(1e-6),
        }
        col_in = cell[:, 1, 1]
        chroma = col.max(1).values - col.min(1).values
        values["saturation"] = chroma / (col_in.max() - col_in.min())
        hue_in = kornia.color.rgb_to_hsv(col_in.view(1, 3, 1, 1))[:, 0] / (2 * math.pi)  # turns
        hue_out = kornia.color.rgb_to_hsv(col.view(n, 3, 1, 1))[:, 0] / (2 * math.pi)
        values["hue_deg"] = (torch.remainder(hue_out.flatten() - hue_in.flatten() + 0.5, 1.0) - 0.5) * 360.0
        if p.shading.shape[1]:
            field = color.render_shading_field(p.shading, 33, 33).flatten(1)
            values["shading"] = field.max(1).values / field.min(1).values
        else:
            values["shading"] = torch.ones(n)
        values["gamma"] = p.log_gamma[:, 0].exp()
        return values

    def summary(self, n: int = 4000, seed: int = 0, quantiles: Sequence[float] = (0.05, 0.5, 0.95)) -> dict[str, Any]:
        """Ranges of the model's effect measured on probe colours, comparable across model kinds.

        ``n`` parameter draws are applied to a probe image that interleaves sRGB greys 0.3, 0.5, 0.7 and a
        muted colour (0.6, 0.45, 0.35); for each quantity the given quantiles are returned
        (``{"quantity": {"q05": .., "q50": .., "q95": ..}}``):

        * ``brightness``: output / input sRGB value of mid grey (0.5), averaged over the image and channels.
        * ``linear_gain``: the same in linear light (the exposure change; about ``brightness ** 2.2``).
        * ``contrast``: output difference between greys 0.7 and 0.3 over the input difference (0.4).
        * ``red_green``, ``blue_green``: R/G and B/G ratios of the output on mid grey (white balance).
        * ``saturation``: chroma (max - min channel) of the colour after / before.
        * ``hue_deg``: hue rotation of that colour in degrees.
        * ``shading``: brightest over darkest point of the field (corner to corner fall-off), >= 1.
        * ``gamma``: exponent on linear intensity.
        """
        values = self.probe_values(n, seed)
        qs = torch.tensor(list(quantiles), dtype=torch.float64)
        result: dict[str, Any] = {}
        for key, v in values.items():
            q = torch.quantile(v.double(), qs)
            result[key] = {f"q{round(100 * float(a)):02d}": float(b) for a, b in zip(qs, q)}
        return result


def format_summary(model: IlluminationModel, reference: IlluminationModel | None = None, n: int = 4000,
                   seed: int = 0) -> str:
    """A Markdown table of :meth:`IlluminationModel.summary` (5-95 % ranges and medians), next to
    ``reference`` (default: ``IlluminationModel.uniform(0.4, 0.4, 0.4, 0.1)``, i.e. ColorJitter)."""
    reference = reference if reference is not None else IlluminationModel.uniform(0.4, 0.4, 0.4, 0.1)
    a, b = model.summary(n, seed), reference.summary(n, seed)
    lines = ["| quantity | fitted: median [5 %, 95 %] | ColorJitter(0.4, 0.4, 0.4, 0.1): median [5 %, 95 %] |",
             "|---|---|---|"]
    for key in a:
        fa = f"{a[key]['q50']:.3f} [{a[key]['q05']:.3f}, {a[key]['q95']:.3f}]"
        fb = f"{b[key]['q50']:.3f} [{b[key]['q05']:.3f}, {b[key]['q95']:.3f}]"
        lines.append(f"| {key} | {fa} | {fb} |")
    return "\n".join(lines)
