"""Positive pairs per second: torchvision, Kornia and MIPairTransform side by side, in one run.

Pipelines (every one makes two views per image):

* ``torchvision_v1_pil``: the SimCLR recipe per image on PIL (RandomResizedCrop, flip, ColorJitter(0.4, 0.4,
  0.4, 0.1) with p=0.8, RandomGrayscale(0.2), ToTensor), as a DataLoader worker runs it. CPU only.
* ``torchvision_v2_batch``: the same transforms from ``torchvision.transforms.v2`` called on a whole batch
  tensor (note: v2 draws *one* set of parameters per call, so every image of the batch gets the same crop).
* ``kornia``: ``AugmentationSequential`` with the same four augmentations, per-sample parameters.
* ``ours_random``: ``MIPairTransform(policy="random", illumination="default", motion="default",
  view_transforms=None)``: the shipped natural models (illumination +
  motion): no scoring, the RandomResizedCrop baseline with natural perturbations.
* ``ours_k8``: ``MIPairTransform`` with K=8 scored candidates (threshold policy, histogram MI, 32x32 luma
  proxies) and the shipped natural models alone (the transform's default before it took SimCLR's views).
* ``ours_k8_jitter``: as ``ours_k8`` but with ColorJitter's prior (``IlluminationModel.uniform()``) and no
  motion model: like for like with the SimCLR pipelines above.
* ``ours_simclr_random`` / ``ours_simclr_k8``: ``MIPairTransform.simclr(size, blur=False)`` (unscored / K=8;
  ``ours_simclr_k8`` is ``MIPairTransform(size)``'s default configuration without the blur it adds above 64 px):
  the same per-view colour operations as the torchvision pipeline (jitter p 0.8 in random order, grayscale
  p 0.2), the crop pair plain or MI-chosen: the like-for-like rows.
* ``*_per_image``: the pipeline called on one PIL image at a time (PIL views out), as a DataLoader worker runs
  it. CPU only.
* ``albumentations_simclr_per_image``: albumentations (2.0.8) per numpy uint8 image, the same SimCLR recipe
  (``RandomResizedCrop``, ``HorizontalFlip``, ``ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8)``, ``ToGray(p=0.2)``):
  the fastest per-image peer, OpenCV kernels on uint8. CPU only.
* ``albumentations_natural_per_image``: albumentations' nearest natural-style pipeline: the crop and flip, then
  brightness / contrast, gamma, a smooth illumination field (``Illumination``), a small ``Affine`` camera move
  and a ``MotionBlur`` (every step p=1, as our natural models render every draw). CPU only.
* ``*_per_image_float``: the ``*_per_image`` row with each view then converted by torchvision's ``to_tensor``
  (float ``[3, h, w]`` in [0, 1]), as ``torchvision_v1_pil`` ends with ``ToTensor``: the float output a float batch
  returns, so the float batch's like-for-like per-image row.
* ``*_uint8``: the batch rows called on the uint8 batch ``[B, 3, H, W]`` itself (uint8 views out, no float
  conversions): the other dtype of issue 23's "a CPU batch (uint8 or float)".
* ``*_per_numpy``: the pipeline called on one numpy uint8 ``H x W x 3`` image at a time, numpy views out:
  albumentations' types (the ``*_per_image`` rows add PIL's conversions, as torchvision's PIL pipeline has).
* ``*_per_tensor``: the pipeline called on one uint8 ``[3, H, W]`` tensor at a time, tensor views out: the
  uint8 batch's own types and layout, one image per call (the like-for-like per-image row of ``*_uint8``).
* ``*_per_image`` rows render on the CPU uint8 backend (``mi_augment.functional.uint8``, the default for one
  PIL / numpy / uint8 image); ``*_per_image_torch``: the same calls inside
  ``kernel_options(uint8_backend=False)`` (the torch kernels), for the backend's gain in the same run.

Images are synthetic smooth RGB uint8 (content does not change the cost), 32x32 for 32 px views, 96x96 for
96 px and 256x256 for 224 px. Every pipeline is warmed up, then all are measured in ``--rounds`` interleaved
rounds of ``--seconds / --rounds`` each, and each pipeline's best round is reported (the median is in the
JSON): on a shared machine, load from other processes then affects all pipelines alike.

Issue 23's targets are also measured **paired** (``--paired-seconds`` per target and size, default 4; 0 skips): the
target's row and its reference row are called alternately, one call each (64 images per image, one batch for a
batch row), in ABBA order, and each adjacent pair of calls gives one ratio. The reported ratio is the geometric
mean of those ratios with a 95% t-interval on their logs, so drift in the machine's speed between the rounds
above does not move it. Decision rule (fixed before any number): a target is *met* when the interval's lower end
is at or above the goal, *not met* when its upper end is below it, *undecided* otherwise.

Usage::

    python benchmarks/throughput.py                       # CPU, 1 thread, writes benchmarks/results/throughput_cpu.json
    python benchmarks/throughput.py --device cuda          # GPU batches (512 / 256 / 256), throughput_cuda.json
    python benchmarks/throughput.py --from-json benchmarks/results/throughput_cpu.json \
        --figure docs/figures/throughput_cpu.png             # redraw the bar chart of a run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INPUT_SIDE = {32: 32, 96: 96, 224: 256}
CPU_BATCH = {32: 256, 96: 128, 224: 32}
CUDA_BATCH = {32: 512, 96: 256, 224: 256}


def synthetic_images(n: int, side: int, seed: int = 0) -> torch.Tensor:
    """Smooth random RGB uint8 images ``[n, 3, side, side]``."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, max(2, side // 8), max(2, side // 8), generator=g)
    fine = F.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)
    fine = fine + 0.1 * torch.rand(n, 3, side, side, generator=g)
    return (fine.clamp(0, 1) * 255).round().to(torch.uint8)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(fn, n_pairs: int, seconds: float, device: str) -> float:
    """Pairs per second of ``fn()`` (which makes ``n_pairs`` pairs) over about ``seconds`` (at least one call)."""
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        _sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n_pairs * calls / elapsed


