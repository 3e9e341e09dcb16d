"""Illumination perturbations estimated from real footage: :class:`IlluminationModel`.

What one observation is
    Two aligned images of the same scene, a *reference* ``A`` and a *target* ``B`` (two frames of a
    static-camera clip after motion compensation, or two shots of an exposure stack). In linear RGB the model
    is, per channel ``c`` and pixel ``x``::

        log B_c(x) = log_gain_c + shading(x) + gamma * log A_c(x)

    with ``shading(x) = sum_k s_k P_k(x)`` a low-order Legendre polynomial (see
    :func:`mi_augment.functional.color.shading_basis`). The equation is linear in the unknowns
    ``(log_gain, gamma, s)``, which :func:`estimate_pair` finds by iteratively reweighted least squares
    (Tukey biweight, robust scale from a low residual quantile, symmetric Bland-Altman form) on pixels that
    are neither dark nor saturated in either image, so moving foreground, residual misalignment and
    specular highlights are down-weighted as outliers. Video frames are first aligned by
    :func:`align_pair` (phase correlation + two-pass ECC); hard cuts fail its correlation test.

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

import dataclasses
import importlib.resources
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kornia
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.params import Params
from ..core.validation import check_finite, check_positive_int
from ..functional import color
from .base import Estimates, PerturbationModel
from .densities import Density, UniformDensity

__all__ = [
    "IlluminationParams",
    "IlluminationModel",
    "ExposureStack",
    "PairEstimate",
    "align_pair",
    "estimate_pair",
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


# ---------------------------------------------------------------------------------------------------------
# One observation: alignment and robust photometric regression
# ---------------------------------------------------------------------------------------------------------
@dataclass
class ExposureStack:
    """Aligned images of one scene at different exposures, ordered (e.g. brightest first).

    Wrap a ``(N, C, H, W)`` tensor (uint8 or float in [0, 1]) or a list of ``(C, H, W)`` images so that
    :meth:`IlluminationModel.fit` treats it as a stack (pairs of consecutive shots, no motion compensation
    unless ``align=True``) instead of as a video clip. ``fit(data, kind="stack")`` does the wrapping.
    """

    images: Any
    align: bool = False


@dataclass
class PairEstimate:
    """Result of :func:`estimate_pair` for one (reference, target) pair."""

    log_gain: Tensor  # (3,)
    log_gamma: float
    shading: Tensor  # (S,)
    n_pixels: int  # valid (unsaturated, not dark, inside the overlap) pixel-channels used
    inlier_fraction: float  # share of the valid pixel-channels with non-zero Tukey weight
    residual_scale: float  # robust scale of the residuals as a relative sRGB error (0.02 = 2 %)

    def vector(self) -> Tensor:
        return torch.cat([self.log_gain, torch.tensor([self.log_gamma], dtype=self.log_gain.dtype), self.shading])


def _structure(image: Tensor) -> np.ndarray:
    """What alignment looks at: the Laplacian of Gaussian (sigma 1 px) of log luma, float32 ``[H, W]``.

    The log turns gain into an offset and the Laplacian removes offsets and (nearly) the smooth shading
    field, so illumination changes, which ECC's global brightness/contrast normalisation would not fully
    absorb, do not pull the geometric fit. The filter is local, so crops of one scene stay comparable up to
    their borders (a wide band-pass would not).
    """
    import cv2

    smooth = cv2.GaussianBlur(np.log(_luma(image) + 0.02), (0, 0), 1.0)
    return cv2.Laplacian(smooth, cv2.CV_32F, ksize=3, borderType=cv2.BORDER_REPLICATE)


def _luma(image: Tensor) -> np.ndarray:
    return color.rgb_to_grayscale(image[None])[0, 0].clamp(0, 1).cpu().numpy().astype(np.float32)


def _correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of two images over ``mask`` (1.0 for identical content up to gain and offset)."""
    x, y = a[mask].astype(np.float64), b[mask].astype(np.float64)
    if x.size < 16:
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / max(math.sqrt(float((x * x).sum() * (y * y).sum())), 1e-12))


