"""Point tracking through a clip: pyramidal Lucas-Kanade with a forward-backward check, split at hard cuts.

The tracker follows a set of points from the first frame of a clip to its last. A point is *lost* (and stays
lost) as soon as one step fails: OpenCV reports failure, the point leaves the frame, or tracking it forward
and then back again does not return within ``fb_threshold`` pixels of where it started (the forward-backward
check of Kalal et al., 2010). Tracks never cross a hard cut: :func:`shot_segments` splits a clip into shots
(with the shared detector :func:`mi_augment.video.cuts.detect_cuts`) and each shot is tracked on its own.

Depth is optional: pass ``depth=`` a callable mapping one frame ``(C, H, W)`` float in [0, 1] to a depth map
``(H, W)``, and every tracked point gets a third coordinate sampled from it (bilinear).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..core.validation import check_positive_int

DepthFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Tracks:
    """Point tracks through one shot.

    Attributes:
        points: ``(T, N, D)`` float32, ``D = 2`` (x, y in pixels) or ``3`` (x, y, depth); NaN once lost.
        alive: ``(T, N)`` bool, True while the point is still tracked (monotone: once False, False after).
    """

    points: Tensor
    alive: Tensor

    @property
    def num_frames(self) -> int:
        return int(self.points.shape[0])

    @property
    def num_points(self) -> int:
        return int(self.points.shape[1])

    def survivors(self) -> Tensor:
        """``(N,)`` bool: points tracked through every frame."""
        return self.alive[-1].clone()


def to_gray_uint8(frames: Tensor) -> list[np.ndarray]:
    """``(T, C, H, W)`` float in [0, 1] (or uint8) to a list of ``(H, W)`` uint8 grey images (ITU-R 601 luma)."""
    if frames.ndim != 4 or frames.shape[1] not in (1, 3):
        raise ValueError(f"frames must have shape (T, C, H, W) with C in (1, 3), got {tuple(frames.shape)}")
    out: list[np.ndarray] = []
    for chunk in frames.split(8):  # a few frames at a time: float temporaries of a whole window cost 100s of MB
        x = chunk.float() / 255.0 if chunk.dtype == torch.uint8 else chunk.float()
        if x.shape[1] == 3:
            w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x * w).sum(1, keepdim=True)
        g = (x[:, 0].clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
        out.extend(np.ascontiguousarray(f) for f in g)
    return out


def sample_map(values: Tensor, points: Tensor) -> Tensor:
    """Bilinear sample of a ``(H, W)`` map at ``(N, 2)`` pixel positions (x, y); positions are clamped to the map."""
    h, w = values.shape[-2:]
    x = points[:, 0].clamp(0, w - 1)
    y = points[:, 1].clamp(0, h - 1)
    x0 = x.floor().long().clamp(max=w - 2) if w > 1 else x.floor().long()
    y0 = y.floor().long().clamp(max=h - 2) if h > 1 else y.floor().long()
    x1 = (x0 + 1).clamp(max=w - 1)
    y1 = (y0 + 1).clamp(max=h - 1)
    fx = (x - x0.to(x.dtype)).to(values.dtype)
    fy = (y - y0.to(y.dtype)).to(values.dtype)
    top = values[y0, x0] * (1 - fx) + values[y0, x1] * fx
    bottom = values[y1, x0] * (1 - fx) + values[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def track_points(frames: Tensor, points: Tensor, *, window_size: int = 21, levels: int = 3,
                 fb_threshold: float = 1.0, depth: DepthFn | None = None) -> Tracks:
    """Track ``points`` (``(N, 2)`` x, y pixels in frame 0) through ``frames`` (``(T, C, H, W)``, one shot).

    Uses OpenCV's pyramidal Lucas-Kanade (``cv2.calcOpticalFlowPyrLK``) forward from each frame to the next and
    back again; a point whose round trip misses its start by more than ``fb_threshold`` pixels, that OpenCV
    reports as failed, or that leaves the frame is lost from then on. Only live points are passed to OpenCV,
    so the cost shrinks as points are lost.

    Args:
        frames: one shot (do not track across hard cuts; see :func:`shot_segments`).
        points: starting positions in frame 0.
        window_size: side of the LK search window at each pyramid level (pixels, odd).
        levels: pyramid levels above the full-resolution one (larger motions need more).
        fb_threshold: forward-backward tolerance in pixels.
        depth: optional callable frame ``(C, H, W)`` float -> ``(H, W)`` depth; adds a third coordinate.
    """
    import cv2

    window_size = check_positive_int(window_size, "window_size", minimum=3)
    levels = check_positive_int(levels, "levels", minimum=0)
    if not (isinstance(fb_threshold, (int, float)) and fb_threshold > 0):
        raise ValueError(f"fb_threshold must be a positive number of pixels, got {fb_threshold!r}")
    if not isinstance(points, Tensor) or points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be an (N, 2) tensor of x, y pixel positions, got "
                         f"{tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__}")
    if points.is_floating_point() and not bool(torch.isfinite(points).all()):
        raise ValueError("points contains NaN or inf values")
    gray = to_gray_uint8(frames)
    t_count, n = len(gray), points.shape[0]
    h, w = gray[0].shape
    dims = 3 if depth is not None else 2
    out = np.full((t_count, n, 2), np.nan, dtype=np.float32)
    alive = np.zeros((t_count, n), dtype=bool)
    start = points.detach().cpu().numpy().astype(np.float32)
    inside = (start[:, 0] >= 0) & (start[:, 0] <= w - 1) & (start[:, 1] >= 0) & (start[:, 1] <= h - 1)
    out[0, inside] = start[inside]
    alive[0] = inside
    lk = dict(winSize=(window_size, window_size), maxLevel=levels,
              criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    for t in range(t_count - 1):
        idx = np.flatnonzero(alive[t])
        if idx.size == 0:
            break
        p0 = out[t, idx].reshape(-1, 1, 2)
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(gray[t], gray[t + 1], p0, None, **lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(gray[t + 1], gray[t], p1, None, **lk)
        p1 = p1.reshape(-1, 2)
        fb_error = np.linalg.norm(back.reshape(-1, 2) - p0.reshape(-1, 2), axis=1)
        ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb_error <= fb_threshold)
        ok &= np.isfinite(p1).all(1)
        ok &= (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
        keep = idx[ok]
        out[t + 1, keep] = p1[ok]
        alive[t + 1, keep] = True
    pts = torch.from_numpy(out)
    if dims == 3:
        z = torch.full((t_count, n, 1), float("nan"))
        clip = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
        for t in range(t_count):
            live = torch.from_numpy(alive[t])
            if not bool(live.any()):
                continue
            dmap = torch.as_tensor(depth(clip[t])).float().cpu()
            if dmap.shape != (h, w):
                raise ValueError(f"depth callable must return an (H, W) = ({h}, {w}) map, got {tuple(dmap.shape)}")
            z[t, live, 0] = sample_map(dmap, pts[t, live])
        pts = torch.cat([pts, z], dim=2)
    return Tracks(points=pts, alive=torch.from_numpy(alive))


def shot_segments(frames: Tensor, cuts: Sequence[int] | str | None = "auto",
                  min_length: int = 2) -> list[tuple[int, int]]:
    """Split a clip at hard cuts into ``[(start, stop), ...]`` shots (``stop`` exclusive).

    Args:
        cuts: ``"auto"`` detects cuts with :func:`mi_augment.video.cuts.detect_cuts` (colour-histogram spikes);
            a sequence gives shot starts explicitly; None means one shot.
        min_length: shots shorter than this many frames are dropped.
    """
    t = int(frames.shape[0])
    if cuts is None:
        found: list[int] = []
    elif isinstance(cuts, str):
        if cuts != "auto":
            raise ValueError(f"cuts must be 'auto', None or a sequence of frame indices, got {cuts!r}")
        from .cuts import detect_cuts

        found = list(detect_cuts(frames).cuts) if t >= 2 else []
    else:
        found = sorted({int(c) for c in cuts})
    bounds = [0] + [c for c in found if 0 < c < t] + [t]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b - a >= min_length]


# ------------------------------------------------------------------------------------------ patch tracking


@dataclass(frozen=True)
class PatchTracks:
    """Patches followed through one shot, each by a few points that are re-seeded as they get lost.

    Every patch owns ``S = points_per_side ** 2`` point *slots*, one per cell of a grid over the patch. At each
    frame step the live points are tracked (Lucas-Kanade, forward-backward check); the patch moves by the
    median step of its points; dead slots are re-seeded at the most textured pixel of their cell in the patch's
    new position. A patch is lost (from then on) at the first step where none of its points survives or its
    box gets more than a quarter of its side outside the frame.

    Attributes:
        start: ``(T-1, P, S, 2)`` position in frame t of each slot's point tracked over step t (NaN: none).
        end: ``(T-1, P, S, 2)`` where that point is in frame t+1 (NaN where it was lost or there was none).
        centres: ``(T, P, 2)`` patch centre in every frame (NaN once the patch is lost).
        alive: ``(T, P)`` bool, the patch is still tracked in frame t.
        depth_start, depth_end: ``(T-1, P, S)`` depth at ``start`` / ``end`` when a depth callable was given.
    """

    start: Tensor
    end: Tensor
    centres: Tensor
    alive: Tensor
    depth_start: Tensor | None = None
    depth_end: Tensor | None = None

    def survivors(self) -> Tensor:
        """``(P,)`` bool: patches tracked through every frame."""
        return self.alive[-1].clone()


def _corner_response(gray: np.ndarray) -> Tensor:
    """Smaller eigenvalue of the 5x5 structure tensor of a grey uint8 image scaled to [0, 1]."""
    import cv2

    return torch.from_numpy(cv2.cornerMinEigenVal(gray.astype(np.float32) / 255.0, blockSize=5, ksize=3))


def seed_cells(response: Tensor, top_left: Tensor, patch_size: int, points_per_side: int,
               min_texture: float) -> Tensor:
    """The most textured pixel of each cell of a ``points_per_side`` grid over each patch.

    Args:
        response: ``(H, W)`` corner response (see :func:`_corner_response`).
        top_left: ``(P, 2)`` patch corners (x, y), rounded to whole pixels and kept inside the image.
        patch_size: patch side; cells are ``patch_size // points_per_side`` pixels, centred in the patch.
        min_texture: cells whose best response is below this get no point.

    Returns:
        ``(P, S, 2)`` float (x, y) pixel positions, NaN for textureless cells.
    """
    h, w = response.shape
    cell = max(1, patch_size // points_per_side)
    margin = (patch_size - cell * points_per_side) // 2
    pooled, where = torch.nn.functional.max_pool2d(response[None, None], cell, stride=1, return_indices=True)
    pooled, where = pooled[0, 0], where[0, 0]  # value and flat index of the best pixel of the cell at (y, x)
    x0 = top_left[:, 0].round().long().clamp(0, w - patch_size)
    y0 = top_left[:, 1].round().long().clamp(0, h - patch_size)
    offsets = torch.arange(points_per_side) * cell + margin
    cy = (y0[:, None, None] + offsets[None, :, None]).expand(-1, -1, points_per_side).reshape(len(x0), -1)
    cx = (x0[:, None, None] + offsets[None, None, :]).expand(-1, points_per_side, -1).reshape(len(x0), -1)
    cy = cy.clamp(0, pooled.shape[0] - 1)
    cx = cx.clamp(0, pooled.shape[1] - 1)
    best = where[cy, cx]
    pts = torch.stack([(best % w).float(), (best // w).float()], dim=-1)
    pts[pooled[cy, cx] < min_texture] = float("nan")
    return pts


def track_patches(frames: Tensor, boxes: Tensor, *, points_per_side: int = 3, min_texture: float = 5e-5,
                  window_size: int = 15, levels: int = 3, fb_threshold: float = 1.0,
                  depth: DepthFn | None = None) -> PatchTracks:
    """Follow square patches (``boxes (P, 4)`` x1, y1, x2, y2 in frame 0, all the same size) through one shot.

    See :class:`PatchTracks` for the method. Textureless patches (no cell with a corner response of at least
    ``min_texture``) are lost from the start.
    """
    import cv2

    points_per_side = check_positive_int(points_per_side, "points_per_side")
    window_size = check_positive_int(window_size, "window_size", minimum=3)
    levels = check_positive_int(levels, "levels", minimum=0)
    gray = to_gray_uint8(frames)
    t_count, p_count, slots = len(gray), boxes.shape[0], points_per_side ** 2
    h, w = gray[0].shape
    size = int(round(float(boxes[0, 2] - boxes[0, 0])))
    lk = dict(winSize=(window_size, window_size), maxLevel=levels,
              criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    start = torch.full((t_count - 1, p_count, slots, 2), float("nan"))
    end = torch.full_like(start, float("nan"))
    centres = torch.full((t_count, p_count, 2), float("nan"))
    alive = torch.zeros(t_count, p_count, dtype=torch.bool)
    pts = seed_cells(_corner_response(gray[0]), boxes[:, :2], size, points_per_side, min_texture)
    alive[0] = ~torch.isnan(pts[..., 0]).all(1)
    centres[0] = (boxes[:, :2] + boxes[:, 2:]) / 2
    # a patch whose box is more than a quarter outside the frame has left it
    lo_x, hi_x = size / 4 - 0.5, w - size / 4 - 0.5
    lo_y, hi_y = size / 4 - 0.5, h - size / 4 - 0.5
    for t in range(t_count - 1):
        pts[~alive[t]] = float("nan")
        live = ~torch.isnan(pts[..., 0])
        idx = torch.nonzero(live.flatten()).flatten()
        if idx.numel() == 0:
            break
        p0 = pts.reshape(-1, 2)[idx].numpy().reshape(-1, 1, 2)
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(gray[t], gray[t + 1], p0, None, **lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(gray[t + 1], gray[t], p1, None, **lk)
        p1 = p1.reshape(-1, 2)
        ok = (st1.ravel() == 1) & (st2.ravel() == 1) & np.isfinite(p1).all(1)
        ok &= np.linalg.norm(back.reshape(-1, 2) - p0.reshape(-1, 2), axis=1) <= fb_threshold
        ok &= (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
        moved = torch.full((p_count * slots, 2), float("nan"))
        moved[idx[torch.from_numpy(ok)]] = torch.from_numpy(p1[ok])
        moved = moved.reshape(p_count, slots, 2)
        start[t], end[t] = pts, moved
        step = (moved - pts).nanmedian(dim=1).values  # (P, 2), NaN where no point survived
        centre = centres[t] + step
        inside = ((centre[:, 0] >= lo_x) & (centre[:, 0] <= hi_x) & (centre[:, 1] >= lo_y) & (centre[:, 1] <= hi_y))
        alive[t + 1] = alive[t] & ~torch.isnan(step[:, 0]) & inside
        centres[t + 1] = torch.where(alive[t + 1, :, None], centre, float("nan"))
        pts = moved
        dead = torch.isnan(pts[..., 0]) & alive[t + 1, :, None]
        if bool(dead.any()):
            fresh = seed_cells(_corner_response(gray[t + 1]), centres[t + 1].nan_to_num() - size / 2, size,
                               points_per_side, min_texture)
            pts = torch.where(dead[..., None], fresh, pts)
    depth_start = depth_end = None
    if depth is not None:
        clip = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
        maps = []
        for t in range(t_count):
            dmap = torch.as_tensor(depth(clip[t])).float().cpu()
            if dmap.shape != (h, w):
                raise ValueError(f"depth callable must return an (H, W) = ({h}, {w}) map, got {tuple(dmap.shape)}")
            maps.append(dmap)
        depth_start = torch.full(start.shape[:-1], float("nan"))
        depth_end = torch.full_like(depth_start, float("nan"))
        for t in range(t_count - 1):
            for src, dst, m in ((start, depth_start, maps[t]), (end, depth_end, maps[t + 1])):
                valid = ~torch.isnan(src[t, ..., 0])
                dst[t][valid] = sample_map(m, src[t][valid])
    return PatchTracks(start=start, end=end, centres=centres, alive=alive, depth_start=depth_start,
                       depth_end=depth_end)
