"""Crop selection's controls: the overlap-only score, the known-object coverage score, fmnist_scenes' garment
boxes and lookup, the recipe scorers built on them and the content-coverage diagnostic."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mi_augment.datasets.scenes import GarmentLookup, SceneConfig, garment_boxes, render_scenes
from mi_augment.pairs import ObjectCoverageScorer, OverlapScorer, box_coverage
from mi_augment.ssl.views import AugmentOptions, MIViews
from mi_augment.transforms import MIPairTransform

ROOT = Path(__file__).resolve().parents[1]


def _frames(n: int = 4, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (72, 96, 3), dtype=np.uint8) for _ in range(n)]


def _squares(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Garment stand-ins that fill their whole 28 x 28 square (fully opaque): the box is the pasted square."""
    return np.full((n, 28, 28), 255, np.uint8), np.arange(n) % 4


# ------------------------------------------------------------------------------------------------ scores
def test_box_coverage_hand_cases_and_errors():
    obj = torch.tensor([[0.0, 0.0, 10.0, 10.0], [float("nan")] * 4])
    crops = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 20.0, 10.0], [20.0, 20.0, 30.0, 30.0]],
                          [[0.0, 0.0, 10.0, 10.0]] * 3])
    cov = box_coverage(crops, obj)
    assert torch.allclose(cov[0], torch.tensor([1.0, 0.5, 0.0]))
    assert cov[1].isnan().all()
    with pytest.raises(ValueError, match="objects \\(B, 4\\)"):
        box_coverage(crops, obj[:1])


def test_overlap_scorer_makes_max_keep_the_largest_overlap():
    t = MIPairTransform(24, view_transforms=None, scorer=OverlapScorer(), policy="max", n_candidates=8)
    x = torch.rand(6, 3, 40, 40)
    _, info = t(x, generator=torch.Generator().manual_seed(0), return_info=True)
    assert torch.allclose(info.iou[:, 0], info.candidate_iou[:, 0].amax(1))


def test_object_coverage_scorer_keeps_the_pair_that_best_shows_the_object():
    objects = torch.tensor([[8.0, 8.0, 24.0, 24.0]]).repeat(5, 1)
    objects[4] = float("nan")  # an image without its object: scores 0, any candidate will do
    scorer = ObjectCoverageScorer(lambda images: objects[: images.shape[0]])
    t = MIPairTransform(24, view_transforms=None, scorer=scorer, policy="max", n_candidates=8)
    x = torch.rand(5, 3, 32, 32)
    candidates = t.plan(x, torch.Generator().manual_seed(1))
    scores = t.score(x, candidates)
    info = t.choose(candidates, scores)
    worse_view = box_coverage(candidates.boxes, objects).amin(1)  # (B, K)
    assert torch.allclose(info.chosen_score[:4], worse_view[:4].amax(1))
    assert (scores[4] == 0).all()


def test_object_coverage_scorer_refuses_bad_objects():
    with pytest.raises(TypeError, match="objects must be a callable"):
        ObjectCoverageScorer([1, 2, 3, 4])
    scorer = ObjectCoverageScorer(lambda images: torch.zeros(images.shape[0], 3))
    boxes = torch.zeros(2, 8, 4)
    with pytest.raises(ValueError, match=r"must return a \(2, 4\) tensor"):
        scorer(torch.rand(2, 3, 8, 8), boxes, boxes)


# ------------------------------------------------------------------------------------------- scenes boxes
def test_render_scenes_boxes_do_not_change_the_images_and_frame_the_garment():
    objects, labels = _squares(12)
    config = SceneConfig(distractor_p=0.0)
    plain, plain_labels = render_scenes(objects, labels, _frames(), 30, config, np.random.default_rng(3))
    images, out_labels, boxes = render_scenes(objects, labels, _frames(), 30, config, np.random.default_rng(3),
                                              return_boxes=True)
    assert np.array_equal(images, plain) and np.array_equal(out_labels, plain_labels)
    assert boxes.shape == (30, 4) and not np.isnan(boxes).any()
    size = config.image_size
    for img, (x1, y1, x2, y2) in zip(images, boxes.astype(int)):
        assert 0 <= x1 < x2 <= size and 0 <= y1 < y2 <= size
        inside = img[:, y1:y2, x1:x2].reshape(3, -1)
        assert (inside == inside[:, :1]).all()  # an opaque square garment is one flat colour inside its box
        # ... and covers at least min_visible of its side on each axis (it is never mostly cut off)
        assert min(x2 - x1, y2 - y1) >= math.floor(config.min_visible * config.object_scale[0] * size) - 1


def test_garment_lookup_finds_each_image_and_refuses_strangers():
    objects = _squares(12)
    images, boxes = garment_boxes(SceneConfig(n_train=20), objects=(objects, objects), frames=_frames())
    lookup = GarmentLookup(images, boxes)
    order = torch.tensor([5, 0, 19])
    found = lookup(images[order].float() / 255.0)
    assert torch.equal(found, boxes[order])
    with pytest.raises(ValueError, match="not an fmnist_scenes image"):
        lookup(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="of shape"):
        lookup(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="split must be"):
        garment_boxes(split="val")


def test_recipe_scorers_iou_and_unknown_names():
    views = MIViews(24, 3, AugmentOptions(mi_scorer="iou", mi_policy="max"))
    a, b = views(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), torch.Generator().manual_seed(0))
    assert a.shape == b.shape == (4, 3, 24, 24)
    with pytest.raises(ValueError, match="mi_scorer must be one of"):
        MIViews(24, 3, AugmentOptions(mi_scorer="oracle"))


# --------------------------------------------------------------------------------------- the diagnostic
@pytest.fixture(scope="module")
def content_coverage(load_script):
    return load_script("benchmarks/content_coverage.py")


def test_content_coverage_reports_every_scorer_against_the_oracle(content_coverage):
    from mi_augment.ssl.backbones import build_encoder

    rng = np.random.default_rng(0)
    objects = (rng.integers(0, 256, (16, 28, 28), dtype=np.uint8), np.arange(16) % 4)
    scenes = content_coverage.scenes_with_boxes(48, objects=objects, frames=_frames())
    torch.manual_seed(0)
    encoder = build_encoder("small_cnn", in_channels=3, image_size=32, mean=(0.5,) * 3, std=(0.25,) * 3,
                            cnn_width=8).eval()
    result = content_coverage.measure(scenes["images"], scenes["boxes"], encoder, None, 0.2, candidates=4,
                                      step_batch=16)
    assert result["images"] == 48 and result["candidates"] == 4
    ceiling = result["best_by_coverage"]["coverage"]
    for name in ("IoU", "P", "F", "C"):
        for policy in content_coverage.POLICIES:
            kept = result[name][policy]
            assert 0.0 <= kept["coverage"] <= ceiling + 1e-6  # nothing keeps better pairs than the oracle
            assert 0.0 <= kept["missing_share"] <= 1.0
        assert -1.0 <= result[name]["score_vs_coverage_spearman"] <= 1.0
    assert result["IoU"]["score_vs_iou_spearman"] == pytest.approx(1.0)
    assert result["IoU"]["max"]["kept_iou"] >= result["random"]["kept_iou"]
    assert "| garment coverage itself" in content_coverage.table(result)
