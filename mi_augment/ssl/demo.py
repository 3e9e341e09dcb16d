"""The short real training run that ``mi-augment demo`` ends with: SimCLR on the embedded default dataset
(a fixed subset of Fashion-MNIST), once with the baseline augmentation and once with
``--augment mi``, same seed, same steps; prints a table of kNN and linear-probe top-1.

It is a smoke-sized comparison (a small CNN, 5,000 images, 3 epochs: a few minutes in all on 2 CPU cores), not a
benchmark: differences of a point or two are within seed noise. ``benchmarks/downstream.py`` runs the real
comparison over seeds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.artifact import atomic_write_bytes
from .heads import mlp
from .losses import nt_xent
from .optim import LARS, param_groups


class _SimCLR(nn.Module):
    """SimCLR as in ``recipes/simclr.py`` (encoder, 2-layer projector, NT-Xent); kept here because the demo
    must work from an installed package, where ``recipes/`` is not present."""

    def __init__(self, encoder: nn.Module, temperature: float = 0.2):
        super().__init__()
        self.encoder = encoder
        self.projector = mlp(encoder.dim, 1024, 128)
        self.temperature = temperature

    def forward(self, view_a, view_b):
        z_a, z_b = self.projector(self.encoder(torch.cat([view_a, view_b]))).chunk(2)
        return nt_xent(z_a, z_b, self.temperature)


def _optimizer(model: nn.Module, args: argparse.Namespace, lr: float) -> torch.optim.Optimizer:
    return LARS(param_groups(model, args.weight_decay), lr=lr, momentum=0.9)


def run_demo_comparison(out_dir: str | Path, *, epochs: int = 3, seed: int = 0,
                        modes: tuple[str, ...] = ("baseline", "mi"), train_subset: int = 5000,
                        test_subset: int = 2000, backbone: str = "small_cnn", batch_size: int = 256,
                        linear_epochs: int = 30, quiet: bool = False) -> dict[str, Any]:
    """Train SimCLR once per augment mode on the embedded default dataset and print a comparison table.

    Args:
        out_dir: each run writes ``out_dir/<mode>/`` (checkpoint, results.json, curves.png); the table goes to
            ``out_dir/demo_comparison.json``.
        epochs: epochs per run (over ``train_subset`` images).
        seed: the same seed for every mode (same initial weights, same data order).
        modes: augment modes to compare.
        train_subset, test_subset: fixed subsets of the default set's 10,000 / 2,000 images.
        linear_epochs: linear-probe epochs (0 skips the probe).
        backbone: ``small_cnn`` (default; ResNet-18 is ~10x slower on a CPU).

    Returns:
        ``{"rows": [{"augment", "knn_top1", "linear_top1", "train_seconds"}, ...], "table": str, ...}``.
    """
    from .train import make_parser, run

    out_dir = Path(out_dir)
    rows = []
    for mode in modes:
        argv = ["--dataset", "default", "--backbone", backbone, "--augment", mode, "--epochs", str(epochs),
                "--batch-size", str(batch_size), "--seed", str(seed), "--out", str(out_dir / mode),
                "--warmup-epochs", "1", "--linear-epochs", str(linear_epochs), "--checkpoint-every", "100000",
                "--train-subset", str(train_subset), "--test-subset", str(test_subset), "--device", "auto",
                "--overwrite"]
        if quiet:
            argv.append("--quiet")
        args = make_parser("SimCLR", lr=0.3, weight_decay=1e-6).parse_args(argv)
        tic = time.perf_counter()
        result = run(args, method_name="SimCLR", build_method=lambda encoder, _: _SimCLR(encoder),
                     build_optimizer=_optimizer)
        rows.append({"augment": mode, "knn_top1": result["knn_top1"], "linear_top1": result.get("linear_top1"),
                     "final_loss": result["epoch_loss"][-1], "seconds": time.perf_counter() - tic,
                     "device": result["device"]})
    table = format_table(rows, title=f"SimCLR, {backbone}, Fashion-MNIST subset, {epochs} epochs, seed {seed}")
    print(table, flush=True)
    summary = {"rows": rows, "table": table, "epochs": epochs, "seed": seed, "backbone": backbone,
               "note": "one seed, a few epochs: differences of 1-2 points are within seed noise"}
    atomic_write_bytes(out_dir / "demo_comparison.json", json.dumps(summary, indent=1).encode())
    return summary


def format_table(rows: list[dict[str, Any]], title: str = "") -> str:
    """A small Markdown table of the demo rows."""
    lines = [title, "", "| augment | kNN top-1 (%) | linear top-1 (%) | time (s) |", "|---|---:|---:|---:|"]
    for r in rows:
        lin = f"{r['linear_top1']:.2f}" if r.get("linear_top1") is not None else "-"
        lines.append(f"| {r['augment']} | {r['knn_top1']:.2f} | {lin} | {r['seconds']:.0f} |")
    return "\n".join(lines)
