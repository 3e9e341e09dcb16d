"""MIPairTransform in torchvision v2 pipelines with targets: each view gets its own boxes, masks and keypoints,
cropped, resized, flipped and moved with the view (checked against what the view's pixels show)."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from mi_augment.perturbations.motion import MotionModel
from mi_augment.transforms import MIPairTransform


def _scene(seed: int):
    """A dark image with one bright square; its box, mask and centre as targets."""
    g = torch.Generator().manual_seed(seed)
    h, w = 64, 80
    x1, y1 = int(torch.randint(14, 40, (), generator=g)), int(torch.randint(14, 30, (), generator=g))
    side = 12
    image = torch.full((3, h, w), 0.1)
    image[:, y1:y1 + side, x1:x1 + side] = 0.9
    mask = torch.zeros(1, h, w, dtype=torch.uint8)
    mask[:, y1:y1 + side, x1:x1 + side] = 1
    boxes = tv_tensors.BoundingBoxes([[x1, y1, x1 + side, y1 + side]], format="XYXY", canvas_size=(h, w))
    centre = tv_tensors.KeyPoints([[x1 + (side - 1) / 2, y1 + (side - 1) / 2]], canvas_size=(h, w))
    return tv_tensors.Image(image), {"boxes": boxes, "masks": tv_tensors.Mask(mask), "centre": centre, "label": 3}


@pytest.mark.parametrize("motion", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_targets_follow_each_view(seed, motion):
    model = MotionModel.uniform(max_translation=0.05, max_rotation=8.0) if motion else False
    pair = MIPairTransform(32, scale=(0.5, 1.0), illumination=False, motion=model, policy="random")
    image, target = _scene(seed)
    views = pair(image, target, generator=torch.Generator().manual_seed(seed))
    assert len(views) == 2
    for view, moved in views:
        assert isinstance(view, tv_tensors.Image) and view.shape == (3, 32, 32)
        assert moved["label"] == 3 and tuple(moved["boxes"].canvas_size) == (32, 32)
        bright = view[0] > 0.5
        if int(bright.sum()) < 4:
            continue  # the square left this view
        ys, xs = torch.nonzero(bright, as_tuple=True)
        x1, y1, x2, y2 = moved["boxes"][0].tolist()
        # every bright pixel lies inside the moved box (pixel edges), within a pixel of resampling blur
        assert xs.min() >= x1 - 1.5 and xs.max() + 1 <= x2 + 1.5 and ys.min() >= y1 - 1.5 and ys.max() + 1 <= y2 + 1.5
        if not motion:  # and the box is no larger than the square (a rotation enlarges the enclosing box)
            assert (x2 - x1) <= (xs.max() - xs.min() + 1) + 3 and (y2 - y1) <= (ys.max() - ys.min() + 1) + 3
        mask = moved["masks"][0].bool()
        assert isinstance(moved["masks"], tv_tensors.Mask) and mask.shape == (32, 32)
        iou = (mask & bright).sum() / (mask | bright).sum()
        assert iou > 0.75
        cx, cy = moved["centre"][0].tolist()
        if 1 <= cx <= 30 and 1 <= cy <= 30:
            assert bool(bright[round(cy), round(cx)])  # the centre keypoint sits on the square


def test_pair_inside_v2_compose_with_a_target_dict():
    image, target = _scene(0)
    pipe = v2.Compose([MIPairTransform(24, illumination=False, motion=False)])
    views = pipe(image, target)
    assert len(views) == 2 and all(isinstance(v[0], tv_tensors.Image) for v in views)
    dicts = MIPairTransform(24, illumination=False, motion=False)({"image": image, **target})
    assert len(dicts) == 2 and all(set(d) == {"image", "boxes", "masks", "centre", "label"} for d in dicts)
    assert all(d["image"].shape == (3, 24, 24) and tuple(d["boxes"].canvas_size) == (24, 24) for d in dicts)


def test_target_errors_are_named():
    image, target = _scene(0)
    pair = MIPairTransform(24, illumination=False, motion=False)
    with pytest.raises(ValueError, match="ambiguous"):
        pair(tv_tensors.Image(image.expand(2, -1, -1, -1)), target)
    wrong = tv_tensors.BoundingBoxes([[0, 0, 4, 4]], format="XYXY", canvas_size=(10, 10))
    with pytest.raises(ValueError, match="canvas"):
        pair(image, {"boxes": wrong})
    with pytest.raises(TypeError, match="keyword"):
        pair(image, torch.Generator())
