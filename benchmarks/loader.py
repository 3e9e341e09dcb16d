"""Positive pairs per second out of a DataLoader with workers: per-image transforms vs MIPairCollate.

What a training loop sees when the augmentation runs in DataLoader workers (the common CPU setup): a dataset of
PIL images (synthetic, CIFAR-like), ``--workers`` worker processes (each with one torch thread), batches of
``--batch``. Pipelines:

* ``torchvision_v1_per_image``: the SimCLR recipe (RandomResizedCrop, flip, ColorJitter(0.4, 0.4, 0.4, 0.1)
  p=0.8, RandomGrayscale(0.2), ToTensor) called twice per image in the workers;
* ``ours_simclr_{random,k8}_per_image``: ``MIPairTransform.simclr(size, blur=False)`` (unscored / K=8 scored
  crops, SimCLR's colour operations: like for like with the torchvision recipe) per image in the workers (PIL
  views, then ToImage / ToDtype, as in docs/mi_pairs.md);
* ``ours_{random,k8}_per_image``: ``MIPairTransform`` with the shipped natural models instead of the colour
  operations, per image;
* ``ours_..._collate``: ``MIPairCollate(MIPairTransform(...))`` of the same transforms: each worker collates its
  batch and makes the views of the whole batch at once (the batched path).

Each worker runs one torch thread and one OpenCV thread (``cv2.setNumThreads(1)``, as docs/integrations.md
recommends).

Each pipeline iterates the loader for ``--batches`` batches after one warm-up batch per worker (so worker
start-up is not timed).

Usage::

    python benchmarks/loader.py                      # 32 px, 2 workers, batch 256, writes results/loader_cpu.json
    python benchmarks/loader.py --size 96 --side 96
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import write_json  # noqa: E402
from benchmarks.throughput import synthetic_images  # noqa: E402


class SyntheticPIL(torch.utils.data.Dataset):
    """:func:`benchmarks.throughput.synthetic_images` as PIL images with labels, like torchvision's CIFAR
    datasets return them."""

    def __init__(self, n: int, side: int, transform=None):
        from PIL import Image

        self.images = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in synthetic_images(n, side)]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        img = self.images[i]
        return (img if self.transform is None else self.transform(img)), i % 10


class TwoViews:
    """``(t(x), t(x))``: the two-view wrapper of torchvision-style SimCLR recipes (picklable)."""

    def __init__(self, t):
        self.t = t

    def __call__(self, x):
        return self.t(x), self.t(x)


def _worker_init(_):
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def pipelines(size: int):
    from torchvision import transforms as T
    from torchvision.transforms import v2

    from mi_augment.transforms import MIPairCollate, MIPairTransform
    from mi_augment.transforms.presets import simclr_views

    tv = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(),
                    T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(0.2), T.ToTensor()])
    out = {"torchvision_v1_per_image": (TwoViews(tv), None)}
    natural = {"illumination": "default", "motion": "default", "view_transforms": None}  # the shipped models
    simclr = {"view_transforms": simclr_views(size, blur=False)}
    for name, kw in (("simclr_random", {"policy": "random", **simclr}), ("simclr_k8", {"n_candidates": 8, **simclr}),
                     ("random", {"policy": "random", **natural}), ("k8", {"n_candidates": 8, **natural})):
        per_image = v2.Compose([MIPairTransform(size, **kw), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
        out[f"ours_{name}_per_image"] = (per_image, None)
        out[f"ours_{name}_collate"] = (None, MIPairCollate(MIPairTransform(size, **kw)))
    return out


def measure(dataset_args, transform, collate, workers: int, batch: int, batches: int) -> float:
    data = SyntheticPIL(*dataset_args, transform=transform)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, num_workers=workers, shuffle=True,
                                         drop_last=True, collate_fn=collate, worker_init_fn=_worker_init)
    it = iter(loader)
    for _ in range(max(1, workers)):  # warm-up: every worker has made one batch
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batch * batches / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=32, help="view size")
    p.add_argument("--side", type=int, default=32, help="image side in the dataset")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batches", type=int, default=8, help="measured batches per pipeline")
    p.add_argument("--out", default="loader_cpu.json", help="file name under benchmarks/results/")
    args = p.parse_args(argv)
    n = args.batch * (args.batches + args.workers + 1)
    rows = []
    for method, (transform, collate) in pipelines(args.size).items():
        rate = measure((n, args.side), transform, collate, args.workers, args.batch, args.batches)
        rows.append({"method": method, "pairs_per_s": rate})
        print(f"  {method:<26} {rate:>10,.0f} pairs/s", flush=True)
    base = rows[0]["pairs_per_s"]
    for r in rows:
        r["ratio_vs_torchvision_v1_per_image"] = r["pairs_per_s"] / base
    command = "python benchmarks/loader.py " + " ".join(argv if argv is not None else sys.argv[1:])
    from benchmarks.throughput import machine_info

    path = write_json(args.out, {"command": command.strip(), "machine": machine_info("cpu", 1), "size": args.size,
                                 "side": args.side,
                                 "workers": args.workers, "batch": args.batch, "batches": args.batches,
                                 "results": rows})
    print(f"\n{'method':<26} {'pairs/s':>10} {'vs tv':>7}")
    for r in rows:
        print(f"{r['method']:<26} {r['pairs_per_s']:>10,.0f} {r['ratio_vs_torchvision_v1_per_image']:>6.2f}x")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
