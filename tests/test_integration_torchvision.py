"""NaturalMotion / NaturalIllumination inside ``torchvision.transforms.v2`` pipelines: targets in pytrees move
with the image (checked by rendering them into the image), tv_tensors types and metadata survive."""

import runpy
from pathlib import Path

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from mi_augment.core.params import GatedParams
from mi_augment.perturbations.motion import MotionModel
from mi_augment.transforms import NaturalIllumination, NaturalMotion

H, W = 48, 64
ROOT = Path(__file__).resolve().parents[1]


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _strong_motion(blur=0.0, padding_mode="reflection"):
    """Large rotations, zooms and shifts, so misplacement shows. Point tests use zero padding: with reflection,
    a zoom-out also shows mirrored copies of a rendered dot."""
    return NaturalMotion(MotionModel.uniform(max_translation=0.08, max_rotation=25.0, scale=(0.8, 1.25),
                                             max_blur=blur, padding_mode=padding_mode))


def _dot(x, y):
    img = torch.zeros(3, H, W)
    img[:, y, x] = 1.0
    return tv_tensors.Image(img)


def _centroid(img):
    w = img.as_subclass(torch.Tensor).mean(0)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                            indexing="ij")
    return float((w * xs).sum() / w.sum()), float((w * ys).sum() / w.sum())


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("blur", [0.0, 0.02])
def test_moved_box_holds_its_rendered_corners(seed, blur):
    """Each corner pixel of the box, rendered alone and moved with the same params, lands inside the moved
    box (within 1 px), and the box is no larger than those corners need (its edges within 1.5 px of them)."""
    t = _strong_motion(blur, padding_mode="zeros")
    x1, y1, x2, y2 = 20, 16, 41, 31  # pixel-edge XYXY: corner pixels are columns 20 and 40, rows 16 and 30
    boxes = tv_tensors.BoundingBoxes([[x1, y1, x2, y2]], format="XYXY", canvas_size=(H, W), dtype=torch.float32)
    (_, moved), params = t(_dot(x1, y1), boxes, generator=_gen(seed), return_params=True)
    assert isinstance(moved, tv_tensors.BoundingBoxes) and moved.format == tv_tensors.BoundingBoxFormat.XYXY
    corners = [_centroid(t(_dot(cx, cy), params=params)) for cx in (x1, x2 - 1) for cy in (y1, y2 - 1)]
    bx1, by1, bx2, by2 = moved[0].tolist()
    for cx, cy in corners:  # pixel centre (cx, cy) covers [cx - 0.5, cx + 0.5]
        assert bx1 - 1 <= cx - 0.5 and cx + 0.5 <= bx2 + 1 and by1 - 1 <= cy - 0.5 and cy + 0.5 <= by2 + 1
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    assert abs(bx1 - (min(xs) - 0.5)) < 1.5 and abs(bx2 - (max(xs) + 0.5)) < 1.5
    assert abs(by1 - (min(ys) - 0.5)) < 1.5 and abs(by2 - (max(ys) + 0.5)) < 1.5


@pytest.mark.parametrize("seed", range(4))
def test_keypoints_follow_the_rendered_point(seed):
    t = _strong_motion(blur=0.02, padding_mode="zeros")  # a line blur is symmetric, so the centroid stays on the warped point
    points = tv_tensors.KeyPoints([[22.0, 19.0]], canvas_size=(H, W))
    (out, moved), _ = t(_dot(22, 19), points, generator=_gen(seed), return_params=True)
    cx, cy = _centroid(out)
    assert isinstance(moved, tv_tensors.KeyPoints) and tuple(moved.canvas_size) == (H, W)
    assert abs(float(moved[0, 0]) - cx) < 0.5 and abs(float(moved[0, 1]) - cy) < 0.5


@pytest.mark.parametrize("seed", range(4))
def test_mask_stays_aligned_with_the_image(seed):
    """A mask and the same shape drawn into the image are warped alike: IoU of the warped mask with the
    thresholded warped image is near 1 (only the blurred, interpolated rim may differ)."""
    t = _strong_motion(blur=0.01)
    shape = torch.zeros(H, W, dtype=torch.bool)
    shape[10:30, 15:45] = True
    shape[25:40, 5:25] = True
    image = tv_tensors.Image(shape.float().expand(3, H, W).clone())
    mask = tv_tensors.Mask(shape[None].to(torch.uint8))
    out, moved = t(image, mask, generator=_gen(seed))
    assert isinstance(moved, tv_tensors.Mask) and moved.dtype == torch.uint8 and moved.shape == mask.shape
    drawn = out.mean(0) > 0.5
    warped = moved[0].bool()
    iou = float((drawn & warped).sum()) / float((drawn | warped).sum())
    assert iou > 0.93
    assert not torch.equal(warped, shape)  # it did move


