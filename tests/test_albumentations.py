"""mi_augment.adapters.albumentations: real albumentations transforms inside ``A.Compose``; masks, bboxes and
keypoints stay aligned with the image (checked by rendering a box's corners as bright pixels); seeds are
reproducible and distinct per DataLoader worker under fork and spawn."""

from __future__ import annotations

import multiprocessing
import pickle

import numpy as np
import pytest
import torch

A = pytest.importorskip("albumentations")

from mi_augment.adapters.albumentations import MIPair, NaturalIllumination, NaturalMotion  # noqa: E402
from mi_augment.perturbations import IlluminationModel, MotionModel  # noqa: E402
from mi_augment.transforms import MIPairTransform  # noqa: E402

BOX = (20, 24, 44, 40)  # x1, y1, x2, y2 in pixels of a 64 x 64 image
# a strong motion without blur, so a corner pixel stays one bright blob
STRONG = MotionModel.uniform(max_translation=0.08, max_rotation=25.0, scale=(0.8, 1.25), max_blur=0.0)
JITTER = IlluminationModel.uniform(0.4, 0.4, 0.4, 0.1)


def _image(seed: int = 0, size: int = 48) -> np.ndarray:
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)


def _corners_image() -> tuple[np.ndarray, np.ndarray]:
    """A black 64 x 64 image with the four corner pixels of BOX bright, and those corners as keypoints."""
    img = np.zeros((64, 64, 3), np.uint8)
    x1, y1, x2, y2 = BOX
    corners = np.array([[x1, y1], [x2 - 1, y1], [x1, y2 - 1], [x2 - 1, y2 - 1]])
    img[corners[:, 1], corners[:, 0]] = 255
    return img, corners.astype(np.float32)


def _bright_inside(image: np.ndarray, box, tolerance: float) -> None:
    ys, xs = np.nonzero(image.max(axis=-1) > 10)
    assert len(xs) > 0, "the corner pixels vanished"
    x1, y1, x2, y2 = box
    assert xs.min() + 0.5 >= x1 - tolerance and xs.max() + 0.5 <= x2 + tolerance, (xs.min(), xs.max(), box)
    assert ys.min() + 0.5 >= y1 - tolerance and ys.max() + 0.5 <= y2 + tolerance, (ys.min(), ys.max(), box)


def _near_bright(image: np.ndarray, point, radius: int = 1) -> bool:
    x, y = int(round(point[0])), int(round(point[1]))
    h, w = image.shape[:2]
    patch = image[max(0, y - radius):min(h, y + radius + 1), max(0, x - radius):min(w, x + radius + 1)]
    return patch.size > 0 and patch.max() > 10


def _pipeline(transforms, seed=0):
    return A.Compose(transforms, seed=seed, bbox_params=A.BboxParams("pascal_voc", label_fields=["labels"]),
                     keypoint_params=A.KeypointParams("xy", label_fields=["names"], remove_invisible=False))


def _pair(**kwargs) -> MIPairTransform:
    options = {"illumination": False, "motion": False, "policy": "random", "scale": (0.3, 1.0)}
    options.update(kwargs)
    return MIPairTransform(32, **options)


# ------------------------------------------------------------------------------------------ inside A.Compose
def test_transforms_are_albumentations_transforms_inside_compose():
    from albumentations.core.transforms_interface import DualTransform, ImageOnlyTransform

    assert isinstance(NaturalIllumination(), ImageOnlyTransform)
    assert isinstance(NaturalMotion(), DualTransform) and isinstance(MIPair(_pair()), DualTransform)
    pipe = A.Compose([A.HorizontalFlip(p=0.5), NaturalIllumination(), NaturalMotion(), MIPair(_pair())], seed=1)
    img = _image()
    out = pipe(image=img)
    assert out["image"].shape == (32, 32, 3) and out["image"].dtype == np.uint8
    assert len(out["views"]) == 2 and out["views"][0] is out["image"] and "view_targets" not in out
    assert not np.array_equal(out["views"][0], out["views"][1])


@pytest.mark.parametrize("transform", ["illumination", "motion"])
def test_single_view_transforms_keep_shape_and_dtype(transform):
    t = NaturalIllumination(JITTER) if transform == "illumination" else NaturalMotion(STRONG)
    for img in (_image(), _image()[:, :, 0], _image().astype(np.float32) / 255):
        out = A.Compose([t], seed=0)(image=img)["image"]
        assert out.shape == img.shape and out.dtype == img.dtype
        assert not np.array_equal(out, img)


def test_same_seed_same_draws_and_set_random_seed():
    img = _image()
    make = lambda seed: A.Compose([NaturalIllumination(), NaturalMotion(), MIPair(_pair())], seed=seed)  # noqa: E731
    a, b, c = make(5), make(5), make(6)
    first = [a(image=img)["views"] for _ in range(3)]
    again = [b(image=img)["views"] for _ in range(3)]
    assert all(np.array_equal(x, y) for f, g in zip(first, again) for x, y in zip(f, g))
    assert not np.array_equal(c(image=img)["views"][1], first[0][1])
    a.set_random_seed(5)
    assert all(np.array_equal(x, y) for x, y in zip(a(image=img)["views"], first[0]))


