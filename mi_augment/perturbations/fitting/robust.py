"""Robust photometric regression of one aligned image pair (Tukey-weighted IRLS), for illumination fitting."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ...functional import color

__all__ = ["PairEstimate", "estimate_pair", "tukey_weights"]


@dataclass
class PairEstimate:
    """Result of :func:`estimate_pair` for one (reference, target) pair.

    Args:
        log_gain: ``(3,)`` natural-log gains of linear R, G, B.
        log_gamma: log of the exponent on linear intensity.
        shading: ``(S,)`` coefficients of the log shading field.
        n_pixels: valid (unsaturated, not dark, inside the overlap) pixel-channels used.
        inlier_fraction: share of the valid pixel-channels with non-zero Tukey weight.
        residual_scale: robust scale of the residuals as a relative sRGB error (0.02 = 2 %).
    """

    log_gain: Tensor
    log_gamma: float
    shading: Tensor
    n_pixels: int
    inlier_fraction: float
    residual_scale: float

    def vector(self) -> Tensor:
        """The unconstrained vector ``[log_gain_r, log_gain_g, log_gain_b, log_gamma, s_1..s_S]``, ``(4 + S,)``."""
        return torch.cat([self.log_gain, torch.tensor([self.log_gamma], dtype=self.log_gain.dtype), self.shading])


def tukey_weights(resid: Tensor, tuning: float = 4.685, quantile: float = 0.3) -> tuple[Tensor, float]:
    """Tukey biweight weights of residuals, and the robust scale they were computed with.

    The scale comes from a low quantile of the absolute residuals (``quantile`` 0.3, i.e. 0.385 standard
    deviations of a normal) rather than the median: a moving person can cover half of a frame, and a median
    scale would then be inflated by the foreground and accept it as inliers. The scale is floored at 0.004
    (half an 8-bit step at mid grey).

    Args:
        resid: residuals of any shape.
        tuning: residuals beyond ``tuning`` robust standard deviations get weight 0.
        quantile: which quantile of ``|resid|`` sets the scale.

    Shape:
        - resid: :math:`(*)`; weights: same shape, in [0, 1].

    Example:
        >>> weights, scale = tukey_weights(torch.tensor([0.0, 0.01, 0.02, 1.0]))
        >>> weights[-1].item(), round(scale, 3)
        (0.0, 0.023)
    """
    z = torch.special.ndtri(torch.tensor(0.5 + quantile / 2, dtype=torch.float64)).item()
    # Compressed video often copies static blocks exactly between frames; the floor keeps their zero
    # residuals from shrinking the scale and rejecting ordinary noise.
    scale = max(float(torch.quantile(resid.abs(), quantile)) / z, 0.004)
    return (1 - (resid / (tuning * scale)).square()).clamp_min(0).square(), scale


def _irls(design: Tensor, y: Tensor, level: Tensor, theta: Tensor, penalty: Tensor,
          iterations: int) -> tuple[Tensor, Tensor, float] | None:
    """Tukey-reweighted least squares from ``theta``; returns ``(theta, robust weights, scale)`` or None
    when almost every pixel became an outlier."""
    precision = level.square()
    robust, scale = tukey_weights((y - design @ theta.float()) * level)
    for _ in range(iterations):
        weights = robust * precision
        xw = design * weights[:, None]
        gram = (xw.T @ design).double() + torch.diag(penalty * float(weights.sum()))
        new_theta = torch.linalg.solve(gram, (xw.T @ y).double())
        robust, scale = tukey_weights((y - design @ new_theta.float()) * level)
        if float(robust.sum()) < 50:
            return None
        converged = float((new_theta - theta).abs().max()) < 1e-6
        theta = new_theta
        if converged:
            break
    return theta, robust, scale


def estimate_pair(reference: Tensor, target: Tensor, degree: int = 2, valid: Tensor | None = None,
                  dark: float = 0.1, saturated: float = 0.92, iterations: int = 10,
                  ridge: float = 1e-3) -> PairEstimate | None:
    """Robustly fit ``log B = log_gain_c + shading(x) + gamma * log A`` (linear RGB) for one aligned pair.

    Pixels are weighted by their squared sRGB level: sRGB noise is roughly constant, so a log-linear ratio
    at sRGB value ``v`` has noise proportional to ``1 / v``. ``residual_scale`` is measured in the same
    units, as a relative sRGB error (0.02: the model explains the inliers to about 2 %).

    Args:
        reference: float sRGB image in [0, 1] (``C`` = 1 or 3; a 1-channel pair gives three equal gains).
        target: float sRGB image in [0, 1] aligned with ``reference``.
        degree: total degree of the shading polynomial (``S = shading_size(degree)`` coefficients).
        valid: optional mask of usable pixels (e.g. the overlap after alignment).
        dark: sRGB threshold; darker pixel-channels (in either image) are dominated by noise and left out.
        saturated: sRGB threshold; brighter pixel-channels carry no ratio information and are left out.
        iterations: at most this many IRLS iterations (Tukey biweight, ``c = 4.685`` robust standard
            deviations; the robust scale comes from the 30 % quantile of absolute residuals, so up to about
            half of the pixels may belong to moving objects). The first weights come from the per-channel
            median log ratio, so a large moving object cannot bend the first solve.
        ridge: weak pull of ``gamma - 1`` and the shading coefficients towards 0, relative to the weighted
            pixel count (keeps the solve well posed on flat or nearly constant images).

    Returns:
        A :class:`PairEstimate`, or None when fewer than 200 pixel-channels are usable or the fit degenerates.

    Shape:
        - reference, target: :math:`(C, H, W)`; valid: :math:`(H, W)`.

    Example:
        >>> a = 0.2 + 0.6 * torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> est = estimate_pair(a, a)
        >>> est.vector().shape, round(est.log_gamma, 3)
        (torch.Size([9]), 0.0)
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
    # Bland-Altman form: regressing the log ratio on the mean log intensity leaves the slope unbiased by noise
    # in A and B, and swapping A and B gives exactly the inverse change. With kappa = 2 (gamma - 1) / (1 + gamma):
    # log B - log A = 2 / (1 + gamma) * (log_gain + shading) + kappa * (log A + log B) / 2.
    y = log_b - log_a
    mid = 0.5 * (log_a + log_b)
    level = 0.5 * (a[use] + b[use])  # residuals in sRGB-relative units, weights by value squared
    basis = color.shading_basis(h, w, degree)  # (S, H, W)
    chan, rows, cols = use.nonzero(as_tuple=True)
    design = torch.cat([F.one_hot(chan, c).float(), mid[:, None], basis[:, rows, cols].T], 1)
    d = design.shape[1]
    penalty = torch.zeros(d, dtype=torch.float64)
    penalty[c:] = ridge
    # Robust start (per-channel median log ratio, no gamma change, flat field) keeps a large moving object
    # from bending the shading field before it is down-weighted.
    theta = torch.zeros(d, dtype=torch.float64)
    for k in range(c):
        theta[k] = float(y[chan == k].median()) if bool((chan == k).any()) else 0.0
    solved = _irls(design, y, level, theta, penalty, iterations)
    if solved is None:
        return None
    theta, robust, scale = solved
    kappa = float(theta[c])
    if not -1.9 < kappa < 1.9:
        return None
    gamma = (1 + kappa / 2) / (1 - kappa / 2)
    half = (1 + gamma) / 2
    gains = theta[:c] * half if c == 3 else (theta[:1] * half).expand(3)
    return PairEstimate(log_gain=gains.float().clone(), log_gamma=math.log(gamma),
                        shading=(theta[c + 1:] * half).float().clone(), n_pixels=n,
                        inlier_fraction=float((robust > 0).double().mean()), residual_scale=scale)
