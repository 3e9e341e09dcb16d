"""Downstream accuracy of SSL methods x augment modes x seeds: does our augmentation help?

Each cell trains one recipe (``recipes/<method>.py``) with one ``--augment`` mode and seed, then scores the
frozen encoder (kNN top-1, k=200 cosine-weighted, and a linear probe) on the test split. The table reports
mean +- std over seeds and the paired difference to ``baseline`` (same seed: same initial weights and data
order), which is what says whether a mode wins.

    python benchmarks/downstream.py --budget small                 # CPU, ~15 min: SimCLR, small CNN, FMNIST
    python benchmarks/downstream.py --budget gpu                   # ResNet-18, full FMNIST, 50 epochs
    python benchmarks/downstream.py --methods simclr,byol --modes baseline,mi --seeds 0,1,2 --epochs 20 \\
        --backbone resnet18 --dataset fashion_mnist

Finished cells are reused (their ``results.json``), so an interrupted benchmark continues where it stopped.
Unknown flags go to every recipe; ablations name themselves with ``--tag``:

    python benchmarks/downstream.py --budget small --modes baseline,mi --tag min --share-baseline --mi-policy min

Writes ``benchmarks/results/downstream_<budget>_<date>.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import load_script  # noqa: E402
from mi_augment.core.artifact import atomic_write_bytes  # noqa: E402
from mi_augment.ssl.train import device_name, git_sha  # noqa: E402

#: budget presets: recipe arguments shared by every cell, and the default grid
BUDGETS = {
    "small": {  # 2 CPU cores, about 15 minutes for 3 modes x 3 seeds
        "args": ["--dataset", "default", "--train-subset", "4000", "--test-subset", "2000", "--backbone", "small_cnn",
                 "--batch-size", "256", "--warmup-epochs", "1", "--linear-epochs", "30", "--hidden-dim", "512"],
        "epochs": 2, "methods": ["simclr"], "modes": ["baseline", "natural", "mi"], "seeds": [0, 1, 2],
    },
    "gpu": {  # one GPU: ResNet-18 on all of Fashion-MNIST
        "args": ["--dataset", "fashion_mnist", "--backbone", "resnet18", "--batch-size", "512", "--linear-epochs", "100",
                 "--knn-every", "10"],
        "epochs": 50, "methods": ["simclr", "byol"], "modes": ["baseline", "natural", "mi"], "seeds": [0, 1, 2],
    },
}
HIDDEN_FLAG = {"simclr": "--hidden-dim", "moco": "--hidden-dim", "byol": "--hidden-dim", "simsiam": "--dim",
               "barlow_twins": "--dim", "vicreg": "--dim"}


def load_recipe(name: str):
    return load_script(f"recipes/{name}.py")


def _method_args(method: str, args: list[str]) -> list[str]:
    """Translate the generic ``--hidden-dim`` of a preset into the method's own head-width flag."""
    out = list(args)
    if "--hidden-dim" in out and HIDDEN_FLAG[method] != "--hidden-dim":
        out[out.index("--hidden-dim")] = HIDDEN_FLAG[method]
    return out


def run_cell(method: str, mode: str, seed: int, epochs: int, common: list[str], out: Path,
             extra: list[str]) -> dict:
    results = out / "results.json"
    if results.is_file():
        return json.loads(results.read_text())
    argv = [*_method_args(method, common), "--augment", mode, "--seed", str(seed), "--epochs", str(epochs),
            "--out", str(out), *(["--resume"] if (out / "checkpoint.pt").is_file() else []), "--quiet", *extra]
    return load_recipe(method).main(argv)


