"""Fit the shipped default MotionModel on the real clips of DATA.md and write it atomically.

    python scripts/fit_default_motion.py                       # writes mi_augment/assets/motion_default.json
    python scripts/fit_default_motion.py --clips bikes --out /tmp/bikes.json --no-figures   # time one clip

Prints, per clip, the pairs used / rejected (and why), the detected cuts and the median per-frame camera
motion at the clip's native resolution; then the fitted ranges and the wall-clock time of each stage. Writes
``docs/figures/motion_fit.png`` (observed vs sampled parameters) and ``docs/figures/motion_examples.png``
(samples applied to a real frame) unless ``--no-figures``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from mi_augment.datasets.samples import NATURAL_CLIPS, sample_path
from mi_augment.figures import save_figure
from mi_augment.perturbations.fitting import describe_file
from mi_augment.perturbations.motion import MotionModel
from mi_augment.video.io import read_video

ROOT = Path(__file__).resolve().parent.parent
# Frames read per clip: vtest has 795 frames of a fixed camera; 200 keep it from dominating the mixture.
MAX_FRAMES = {"bikes": None, "carphone": None, "vtest": 200, "tree": None}
GAPS = (1, 2, 4, 8)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=list(NATURAL_CLIPS), choices=list(NATURAL_CLIPS))
    parser.add_argument("--out", type=Path, default=ROOT / "mi_augment" / "assets" / "motion_default.json")
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--max-side", type=int, default=480)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    t0 = time.perf_counter()
    clips, native = [], {}
    for name in args.clips:
        clips.append(read_video(sample_path(name), max_frames=MAX_FRAMES[name], max_side=args.max_side))
        native[name] = _native_size(sample_path(name))
    t_read = time.perf_counter() - t0

    model = MotionModel(gaps=GAPS, max_side=args.max_side)
    t1 = time.perf_counter()
    estimates = model.estimate(clips)
    t_estimate = time.perf_counter() - t1
    t2 = time.perf_counter()
    model.fit_estimates(estimates)  # draws="views": two independent draws differ like two real frames
    t_density = time.perf_counter() - t2
    for name, info in zip(args.clips, model.fit_info["clips"]):
        info["clip"] = name
        info["native_size"] = list(native[name])
        info["file"] = describe_file(sample_path(name))  # the clips were read here, so record them here
    model.fit_info["fitted_on"] = {n: {"max_frames": MAX_FRAMES[n], "max_side": args.max_side} for n in args.clips}
    model.save(args.out)
    os.chmod(args.out, 0o644)  # package data must be readable by every user (temporary files are 0600)
    total = time.perf_counter() - t0

    print(f"\n{'clip':9s} {'frames':>6s} {'pairs':>5s} {'used':>4s} {'rejected':>24s} {'cuts':>22s} "
          f"{'median px/frame':>15s} {'p90':>5s} {'inliers':>7s} {'local px':>8s}")
    for name, info in zip(args.clips, model.fit_info["clips"]):
        side = max(native[name])
        local = info["local_motion_median"]
        print(f"{name:9s} {info['frames']:6d} {info['n_pairs']:5d} {info['n_used']:4d} "
              f"{json.dumps(info['rejected_reasons']):>24s} {str(info['cuts']):>22s} "
              f"{info['displacement_median'] * side:15.3f} {info['displacement_p90'] * side:5.2f} "
              f"{info['inlier_fraction_median']:7.2f} {(local or float('nan')) * side:8.2f}")
    print("(px at each clip's native resolution: displacement averaged over the frame; 'local' = median motion of"
          " RANSAC outliers relative to the camera, i.e. independently moving objects)")
    summary = model.summary()
    print(f"\nobservations: {estimates.n_used} (gaps {list(GAPS)}), rejected pairs: {estimates.n_rejected} "
          f"{estimates.details['rejected_reasons']}, mixture components: {summary.get('components')}")
    print(f"fitted ranges (p5 / p50 / p95, px at a {summary['reference_size']} px longer side):")
    for key in ("translation_x_px", "translation_y_px", "translation_magnitude_px", "rotation_deg",
                "scale_percent", "blur_length_px"):
        print(f"  {key:26s} " + " / ".join(f"{v:7.3f}" for v in summary[key]))
    print(f"\ntime: read {t_read:.1f} s, estimate {t_estimate:.1f} s, density {t_density:.1f} s, "
          f"total {total:.1f} s -> {args.out}")

    if not args.no_figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        _figure_fit(model, estimates, args.clips, args.figures / "motion_fit.png")
        _figure_examples(model, args.figures / "motion_examples.png")
        print(f"figures -> {args.figures}/motion_fit.png, motion_examples.png")


def _native_size(path: Path) -> tuple[int, int]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    finally:
        cap.release()


def _figure_fit(model: MotionModel, estimates, names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = model.config["reference_size"]
    obs = estimates.vectors.numpy()
    counts = [c["n_observations"] for c in estimates.details["clips"]]
    labels = np.repeat(np.arange(len(names)), counts)
    gen = torch.Generator().manual_seed(0)
    one, two = (model.params_to_vector(model.sample(4000, generator=gen)).numpy() for _ in range(2))
    # Observed: changes between two real frames. Sampled: the same relation between two independently drawn
    # views (the difference of two draws) for the camera; the blur belongs to each view, so one draw's.
    sampled = np.concatenate([two[:, :4] - one[:, :4], one[:, 4:]], axis=1)
    to_px = ref / 100.0
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2))
    ax = axes[0]
    ax.scatter(sampled[:, 0] * to_px, sampled[:, 1] * to_px, s=2, c="0.75", label="between two sampled views")
    for i, name in enumerate(names):
        sel = labels == i
        ax.scatter(obs[sel, 0] * to_px, obs[sel, 1] * to_px, s=6, label=f"observed: {name}")
    lim = np.percentile(np.abs(obs[:, :2]) * to_px, 99) * 1.2 + 0.5
    ax.set(xlim=(-lim, lim), ylim=(lim, -lim), xlabel="dx (px)", ylabel="dy (px, down)",
           title=f"translation between frames, {ref} px wide")
    ax.legend(fontsize=7, markerscale=2)
    for ax, col, title, scale in ((axes[1], 2, "rotation (degrees)", 1.0), (axes[2], 3, "zoom (%)", 1.0)):
        lim = np.percentile(np.abs(obs[:, col]), 99) * 1.3 + 1e-3
        bins = np.linspace(-lim, lim, 60)
        ax.hist(obs[:, col] * scale, bins=bins, density=True, alpha=0.6, label="observed")
        ax.hist(sampled[:, col] * scale, bins=bins, density=True, histtype="step", color="k", label="between two views")
        ax.set(title=title)
        ax.legend(fontsize=7)
    blur_obs = np.hypot(obs[:, 4], obs[:, 5]) * to_px
    blur_s = np.hypot(sampled[:, 4], sampled[:, 5]) * to_px
    bins = np.linspace(0, np.percentile(blur_obs, 99) * 1.3 + 0.1, 60)
    axes[3].hist(blur_obs, bins=bins, density=True, alpha=0.6, label="observed")
    axes[3].hist(blur_s, bins=bins, density=True, histtype="step", color="k", label="one sampled view")
    axes[3].set(title=f"blur length (px, exposure {model.config['exposure_fraction']})")
    axes[3].legend(fontsize=7)
    fig.suptitle("MotionModel.default(): changes between real frames (observed) vs between two sampled views")
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def _figure_examples(model: MotionModel, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = read_video(sample_path("carphone"), max_frames=1)[0:1].float() / 255  # (1, 3, 144, 176)
    n = 5
    images = frame.expand(n, -1, -1, -1)
    gen = torch.Generator().manual_seed(1)
    natural = model.apply(images, model.sample(n, generator=gen))
    prior = MotionModel.uniform(max_translation=0.1, max_rotation=10.0, scale=(0.9, 1.1), max_blur=0.02)
    hand = prior.apply(images, prior.sample(n, generator=gen))
    fig, axes = plt.subplots(2, n + 1, figsize=(2 * (n + 1), 3.6))
    for row, (imgs, label) in enumerate(((natural, "MotionModel.default()"),
                                         (hand, "uniform(0.1, 10 deg, 0.9-1.1, 0.02)"))):
        axes[row, 0].imshow(frame[0].permute(1, 2, 0).numpy())
        axes[row, 0].set_title("original", fontsize=8)
        for i in range(n):
            axes[row, i + 1].imshow(imgs[i].permute(1, 2, 0).clamp(0, 1).numpy())
        axes[row, 1].set_title(label, fontsize=8, loc="left")
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path, dpi=72)


if __name__ == "__main__":
    main()
