"""Synthetic clips with known camera motion, hard cuts and an independently moving object.

Shared by the motion, motion-estimation and cut tests (imported as ``test_motion_support``); the tests at the
bottom check that the generator itself is consistent.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch


def similarity_about_centre(dx: float, dy: float, rotation_deg: float, scale: float, height: int,
                            width: int) -> np.ndarray:
    """3x3 pixel matrix: zoom and rotate about the frame centre, then shift by (dx, dy) px."""
    c = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    a = scale * np.array([[math.cos(math.radians(rotation_deg)), -math.sin(math.radians(rotation_deg))],
                          [math.sin(math.radians(rotation_deg)), math.cos(math.radians(rotation_deg))]])
    m = np.eye(3)
    m[:2, :2] = a
    m[:2, 2] = c - a @ c + np.array([dx, dy])
    return m


def textured_canvas(size: int, seed: int, tint: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """A ``size x size`` RGB float image with texture at several scales (plenty of trackable corners)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.float32)
    for sigma, weight in ((1.0, 0.25), (3.0, 0.5), (9.0, 1.0)):
        img += weight * cv2.GaussianBlur(rng.random((size, size, 3)).astype(np.float32), (0, 0), sigma)
    img = (img - img.min()) / (img.max() - img.min())
    return np.clip(img * np.asarray(tint, np.float32), 0, 1)


def synthetic_clip(motions: np.ndarray, *, size: tuple[int, int] = (120, 160), canvas: int = 520, seed: int = 0,
                   tint: tuple[float, float, float] = (1.0, 1.0, 1.0), foreground: bool = True,
                   foreground_velocity: tuple[float, float] = (2.5, 1.5)) -> tuple[torch.Tensor, np.ndarray]:
    """A clip whose camera moves by the given per-pair similarities.

    Args:
        motions: ``(T-1, 4)`` rows ``(dx px, dy px, rotation degrees, scale)``, about the frame centre.
        foreground: paste a 28x28 block of another texture that moves with ``foreground_velocity`` px/frame,
            independently of the camera.

    Returns:
        ``(T, 3, H, W)`` uint8 frames and the true ``(T-1, 3, 3)`` pixel matrices (frame t -> frame t+1).
    """
    h, w = size
    texture = textured_canvas(canvas, seed, tint)
    block = textured_canvas(28, seed + 1000, (1.0, 0.6, 0.3))
    a = np.eye(3)
    a[:2, 2] = [(w - 1) / 2.0 - (canvas - 1) / 2.0, (h - 1) / 2.0 - (canvas - 1) / 2.0]
    frames, truths = [], []
    for t in range(len(motions) + 1):
        frame = cv2.warpAffine(texture, a[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if foreground:
            x = int(10 + foreground_velocity[0] * t) % (w - 28)
            y = int(10 + foreground_velocity[1] * t) % (h - 28)
            frame[y:y + 28, x:x + 28] = block
        frames.append(frame)
        if t < len(motions):
            m = similarity_about_centre(*motions[t], h, w)
            truths.append(m)
            a = m @ a
    arr = (np.stack(frames) * 255).round().astype(np.uint8)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous(), np.stack(truths) if truths else np.zeros((0, 3, 3))


def random_motions(n: int, seed: int, mean=(1.5, -0.5, 0.0, 0.0), std=(1.0, 0.7, 0.3, 0.4)) -> np.ndarray:
    """``(n, 4)`` Gaussian per-pair motions: dx, dy (px), rotation (deg), zoom (percent -> scale)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(mean, std, size=(n, 4))
    z[:, 3] = np.exp(z[:, 3] / 100.0)
    return z


def cut_clip(shot_lengths: list[int], size: tuple[int, int] = (96, 128)) -> tuple[torch.Tensor, list[int]]:
    """Shots of different scenes (textures and colour casts), each with a slow pan; returns frames and the
    index of the first frame of every shot after the first."""
    tints = [(1.0, 0.9, 0.8), (0.5, 0.8, 1.0), (1.0, 0.5, 0.5), (0.6, 1.0, 0.6), (0.9, 0.9, 0.3)]
    shots, cuts, start = [], [], 0
    for i, n in enumerate(shot_lengths):
        motions = np.tile([1.0, 0.5, 0.0, 1.0], (n - 1, 1))
        frames, _ = synthetic_clip(motions, size=size, canvas=400, seed=10 + i, tint=tints[i % len(tints)],
                                   foreground=False)
        shots.append(frames)
        if i:
            cuts.append(start)
        start += n
    return torch.cat(shots), cuts


# ---- the generator is what it claims --------------------------------------------------------------------


def test_synthetic_clip_follows_its_ground_truth():
    motions = np.array([[3.0, -2.0, 0.0, 1.0], [0.0, 0.0, 2.0, 1.02]])
    frames, truths = synthetic_clip(motions, foreground=False)
    assert frames.shape == (3, 3, 120, 160) and frames.dtype == torch.uint8
    # warping frame t by the true matrix reproduces frame t+1 away from the borders
    for t in range(2):
        src = frames[t].permute(1, 2, 0).numpy().astype(np.float32)
        dst = frames[t + 1].permute(1, 2, 0).numpy().astype(np.float32)
        moved = cv2.warpAffine(src, truths[t][:2], (160, 120), flags=cv2.INTER_LINEAR)
        assert np.abs(moved - dst)[15:-15, 15:-15].mean() < 3.0


def test_cut_clip_marks_shot_starts():
    frames, cuts = cut_clip([5, 4, 6])
    assert frames.shape[0] == 15 and cuts == [5, 9]