def torchvision_v1(size: int):
    from torchvision import transforms as T

    return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(),
                      T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(0.2),
                      T.ToTensor()])


def torchvision_v2(size: int):
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(),
                       v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), v2.RandomGrayscale(0.2)])


def kornia_simclr(size: int):
    import kornia.augmentation as K

    return K.AugmentationSequential(K.RandomResizedCrop((size, size)), K.RandomHorizontalFlip(),
                                    K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), K.RandomGrayscale(p=0.2))


def ours(size: int, variant: str):
    from mi_augment.perturbations.illumination import IlluminationModel
    from mi_augment.transforms.pair import MIPairTransform

    natural = {"illumination": "default", "motion": "default", "view_transforms": None}  # the shipped models alone
    if variant == "random":
        return MIPairTransform(size, policy="random", **natural)
    if variant == "k8":
        return MIPairTransform(size, n_candidates=8, **natural)
    if variant == "k8_jitter":
        return MIPairTransform(size, n_candidates=8, illumination=IlluminationModel.uniform(), view_transforms=None)
    if variant == "simclr_random":  # like for like with torchvision's SimCLR pipeline: same per-view colour ops
        return MIPairTransform.simclr(size, policy="random", blur=False)
    if variant == "simclr_k8":
        return MIPairTransform.simclr(size, n_candidates=8, blur=False)
    raise ValueError(variant)


def albumentations_pipeline(size: int, kind: str):
    import albumentations as A

    crop = [A.RandomResizedCrop((size, size), scale=(0.08, 1.0)), A.HorizontalFlip()]
    if kind == "simclr":
        return A.Compose(crop + [A.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), A.ToGray(p=0.2)])
    return A.Compose(crop + [A.RandomBrightnessContrast(p=1.0), A.RandomGamma(p=1.0), A.Illumination(p=1.0),
                             A.Affine(translate_percent=(-0.03, 0.03), rotate=(-3, 3), scale=(0.97, 1.03), p=1.0),
                             A.MotionBlur(blur_limit=3, p=1.0)])


