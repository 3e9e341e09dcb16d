"""``mi-augment invariance --encoder ENCODER.pt [--out result.json] CLIP [CLIP ...]``: how well an encoder
finds the same tracked patch again after real footage changed it (camera motion, exposure, shading, pose).

Patches are tracked through each clip (:func:`mi_augment.ssl.evaluate.track_retrieval`); for each gap the
command prints top-1 retrieval of the same track among every tracked patch, the chance level and the number of
tracks beside it, per clip and averaged, and writes the whole result as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("clips", nargs="+", metavar="CLIP", help="video files (any footage OpenCV can decode)")
    p.add_argument(
        "--encoder",
        required=True,
        metavar="ENCODER.pt",
        help="encoder.pt saved by a recipe (results.json beside it gives the architecture)",
    )
    p.add_argument("--out", default=None, help="write the result here as JSON (default: print only)")
    p.add_argument("--gaps", type=int, nargs="+", default=[4, 16, 64], help="frame gaps (default 4 16 64)")
    p.add_argument("--patch-size", type=int, default=32, help="patch side after --max-side (default 32)")
    p.add_argument("--stride", type=int, default=None, help="patch grid spacing (default: half the patch)")
    p.add_argument(
        "--max-side", type=int, default=320, help="downscale frames to this longer side (default 320)"
    )
    p.add_argument("--starts", type=int, default=4, help="start frames per clip, pooled (default 4)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")


def format_table(result: dict) -> str:
    """One line per clip and gap, then the mean: top-1, chance, tracks and distance ratio."""
    lines = [
        "| clip | gap | top-1 (%) | chance (%) | tracks | distance same / other |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows = [(c["clip"], c["gaps"]) for c in result["clips"]] + [("mean", result["mean"])]
    for name, gaps in rows:
        for gap, s in gaps.items():
            if s["top1"] is None:
                lines.append(f"| {name} | {gap} | - | - | {s['tracks']:.0f} | - |")
            else:
                lines.append(
                    f"| {name} | {gap} | {s['top1']:.1f} | {s['chance']:.2f} | {s['tracks']:.0f} | "
                    f"{s['distance_ratio']:.3f} |"
                )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..core.artifact import atomic_write_bytes
    from ..ssl.evaluate import load_encoder, track_retrieval

    for clip in args.clips:
        if not Path(clip).is_file():
            raise FileNotFoundError(f"clip not found: {clip}")
    encoder = load_encoder(args.encoder, args.device)
    result = track_retrieval(
        encoder,
        args.clips,
        args.gaps,
        patch_size=args.patch_size,
        stride=args.stride,
        max_side=args.max_side,
        starts=args.starts,
        device=args.device,
    )
    result["encoder"] = str(args.encoder)
    print(format_table(result))
    if args.out:
        atomic_write_bytes(args.out, json.dumps(result, indent=1, allow_nan=False).encode())
        print(f"wrote {args.out}")
    return 0
