"""The twin branch's data: unique pairs never meet as negatives, the random-partner control matches the twins'
counts and frames, caches that do not fit are refused with errors naming the file."""

from __future__ import annotations

import json

import pytest
import torch

twins_module = pytest.importorskip("mi_augment.video.twins")
from mi_augment.ssl.twins import TwinPairs, describe_twins, matched_random_control, twin_videos  # noqa: E402
from mi_augment.ssl.views import AugmentOptions  # noqa: E402
from mi_augment.video.twins import TwinPatchDataset, TwinPatches, neighbor_mask, patch_grid  # noqa: E402
from tests.test_recipes import write_twin_cache  # noqa: E402


def _pairs(unique: int = 40, per_pair: int = 5, size: int = 8) -> TwinPairs:
    """``unique`` pairs with ``per_pair`` crops each (as frames of one mined pair), rows shuffled."""
    g = torch.Generator().manual_seed(0)
    ids = torch.arange(unique).repeat_interleave(per_pair)[torch.randperm(unique * per_pair, generator=g)]
    patches = (torch.rand(ids.numel(), 3, size, size, generator=g) * 255).to(torch.uint8)
    return TwinPairs(patches, patches.flip(-1), size=size, channels=3, pair_ids=ids)


def test_a_batch_never_holds_two_crops_of_one_unique_pair():
    """Over many steps, one rank's batch and the union of two ranks' batches (the negatives NT-Xent gathers)
    hold each unique pair at most once; the batch is as large as the pairs allow."""
    pairs = _pairs()
    for step in range(50):
        batch = pairs.pair_ids[pairs.draw(32, torch.Generator().manual_seed(step))]
        assert batch.numel() == 32 and batch.unique().numel() == 32
        ranks = [pairs.pair_ids[pairs.draw(16, torch.Generator().manual_seed(step), rank=r, world_size=2)]
                 for r in range(2)]
        both = torch.cat(ranks)
        assert both.numel() == 32 and both.unique().numel() == 32
    assert pairs.draw(100, torch.Generator().manual_seed(0)).numel() == 40  # capped at the unique pairs


def test_every_crop_of_a_pair_gets_drawn():
    """One crop per pair per batch, but over steps all frames of a pair are used."""
    pairs = _pairs(unique=4, per_pair=5)
    seen = torch.cat([pairs.draw(4, torch.Generator().manual_seed(s)) for s in range(200)])
    assert seen.unique().numel() == len(pairs) == 20


def test_both_orders_of_a_pair_are_one_unique_pair(tmp_path):
    """(patch 3, twin 7) and (patch 7, twin 3) of one window are the same pair; the same patches in another
    window are another pair."""
    n = 6
    info = {"patch": torch.tensor([3, 7, 3, 7, 1, 1]), "twin": torch.tensor([7, 3, 7, 3, 2, 2]),
            "frame": torch.arange(n), "source": torch.tensor([0, 0, 1, 1, 0, 0]), "mi": torch.ones(n),
            "p_value": torch.zeros(n)}
    data = TwinPatchDataset(torch.zeros(n, 2, 3, 4, 4, dtype=torch.uint8), info, ["a.mp4[0:64]", "a.mp4[64:100]"])
    pairs = TwinPairs.from_dataset(data, 4, 3, "cpu")
    assert pairs.num_pairs == 3
    assert pairs.pair_ids[0] == pairs.pair_ids[1] != pairs.pair_ids[2]
    summary = describe_twins(data)
    assert summary["unique_pairs"] == 3 and summary["clips"] == 1 and summary["frames"] == 100