METHODS = ["torchvision_v1_pil", "torchvision_v2_batch", "kornia", "ours_random", "ours_k8", "ours_k8_jitter",
           "ours_simclr_random", "ours_simclr_k8", "ours_random_per_image", "ours_k8_per_image",
           "ours_simclr_random_per_image", "ours_simclr_k8_per_image", "albumentations_simclr_per_image",
           "albumentations_natural_per_image", "ours_random_per_image_torch", "ours_k8_per_image_torch",
           "ours_simclr_random_per_image_torch", "ours_simclr_k8_per_image_torch", "ours_simclr_random_per_numpy",
           "ours_simclr_k8_per_numpy", "ours_random_per_numpy", "ours_simclr_random_uint8", "ours_simclr_k8_uint8",
           "ours_simclr_random_per_image_float", "ours_simclr_k8_per_image_float", "ours_simclr_random_per_tensor",
           "ours_simclr_k8_per_tensor"]


def _pipelines(size: int, device: str, methods: list[str], batch: int) -> list[tuple[str, object, int]]:
    """``(method, fn, pairs per call)`` for every method that runs on ``device``."""
    from PIL import Image

    images_u8 = synthetic_images(batch, INPUT_SIDE[size])
    out = []
    for method in methods:
        if method == "torchvision_v1_pil":
            if device != "cpu":
                continue
            t = torchvision_v1(size)
            n = min(batch, 64)
            pil = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images_u8[:n]]
            out.append((method, lambda t=t, pil=pil: [(t(p), t(p)) for p in pil], n))
        elif method == "torchvision_v2_batch":
            t = torchvision_v2(size)
            x = images_u8.to(device)
            out.append((method, lambda t=t, x=x: (t(x), t(x)), batch))
        elif method == "kornia":
            t = kornia_simclr(size).to(device)
            x = images_u8.to(device).float() / 255.0
            out.append((method, lambda t=t, x=x: (t(x), t(x)), batch))
        elif method.startswith("albumentations_"):  # numpy uint8 HWC in and out, its native type
            if device != "cpu":
                continue
            t = albumentations_pipeline(size, method.split("_")[1])
            n = min(batch, 64)
            arrays = [img.permute(1, 2, 0).numpy().copy() for img in images_u8[:n]]
            out.append((method, lambda t=t, arrays=arrays: [(t(image=a)["image"], t(image=a)["image"])
                                                            for a in arrays], n))
        elif method.endswith("_per_image_torch"):  # as *_per_image, rendered by the torch kernels
            if device != "cpu":
                continue
            t = ours(size, method[len("ours_"):-len("_per_image_torch")])
            n = min(batch, 64)
            pil = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images_u8[:n]]
            out.append((method, lambda t=t, pil=pil: _torch_backend(lambda: [t(p) for p in pil]), n))
        elif method.endswith("_per_numpy"):  # albumentations' types: one numpy uint8 HWC image in, numpy views out
            if device != "cpu":
                continue
            t = ours(size, method[len("ours_"):-len("_per_numpy")])
            n = min(batch, 64)
            arrays = [img.permute(1, 2, 0).numpy().copy() for img in images_u8[:n]]
            out.append((method, lambda t=t, arrays=arrays: [t(a) for a in arrays], n))
        elif method.endswith("_per_image_float"):  # per PIL image, each view then to a float tensor (ToTensor), as
            if device != "cpu":                      # torchvision_v1_pil ends: the float output a batch gives
                continue
            from torchvision.transforms.functional import to_tensor

            t = ours(size, method[len("ours_"):-len("_per_image_float")])
            n = min(batch, 64)
            pil = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images_u8[:n]]
            out.append((method, lambda t=t, pil=pil: [tuple(to_tensor(v) for v in t(p)) for p in pil], n))
        elif method.endswith("_per_tensor"):  # one uint8 [3, H, W] tensor per call, tensor views out: the uint8
            if device != "cpu":                 # batch's own types, one image at a time
                continue
            t = ours(size, method[len("ours_"):-len("_per_tensor")])
            n = min(batch, 64)
            tensors = [img.clone() for img in images_u8[:n]]
            out.append((method, lambda t=t, tensors=tensors: [t(x) for x in tensors], n))
        elif method.endswith("_per_image"):  # the DataLoader-worker way: one PIL image per call, PIL views out
            if device != "cpu":
                continue
            t = ours(size, method[len("ours_"):-len("_per_image")])
            n = min(batch, 64)
            pil = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images_u8[:n]]
            out.append((method, lambda t=t, pil=pil: [t(p) for p in pil], n))
        elif method.endswith("_uint8"):  # a uint8 batch in, uint8 views out (the float rows' draws, no conversions)
            t = ours(size, method[len("ours_"):-len("_uint8")])
            x = images_u8.to(device)
            g = torch.Generator(device=device).manual_seed(0)
            out.append((method, lambda t=t, x=x, g=g: t(x, generator=g), batch))
        else:
            t = ours(size, method[len("ours_"):])
            x = images_u8.to(device).float() / 255.0
            g = torch.Generator(device=device).manual_seed(0)
            out.append((method, lambda t=t, x=x, g=g: t(x, generator=g), batch))
    return out