def test_pickle_round_trip_continues_the_same_draws():
    t = NaturalIllumination(seed=3)
    img = _image()
    t(image=img)
    clone = pickle.loads(pickle.dumps(t))
    assert np.array_equal(clone(image=img)["image"], t(image=img)["image"])


def test_probability_gate_draws_from_the_seeded_generator():
    img = _image()
    runs = [[np.array_equal(NaturalIllumination(p=0.5, seed=s)(image=img)["image"], img) for s in range(20)]
            for _ in range(2)]
    assert runs[0] == runs[1] and 0 < sum(runs[0]) < 20


# ------------------------------------------------------------------------------------------ alignment
@pytest.mark.parametrize("seed", range(6))
def test_motion_moves_boxes_keypoints_and_masks_with_the_image(seed):
    img, corners = _corners_image()
    mask = np.zeros((64, 64), np.uint8)
    mask[BOX[1]:BOX[3], BOX[0]:BOX[2]] = 1
    pipe = _pipeline([NaturalMotion(STRONG)], seed=seed)
    out = pipe(image=img, mask=mask, bboxes=[BOX], labels=["object"], keypoints=corners, names=list("abcd"))
    assert out["labels"] == ["object"] and out["names"] == list("abcd")
    (box,) = out["bboxes"]
    _bright_inside(out["image"], box, tolerance=1.0)
    assert all(_near_bright(out["image"], p) for p in out["keypoints"])
    # the bright corners sit on the mask's corners: every bright pixel is on (or next to) the mask
    ys, xs = np.nonzero(out["image"].max(-1) > 100)
    near = np.zeros_like(out["mask"], bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near |= np.roll(np.roll(out["mask"].astype(bool), dy, 0), dx, 1)
    assert near[ys, xs].all()


def test_motion_mask_matches_the_warped_image_of_the_mask():
    mask = np.zeros((64, 64), np.uint8)
    mask[BOX[1]:BOX[3], BOX[0]:BOX[2]] = 1
    out = A.Compose([NaturalMotion(STRONG)], seed=2)(image=np.repeat(mask[:, :, None] * 255, 3, 2), mask=mask)
    agree = (out["image"][:, :, 0] > 127) == out["mask"].astype(bool)
    assert agree.mean() > 0.97 and out["mask"].dtype == np.uint8 and set(np.unique(out["mask"])) <= {0, 1}


@pytest.mark.parametrize("seed", range(6))
def test_pair_views_carry_their_own_cropped_targets(seed):
    img, corners = _corners_image()
    mask = np.zeros((64, 64), np.uint8)
    mask[BOX[1]:BOX[3], BOX[0]:BOX[2]] = 1
    pipe = _pipeline([MIPair(_pair(n_views=3, scale=(0.5, 1.0)))], seed=seed)
    out = pipe(image=img, mask=mask, bboxes=[BOX], labels=["object"], keypoints=corners, names=list("abcd"))
    views, targets = out["views"], out["view_targets"]
    assert len(views) == len(targets) == 3
    assert np.array_equal(targets[0]["mask"], out["mask"]) and targets[0]["bboxes"] == out["bboxes"]
    for view, target in zip(views, targets):
        assert target["mask"].shape == view.shape[:2]
        if len(target["bboxes"]) == 0:  # the crop missed the box: no bright corner in view either
            assert view.max() <= 10 or not target["mask"].any()
            continue
        assert target["labels"] == ["object"]
        # each view upsamples by at most 32 / (0.5 * 64) ~ 1.4 px per input pixel; bilinear bleeds half of that
        _bright_inside(view, target["bboxes"][0], tolerance=1.5)
        kept = [p for p in target["keypoints"] if 0 <= p[0] < 32 and 0 <= p[1] < 32]
        assert all(_near_bright(view, p, radius=2) for p in kept)
        ys, xs = np.nonzero(view.max(-1) > 100)
        grown = target["mask"].astype(bool)
        for axis in (0, 1):
            grown = grown | np.roll(grown, 1, axis) | np.roll(grown, -1, axis)
        assert grown[ys, xs].all()


def test_pair_flips_targets_with_the_view():
    img, corners = _corners_image()
    flipped = [_pipeline([MIPair(_pair(flip=1.0, scale=(1.0, 1.0), ratio=(1.0, 1.0)))], seed=s) for s in range(2)]
    out = flipped[0](image=img, bboxes=[BOX], labels=[0], keypoints=corners, names=list("abcd"))
    # the whole image resized 64 -> 32 and mirrored: x1' = 32 - x2 / 2
    x1, y1, x2, y2 = out["bboxes"][0]
    assert (x1, y1, x2, y2) == pytest.approx((32 - BOX[2] / 2, BOX[1] / 2, 32 - BOX[0] / 2, BOX[3] / 2), abs=1e-4)
    _bright_inside(out["image"], out["bboxes"][0], tolerance=1.0)


def test_pair_refuses_targets_it_cannot_move():
    img = _image()
    with pytest.raises(ValueError, match="motion=None"):
        A.Compose([MIPair(_pair(motion=STRONG))])(image=img, mask=np.zeros(img.shape[:2], np.uint8))
    out = A.Compose([MIPair(_pair(motion=STRONG))])(image=img)  # image only: fine
    assert len(out["views"]) == 2
    with pytest.raises(ValueError, match="not both"):
        MIPair(_pair(), size=20)
    with pytest.raises(TypeError, match="MIPairTransform"):
        MIPair(transform="simclr")


def test_bad_images_are_refused_with_the_argument_named():
    t = NaturalIllumination()
    with pytest.raises(ValueError, match=r"image: expected floats in \[0, 1\]; got range \[2, 2\]"):
        t(image=np.full((8, 8, 3), 2.0, np.float32))
    with pytest.raises(ValueError, match="image contains NaN or inf"):  # the core transforms' messages
        MIPair(size=8)(image=np.full((8, 8, 3), np.nan, np.float32))
    # float noise just outside [0, 1] is clamped, as by the core transforms
    assert t(image=np.full((8, 8, 3), 1.0 + 1e-4, np.float32))["image"].max() <= 1.0
    with pytest.raises(TypeError, match="image must be uint8 or float"):
        t(image=np.zeros((8, 8, 3), np.int32))
    with pytest.raises(TypeError, match="seed must be an int"):
        NaturalMotion(seed="1")


def test_used_alone_boxes_are_clipped_to_the_image():
    img, _ = _corners_image()
    out = NaturalMotion(MotionModel.uniform(max_translation=0.4, max_blur=0.0), seed=0)(
        image=img, bboxes=np.array([[0.0, 0.0, 1.0, 1.0]]))
    assert len(out["bboxes"]) == 1 and (out["bboxes"][:, :4] >= 0).all() and (out["bboxes"][:, :4] <= 1).all()


# ------------------------------------------------------------------------------------------ DataLoader workers
class _Views(torch.utils.data.Dataset):
    """The same image every time, through one seeded pipeline: any difference between items is the RNG."""

    def __init__(self, n: int = 8):
        self.n = n
        self.image = _image(size=24)
        self.pipe = A.Compose([NaturalIllumination(JITTER),
                               MIPair(MIPairTransform(16, illumination=False, motion=False, policy="random"))], seed=7)
        self.pipe(image=self.image)  # the generators exist before the loader pickles or forks the dataset

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        out = self.pipe(image=self.image)
        return torch.from_numpy(np.stack(out["views"])), torch.utils.data.get_worker_info().id


def _draw(context: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    loader = torch.utils.data.DataLoader(_Views(), batch_size=2, num_workers=2, multiprocessing_context=context,
                                         generator=torch.Generator().manual_seed(seed))
    views, workers = zip(*loader)
    return torch.cat(views), torch.cat(workers)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_workers_draw_differently_and_reproducibly(context):
    if context not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {context} start method here")
    views, workers = _draw(context)
    assert set(workers.tolist()) == {0, 1}
    flat = views.flatten(1)
    # every item distinct: workers do not repeat each other's draws
    assert len({tuple(row.tolist()) for row in flat}) == len(flat)
    first0, first1 = flat[workers == 0][0], flat[workers == 1][0]
    assert not torch.equal(first0, first1)
    if context == "fork":  # the same loader seed gives the same draws per worker (spawn: same code path, slower)
        again, _ = _draw(context)
        assert torch.equal(views, again)
        other, _ = _draw(context, seed=1)
        assert not torch.equal(views, other)


def test_example_script_runs(capsys):
    """docs/examples/albumentations_pipeline.py (its module part; the DataLoader part runs as a script)."""
    import runpy
    from pathlib import Path

    runpy.run_path(str(Path(__file__).resolve().parents[1] / "docs" / "examples" / "albumentations_pipeline.py"),
                   run_name="example")
    printed = capsys.readouterr().out
    assert "view 0: image (48, 48, 3) uint8" in printed and "view 1:" in printed


def test_pair_normalised_views_come_back_as_float_not_clamped():
    """Issue 24 item 1 at this edge: normalised views of a uint8 image are float32 with their negative half."""
    out = MIPair(size=16, normalize=True, seed=0)(image=_image())
    for view in out["views"]:
        assert view.dtype == np.float32 and view.shape == (16, 16, 3)
        assert view.min() < 0.0  # the negative half a uint8 view would lose
    assert MIPair(size=16, seed=0)(image=_image())["image"].dtype == np.uint8
