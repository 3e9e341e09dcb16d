"""mi_augment's transforms as Kornia augmentations (mi_augment.adapters.kornia) inside
``kornia.augmentation.AugmentationSequential``: targets move with the image, params replay, Kornia's gates."""

import runpy
from pathlib import Path

import kornia.augmentation as K
import pytest
import torch

from mi_augment.adapters.kornia import NaturalIllumination, NaturalMotion
from mi_augment.perturbations.motion import MotionModel

H, W = 48, 64
ROOT = Path(__file__).resolve().parents[1]
KEYS = ["input", "bbox_xyxy", "mask", "keypoints"]


def _strong(blur=0.0, padding_mode="reflection", **kwargs):
    """Large motions, so misplacement shows. Point tests use zero padding: with reflection, a zoom-out also
    shows mirrored copies of a rendered dot."""
    model = MotionModel.uniform(max_translation=0.08, max_rotation=25.0, scale=(0.8, 1.25), max_blur=blur,
                                padding_mode=padding_mode)
    return NaturalMotion(model, **kwargs)


def _dots(points, b):
    """A (b, 3, H, W) batch, black except one bright pixel per row at integer ``points[i]``."""
    img = torch.zeros(b, 3, H, W)
    for i, (x, y) in enumerate(points):
        img[i, :, y, x] = 1.0
    return img


def _centroids(img):
    w = img.mean(1)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                            indexing="ij")
    total = w.sum((1, 2))
    return torch.stack([(w * xs).sum((1, 2)) / total, (w * ys).sum((1, 2)) / total], 1)


def _inputs(b=4):
    boxes = torch.tensor([[[20.0, 16.0, 41.0, 31.0]]]).repeat(b, 1, 1)  # Kornia xyxy: x2, y2 exclusive
    mask = torch.zeros(b, 1, H, W)
    mask[:, :, 10:30, 15:45] = 1.0
    points = torch.tensor([[[22.0, 19.0]]]).repeat(b, 1, 1)
    return boxes, mask, points


def test_boxes_keypoints_and_masks_follow_the_image():
    """Every corner pixel of the box, rendered and pushed through the replayed sequential, lands inside the
    moved box (1 px); the keypoint sits on its rendered pixel; the mask matches the rendered shape."""
    torch.manual_seed(0)
    b = 6
    seq = K.AugmentationSequential(_strong(blur=0.02, padding_mode="zeros"), NaturalIllumination(), data_keys=KEYS)
    boxes, mask, points = _inputs(b)
    img = mask.expand(b, 3, H, W).clone()
    out, out_boxes, out_mask, out_points = seq(img, boxes, mask, points)
    params = seq._params
    drawn = out.mean(1, keepdim=True) > 0.5
    iou = (drawn & out_mask.bool()).sum((1, 2, 3)).float() / (drawn | out_mask.bool()).sum((1, 2, 3)).float()
    assert bool((iou > 0.9).all())
    assert not torch.equal(out_mask, mask)

    x1, y1, x2, y2 = (int(v) for v in boxes[0, 0])
    for cx, cy in [(x1, y1), (x2 - 1, y1), (x1, y2 - 1), (x2 - 1, y2 - 1)]:
        moved = _centroids(seq(_dots([(cx, cy)] * b, b), boxes, mask, points, params=params)[0])
        bx1, by1, bx2, by2 = out_boxes[:, 0].unbind(1)  # pixel centres bx1 .. bx2 - 1
        assert bool(((moved[:, 0] >= bx1 - 1) & (moved[:, 0] <= bx2) & (moved[:, 1] >= by1 - 1)
                     & (moved[:, 1] <= by2)).all())
    rendered = _centroids(seq(_dots([(22, 19)] * b, b), boxes, mask, points, params=params)[0])
    assert torch.allclose(rendered, out_points[:, 0], atol=0.5)


def test_params_replay_reproduces_every_output():
    torch.manual_seed(1)
    seq = K.AugmentationSequential(_strong(blur=0.02), NaturalIllumination(strength=2.0), data_keys=KEYS)
    img = torch.rand(4, 3, H, W)
    first = seq(img, *_inputs())
    again = seq(img, *_inputs(), params=seq._params)
    fresh = seq(img, *_inputs())
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    assert not torch.equal(first[0], fresh[0])


def test_global_seed_controls_the_draws():
    aug = NaturalIllumination(strength=2.0)
    img = torch.rand(3, 3, H, W)
    torch.manual_seed(7)
    a = aug(img)
    torch.manual_seed(7)
    b = aug(img)
    torch.manual_seed(8)
    c = aug(img)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("cls", [NaturalIllumination, NaturalMotion])
def test_same_on_batch_shares_one_draw(cls):
    torch.manual_seed(2)
    aug = cls(strength=3.0, same_on_batch=True)
    img = torch.rand(1, 3, H, W).repeat(5, 1, 1, 1)
    out = aug(img)
    for key, value in aug._params.items():
        if key != "forward_input_shape":
            assert torch.equal(value, value[:1].expand_as(value)), key
    assert torch.allclose(out, out[:1].expand_as(out), atol=1e-6)
    assert not torch.equal(out, img)


def test_p_gates_samples_and_their_targets():
    torch.manual_seed(3)
    b = 32
    seq = K.AugmentationSequential(_strong(p=0.5), data_keys=KEYS)
    img = torch.rand(b, 3, H, W)
    boxes, mask, points = _inputs(b)
    out, out_boxes, out_mask, out_points = seq(img, boxes, mask, points)
    applied = seq._params[0].data["batch_prob"] > 0.5
    assert 4 < int(applied.sum()) < 28
    skip = ~applied
    assert torch.equal(out[skip], img[skip]) and torch.equal(out_points[skip], points[skip])
    assert torch.equal(out_mask[skip], mask[skip]) and torch.allclose(out_boxes[skip], boxes[skip])
    assert not torch.equal(out_points[applied], points[applied])


