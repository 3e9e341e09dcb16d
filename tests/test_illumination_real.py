"""IlluminationModel on the real footage of DATA.md (skipped, with the install command, when it is missing)."""

from __future__ import annotations

import math

import pytest
import torch

from mi_augment.datasets.samples import available_samples, load_exposure_stack, sample_path
from mi_augment.perturbations.fitting import ExposureStack
from mi_augment.perturbations.illumination import (
    MID_GREY_LINEAR,
    IlluminationModel,
    brightness_log_gain,
    format_summary,
)
from mi_augment.video.io import read_video

AVAILABLE = available_samples()


def needs(*names):
    missing = [n for n in names if n not in AVAILABLE]
    reason = ""
    if missing:
        try:
            sample_path(missing[0])
        except FileNotFoundError as exc:
            reason = f"sample file(s) {missing} missing: {exc}"
    return pytest.mark.skipif(bool(missing), reason=reason)


def _mid_grey_gains(vectors: torch.Tensor) -> torch.Tensor:
    """Per-channel log gain seen by 18 % grey: log_gain_c + (gamma - 1) log 0.18 (N, 3)."""
    gamma = vectors[:, 3:4].exp()
    return vectors[:, :3] + (gamma - 1) * math.log(MID_GREY_LINEAR)


@needs("carphone", "vtest", "tree")
@pytest.mark.parametrize("name", ["carphone", "vtest", "tree"])
def test_static_clips_show_mild_gains(name):
    clip = read_video(sample_path(name), max_frames=200, max_side=96)
    model = IlluminationModel(max_side=96, pairs_per_gap=10, symmetric=False)
    est = model.estimate(clip)
    assert est.n_used >= 0.6 * (est.n_used + est.n_rejected), est.details["rejected_reasons"]
    gains = _mid_grey_gains(est.vectors)
    # DATA.md: real exposure / white-balance drift on these clips is a few per cent; within +-10 % here.
    share_within = float((gains.abs() < math.log(1.1)).all(1).double().mean())
    assert share_within >= 0.9, f"{name}: only {share_within:.0%} of pairs have all gains within +-10 %"
    assert float(gains.median(0).values.abs().max()) < 0.03


@needs("memorial")
def test_exposure_stack_steps_are_about_one_stop():
    est = IlluminationModel(symmetric=False).estimate(ExposureStack(load_exposure_stack()))
    stops = brightness_log_gain(est.vectors[:, :3], est.vectors[:, 3:4]) / math.log(2)
    assert est.n_used >= 12, est.details
    assert -1.15 < float(stops.median()) < -0.85, stops
    assert float(((stops + 1).abs() < 0.3).double().mean()) >= 0.75, stops


@needs("bikes")
def test_hard_cuts_are_rejected():
    # bikes.mp4 cuts at frame 30: pairs (28, 29) and (30, 31) are usable, (29, 30) is not
    clip = read_video(sample_path("bikes"), start=28, max_frames=4, max_side=128)
    est = IlluminationModel(gaps=[1], symmetric=False).estimate(clip)
    used = [(i, j) for _, i, j in est.details["observations"]]
    assert (1, 2) not in used
    assert est.details["rejected_reasons"].get("alignment failed or hard cut", 0) >= 1


@needs("carphone")
def test_fit_on_a_path_and_summary_next_to_colorjitter(tmp_path):
    model = IlluminationModel(max_side=64, gaps=[1, 8], pairs_per_gap=8).fit(sample_path("carphone"))
    assert model.fit_info["n_used"] >= 16
    summary = model.summary(n=500)
    jitter = IlluminationModel.uniform(0.4, 0.4, 0.4, 0.1).summary(n=500)
    for key in ("brightness", "contrast", "saturation"):
        fitted_width = summary[key]["q95"] - summary[key]["q05"]
        assert fitted_width < jitter[key]["q95"] - jitter[key]["q05"]
    table = format_summary(model, n=500)
    assert "ColorJitter(0.4, 0.4, 0.4, 0.1)" in table and "brightness" in table


def test_the_shipped_default_records_its_provenance():
    model = IlluminationModel.default()
    info = model.fit_info
    assert info["fitted_on"]["clips"] == ["carphone", "vtest", "tree"]
    steps = info["validation"]["memorial_stack"]["median_stops"]
    assert -1.15 < steps < -0.85
    s = model.summary(n=1000)
    assert 0.9 < s["brightness"]["q05"] and s["brightness"]["q95"] < 1.1
    assert 0.95 < s["red_green"]["q05"] and s["red_green"]["q95"] < 1.05
