"""``mi-augment mine``: mine twin patches from videos into a training dataset, with a figure per clip.

    mi-augment mine VIDEO... --out DIR            mine every shot of every video
    mi-augment mine VIDEO... --out DIR --shard 1/4  this process's quarter of the videos
    torchrun --nproc-per-node 4 -m mi_augment.cli mine VIDEO... --out DIR   (shards from RANK / WORLD_SIZE)
    mi-augment mine --merge DIR... --out MERGED   join the shards' datasets and manifests

Per video ``DIR`` receives ``<name>.dataset.json`` (a :class:`~mi_augment.video.twins.TwinPatchDataset` of
(patch, twin) crops), ``<name>.shot<start>-<stop>.twins.json`` (each mined window's boxes, MI matrix, twins and
p-values: a :class:`~mi_augment.video.twins.TwinPatches`), ``<name>.png`` (reference frame of each window,
arrows from patch to twin coloured by MI) and, per shard, ``manifest-<i>-of-<n>.json`` (settings and per-video summaries). Videos
already done are skipped unless ``--overwrite``; a video that cannot be read is recorded in the manifest and
the others go on (exit status 1 at the end).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from .. import __version__


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="*", metavar="VIDEO",
                   help="video files to mine (with --merge: output folders of earlier runs to join)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--merge", action="store_true", help="join the datasets and manifests of the given folders")
    g = p.add_argument_group("mining")
    g.add_argument("--patch-size", type=int, default=32, help="patch side in pixels after --max-side (default 32)")
    g.add_argument("--stride", type=int, default=None, help="patch grid spacing (default: the patch size)")
    g.add_argument("--features", nargs="+", default=["position"], choices=["position", "colour"],
                   help="trajectory features (default: position; with colour prefer --estimator ksg)")
    g.add_argument("--estimator", default="kl3", choices=["kl3", "ksg"], help="MI estimator (default kl3)")
    g.add_argument("--k", type=int, default=3, help="neighbours of the kNN MI estimator (default 3)")
    g.add_argument("--alpha", type=float, default=0.01, help="significance level vs the shuffled baseline")
    g.add_argument("--shuffles", type=int, default=4, help="circular shifts in the baseline (default 4)")
    g.add_argument("--min-motion", type=float, default=0.3,
                   help="residual velocity std (px/frame) below which a patch is still (default 0.3)")
    g.add_argument("--min-colour", type=float, default=0.01,
                   help="colour-change std (0..1 per frame) below which a patch is unchanging (default 0.01)")
    g.add_argument("--camera-motion", default="similarity", choices=["similarity", "affine", "homography", "none"],
                   help="global motion removed before comparing patches (default similarity)")
    g.add_argument("--keep-neighbors", action="store_true",
                   help="allow a patch's twin to touch it (default: neighbours are excluded)")
    v = p.add_argument_group("video")
    v.add_argument("--max-frames", type=int, default=64, help="frames per mined window of a shot (default 64)")
    v.add_argument("--frame-stride", type=int, default=1, help="keep every n-th frame (default 1)")
    v.add_argument("--max-side", type=int, default=480, help="downscale to this longer side first (default 480)")
    v.add_argument("--max-video-frames", type=int, default=None, help="read at most this many frames per video")
    o = p.add_argument_group("output")
    o.add_argument("--frames-per-pair", type=int, default=8, help="crops per twin pair, spread over the shot")
    o.add_argument("--no-figures", action="store_true", help="do not draw the per-clip figures")
    o.add_argument("--overwrite", action="store_true", help="mine videos again even if their outputs exist")
    o.add_argument("--shard", default=None, metavar="I/N",
                   help="process the I-th of N equal shares of the videos (default: RANK/WORLD_SIZE under "
                        "torchrun, else all)")
    o.add_argument("--threads", type=int, default=1,
                   help="torch threads per process (default 1: the all-pairs MI runs many small kernels and a "
                        "second thread mostly waits; use more cores with --shard / torchrun processes)")
    o.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true",
                   help="no progress bars and no summary line")


# ------------------------------------------------------------------------------------------------- shards


def parse_shard(text: str | None, env: dict[str, str] | None = None) -> tuple[int, int]:
    """``(index, count)`` from ``"i/n"``, else from torchrun's ``RANK`` / ``WORLD_SIZE``, else ``(0, 1)``."""
    env = os.environ if env is None else env
    if text is None:
        if "WORLD_SIZE" in env and "RANK" in env:
            text = f"{env['RANK']}/{env['WORLD_SIZE']}"
        else:
            return 0, 1
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like I/N with integers, e.g. 0/4; got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard I/N needs N >= 1 and 0 <= I < N, got {text!r}")
    return i, n