def test_p0_and_p_batch0_are_identity():
    img = torch.rand(3, 3, H, W)
    assert torch.equal(_strong(p=0.0)(img), img)
    assert torch.equal(_strong(p_batch=0.0)(img), img)
    assert torch.equal(NaturalIllumination(p=0.0)(img), img)


@pytest.mark.parametrize("cls", [NaturalIllumination, NaturalMotion])
def test_keepdim_keeps_an_unbatched_shape(cls):
    img = torch.rand(3, H, W)
    assert cls(keepdim=True)(img).shape == (3, H, W)
    assert cls(keepdim=False)(img).shape == (1, 3, H, W)


def test_inverse_undoes_the_motion():
    torch.manual_seed(4)
    seq = K.AugmentationSequential(_strong(), NaturalIllumination(p=0.0), data_keys=KEYS)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    img = (0.5 + 0.4 * torch.sin(6 * xx + 4 * yy)).expand(4, 3, H, W).clone()
    boxes, mask, points = _inputs()
    out = seq(img, boxes, mask, points)
    back_img, _, back_mask, back_points = seq.inverse(*out)
    assert torch.allclose(back_points, points, atol=1e-3)
    inner = (slice(None), slice(None), slice(12, H - 12), slice(16, W - 16))
    assert float((back_img - img)[inner].abs().max()) < 0.05
    assert float((back_mask != mask)[inner].float().mean()) < 0.03


def test_illumination_passes_targets_untouched():
    torch.manual_seed(5)
    seq = K.AugmentationSequential(NaturalIllumination(strength=3.0), data_keys=KEYS)
    img = torch.rand(2, 3, H, W)
    boxes, mask, points = _inputs(2)
    out, out_boxes, out_mask, out_points = seq(img, boxes, mask, points)
    assert not torch.equal(out, img)
    assert torch.allclose(out_boxes, boxes) and torch.equal(out_mask, mask) and torch.equal(out_points, points)


def test_pickle_round_trip_draws_the_same():
    import pickle

    aug = K.AugmentationSequential(NaturalMotion(strength=3.0), NaturalIllumination(), data_keys=["input"])
    copy = pickle.loads(pickle.dumps(aug))
    img = torch.rand(2, 3, H, W)
    torch.manual_seed(9)
    a = aug(img)
    torch.manual_seed(9)
    assert torch.equal(a, copy(img))


def test_replay_with_missing_fields_names_them():
    aug = NaturalMotion()
    aug(torch.rand(2, 3, H, W))
    broken = {k: v for k, v in aug._params.items() if k != "rotation"}
    with pytest.raises(KeyError, match="rotation"):
        aug(torch.rand(2, 3, H, W), params=broken)


def test_example_script_runs():
    runpy.run_path(str(ROOT / "docs" / "examples" / "kornia_pipeline.py"), run_name="__main__")


@pytest.mark.parametrize("cls", [NaturalIllumination, NaturalMotion])
@pytest.mark.parametrize("bad,message", [(torch.rand(2, 3, 16, 16) * 255, "divide by 255"),
                                         (torch.full((2, 3, 16, 16), float("nan")), "NaN or inf"),
                                         (torch.rand(2, 3, 16, 16) - 0.5, "normalised")])
def test_out_of_range_and_nan_raise_as_in_the_core_transforms(cls, bad, message):
    """Issue 24 item 2: the adapters refuse what the core transforms refuse, with the same message, also at
    p = 0 and inside a container."""
    from mi_augment import transforms as core

    with pytest.raises(ValueError, match=message) as core_error:
        getattr(core, cls.__name__)()(bad)
    for aug in (cls(), cls(p=0.0), K.AugmentationSequential(cls())):
        with pytest.raises(ValueError, match=message) as adapter_error:
            aug(bad)
        assert str(adapter_error.value).replace("input", "images", 1) == str(core_error.value)


@pytest.mark.parametrize("cls", [NaturalIllumination, NaturalMotion])
def test_empty_batch_comes_back_empty_with_its_targets(cls):
    """Issue 24 item 18: an empty batch is no IndexError."""
    seq = K.AugmentationSequential(cls(), data_keys=["input", "bbox_xyxy", "mask"])
    image, boxes, mask = seq(torch.rand(0, 3, H, W), torch.rand(0, 2, 4), torch.rand(0, 1, H, W))
    assert image.shape == (0, 3, H, W) and boxes.shape == (0, 2, 4) and mask.shape == (0, 1, H, W)
    assert cls()(torch.rand(0, 3, H, W)).shape == (0, 3, H, W)


@pytest.mark.parametrize("cls", [NaturalIllumination, NaturalMotion])
def test_model_is_a_model_default_or_a_saved_path(cls, tmp_path):
    """Issue 24 item 15: the three forms give the same augmentation; a missing file is named."""
    from mi_augment.perturbations import IlluminationModel

    model_class = IlluminationModel if cls is NaturalIllumination else MotionModel
    path = model_class.default().save(tmp_path / "model.json")
    x = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(0))
    outputs = []
    for spec in (model_class.default(), "default", path, str(path), None):
        torch.manual_seed(5)
        outputs.append(cls(spec)(x))
    for out in outputs[1:]:
        torch.testing.assert_close(out, outputs[0], rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match="no such file"):
        cls(tmp_path / "missing.json")
