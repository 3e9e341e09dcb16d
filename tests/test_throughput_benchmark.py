"""benchmarks/throughput.py on the CPU, CI-sized: one run writes its JSON with every row's ratios against both
peers, and prints issue 23's targets from that run (the numbers themselves are not asserted: speed lives in
the benchmark, not in tests)."""

from __future__ import annotations

import json
import math

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
                            "--batch", "4", "--paired-seconds", "0.01", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    # every target whose two rows ran is measured paired: a ratio inside its interval, the rule's verdict
    expected = {(row, ref) for _, row, ref, _ in throughput.TARGETS if row in methods and ref in methods}
    assert {(p["row"], p["reference"]) for p in report["paired"]} == expected and len(expected) == 5
    for p in report["paired"]:
        lo, hi = p["ci95"]
        assert 0 < lo <= p["ratio"] <= hi and p["blocks"] >= 8
        assert p["verdict"] == throughput.verdict(p["ci95"], p["goal"])
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
    reprinted = capsys.readouterr().out
    assert "| target | 32 px |" in reprinted and "paired" in reprinted


def test_the_paired_interval_and_the_decision_rule(throughput):
    # two log ratios 0 and 0.2: mean 0.1, sd 0.2 / sqrt(2), t(0.975, 1 dof) = 12.706: half width 12.706 * 0.1
    lo, hi = throughput.log_ratio_interval([0.0, 0.2])
    assert lo == pytest.approx(math.exp(0.1 - 1.27062), rel=1e-4) and hi == pytest.approx(math.exp(0.1 + 1.27062),
                                                                                         rel=1e-4)
    assert throughput.log_ratio_interval([0.05] * 5) == pytest.approx((math.exp(0.05), math.exp(0.05)))
    with pytest.raises(ValueError, match="at least 2"):
        throughput.log_ratio_interval([0.1])
    assert throughput.verdict([1.01, 1.2], 1.0) == "met"
    assert throughput.verdict([1.0, 1.2], 1.0) == "met"  # the lower end at the goal counts
    assert throughput.verdict([0.8, 0.99], 1.0) == "not met"
    assert throughput.verdict([0.98, 1.03], 1.0) == "undecided"


def test_a_negative_paired_time_is_refused(throughput, capsys):
    with pytest.raises(SystemExit):
        throughput.main(["--sizes", "32", "--paired-seconds", "-1"])
    assert "--paired-seconds must be >= 0" in capsys.readouterr().err
