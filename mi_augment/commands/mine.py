"""``mi-augment mine``: mine twin patches from videos into a training dataset, with a figure per clip.

    mi-augment mine VIDEO... --out DIR            mine every shot of every video
    mi-augment mine VIDEO... --out DIR --shard 1/4  this process's quarter of the videos
    torchrun --nproc-per-node 4 -m mi_augment.cli mine VIDEO... --out DIR   (shards from RANK / WORLD_SIZE)
    mi-augment mine --merge DIR... --out MERGED   join the shards' datasets and manifests

Per video ``DIR`` receives ``<name>.dataset.json`` (a :class:`~mi_augment.video.twins.TwinPatchDataset` of
(patch, twin) crops), ``<name>.shot<start>-<stop>.twins.json`` (each mined window's boxes, MI matrix, twins and
p-values: a :class:`~mi_augment.video.twins.TwinPatches`), ``<name>.png`` (reference frame of each window,
arrows from patch to twin coloured by MI), ``mining.json`` (the settings) and, per shard,
``manifest-<i>-of-<n>.json`` (settings and per-video summaries, rewritten after every video). Frames are
streamed, so memory stays flat in the length of a clip. Videos already done are skipped unless
``--overwrite``; a rerun into the same ``DIR`` with other settings is refused (``--overwrite`` mines again);
a video that fails is recorded in the manifest and the others go on (exit status 1 at the end). ``--out`` is
checked to be a writable folder before any work.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from .. import __version__

#: the settings of the mining runs in an output folder (see check_settings)
SETTINGS_FILE = "mining.json"


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
    o.add_argument("--overwrite", action="store_true", help="mine videos again even if their outputs exist (needed to mine into an --out that was "
                        "mined with other settings)")
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


def mining_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings that decide what a mining run writes (JSON-ready): outputs mined with other settings do not
    mix with these."""
    return {"patch_size": args.patch_size,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in _options(args).items()},
            "video_options": {"max_frames": args.max_frames, "frame_stride": args.frame_stride,
                              "max_side": args.max_side, "frames_per_pair": args.frames_per_pair,
                              "max_video_frames": args.max_video_frames}}


def settings_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """``"name: x vs y"`` for every setting recorded in both ``a`` and ``b`` (see :func:`mining_settings`)
    whose values differ; settings only one of them records are not compared.

    Example:
        >>> settings_differences({"patch_size": 16, "options": {"k": 3}}, {"patch_size": 32, "options": {"k": 3}})
        ['patch_size: 16 vs 32']
    """
    def flat(d: dict[str, Any]) -> dict[str, Any]:
        out = {"patch_size": d.get("patch_size")} if d.get("patch_size") is not None else {}
        for group in ("options", "video_options"):
            if isinstance(d.get(group), dict):
                out.update(d[group])
        return out

    fa, fb = flat(a), flat(b)
    return [f"{k}: {fa[k]!r} vs {fb[k]!r}" for k in sorted(fa.keys() & fb.keys()) if fa[k] != fb[k]]


