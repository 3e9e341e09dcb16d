"""Speed of the natural perturbation transforms against torchvision's ColorJitter, and model fitting time.

    python benchmarks/perturbations.py [--device cpu|cuda] [--batch 256] [--size 96] [--threads 1]

Compares, in one run on the same machine:
  * torchvision ``ColorJitter(0.4, 0.4, 0.4, 0.1)`` applied per image (the usual DataLoader-worker way),
  * torchvision v2 ``ColorJitter`` on the whole batch (one draw for the whole batch: not per-sample),
  * mi_augment ``NaturalIllumination`` on the batch (per-sample parameters),
  * mi_augment ``NaturalIllumination`` + ``NaturalMotion`` on the batch,
and times ``IlluminationModel.fit`` / ``MotionModel.fit`` on bikes.mp4 (and carphone.mp4). Prints a table and
writes ``benchmarks/results/perturbations_<device>.json``.

The transforms are timed in ``--repeats`` interleaved rounds (one call of each per round, so load from other
processes hits all of them alike) and each one's fastest round is reported (the median is in the JSON).
``--threads`` sets torch's CPU threads for every pipeline alike (default 1: per core, as
``benchmarks/throughput.py``); the fits run with the same setting.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from _common import write_json


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved(fns: dict, repeats: int, device: str) -> dict[str, list[float]]:
    """Seconds per call of every ``fns`` entry over ``repeats`` interleaved rounds (after one warm-up each)."""
    for fn in fns.values():
        fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: per core)")
    ap.add_argument("--skip-fit", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from torchvision.transforms import v2

    from mi_augment.perturbations.illumination import IlluminationModel
    from mi_augment.perturbations.motion import MotionModel
    from mi_augment.transforms.illumination import NaturalIllumination
    from mi_augment.transforms.motion import NaturalMotion

    dev = args.device
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=g).to(dev)
    cj = v2.ColorJitter(0.4, 0.4, 0.4, 0.1)
    ni = NaturalIllumination(IlluminationModel.default()).to(dev)
    nm = NaturalMotion(MotionModel.default(), p=1.0).to(dev)

    fns = {
        "torchvision ColorJitter, per image": lambda: [cj(im) for im in x],
        "torchvision v2 ColorJitter, whole batch (one draw)": lambda: cj(x),
        "NaturalIllumination, batch (per sample)": lambda: ni(x),
        "NaturalMotion, batch (per sample)": lambda: nm(x),
        "NaturalIllumination + NaturalMotion, batch": lambda: nm(ni(x)),
    }
    times = interleaved(fns, args.repeats, dev)
    rows = {name: min(t) for name, t in times.items()}
    medians = {name: sorted(t)[len(t) // 2] for name, t in times.items()}

    ref = rows["torchvision ColorJitter, per image"]
    print(f"\nbatch {args.batch} x 3 x {args.size} x {args.size} on {dev}, torch threads {torch.get_num_threads()}")
    print(f"{'pipeline':55s} {'ms/batch':>10s} {'images/s':>10s} {'speed-up vs CJ per image':>26s}")
    table = []
    for name, t in rows.items():
        print(f"{name:55s} {t * 1e3:10.1f} {args.batch / t:10.0f} {ref / t:26.2f}x")
        table.append({"pipeline": name, "seconds_per_batch": t, "seconds_per_batch_median": medians[name],
                      "images_per_s": args.batch / t, "speedup_vs_cj_per_image": ref / t})

    fits = []
    if not args.skip_fit:
        from mi_augment.datasets.samples import available_samples

        avail = available_samples()
        for name in ("bikes", "carphone"):
            if name not in avail:
                continue
            for cls in (IlluminationModel, MotionModel):
                t0 = time.perf_counter()
                m = cls().fit([str(avail[name])])
                dt = time.perf_counter() - t0
                fits.append({"model": cls.__name__, "clip": name, "seconds": dt, "n_used": m.fit_info.get("n_used")})
                print(f"fit {cls.__name__:18s} on {name:9s}: {dt:6.1f} s ({m.fit_info.get('n_used')} observations)")
    out = write_json(f"perturbations_{dev.split(':')[0]}.json",
                     {"command": "python benchmarks/perturbations.py " + " ".join(sys.argv[1:]), "batch": args.batch,
                      "size": args.size, "device": dev, "threads": args.threads, "repeats": args.repeats,
                      "transforms": table, "fits": fits})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
