"""The recipes' flags are checked before any work (issue 24 items 5, 15, 17): a bad number, a folder dataset
without its layout or a broken model file is a usage error naming the flag; the help says what is used."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from mi_augment.datasets.loading import data_root_used, load_dataset
from mi_augment.perturbations import IlluminationModel, MotionModel
from mi_augment.ssl.views import AugmentOptions, make_views

from .test_recipes import ROOT, load_recipe, run_recipe


def _usage_error(capsys, recipe: str, *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        load_recipe(recipe).main(list(argv))
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("recipe,flag,value", [
    ("simclr", "--epochs", "0"), ("simclr", "--epochs", "-1"), ("simclr", "--warmup-epochs", "-3"),
    ("simclr", "--checkpoint-every", "0"), ("simclr", "--checkpoint-every", "-5"), ("simclr", "--train-subset", "0"),
    ("simclr", "--hidden-dim", "0"), ("simclr", "--image-size", "0"), ("simclr", "--image-size", "1"),
    ("simclr", "--cnn-width", "0"), ("simclr", "--batch-size", "-4"), ("simclr", "--temperature", "0"),
    ("simclr", "--lr", "nan"), ("simclr", "--lr", "inf"), ("simclr", "--stop-after", "0"),
    ("simclr", "--mi-candidates", "0"), ("simclr", "--natural-strength", "-1"), ("simclr", "--twin-batch", "0"),
    ("vicreg", "--dim", "0"), ("vicreg", "--variance", "nan"), ("byol", "--base-momentum", "1.5"),
    ("simclr", "--crop-scale-min", "0"), ("simclr", "--queue-size", "0"), ("simclr", "--epochs", "two"),
])
def test_a_bad_number_is_a_usage_error_naming_the_flag(capsys, recipe, flag, value):
    err = _usage_error(capsys, recipe, flag, value)
    assert f"argument {flag}" in err and "must be" in err and repr(value) in err


@pytest.mark.parametrize("argv,message", [
    (["--train-subset", "16", "--batch-size", "32"], "cannot fill one batch"),
    (["--mi-policy", "best"], "--mi-policy must be one of"),
    (["--augment", "mi", "--mi-candidates", "1", "--mi-policy", "band"], "nothing to rank"),
    (["--augment", "mi", "--mi-policy", "max", "--mi-band", "0.2", "0.8"], "--mi-band applies to --mi-policy band"),
    (["--augment", "mi", "--mi-policy", "band", "--mi-band", "0.8", "0.2"], "--mi-band LO HI must be finite"),
    (["--neighbour-quantiles", "0.9", "0.5"], "LO < HI"),
    (["--twin-video", "no_such_clip.mp4"], "--twin-video no_such_clip.mp4: no such file"),
    (["--augment", "twin", "--positives", "mi-neighbour"], "cannot be combined with --positives mi-neighbour"),
    (["--twin-control", "random"], "--twin-control random is a control of --positives twin"),
])
def test_settings_that_cannot_work_together_are_refused_up_front(capsys, argv, message):
    assert message in _usage_error(capsys, "simclr", *argv)


def test_folder_dataset_needs_its_layout_and_help_says_it(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("MI_AUGMENT_DATA_ROOT", raising=False)
    assert "ROOT/train/<class>" in _usage_error(capsys, "moco", "--dataset", "folder")
    (tmp_path / "train" / "cat").mkdir(parents=True)
    err = _usage_error(capsys, "moco", "--dataset", "folder", "--data-root", str(tmp_path))
    assert f"{tmp_path} does not hold the layout" in err and "ROOT/val/<class>" in err
    with pytest.raises(SystemExit):
        load_recipe("moco").main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg" in text
    assert "default: native" not in text and "96 STL-10 and folder" in text  # --image-size says what is used
    assert "$MI_AUGMENT_DATA_ROOT" in text  # --data-root's default is said, not silent


def test_the_data_folder_used_is_said(monkeypatch):
    monkeypatch.delenv("MI_AUGMENT_DATA_ROOT", raising=False)
    assert data_root_used("cifar10") == "data (the default; --data-root to change)"
    monkeypatch.setenv("MI_AUGMENT_DATA_ROOT", "/datasets")
    assert data_root_used("stl10") == "/datasets ($MI_AUGMENT_DATA_ROOT)"
    assert data_root_used("default") is None and data_root_used("synthetic") is None


def test_synthetic_set_fills_the_recipes_default_batch():
    data = load_dataset("synthetic")
    assert len(data.train) >= 256  # README's smoke test runs with the default --batch-size 256


@pytest.mark.slow
def test_readme_smoke_test_runs_as_written(tmp_path):
    """``python recipes/vicreg.py --dataset synthetic --epochs 1``, verbatim, from a fresh folder."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "recipes" / "vicreg.py"), "--dataset", "synthetic", "--epochs",
                           "1"], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "runs" / "vicreg" / "results.json").is_file()


