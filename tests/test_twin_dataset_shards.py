"""TwinPatchDataset.save and .load agree at any size: datasets over the per-file limit go to shard files
(exercised here with a small shard limit instead of gigabytes of crops)."""

from __future__ import annotations

import json

import pytest
import torch

from mi_augment.core.artifact import ArtifactError
from mi_augment.video.twins import TwinPatchDataset


def _dataset(n: int = 10, size: int = 4) -> TwinPatchDataset:
    g = torch.Generator().manual_seed(0)
    crops = torch.randint(0, 256, (n, 2, 3, size, size), generator=g, dtype=torch.uint8)
    info = {k: torch.arange(n) % 3 for k in ("patch", "twin", "frame")}
    info |= {"source": torch.arange(n) % 2, "mi": torch.rand(n, generator=g), "p_value": torch.rand(n, generator=g)}
    return TwinPatchDataset(crops, info, ["a.mp4", "b.mp4"])


def _same(a: TwinPatchDataset, b: TwinPatchDataset) -> bool:
    return (torch.equal(a.crops, b.crops) and a.sources == b.sources
            and all(torch.equal(a.info[k], b.info[k]) for k in a.info))


def test_a_dataset_over_the_shard_limit_round_trips_through_shards(tmp_path):
    data = _dataset(10)  # 96 crop values per item
    data.save(tmp_path / "d.json", shard_elements=200)  # two items per shard
    shards = sorted(p.name for p in tmp_path.glob("d.shard-*.json"))
    assert shards == [f"d.shard-{i:05d}-of-00005.json" for i in range(5)]
    assert _same(TwinPatchDataset.load(tmp_path / "d.json"), data)


def test_a_small_dataset_is_one_file_and_a_resave_removes_stale_shards(tmp_path):
    data = _dataset(10)
    data.save(tmp_path / "d.json", shard_elements=500)
    assert len(list(tmp_path.glob("d.shard-*"))) == 2
    data.save(tmp_path / "d.json")
    assert [p.name for p in tmp_path.iterdir()] == ["d.json"]
    assert _same(TwinPatchDataset.load(tmp_path / "d.json"), data)


def test_odd_sizes_and_empty_datasets_round_trip(tmp_path):
    for n, limit in ((7, 96 * 3), (1, 96), (0, 1)):
        data = _dataset(n)
        data.save(tmp_path / f"d{n}.json", shard_elements=limit)
        assert _same(TwinPatchDataset.load(tmp_path / f"d{n}.json"), data)


def test_missing_or_tampered_shards_are_clear_errors(tmp_path):
    _dataset(10).save(tmp_path / "d.json", shard_elements=200)
    (tmp_path / "d.shard-00002-of-00005.json").unlink()
    with pytest.raises(FileNotFoundError, match="d.shard-00002-of-00005.json"):
        TwinPatchDataset.load(tmp_path / "d.json")
    _dataset(10).save(tmp_path / "d.json", shard_elements=200)
    doc = json.loads((tmp_path / "d.json").read_text())
    doc["meta"]["shards"][0] = "../elsewhere.shard-00000-of-00005.json"
    (tmp_path / "d.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match=r"meta.shards\[0\] must name a shard file beside it"):
        TwinPatchDataset.load(tmp_path / "d.json")
    doc["meta"]["shards"][0], doc["meta"]["items"] = "d.shard-00000-of-00005.json", 12
    (tmp_path / "d.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="the shards hold 10 items, the index announces 12"):
        TwinPatchDataset.load(tmp_path / "d.json")


@pytest.mark.parametrize("limit", [0, -3, 2**28 + 1])
def test_shard_limit_must_be_a_positive_integer_load_accepts(tmp_path, limit):
    with pytest.raises(ValueError, match="shard_elements"):
        _dataset(2).save(tmp_path / "d.json", shard_elements=limit)
