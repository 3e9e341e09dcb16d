"""benchmarks/pool_seeds.py: an arm's paired differences pooled over disjoint-seed ablation JSONLs."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pool_seeds(load_script):
    return load_script("benchmarks/pool_seeds.py")


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cell(arm: str, seed: int, knn20: float, dataset: str = "d") -> dict:
    return {"dataset": dataset, "arm": arm, "seed": seed, "knn_top1_k20": knn20, "knn_top1_k200": knn20 - 1,
            "linear_top1": 50.0}


def test_pools_paired_differences_across_files(pool_seeds, tmp_path):
    first = _write(tmp_path / "a.jsonl", [{"kind": "calibration", "arm": "S"}, _cell("B", 0, 10.0),
                                          _cell("X", 0, 11.0), _cell("B", 1, 10.0), _cell("X", 1, 12.0),
                                          _cell("X", 0, 99.0, dataset="other")])
    second = _write(tmp_path / "b.jsonl", [_cell("B", 5, 20.0), _cell("X", 5, 19.0),
                                           _cell("X", 6, 30.0)])  # seed 6 has no B: left out
    result = pool_seeds.pooled([first, second], "X", "B", "d")
    assert result["seeds"] == [0, 1, 5]
    knn = result["knn_top1_k20"]
    assert knn["diffs"] == [1.0, 2.0, -1.0]
    assert knn["mean"] == pytest.approx(2.0 / 3)
    assert knn["positive"] == 2 and knn["n"] == 3
    assert knn["ci_low"] < knn["mean"] < knn["ci_high"]
    assert result["linear_top1"]["mean"] == 0.0


def test_a_seed_in_two_files_is_refused(pool_seeds, tmp_path):
    rows = [_cell("B", 0, 10.0), _cell("X", 0, 11.0), _cell("B", 1, 10.0), _cell("X", 1, 11.0)]
    a, b = _write(tmp_path / "a.jsonl", rows), _write(tmp_path / "b.jsonl", rows)
    with pytest.raises(ValueError, match="more than once"):
        pool_seeds.pooled([a, b], "X", "B", "d")


def test_too_few_paired_seeds_and_missing_files_are_named(pool_seeds, tmp_path):
    a = _write(tmp_path / "a.jsonl", [_cell("B", 0, 10.0), _cell("X", 0, 11.0)])
    with pytest.raises(ValueError, match="at least 2 seeds"):
        pool_seeds.pooled([a], "X", "B", "d")
    with pytest.raises(FileNotFoundError, match="files"):
        pool_seeds.pooled([tmp_path / "missing.jsonl"], "X", "B", "d")