def _torch_backend(fn):
    from mi_augment import kernel_options

    with kernel_options(uint8_backend=False):
        return fn()


def paired_ratio(fn_a, n_a: int, fn_b, n_b: int, seconds: float, device: str, min_blocks: int = 8) -> dict:
    """Pairs/s of ``fn_a`` over ``fn_b`` (which make ``n_a`` / ``n_b`` pairs per call), measured paired: one call
    of each in turn, in ABBA order (A B, B A, A B, ...), for about ``seconds`` and at least ``min_blocks`` pairs of
    calls. Returns the geometric mean of the per-pair ratios, its 95% t-interval (on the logs), and the count."""
    logs: list[float] = []
    start = time.perf_counter()
    while len(logs) < min_blocks or time.perf_counter() - start < seconds:
        rates = {}
        for key in ("ab" if len(logs) % 2 == 0 else "ba"):
            fn, n = (fn_a, n_a) if key == "a" else (fn_b, n_b)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            rates[key] = n / (time.perf_counter() - t0)
        logs.append(math.log(rates["a"] / rates["b"]))
    return {"ratio": math.exp(statistics.fmean(logs)), "ci95": list(log_ratio_interval(logs)), "blocks": len(logs)}


def log_ratio_interval(logs: list[float], level: float = 0.95) -> tuple[float, float]:
    """The ``level`` t-interval of the geometric mean ratio ``exp(mean(logs))``, as ratios.

    Example:
        >>> lo, hi = log_ratio_interval([0.0, 0.1, -0.1, 0.05])
        >>> lo < 1.0 < hi
        True
    """
    from scipy import stats

    n = len(logs)
    if n < 2:
        raise ValueError(f"logs must hold at least 2 ratios, got {n}")
    half = stats.t.ppf(0.5 + level / 2, n - 1) * statistics.stdev(logs) / math.sqrt(n)
    mean = statistics.fmean(logs)
    return math.exp(mean - half), math.exp(mean + half)


def verdict(ci95: list[float], goal: float) -> str:
    """The decision rule: ``"met"`` when the interval's lower end is at or above ``goal``, ``"not met"`` when its
    upper end is below it, ``"undecided"`` otherwise."""
    lo, hi = ci95
    return "met" if lo >= goal else "not met" if hi < goal else "undecided"


def paired_targets(size: int, device: str, pipelines: list[tuple[str, object, int]], seconds: float) -> list[dict]:
    """Every issue-23 target whose two rows are in ``pipelines``, measured by :func:`paired_ratio`."""
    by_method = {m: (fn, n) for m, fn, n in pipelines}
    out = []
    for label, row, ref, goal in TARGETS:
        if row in by_method and ref in by_method:
            r = paired_ratio(*by_method[row], *by_method[ref], seconds, device)
            out.append({"target": label, "size": size, "row": row, "reference": ref, "goal": goal, **r,
                        "verdict": verdict(r["ci95"], goal)})
            lo, hi = r["ci95"]
            print(f"  {size:>3} px  paired {row} / {ref}: {r['ratio']:.3f}x [{lo:.3f}, {hi:.3f}] "
                  f"({r['blocks']} pairs of calls): {out[-1]['verdict']}", flush=True)
    return out


