"""benchmarks/cold_calls.py, CI-sized: one run writes a row per pipeline and amount of memory written, with the
time added against the hot loop (the numbers themselves are not asserted: speed lives in the benchmark)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def cold_calls(load_script):
    return load_script("benchmarks/cold_calls.py")


def test_a_tiny_run_writes_a_row_per_pipeline_and_setting(cold_calls, tmp_path):
    out = tmp_path / "cold.json"
    pipelines = ["albumentations_simclr", "ours_simclr_random"]
    assert cold_calls.main(["--size", "32", "--megabytes", "0", "0.25", "--pipelines", *pipelines,
                            "--images", "2", "--rounds", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {(r["pipeline"], r["megabytes"]): r for r in report["rows"]}
    assert set(rows) == {(p, mb) for p in pipelines for mb in (0.0, 0.25)}
    for p in pipelines:
        hot, cold = rows[(p, 0.0)], rows[(p, 0.25)]
        assert hot["us_per_pair"] > 0 and hot["added_us"] == 0
        assert cold["added_us"] == pytest.approx(cold["us_per_pair"] - hot["us_per_pair"])
    assert report["command"].startswith("python benchmarks/cold_calls.py") and report["git_sha"]


def test_bad_arguments_are_named(cold_calls, capsys):
    with pytest.raises(SystemExit):
        cold_calls.main(["--megabytes", "-1"])
    assert "--megabytes must be >= 0" in capsys.readouterr().err
