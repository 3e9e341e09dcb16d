"""How much of the pixel-MI score is crop overlap? The measurement behind docs/mi_pairs.md#what-the-pixel-score-measures.

On real Fashion-MNIST images, ``MIPairTransform`` draws K candidate crop pairs per image and scores them. Reported:

* the within-image Spearman correlation between a candidate's score and its pair IoU (median over images);
* the share of the within-image score variance that overlap and the two crop areas explain (R^2 of a
  least-squares fit on per-image-centred values);
* the share of the candidates the policy keeps that lie in the top half of their image's candidates by IoU;
* the chosen pairs' mean IoU and mean crop area, against plain RandomResizedCrop pairs (``policy="random"``)
  over a grid of ``scale=(s, 1)``: the ``s`` whose pairs match both is the overlap-equivalent crop scale.

    python benchmarks/overlap.py                       # 512 images, K=8, both photometric settings, ~1 min
    python benchmarks/overlap.py --images 2048 --json benchmarks/results/overlap_cpu.json

Writes JSON (command, commit, machine, numbers) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import spearman_within  # noqa: E402
from mi_augment.core.artifact import atomic_write_bytes  # noqa: E402
from mi_augment.datasets.loading import fashion_mnist, fixed_subset  # noqa: E402
from mi_augment.ssl.train import git_sha  # noqa: E402
from mi_augment.transforms import MIPairTransform  # noqa: E402


def _area(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]) / (h * w)


def measure(x: torch.Tensor, transform: MIPairTransform, seed: int) -> dict:
    """Overlap statistics of one configuration on float images ``x``."""
    g = torch.Generator().manual_seed(seed)
    h, w = x.shape[-2:]
    candidates = transform.plan(x, g)
    scores = transform.score(x, candidates)[:, 0]  # (B, K)
    info = transform.choose(candidates, scores[:, None], g)
    boxes = candidates.boxes
    iou = info.candidate_iou[:, 0]  # (B, K)
    area_a, area_b = _area(boxes[:, 0], h, w), _area(boxes[:, 1], h, w)
    spearman = spearman_within(scores, iou)
    centre = lambda t: (t - t.mean(1, keepdim=True)).flatten()  # noqa: E731
    design = torch.stack([centre(iou), centre(area_a), centre(area_b)], 1).double()
    target = centre(scores).double()
    coef = torch.linalg.lstsq(design, target[:, None]).solution
    r2 = 1 - float(((design @ coef)[:, 0] - target).pow(2).sum() / target.pow(2).sum().clamp_min(1e-12))
    iou_rank = iou.argsort(1).argsort(1).float()
    top_half = iou_rank > iou_rank.mean(1, keepdim=True)  # above the image's median rank
    kept = info.keep
    return {
        "spearman_score_iou_median": float(spearman.nanmedian()),
        "variance_explained_by_overlap_and_areas": r2,
        "kept_in_top_half_by_iou": float((kept & top_half).sum() / kept.sum()),
        "chosen_mean_iou": float(info.iou.mean()),
        "chosen_mean_area": float(_area(info.params.boxes, h, w).mean()),
        "candidate_mean_iou": float(iou.mean()),
    }


def random_pairs(x: torch.Tensor, scale_min: float, size: int, seed: int) -> dict:
    t = MIPairTransform(size, scale=(scale_min, 1.0), policy="random", view_transforms=None)
    info = t.choose(t.plan(x, torch.Generator().manual_seed(seed)))
    h, w = x.shape[-2:]
    return {"scale_min": scale_min, "mean_iou": float(info.iou.mean()),
            "mean_area": float(_area(info.params.boxes, h, w).mean())}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "overlap_cpu.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    train, _ = fashion_mnist()
    x = fixed_subset(train, args.images, seed=args.seed).images.float().div(255)
    configs = {
        "pixels, no natural models (the recipes' mi mode)": dict(view_transforms=None),
        "pixels, shipped natural models": dict(illumination="default", motion="default", view_transforms=None),
    }
    out = {"command": "python benchmarks/overlap.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "commit": git_sha(), "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
           "images": args.images, "candidates": args.candidates, "configs": {}, "random_resized_crop": []}
    for name, kw in configs.items():
        t = MIPairTransform(args.size, scale=(0.2, 1.0), n_candidates=args.candidates, **kw)
        out["configs"][name] = measure(x, t, args.seed)
    for s in (0.2, 0.25, 0.3, 0.33, 0.36, 0.4, 0.45, 0.5):
        out["random_resized_crop"].append(random_pairs(x, s, args.size, args.seed))
    print(f"{'configuration':<52} {'spearman':>8} {'R2':>6} {'kept top-half':>13} {'IoU':>6} {'area':>6}")
    for name, m in out["configs"].items():
        print(f"{name:<52} {m['spearman_score_iou_median']:8.2f} {m['variance_explained_by_overlap_and_areas']:6.2f} "
              f"{m['kept_in_top_half_by_iou']:13.2f} {m['chosen_mean_iou']:6.3f} {m['chosen_mean_area']:6.3f}")
    for row in out["random_resized_crop"]:
        print(f"{'RandomResizedCrop scale=(' + format(row['scale_min'], '.2f') + ', 1)':<52} {'':>8} {'':>6} "
              f"{'':>13} {row['mean_iou']:6.3f} {row['mean_area']:6.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.json, (json.dumps(out, indent=1) + "\n").encode())
    print(f"wrote {args.json}")
    return out


if __name__ == "__main__":
    main()
