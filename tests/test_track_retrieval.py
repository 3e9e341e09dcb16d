"""Track retrieval (invariance to what real footage does) and the ``mi-augment invariance`` command."""

import json

import cv2
import numpy as np
import pytest
import torch

from mi_augment.cli import main
from mi_augment.ssl.backbones import build_encoder
from mi_augment.ssl.evaluate import load_encoder, track_retrieval

from .media import write_video


def _panning_clip(frames: int, size=(96, 128), seed=0):
    """A textured scene panned a pixel a frame to the right, getting brighter: camera motion and exposure."""
    rng = np.random.default_rng(seed)
    blobs = cv2.GaussianBlur(
        rng.uniform(0, 255, (size[0], size[1] + frames, 3)).astype(np.float32), (0, 0), 2
    )
    scene = cv2.normalize(blobs, None, 20, 220, cv2.NORM_MINMAX)
    out = [
        np.clip(scene[:, t : t + size[1]] * (1 + 0.003 * t), 0, 255).astype(np.uint8) for t in range(frames)
    ]
    return np.stack(out)


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    """What a recipe run leaves in its folder: ``encoder.pt`` (a state dict) and ``results.json``."""
    folder = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    enc = build_encoder(
        "small_cnn", in_channels=3, image_size=16, mean=(0.4, 0.4, 0.4), std=(0.2, 0.2, 0.2), cnn_width=8
    )
    torch.save(enc.state_dict(), folder / "encoder.pt")
    (folder / "results.json").write_text(
        json.dumps(
            {
                "config": {"backbone": "small_cnn", "cnn_width": 8, "patch_size": None},
                "dataset": {"name": "synthetic", "image_size": 16, "channels": 3},
            }
        )
    )
    return folder / "encoder.pt"


def test_invariance_help_names_the_encoder_and_output(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["invariance", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--encoder ENCODER.pt" in text and "--out" in text and "CLIP" in text


def test_invariance_on_a_users_clip_prints_each_gap_and_writes_json(tmp_path, encoder_file, capsys):
    write_video(tmp_path / "pan.avi", _panning_clip(24))
    out = tmp_path / "result.json"
    code = main(
        [
            "invariance",
            "--encoder",
            str(encoder_file),
            "--out",
            str(out),
            "--gaps",
            "2",
            "8",
            "--patch-size",
            "16",
            "--starts",
            "2",
            str(tmp_path / "pan.avi"),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "| pan.avi | 2 |" in text and "| pan.avi | 8 |" in text and "| mean | 8 |" in text
    result = json.loads(out.read_text())
    gap = result["clips"][0]["gaps"]["8"]
    assert result["clips"][0]["clip"] == "pan.avi" and len(result["clips"][0]["starts"]) == 2
    assert all(n >= 50 for n in gap["tracks_per_start"])  # a gallery large enough to discriminate
    assert gap["tracks"] == sum(gap["tracks_per_start"])
    assert gap["chance"] == pytest.approx(100 / np.mean(gap["tracks_per_start"]), rel=0.05)
    # the same texture, moved by the pan: found far above chance even by an untrained encoder
    assert gap["top1"] > 5 * gap["chance"] and gap["distance_ratio"] < 1


def test_a_clip_too_short_for_the_largest_gap_is_refused_by_name(tmp_path, encoder_file, capsys):
    write_video(tmp_path / "short.avi", _panning_clip(10))
    code = main(["invariance", "--encoder", str(encoder_file), str(tmp_path / "short.avi")])
    err = capsys.readouterr().err
    assert code == 2
    assert "short.avi" in err and "10 frames" in err and "64" in err


def test_hard_cuts_count_as_too_short(encoder_file):
    two_shots = torch.cat([torch.from_numpy(_panning_clip(12, seed=s)).permute(0, 3, 1, 2) for s in (0, 1)])
    with pytest.raises(ValueError, match="longest shot"):
        track_retrieval(load_encoder(encoder_file), [two_shots], gaps=(16,), patch_size=16)


def test_load_encoder_needs_the_results_json_of_the_run(tmp_path, encoder_file):
    lone = tmp_path / "encoder.pt"
    lone.write_bytes(encoder_file.read_bytes())
    with pytest.raises(FileNotFoundError, match="results.json"):
        load_encoder(lone)
    restored = load_encoder(encoder_file)
    saved = torch.load(encoder_file, weights_only=True)
    assert torch.equal(restored.state_dict()["mean"], saved["mean"])


@pytest.mark.parametrize("bad, match", [((), "gaps"), ((0, 4), "gaps")])
def test_bad_gaps_are_refused(encoder_file, bad, match):
    with pytest.raises(ValueError, match=match):
        track_retrieval(load_encoder(encoder_file), [torch.rand(8, 3, 32, 32)], gaps=bad)
