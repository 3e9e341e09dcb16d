"""``mi-augment mine`` keeps runs and files safe: output paths checked before the work, settings recorded and
compared on reruns and merges, one failing video does not stop the others, the manifest is always written."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mi_augment.cli import main
from mi_augment.commands.mine import video_key
from mi_augment.video.twins import TwinPatchDataset

pytestmark = pytest.mark.usefixtures("one_thread_module", "one_thread")

FAST = ["--camera-motion", "none", "--max-frames", "12", "--frames-per-pair", "2", "--no-figures", "--quiet"]


def _write_clip(path, frames: int = 24, height: int = 48, width: int = 64, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    scene = cv2.GaussianBlur(rng.integers(0, 255, (height, width + frames, 3), dtype=np.uint8), (3, 3), 0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
    for t in range(frames):
        writer.write(np.ascontiguousarray(scene[:, t:t + width]))
    writer.release()
    return str(path)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return _write_clip(tmp_path_factory.mktemp("clips") / "drift.avi")


def test_out_that_is_a_file_fails_in_one_line_before_any_work(clip, tmp_path, capsys):
    (tmp_path / "taken").write_text("not a folder")
    assert main(["mine", clip, "--out", str(tmp_path / "taken"), *FAST]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["mine", clip, "--out", str(tmp_path / "taken" / "sub"), *FAST]) == 2
    err = capsys.readouterr().err
    assert "cannot write there" in err and len(err.strip().splitlines()) == 1
    assert main(["mine", "--merge", str(tmp_path), "--out", str(tmp_path / "taken"), "--quiet"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_rerun_with_other_settings_is_refused_and_overwrite_mines_again(clip, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["mine", clip, "--out", str(out), "--patch-size", "16", *FAST]) == 0
    dataset = out / f"{video_key(clip)}.dataset.json"
    assert TwinPatchDataset.load(dataset).crops.shape[-1] == 16
    assert main(["mine", clip, "--out", str(out), "--patch-size", "24", *FAST]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "patch_size: 16 vs 24" in err
    assert json.loads((out / "manifest-0-of-1.json").read_text())["patch_size"] == 16  # untouched
    assert main(["mine", clip, "--out", str(out), "--patch-size", "24", "--overwrite", *FAST]) == 0
    manifest = json.loads((out / "manifest-0-of-1.json").read_text())
    assert manifest["patch_size"] == 24 and "skipped" not in manifest["videos"][0]
    assert TwinPatchDataset.load(dataset).crops.shape[-1] == 24
    assert main(["mine", clip, "--out", str(out), "--patch-size", "24", *FAST]) == 0  # same settings: skipped
    assert json.loads((out / "manifest-0-of-1.json").read_text())["videos"][0]["skipped"] == "already mined"


def test_merge_refuses_outputs_mined_with_different_settings(clip, tmp_path, capsys):
    for name, size in (("a", "16"), ("b", "24")):
        assert main(["mine", clip, "--out", str(tmp_path / name), "--patch-size", size, *FAST]) == 0
    merged = tmp_path / "merged"
    assert main(["mine", "--merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(merged), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "different settings" in err and "patch_size: 16 vs 24" in err
    assert not (merged / "twin_dataset.json").exists()
    assert main(["mine", "--merge", str(tmp_path / "a"), "--out", str(merged), "--quiet"]) == 0
    assert TwinPatchDataset.load(merged / "twin_dataset.json").crops.shape[-1] == 16


def test_a_failing_video_is_recorded_and_the_others_are_mined(clip, tmp_path, capsys):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x01 not a video at all")
    out = tmp_path / "run"
    assert main(["mine", str(tmp_path / "broken.mp4"), clip, "--out", str(out), *FAST]) == 1
    entries = {e["key"]: e for e in json.loads((out / "manifest-0-of-1.json").read_text())["videos"]}
    assert "cannot open video" in entries[video_key(tmp_path / "broken.mp4")]["error"]
    good = entries[video_key(clip)]
    assert good["frames"] == 24 and good["size"] == [48, 64] and (out / good["dataset"]).is_file()
    assert "broken.mp4" in capsys.readouterr().err


def test_bad_numeric_flags_fail_before_any_work(clip, tmp_path, capsys):
    for flag, value in (("--max-side", "0"), ("--max-side", "-5"), ("--frame-stride", "0"), ("--max-frames", "4")):
        assert main(["mine", clip, "--out", str(tmp_path / "run"), *FAST, flag, value]) == 2
        assert flag.lstrip("-").replace("-", "_") in capsys.readouterr().err.replace("-", "_")
    assert not (tmp_path / "run").exists()


def test_a_truncated_video_is_mined_and_its_warning_recorded(tmp_path, capsys):
    data = open(_write_clip(tmp_path / "full.avi", frames=40), "rb").read()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) * 3 // 5])
    assert main(["mine", str(tmp_path / "cut.avi"), "--out", str(tmp_path / "run"), *FAST]) == 0
    entry = json.loads((tmp_path / "run" / "manifest-0-of-1.json").read_text())["videos"][0]
    assert 9 <= entry["frames"] < 40 and (tmp_path / "run" / entry["dataset"]).is_file()
    assert entry["warnings"] == [f"{tmp_path / 'cut.avi'}: decoded {entry['frames']} of the 40 frames its header "
                                 "announces (truncated or damaged file); using the frames decoded"]
    assert "of the 40 frames" in capsys.readouterr().err
