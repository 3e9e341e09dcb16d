"""Twin-patch mining: trajectory stage on synthetic trajectories, full pipeline on rendered videos with known
groups, the dataset's safe round trip, and bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mi_augment.core.artifact import ArtifactError
from mi_augment.video.twins import (
    MiningOptions,
    TwinPatchDataset,
    TwinPatches,
    mine_shots,
    mine_twin_patches,
    neighbor_mask,
    patch_grid,
    twins_from_trajectories,
)

# One torch thread for the all-pairs MI kernels (see tests/conftest.py: one_thread).
pytestmark = pytest.mark.usefixtures("one_thread_module", "one_thread")


# ----------------------------------------------------------------------------------------- synthetic video


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Colour texture with structure at several scales (as natural images have), values in [0, 1]."""
    x = np.zeros((h, w, 3), np.float32)
    for sigma in (1.0, 3.0, 8.0):
        n = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), sigma)
        x += (n - n.mean()) / n.std()
    return (x - x.min()) / (x.max() - x.min())


def render_scene(frames: int = 48, height: int = 224, width: int = 288, patch: int = 16, groups: int = 3,
                 objects_per_group: int = 3, step: float = 1.0, camera: bool = True, movers: bool = True,
                 margin: float = 8.0, seed: int = 0):
    """A static textured background, ``groups`` x ``objects_per_group`` textured squares (2x2 patches each,
    aligned with the patch grid in frame 0, two patches apart and at least two from the border, so they stay in
    view), the objects of one group moving together by a random walk independent of the other groups', and a
    camera that pans and shakes over everything.

    Returns the uint8 clip ``(T, 3, H, W)``, each patch's group (-1: not inside an object) and a mask of the
    purely static patches: those no object ever comes within ``margin`` pixels of.
    """
    rng = np.random.default_rng(seed)
    pad = 48
    background = _texture(rng, height + 2 * pad, width + 2 * pad)
    size = 2 * patch
    slots = [(x, y) for y in range(2 * patch, height - size - 2 * patch + 1, 4 * patch)
             for x in range(2 * patch, width - size - 2 * patch + 1, 4 * patch)]
    order = rng.permutation(len(slots))
    objects = []
    if movers:
        for g in range(groups):
            for o in range(objects_per_group):
                x, y = slots[order[g * objects_per_group + o]]
                objects.append((g, x, y, _texture(rng, size, size)))
    walk = np.cumsum(rng.normal(0, step, (groups, frames, 2)), axis=1)
    walk -= walk[:, :1]
    t = np.arange(frames)
    cam = np.zeros((frames, 2))
    if camera:
        cam = np.stack([12 * np.sin(2 * np.pi * t / frames), 8 * np.sin(4 * np.pi * t / frames + 1)], 1)
        cam += np.cumsum(rng.normal(0, 0.5, (frames, 2)), 0)
        cam -= cam[0]
    video = np.zeros((frames, height, width, 3), np.float32)
    ones = np.ones((size, size), np.float32)
    for i in range(frames):
        view = np.float32([[1, 0, pad + cam[i, 0]], [0, 1, pad + cam[i, 1]]])
        frame = cv2.warpAffine(background, view, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        for g, x, y, tex in objects:
            dx, dy = walk[g, i] - cam[i]
            place = np.float32([[1, 0, x + dx], [0, 1, y + dy]])
            sprite = cv2.warpAffine(tex, place, (width, height), flags=cv2.INTER_LINEAR)
            alpha = cv2.warpAffine(ones, place, (width, height), flags=cv2.INTER_LINEAR)[..., None]
            frame = frame * (1 - alpha) + sprite * alpha
        video[i] = frame
    ny, nx = height // patch, width // patch
    group = torch.full((ny * nx,), -1, dtype=torch.long)
    static = torch.ones(ny * nx, dtype=torch.bool)
    for g, x, y, _ in objects:
        ox, oy = x + walk[g, :, 0], y + walk[g, :, 1]
        for p in range(ny * nx):
            px, py = (p % nx) * patch, (p // nx) * patch
            if x <= px and px + patch <= x + size and y <= py and py + patch <= y + size:
                group[p] = g
            near = ((ox - margin < px + patch) & (px < ox + size + margin)
                    & (oy - margin < py + patch) & (py < oy + size + margin))
            static[p] &= not bool(near.any())
    clip = torch.from_numpy(video).permute(0, 3, 1, 2).clamp(0, 1)
    return (clip * 255).round().to(torch.uint8), group, static


def own_group_fraction(twins: torch.Tensor, group: torch.Tensor) -> float:
    moving = group >= 0
    t = twins[moving]
    ok = (t >= 0) & (group[t.clamp_min(0)] == group[moving])
    return float(ok.float().mean())


@pytest.fixture(scope="module")
def scene():
    return render_scene()


@pytest.fixture(scope="module")
def mined(scene):
    video, _, _ = scene
    return mine_twin_patches(video, 16)


# ------------------------------------------------------------------------------ trajectory -> twins stage


def _grouped_trajectories(groups=6, per_group=5, static=30, independent=0, steps=63, noise=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    shared = torch.randn(groups, steps, 2, generator=g)
    moving = shared.repeat_interleave(per_group, 0) + noise * torch.randn(groups * per_group, steps, 2, generator=g)
    still = 0.02 * torch.randn(static, steps, 2, generator=g)
    loners = torch.randn(independent, steps, 2, generator=g)
    features = torch.cat([moving, still, loners])
    labels = torch.cat([torch.arange(groups).repeat_interleave(per_group), torch.full((static + independent,), -1)])
    return features, labels


def test_stage_finds_groups_and_leaves_static_alone():
    features, labels = _grouped_trajectories()
    active = features.std(dim=1).norm(dim=1) >= 0.3
    mi, twins, p = twins_from_trajectories(features, active=active)
    assert mi.shape == (60, 60) and twins.shape == (60,) and p.shape == (60,)
    assert own_group_fraction(twins, labels) >= 0.9
    assert bool((twins[labels < 0] == -1).all())
    assert bool((p[labels < 0] == 1).all()) and float(p[labels >= 0].max()) <= 0.01
    assert bool((mi.diagonal() == 0).all())


def test_stage_independent_movers_get_few_twins():
    # every patch moves, but no two share anything: the shuffled baseline must reject (nearly) all
    features, _ = _grouped_trajectories(groups=0, static=0, independent=40)
    _, twins, p = twins_from_trajectories(features)
    assert int((twins >= 0).sum()) <= 2
    assert float(p.min()) > 0.0


def test_stage_respects_exclusions():
    features, labels = _grouped_trajectories(groups=2, per_group=2, static=0)
    exclude = torch.zeros(4, 4, dtype=torch.bool)
    exclude[0, 1] = exclude[1, 0] = True  # the only partner of 0 and 1 is forbidden
    _, twins, _ = twins_from_trajectories(features, exclude=exclude)
    assert twins[0] != 1 and twins[1] != 0
    assert twins[2] == 3 and twins[3] == 2


def test_stage_ksg_estimator_agrees():
    features, labels = _grouped_trajectories(groups=4, per_group=3, static=8)
    active = features.std(dim=1).norm(dim=1) >= 0.3
    _, twins, _ = twins_from_trajectories(features, active=active, estimator="ksg")
    assert own_group_fraction(twins, labels) >= 0.9


# ------------------------------------------------------------------------------------ full pipeline


def test_rendered_groups_found_through_camera_motion(scene, mined):
    _, group, static = scene
    assert group.ge(0).sum() == 36 and static.sum() >= 20
    assert own_group_fraction(mined.twins, group) >= 0.9
    assert int((mined.twins[static] >= 0).sum()) == 0
    twins = mined.twins[mined.twins >= 0]
    neighbours = neighbor_mask(mined.boxes)
    assert not bool(neighbours[torch.nonzero(mined.twins >= 0).flatten(), twins].any())


def test_rendered_groups_without_neighbour_exclusion(scene):
    video, group, static = scene
    result = mine_twin_patches(video, 16, exclude_neighbors=False, features=("position", "colour"))
    assert own_group_fraction(result.twins, group) >= 0.9
    assert int((result.twins[static] >= 0).sum()) == 0


def test_camera_motion_alone_makes_no_twins():
    video, _, _ = render_scene(movers=False, seed=1)
    result = mine_twin_patches(video, 16)
    assert result.num_twins == 0
    assert int(result.tracked.sum()) > result.num_patches // 2  # the patches were tracked, and found still


def test_result_fields(mined, scene):
    video = scene[0]
    p = mined.num_patches
    assert mined.boxes.shape == (p, 4) and mined.mi.shape == (p, p) and mined.centres.shape == (48, p, 2)
    assert float(mined.boxes[:, 2].max()) <= video.shape[3] and float(mined.boxes[:, 3].max()) <= video.shape[2]
    assert bool(((mined.significance >= 0) & (mined.significance <= 1)).all())
    assert mined.frame_range == (0, 48)
    assert mined.pairs().shape == (mined.num_twins, 2)
    assert mined.settings["estimator"] == "kl3" and mined.settings["features"] == ["position"]
    summary = mined.summary()
    assert summary["twins"] == mined.num_twins and summary["patches"] == p


def test_result_save_load(mined, tmp_path):
    path = mined.save(tmp_path / "twins.json")
    back = TwinPatches.load(path)
    for name in ("boxes", "mi", "twins", "significance", "active", "tracked"):
        assert torch.equal(getattr(back, name), getattr(mined, name))
    assert torch.allclose(back.centres, mined.centres, equal_nan=True)
    assert back.frame_range == mined.frame_range and back.settings == mined.settings


def test_depth_callable_reaches_the_trajectories():
    video, _, _ = render_scene(frames=16, height=160, width=224, movers=False, seed=4)
    calls = []

    def depth(frame):
        calls.append(tuple(frame.shape))
        return torch.ones(frame.shape[-2:])

    result = mine_twin_patches(video, 16, depth=depth)
    assert len(calls) == 16 and calls[0] == (3, 160, 224)
    assert result.settings["depth"] is True and result.num_twins == 0


def test_shots_split_at_hard_cut():
    a, _, _ = render_scene(frames=20, seed=2, movers=False)
    b, _, _ = render_scene(frames=20, seed=3, movers=False)
    video = torch.cat([a, b // 2])  # a different, darker scene from frame 20 on: a hard cut
    shots = mine_shots(video, 16, max_frames=16)
    assert [s.frame_range for s in shots] == [(0, 16), (20, 36)]  # 4-frame remainders are too short
    assert mine_twin_patches(video, 16, max_frames=None).frame_range == (0, 20)


def test_patch_grid_and_neighbours():
    boxes = patch_grid(50, 70, 16)
    assert boxes.shape == (3 * 4, 4)
    assert float(boxes[:, 0].min()) == 3 and float(boxes[:, 2].max()) == 67  # centred: 3 px margin each side
    n = neighbor_mask(boxes)
    assert int(n[5].sum()) == 8 and int(n[0].sum()) == 3 and not bool(n.diagonal().any())
    overlapping = patch_grid(64, 64, 32, stride=16)
    assert overlapping.shape == (9, 4) and int(neighbor_mask(overlapping)[4].sum()) == 8


# ---------------------------------------------------------------------------------------------- dataset


def test_dataset_round_trip(mined, scene, tmp_path):
    video = scene[0]
    data = TwinPatchDataset.from_result(mined, video, frames_per_pair=4, source="scene")
    assert len(data) == mined.num_twins * 4
    patch, twin = data[0]
    assert patch.shape == twin.shape == (3, 16, 16) and patch.dtype == torch.float32
    assert 0 <= float(patch.min()) and float(patch.max()) <= 1
    info = data.describe(0)
    assert info["source"] == "scene" and mined.twins[info["patch"]] == info["twin"]
    # the crop at the reference frame is the patch's box
    first = [i for i in range(len(data)) if data.describe(i)["frame"] == 0][0]
    x1, y1, x2, y2 = mined.boxes[data.describe(first)["patch"]].long().tolist()
    assert torch.equal(data.crops[first, 0], video[0, :, y1:y2, x1:x2])

    path = data.save(tmp_path / "pairs.json")
    back = TwinPatchDataset.load(path)
    assert torch.equal(back.crops, data.crops) and back.sources == data.sources
    for key in data.info:
        assert torch.equal(back.info[key], data.info[key])
    both = TwinPatchDataset.concat([data, back])
    assert len(both) == 2 * len(data) and both.sources == ["scene", "scene"]
    assert both.describe(len(data))["source"] == "scene" and int(both.info["source"][-1]) == 1

    flipped = TwinPatchDataset.load(path, transform=lambda x: x.flip(-1))
    assert torch.equal(flipped[0][0], data[0][0].flip(-1))
    loader = torch.utils.data.DataLoader(back, batch_size=5)
    a, b = next(iter(loader))
    assert a.shape == b.shape == (5, 3, 16, 16)


def test_dataset_rejects_foreign_files(tmp_path):
    pickle_file = tmp_path / "evil.pt"
    torch.save({"crops": torch.zeros(1)}, pickle_file)
    with pytest.raises(ArtifactError, match="pickle"):
        TwinPatchDataset.load(pickle_file)
    other = TwinPatches(boxes=torch.zeros(1, 4), mi=torch.zeros(1, 1), twins=torch.full((1,), -1),
                        significance=torch.ones(1), active=torch.zeros(1, dtype=torch.bool),
                        tracked=torch.zeros(1, dtype=torch.bool), centres=torch.zeros(9, 1, 2), frame_range=(0, 9))
    other.save(tmp_path / "result.json")
    with pytest.raises(ArtifactError, match="twin_patches"):
        TwinPatchDataset.load(tmp_path / "result.json")


# -------------------------------------------------------------------------------------------- bad input


def test_one_frame_video_is_rejected():
    with pytest.raises(ValueError, match="1 frame"):
        mine_twin_patches(torch.rand(1, 3, 64, 64), 16)


def test_patch_larger_than_frame_is_rejected():
    with pytest.raises(ValueError, match="larger than the frame"):
        mine_twin_patches(torch.rand(12, 3, 40, 64), 48)


def test_nan_video_is_rejected():
    video = torch.rand(12, 3, 64, 64)
    video[3, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        mine_twin_patches(video, 16)
    features = torch.randn(4, 20, 2)
    features[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        twins_from_trajectories(features)


@pytest.mark.parametrize("kwargs, match", [
    ({"features": ("position", "speed")}, "features"),
    ({"features": ()}, "features"),
    ({"estimator": "histogram"}, "estimator"),
    ({"camera_motion": "perspective"}, "camera_motion"),
    ({"alpha": 1.5}, "alpha"),
    ({"min_motion": float("nan")}, "min_motion"),
    ({"stride": 0}, "stride"),
    ({"depth": 3}, "depth"),
])
def test_bad_options_are_rejected(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        MiningOptions(**kwargs)


def test_too_short_trajectories_are_rejected():
    with pytest.raises(ValueError, match="time steps"):
        twins_from_trajectories(torch.randn(5, 4, 2))
