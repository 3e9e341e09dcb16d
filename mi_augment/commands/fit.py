"""``mi-augment fit illumination|motion PATH... --out FILE``: fit a perturbation model on your own footage."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", choices=["illumination", "motion"], help="which perturbation model to fit")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="video files (static-camera clips for illumination; any footage for motion)")
    p.add_argument("--out", required=True, help="where to save the fitted model (JSON artifact)")
    p.add_argument("--max-side", type=int, default=320,
                   help="downscale frames so the longer side is at most this many pixels (default 320)")
    p.add_argument("--max-frames", type=int, default=None, help="read at most this many frames per clip")
    p.add_argument("--no-progress", action="store_true", help="do not show progress bars")


def model_class(name: str):
    if name == "illumination":
        from ..perturbations.illumination import IlluminationModel

        return IlluminationModel
    from ..perturbations.motion import MotionModel

    return MotionModel


def print_summary(model, elapsed: float | None = None) -> None:
    info = model.fit_info
    dens = model.density
    comps = getattr(dens, "components", None)
    print(f"{type(model).__name__}: {info.get('n_used', '?')} observations used, "
          f"{info.get('n_rejected', '?')} rejected" + (f" in {elapsed:.1f} s" if elapsed is not None else ""))
    reasons = info.get("rejected_reasons")
    if reasons:
        print("  rejected: " + ", ".join(f"{k}: {v}" for k, v in reasons.items()))
    if comps is not None:
        print(f"  density: Gaussian mixture with {comps} component(s) (chosen by BIC)")
    print(summary_table(model))


def summary_table(model) -> str:
    """Fitted ranges (median [5 %, 95 %]) next to the hand-tuned prior's (ColorJitter / RandomAffine-like)."""
    from ..perturbations.illumination import IlluminationModel, format_summary

    if isinstance(model, IlluminationModel):
        return format_summary(model)
    ref_model = type(model).uniform()
    fitted, ref = model.summary(), ref_model.summary()
    lines = [f"| quantity (at {fitted.get('reference_size', '?')} px) | fitted: median [5 %, 95 %] | "
             "hand-tuned uniform prior: median [5 %, 95 %] |", "|---|---|---|"]
    for key, val in fitted.items():
        if isinstance(val, list) and len(val) == 3 and key in ref:
            r = ref[key]
            lines.append(f"| {key} | {val[1]:.3f} [{val[0]:.3f}, {val[2]:.3f}] | {r[1]:.3f} [{r[0]:.3f}, {r[2]:.3f}] |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..video.io import read_video

    for path in args.paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"input not found: {path}")
    cls = model_class(args.model)
    clips = []
    for path in args.paths:
        clips.append(read_video(path, max_side=args.max_side, max_frames=args.max_frames, min_frames=2))
        print(f"read {path}: {tuple(clips[-1].shape)}")
    t0 = time.perf_counter()
    model = cls().fit(clips, progress=not args.no_progress)
    elapsed = time.perf_counter() - t0
    out = model.save(args.out)
    print_summary(model, elapsed)
    print(f"saved {out}")
    return 0
