"""The ``mi-augment`` command as a user runs it."""

import subprocess
import sys

import numpy as np
import pytest

from mi_augment.cli import main
from mi_augment.perturbations import MotionModel

from .media import write_video
from .test_motion_support import synthetic_clip


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "mi_augment.cli", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("demo", "fit", "preview", "mine"):
        assert cmd in out.stdout


def test_python_dash_m_mi_augment_is_the_same_command():
    via_module = subprocess.run([sys.executable, "-m", "mi_augment", "--help"], capture_output=True, text=True,
                                check=True)
    assert via_module.stdout.startswith("usage: mi-augment")
    for cmd in ("demo", "fit", "preview", "mine"):
        assert cmd in via_module.stdout
    failed = subprocess.run([sys.executable, "-m", "mi_augment", "mine", "missing.mp4", "--out", "x"],
                            capture_output=True, text=True)
    assert failed.returncode == 2 and "not found" in failed.stderr and "Traceback" not in failed.stderr


def test_fit_motion_on_a_video_file_writes_a_loadable_model(tmp_path, capsys):
    rng = np.random.default_rng(0)
    motions = np.column_stack([rng.normal(0, 2, 24), rng.normal(0, 1, 24), np.zeros(24), np.ones(24)])
    frames, _ = synthetic_clip(motions, size=(96, 128), canvas=360)
    write_video(tmp_path / "clip.avi", frames)
    code = main(["fit", "motion", str(tmp_path / "clip.avi"), "--out", str(tmp_path / "m.json"), "--no-progress"])
    assert code == 0
    text = capsys.readouterr().out
    assert "observations used" in text and "fitted: median" in text and "saved" in text
    model = MotionModel.load(tmp_path / "m.json")
    assert model.fit_info["n_used"] >= 10


def test_fit_reports_missing_and_unreadable_inputs(tmp_path, capsys):
    assert main(["fit", "motion", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "m.json")]) == 2
    assert "input not found" in capsys.readouterr().err
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    assert main(["fit", "illumination", str(tmp_path / "junk.mp4"), "--out", str(tmp_path / "m.json")]) == 2
    assert "junk.mp4" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_fit_rejects_unknown_model_kind():
    with pytest.raises(SystemExit):
        main(["fit", "weather", "a.mp4", "--out", "x.json"])