def _mined_result(generator: torch.Generator) -> TwinPatches:
    """A mined window by hand: a 6x6 grid of 8 px patches, some active, twins between far-apart patches."""
    boxes = patch_grid(48, 48, 8)
    p = boxes.shape[0]
    active = torch.rand(p, generator=generator) < 0.6
    twins = torch.full((p,), -1)
    idx = torch.nonzero(active).flatten()
    far = ~neighbor_mask(boxes)
    for i in idx.tolist()[::2]:
        options = [j for j in idx.tolist() if j != i and far[i, j]]
        twins[i] = options[0]
    centres = ((boxes[:, :2] + boxes[:, 2:]) / 2)[None].repeat(20, 1, 1)
    centres = centres + torch.arange(20.0)[:, None, None] * 0.2
    mi = torch.rand(p, p, generator=generator)
    return TwinPatches(boxes=boxes, mi=mi, twins=twins, significance=torch.zeros(p), active=active,
                       tracked=active.clone(), centres=centres, frame_range=(10, 30), settings={"patch_size": 8})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_control_has_the_same_pairs_count_and_frames(seed):
    g = torch.Generator().manual_seed(seed)
    result = _mined_result(g)
    twins, control = matched_random_control(result, g)
    assert twins.num_twins == control.num_twins == result.num_twins
    assert torch.equal(twins.pairs()[:, 0], control.pairs()[:, 0])
    near = neighbor_mask(result.boxes)
    for i, r in control.pairs().tolist():
        assert result.active[r] and r != i and r != result.twins[i] and not near[i, r]
    clip = (torch.rand(40, 3, 48, 48, generator=g) * 255).to(torch.uint8)
    a = TwinPatchDataset.from_result(twins, clip, frames_per_pair=4, source="c.mp4[10:30]")
    b = TwinPatchDataset.from_result(control, clip, frames_per_pair=4, source="c.mp4[10:30]")
    assert len(a) == len(b) and torch.equal(a.info["frame"], b.info["frame"])
    assert torch.equal(a.info["patch"], b.info["patch"]) and torch.equal(a.crops[:, 0], b.crops[:, 0])
    assert describe_twins(a)["unique_pairs"] == describe_twins(b)["unique_pairs"]
    served = TwinPairs.from_dataset(a, 8, 3, "cpu", control=b)
    assert served.with_random_control().num_pairs == served.num_pairs


def test_random_control_drops_a_pair_in_both_when_no_partner_is_allowed():
    boxes = patch_grid(16, 16, 8)  # 4 patches, all neighbours of each other
    p = boxes.shape[0]
    result = TwinPatches(boxes=boxes, mi=torch.zeros(p, p), twins=torch.tensor([3, -1, -1, 0]),
                         significance=torch.zeros(p), active=torch.ones(p, dtype=torch.bool),
                         tracked=torch.ones(p, dtype=torch.bool), centres=torch.zeros(10, p, 2), frame_range=(0, 10))
    twins, control = matched_random_control(result)
    assert twins.num_twins == control.num_twins == 0


# ------------------------------------------------------------------------------------------- bad caches
def test_a_cache_from_another_version_is_refused_naming_the_file(tmp_path):
    path = write_twin_cache(tmp_path)
    doc = json.loads(open(path).read())
    doc["version"] = 99
    open(path, "w").write(json.dumps(doc))
    with pytest.raises(ValueError, match=r"pairs\.json.*version 99"):
        TwinPairs.from_video(16, 1, AugmentOptions(twin_cache=path), "cpu")


def test_a_control_that_does_not_match_its_twins_is_refused(tmp_path):
    path = write_twin_cache(tmp_path, pairs=6)
    (tmp_path / "other").mkdir()
    write_twin_cache(tmp_path / "other", pairs=5)  # another mining's control
    (tmp_path / "pairs-random.json").write_bytes((tmp_path / "other" / "pairs-random.json").read_bytes())
    with pytest.raises(ValueError, match="not row-aligned"):
        TwinPairs.from_video(16, 1, AugmentOptions(twin_cache=path), "cpu")


def test_the_random_control_needs_its_crops(tmp_path):
    path = write_twin_cache(tmp_path)
    (tmp_path / "pairs-random.json").unlink()
    assert TwinPairs.from_video(16, 1, AugmentOptions(twin_cache=path), "cpu").num_pairs == 6
    with pytest.raises(ValueError, match="no random-control crops"):
        TwinPairs.from_video(16, 1, AugmentOptions(twin_cache=path, twin_control="random"), "cpu")


def test_twin_videos_lists_given_clips_and_rejects_missing_ones(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    assert twin_videos(AugmentOptions(twin_video=(str(clip),), twin_shipped=False)) == [clip]
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        twin_videos(AugmentOptions(twin_video="nope.mp4", twin_shipped=False))
    with pytest.raises(ValueError, match="no clip"):
        twin_videos(AugmentOptions(twin_shipped=False))
