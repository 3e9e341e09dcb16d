"""Are the MI scores founded in content? Which crop pairs each scorer keeps on ``fmnist_scenes``, measured
against where the garment (the label) actually is. No training: the diagnostic behind the ablation's nulls.

``fmnist_scenes`` images are re-rendered with the labelled garment's box (the same images as the dataset's
test split: same seed, same garments, same frames; checked against the cached dataset when it is there). On
each image ``MIPairTransform`` draws K candidate crop pairs with the recipes' crop scale (the ablation's `mi`
arms), and every scorer scores the *same* candidates:

* ``pixels`` (arm ``P``): histogram MI of the two crops' pixels, threshold policy;
* ``features`` (arm ``F``): InfoNCE pointwise MI of a trained SimCLR encoder's features, band policy;
* ``crop-image`` (arm ``C``): each crop's pointwise MI with its whole image (the pair's smaller), threshold;

with the encoder and projector of a finished ablation run (default: the ``B`` seed-0 encoder of the CPU
budget, what the in-step scorers approach by the end of training; scored 256 images at a time, as in a
training step). Reported per scorer:

* **coverage** of the kept pair: the smaller, over the two views, of the fraction of the garment's box
  inside the crop (1: both views show all of it); the share of kept pairs where a view shows less than half
  of it (a false positive in waiting); the same for a random candidate (what the baseline keeps) and for the
  best candidate by coverage (the headroom a content-founded score could use);
* the within-image Spearman correlation of the score with coverage and with the pair's IoU (overlap).

    python benchmarks/content_coverage.py                  # 2,048 images, K=8, ~1 min on one core
    python benchmarks/content_coverage.py --json benchmarks/results/content_coverage_cpu.json

Writes JSON (command, commit, machine, numbers) and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import git_sha, machine, spearman_within  # noqa: E402
from mi_augment.core.artifact import atomic_write_bytes  # noqa: E402
from mi_augment.pairs.controls import box_coverage  # noqa: E402

#: the ablation's arms that choose crops by a score: (scorer, policy)
ARMS = {"P": ("pixels", "threshold"), "F": ("features", "band"), "C": ("crop-image", "threshold")}
HALF = 0.5  #: a view showing less than this fraction of the garment's box counts as missing it
POLICIES = ("threshold", "band", "max")  #: every score is read under each policy (the arms use the first two)


def scenes_with_boxes(n: int, objects: tuple[np.ndarray, np.ndarray] | None = None,
                      frames: list[np.ndarray] | None = None, seed: int = 0) -> dict[str, Any]:
    """The first ``n`` test images of ``fmnist_scenes`` (default config, ``seed``) with the labelled garment's
    box (:func:`~mi_augment.datasets.scenes.garment_boxes`); ``objects`` (test garments ``(images, labels)``) /
    ``frames`` replace Fashion-MNIST's / the shipped clips'."""
    from mi_augment.datasets.scenes import SceneConfig, default_clips, garment_boxes

    config = SceneConfig(seed=seed)
    both = None if objects is None else (objects, objects)
    images, boxes = garment_boxes(dataclasses.replace(config, n_test=n), split="test", objects=both, frames=frames)
    return {"images": images, "boxes": boxes, "clips": default_clips() if frames is None else None,
            "config": config}


def load_scorer_parts(run: Path) -> tuple[torch.nn.Module, torch.nn.Module, float]:
    """Encoder, projector and temperature of a finished SimCLR run (its ``checkpoint.pt``, weights only)."""
    from benchmarks.ablation import load_recipe
    from mi_augment.ssl.backbones import build_encoder
    from mi_augment.ssl.train import load_checkpoint

    ckpt = load_checkpoint(run / "checkpoint.pt", "cpu")
    cfg = ckpt["config"]
    if cfg.get("method") != "SimCLR" or cfg.get("backbone") not in ("small_cnn", "resnet18"):
        raise ValueError(f"{run} is not a SimCLR small_cnn / resnet18 run: {cfg.get('method')} {cfg.get('backbone')}")
    channels = ckpt["model"]["encoder.mean"].shape[1]
    encoder = build_encoder(cfg["backbone"], in_channels=channels, image_size=32, mean=(0.0,) * channels,
                            std=(1.0,) * channels, cnn_width=cfg.get("cnn_width", 32))
    method = load_recipe("simclr").SimCLR(encoder, cfg["temperature"], hidden_dim=cfg["hidden_dim"])
    method.load_state_dict(ckpt["model"])
    return method.encoder.eval(), method.projector.eval(), float(cfg["temperature"])


def default_run() -> Path:
    found = sorted((ROOT / "runs" / "ablation" / "cpu").glob("fmnist_scenes-B-s0-*/checkpoint.pt"))
    if not found:
        raise FileNotFoundError("no finished fmnist_scenes B seed-0 run under runs/ablation/cpu: run "
                                "`python benchmarks/ablation.py --budget cpu --arms B --datasets fmnist_scenes "
                                "--seeds 0` or pass --run")
    return found[-1].parent


def measure(images: torch.Tensor, garment: torch.Tensor, encoder: torch.nn.Module | None,
            head: torch.nn.Module | None, temperature: float, candidates: int = 8, seed: int = 0,
            arms: tuple[str, ...] = tuple(ARMS), step_batch: int = 256) -> dict[str, Any]:
    """Coverage and correlations of the pairs each scorer keeps under each policy, on images ``(B, 3, S, S)``
    (uint8 or float in [0, 1]) with the garment's boxes ``(B, 4)``."""
    from mi_augment.pairs.policies import make_policy
    from mi_augment.pairs.sampler import box_iou_pairs
    from mi_augment.ssl.views import AugmentOptions, MIViews

    x = images.float() / 255.0 if images.dtype == torch.uint8 else images
    size, channels = x.shape[-1], x.shape[1]
    transforms = {arm: MIViews(size, channels, AugmentOptions(mi_scorer=ARMS[arm][0], mi_policy=ARMS[arm][1],
                                                              mi_candidates=candidates),
                               encoder=encoder, head=head, temperature=temperature).pair for arm in arms}
    plan = transforms[arms[0]].plan(x, torch.Generator().manual_seed(seed))  # the same candidates for all
    cov = box_coverage(plan.boxes, garment).amin(1)  # (B, K): the worse view of each candidate pair
    valid = ~cov.isnan().any(1)
    iou = box_iou_pairs(plan.boxes[:, :1], plan.boxes[:, 1:])[:, 0]  # (B, K)
    out: dict[str, Any] = {"images": int(x.shape[0]), "images_with_garment": int(valid.sum()),
                           "candidates": candidates, "crop_scale": list(transforms[arms[0]].scale),
                           "coverage_vs_iou_spearman": float(spearman_within(cov, iou)[valid].nanmean())}

    def kept(chosen: torch.Tensor) -> dict[str, float]:
        c = cov.gather(1, chosen[:, None])[:, 0][valid]
        return {"coverage": float(c.mean()), "missing_share": float((c < HALF).float().mean()),
                "kept_iou": float(iou.gather(1, chosen[:, None])[:, 0][valid].mean())}

    zeros = torch.zeros(len(x), dtype=torch.long)
    out["random"] = kept(zeros)  # candidates are i.i.d.: the first is a random pair, as the baseline's
    out["best_by_coverage"] = kept(cov.nan_to_num(-1.0).argmax(1))
    scores = {"IoU": iou}  # the overlap-only score: what a scorer adds beyond it is what it knows of content
    for arm in arms:
        t = transforms[arm]
        scores[arm] = torch.cat([t.score(x[r:r + step_batch], plan.index(slice(r, min(r + step_batch, len(x)))))
                                 for r in range(0, len(x), step_batch)])[:, 0]
    for name, score in scores.items():
        row: dict[str, Any] = {"scorer": ARMS[name][0] if name in ARMS else "pair IoU",
                               "score_vs_coverage_spearman": float(spearman_within(score, cov)[valid].nanmean()),
                               "score_vs_iou_spearman": float(spearman_within(score, iou)[valid].nanmean())}
        for policy in POLICIES:
            chosen, _ = make_policy(policy).select_and_keep(score, torch.Generator().manual_seed(seed + 1))
            row[policy] = kept(chosen)
        out[name] = row
    return out