# ------------------------------------------------------------------------------ refit models (item 15)
@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    illumination = IlluminationModel.uniform(0.8, 0.8, 0.8, 0.2).save(folder / "wide_illumination.json")
    motion = MotionModel.default().save(folder / "motion.json")
    return illumination, motion


def test_a_refit_model_file_is_what_the_natural_arm_draws_from(model_files):
    illumination, _ = model_files
    views = make_views("natural", size=16, channels=3, options=AugmentOptions(illumination_model=str(illumination)))
    expected = IlluminationModel.load(illumination).sample(64, generator=torch.Generator().manual_seed(0))
    drawn = views.illumination.model.sample(64, generator=torch.Generator().manual_seed(0))
    default = IlluminationModel.default().sample(64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(drawn.log_gain, expected.log_gain) and not torch.equal(drawn.log_gain, default.log_gain)


def test_recipe_trains_with_refit_model_files(model_files, tmp_path):
    illumination, motion = model_files
    result = run_recipe("simclr", tmp_path, "--backbone", "small_cnn", "--cnn-width", "8", "--augment", "natural",
                        "--illumination-model", str(illumination), "--motion-model", str(motion))
    assert result["steps"] == 2 and result["config"]["illumination_model"] == str(illumination)


def test_a_missing_or_wrong_model_file_is_a_usage_error(capsys, model_files, tmp_path):
    _, motion = model_files
    err = _usage_error(capsys, "simclr", "--illumination-model", str(tmp_path / "nope.json"))
    assert "--illumination-model" in err and "no such file" in err
    err = _usage_error(capsys, "simclr", "--illumination-model", str(motion))
    assert "not a usable IlluminationModel file" in err and "'motion' artifact" in err


def test_an_absolute_band_keeps_only_candidates_whose_score_lies_inside_it():
    """``--mi-band`` / ``AugmentOptions.mi_band`` with the overlap scorer: every kept pair's IoU lies in the band
    (a band most candidates miss, so the draw is not what random crops give)."""
    from mi_augment.pairs.sampler import box_iou_pairs

    options = AugmentOptions(mi_scorer="iou", mi_policy="band", mi_band=(0.6, 0.75), mi_candidates=16)
    views = make_views("mi", size=16, channels=3, options=options)
    images = torch.rand(64, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    _, info = views.pair(images, generator=torch.Generator().manual_seed(1), return_info=True)
    scores = info.scores.squeeze(1)  # (B, K) IoU of each candidate
    has_inside = ((scores >= 0.6) & (scores <= 0.75)).any(1)
    kept = box_iou_pairs(info.params.boxes[:, 0], info.params.boxes[:, 1])
    assert has_inside.sum() >= 32
    assert ((kept[has_inside] >= 0.6 - 1e-6) & (kept[has_inside] <= 0.75 + 1e-6)).all()
    with pytest.raises(ValueError, match="mi_band applies to mi_policy='band'"):
        AugmentOptions(mi_policy="max", mi_band=(0.1, 0.2))