def summarise(rows: list[dict]) -> list[dict]:
    """Mean / std over seeds per (method, mode), and the paired difference to that method's baseline."""
    table = []
    for method in dict.fromkeys(r["method"] for r in rows):
        base = {r["seed"]: r for r in rows if r["method"] == method and r["augment"] == "baseline"}
        for mode in dict.fromkeys(r["augment"] for r in rows if r["method"] == method):
            cell = [r for r in rows if r["method"] == method and r["augment"] == mode]
            entry = {"method": method, "augment": mode, "seeds": [r["seed"] for r in cell]}
            for metric in ("knn_top1", "linear_top1"):
                vals = [r[metric] for r in cell if r.get(metric) is not None]
                if not vals:
                    continue
                entry[metric] = statistics.fmean(vals)
                entry[f"{metric}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
                deltas = [r[metric] - base[r["seed"]][metric] for r in cell if r["seed"] in base]
                if mode != "baseline" and deltas:
                    entry[f"{metric}_delta"] = statistics.fmean(deltas)
                    entry[f"{metric}_delta_std"] = statistics.stdev(deltas) if len(deltas) > 1 else 0.0
                    entry[f"{metric}_wins"] = sum(d > 0 for d in deltas)
            entry["train_seconds"] = statistics.fmean(r["train_seconds"] for r in cell)
            table.append(entry)
    return table


def markdown(table: list[dict]) -> str:
    lines = ["| method | augment | kNN top-1 (%) | vs baseline | linear top-1 (%) | vs baseline | train s/run |",
             "|---|---|---:|---:|---:|---:|---:|"]
    def fmt(e: dict, metric: str) -> tuple[str, str]:
        if metric not in e:
            return "-", "-"
        value = f"{e[metric]:.2f} ± {e[metric + '_std']:.2f}"
        if e["augment"] == "baseline" or metric + "_delta" not in e:
            return value, ""
        delta = f"{e[metric + '_delta']:+.2f} ± {e[metric + '_delta_std']:.2f}"
        return value, f"{delta} ({e[metric + '_wins']}/{len(e['seeds'])} seeds)"

    for e in table:
        knn, knn_d = fmt(e, "knn_top1")
        lin, lin_d = fmt(e, "linear_top1")
        lines.append(f"| {e['method']} | {e['augment']} | {knn} | {knn_d} | {lin} | {lin_d} | {e['train_seconds']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", choices=sorted(BUDGETS), default="small")
    p.add_argument("--methods", default=None, help="comma-separated recipes (default: the budget's)")
    p.add_argument("--modes", default=None, help="comma-separated augment modes (default: the budget's)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the budget's)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the budget's)")
    p.add_argument("--runs", default=None, help="folder for the runs (default: runs/downstream_<budget>)")
    p.add_argument("--tag", default="", help="ablation name: suffix of the non-baseline run folders and the result file")
    p.add_argument("--share-baseline", action="store_true",
                   help="reuse the untagged baseline runs (when the extra flags only affect the other modes, "
                        "e.g. --mi-policy)")
    p.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    args, extra = p.parse_known_args(argv)  # unknown flags go to every recipe (e.g. --mi-policy min)
    preset = BUDGETS[args.budget]
    methods = args.methods.split(",") if args.methods else preset["methods"]
    modes = args.modes.split(",") if args.modes else preset["modes"]
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else preset["seeds"]
    epochs = args.epochs or preset["epochs"]
    suffix = f"_{args.tag}" if args.tag else ""
    runs = Path(args.runs or ROOT / "runs" / f"downstream_{args.budget}")
    command = " ".join(["python", "benchmarks/downstream.py", *(argv if argv is not None else sys.argv[1:])])
    print(f"downstream: {command}\n  git {git_sha()}; methods {methods}, modes {modes}, seeds {seeds}, "
          f"{epochs} epochs; recipe args {preset['args'] + extra}", flush=True)

    rows, tic = [], time.perf_counter()
    for method in methods:
        for seed in seeds:
            for mode in modes:
                tagged = suffix if (mode != "baseline" or not args.share_baseline) else ""
                out = runs / f"{method}-{mode}{tagged}-s{seed}"
                r = run_cell(method, mode, seed, epochs, preset["args"], out, extra)
                rows.append({"method": method, "augment": mode, "seed": seed, "knn_top1": r["knn_top1"],
                             "linear_top1": r.get("linear_top1"), "final_loss": r["epoch_loss"][-1],
                             "train_seconds": r["train_seconds"], "device": r["device"], "git_sha": r["git_sha"]})
                print(f"  {method:13s} {mode:9s} seed {seed}: kNN {r['knn_top1']:.2f}  linear "
                      f"{r.get('linear_top1', float('nan')):.2f}  ({r['train_seconds']:.0f} s)", flush=True)
    table = summarise(rows)
    report = {
        "command": command, "budget": args.budget, "recipe_args": preset["args"] + extra, "epochs": epochs,
        "git_sha": git_sha(), "device": rows[0]["device"] if rows else device_name_now(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "wall_seconds": time.perf_counter() - tic,
        "rows": rows, "summary": table, "markdown": markdown(table),
    }
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = Path(args.results_dir) / f"downstream_{args.budget}{suffix}_{stamp}.json"
    atomic_write_bytes(path, json.dumps(report, indent=1).encode())
    print("\n" + report["markdown"] + f"\n\nwritten to {path}", flush=True)
    return report


def device_name_now() -> str:
    import torch

    return device_name(torch.device("cuda" if torch.cuda.is_available() else "cpu"))


if __name__ == "__main__":
    main()