def _half_warp(warp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a Euclidean warp ``W = [R | t]`` return ``H`` with ``H(H(x)) = W(x)`` and its inverse."""
    theta = math.atan2(float(warp[1, 0]), float(warp[0, 0])) / 2
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    shift = np.linalg.solve(rot + np.eye(2), warp[:, 2].astype(np.float64))
    half = np.concatenate([rot, shift[:, None]], 1)
    inverse = np.concatenate([rot.T, -(rot.T @ shift)[:, None]], 1)
    return half.astype(np.float32), inverse.astype(np.float32)


def _ecc_inliers(ref: np.ndarray, tgt: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """uint8 mask, in the target's frame, of pixels whose normalised intensities agree after ``warp``."""
    import cv2

    h, w = ref.shape
    flags = cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(tgt, warp, (w, h), flags=flags)
    inside = cv2.warpAffine(np.ones_like(tgt), warp, (w, h), flags=flags) > 0.999
    if inside.sum() < 100:
        return np.ones((h, w), np.uint8)

    def normalise(x: np.ndarray) -> np.ndarray:
        return (x - x[inside].mean()) / max(float(x[inside].std()), 1e-6)

    diff = np.abs(normalise(ref) - normalise(warped))
    scale = 1.4826 * float(np.median(diff[inside]))
    outliers = cv2.dilate(((diff > 3 * scale) | ~inside).astype(np.uint8), np.ones((3, 3), np.uint8))
    return (cv2.warpAffine(outliers, warp, (w, h), flags=cv2.INTER_NEAREST) == 0).astype(np.uint8)


def align_pair(reference: Tensor, target: Tensor, min_correlation: float = 0.6,
               max_shift: float = 0.1) -> tuple[Tensor, Tensor, Tensor, dict[str, float]] | None:
    """Motion-compensate a pair of float ``[C, H, W]`` images in [0, 1] onto a common grid.

    Phase correlation gives a starting translation, then OpenCV's ECC refines a Euclidean warp (rotation +
    translation). ECC maximises a correlation that ignores brightness and contrast changes, so it aligns
    frames whose exposure differs; it runs twice, the second time with pixels that disagreed after the first
    pass (moving objects) masked out. Both images are then resampled halfway (the reference by the inverse
    half warp, the target by the half warp), so both get the same interpolation blur; warping only the
    target would blur it alone and bias the estimated gamma below 1.

    Returns ``(reference_aligned, target_aligned, valid [H, W] bool, info)``, or None when the alignment
    fails: the luma correlation after alignment is below ``min_correlation`` (a hard cut or a different
    scene; measured 0.1-0.4 on the cuts of bikes.mp4, 0.65-1.0 on static-camera pairs) or the shift exceeds
    ``max_shift`` times the image size (not a static camera). When ECC does not converge, phase
    correlation's translation is used.
    """
    import cv2

    h, w = reference.shape[-2:]
    ref, tgt = _structure(reference), _structure(target)
    (dx, dy), _ = cv2.phaseCorrelate(ref, tgt)
    start = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
    try:
        warp = cv2.findTransformECC(ref, tgt, start.copy(), cv2.MOTION_EUCLIDEAN, criteria, None, 3)[1]
    except cv2.error:  # no convergence (e.g. a noise-dominated static scene): keep phase correlation's shift
        warp = start
    # ECC is a least-squares fit: a moving object covering a tenth of the frame can tilt it by a degree.
    # Second pass: mask pixels that disagree after the first alignment and fit again from the start.
    inliers = _ecc_inliers(ref, tgt, warp)
    if inliers.mean() > 0.3:
        try:
            warp = cv2.findTransformECC(ref, tgt, start.copy(), cv2.MOTION_EUCLIDEAN, criteria, inliers, 3)[1]
        except cv2.error:
            pass  # keep the first-pass warp
    shift = float(np.hypot(warp[0, 2], warp[1, 2]))
    # Same scene? Plain luma correlation after alignment (hard cuts and new scenes score ~0.3 or less).
    flags = cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP
    luma_t = cv2.warpAffine(_luma(target), warp, (w, h), flags=flags)
    overlap = cv2.warpAffine(np.ones((h, w), np.float32), warp, (w, h), flags=flags) > 0.999
    corr = _correlation(_luma(reference), luma_t, overlap)
    info = {"correlation": corr, "inlier_share": float(inliers.mean()), "shift_px": shift,
            "rotation_deg": math.degrees(math.atan2(warp[1, 0], warp[0, 0]))}
    if not np.isfinite(corr) or corr < min_correlation or shift > max_shift * max(h, w):
        return None
    half, half_inverse = _half_warp(warp)

    def resample(image: Tensor, m: np.ndarray) -> tuple[Tensor, np.ndarray]:
        hwc = image.permute(1, 2, 0).contiguous().cpu().numpy().astype(np.float32)
        out = cv2.warpAffine(hwc, m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        inside = cv2.warpAffine(np.ones((h, w), np.float32), m, (w, h), flags=flags,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return torch.from_numpy(out.reshape(h, w, -1)).permute(2, 0, 1).to(image.dtype), inside > 0.999

    ref_out, ref_inside = resample(reference, half_inverse)
    tgt_out, tgt_inside = resample(target, half)
    valid = cv2.erode((ref_inside & tgt_inside).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return ref_out, tgt_out, torch.from_numpy(valid), info


def _tukey(resid: Tensor, tuning: float = 4.685, quantile: float = 0.3) -> tuple[Tensor, float]:
    """Tukey biweight weights of residuals.

    The scale comes from a low quantile of the absolute residuals (``quantile`` 0.3, i.e. 0.385 standard
    deviations of a normal) rather than the median: a moving person can cover half of a frame, and a median
    scale would then be inflated by the foreground and accept it as inliers.
    """
    z = torch.special.ndtri(torch.tensor(0.5 + quantile / 2, dtype=torch.float64)).item()
    # Floor: half an 8-bit step at mid grey. Compressed video often copies static blocks exactly between
    # frames; without a floor their zero residuals would shrink the scale and reject ordinary noise.
    scale = max(float(torch.quantile(resid.abs(), quantile)) / z, 0.004)
    return (1 - (resid / (tuning * scale)).square()).clamp_min(0).square(), scale


def estimate_pair(reference: Tensor, target: Tensor, degree: int = 2, valid: Tensor | None = None,
                  dark: float = 0.1, saturated: float = 0.92, iterations: int = 10,
                  ridge: float = 1e-3) -> PairEstimate | None:
    """Robustly fit ``log B = log_gain_c + shading(x) + gamma * log A`` (linear RGB) for one aligned pair.

    Args:
        reference, target: float ``[C, H, W]`` sRGB images in [0, 1], already aligned (``C`` = 1 or 3; a
            1-channel pair gives three equal gains).
        degree: total degree of the shading polynomial (``S = shading_size(degree)`` coefficients).
        valid: optional ``[H, W]`` bool mask of usable pixels (e.g. the overlap after alignment).
        dark, saturated: sRGB thresholds; a pixel-channel is used only when it lies strictly between them
            in both images (dark pixels are dominated by noise and quantisation in the log domain,
            saturated ones carry no ratio information).
        iterations: at most this many IRLS iterations (Tukey biweight, ``c = 4.685`` robust standard
            deviations; the robust scale comes from the 30 % quantile of absolute residuals, so up to about
            half of the pixels may belong to moving objects). The first weights come from the per-channel
            median log ratio, so a large moving object cannot bend the first solve.
        ridge: weak pull of ``gamma - 1`` and the shading coefficients towards 0, relative to the weighted
            pixel count (keeps the solve well posed on flat or nearly constant images).

    Pixels are weighted by their squared sRGB level: sRGB noise is roughly constant, so a log-linear ratio
    at sRGB value ``v`` has noise proportional to ``1 / v``. ``residual_scale`` is measured in the same
    units, as a relative sRGB error (0.02: the model explains the inliers to about 2 %).

    Returns None when fewer than 200 pixel-channels are usable or the fit degenerates.
    """
    if reference.shape != target.shape or reference.ndim != 3 or reference.shape[0] not in (1, 3):
        raise ValueError(f"reference and target must both be [C, H, W] with C in (1, 3), got "
                         f"{tuple(reference.shape)} and {tuple(target.shape)}")
    c, h, w = reference.shape
    a, b = reference.float(), target.float()
    use = (a > dark) & (a < saturated) & (b > dark) & (b < saturated)
    if valid is not None:
        use &= valid.to(use.device).bool()[None]
    n = int(use.sum())
    if n < 200:
        return None
    log_a = color.srgb_to_linear(a)[use].log()
    log_b = color.srgb_to_linear(b)[use].log()
    # Regress the log ratio on the mean log intensity (the Bland-Altman form) rather than on log A: noise in
    # A and B then leaves the slope unbiased, and swapping A and B gives exactly the inverse change.
    # With kappa = 2 (gamma - 1) / (1 + gamma):  log B - log A = 2 / (1 + gamma) * (log_gain + shading)
    #                                                             + kappa * (log A + log B) / 2.
    y = log_b - log_a
    mid = 0.5 * (log_a + log_b)
    # Noise model: sRGB values carry roughly constant noise (quantisation, compression), so a log-linear
    # ratio is noisier by 1 / value. Residuals are compared in sRGB-relative units (times the mean sRGB value)
    # and pixels weighted by value squared (inverse variance).
    level = 0.5 * (a[use] + b[use])
    precision = level.square()
    basis = color.shading_basis(h, w, degree)  # (S, H, W)
    chan, rows, cols = use.nonzero(as_tuple=True)
    design = torch.cat([F.one_hot(chan, c).float(), mid[:, None], basis[:, rows, cols].T], 1)
    d = design.shape[1]
    penalty = torch.zeros(d, dtype=torch.float64)
    penalty[c:] = ridge
    # Robust start: per-channel median log ratio, no gamma change, flat field. Weighting the first solve by
    # these residuals keeps a large moving object from bending the shading field before it is down-weighted.
    theta = torch.zeros(d, dtype=torch.float64)
    for k in range(c):
        theta[k] = float(y[chan == k].median()) if bool((chan == k).any()) else 0.0
    robust, scale = _tukey((y - design @ theta.float()) * level)
    for _ in range(iterations):
        weights = robust * precision
        xw = design * weights[:, None]
        gram = (xw.T @ design).double() + torch.diag(penalty * float(weights.sum()))
        new_theta = torch.linalg.solve(gram, (xw.T @ y).double())
        robust, scale = _tukey((y - design @ new_theta.float()) * level)
        if float(robust.sum()) < 50:
            return None
        converged = float((new_theta - theta).abs().max()) < 1e-6
        theta = new_theta
        if converged:
            break
    kappa = float(theta[c])
    if not -1.9 < kappa < 1.9:
        return None
    gamma = (1 + kappa / 2) / (1 - kappa / 2)
    half = (1 + gamma) / 2
    gains = theta[:c] * half if c == 3 else (theta[:1] * half).expand(3)
    return PairEstimate(log_gain=gains.float().clone(), log_gamma=math.log(gamma),
                        shading=(theta[c + 1:] * half).float().clone(), n_pixels=n,
                        inlier_fraction=float((robust > 0).double().mean()), residual_scale=scale)


def invert_vector(v: Tensor) -> Tensor:
    """Parameters of the inverse change (target -> reference) for photometric vectors ``(N, 4 + S)``:
    ``log A = (log B - log_gain - shading) / gamma``."""
    gamma = v[:, 3:4].exp()
    return torch.cat([-v[:, :3] / gamma, -v[:, 3:4], -v[:, 4:] / gamma], dim=1)


# ---------------------------------------------------------------------------------------------------------
# Data handling
# ---------------------------------------------------------------------------------------------------------
class _OneThread:
    """Run torch on one thread inside the block: estimation is many small tensor ops, for which extra
    threads only add contention (several times slower on a busy 2-core machine). Restores the setting."""

    def __enter__(self) -> None:
        self._saved = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self._saved)


def _downscale(x: Tensor, max_side: int | None) -> Tensor:
    """Area-downscale a float ``(T, C, H, W)`` batch so its longer side is at most ``max_side``."""
    h, w = x.shape[-2:]
    if max_side is None or max(h, w) <= max_side:
        return x
    s = max_side / max(h, w)
    return F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))), mode="area")