def table(result: dict[str, Any]) -> str:
    rows = ["| score | policy | mean coverage | a view shows < half the garment | kept pair IoU "
            "| score ~ coverage | score ~ IoU |", "|---|---|---:|---:|---:|---:|---:|"]
    r = result["random"]
    rows.append(f"| none (random candidate: the baseline) |  | {r['coverage']:.3f} | {100 * r['missing_share']:.1f} % "
                f"| {r['kept_iou']:.3f} |  |  |")
    for name in ("IoU", *ARMS):
        if name not in result:
            continue
        row = result[name]
        label = "pair IoU (overlap only)" if name == "IoU" else f"{name}: {row['scorer']}"
        for policy in POLICIES:
            k = row[policy]
            own = " (the arm's)" if name in ARMS and ARMS[name][1] == policy else ""
            rows.append(f"| {label} | {policy}{own} | {k['coverage']:.3f} | {100 * k['missing_share']:.1f} % | "
                        f"{k['kept_iou']:.3f} | {row['score_vs_coverage_spearman']:+.3f} | "
                        f"{row['score_vs_iou_spearman']:+.3f} |")
    b = result["best_by_coverage"]
    rows.append(f"| garment coverage itself (oracle headroom) | max | {b['coverage']:.3f} | "
                f"{100 * b['missing_share']:.1f} % | {b['kept_iou']:.3f} |  |  |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=2048, help="test images of fmnist_scenes to re-render")
    p.add_argument("--candidates", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run", type=Path, default=None,
                   help="a finished SimCLR run folder whose encoder scores F and C (default: the CPU ablation's "
                        "fmnist_scenes B seed 0)")
    p.add_argument("--json", type=Path, default=None, help="write the result here")
    args = p.parse_args(argv)
    if args.images < 16:
        p.error(f"--images must be >= 16, got {args.images}")
    torch.set_num_threads(1)
    scenes = scenes_with_boxes(args.images)
    run = args.run or default_run()
    encoder, head, temperature = load_scorer_parts(run)
    result = measure(scenes["images"], scenes["boxes"], encoder, head, temperature, args.candidates, args.seed)
    cached = _matches_cached_dataset(scenes)
    result.update({"command": "python benchmarks/content_coverage.py " + " ".join(argv or sys.argv[1:]),
                   "commit": git_sha(), "machine": machine(), "encoder_run": str(run.relative_to(ROOT))
                   if run.is_relative_to(ROOT) else str(run), "matches_cached_fmnist_scenes": cached})
    print(table(result))
    print(f"(images identical to the cached fmnist_scenes test split: {cached})")
    if args.json:
        atomic_write_bytes(args.json, (json.dumps(result, indent=1) + "\n").encode())
        print(f"wrote {args.json}")
    return result


def _matches_cached_dataset(scenes: dict[str, Any]) -> bool | None:
    """Whether the re-rendered images are the cached dataset's first test images (None: no cache here)."""
    from mi_augment.datasets.scenes import cache_key, default_cache_dir

    if scenes["clips"] is None:
        return None
    path = default_cache_dir() / f"fmnist_scenes-{cache_key(scenes['config'], scenes['clips'])}.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        test = z["test_images"][: len(scenes["images"])]
    return bool(np.array_equal(test, scenes["images"].numpy()))


if __name__ == "__main__":
    main()
