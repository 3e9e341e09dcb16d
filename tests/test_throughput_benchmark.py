"""benchmarks/throughput.py on the CPU, CI-sized: one run writes its JSON with every row's ratios against both
peers, and prints issue 23's targets from that run (the numbers themselves are not asserted: speed lives in
the benchmark, not in tests)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def throughput(load_script):
    return load_script("benchmarks/throughput.py")


def test_a_tiny_run_writes_rows_ratios_and_the_targets(throughput, tmp_path, capsys):
    out = tmp_path / "t.json"
    methods = ["albumentations_simclr_per_image", "torchvision_v1_pil", "ours_simclr_random_per_numpy",
               "ours_simclr_random_per_image", "ours_simclr_random", "ours_simclr_random_uint8",
               "ours_simclr_random_per_image_float"]
    assert throughput.main(["--sizes", "32", "--methods", *methods, "--seconds", "0.02", "--rounds", "1",
                            "--batch", "4", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {r["method"]: r for r in report["results"]}
    assert set(rows) == set(methods)
    for r in rows.values():
        assert r["pairs_per_s"] > 0
        assert r["ratio_vs_albumentations_simclr_per_image"] == pytest.approx(
            r["pairs_per_s"] / rows["albumentations_simclr_per_image"]["pairs_per_s"])
    printed = capsys.readouterr().out
    assert "CPU uint8 batch vs PIL per image" in printed and "numpy per image vs albumentations" in printed
    assert "then ToTensor" in printed
    assert throughput.main(["--from-json", str(out)]) == 0  # the tables of an earlier run, reprinted
    assert "| target | 32 px |" in capsys.readouterr().out
