"""Where MIPairTransform's CPU time goes, and what each CPU-side choice buys (one torch thread).

Measures, on the synthetic batches of ``benchmarks/throughput.py`` (32 pairs of 224 px views from 256 px
images, 128 of 96 px from 96 px images):

* ``chunks``: milliseconds per call for ``"random"`` and K=8 against the CPU chunk size
  (``mi_augment.kernel_options(cpu_chunk_elements=...)``; ``whole`` = one batch-sized buffer per pass);
* ``area_averaging``: a 224 px ``"random"`` call with roi_align's adaptive sub-sampling (the default) and with
  one sample per pixel (``sampling_ratio=1``);
* ``reflection``: one ``grid_sample`` of a 224 px-view-sized grid in reflection vs border padding;
* ``shared_log``: K=8 ``plan`` at 96 px with the scoring path that shares each image's logarithm across views,
  and with the per-view path it replaces;
* ``per_image``: milliseconds per call on one 32 px PIL image (the DataLoader-worker form);
* ``profile``: each op's share of a 224 px ``"random"`` call (``torch.profiler``).

Every timing is the best of ``--repeats`` calls after a warm-up. Usage::

    python benchmarks/cpu_breakdown.py          # writes benchmarks/results/cpu_breakdown.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import write_json  # noqa: E402
from benchmarks.throughput import synthetic_images  # noqa: E402

NATURAL = {"illumination": "default", "motion": "default", "view_transforms": None}  # the shipped models alone


def best_ms(fn, repeats: int) -> float:
    fn()
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def chunk_sweep(repeats: int) -> list[dict]:
    from mi_augment import kernel_options
    from mi_augment.transforms import MIPairTransform

    rows = []
    for size, side, batch in ((96, 96, 128), (224, 256, 32)):
        x = synthetic_images(batch, side).float() / 255
        for elements in (1 << 18, 1 << 19, 1 << 20, 1 << 21, 1 << 22, None):
            with kernel_options(cpu_chunk_elements=elements or (1 << 62)):
                for policy in ("random", "threshold"):
                    t = MIPairTransform(size, policy=policy, **NATURAL)
                    g = torch.Generator().manual_seed(0)
                    ms = best_ms(lambda t=t, x=x, g=g: t(x, generator=g), repeats)
                    rows.append({"size": size, "batch": batch, "chunk_elements": elements or "whole",
                                 "policy": policy, "ms_per_call": ms})
                    print(f"  chunks  {size:>3} px  {str(elements or 'whole'):>8}  {policy:<9} {ms:7.1f} ms", flush=True)
    return rows


def area_averaging(repeats: int) -> dict:
    from mi_augment.transforms import MIPairTransform

    x = synthetic_images(32, 256).float() / 255
    out = {}
    for ratio in (-1, 1):
        t = MIPairTransform(224, policy="random", sampling_ratio=ratio, **NATURAL)
        g = torch.Generator().manual_seed(0)
        out[f"sampling_ratio={ratio}"] = best_ms(lambda t=t, g=g: t(x, generator=g), repeats)
    print(f"  area averaging (224 px, 32 pairs): {out}", flush=True)
    return out


def reflection(repeats: int) -> dict:
    x = torch.rand(4, 3, 256, 256)
    theta = torch.tensor([[0.85, 0.02, 0.01], [-0.02, 0.85, 0.0]]).expand(8, 2, 3)
    grid = F.affine_grid(theta, (8, 3, 226, 226), align_corners=True).reshape(4, 2 * 226, 226, 2)
    out = {mode: best_ms(lambda m=mode: F.grid_sample(x, grid, padding_mode=m, align_corners=True), repeats)
           for mode in ("reflection", "border")}
    print(f"  grid_sample 8 views of 226 px: {out}", flush=True)
    return out


def shared_log(repeats: int) -> dict:
    from mi_augment import kernel_options
    from mi_augment.transforms import MIPairTransform

    x = synthetic_images(128, 96).float() / 255
    t = MIPairTransform(96, **NATURAL)
    candidates = t.plan(x, torch.Generator().manual_seed(0))
    out = {"shared": best_ms(lambda: t.score(x, candidates), repeats)}
    with kernel_options(fast_paths=False):  # the per-view path: V copies, each perturbed by the models' apply
        out["per_view"] = best_ms(lambda: t.score(x, candidates), repeats)
    print(f"  K=8 plan at 96 px (128 images): {out}", flush=True)
    return out


def per_image(repeats: int) -> dict:
    from PIL import Image

    from mi_augment.transforms import MIPairTransform

    img = Image.fromarray(synthetic_images(1, 32)[0].permute(1, 2, 0).numpy())
    out = {}
    for policy in ("random", "threshold"):
        t = MIPairTransform(32, policy=policy, **NATURAL)
        out[policy] = best_ms(lambda t=t: [t(img) for _ in range(50)], max(3, repeats // 2)) / 50
    print(f"  one 32 px PIL image per call (ms): {out}", flush=True)
    return out


def profile() -> list[dict]:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from mi_augment.transforms import MIPairTransform

    x = synthetic_images(32, 256).float() / 255
    t = MIPairTransform(224, policy="random", **NATURAL)
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        t(x, generator=g)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            t(x, generator=g)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
    rows = [{"op": e.key, "share": e.self_cpu_time_total / total} for e in top]
    print("  profile of a 224 px random call: " + ", ".join(f"{r['op']} {100 * r['share']:.0f}%" for r in rows))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", default="cpu_breakdown.json", help="file name under benchmarks/results/")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    report = {"command": "python benchmarks/cpu_breakdown.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "threads": 1, "repeats": args.repeats, "chunks": chunk_sweep(args.repeats),
              "area_averaging_224": area_averaging(args.repeats), "reflection_vs_border": reflection(args.repeats),
              "shared_log_plan_96": shared_log(args.repeats), "per_image_32": per_image(args.repeats),
              "profile_224_random": profile()}
    report["command"] = report["command"].strip()
    print(f"wrote {write_json(args.out, report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
