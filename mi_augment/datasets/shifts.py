"""Test sets under real shift for :mod:`~mi_augment.datasets.scenes` (issue 22): the i.i.d. test split says
little about open environments, so two shifted versions of it are built, deterministically from a seed.

* **new backgrounds**: the test garments (Fashion-MNIST's test split, rendered as ``fmnist_scenes`` renders
  them) composited onto frames of clips that no training image used;
* **measured relighting**: the i.i.d. test images relit by illumination changes *measured* between real
  frame pairs of held-out footage (per-channel gain, gamma and low-order shading, estimated by
  :meth:`mi_augment.perturbations.IlluminationModel.estimate` after motion compensation), one measured change
  per image, never a sample from a fitted density.

A grid that uses them trains on scenes whose backgrounds come from :data:`TRAINING_CLIPS` only and keeps
:data:`HELD_OUT_CLIPS` for the shifted sets (and for track retrieval), so no training image, and no natural
model refitted for the grid, has seen the footage a shifted number is measured on.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .scenes import SceneConfig, render_scenes

#: the shipped clips a shift grid trains on, and the ones it holds out (carphone: window light in a moving
#: car; tree: a shaky, backlit hand-held camera with auto-exposure)
TRAINING_CLIPS = ("bikes", "vtest")
HELD_OUT_CLIPS = ("carphone", "tree")


def clip_frames(path: str | os.PathLike, count: int = 48, short_side: int = 128) -> list[np.ndarray]:
    """Up to ``count`` evenly spaced decodable frames of a clip as RGB uint8 ``[H, W, 3]``, the shorter side
    resized to ``short_side`` (as :func:`~mi_augment.datasets.scenes.read_frames` does, but spaced over the
    frames that decode, so a file whose header overstates its length still gives ``count`` frames)."""
    import cv2

    from ..video.io import read_video

    frames = read_video(path, min_frames=1)
    keep = np.unique(np.linspace(0, frames.shape[0] - 1, min(count, frames.shape[0])).round().astype(int))
    out = []
    for f in frames[torch.from_numpy(keep)].permute(0, 2, 3, 1).numpy():
        h, w = f.shape[:2]
        s = short_side / min(h, w)
        out.append(
            cv2.resize(
                f,
                (max(short_side, round(w * s)), max(short_side, round(h * s))),
                interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
            )
        )
    return out


def new_background_test_set(
    garments: tuple[np.ndarray, np.ndarray],
    clips: list[str | os.PathLike],
    n: int = 10_000,
    seed: int = 0,
    config: SceneConfig | None = None,
) -> tuple[Tensor, Tensor]:
    """The test garments on backgrounds from ``clips``: images uint8 ``[n, 3, S, S]``, labels int64 ``[n]``.

    Args:
        garments: ``(images [M, h, w] uint8, labels [M])``, e.g. Fashion-MNIST's test split.
        clips: held-out video files for the backgrounds (none of them used by a training image).
        n: how many images.
        seed: the rendering's generator seed (same seed, same images).
        config: the scenes' configuration (size, scales, clutter); ``image_size`` and the scales are used.

    Example:
        >>> import tempfile, cv2
        >>> path = tempfile.mkdtemp() + "/clip.avi"
        >>> writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
        >>> for t in range(4):
        ...     _ = writer.write(np.full((48, 64, 3), 40 * t, np.uint8))
        >>> writer.release()
        >>> garments = (np.full((5, 28, 28), 200, np.uint8), np.arange(5))
        >>> images, labels = new_background_test_set(garments, [path], n=6, seed=1)
        >>> again = new_background_test_set(garments, [path], n=6, seed=1)[1]
        >>> tuple(images.shape), images.dtype, labels.tolist() == again.tolist()
        ((6, 3, 32, 32), torch.uint8, True)
    """
    if not clips:
        raise ValueError("clips must name at least one held-out video for the backgrounds")
    config = config or SceneConfig()
    frames = [f for c in clips for f in clip_frames(c, config.frames_per_clip)]
    rng = np.random.default_rng(
        np.random.SeedSequence([seed, 22])
    )  # a stream of its own, not the scenes' splits
    images, labels = render_scenes(*garments, frames, n, config, rng)
    return torch.from_numpy(images), torch.from_numpy(labels)


def measured_changes(clips: list[str | os.PathLike], max_side: int = 128):
    """Illumination changes measured between real frame pairs of ``clips``: ``(model, vectors (N, D))``, where
    ``model.params_from_vector(vectors)`` gives the changes as parameters and ``model.apply`` renders them.
    Both directions of each pair are kept (time reversal is as real as the original order)."""
    from ..perturbations import IlluminationModel

    model = IlluminationModel(max_side=max_side, symmetric=True)
    estimates = model.estimate([Path(c) for c in clips])
    if estimates.vectors.shape[0] == 0:
        raise ValueError(
            f"no usable frame pair in {[str(c) for c in clips]} to measure illumination changes on"
        )
    return model, estimates.vectors


def relight(images: Tensor, model, vectors: Tensor, seed: int = 0, batch_size: int = 1024) -> Tensor:
    """``images`` (uint8 ``[N, C, H, W]``) each relit by one measured change, drawn with ``seed``.

    Shape:
        - images: ``[N, C, H, W]`` uint8, C = 1 or 3.
        - vectors: ``[M, D]``, rows of :func:`measured_changes`.
        - output: like ``images``.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(vectors.shape[0], (images.shape[0],), generator=g)
    out = torch.empty_like(images)
    for start in range(0, images.shape[0], batch_size):
        part = slice(start, start + batch_size)
        params = model.params_from_vector(vectors[rows[part]].float())
        lit = model.apply(images[part].float() / 255.0, params)
        out[part] = (lit.clamp(0, 1) * 255.0).round().to(torch.uint8)
    return out
