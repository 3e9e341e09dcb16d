"""Patch trajectories: the grid of patches, their tracked motion with the camera's removed, and their colour
change (steps 1-4 of the mining pipeline in :mod:`mi_augment.video.twins.mine`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ...core.validation import check_positive_int
from ..tracking import PatchTracks, sample_map, track_patches
from .options import MiningOptions

__all__ = ["PatchTrajectories", "neighbor_mask", "patch_grid", "patch_trajectories"]

def patch_grid(height: int, width: int, patch_size: int, stride: int | None = None) -> Tensor:
    """``(P, 4)`` float boxes ``(x1, y1, x2, y2)`` of a regular grid of ``patch_size`` squares, ``stride``
    apart (default: ``patch_size``, no overlap), centred in a ``height x width`` frame.

    Example:
        >>> patch_grid(40, 40, 16).tolist()
        [[4.0, 4.0, 20.0, 20.0], [20.0, 4.0, 36.0, 20.0], [4.0, 20.0, 20.0, 36.0], [20.0, 20.0, 36.0, 36.0]]
    """
    patch_size = check_positive_int(patch_size, "patch_size")
    stride = patch_size if stride is None else check_positive_int(stride, "stride")
    if patch_size > min(height, width):
        raise ValueError(f"patch_size={patch_size} is larger than the frame ({height}x{width} pixels); "
                         "choose a patch_size no larger than the shorter side")
    nx = (width - patch_size) // stride + 1
    ny = (height - patch_size) // stride + 1
    x0 = (width - (patch_size + (nx - 1) * stride)) // 2
    y0 = (height - (patch_size + (ny - 1) * stride)) // 2
    ys, xs = torch.meshgrid(torch.arange(ny) * stride + y0, torch.arange(nx) * stride + x0, indexing="ij")
    x1, y1 = xs.flatten().float(), ys.flatten().float()
    return torch.stack([x1, y1, x1 + patch_size, y1 + patch_size], dim=1)


def neighbor_mask(boxes: Tensor) -> Tensor:
    """``(P, P)`` bool: boxes that overlap or touch (edge or corner), the patch itself excluded.

    Example:
        >>> neighbor_mask(torch.tensor([[0.0, 0, 8, 8], [8, 0, 16, 8], [32, 32, 40, 40]])).int().tolist()
        [[0, 1, 0], [1, 0, 0], [0, 0, 0]]
    """
    lo, hi = boxes[:, :2], boxes[:, 2:]
    touch = (lo[:, None] <= hi[None] + 0.5) & (lo[None] <= hi[:, None] + 0.5)
    mask = touch.all(-1)
    mask.fill_diagonal_(False)
    return mask


def _fit_motion(model: str, src: np.ndarray, dst: np.ndarray, threshold: float) -> np.ndarray | None:
    """One 3x3 global motion matrix (``src`` -> ``dst`` points) by RANSAC, or None if it cannot be fitted."""
    import cv2

    if len(src) < (4 if model == "homography" else 3):
        return None
    if model == "homography":
        m, _ = cv2.findHomography(src, dst, cv2.RANSAC, threshold)
        return m
    fit = cv2.estimateAffinePartial2D if model == "similarity" else cv2.estimateAffine2D
    m, _ = fit(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold, refineIters=10)
    return None if m is None else np.vstack([m, [0.0, 0.0, 1.0]])


def _project(matrices: Tensor, points: Tensor) -> Tensor:
    """Apply ``(S, 3, 3)`` matrices to ``(S, M, 2)`` points."""
    m = matrices.to(points.dtype)
    moved = points @ m[:, :2, :2].transpose(1, 2) + m[:, None, :2, 2]
    scale = points @ m[:, 2, :2, None] + m[:, None, 2, 2:]
    return moved / scale


def _camera_motion(frames: Tensor, tracks: PatchTracks, model: str, still: float) -> tuple[Tensor, Tensor]:
    """``(T-1, 3, 3)`` global motion (point of frame t -> frame t+1) and ``(T-1,)`` validity.

    Two passes. First, :func:`~mi_augment.video.motion_estimation.estimate_global_motion` (RANSAC on corners of
    each frame pair). RANSAC alone is biased by movers whose step happens to be small on a given frame (they
    count as inliers there) and by movers grouped on one side of the frame (they tilt rotation and scale).
    Movers are, however, movers over the whole shot: the second pass keeps only the patches whose residual
    motion over the shot is small (RMS at most ``max(still, median over patches)``, so at least the stiller
    half) and refits every frame pair on their tracked points alone.
    """
    steps = frames.shape[0] - 1
    if model == "none":
        return torch.eye(3, dtype=torch.float64).repeat(steps, 1, 1), torch.ones(steps, dtype=torch.bool)
    from ..motion_estimation import estimate_global_motion

    first = estimate_global_motion(frames, model=model)
    matrices, valid = torch.from_numpy(first.matrices), torch.from_numpy(first.valid)
    tracked = tracks.survivors()
    if int(tracked.sum()) < 4 or not bool(valid.any()):
        return matrices, valid
    residual = _patch_residuals(tracks, matrices)[:, :, :2]  # (T-1, P, 2)
    rms = residual[valid][:, tracked].pow(2).sum(-1).mean(0).sqrt()
    background = torch.zeros_like(tracked)
    background[torch.nonzero(tracked).flatten()] = rms <= max(still, float(rms.median()))
    refit = matrices.clone()
    for t in range(steps):
        src, dst = tracks.start[t, background].reshape(-1, 2), tracks.end[t, background].reshape(-1, 2)
        both = ~(torch.isnan(src[:, 0]) | torch.isnan(dst[:, 0]))
        m = _fit_motion(model, src[both].numpy(), dst[both].numpy(), threshold=max(0.5, still))
        if m is not None and np.isfinite(m).all():
            refit[t] = torch.from_numpy(m.astype(np.float64))
            valid[t] = True
    return refit, valid


def _patch_residuals(tracks: PatchTracks, matrices: Tensor) -> Tensor:
    """``(T-1, P, 2 or 3)``: per patch and frame step, the median over its points of (actual step - the step
    the camera motion predicts), plus the depth change when depth was tracked; NaN where no point was tracked."""
    steps, p_count, slots, _ = tracks.start.shape
    flat = tracks.start.reshape(steps, p_count * slots, 2).double()
    predicted = _project(matrices, flat).float().reshape(tracks.start.shape)
    residual = (tracks.end - predicted).nanmedian(dim=2).values
    if tracks.depth_start is not None:
        dz = (tracks.depth_end - tracks.depth_start).nanmedian(dim=2).values
        residual = torch.cat([residual, dz[..., None]], dim=2)
    return residual


def _box_means(clip: Tensor, centres: Tensor, patch_size: int) -> Tensor:
    """Mean colour ``(T, P, C)`` of the ``patch_size`` boxes centred on ``centres (T, P, 2)``: the frame is box
    filtered, then sampled bilinearly at the (sub-pixel) centres, so a box moving by a fraction of a pixel
    changes its mean smoothly. Centres are kept far enough inside the frame for the whole box to fit."""
    import cv2

    t_count, c, h, w = clip.shape
    half = patch_size / 2
    x = centres[..., 0].clamp(half - 0.5, w - half - 0.5)
    y = centres[..., 1].clamp(half - 0.5, h - half - 0.5)
    out = torch.zeros(t_count, centres.shape[1], c)
    for t in range(t_count):
        img = np.ascontiguousarray(clip[t].permute(1, 2, 0).numpy().astype(np.float32))
        blurred = cv2.blur(img, (patch_size, patch_size), borderType=cv2.BORDER_REFLECT)
        maps = torch.from_numpy(blurred.reshape(h, w, c))
        where = torch.stack([x[t], y[t]], dim=1)
        for ch in range(c):
            out[t, :, ch] = sample_map(maps[:, :, ch], where)
    return out


@dataclass
class PatchTrajectories:
    """What :func:`patch_trajectories` measures for each patch of one shot (S valid frame steps)."""

    centres: Tensor  # (T, P, 2) patch centre (NaN once the patch is lost)
    tracked: Tensor  # (P,) bool: tracked through the whole shot
    position: Tensor  # (S, P, 2 or 3) residual velocity over the valid steps (0 for untracked patches)
    colour: Tensor  # (S, P, C) mean-colour change minus the median change
    steps: Tensor  # (T-1,) bool: frame steps kept (camera motion known)


def patch_trajectories(clip: Tensor, boxes: Tensor, opts: MiningOptions) -> PatchTrajectories:
    """Track the patches ``boxes`` through one shot, remove the camera's motion, and measure each patch's
    residual velocity and colour change (steps 2-4 of :mod:`mi_augment.video.twins.mine`).

    Args:
        clip: the shot, float in [0, 1].
        boxes: ``(P, 4)`` patches ``(x1, y1, x2, y2)`` in the first frame (e.g. :func:`patch_grid`).
        opts: tracking and camera-motion settings.

    Shape:
        - clip: :math:`(T, C, H, W)`; boxes: :math:`(P, 4)`.

    Example:
        >>> clip = torch.rand(10, 3, 32, 32)
        >>> traj = patch_trajectories(clip, patch_grid(32, 32, 16), MiningOptions(16, camera_motion="none"))
        >>> tuple(traj.centres.shape), tuple(traj.tracked.shape)
        ((10, 4, 2), (4,))
    """
    tracks = track_patches(clip, boxes, points_per_side=opts.points_per_side, min_texture=opts.min_texture,
                           window_size=opts.window_size, fb_threshold=opts.fb_threshold, depth=opts.depth)
    tracked = tracks.survivors()
    matrices, steps = _camera_motion(clip, tracks, opts.camera_motion, opts.min_motion)
    velocity = _patch_residuals(tracks, matrices)
    if velocity.shape[2] == 3:  # depth change minus the median change (a dolly moves everything alike)
        dz = velocity[:, tracked, 2:]
        velocity[:, :, 2:] -= dz.median(dim=1, keepdim=True).values if bool(tracked.any()) else 0.0
    velocity = torch.where(tracked[None, :, None], velocity, 0.0)
    centres = tracks.centres
    safe = torch.where(torch.isnan(centres), (boxes[:, :2] + boxes[:, 2:]) / 2, centres)
    means = _box_means(clip, safe, opts.patch_size)
    dc = means[1:] - means[:-1]
    if bool(tracked.any()):
        dc = dc - dc[:, tracked].median(dim=1, keepdim=True).values
    return PatchTrajectories(centres=centres, tracked=tracked, position=velocity[steps], colour=dc[steps], steps=steps)