def test_compose_with_image_and_target_dict_round_trips_types():
    pipe = v2.Compose([v2.ToDtype(torch.float32, scale=True), NaturalMotion(), NaturalIllumination(),
                       v2.RandomHorizontalFlip(p=1.0)])
    image = tv_tensors.Image(torch.randint(0, 256, (3, H, W), dtype=torch.uint8))
    target = {
        "boxes": tv_tensors.BoundingBoxes([[4, 5, 30, 40], [10, 10, 20, 20]], format="XYWH", canvas_size=(H, W)),
        "masks": tv_tensors.Mask(torch.zeros(2, H, W, dtype=torch.uint8)),
        "keypoints": tv_tensors.KeyPoints([[3.0, 4.0], [30.0, 20.0]], canvas_size=(H, W)),
        "labels": torch.tensor([1, 7]),
        "name": "frame_0001",
        "index": 3,
    }
    out_image, out_target = pipe(image, target)
    assert type(out_image) is tv_tensors.Image and out_image.dtype == torch.float32
    assert out_image.shape == (3, H, W)
    assert type(out_target["boxes"]) is tv_tensors.BoundingBoxes
    assert out_target["boxes"].format == tv_tensors.BoundingBoxFormat.XYWH
    assert tuple(out_target["boxes"].canvas_size) == (H, W)
    assert type(out_target["masks"]) is tv_tensors.Mask and out_target["masks"].shape == (2, H, W)
    assert type(out_target["keypoints"]) is tv_tensors.KeyPoints
    assert torch.equal(out_target["labels"], target["labels"])
    assert out_target["name"] == "frame_0001" and out_target["index"] == 3


def test_photometric_transform_passes_targets_untouched():
    image = tv_tensors.Image(torch.rand(3, H, W))
    boxes = tv_tensors.BoundingBoxes([[4.5, 5.0, 30.0, 40.0]], format="XYXY", canvas_size=(H, W))
    mask = tv_tensors.Mask(torch.ones(1, H, W, dtype=torch.bool))
    out_image, (out_boxes, out_mask) = NaturalIllumination(strength=3.0)(image, (boxes, mask), generator=_gen(0))
    assert not torch.equal(out_image, image)
    assert torch.equal(out_boxes, boxes) and torch.equal(out_mask, mask)


def test_params_replay_through_a_pytree_and_p0_leaves_targets():
    t = _strong_motion()
    image = tv_tensors.Image(torch.rand(3, H, W))
    boxes = tv_tensors.BoundingBoxes([[10, 10, 30, 30]], format="CXCYWH", canvas_size=(H, W), dtype=torch.float32)
    first, params = t({"image": image, "boxes": boxes}, generator=_gen(5), return_params=True)
    assert isinstance(params, GatedParams)
    again = t({"image": image, "boxes": boxes}, params=params)
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["boxes"], again["boxes"])
    assert not torch.equal(first["boxes"], boxes)
    off = _strong_motion()
    off.p = 0.0
    out = off({"image": image, "boxes": boxes}, generator=_gen(5))
    assert torch.equal(out["image"], image) and torch.equal(out["boxes"], boxes)


def test_rotated_boxes_are_moved_exactly():
    t = _strong_motion()
    boxes = tv_tensors.BoundingBoxes([[32.0, 24.0, 16.0, 8.0, 0.0]], format="CXCYWHR", canvas_size=(H, W))
    (_, moved), params = t(torch.rand(3, H, W), boxes, generator=_gen(2), return_params=True)
    scale = float(params.params.log_scale.exp())
    assert moved.format == tv_tensors.BoundingBoxFormat.CXCYWHR
    assert abs(float(moved[0, 2]) - 16.0 * scale) < 1e-3 and abs(float(moved[0, 3]) - 8.0 * scale) < 1e-3


def test_batched_masks_move_per_sample():
    t = _strong_motion()
    shape = torch.zeros(2, 1, H, W)
    shape[:, :, 12:36, 16:48] = 1.0
    out, moved = t(shape.expand(2, 3, H, W).clone(), tv_tensors.Mask(shape.bool()), generator=_gen(1))
    for i in range(2):
        drawn, warped = out[i].mean(0) > 0.5, moved[i, 0]
        assert float((drawn & warped).sum()) / float((drawn | warped).sum()) > 0.93


def test_target_errors_name_the_problem():
    t = _strong_motion()
    boxes = tv_tensors.BoundingBoxes([[1, 1, 5, 5]], format="XYXY", canvas_size=(H, W))
    with pytest.raises(ValueError, match="batch of 2 images"):
        t(torch.rand(2, 3, H, W), boxes)
    with pytest.raises(ValueError, match="canvas"):
        t(torch.rand(3, H + 1, W), boxes)
    with pytest.raises(TypeError, match="no image"):
        t({"boxes": boxes, "labels": [1]})
    with pytest.raises(TypeError, match="params must be the GatedParams"):
        t(torch.rand(3, H, W), params={"boxes": boxes})
    x = torch.rand(3, H, W)
    _, params = t(x, return_params=True)
    with pytest.raises(TypeError, match="params as a keyword"):
        t(x, params)
    with pytest.raises(TypeError, match="generator as a keyword"):
        t(x, None, torch.Generator())


def test_example_script_runs():
    runpy.run_path(str(ROOT / "docs" / "examples" / "torchvision_v2_pipeline.py"), run_name="__main__")
