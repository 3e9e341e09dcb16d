"""Small helpers shared by the benchmark scripts: timing, machine facts, JSON output, loading a script."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str) -> ModuleType:
    """A repository script (``recipes/*.py``, ``benchmarks/*.py``: not a package), loaded by its path relative
    to the repository root once per process and registered in ``sys.modules`` (dataclasses look their module
    up while the file executes)."""
    name = "script_" + relative.removesuffix(".py").replace("/", "_")
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / relative)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    info = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def timeit(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1, device: str = "cpu") -> float:
    """Median wall time of ``fn()`` in seconds (CUDA-synchronised on GPU)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def write_json(name: str, payload: dict[str, Any]) -> Path:
    from mi_augment.core.artifact import atomic_write_bytes

    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"git_sha": git_sha(), "machine": machine(), **payload}
    return atomic_write_bytes(RESULTS / name, json.dumps(payload, indent=1).encode())


def spearman_within(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman correlation of ``a`` and ``b`` ``(B, K)`` within each row (ties broken by position); NaN for
    a row where either is constant."""
    ra, rb = a.argsort(1).argsort(1).float(), b.argsort(1).argsort(1).float()
    const = (a.amax(1) == a.amin(1)) | (b.amax(1) == b.amin(1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    rho = (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1)).clamp_min(1e-12)
    return torch.where(const, torch.full_like(rho, float("nan")), rho)
