"""What a training run needs around its loop: the git SHA and device in the printed config, DDP set-up and
tear-down, the progress bar, the kNN monitor and the loss-curve figure."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ...datasets.loading import ImageData
from ..evaluate import extract_features, knn_top1

__all__ = ["device_name", "finish_distributed", "git_sha", "jsonable", "knn_monitor", "mean_over_ranks",
           "plot_curves", "progress", "setup_distributed", "unwrap"]


@functools.lru_cache(maxsize=1)
def git_sha() -> str:
    """``HEAD`` of the repository holding this package, ``+dirty`` when it has uncommitted changes (looked up
    once per process)."""
    root = Path(__file__).resolve().parents[3]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("+dirty" if dirty else "")) if sha else "unknown"


def setup_distributed(device_arg: str) -> tuple[torch.device, int, int]:
    """``(device, rank, world_size)``; joins the process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_arg == "auto":
        device_arg = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_arg)
    if device.type == "cuda":
        if world > 1 or device.index is None:
            device = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device, rank, world


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's with its cores and torch threads, for the printed config."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def jsonable(config: dict[str, Any]) -> dict[str, Any]:
    """The config with every value JSON can hold as is, the others as their ``str``.

    Example:
        >>> jsonable({"lr": 0.3, "quantiles": (0.9, 1.0)})
        {'lr': 0.3, 'quantiles': '(0.9, 1.0)'}
    """
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v) for k, v in config.items()}


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (any other module as is)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model



def mean_over_ranks(x: Tensor, world: int) -> Tensor:
    if world > 1:
        x = x.clone()
        dist.all_reduce(x)
        x /= world
    return x


def finish_distributed(world: int) -> None:
    if world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def knn_monitor(encoder: nn.Module, data: ImageData, device: torch.device) -> float:
    train_f, train_y = extract_features(encoder, data.memory, device)
    test_f, test_y = extract_features(encoder, data.test, device)
    return knn_top1(train_f, train_y, test_f, test_y, data.num_classes)


def progress(total: int, initial: int, disabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=disabled, desc=desc, unit="step", dynamic_ncols=True,
                mininterval=1.0)


def plot_curves(results: dict[str, Any], path: Path) -> None:
    """Per-epoch loss (and the kNN monitor when recorded) as a PNG."""
    from ...figures import pyplot, save_figure

    plt = pyplot()
    knn = results.get("knn_curve") or []
    fig, axes = plt.subplots(1, 2 if knn else 1, figsize=(9 if knn else 5, 3.5), squeeze=False)
    losses = results["epoch_loss"]
    axes[0, 0].plot(range(1, len(losses) + 1), losses, marker="o")
    axes[0, 0].set(xlabel="epoch", ylabel="training loss", title=f"{results['method']} ({results['config']['augment']})")
    if knn:
        axes[0, 1].plot([e for e, _ in knn], [a for _, a in knn], marker="o", color="C1")
        axes[0, 1].set(xlabel="epoch", ylabel="kNN top-1 (%)", title="kNN monitor")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)