def check_output_folder(out: str | os.PathLike) -> Path:
    """Create ``out`` (a folder) and check that files can be written there, before any work; problems raise
    one clear ``ValueError`` / ``OSError`` naming the path.

    Args:
        out: the output folder (created with its parents if missing).

    Example:
        >>> import tempfile
        >>> check_output_folder(Path(tempfile.mkdtemp()) / "runs" / "a").is_dir()
        True
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the outputs")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise OSError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    return out


def check_settings(out: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """Refuse to mine into ``out`` when its earlier outputs were mined with other settings (unless
    ``overwrite``: the videos of this run are then mined again); record the settings in ``out/mining.json``.

    Args:
        out: the output folder; its ``mining.json`` and ``manifest-*-of-*.json`` record earlier settings.
        settings: this run's settings (:func:`mining_settings`).
        overwrite: mine again instead of refusing.
    """
    from ..core.artifact import atomic_write_bytes, read_json

    recorded = [(out / SETTINGS_FILE, read_json(out / SETTINGS_FILE, what="mining settings"))] \
        if (out / SETTINGS_FILE).is_file() else []
    recorded += [(m, read_manifest(m)) for m in sorted(out.glob("manifest-*-of-*.json"))]
    for file, earlier in recorded:
        diff = settings_differences(earlier, settings) if isinstance(earlier, dict) else []
        if diff and not overwrite:
            raise ValueError(f"{out} holds videos mined with other settings ({file.name}: {'; '.join(diff)}, "
                             "earlier vs now); mine into another --out, or pass --overwrite to mine the videos "
                             "again with these settings")
    atomic_write_bytes(out / SETTINGS_FILE, json.dumps(settings, indent=1).encode("utf-8"))


def draw_clip_figure(results, frames, path: Path, title: str, total: int | None = None) -> Path:
    """One panel per mined window, with arrows patch -> twin; returns the figure's path.

    Args:
        results: the :class:`~mi_augment.video.twins.TwinPatches` to draw.
        frames: the reference frame of each result, ``(C, H, W)``.
        path: the image file to write.
        title: the figure's title.
        total: windows mined in all (the title says when only the first are shown).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..figures import save_figure
    from ..video.twins import plot_twins

    cols = min(len(results), 2) or 1
    rows = max(1, -(-len(results) // cols))
    h, w = frames[0].shape[1:]
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 6.5 * rows * h / w + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, result, frame in zip(axes.flat, results, frames):
        plot_twins(result, frame, ax=ax)
    more = f" (first {len(results)} of {total} windows)" if total and total > len(results) else ""
    fig.suptitle(title + more, fontsize=10)
    return save_figure(fig, path)


def mine_video(path: str, out: Path, args: argparse.Namespace, progress=None, max_panels: int = 6) -> dict[str, Any]:
    """Mine one video into ``out``, streaming its frames (memory holds one window); return its manifest entry.

    Args:
        path: the video file.
        out: the output folder (checked by :func:`check_output_folder`).
        args: the parsed ``mine`` arguments.
        progress: a tqdm bar to show the frame reached, or None.
        max_panels: windows drawn in the figure (the first ones).
    """
    from ..video.io import iter_video
    from ..video.twins import TwinPatchDataset, mine_windows

    key, name, t0 = video_key(path), Path(path).name, time.perf_counter()
    seen = {"frames": 0, "shape": None}

    def counted():
        for frame in iter_video(path, stride=args.frame_stride, max_side=args.max_side,
                                max_frames=args.max_video_frames):
            seen["frames"], seen["shape"] = seen["frames"] + 1, tuple(frame.shape)
            yield frame

    parts, shots, shown, references = [], [], [], []
    with warnings.catch_warnings(record=True) as caught:  # e.g. a truncated file: kept in the manifest entry
        warnings.simplefilter("always")
        for result, window in mine_windows(counted(), args.patch_size, max_frames=args.max_frames,
                                           **_options(args)):
            a, b = result.frame_range
            parts.append(TwinPatchDataset.from_result(result, window, first_frame=a, source=f"{name}#frames{a}-{b}",
                                                      frames_per_pair=args.frames_per_pair))
            shot_file = out / f"{key}.shot{a:06d}-{b:06d}.twins.json"
            result.save(shot_file)
            shots.append({"file": shot_file.name, **result.summary()})
            if len(shown) < max_panels:
                shown.append(result)
                references.append(window[0])
            if progress is not None:
                progress.set_postfix_str(f"{name}: frame {b}, {sum(s['twins'] for s in shots)} twins")
    channels = seen["shape"][0] if seen["shape"] else 3
    dataset = TwinPatchDataset.concat(parts) if parts else TwinPatchDataset.empty(channels, args.patch_size)
    figure = None
    if not args.no_figures and shown:
        figure = draw_clip_figure(shown, references, out / f"{key}.png", title=name, total=len(shots)).name
    dataset.save(out / f"{key}.dataset.json")  # written last: its presence marks the video as done
    return {"video": str(Path(path).resolve()), "key": key, "frames": seen["frames"],
            "size": list(seen["shape"][1:]) if seen["shape"] else None, "shots": shots, "pairs": len(dataset),
            "figure": figure, "dataset": f"{key}.dataset.json", "seconds": round(time.perf_counter() - t0, 2),
            "warnings": list(dict.fromkeys(str(w.message) for w in caught))}


def _write_manifest(out: Path, index: int, count: int, settings: dict[str, Any], entries: list) -> None:
    from ..core.artifact import atomic_write_bytes

    manifest = {"mi_augment": __version__, "shard": [index, count], **settings, "videos": entries}
    atomic_write_bytes(out / f"manifest-{index}-of-{count}.json", json.dumps(manifest, indent=1).encode("utf-8"))


def _run_mining(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ..video.twins import MIN_STEPS, MiningOptions

    if not args.inputs:
        raise ValueError("no videos given: mi-augment mine VIDEO... --out DIR")
    missing = [v for v in args.inputs if not Path(v).is_file()]
    if missing:
        raise FileNotFoundError(f"video file(s) not found: {', '.join(missing)}")
    index, count = parse_shard(args.shard)
    MiningOptions(patch_size=args.patch_size, **_options(args))  # fail on bad options before any work
    for flag in ("max_frames", "frame_stride", "max_side", "frames_per_pair", "threads"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be an integer >= 1, got {getattr(args, flag)}")
    if args.max_frames < MIN_STEPS + 1:
        raise ValueError(f"--max-frames must be at least {MIN_STEPS + 1} (frames of a mined window), "
                         f"got {args.max_frames}")
    if args.max_video_frames is not None and args.max_video_frames < 1:
        raise ValueError(f"--max-video-frames must be an integer >= 1, got {args.max_video_frames}")
    torch.set_num_threads(args.threads)
    out = check_output_folder(args.out)
    settings = mining_settings(args)
    check_settings(out, settings, args.overwrite)
    mine_list = shard_videos(list(dict.fromkeys(args.inputs)), index, count)
    entries, failed = [], 0
    bar = tqdm(mine_list, desc=f"mine [shard {index}/{count}]", unit="video", disable=args.quiet,
               position=index if count > 1 else None)
    for path in bar:
        done = out / f"{video_key(path)}.dataset.json"
        if done.is_file() and not args.overwrite:
            entries.append({"video": str(Path(path).resolve()), "key": video_key(path), "skipped": "already mined",
                            "dataset": done.name})
        else:
            try:
                entries.append(mine_video(path, out, args, progress=None if args.quiet else bar))
                for note in entries[-1]["warnings"]:
                    tqdm.write(f"mine: {path}: warning: {note}", file=sys.stderr)
            except Exception as exc:  # noqa: BLE001 - one video's failure (cv2.error included) must not stop the rest
                failed += 1
                message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                entries.append({"video": str(Path(path).resolve()), "key": video_key(path), "error": message})
                tqdm.write(f"mine: {path}: {type(exc).__name__}: {message}", file=sys.stderr)
        _write_manifest(out, index, count, settings, entries)  # after every video: a crash keeps what is done
    if not mine_list:
        _write_manifest(out, index, count, settings, entries)
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
    shards is counted once. Outputs whose manifests record different settings are refused (``ValueError``),
    and ``out`` is checked to be a writable folder before anything is read.

    Args:
        folders: output folders of ``mi-augment mine`` runs.
        out: the folder to write the merged dataset and manifest into.

    Returns:
        the merged manifest (also written to ``out/manifest.json``).
    """
    from ..core.artifact import atomic_write_bytes
    from ..video.twins import TwinPatchDataset

    folders = [Path(f) for f in folders]
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"not a folder: {folder}")
    out = check_output_folder(out)
    datasets, seen, videos, manifests = [], set(), [], []
    for folder in folders:
        for manifest in sorted(folder.glob("manifest-*-of-*.json")):
            doc = read_manifest(manifest)
            manifests.append({"folder": str(folder), "file": manifest.name, "shard": doc.get("shard"),
                              "patch_size": doc.get("patch_size"), "options": doc.get("options"),
                              "video_options": doc.get("video_options")})
            videos.extend(e for e in doc["videos"] if "error" in e)
    _check_alike(manifests)
    for folder in folders:
        for file in sorted(folder.glob("*.dataset.json")):
            key = file.name[: -len(".dataset.json")]
            if key in seen:
                continue
            seen.add(key)
            datasets.append(TwinPatchDataset.load(file))
    if not datasets:
        raise FileNotFoundError(f"no *.dataset.json found in {', '.join(map(str, folders))}")
    merged = TwinPatchDataset.concat(datasets)
    merged.save(out / "twin_dataset.json")
    summary = {"mi_augment": __version__, "videos": len(datasets), "pairs": len(merged), "sources": merged.sources,
               "inputs": manifests, "failed": videos, "consistent_settings": True}
    atomic_write_bytes(out / "manifest.json", json.dumps(summary, indent=1).encode("utf-8"))
    return summary


def _check_alike(manifests: list[dict[str, Any]]) -> None:
    """Refuse to merge outputs mined with different settings (their crops and twins do not mean the same)."""
    for m in manifests[1:]:
        diff = settings_differences(manifests[0], m)
        if diff:
            first = Path(manifests[0]["folder"]) / manifests[0]["file"]
            raise ValueError(f"cannot merge outputs mined with different settings: {first} vs "
                             f"{Path(m['folder']) / m['file']} ({'; '.join(diff)}); merge only runs mined alike, "
                             "or mine the videos again with --overwrite and one set of settings")


def run(args: argparse.Namespace) -> int:
    if args.merge:
        if not args.inputs:
            raise ValueError("--merge needs the output folders of earlier mining runs")
        summary = merge_outputs(args.inputs, args.out)
        if not args.quiet:
            print(f"merge: {summary['videos']} video(s), {summary['pairs']} (patch, twin) crops -> "
                  f"{Path(args.out) / 'twin_dataset.json'}")
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
