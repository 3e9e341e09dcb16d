"""Pool an arm's paired differences over several ablation JSONLs (descriptive, never a verdict).

A confirmation grid (e.g. budget ``cpu20k_confirm``: the ``cpu20k`` cells at fresh seeds) is judged on its
own seeds by the driver. This script only describes what all seeds say together: per metric, the paired
differences arm − comparator over every seed found in any of the files (a seed present twice is an error),
their mean, 95 % t CI, p-value and how many are positive. The pooled numbers are not pre-registered tests
(one of the pooled sets was chosen because its result was seen) and docs/results.md labels them so.

    python benchmarks/pool_seeds.py benchmarks/results/ablation_cpu20k.jsonl \\
        benchmarks/results/ablation_cpu20k_confirm.jsonl --arm natural_matched --vs B --dataset fashion_mnist
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import load_script  # noqa: E402


def _ablation():
    return load_script("benchmarks/ablation.py")  # the driver is a script: loaded once, by path


def pooled(files: list[Path], arm: str, vs: str, dataset: str) -> dict[str, Any]:
    """Per metric: n, mean, 95 % CI, p, positives and the per-seed differences (seed order) of ``arm − vs``."""
    ablation = _ablation()
    cells: dict[tuple[str, int], dict[str, Any]] = {}
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"files: {path} does not exist")
        for r in ablation.read_jsonl(path):
            if r.get("kind") == "calibration" or r.get("dataset") != dataset or r.get("arm") not in (arm, vs):
                continue
            if ablation.PRIMARY not in r:
                continue
            key = (r["arm"], int(r["seed"]))
            if key in cells:
                raise ValueError(f"files: {r['arm']} seed {r['seed']} appears more than once; pool disjoint seeds")
            cells[key] = r
    seeds = sorted(s for (a, s) in cells if a == arm and (vs, s) in cells)
    if len(seeds) < 2:
        raise ValueError(f"need at least 2 seeds with both {arm!r} and {vs!r} on {dataset!r}; found {seeds}")
    out: dict[str, Any] = {"arm": arm, "vs": vs, "dataset": dataset, "seeds": seeds,
                           "files": [str(p) for p in files]}
    for m in ablation.METRICS:
        diffs = [cells[(arm, s)][m] - cells[(vs, s)][m] for s in seeds]
        mean, lo, hi, p = ablation.t_interval(diffs)
        out[m] = {"n": len(diffs), "mean": mean, "ci_low": lo, "ci_high": hi, "p": p,
                  "positive": sum(d > 0 for d in diffs), "diffs": diffs}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+", type=Path, help="ablation JSONL files (disjoint seeds)")
    p.add_argument("--arm", required=True)
    p.add_argument("--vs", default="B", help="the comparator arm (default: B)")
    p.add_argument("--dataset", required=True)
    args = p.parse_args(argv)
    result = pooled(args.files, args.arm, args.vs, args.dataset)
    print(f"{args.arm} - {args.vs} on {args.dataset}, seeds {result['seeds']} (descriptive, not a verdict)")
    for m in _ablation().METRICS:
        r = result[m]
        print(f"  {m:<14} {r['mean']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]  p {r['p']:.4f}  "
              f"positive on {r['positive']} of {r['n']}")
    return result


if __name__ == "__main__":
    main()
