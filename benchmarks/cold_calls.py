"""Why one image's call costs more in a worker than in a hot loop: per-call time after other memory traffic.

A DataLoader worker's call follows the previous call's pixel work (and the dataset's decoding), which evicts the
interpreter's and the libraries' code and data from the core's caches; the call's many small Python, numpy,
torch and OpenCV steps then run slower than a hot loop of the same call suggests. This script measures it
directly: for each pipeline it times one call per image (64 synthetic images, as ``benchmarks/throughput.py``)
right after writing ``MB`` megabytes of another buffer, for several ``MB`` (0 = the hot loop), and reports the
microseconds per pair and the added microseconds against ``MB = 0``. The pipelines are those of
``benchmarks/throughput.py``: albumentations' SimCLR per numpy image, ours unscored (SimCLR views), ours with 8
scored candidates, and the natural models. One torch and one OpenCV thread.

Usage::

    python benchmarks/cold_calls.py --size 32          # writes benchmarks/results/cold_calls_32.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import RESULTS, git_sha, machine  # noqa: E402
from benchmarks.throughput import INPUT_SIDE, albumentations_pipeline, ours, synthetic_images  # noqa: E402

PIPELINES = ("albumentations_simclr", "ours_simclr_random", "ours_simclr_k8", "ours_random")


def pipeline(name: str, size: int):
    """The per-pair function of ``name`` on one numpy image (two views)."""
    if name == "albumentations_simclr":
        alb = albumentations_pipeline(size, "simclr")
        return lambda image: (alb(image=image)["image"], alb(image=image)["image"])
    return ours(size, name[len("ours_"):])


def per_pair_us(fn, images: list[np.ndarray], scratch: np.ndarray | None, rounds: int) -> float:
    """Microseconds per call, the median over ``rounds`` passes of the images; before each call the whole
    ``scratch`` buffer is written (None: nothing, the hot loop)."""
    passes = []
    for _ in range(rounds):
        total = 0.0
        for i, image in enumerate(images):
            if scratch is not None:
                scratch.fill(i % 251)
            start = time.perf_counter()
            fn(image)
            total += time.perf_counter() - start
        passes.append(total / len(images) * 1e6)
    return float(np.median(passes))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=32, choices=sorted(INPUT_SIDE), help="view side (px)")
    p.add_argument("--megabytes", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0, 8.0],
                   help="memory written before each call (0: none, the hot loop)")
    p.add_argument("--pipelines", nargs="+", default=list(PIPELINES), choices=PIPELINES)
    p.add_argument("--images", type=int, default=64, help="synthetic images per pass")
    p.add_argument("--rounds", type=int, default=3, help="passes per setting; the median is reported")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/cold_calls_<size>.json)")
    args = p.parse_args(argv)
    if any(mb < 0 for mb in args.megabytes):
        p.error("--megabytes must be >= 0")
    if args.images < 1 or args.rounds < 1:
        p.error("--images and --rounds must be >= 1")
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    images = [np.ascontiguousarray(x.permute(1, 2, 0).numpy())
              for x in synthetic_images(args.images, INPUT_SIDE[args.size])]
    rows = []
    for name in args.pipelines:
        fn = pipeline(name, args.size)
        for image in images[:8]:  # warm-up
            fn(image)
        hot = None
        for mb in args.megabytes:
            scratch = np.empty(int(mb * 2**20), np.uint8) if mb > 0 else None
            us = per_pair_us(fn, images, scratch, args.rounds)
            hot = us if mb == 0 else hot
            rows.append({"pipeline": name, "size": args.size, "megabytes": mb, "us_per_pair": us,
                         "added_us": None if hot is None else us - hot})
            added = "" if hot is None else f"{us - hot:+9.1f}"
            print(f"{name:<24} {mb:5.1f} MB before each call: {us:8.1f} us/pair {added}", flush=True)
    from mi_augment.core.artifact import atomic_write_bytes

    command = "python benchmarks/cold_calls.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out) if args.out else RESULTS / f"cold_calls_{args.size}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"command": command.strip(), "git_sha": git_sha(), "machine": machine(), "torch_threads": 1,
              "cv2_threads": 1, "rows": rows}
    print(f"wrote {atomic_write_bytes(out, (json.dumps(report, indent=1) + chr(10)).encode())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
