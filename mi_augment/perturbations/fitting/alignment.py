"""Alignment of two frames of one scene (phase correlation + two-pass ECC), for illumination fitting.

OpenCV is imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ...functional import color

__all__ = ["align_pair"]


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
    """Motion-compensate a pair of images of one scene onto a common grid.

    Phase correlation gives a starting translation, then OpenCV's ECC refines a Euclidean warp (rotation +
    translation). ECC maximises a correlation that ignores brightness and contrast changes, so it aligns
    frames whose exposure differs; it runs twice, the second time with pixels that disagreed after the first
    pass (moving objects) masked out. Both images are then resampled halfway (the reference by the inverse
    half warp, the target by the half warp), so both get the same interpolation blur; warping only the
    target would blur it alone and bias the estimated gamma below 1. When ECC does not converge, phase
    correlation's translation is used.

    Args:
        reference: float sRGB image in [0, 1].
        target: float sRGB image in [0, 1], same shape as ``reference``.
        min_correlation: the pair is refused when the luma correlation after alignment is below this (a hard
            cut or a different scene; measured 0.1-0.4 on the cuts of bikes.mp4, 0.65-1.0 on static-camera
            pairs).
        max_shift: the pair is refused when the shift exceeds this fraction of the longer side (not a static
            camera).

    Returns:
        ``(reference_aligned, target_aligned, valid, info)`` with ``info`` holding the correlation, inlier
        share, shift in pixels and rotation in degrees; or None when the alignment fails.

    Shape:
        - reference, target: :math:`(C, H, W)`, ``C`` = 1 or 3.
        - reference_aligned, target_aligned: :math:`(C, H, W)`; valid: :math:`(H, W)` bool.

    Example:
        >>> image = torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(0))
        >>> ref, tgt, valid, info = align_pair(image, image)
        >>> tuple(valid.shape), round(info["correlation"], 2)
        ((48, 64), 1.0)
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
