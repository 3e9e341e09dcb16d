"""Twin-patch mining: positives across entities, found by the mutual information of patch trajectories.

After Chen & Yang, "Mutual Information guided Visual Contrastive Learning" (arXiv 2511.00028): two patches of
a video are *twins* when their trajectories share a lot of information: parts of one object, or objects that
move as one. A patch and its twin are a positive pair that no augmentation of a single image produces.

The pipeline, for one shot (hard cuts split a clip into shots; tracks never cross them):

1. **Patches.** A grid of ``patch_size`` boxes over the shot's first frame (the reference frame).
2. **Tracking.** Up to ``points_per_side ** 2`` textured points per patch (the strongest corner response in
   each cell of a small grid over the patch) are tracked with pyramidal Lucas-Kanade and a forward-backward
   check; the patch moves by the median step of its points, and lost points are re-seeded in the patch's new
   position (:func:`mi_augment.video.tracking.track_patches`). A patch that loses all its points at once
   (textureless, occluded, left the frame) has no trajectory.
3. **Camera motion removed.** The global motion of every frame pair
   (:func:`mi_augment.video.motion_estimation.estimate_global_motion`, RANSAC, so moving objects are outliers;
   then refitted on the points of the patches that stay stillest over the whole shot) predicts where each point
   would be if it were static background; the *residual velocity* (actual step minus predicted step) is what
   the patch does by itself. Velocities, not positions: positions of a random
   walk are non-stationary and any two of them look dependent; increments are (close to) independent samples.
4. **Features.** ``"position"``: the patch's residual velocity (median over its points; plus the depth change
   when a depth callable is given). ``"colour"``: the change of the patch's mean colour (a box that follows the
   patch), minus the median change over all patches (a global exposure change is not shared information).
5. **Low-entropy patches** (static, or with constant velocity, or textureless): the standard deviation of the
   features over time is below ``min_motion`` (pixels / frame) and ``min_colour``: no twin. The features are
   dithered with noise at a quarter of those thresholds, so that a sequence that is exactly still on most
   frames does not collapse the kNN distances.
6. **All-pairs MI** of the active patches' feature sequences with :func:`mi_augment.mi.pairwise_mi` (``kl3``
   by default, or ``ksg``). Twin = highest-MI partner, excluding the patch itself and, with
   ``exclude_neighbors``, the patches whose boxes touch or overlap it.
7. **Significance** against a shuffled baseline: the same best-partner maximum computed for (up to 48) patches
   whose sequences are circularly shifted in time (which keeps each sequence's own autocorrelation but
   destroys alignment), pooled over those patches and at least ``n_shuffles`` shifts. The p-value of a patch
   is the fraction of baseline maxima at least as large as its observed maximum. Patches with p > ``alpha``
   (or a best MI <= 0) get no twin.

Frames are streamed: a video is read window by window (:func:`mine_windows`), so memory stays flat in the
length of the clip.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...core.validation import check_positive_int
from ..cuts import iter_shot_windows
from ..io import as_clip, iter_video, read_video
from ..tracking import shot_segments
from .matching import twins_from_trajectories
from .options import MIN_STEPS, MiningOptions
from .result import TwinPatches
from .trajectories import neighbor_mask, patch_grid, patch_trajectories

__all__ = ["mine_shots", "mine_twin_patches", "mine_windows"]


def _spread(x: Tensor) -> Tensor:
    """Standard deviation over frame steps ``x (S, P, D) -> (P, D)``; 0 with fewer than two steps (a grey or
    untrackable clip), where ``std`` would warn about degrees of freedom and return NaN."""
    return x.std(dim=0) if x.shape[0] >= 2 else x.new_zeros(x.shape[1:])


def _mine_clip(clip: Tensor, frame_range: tuple[int, int], opts: MiningOptions) -> TwinPatches:
    """Mine one shot (no cuts inside) given as a float ``(T, C, H, W)`` clip."""
    boxes = patch_grid(clip.shape[2], clip.shape[3], opts.patch_size, opts.stride)
    traj = patch_trajectories(clip, boxes, opts)
    steps = int(traj.steps.sum())
    parts, moving = [], torch.zeros(boxes.shape[0], dtype=torch.bool)
    # Dither each feature with noise at a quarter of its stillness threshold, below what counts as motion:
    # sequences that sit exactly still on most frames would otherwise have near-zero neighbour distances,
    # which throws kNN entropy estimates far off. A fixed seed keeps results reproducible.
    dither = torch.Generator().manual_seed(0)
    if "position" in opts.features:
        moving |= _spread(traj.position).norm(dim=1) >= opts.min_motion
        noise = torch.randn(traj.position.shape, generator=dither) * (opts.min_motion / 4)
        parts.append(traj.position + noise)
    if "colour" in opts.features:
        moving |= _spread(traj.colour).norm(dim=1) >= opts.min_colour
        noise = torch.randn(traj.colour.shape, generator=dither) * (opts.min_colour / 4)
        parts.append(traj.colour + noise)
    active = traj.tracked & moving
    settings = {**opts.settings(), "steps": steps}
    p_count = boxes.shape[0]
    if steps < max(MIN_STEPS, opts.k + 2):  # camera motion unknown on most frame steps
        mi, twins, p_values = torch.zeros(p_count, p_count), torch.full((p_count,), -1), torch.ones(p_count)
        active = torch.zeros_like(active)
    else:
        seq = torch.cat(parts, dim=2).permute(1, 0, 2).contiguous()  # (P, S, D)
        exclude = neighbor_mask(boxes) if opts.exclude_neighbors else None
        mi, twins, p_values = twins_from_trajectories(seq, active=active, exclude=exclude, estimator=opts.estimator,
                                                      k=opts.k, alpha=opts.alpha, n_shuffles=opts.n_shuffles)
    return TwinPatches(boxes=boxes, mi=mi, twins=twins, significance=p_values, active=active,
                       tracked=traj.tracked, centres=traj.centres, frame_range=frame_range, settings=settings)


def _load_clip(video: Any, opts: MiningOptions, max_frames: int | None,
               read_kwargs: dict[str, Any] | None) -> Tensor:
    """The clip, validated; uint8 input stays uint8 (4x less memory) until each window is mined."""
    if isinstance(video, (str, os.PathLike)):
        clip = read_video(video, **(read_kwargs or {}))
    elif isinstance(video, Tensor) and video.dtype == torch.uint8 and video.ndim == 4 and video.shape[1] in (1, 3):
        clip = video
    else:
        clip = as_clip(video)
    h, w = clip.shape[2:]
    if opts.patch_size > min(h, w):
        raise ValueError(f"patch_size={opts.patch_size} is larger than the frame ({h}x{w} pixels); "
                         "choose a patch_size no larger than the shorter side")
    if clip.shape[0] < MIN_STEPS + 1:
        raise ValueError(f"the video has {clip.shape[0]} frame(s); twin mining needs at least {MIN_STEPS + 1} "
                         "frames of one shot to estimate MI between patch trajectories")
    if max_frames is not None:
        check_positive_int(max_frames, "max_frames", minimum=MIN_STEPS + 1)
    return clip


def mine_twin_patches(video: str | os.PathLike | Tensor | np.ndarray, patch_size: int = 32, *,
                      max_frames: int | None = 64, cuts: Sequence[int] | str | None = "auto",
                      read_kwargs: dict[str, Any] | None = None, **options: Any) -> TwinPatches:
    """Mine twin patches from the longest shot of a video (its first ``max_frames`` frames).

    Args:
        video: a path, a ``(T, C, H, W)`` tensor (uint8 or float in [0, 1]) or a ``(T, H, W, C)`` uint8 array.
        patch_size: side of the square patches, pixels of the video as given.
        max_frames: frames of the shot used (from its start); None uses the whole shot.
        cuts: ``"auto"`` (detect hard cuts), a list of shot starts, or None (the clip is one shot).
        read_kwargs: passed to :func:`mi_augment.video.read_video` when ``video`` is a path
            (e.g. ``{"max_side": 384, "stride": 2}``).
        **options: any field of :class:`MiningOptions`:

            * ``stride``: grid spacing (default ``patch_size``: patches tile the frame).
            * ``features``: ``"position"`` (residual velocity after camera-motion removal; the default) and/or
              ``"colour"`` (mean colour change of the patch). With both, each sample has 5 dimensions (10 for
              a pair) and ``kl3`` underestimates badly from a few dozen frames; use ``estimator="ksg"``.
            * ``estimator``: ``"kl3"`` (default) or ``"ksg"``, the all-pairs MI estimator; ``k`` its neighbours.
            * ``exclude_neighbors``: never pick a patch whose box touches or overlaps the patch's own (default).
            * ``alpha``, ``n_shuffles``: level and circular shifts of the shuffled-baseline test.
            * ``min_motion``: residual-velocity standard deviation (pixels / frame) below which a patch is still;
              ``min_colour``: the same for colour change (0..1 units / frame).
            * ``camera_motion``: global motion removed first (``"similarity"``, ``"affine"``, ``"homography"``),
              or ``"none"`` for a fixed camera.
            * ``points_per_side``: tracked points per patch side; ``min_texture``: corner response (smaller
              structure-tensor eigenvalue, 5x5, grey in [0, 1]) a point needs, so textureless patches have no
              trajectory; ``window_size``: Lucas-Kanade window; ``fb_threshold``: forward-backward tolerance.
            * ``depth``: optional callable ``frame (C, H, W) -> depth (H, W)``; adds the depth change to
              "position".

    Returns:
        a :class:`TwinPatches`; ``frame_range`` says which frames of ``video`` it covers.
    """
    opts = MiningOptions(patch_size=patch_size, **options)
    clip = _load_clip(video, opts, max_frames, read_kwargs)
    shots = shot_segments(clip, cuts, min_length=1)
    start, stop = max(shots, key=lambda s: s[1] - s[0])
    if max_frames is not None:
        stop = min(stop, start + max_frames)
    if stop - start < MIN_STEPS + 1:
        raise ValueError(f"the longest shot of the video has {stop - start} frame(s) (hard cuts split it); twin "
                         f"mining needs at least {MIN_STEPS + 1}")
    return _mine_clip(as_clip(clip[start:stop]), (start, stop), opts)


def mine_shots(video: str | os.PathLike | Tensor | np.ndarray | Iterable[Tensor], patch_size: int = 32, *,
               max_frames: int | None = 64, cuts: Sequence[int] | str | None = "auto",
               read_kwargs: dict[str, Any] | None = None, **options: Any) -> list[TwinPatches]:
    """Mine every shot of a video: split it at hard cuts, cut each shot into windows of ``max_frames`` frames
    and mine each window of at least ``MIN_STEPS + 1`` frames. Arguments as :func:`mine_windows`, which this
    runs to the end (use it directly to keep the windows' frames, e.g. for crops).

    Returns:
        one :class:`TwinPatches` per window, in frame order.
    """
    return [result for result, _ in mine_windows(video, patch_size, max_frames=max_frames, cuts=cuts,
                                                 read_kwargs=read_kwargs, **options)]


def mine_windows(video: str | os.PathLike | Tensor | np.ndarray | Iterable[Tensor], patch_size: int = 32, *,
                 max_frames: int | None = 64, cuts: Sequence[int] | str | None = "auto",
                 read_kwargs: dict[str, Any] | None = None,
                 **options: Any) -> Iterator[tuple[TwinPatches, Tensor]]:
    """Mine a video window by window as its frames stream in: memory holds one window (``max_frames`` frames
    plus the few the cut detector looks ahead), whatever the length of the clip.

    Shots are split at hard cuts and cut into windows of ``max_frames`` frames from their start; windows of
    fewer than ``MIN_STEPS + 1`` frames are skipped. Options are checked when this is called; the video is read
    as the iterator is consumed, and a video with fewer than ``MIN_STEPS + 1`` frames raises ``ValueError`` at
    its end.

    Args:
        video: a path (streamed with :func:`mi_augment.video.io.iter_video`), a ``(T, C, H, W)`` tensor (uint8 or
            float in [0, 1]), a ``(T, H, W, C)`` uint8 array, or an iterable of ``(C, H, W)`` frames.
        patch_size: side of the square patches, pixels of the video as given.
        max_frames: frames per window (at least ``MIN_STEPS + 1``); None: a window is a whole shot (not bounded).
        cuts: ``"auto"`` (detect hard cuts), a list of shot starts, or None (the clip is one shot).
        read_kwargs: passed to :func:`~mi_augment.video.io.iter_video` when ``video`` is a path
            (e.g. ``{"max_side": 384, "stride": 2}``).
        **options: any field of :class:`MiningOptions` (see :func:`mine_twin_patches`).

    Returns:
        an iterator of ``(result, clip)``: each window's :class:`TwinPatches` (``frame_range`` in frames of the
        whole video) and its frames ``(T, C, H, W)`` as given (uint8 stays uint8).

    Example:
        >>> clip = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8)
        >>> [(r.frame_range, tuple(w.shape)) for r, w in mine_windows(clip, 16, cuts=None, camera_motion="none")]
        [((0, 12), (12, 3, 32, 32))]
    """
    opts = MiningOptions(patch_size=patch_size, **options)
    if max_frames is not None:
        check_positive_int(max_frames, "max_frames", minimum=MIN_STEPS + 1)
    if isinstance(video, (str, os.PathLike)):
        frames: Iterable[Tensor] = iter_video(video, **(read_kwargs or {}))
    elif isinstance(video, Tensor) and video.dtype == torch.uint8 and video.ndim == 4 and video.shape[1] in (1, 3):
        frames = video
    elif isinstance(video, (Tensor, np.ndarray)):
        frames = as_clip(video)
    else:
        frames = video
    windows = iter_shot_windows(_checked_frames(frames, opts.patch_size), max_frames, cuts,
                                min_length=MIN_STEPS + 1)
    return _mine_windows(windows, opts)


def _checked_frames(frames: Iterable[Tensor], patch_size: int) -> Iterator[Tensor]:
    """The frames, each checked to be ``(C, H, W)`` with room for a patch; raises at the end of a video with
    too few frames to mine."""
    count = 0
    for frame in frames:
        if not isinstance(frame, Tensor) or frame.ndim != 3 or frame.shape[0] not in (1, 3):
            raise ValueError(f"frame {count} of the video must be a (C, H, W) tensor with C in (1, 3), got "
                             f"{tuple(frame.shape) if isinstance(frame, Tensor) else type(frame).__name__}")
        h, w = frame.shape[1:]
        if patch_size > min(h, w):
            raise ValueError(f"patch_size={patch_size} is larger than the frame ({h}x{w} pixels); "
                             "choose a patch_size no larger than the shorter side")
        count += 1
        yield frame
    if count < MIN_STEPS + 1:
        raise ValueError(f"the video has {count} frame(s); twin mining needs at least {MIN_STEPS + 1} "
                         "frames of one shot to estimate MI between patch trajectories")


def _mine_windows(windows: Iterator[tuple[int, int, Tensor]],
                  opts: MiningOptions) -> Iterator[tuple[TwinPatches, Tensor]]:
    for start, stop, clip in windows:
        yield _mine_clip(as_clip(clip), (start, stop), opts), clip
