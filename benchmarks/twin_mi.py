"""All-pairs MI for twin-patch mining: 256 patch trajectories x 64 frames (the issue's target: < 1 s on 2 cores).

Measures, on synthetic trajectories shaped like the miner's (``(P, S, D)``: S = 63 frame steps of residual
velocity (2) and colour change (3), so D = 5, in groups that move together):

* ``pairwise_mi``: :func:`mi_augment.mi.pairwise_mi` on the ``(256, 63, 5)`` block, ``kl3`` (default) and
  ``ksg``: the all-pairs step the issue asks to time;
* ``twins_stage``: :func:`mi_augment.video.twins.twins_from_trajectories`, i.e. the all-pairs MI plus the
  shuffled-baseline significance test and the twin choice, as the miner runs it.

Each timing is the best of ``--rounds`` runs after a warm-up (the median is in the JSON too): on a shared
machine, load from other processes only ever adds time, so the best round is the closest to the code's cost.
The machine's load average before and after is recorded. Both 1 and 2 intra-op threads are measured: the
all-pairs loop runs many small kernels, and on a busy 2-core machine a second thread mostly waits.

Usage::

    python benchmarks/twin_mi.py                 # 1 and 2 threads, writes benchmarks/results/twin_mi_cpu.json
    python benchmarks/twin_mi.py --threads 2 --patches 128
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_json  # noqa: E402


def grouped_trajectories(patches: int, steps: int, dims: int, groups: int = 16, seed: int = 0) -> torch.Tensor:
    """``(patches, steps, dims)``: ``groups`` shared random sequences plus independent noise."""
    g = torch.Generator().manual_seed(seed)
    shared = torch.randn(groups, steps, dims, generator=g)
    member = torch.arange(patches) % groups
    return shared[member] + 0.3 * torch.randn(patches, steps, dims, generator=g)


def best_and_median(fn, rounds: int) -> tuple[float, float, list[float]]:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    ordered = sorted(times)
    return ordered[0], ordered[len(ordered) // 2], times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patches", type=int, default=256)
    parser.add_argument("--frames", type=int, default=64, help="frames per trajectory (frame steps = frames - 1)")
    parser.add_argument("--dims", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch intra-op thread counts to measure (default: 1 2)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="twin_mi_cpu.json")
    args = parser.parse_args(argv)

    from mi_augment.mi import pairwise_mi
    from mi_augment.video.twins import twins_from_trajectories

    x = grouped_trajectories(args.patches, args.frames - 1, args.dims)
    load_before = os.getloadavg()
    results = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        for estimator in ("kl3", "ksg"):
            best, median, times = best_and_median(lambda e=estimator: pairwise_mi(x, e), args.rounds)
            results[f"pairwise_mi_{estimator}_threads{threads}"] = {
                "best_s": round(best, 4), "median_s": round(median, 4), "all_s": [round(t, 4) for t in times]}
            print(f"pairwise_mi {estimator}, {threads} thread(s): best {best:.3f} s, median {median:.3f} s "
                  f"({args.patches} x {args.frames - 1} x {args.dims})")
        best, median, times = best_and_median(lambda: twins_from_trajectories(x), max(1, args.rounds // 2))
        results[f"twins_stage_kl3_threads{threads}"] = {
            "best_s": round(best, 4), "median_s": round(median, 4), "all_s": [round(t, 4) for t in times]}
        print(f"twins stage (all-pairs + shuffled baseline) kl3, {threads} thread(s): best {best:.3f} s, "
              f"median {median:.3f} s")
    load_after = os.getloadavg()
    path = write_json(args.out, {
        "benchmark": "twin_mi",
        "command": "python benchmarks/" + Path(__file__).name + " " + " ".join(argv or sys.argv[1:]),
        "shape": {"patches": args.patches, "frames": args.frames, "steps": args.frames - 1, "dims": args.dims},
        "threads": args.threads,
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "target_s": 1.0,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "results": results,
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
