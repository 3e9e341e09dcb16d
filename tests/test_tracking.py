"""Point tracking: sub-pixel accuracy on known motion, the forward-backward check, depth, and shot splitting."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mi_augment.video.tracking import (
    PatchTracks,
    Tracks,
    sample_map,
    shot_segments,
    to_gray_uint8,
    track_patches,
    track_points,
)


def _texture(seed: int, h: int = 120, w: int = 160) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((h, w), np.float32)
    for sigma in (1.0, 3.0, 8.0):
        n = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), sigma)
        x += (n - n.mean()) / n.std()
    return (x - x.min()) / (x.max() - x.min())


def _translating_clip(shifts: np.ndarray, seed: int = 0, size=(96, 128)) -> torch.Tensor:
    """Grey clip of a texture translated by ``shifts[t]`` (x, y) pixels in frame t, as (T, 3, H, W) float."""
    big = _texture(seed, size[0] + 40, size[1] + 40)
    frames = []
    for dx, dy in shifts:
        m = np.float32([[1, 0, 20 - dx], [0, 1, 20 - dy]])
        frames.append(cv2.warpAffine(big, m, (size[1], size[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
    x = torch.from_numpy(np.stack(frames))[:, None].expand(-1, 3, -1, -1)
    return x.contiguous()


def _grid_points(h=96, w=128, step=16) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(step, h - step, float(step)),
                            torch.arange(step, w - step, float(step)), indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=1)


def test_tracks_known_translation_to_subpixel_accuracy():
    shifts = np.cumsum(np.r_[[[0.0, 0.0]], np.tile([[0.7, -0.4]], (9, 1))], axis=0)
    clip = _translating_clip(shifts)
    pts = _grid_points()
    tracks = track_points(clip, pts)
    assert isinstance(tracks, Tracks) and tracks.points.shape == (10, len(pts), 2)
    assert bool(tracks.alive.all())
    expected = pts[None] + torch.from_numpy(shifts).float()[:, None]
    assert float((tracks.points - expected).abs().max()) < 0.1


def test_forward_backward_check_drops_points_on_changed_content():
    clip = _translating_clip(np.zeros((6, 2)))
    replaced = torch.from_numpy(_texture(5, 96, 128))
    clip[3:, :, :48, :64] = replaced[:48, :64]  # the top-left quarter turns into unrelated content at frame 3
    pts = _grid_points()
    tracks = track_points(clip, pts)
    inside = (pts[:, 0] < 56) & (pts[:, 1] < 40)
    assert bool(tracks.alive[2].all())
    assert float(tracks.alive[-1][inside].float().mean()) < 0.5
    assert bool(tracks.alive[-1][~((pts[:, 0] < 80) & (pts[:, 1] < 64))].all())
    lost = ~tracks.alive
    assert bool(torch.isnan(tracks.points[lost]).all())
    assert bool((tracks.alive[1:] <= tracks.alive[:-1]).all())  # once lost, lost for good


def test_points_leaving_the_frame_are_lost():
    shifts = np.stack([np.arange(8) * 3.0, np.zeros(8)], axis=1)
    clip = _translating_clip(shifts)
    pts = torch.tensor([[120.0, 50.0], [30.0, 50.0]])
    tracks = track_points(clip, pts)
    assert not bool(tracks.alive[-1, 0]) and bool(tracks.alive[-1, 1])
    assert tracks.survivors().tolist() == [False, True]


def test_depth_callable_adds_a_third_coordinate():
    shifts = np.stack([np.arange(5) * 1.0, np.zeros(5)], axis=1)
    clip = _translating_clip(shifts)
    calls = []

    def depth(frame):
        calls.append(frame.shape)
        h, w = frame.shape[-2:]
        return torch.arange(w, dtype=torch.float32).expand(h, w) * 0.5  # depth = x / 2

    pts = _grid_points()
    tracks = track_points(clip, pts, depth=depth)
    assert tracks.points.shape[-1] == 3 and len(calls) == 5 and calls[0] == (3, 96, 128)
    assert torch.allclose(tracks.points[..., 2], tracks.points[..., 0] * 0.5, atol=1e-3)
    with pytest.raises(ValueError, match="depth"):
        track_points(clip, pts, depth=lambda f: torch.zeros(3, 3))


def test_sample_map_is_bilinear():
    ramp = torch.arange(20, dtype=torch.float32).expand(10, 20) + 100 * torch.arange(10.0)[:, None]
    pts = torch.tensor([[3.25, 4.5], [0.0, 0.0], [19.0, 9.0]])
    assert torch.allclose(sample_map(ramp, pts), torch.tensor([3.25 + 450.0, 0.0, 919.0]))


def test_gray_conversion_accepts_uint8_and_float():
    clip = torch.rand(2, 3, 8, 8)
    a = to_gray_uint8(clip)
    b = to_gray_uint8((clip * 255).round().to(torch.uint8))
    assert a[0].dtype == np.uint8 and a[0].shape == (8, 8)
    assert np.abs(a[0].astype(int) - b[0].astype(int)).max() <= 1


def test_bad_points_are_rejected():
    clip = _translating_clip(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        track_points(clip, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="NaN"):
        track_points(clip, torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="fb_threshold"):
        track_points(clip, torch.zeros(1, 2), fb_threshold=0)


def test_shot_segments_split_at_cuts():
    a = _translating_clip(np.zeros((10, 2)), seed=1)
    b = 0.4 * _translating_clip(np.zeros((7, 2)), seed=2) + 0.5
    clip = torch.cat([a, b])
    assert shot_segments(clip) == [(0, 10), (10, 17)]
    assert shot_segments(clip, cuts=None) == [(0, 17)]
    assert shot_segments(clip, cuts=[4, 10]) == [(0, 4), (4, 10), (10, 17)]
    assert shot_segments(clip, cuts=[4, 10], min_length=5) == [(4, 10), (10, 17)]
    with pytest.raises(ValueError, match="cuts"):
        shot_segments(clip, cuts="sometimes")


# ------------------------------------------------------------------------------------------- patch tracking


def _boxes(size=16, h=96, w=128):
    from mi_augment.video.twins import patch_grid

    return patch_grid(h, w, size)


def test_track_patches_follows_translation():
    shifts = np.cumsum(np.r_[[[0.0, 0.0]], np.tile([[0.6, 0.3]], (11, 1))], axis=0)
    clip = _translating_clip(shifts)
    boxes = _boxes()
    tracks = track_patches(clip, boxes)
    assert isinstance(tracks, PatchTracks)
    assert tracks.start.shape == (11, len(boxes), 9, 2) and tracks.centres.shape == (12, len(boxes), 2)
    inner = tracks.survivors()
    assert int(inner.sum()) >= len(boxes) - 8  # only patches at the border may leave the frame
    expected = (boxes[:, :2] + boxes[:, 2:]) / 2 + torch.from_numpy(shifts[-1]).float()
    assert float((tracks.centres[-1, inner] - expected[inner]).abs().max()) < 0.15


def test_track_patches_reseeds_lost_points_and_drops_textureless_patches():
    clip = _translating_clip(np.zeros((10, 2)))
    clip[:, :, :48, :48] = 0.5  # a flat corner: no texture, no points
    clip[5:, :, 32:44, 64:76] = torch.from_numpy(_texture(9, 96, 128))[32:44, 64:76]  # new content at frame 5
    boxes = _boxes(size=32)
    tracks = track_patches(clip, boxes)
    assert not bool(tracks.alive[0, 0])  # the patch in the flat corner is textureless
    i = int(torch.nonzero((boxes[:, 0] == 64) & (boxes[:, 1] == 32)).flatten()[0])  # the patch at (64, 32)
    # its corner cell's point fails the forward-backward check over step 4, the far cells' points do not ...
    assert torch.isnan(tracks.end[4, i, 0, 0]) and not torch.isnan(tracks.start[4, i, 0, 0])
    assert not bool(torch.isnan(tracks.end[4, i, -1]).any())
    # ... so the patch lives on and the lost slot is re-seeded in frame 5
    assert bool(tracks.survivors()[i]) and not torch.isnan(tracks.start[5, i, 0, 0])


def test_track_patches_depth_and_leaving_the_frame():
    shifts = np.stack([np.arange(8) * 4.0, np.zeros(8)], axis=1)
    clip = _translating_clip(shifts)
    boxes = _boxes()
    tracks = track_patches(clip, boxes, depth=lambda f: torch.full(f.shape[-2:], 2.0))
    right = boxes[:, 2] >= 120
    assert not bool(tracks.survivors()[right].any())  # moved 28 px to the right: out of the frame
    valid = ~torch.isnan(tracks.depth_start)
    assert bool(valid.any()) and bool((tracks.depth_start[valid] == 2.0).all())
