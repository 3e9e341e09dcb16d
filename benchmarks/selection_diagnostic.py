"""Do the crop arms keep pairs that differ from random ones? The selection diagnostic of issue 22, run before
any training of a new grid: a selection arm whose kept pairs look like random pairs cannot differ from ``B``.

On the first ``--images`` test images of ``fmnist_scenes`` (the garment's box known from the generator), each
image gets K candidate crop pairs (the recipes' crop scale), every arm scores the *same* candidates with its
scorer and keeps one by its policy. Per image, the kept pair's IoU and garment coverage (the worse view's
share of the garment's box; "missing" when below one half) are compared with a random candidate's (the
first, as the candidates are i.i.d.: what ``B`` keeps). Reported per arm: the paired difference arm - random
over images, mean and 95 % t CI, for kept IoU, coverage and the missing share.

    python benchmarks/selection_diagnostic.py --run untrained \\
        --json benchmarks/results/selection_diagnostic_cpu.json
    python benchmarks/selection_diagnostic.py --run runs/ablation/cpu_shift/fmnist_scenes-B-s0-<key>

``--run untrained`` scores ``F`` with an untrained small CNN and projector (seed 0, the recipe's architecture;
inputs normalised with mean 0.5 and SD 0.25 rather than the dataset's statistics): about what ``F`` selects at
its first step, before any training; a run folder scores it with that run's trained weights.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import git_sha, machine  # noqa: E402
from benchmarks.content_coverage import HALF, load_scorer_parts, scenes_with_boxes  # noqa: E402
from mi_augment.core.artifact import atomic_write_bytes  # noqa: E402

#: arm -> (scorer, policy): the grids' crop arms; F is the cpu_shift budget's (max), F_band the earlier one
ARMS = {
    "P": ("pixels", "threshold"),
    "F": ("features", "max"),
    "F_band": ("features", "band"),
    "C": ("crop-image", "threshold"),
    "I": ("iou", "max"),
}


def paired(diffs: torch.Tensor) -> dict[str, float]:
    """Mean and 95 % t CI of per-image paired differences."""
    from scipy import stats

    n = int(diffs.numel())
    mean = float(diffs.mean())
    half = float(stats.t.ppf(0.975, n - 1)) * float(diffs.std()) / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def diagnose(
    images: torch.Tensor,
    garment: torch.Tensor,
    encoder,
    head,
    temperature: float,
    candidates: int = 8,
    seed: int = 0,
    step_batch: int = 256,
) -> dict[str, Any]:
    """Per arm: kept IoU, coverage and missing share, and their paired differences against a random pair."""
    from mi_augment.pairs.controls import box_coverage
    from mi_augment.pairs.policies import make_policy
    from mi_augment.pairs.sampler import box_iou_pairs
    from mi_augment.ssl.views import AugmentOptions, MIViews

    x = images.float() / 255.0 if images.dtype == torch.uint8 else images
    size, channels = x.shape[-1], x.shape[1]
    pairs = {
        arm: MIViews(
            size,
            channels,
            AugmentOptions(mi_scorer=sc, mi_policy=pol, mi_candidates=candidates),
            encoder=encoder,
            head=head,
            temperature=temperature,
        ).pair
        for arm, (sc, pol) in ARMS.items()
    }
    first = next(iter(pairs.values()))
    plan = first.plan(x, torch.Generator().manual_seed(seed))  # the same candidates for every arm
    cov = box_coverage(plan.boxes, garment).amin(1)  # (B, K)
    valid = ~cov.isnan().any(1)
    iou = box_iou_pairs(plan.boxes[:, :1], plan.boxes[:, 1:])[:, 0]

    def kept(chosen: torch.Tensor) -> dict[str, torch.Tensor]:
        c = cov.gather(1, chosen[:, None])[:, 0][valid]
        return {
            "kept_iou": iou.gather(1, chosen[:, None])[:, 0][valid],
            "coverage": c,
            "missing": (c < HALF).float(),
        }

    random = kept(torch.zeros(len(x), dtype=torch.long))
    out: dict[str, Any] = {
        "images": int(valid.sum()),
        "candidates": candidates,
        "crop_scale": list(first.scale),
        "random": {k: float(v.mean()) for k, v in random.items()},
    }
    for arm, pair in pairs.items():
        scores = torch.cat(
            [
                pair.score(x[r : r + step_batch], plan.index(slice(r, min(r + step_batch, len(x)))))
                for r in range(0, len(x), step_batch)
            ]
        )[:, 0]
        chosen, _ = make_policy(ARMS[arm][1]).select_and_keep(scores, torch.Generator().manual_seed(seed + 1))
        mine = kept(chosen)
        out[arm] = {
            "scorer": ARMS[arm][0],
            "policy": ARMS[arm][1],
            **{k: float(v.mean()) for k, v in mine.items()},
            "vs_random": {k: paired(mine[k] - random[k]) for k in mine},
        }
    return out


def untrained_parts(seed: int = 0, hidden_dim: int = 512, temperature: float = 0.2):
    """An untrained encoder and projector of a CPU SimCLR cell's architecture (small CNN, 3 channels)."""
    from benchmarks.ablation import load_recipe
    from mi_augment.ssl.backbones import build_encoder

    torch.manual_seed(seed)
    encoder = build_encoder("small_cnn", in_channels=3, image_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    method = load_recipe("simclr").SimCLR(encoder, temperature, hidden_dim=hidden_dim)
    return method.encoder.eval(), method.projector.eval(), temperature


def table(result: dict[str, Any]) -> str:
    lines = [
        "| arm (scorer, policy) | kept IoU | Δ IoU vs random [95 % CI] | coverage | Δ coverage [95 % CI] | "
        "missing | Δ missing [95 % CI] |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    r = result["random"]
    lines.append(f"| random (B) | {r['kept_iou']:.3f} |  | {r['coverage']:.3f} |  | {r['missing']:.3f} |  |")
    for arm in ARMS:
        a = result[arm]

        def ci(k, a=a):
            d = a["vs_random"][k]
            return f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"

        lines.append(
            f"| {arm} ({a['scorer']}, {a['policy']}) | {a['kept_iou']:.3f} | {ci('kept_iou')} | "
            f"{a['coverage']:.3f} | {ci('coverage')} | {a['missing']:.3f} | {ci('missing')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--run",
        required=True,
        help="a finished SimCLR run folder (its checkpoint.pt), or 'untrained' (seed 0's initial weights)",
    )
    p.add_argument("--images", type=int, default=2048)
    p.add_argument("--candidates", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    scenes = scenes_with_boxes(args.images, seed=0)
    encoder, head, temperature = (
        untrained_parts() if args.run == "untrained" else load_scorer_parts(Path(args.run))
    )
    result = diagnose(
        scenes["images"], scenes["boxes"], encoder, head, temperature, args.candidates, args.seed
    )
    result.update(
        command=" ".join(["python", "benchmarks/selection_diagnostic.py", *(argv or sys.argv[1:])]),
        commit=git_sha(),
        machine=machine(),
        encoder_run=str(args.run),
    )
    print(table(result))
    if args.json:
        atomic_write_bytes(args.json, json.dumps(result, indent=1).encode())
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
