"""Twin-patch mining end to end on real footage that ships inside packages (skipped, saying how to get the
files, when they are missing), and the ``mi-augment mine`` command: figures, sharding and merging."""

from __future__ import annotations

import json

import pytest
import torch

from mi_augment.commands.mine import parse_shard, shard_videos, video_key
from mi_augment.datasets.samples import sample_path
from mi_augment.video.io import read_video
from mi_augment.video.twins import TwinPatchDataset, TwinPatches, mine_twin_patches

from .media import write_video

# One torch thread for the all-pairs MI kernels (see tests/conftest.py: one_thread).
pytestmark = pytest.mark.usefixtures("one_thread_module", "one_thread")



def _sample(name: str):
    try:
        return sample_path(name)
    except FileNotFoundError as exc:
        pytest.skip(f"real sample {name!r} is not installed: {exc}")


def _motion_energy(clip: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Mean absolute frame difference inside each reference box over the clip (content moving through it)."""
    diff = (clip[1:].float() - clip[:-1].float()).abs().mean(dim=(0, 1))
    return torch.stack([diff[y1:y2, x1:x2].mean() for x1, y1, x2, y2 in boxes.long().tolist()])


@pytest.mark.slow
def test_vtest_pedestrians():
    clip = read_video(_sample("vtest"), max_frames=48, max_side=384)
    result = mine_twin_patches(clip, 12, max_frames=48)
    assert result.frame_range == (0, 48)
    assert result.num_twins >= 3
    # twins sit where people walk: their patches see far more change than the typical (static) patch
    energy = _motion_energy(clip, result.boxes)
    with_twin = result.twins >= 0
    assert float(energy[with_twin].median()) > 3 * float(energy.median())
    assert bool((result.significance[with_twin] <= 0.01).all())


@pytest.mark.slow
def test_bikes_panning_camera_with_cuts():
    clip = read_video(_sample("bikes"), max_side=320)
    result = mine_twin_patches(clip, 16, max_frames=None)
    start, stop = result.frame_range
    assert (start, stop) == (76, 137)  # the longest shot between the documented cuts 76 and 137
    # the camera pans: most tracked patches are background and must not all become twins of each other
    assert result.num_twins <= max(3, int(result.tracked.sum()) // 4)
    data = TwinPatchDataset.from_result(result, clip, frames_per_pair=2)
    assert len(data) == 2 * result.num_twins


# ---------------------------------------------------------------------------------------------------- CLI



@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from tests.test_twins import render_scene

    folder = tmp_path_factory.mktemp("clips")
    paths = []
    for seed in (0, 1):
        clip, _, _ = render_scene(frames=24, height=160, width=224, groups=2, objects_per_group=2, seed=seed)
        path = folder / f"scene{seed}.avi"
        write_video(path, clip.permute(0, 2, 3, 1).numpy(), fps=15)
        paths.append(str(path))
    return paths


@pytest.mark.slow
def test_cli_mines_shards_and_merges(videos, tmp_path, capsys):
    from mi_augment.cli import main

    common = ["--patch-size", "16", "--max-side", "200", "--frames-per-pair", "2", "--quiet"]
    for shard in ("0/2", "1/2"):
        assert main(["mine", *videos, "--out", str(tmp_path / "run"), "--shard", shard, *common]) == 0
    out = tmp_path / "run"
    for path in videos:
        key = video_key(path)
        assert (out / f"{key}.dataset.json").is_file() and (out / f"{key}.png").is_file()
        shots = sorted(out.glob(f"{key}.shot*.twins.json"))
        assert len(shots) == 1 and TwinPatches.load(shots[0]).frame_range == (0, 24)
    manifests = sorted(out.glob("manifest-*-of-2.json"))
    assert len(manifests) == 2
    assert sum(len(json.loads(m.read_text())["videos"]) for m in manifests) == 2

    # a second run skips what is done
    assert main(["mine", *videos, "--out", str(out), *common]) == 0
    again = json.loads((out / "manifest-0-of-1.json").read_text())
    assert all(v.get("skipped") == "already mined" for v in again["videos"])

    assert main(["mine", "--merge", str(out), "--out", str(tmp_path / "merged"), "--quiet"]) == 0
    merged = TwinPatchDataset.load(tmp_path / "merged" / "twin_dataset.json")
    parts = [TwinPatchDataset.load(out / f"{video_key(p)}.dataset.json") for p in videos]
    assert len(merged) == sum(len(p) for p in parts)
    summary = json.loads((tmp_path / "merged" / "manifest.json").read_text())
    assert summary["videos"] == 2 and summary["pairs"] == len(merged)


def test_cli_errors(videos, tmp_path, capsys):
    from mi_augment.cli import main

    assert main(["mine", str(tmp_path / "missing.mp4"), "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["mine", videos[0], "--out", str(tmp_path), "--shard", "3/2"]) == 2
    assert main(["mine", videos[0], "--out", str(tmp_path), "--patch-size", "999", "--quiet"]) == 1  # recorded
    manifest = json.loads((tmp_path / "manifest-0-of-1.json").read_text())
    assert "larger than the frame" in manifest["videos"][0]["error"]
    assert main(["mine", "--merge", str(tmp_path / "nothing"), "--out", str(tmp_path / "m")]) == 2


def test_shard_helpers():
    assert parse_shard("1/4") == (1, 4)
    assert parse_shard(None, env={}) == (0, 1)
    assert parse_shard(None, env={"RANK": "2", "WORLD_SIZE": "3"}) == (2, 3)
    with pytest.raises(ValueError):
        parse_shard("4/4")
    with pytest.raises(ValueError):
        parse_shard("a/b")
    videos = [f"v{i}.mp4" for i in range(7)]
    shares = [shard_videos(videos, i, 3) for i in range(3)]
    assert sorted(sum(shares, [])) == sorted(videos) and len(shares[0]) == 3
    assert video_key("/a/clip.mp4") != video_key("/b/clip.mp4")
