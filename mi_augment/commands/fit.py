"""``mi-augment fit illumination|motion PATH... --out FILE``: fit a perturbation model on your own footage.

Output paths are checked before any video is decoded; a fit on too few observations is refused (see
:func:`mi_augment.perturbations.fitting.minimum_observations`); the saved model records its source files
(name, size, SHA-256), the library version and the longer side the frames were analysed at.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .outputs import check_output_file, describe_os_error

#: longer side (px) frames are analysed at when --max-side is not given: illumination needs little
#: resolution (a smooth field and three gains), motion tracks corners and needs more
DEFAULT_MAX_SIDE = {"illumination": 128, "motion": 320}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", choices=["illumination", "motion"], help="which perturbation model to fit")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="video files (static-camera clips for illumination; any footage for motion)")
    p.add_argument("--out", required=True, help="where to save the fitted model (JSON artifact)")
    p.add_argument("--max-side", type=int, default=None,
                   help="analyse frames downscaled so the longer side is at most this many pixels, >= 16 "
                        "(default: 128 for illumination, 320 for motion)")
    p.add_argument("--max-frames", type=int, default=None,
                   help="read at most this many frames per clip, >= 2 (default: all)")
    p.add_argument("--figure", default=None, metavar="PNG",
                   help="also draw the fitted ranges against the hand-tuned prior into this PNG")
    p.add_argument("--no-progress", action="store_true", help="do not show progress bars")


def model_class(name: str):
    """The model class for a ``fit`` argument (``"illumination"`` or ``"motion"``)."""
    if name == "illumination":
        from ..perturbations.illumination import IlluminationModel

        return IlluminationModel
    from ..perturbations.motion import MotionModel

    return MotionModel


def print_summary(model, elapsed: float | None = None) -> None:
    """Print observations used and rejected (and why), the sources, and the fitted ranges next to the prior's.

    Args:
        model: a fitted illumination or motion model.
        elapsed: seconds the fit took, shown when given.
    """
    info = model.fit_info
    comps = getattr(model.density, "components", None)
    pairs = info.get("n_pairs_used", info.get("n_used", "?"))
    print(f"{type(model).__name__}: {info.get('n_used', '?')} observations used (from {pairs} frame pairs), "
          f"{info.get('n_rejected', '?')} rejected" + (f" in {elapsed:.1f} s" if elapsed is not None else ""))
    reasons = info.get("rejected_reasons")
    if reasons:
        print("  rejected: " + ", ".join(f"{k}: {v}" for k, v in reasons.items()))
    for source in source_files(info):
        print(f"  source: {source['name']} ({source['size']} bytes, sha256 {source['sha256'][:12]}...)")
    if "max_side_used" in info:
        print(f"  frames analysed at a longer side of {info['max_side_used']} px")
    if comps is not None:
        print(f"  density: Gaussian mixture with {comps} component(s) (chosen by BIC)")
    print(summary_table(model))


def source_files(fit_info: dict) -> list[dict]:
    """The ``{"name", "size", "sha256"}`` records of the files a model was fitted on (empty for tensors).

    Args:
        fit_info: a fitted model's ``fit_info`` (illumination keeps ``sources``, motion ``clips``).

    Example:
        >>> record = {"name": "a.mp4", "size": 3, "sha256": "ab"}
        >>> source_files({"clips": [{"file": record}, {"clip": "clip 1"}]})
        [{'name': 'a.mp4', 'size': 3, 'sha256': 'ab'}]
    """
    per_source = fit_info.get("sources") or {}
    clips = fit_info.get("clips") or []
    found = [v.get("file") for v in per_source.values()] + [c.get("file") for c in clips]
    return [f for f in found if f]


def summary_table(model) -> str:
    """A Markdown table: fitted ranges (median [5 %, 95 %]) next to the hand-tuned prior's (ColorJitter /
    RandomAffine-like).

    Args:
        model: a fitted illumination or motion model.
    """
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


def _check_arguments(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """Every flag and path checked before any frame is decoded; returns the output paths."""
    out = check_output_file(args.out, "--out")
    figure = check_output_file(args.figure, "--figure") if args.figure else None
    if figure is not None and figure.resolve() == out.resolve():
        raise ValueError(f"--figure {figure} is the same file as --out; give the figure its own .png name")
    if args.max_side is not None and args.max_side < 16:
        raise ValueError(f"--max-side must be an integer >= 16 (pixels), got {args.max_side}")
    if args.max_frames is not None and args.max_frames < 2:
        raise ValueError(f"--max-frames must be an integer >= 2 (a pair of frames is one observation), "
                         f"got {args.max_frames}")
    for path in args.paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"input not found: {path}")
        if not Path(path).is_file():
            raise ValueError(f"input {path} is not a file (give video files)")
    return out, figure


def run(args: argparse.Namespace) -> int:
    out, figure = _check_arguments(args)
    max_side = args.max_side if args.max_side is not None else DEFAULT_MAX_SIDE[args.model]
    model = model_class(args.model)(max_side=max_side, max_frames=args.max_frames)
    t0 = time.perf_counter()
    model.fit([str(p) for p in args.paths], progress=not args.no_progress)
    elapsed = time.perf_counter() - t0
    print_summary(model, elapsed)
    target = out
    try:
        saved = model.save(out)
        print(f"saved {saved}")
        if figure is not None:
            from ..perturbations.fitting.figure import plot_fit

            target = figure
            print(f"wrote {plot_fit(model, figure)}")
    except FileNotFoundError:  # a missing input: main() prints its own message
        raise
    except OSError as exc:  # main() reports RuntimeError as one line, without a traceback
        raise RuntimeError(describe_os_error(exc, target)) from None
    return 0
