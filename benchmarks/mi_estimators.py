"""Accuracy and speed of the MI estimators in ``mi_augment.mi``.

Accuracy: correlated Gaussians with a closed-form MI (``d`` independent pairs of components with correlation
``rho``: ``I = -d/2 log(1 - rho^2)``), many independent repetitions per cell solved in one batched call;
reports bias, standard deviation and RMSE of every estimator by ``N``, dimension and ``rho``.

Speed: ``ksg_mi`` on a batch of 64 problems of N=1000 1-D pairs against scikit-learn's
``mutual_info_regression`` solving them one by one (same data, same machine, same run, reported as a ratio),
all-pairs ``pairwise_mi`` for 256 trajectories x 64 frames x 3-D, and ``histogram_mi`` on 32x32 pixel pairs.

Run: ``python benchmarks/mi_estimators.py`` (about 2-3 minutes on 2 CPU cores) writes
``benchmarks/results/mi_estimators_cpu.json`` and ``docs/figures/mi_estimators_bias.png``; ``--quick`` is a
smoke run. Pass ``--device cuda`` to time on a GPU (the scikit-learn comparison stays on the CPU).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mi_augment.mi import gaussian_mi, histogram_mi, kl3_mi, ksg_mi, pairwise_mi

ROOT = Path(__file__).resolve().parents[1]
RHOS = (0.0, 0.5, 0.9, 0.99)
DIMS = (1, 2, 3, 4)


def estimators() -> dict:
    return {
        "ksg": lambda x, y: ksg_mi(x, y, k=3, variant=1),
        "ksg2": lambda x, y: ksg_mi(x, y, k=3, variant=2),
        "kl3": lambda x, y: kl3_mi(x, y, k=3),
        "gaussian": lambda x, y: gaussian_mi(x, y),
        "histogram": lambda x, y: histogram_mi(x[..., 0], y[..., 0], bins=16),
    }


def correlated_gaussians(reps: int, n: int, d: int, rho: float, seed: int, device: str) -> tuple:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(reps, n, d, generator=g, dtype=torch.float64)
    y = rho * x + math.sqrt(1 - rho**2) * torch.randn(reps, n, d, generator=g, dtype=torch.float64)
    return x.float().to(device), y.float().to(device)


def accuracy(sizes: dict[int, int], device: str) -> list[dict]:
    rows = []
    for n, reps in sizes.items():
        for d in DIMS:
            for rho in RHOS:
                truth = -d / 2 * math.log(1 - rho**2) + 0.0  # + 0.0: no "-0.0" in the tables
                x, y = correlated_gaussians(reps, n, d, rho, seed=1000 * n + 10 * d + int(100 * rho), device=device)
                for name, fn in estimators().items():
                    if name == "histogram" and d > 1:
                        continue
                    start = time.perf_counter()
                    est = fn(x, y).double().cpu().numpy()
                    seconds = time.perf_counter() - start
                    bias = float(est.mean() - truth)
                    sd = float(est.std(ddof=1))
                    rows.append({
                        "estimator": name, "N": n, "d": d, "rho": rho, "reps": reps, "truth": truth,
                        "mean": float(est.mean()), "bias": bias, "sd": sd, "rmse": math.sqrt(bias**2 + sd**2),
                        "seconds": seconds,
                    })
        print(f"  accuracy N={n} done", flush=True)
    return rows


def best_time(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def speed_vs_sklearn(device: str, repeats: int) -> dict:
    from sklearn.feature_selection import mutual_info_regression

    rng = np.random.default_rng(0)
    problems, n = 64, 1000
    x = rng.standard_normal((problems, n))
    y = 0.6 * x + 0.8 * rng.standard_normal((problems, n))

    sk_values = []

    def run_sklearn():
        sk_values.clear()
        for b in range(problems):
            sk_values.append(mutual_info_regression(x[b, :, None], y[b], n_neighbors=3, random_state=0)[0])

    sk_seconds = best_time(run_sklearn, repeats)
    out = {"problems": problems, "N": n, "k": 3, "sklearn_seconds": sk_seconds, "torch": []}
    threads_before = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for dtype in (torch.float64, torch.float32):
            xt = torch.from_numpy(x)[..., None].to(device, dtype)
            yt = torch.from_numpy(y)[..., None].to(device, dtype)
            values = ksg_mi(xt, yt, k=3)
            sync(device)
            seconds = best_time(lambda: (ksg_mi(xt, yt, k=3), sync(device)), repeats)  # noqa: B023
            diff = float(np.abs(values.clamp(min=0).double().cpu().numpy() - np.array(sk_values)).max())
            out["torch"].append({
                "threads": threads, "dtype": str(dtype).replace("torch.", ""), "seconds": seconds,
                "speedup_vs_sklearn": sk_seconds / seconds, "max_abs_diff_vs_sklearn": diff,
            })
    # For reference: the brute-force distance-matrix search on the same problems (float32, 1 thread).
    torch.set_num_threads(1)
    xt = torch.from_numpy(x)[..., None].to(device, torch.float32)
    yt = torch.from_numpy(y)[..., None].to(device, torch.float32)
    seconds = best_time(lambda: (ksg_mi(xt, yt, k=3, method="brute"), sync(device)), 1)
    out["brute_force_float32_1thread"] = {"seconds": seconds, "speedup_vs_sklearn": sk_seconds / seconds}
    torch.set_num_threads(threads_before)
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def speed_pairwise(device: str, repeats: int, threads: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    p, t, d = 256, 64, 3
    base = torch.randn(p // 2, t, d, generator=g)
    traj = torch.cat([base, 0.8 * base + 0.6 * torch.randn(p // 2, t, d, generator=g)]).to(device)
    rows = []
    for name, kwargs in (("kl3", {}), ("ksg", {"variant": 1}), ("gaussian", {})):
        pairwise_mi(traj, name, **kwargs)
        seconds = best_time(lambda: (pairwise_mi(traj, name, **kwargs), sync(device)), repeats)  # noqa: B023
        pairs = p * (p + 1) // 2
        rows.append({"estimator": name, "P": p, "T": t, "D": d, "threads": threads, "seconds": seconds,
                     "pairs_per_second": pairs / seconds})
    return rows


def speed_histogram(device: str, repeats: int, batch: int, threads: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(batch, 32 * 32, generator=g)
    b = (0.8 * a + 0.2 * torch.rand(batch, 32 * 32, generator=g)).clamp(0, 1)
    a, b = a.to(device), b.to(device)
    rows = []
    for soft in (False, True):
        size = batch if not soft else max(1, batch // 4)
        histogram_mi(a[:size], b[:size], bins=16, range=(0, 1), soft=soft)
        seconds = best_time(
            lambda: (histogram_mi(a[:size], b[:size], bins=16, range=(0, 1), soft=soft), sync(device)),  # noqa: B023
            repeats,
        )
        rows.append({"soft": soft, "pairs": size, "pixels": 1024, "bins": 16, "threads": threads, "seconds": seconds,
                     "pairs_per_second": size / seconds})
    return rows


def print_accuracy(rows: list[dict]) -> None:
    print("\nAccuracy on correlated Gaussians (nats): bias +- sd over repetitions")
    names = list(estimators())
    print(f"{'N':>5} {'d':>2} {'rho':>5} {'truth':>6} " + " ".join(f"{n:>16}" for n in names))
    keys = sorted({(r["N"], r["d"], r["rho"]) for r in rows})
    for n, d, rho in keys:
        cells = []
        truth = None
        for name in names:
            match = [r for r in rows if (r["N"], r["d"], r["rho"], r["estimator"]) == (n, d, rho, name)]
            if match:
                truth = match[0]["truth"]
                cells.append(f"{match[0]['bias']:+7.3f} +-{match[0]['sd']:6.3f}")
            else:
                cells.append(f"{'-':>16}")
        print(f"{n:>5} {d:>2} {rho:>5} {truth:6.3f} " + " ".join(f"{c:>16}" for c in cells))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(estimators())
    fig, axes = plt.subplots(len(names), len(DIMS), figsize=(4 * len(DIMS), 2.8 * len(names)), squeeze=False,
                             sharex=True)
    for i, name in enumerate(names):
        for j, d in enumerate(DIMS):
            ax = axes[i][j]
            for rho in RHOS:
                sel = sorted((r for r in rows if r["estimator"] == name and r["d"] == d and r["rho"] == rho),
                             key=lambda r: r["N"])
                if not sel:
                    continue
                ax.errorbar([r["N"] for r in sel], [r["bias"] for r in sel], yerr=[r["sd"] for r in sel],
                            marker="o", capsize=3, label=f"rho={rho} (I={sel[0]['truth']:.2f})")
            ax.axhline(0, color="grey", lw=0.8)
            ax.set_xscale("log")
            if any(r["estimator"] == name and r["d"] == d for r in rows):
                ax.set_title(f"{name}, d={d}", fontsize=9)
            if j == 0:
                ax.set_ylabel("bias (nats)")
            if i == len(names) - 1:
                ax.set_xlabel("N")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6)
            else:
                ax.set_axis_off()
    fig.suptitle("MI estimate minus truth on correlated Gaussians (error bars: 1 sd over repetitions)")
    fig.tight_layout()
    from mi_augment.figures import save_figure

    save_figure(fig, path, dpi=90)


def machine() -> dict:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        sha = ""
    import sklearn

    return {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "torch": torch.__version__, "sklearn": sklearn.__version__,
        "python": sys.version.split()[0], "torch_threads": torch.get_num_threads(), "git_sha": sha,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the accuracy part (speed is measured with 1 and 2 threads)")
    parser.add_argument("--speed-threads", type=int, nargs="+", default=[1],
                        help="torch thread counts for the pairwise and histogram timings")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mi_estimators_cpu.json")
    parser.add_argument("--figure", type=Path, default=ROOT / "docs" / "figures" / "mi_estimators_bias.png")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine()
    info["command"] = "python benchmarks/mi_estimators.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print("config:", json.dumps(info), flush=True)
    sizes = {100: 8, 1000: 4} if args.quick else {100: 100, 500: 32, 2000: 8}
    repeats = 1 if args.quick else 2

    start = time.perf_counter()
    rows = accuracy(sizes, args.device)
    print_accuracy(rows)
    sk = speed_vs_sklearn(args.device, repeats)
    print(f"\nksg_mi vs sklearn mutual_info_regression, {sk['problems']} problems of N={sk['N']} 1-D pairs:")
    print(f"  sklearn one by one: {sk['sklearn_seconds']:.3f} s")
    for r in sk["torch"]:
        print(f"  ksg_mi batched ({r['dtype']}, {r['threads']} thread(s)): {r['seconds']:.3f} s -> "
              f"{r['speedup_vs_sklearn']:.2f}x sklearn speed, max |diff| {r['max_abs_diff_vs_sklearn']:.1e} nats")
    brute = sk["brute_force_float32_1thread"]
    print(f"  (brute-force distance matrix instead, float32, 1 thread: {brute['seconds']:.3f} s -> "
          f"{brute['speedup_vs_sklearn']:.2f}x)")
    pw, hist = [], []
    for threads in args.speed_threads:
        torch.set_num_threads(threads)
        pw += speed_pairwise(args.device, repeats, threads)
        hist += speed_histogram(args.device, repeats, 256 if args.quick else 4096, threads)
    torch.set_num_threads(args.threads)
    print("\npairwise_mi, 256 trajectories x 64 frames x 3-D (32,896 pairs):")
    for r in pw:
        print(f"  {r['estimator']:9s} {r['threads']} thread(s) {r['seconds']:.3f} s  ({r['pairs_per_second']:,.0f} pairs/s)")
    print("\nhistogram_mi on 32x32-pixel pairs, 16 bins:")
    for r in hist:
        print(f"  {'soft' if r['soft'] else 'hard'} {r['threads']} thread(s): {r['pairs']} pairs in {r['seconds']:.3f} s "
              f"({r['pairs_per_second']:,.0f} pairs/s)")
    total = time.perf_counter() - start
    print(f"\ntotal {total:.0f} s")

    result = {"machine": info, "accuracy": rows, "ksg_vs_sklearn": sk, "pairwise": pw, "histogram": hist,
              "total_seconds": total}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    plot(rows, args.figure)
    print(f"wrote {args.out} and {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