def bench_size(size: int, device: str, seconds: float, methods: list[str], batch: int, rounds: int,
               paired_seconds: float = 0.0) -> tuple[list[dict], list[dict]]:
    """Warm every pipeline up, then measure them in ``rounds`` interleaved rounds (so that load from other
    processes hits all of them alike) and keep each one's best round; then, with ``paired_seconds``, the
    targets paired (:func:`paired_targets`). Returns the rows and the paired targets."""
    pipelines = _pipelines(size, device, methods, batch)
    for _, fn, _ in pipelines:
        fn()
    _sync(device)
    rates: dict[str, list[float]] = {m: [] for m, _, _ in pipelines}
    for _ in range(rounds):
        for method, fn, n in pipelines:
            rates[method].append(measure(fn, n, seconds / rounds, device))
    rows = []
    for method, _, n in pipelines:
        r = sorted(rates[method])
        rows.append({"method": method, "size": size, "input_side": INPUT_SIDE[size], "batch": n,
                     "pairs_per_s": r[-1], "pairs_per_s_median": r[len(r) // 2], "rounds": r})
        print(f"  {size:>3} px  {method:<36} {r[-1]:>10,.0f} pairs/s (best of {rounds})", flush=True)
    for peer in PEERS:
        base = next((r["pairs_per_s"] for r in rows if r["method"] == peer), None)
        for r in rows:
            r[f"ratio_vs_{peer}"] = None if base is None else r["pairs_per_s"] / base
    paired = paired_targets(size, device, pipelines, paired_seconds) if paired_seconds > 0 else []
    return rows, paired


#: the rows every row is compared with: torchvision's SimCLR per PIL image and albumentations' per numpy image
PEERS = ("torchvision_v1_pil", "albumentations_simclr_per_image")


def machine_info(device: str, threads: int) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": threads, "device": device}
    try:
        import kornia
        import torchvision

        info["torchvision"] = torchvision.__version__
        info["kornia"] = kornia.__version__
        import albumentations
        import cv2

        info["albumentations"] = albumentations.__version__
        info["opencv"] = cv2.__version__
    except ImportError:  # pragma: no cover
        pass
    try:  # the compiled uint8 scorer: whether this run used it, and numba's version
        import numba

        info["numba"] = numba.__version__
    except ImportError:  # pragma: no cover
        info["numba"] = None
    from mi_augment.functional.uint8 import compiled

    info["compiled_kernels"] = compiled.status()
    try:
        model = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")]
        info["cpu"] = model[0] if model else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    try:
        info["git_sha"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                         check=False).stdout.strip() or None
    except OSError:
        info["git_sha"] = None
    return info


LABELS = {"torchvision_v1_pil": "torchvision v1, PIL per image", "torchvision_v2_batch": "torchvision v2, batch",
          "kornia": "Kornia AugmentationSequential", "ours_random": "ours, random policy",
          "ours_k8": "ours, K=8 scored (default)", "ours_k8_jitter": "ours, K=8, ColorJitter prior",
          "ours_random_per_image": "ours, random, PIL per image", "ours_k8_per_image": "ours, K=8, PIL per image",
          "ours_simclr_random": "ours, simclr unscored", "ours_simclr_k8": "ours, simclr K=8",
          "ours_simclr_random_per_image": "ours, simclr unscored, PIL per image",
          "ours_simclr_k8_per_image": "ours, simclr K=8, PIL per image",
          "albumentations_simclr_per_image": "albumentations SimCLR, numpy per image",
          "albumentations_natural_per_image": "albumentations natural-style, numpy per image",
          "ours_random_per_image_torch": "ours, random, PIL per image, torch kernels",
          "ours_k8_per_image_torch": "ours, K=8, PIL per image, torch kernels",
          "ours_simclr_random_per_image_torch": "ours, simclr unscored, PIL per image, torch kernels",
          "ours_simclr_k8_per_image_torch": "ours, simclr K=8, PIL per image, torch kernels",
          "ours_simclr_random_per_numpy": "ours, simclr unscored, numpy per image",
          "ours_simclr_k8_per_numpy": "ours, simclr K=8, numpy per image",
          "ours_random_per_numpy": "ours, random, numpy per image",
          "ours_simclr_random_uint8": "ours, simclr unscored, uint8 batch",
          "ours_simclr_k8_uint8": "ours, simclr K=8, uint8 batch",
          "ours_simclr_random_per_image_float": "ours, simclr unscored, PIL per image, then ToTensor",
          "ours_simclr_k8_per_image_float": "ours, simclr K=8, PIL per image, then ToTensor",
          "ours_simclr_random_per_tensor": "ours, simclr unscored, uint8 tensor per image",
          "ours_simclr_k8_per_tensor": "ours, simclr K=8, uint8 tensor per image"}


def plot(report: dict, path: Path) -> Path:
    """Grouped bars, one panel per peer (torchvision v1 per image, albumentations per image): pairs/s of every
    pipeline relative to that peer, one group per size; the legend below them. Where the run measured issue 23's
    targets paired, a last panel shows each target's paired ratio over its goal with the 95% interval, coloured by
    the decision rule's verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mi_augment.figures import save_figure

    rows = report["results"]
    paired = report.get("paired") or []
    sizes = sorted({r["size"] for r in rows})
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    peers = [p for p in PEERS if any(r.get(f"ratio_vs_{p}") is not None for r in rows)] or [PEERS[0]]
    heights = [3.2] * len(peers) + [1.6] + ([0.32 * len(paired) + 0.8] if paired else [])
    fig = plt.figure(figsize=(10, sum(heights)))
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights, hspace=0.35)
    width = 0.8 / max(len(methods), 1)
    colors = plt.get_cmap("tab20").colors + plt.get_cmap("tab20b").colors  # one colour per pipeline (up to 40)
    axes = [fig.add_subplot(grid[i, 0]) for i in range(len(peers))]
    for ax, peer in zip(axes, peers):
        for i, m in enumerate(methods):
            vals = []
            for size in sizes:
                r = next((r for r in rows if r["method"] == m and r["size"] == size), None)
                ratio = None if r is None else r.get(f"ratio_vs_{peer}")
                vals.append(float("nan") if ratio is None else ratio)
            xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(sizes))]
            bars = ax.bar(xs, vals, width, label=LABELS.get(m, m), color=colors[i % len(colors)])
            ax.bar_label(bars, fmt="%.2f", fontsize=5, padding=1)
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_xticks(range(len(sizes)), [f"{s} px" for s in sizes])
        ax.set_ylabel(f"pairs/s relative to\n{LABELS.get(peer, peer)}", fontsize=8)
    info = report["machine"]
    axes[0].set_title(f"Two-view pairs per second on {info.get('device', 'cpu')}, {info.get('torch_threads')} "
                      f"thread(s) (git {str(info.get('git_sha') or '?')[:7]})", fontsize=9)
    legend = fig.add_subplot(grid[len(peers), 0])
    legend.axis("off")
    legend.legend(*axes[0].get_legend_handles_labels(), loc="center", fontsize=6, ncol=3, frameon=False)
    if paired:
        ax = fig.add_subplot(grid[-1, 0])
        shade = {"met": "tab:green", "undecided": "tab:orange", "not met": "tab:red"}
        for y, t in enumerate(paired):
            lo, hi = (v / t["goal"] for v in t["ci95"])
            ax.errorbar(t["ratio"] / t["goal"], y, xerr=[[t["ratio"] / t["goal"] - lo], [hi - t["ratio"] / t["goal"]]],
                        fmt="o", ms=3, color=shade.get(t["verdict"], "gray"), capsize=2)
        ax.axvline(1.0, color="black", lw=0.8, ls="--")
        ax.set_yticks(range(len(paired)), [f"{t['size']} px  {t['target'].split(' >=')[0]}" for t in paired],
                      fontsize=5)
        ax.invert_yaxis()
        ax.set_xlabel("paired ratio over the target's goal, 95% interval (green met, orange undecided, red not met)",
                      fontsize=7)
        ax.tick_params(axis="x", labelsize=6)
    return save_figure(fig, path)


#: issue 23's targets: (label, row, reference row, goal): the row's pairs/s over the reference's, per size
TARGETS = [
    ("simclr unscored, numpy per image vs albumentations SimCLR >= 1.0x", "ours_simclr_random_per_numpy",
     "albumentations_simclr_per_image", 1.0),
    ("simclr unscored, PIL per image vs albumentations SimCLR >= 1.0x", "ours_simclr_random_per_image",
     "albumentations_simclr_per_image", 1.0),
    ("simclr K=8 (the default, less blur), numpy per image vs albumentations >= 0.5x", "ours_simclr_k8_per_numpy",
     "albumentations_simclr_per_image", 0.5),
    ("simclr K=8 (the default, less blur), PIL per image vs albumentations >= 0.5x", "ours_simclr_k8_per_image",
     "albumentations_simclr_per_image", 0.5),
    ("natural models unscored, numpy per image vs albumentations SimCLR >= 0.5x", "ours_random_per_numpy",
     "albumentations_simclr_per_image", 0.5),
    ("natural models unscored, PIL per image vs albumentations SimCLR >= 0.5x", "ours_random_per_image",
     "albumentations_simclr_per_image", 0.5),
    ("simclr unscored: CPU batch vs PIL per image, per pair >= 1.0x", "ours_simclr_random",
     "ours_simclr_random_per_image", 1.0),
    ("simclr K=8: CPU batch vs PIL per image, per pair >= 1.0x", "ours_simclr_k8", "ours_simclr_k8_per_image", 1.0),
    ("simclr unscored: CPU float batch vs PIL per image then ToTensor (float out both), per pair >= 1.0x",
     "ours_simclr_random", "ours_simclr_random_per_image_float", 1.0),
    ("simclr K=8: CPU float batch vs PIL per image then ToTensor (float out both), per pair >= 1.0x",
     "ours_simclr_k8", "ours_simclr_k8_per_image_float", 1.0),
    ("simclr unscored: CPU uint8 batch vs PIL per image, per pair >= 1.0x", "ours_simclr_random_uint8",
     "ours_simclr_random_per_image", 1.0),
    ("simclr K=8: CPU uint8 batch vs PIL per image, per pair >= 1.0x", "ours_simclr_k8_uint8",
     "ours_simclr_k8_per_image", 1.0),
    ("simclr unscored: CPU uint8 batch vs uint8 tensor per image (CHW tensors in and out both), per pair >= 1.0x",
     "ours_simclr_random_uint8", "ours_simclr_random_per_tensor", 1.0),
    ("simclr K=8: CPU uint8 batch vs uint8 tensor per image (CHW tensors in and out both), per pair >= 1.0x",
     "ours_simclr_k8_uint8", "ours_simclr_k8_per_tensor", 1.0),
]


def target_table(rows: list[dict], paired: list[dict] | None = None) -> list[str]:
    """Issue 23's targets as a markdown table from one run's rows (sizes as columns; missing rows left out): the
    ratio of the best rounds, and where the run measured it, the paired ratio with its 95% interval and the
    decision rule's verdict (:func:`verdict`)."""
    sizes = sorted({r["size"] for r in rows})
    rate = {(r["method"], r["size"]): r["pairs_per_s"] for r in rows}
    pairs = {(p["target"], p["size"]): p for p in paired or []}
    lines = ["| target | " + " | ".join(f"{s} px" for s in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    for label, row, ref, goal in TARGETS:
        cells = []
        for size in sizes:
            a, b = rate.get((row, size)), rate.get((ref, size))
            if a is None or b is None:
                cells.append("")
                continue
            r = a / b  # three decimals where two would round a miss up to the goal (or a hit down to it)
            cells.append(f"{r:.3f}x" if abs(r - goal) < 0.005 else f"{r:.2f}x")
            cells[-1] += " met" if r >= goal else " not met"
            p = pairs.get((label, size))
            if p is not None:
                lo, hi = p["ci95"]
                cells[-1] += f"; paired {p['ratio']:.3f}x [{lo:.3f}, {hi:.3f}] **{p['verdict']}**"
        if any(cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def markdown_table(rows: list[dict]) -> list[str]:
    """Every row of one run: pairs/s per size with its ratios against torchvision's and albumentations' SimCLR
    per image, and the median round, as a markdown table."""
    sizes = sorted({r["size"] for r in rows})
    lines = ["| pipeline: pairs/s (vs torchvision v1, **vs albumentations SimCLR**; median round) | "
             + " | ".join(f"{s} px" for s in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    for method in [m for m in METHODS if any(r["method"] == m for r in rows)]:
        cells = []
        for size in sizes:
            r = next((r for r in rows if r["method"] == method and r["size"] == size), None)
            if r is None:
                cells.append("")
                continue
            ratios = [r.get(f"ratio_vs_{peer}") for peer in PEERS]
            tv, alb = ("-" if x is None else f"{x:.2f}x" for x in ratios)
            cells.append(f"{r['pairs_per_s']:,.0f} ({tv}, **{alb}**; median {r['pairs_per_s_median']:,.0f})")
        lines.append(f"| {LABELS.get(method, method)} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 96, 224], choices=sorted(INPUT_SIDE))
    p.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    p.add_argument("--seconds", type=float, default=3.0, help="measuring time per pipeline and size")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best round is reported")
    p.add_argument("--paired-seconds", type=float, default=4.0,
                   help="seconds per issue-23 target and size measured paired (alternate calls, ratio with a 95%% "
                        "interval); 0 skips")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: pairs/s per core)")
    p.add_argument("--cv2-threads", type=int, default=1,
                   help="OpenCV threads for every pipeline that calls it (ours, albumentations; default 1: pairs/s per "
                        "core, as a DataLoader worker runs; OpenCV's own default uses every core)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default depends on size and device)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/throughput_<device>.json)")
    p.add_argument("--figure", default=None, help="also draw the ratios as a bar chart (PNG) at this path")
    p.add_argument("--from-json", default=None, help="only print the tables (and draw --figure) of an earlier run's JSON")
    args = p.parse_args(argv)
    if args.paired_seconds < 0:
        p.error(f"--paired-seconds must be >= 0, got {args.paired_seconds}")
    if args.from_json:  # redraw the figure and reprint the tables of an earlier run
        report = json.loads(Path(args.from_json).read_text())
        print("\n".join(markdown_table(report["results"])))
        print("\nissue 23's targets in this run:\n" + "\n".join(target_table(report["results"],
                                                                         report.get("paired"))))
        if args.figure:
            print(f"wrote {plot(report, Path(args.figure))}")
        return 0
    torch.set_num_threads(args.threads)
    import cv2

    cv2.setNumThreads(args.cv2_threads)
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda needs a CUDA device")
    info = machine_info(device, args.threads)
    info["cv2_threads"] = args.cv2_threads
    print(json.dumps(info, indent=1))
    rows, paired = [], []
    started = time.perf_counter()
    for size in args.sizes:
        batch = args.batch or (CUDA_BATCH if device.startswith("cuda") else CPU_BATCH)[size]
        size_rows, size_paired = bench_size(size, device, args.seconds, args.methods, batch, args.rounds,
                                            args.paired_seconds)
        rows += size_rows
        paired += size_paired
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"throughput_{device.split(':')[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"command": command.strip(), "machine": info, "total_seconds": time.perf_counter() - started,
              "results": rows, "paired": paired}
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\n{'size':>4}  {'method':<36} {'pairs/s':>10} {'vs tv v1':>9} {'vs album':>9}")
    for r in rows:
        ratios = [r.get(f"ratio_vs_{peer}") for peer in PEERS]
        print(f"{r['size']:>4}  {r['method']:<36} {r['pairs_per_s']:>10,.0f} "
              + " ".join(f"{'' if x is None else f'{x:8.2f}x':>9}" for x in ratios))
    print(f"wrote {out}")
    print("\nissue 23's targets in this run:\n" + "\n".join(target_table(rows, paired)))
    if args.figure:
        print(f"wrote {plot(report, Path(args.figure))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
