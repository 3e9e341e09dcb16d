"""Speed of the natural perturbation transforms against torchvision's ColorJitter, and model fitting time.

    python benchmarks/perturbations.py [--device cpu|cuda] [--batch 256] [--size 96]

Compares, in one run on the same machine:
  * torchvision ``ColorJitter(0.4, 0.4, 0.4, 0.1)`` applied per image (the usual DataLoader-worker way),
  * torchvision v2 ``ColorJitter`` on the whole batch (one draw for the whole batch: not per-sample),
  * mi_augment ``NaturalIllumination`` on the batch (per-sample parameters),
  * mi_augment ``NaturalIllumination`` + ``NaturalMotion`` on the batch,
and times ``IlluminationModel.fit`` / ``MotionModel.fit`` on bikes.mp4 (and carphone.mp4). Prints a table and
writes ``benchmarks/results/perturbations_<device>.json``.
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import timeit, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-fit", action="store_true")
    args = ap.parse_args()

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

    rows = {}
    rows["torchvision ColorJitter, per image"] = timeit(lambda: [cj(im) for im in x], repeats=args.repeats, device=dev)
    rows["torchvision v2 ColorJitter, whole batch (one draw)"] = timeit(lambda: cj(x), repeats=args.repeats, device=dev)
    rows["NaturalIllumination, batch (per sample)"] = timeit(lambda: ni(x), repeats=args.repeats, device=dev)
    rows["NaturalMotion, batch (per sample)"] = timeit(lambda: nm(x), repeats=args.repeats, device=dev)
    rows["NaturalIllumination + NaturalMotion, batch"] = timeit(lambda: nm(ni(x)), repeats=args.repeats, device=dev)

    ref = rows["torchvision ColorJitter, per image"]
    print(f"\nbatch {args.batch} x 3 x {args.size} x {args.size} on {dev}, torch threads {torch.get_num_threads()}")
    print(f"{'pipeline':55s} {'ms/batch':>10s} {'images/s':>10s} {'speed-up vs CJ per image':>26s}")
    table = []
    for name, t in rows.items():
        print(f"{name:55s} {t * 1e3:10.1f} {args.batch / t:10.0f} {ref / t:26.2f}x")
        table.append({"pipeline": name, "seconds_per_batch": t, "images_per_s": args.batch / t, "speedup_vs_cj_per_image": ref / t})

    fits = []
    if not args.skip_fit:
        from mi_augment.data.samples import available_samples

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
                     {"batch": args.batch, "size": args.size, "device": dev, "transforms": table, "fits": fits})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
