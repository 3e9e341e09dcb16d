"""A/B of the pair transform's paths between two checkouts (issue 21 item 7: no speed regression).

    python benchmarks/ab_paths.py REPO [SECONDS] > out.json

Imports mi_augment from REPO and prints, as JSON, pairs of views per second (best of 2 rounds, one torch thread)
for each (size, variant, path): ``batch`` (a float batch), ``per_image_torch`` (one PIL image per call on the torch
kernels) and ``per_image_default`` (one PIL image per call on the default backend). Run it for the two checkouts
in alternating processes on the same machine and compare the ratios.
"""

from __future__ import annotations

import inspect
import json
import sys
import time

if len(sys.argv) < 2:
    sys.exit(__doc__)
sys.path.insert(0, sys.argv[1])

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from mi_augment.core.options import kernel_options  # noqa: E402
from mi_augment.transforms.pair import MIPairTransform  # noqa: E402

torch.set_num_threads(1)
HAS_UINT8 = "uint8_backend" in inspect.signature(kernel_options).parameters


def images(n: int, side: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, max(2, side // 8), max(2, side // 8), generator=g)
    smooth = F.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)
    return ((smooth + 0.1 * torch.rand(n, 3, side, side, generator=g)).clamp(0, 1) * 255).round().to(torch.uint8)


def make(size: int, variant: str) -> MIPairTransform:
    natural = dict(illumination="default", motion="default", view_transforms=None)
    return {"random": lambda: MIPairTransform(size, policy="random", **natural),
            "k8": lambda: MIPairTransform(size, n_candidates=8, **natural),
            "simclr_random": lambda: MIPairTransform.simclr(size, policy="random", blur=False),
            "simclr_k8": lambda: MIPairTransform.simclr(size, n_candidates=8, blur=False)}[variant]()


def on_torch_kernels(fn):
    def call():
        if HAS_UINT8:
            with kernel_options(uint8_backend=False):
                return fn()
        return fn()
    return call


def rate(fn, n: int, seconds: float) -> float:
    fn()
    best = 0.0
    for _ in range(2):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fn()
            calls += 1
        best = max(best, n * calls / (time.perf_counter() - start))
    return best


def main() -> None:
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 0.6
    out = {}
    for size, side, batch in [(32, 32, 128), (96, 96, 32), (224, 256, 8)]:
        x = images(batch, side)
        pil = [Image.fromarray(im.permute(1, 2, 0).numpy()) for im in x[:16]]
        for variant in ["random", "k8", "simclr_random", "simclr_k8"]:
            t = make(size, variant)
            paths = {"batch": (lambda t=t, x=x: t(x.float() / 255), batch),
                     "per_image_torch": (on_torch_kernels(lambda t=t, pil=pil: [t(p) for p in pil]), len(pil)),
                     "per_image_default": (lambda t=t, pil=pil: [t(p) for p in pil], len(pil))}
            for mode, (fn, n) in paths.items():
                out[f"{size} {variant} {mode}"] = rate(fn, n, seconds)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