def _as_float_frames(x: Any, name: str) -> Tensor:
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError(f"{name} is empty")
        x = torch.stack([torch.as_tensor(t) for t in x])
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor) or x.ndim != 4:
        raise ValueError(f"{name} must be a (T, C, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have 1 or 3 channels (T, C, H, W), got {x.shape[1]} "
                         f"(shape {tuple(x.shape)})")
    if x.shape[0] == 0 or x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise TypeError(f"{name} must be uint8 or float in [0, 1], got {x.dtype}")
    check_finite(x, name)
    return x.float()


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
        gaps: temporal gaps (in frames) between the two frames of a video pair.
        pairs_per_gap: at most this many pairs per gap and clip (anchors evenly spaced).
        symmetric: also add the inverse of each estimated change (time reversal), so the fitted
            distribution does not depend on which frame came first.
        dark, saturated: sRGB thresholds of usable pixels (see :func:`estimate_pair`).
        min_correlation: alignment correlation below which a video pair is rejected (hard cut, new scene).
        min_inliers: pairs whose robust fit keeps fewer inliers than this share are rejected.
        max_residual: pairs whose robust residual scale (relative sRGB error, see :func:`estimate_pair`)
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
                 max_log_gain: float = math.log(4.0), draws: str = "views"):
        groups = list(groups)
        if not groups or any(g not in _GROUPS for g in groups) or len(set(groups)) != len(groups):
            raise ValueError(f"groups must be a non-empty subset of {list(_GROUPS)}, got {groups!r}")
        color.shading_size(shading_degree)
        check_positive_int(max_side, "max_side", minimum=8)
        gaps = [check_positive_int(g, "gaps") for g in gaps]
        if not gaps:
            raise ValueError("gaps must list at least one temporal gap")
        check_positive_int(pairs_per_gap, "pairs_per_gap")
        if draws not in ("views", "changes"):
            raise ValueError(f"draws must be 'views' or 'changes', got {draws!r}")
        if not 0.0 <= dark < saturated <= 1.0:
            raise ValueError(f"need 0 <= dark < saturated <= 1, got dark={dark}, saturated={saturated}")
        super().__init__(density, groups=[g for g in _GROUPS if g in groups], shading_degree=int(shading_degree),
                         max_side=int(max_side), gaps=gaps, pairs_per_gap=int(pairs_per_gap),
                         symmetric=bool(symmetric), dark=float(dark), saturated=float(saturated),
                         min_correlation=float(min_correlation), min_inliers=float(min_inliers),
                         max_residual=float(max_residual), max_log_gain=float(max_log_gain), draws=draws)

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
        if z.ndim != 2 or z.shape[1] != self.vector_size:
            raise ValueError(f"expected vectors of shape (N, {self.vector_size}), got {tuple(z.shape)}")
        identity = IlluminationParams.identity(z.shape[0], self.shading_size, z.device, z.dtype)
        # (not dataclasses.asdict: it deep-copies every tensor)
        out = {f.name: getattr(identity, f.name) for f in dataclasses.fields(identity)}
        col = 0
        if "photometric" in self.config["groups"]:
            s = self.shading_size
            out["log_gain"], out["log_gamma"], out["shading"] = z[:, :3], z[:, 3:4], z[:, 4:4 + s]
            col = 4 + s
        if "jitter" in self.config["groups"]:
            f = z[:, col:col + 4]
            out["brightness"], out["contrast"], out["saturation"] = (f[:, i:i + 1].clamp_min(0) for i in range(3))
            out["hue"] = f[:, 3:4].clamp(-0.5, 0.5)
        return IlluminationParams(**out)

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

    def _fused_kind(self, params: Params) -> str | None:
        """Opt into MIPairTransform's fused renderer while ``apply`` is this class's and ``params`` hold no
        ColorJitter factors (those need whole-view statistics)."""
        if type(self).apply is IlluminationModel.apply and isinstance(params, IlluminationParams):
            return "illumination" if params.jitter_is_identity() else None
        return None

    # ---- estimation ----
    def fit(self, data: Any, progress: bool = False, kind: str = "auto") -> IlluminationModel:
        """Estimate per-pair illumination changes from ``data`` and fit the density to them.

        ``data`` may be a video path, a list of paths, a ``(T, C, H, W)`` clip (uint8 or float), a list of
        clips, an :class:`ExposureStack`, or a list mixing these. Tensors are taken as video clips unless
        wrapped in :class:`ExposureStack` or ``kind="stack"`` is given. Returns ``self``.
        """
        if kind not in ("auto", "video", "stack"):
            raise ValueError(f"kind must be 'auto', 'video' or 'stack', got {kind!r}")
        if "photometric" not in self.config["groups"] or "jitter" in self.config["groups"]:
            raise ValueError("fit estimates gain, gamma and shading only; use groups=['photometric'] "
                             f"(this model has groups={self.config['groups']})")
        if kind == "stack" and not isinstance(data, ExposureStack):
            data = ExposureStack(data)
        return self.fit_estimates(self.estimate(data, progress=progress))

    def fit_estimates(self, estimates: Estimates) -> IlluminationModel:
        """Fit the density to observed changes between two frames (the output of :meth:`estimate`).

        With ``draws="views"`` each draw is one view: the changes, made time-symmetric (each with its inverse,
        whatever ``symmetric`` is: two independent views have no order), are scaled by ``1 / sqrt(2)`` about
        the identity, so the difference of two independent draws has the second moments of the observed
        changes (two views differ like two frames). With ``draws="changes"`` the density is fitted to the
        changes as estimated. Returns ``self``.
        """
        vectors = estimates.vectors
        self._require_observations(estimates)
        if self.config["draws"] == "views":
            if not estimates.details.get("symmetric", False):
                vectors = torch.cat([vectors, invert_vector(vectors)])
            # log-domain changes compose by addition to first order, so two iid draws differ by ~z2 - z1, of
            # twice a draw's covariance; the symmetric changes have mean ~0, so 1/sqrt(2) about 0 undoes it
            vectors = vectors / math.sqrt(2.0)
        self.density.fit(vectors)
        self.fit_info = {"n_used": estimates.n_used, "n_rejected": estimates.n_rejected,
                         **{k: v for k, v in estimates.details.items() if k != "observations"}}
        self.estimates_ = estimates  # per-row provenance stays in self.estimates_.details["observations"]
        return self

    def _sources(self, data: Any) -> list[tuple[str, Any]]:
        """Flatten ``data`` into ``(name, clip-or-stack)`` items without decoding anything yet."""
        if isinstance(data, ExposureStack):
            return [("stack", data)]
        if isinstance(data, (str, os.PathLike)):
            return [(Path(data).name, Path(data))]
        if isinstance(data, (Tensor, np.ndarray)):
            return [("clip", data)]
        if isinstance(data, (list, tuple)):
            if not data:
                raise ValueError("no data given: the list of clips is empty")
            out = []
            for i, item in enumerate(data):
                for name, src in self._sources(item):
                    out.append((f"{name}[{i}]" if name in ("clip", "stack") else name, src))
            return out
        raise TypeError(f"cannot fit an IlluminationModel on {type(data).__name__}; give a video path, a (T, C, H, W) "
                        "tensor, a list of them, or an ExposureStack")

    def _load_frames(self, name: str, src: Any) -> Tensor:
        if isinstance(src, Path):
            from ..video.io import read_video

            if src.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
                raise ValueError(f"{src} is a still image; for an exposure stack pass ExposureStack(images) "
                                 "(e.g. mi_augment.datasets.samples.load_exposure_stack())")
            src = read_video(src, max_side=self.config["max_side"])
        frames = _as_float_frames(src.images if isinstance(src, ExposureStack) else src, name)
        return _downscale(frames, self.config["max_side"])

    def _pairs(self, n_frames: int, stack: bool) -> list[tuple[int, int]]:
        if stack:
            return [(i, i + 1) for i in range(n_frames - 1)]
        pairs = []
        for gap in self.config["gaps"]:
            if gap >= n_frames:
                continue
            count = min(self.config["pairs_per_gap"], n_frames - gap)
            anchors = np.unique(np.round(np.linspace(0, n_frames - 1 - gap, count)).astype(int))
            pairs += [(int(t), int(t) + gap) for t in anchors]
        return pairs

    def estimate(self, data: Any, progress: bool = False) -> Estimates:
        """Per-pair photometric changes (unconstrained vectors ``(N, 4 + S)``) from video or exposure stacks.

        Video: pairs ``(t, t + gap)`` for each configured gap, motion-compensated with :func:`align_pair`
        (pairs that fail, including hard cuts, are rejected). Stacks: consecutive shots, not aligned unless
        ``ExposureStack(align=True)``. Each pair is fitted with :func:`estimate_pair`.
        ``details["observations"]`` lists ``(source, i, j)`` for every row (inverse rows have ``j < i``).
        """
        with _OneThread():
            return self._estimate(data, progress)

    def _estimate(self, data: Any, progress: bool) -> Estimates:
        cfg = self.config
        sources = self._sources(data)
        rows: list[Tensor] = []
        where: list[tuple[str, int, int]] = []
        rejected: Counter[str] = Counter()
        per_source: dict[str, dict[str, int]] = {}
        bar = None
        for name, src in sources:
            stack = isinstance(src, ExposureStack)
            frames = self._load_frames(name, src)
            if frames.shape[0] < 2:
                raise ValueError(f"{name}: needs at least 2 frames to estimate illumination changes, got "
                                 f"{frames.shape[0]} (a one-frame video or a stack of one image)")
            pairs = self._pairs(frames.shape[0], stack)
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(pairs), desc=f"illumination {name}", leave=False)
            used_before = len(rows)
            for i, j in pairs:
                ref, tgt = frames[i], frames[j]
                valid = None
                if not stack or src.align:
                    aligned = align_pair(ref, tgt, min_correlation=cfg["min_correlation"])
                    if aligned is None:
                        rejected["alignment failed or hard cut"] += 1
                        bar is not None and bar.update()
                        continue
                    ref, tgt, valid, _ = aligned
                est = estimate_pair(ref, tgt, cfg["shading_degree"], valid, cfg["dark"], cfg["saturated"])
                reason = None
                if est is None:
                    reason = "too few usable pixels"
                elif est.inlier_fraction < cfg["min_inliers"]:
                    reason = "poor fit (too few inliers)"
                elif est.residual_scale > cfg["max_residual"]:
                    reason = "poor fit (scene changed)"
                elif not stack and abs(float(brightness_log_gain(est.log_gain[None], torch.tensor([[est.log_gamma]])))) \
                        > cfg["max_log_gain"]:
                    reason = "implausible change for a static scene"
                elif not (0.25 < math.exp(est.log_gamma) < 4.0):
                    reason = "implausible gamma"
                if reason is not None:
                    rejected[reason] += 1
                else:
                    rows.append(est.vector())
                    where.append((name, i, j))
                if bar is not None:
                    bar.update()
            if bar is not None:
                bar.close()
            per_source[name] = {"pairs": len(pairs), "used": len(rows) - used_before}
        n_used = len(rows)
        vectors = torch.stack(rows) if rows else torch.zeros(0, 4 + self.shading_size)
        if cfg["symmetric"] and n_used:
            vectors = torch.cat([vectors, invert_vector(vectors)])
            where = where + [(s, j, i) for s, i, j in where]
        details = {"rejected_reasons": dict(rejected), "sources": per_source, "symmetric": cfg["symmetric"],
                   "observations": where}
        return Estimates(vectors=vectors, n_used=vectors.shape[0], n_rejected=sum(rejected.values()),
                         details=details)

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