def shard_videos(videos: list[str], index: int, count: int) -> list[str]:
    """Every ``count``-th video from ``index`` on, after sorting, so all ranks agree without talking."""
    return sorted(videos)[index::count]


def video_key(path: str | os.PathLike) -> str:
    """A file-name-safe name for a video's outputs: its stem plus a short hash of its absolute path (two
    ``clip.mp4`` in different folders do not collide)."""
    p = Path(path).resolve()
    digest = hashlib.sha1(str(p).encode("utf-8")).hexdigest()[:8]
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in p.stem)[:60]
    return f"{stem}-{digest}"


# ---------------------------------------------------------------------------------------------- mining


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {"stride": args.stride, "features": tuple(args.features), "estimator": args.estimator, "k": args.k,
            "alpha": args.alpha, "n_shuffles": args.shuffles, "min_motion": args.min_motion,
            "min_colour": args.min_colour, "camera_motion": args.camera_motion,
            "exclude_neighbors": not args.keep_neighbors}


def draw_clip_figure(results, clip: torch.Tensor, path: Path, title: str, max_panels: int = 6) -> Path:
    """One panel per mined shot (at most ``max_panels``): its reference frame and arrows patch -> twin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..figures import save_figure
    from ..video.twins import plot_twins

    shown = results[:max_panels]
    cols = min(len(shown), 2) or 1
    rows = max(1, -(-len(shown) // cols))
    h, w = clip.shape[2:]
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 6.5 * rows * h / w + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, result in zip(axes.flat, shown):
        plot_twins(result, clip[result.frame_range[0]], ax=ax)
    more = f" (first {max_panels} of {len(results)} windows)" if len(results) > max_panels else ""
    fig.suptitle(title + more, fontsize=10)
    return save_figure(fig, path)


def mine_video(path: str, out: Path, args: argparse.Namespace, progress=None) -> dict[str, Any]:
    """Mine one video into ``out``; return its manifest entry."""
    from ..video.io import read_video
    from ..video.twins import TwinPatchDataset, mine_shots

    key = video_key(path)
    t0 = time.perf_counter()
    clip = read_video(path, stride=args.frame_stride, max_side=args.max_side, max_frames=args.max_video_frames)
    results = mine_shots(clip, args.patch_size, max_frames=args.max_frames, **_options(args))
    name = Path(path).name
    parts = [TwinPatchDataset.from_result(r, clip, frames_per_pair=args.frames_per_pair,
                                          source=f"{name}#frames{r.frame_range[0]}-{r.frame_range[1]}")
             for r in results]
    if progress is not None:
        progress.set_postfix_str(f"{name}: {sum(r.num_twins for r in results)} twins")
    shots = []
    for r in results:
        shot_file = out / f"{key}.shot{r.frame_range[0]:06d}-{r.frame_range[1]:06d}.twins.json"
        r.save(shot_file)
        shots.append({"file": shot_file.name, **r.summary()})
    if parts:
        dataset = TwinPatchDataset.concat(parts)
    else:  # nothing long enough to mine: an empty dataset keeps merge simple
        dataset = TwinPatchDataset.empty(clip.shape[1], args.patch_size)
    figure = None
    if not args.no_figures and results:
        figure = draw_clip_figure(results, clip, out / f"{key}.png", title=name).name
    dataset.save(out / f"{key}.dataset.json")  # written last: its presence marks the video as done
    return {"video": str(Path(path).resolve()), "key": key, "frames": int(clip.shape[0]),
            "size": list(clip.shape[2:]), "shots": shots, "pairs": len(dataset), "figure": figure,
            "dataset": f"{key}.dataset.json", "seconds": round(time.perf_counter() - t0, 2)}


def _run_mining(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    if not args.inputs:
        raise ValueError("no videos given: mi-augment mine VIDEO... --out DIR")
    missing = [v for v in args.inputs if not Path(v).is_file()]
    if missing:
        raise FileNotFoundError(f"video file(s) not found: {', '.join(missing)}")
    index, count = parse_shard(args.shard)
    mine_kwargs = _options(args)
    from ..video.twins import MiningOptions

    MiningOptions(patch_size=args.patch_size, **mine_kwargs)  # fail on bad options before any work
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mine_list = shard_videos(list(dict.fromkeys(args.inputs)), index, count)
    entries, failed = [], 0
    bar = tqdm(mine_list, desc=f"mine [shard {index}/{count}]", unit="video", disable=args.quiet,
               position=index if count > 1 else None)
    for path in bar:
        done = out / f"{video_key(path)}.dataset.json"
        if done.is_file() and not args.overwrite:
            entries.append({"video": str(Path(path).resolve()), "key": video_key(path), "skipped": "already mined",
                            "dataset": done.name})
            continue
        try:
            entries.append(mine_video(path, out, args, progress=None if args.quiet else bar))
        except (ValueError, RuntimeError, OSError) as exc:
            failed += 1
            entries.append({"video": str(Path(path).resolve()), "key": video_key(path), "error": str(exc)})
            tqdm.write(f"mine: {path}: {exc}")
    manifest = {"mi_augment": __version__, "shard": [index, count], "patch_size": args.patch_size,
                "options": {k: list(v) if isinstance(v, tuple) else v for k, v in mine_kwargs.items()},
                "video_options": {"max_frames": args.max_frames, "frame_stride": args.frame_stride,
                                  "max_side": args.max_side, "frames_per_pair": args.frames_per_pair},
                "videos": entries}
    from ..core.artifact import atomic_write_bytes

    atomic_write_bytes(out / f"manifest-{index}-of-{count}.json", json.dumps(manifest, indent=1).encode("utf-8"))
    pairs = sum(e.get("pairs", 0) for e in entries)
    if not args.quiet:
        print(f"mine: {len(mine_list)} video(s) in shard {index}/{count}, {pairs} (patch, twin) crops, "
              f"{failed} failed; outputs in {out}/")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------- merging


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """A shard's ``manifest-<i>-of-<n>.json``, validated: a JSON object (at most 64 MiB, 16 levels deep)
    whose ``shard`` is ``[index, count]``, ``patch_size`` an integer, ``options`` an object and ``videos`` a
    list of objects (an ``error`` a string). Problems raise :class:`~mi_augment.core.artifact.ArtifactError`
    naming the file and the field."""
    from ..core.artifact import ArtifactError, expect_dict, expect_int, expect_list, expect_str, read_json

    doc = expect_dict(read_json(path, max_bytes=64 * 2**20, what="mining manifest"), path, "manifest")
    shard = expect_list(doc.get("shard", [0, 1]), path, "shard", 2)
    if len(shard) != 2:
        raise ArtifactError(f"{path}: shard must be [index, count], got {len(shard)} values")
    count = expect_int(shard[1], path, "shard[1]", 1, 2**31 - 1)
    expect_int(shard[0], path, "shard[0]", 0, count - 1)
    if doc.get("patch_size") is not None:
        expect_int(doc["patch_size"], path, "patch_size", 1, 2**16)
    expect_dict(doc.get("options", {}), path, "options")
    videos = expect_list(doc.get("videos", []), path, "videos", 2**24)
    for i, entry in enumerate(videos):
        expect_dict(entry, path, f"videos[{i}]")
        if "error" in entry:
            expect_str(entry["error"], path, f"videos[{i}].error", max_length=2**16)
    doc["videos"] = videos
    return doc


def merge_outputs(folders: list[str | os.PathLike], out: str | os.PathLike) -> dict[str, Any]:
    """Join the per-video datasets and the manifests of mining runs (shards) into ``out``:
    ``twin_dataset.json`` (one :class:`TwinPatchDataset`) and ``manifest.json``. A video mined by several
    shards is counted once."""
    from ..core.artifact import atomic_write_bytes
    from ..video.twins import TwinPatchDataset

    out = Path(out)
    datasets, seen, videos, manifests = [], set(), [], []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"not a folder: {folder}")
        for manifest in sorted(folder.glob("manifest-*-of-*.json")):
            doc = read_manifest(manifest)
            manifests.append({"folder": str(folder), "file": manifest.name, "shard": doc.get("shard"),
                              "patch_size": doc.get("patch_size"), "options": doc.get("options")})
            videos.extend(e for e in doc["videos"] if "error" in e)
        for file in sorted(folder.glob("*.dataset.json")):
            key = file.name[: -len(".dataset.json")]
            if key in seen:
                continue
            seen.add(key)
            datasets.append(TwinPatchDataset.load(file))
    if not datasets:
        raise FileNotFoundError(f"no *.dataset.json found in {', '.join(map(str, folders))}")
    sizes = {(m["patch_size"], json.dumps(m["options"], sort_keys=True)) for m in manifests}
    merged = TwinPatchDataset.concat(datasets)
    out.mkdir(parents=True, exist_ok=True)
    merged.save(out / "twin_dataset.json")
    summary = {"mi_augment": __version__, "videos": len(datasets), "pairs": len(merged), "sources": merged.sources,
               "inputs": manifests, "failed": videos, "consistent_settings": len(sizes) <= 1}
    atomic_write_bytes(out / "manifest.json", json.dumps(summary, indent=1).encode("utf-8"))
    return summary


def run(args: argparse.Namespace) -> int:
    if args.merge:
        if not args.inputs:
            raise ValueError("--merge needs the output folders of earlier mining runs")
        summary = merge_outputs(args.inputs, args.out)
        if not args.quiet:
            warn = "" if summary["consistent_settings"] else " (warning: shards were mined with different settings)"
            print(f"merge: {summary['videos']} video(s), {summary['pairs']} (patch, twin) crops -> "
                  f"{Path(args.out) / 'twin_dataset.json'}{warn}")
        return 0
    return _run_mining(args)


# ------------------------------------------------------------------------------------------------- demo


def demo_mine(out: str | os.PathLike, seed: int = 0) -> Path:
    """The demo's step: mine the real ``vtest`` clip (pedestrians, fixed camera) or, without it, ``bikes``;
    write the figure and dataset into ``out``; return the figure's path. ``seed`` is accepted for symmetry
    with the other demo steps (mining draws no random numbers)."""
    from ..datasets.samples import sample_path

    for name in ("vtest", "bikes"):
        try:
            path = sample_path(name)
            break
        except FileNotFoundError:
            continue
    else:
        raise FileNotFoundError("neither vtest.avi nor bikes.mp4 is installed; see mi_augment.datasets.samples")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([str(path), "--out", str(out), "--max-side", "576", "--max-video-frames", "64",
                              "--patch-size", "16", "--quiet", "--overwrite"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entry = mine_video(str(path), out, args)
    return out / (entry["figure"] or entry["dataset"])
