"""Figures shared by the CLI and the docs (matplotlib, headless)."""

from __future__ import annotations

import io
import os
from pathlib import Path

from torch import Tensor


def pyplot():
    """matplotlib's ``pyplot`` on the headless Agg backend (imported on first use, so importing this is cheap)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically (PNG) and close it."""
    from .core.artifact import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def image_grid(rows: dict[str, Tensor], path: str | os.PathLike, title: str | None = None,
               col_labels: list[str] | None = None, cell: float = 1.6) -> Path:
    """A grid with one row per entry of ``rows`` (each ``[N, C, H, W]`` float in [0, 1]), labelled on the left."""
    plt = pyplot()
    n_rows = len(rows)
    n_cols = max(int(v.shape[0]) for v in rows.values())
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols + 1.5, cell * n_rows + (0.5 if title else 0)),
                             squeeze=False)
    for r, (label, imgs) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if c < imgs.shape[0]:
                im = imgs[c].detach().float().clamp(0, 1).cpu()
                if im.shape[0] == 1:
                    ax.imshow(im[0], cmap="gray", vmin=0, vmax=1)
                else:
                    ax.imshow(im.permute(1, 2, 0).numpy())
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
            if r == 0 and col_labels and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def center_square(img: Tensor, size: int) -> Tensor:
    """Centre-crop ``[C, H, W]`` to a square and resize to ``size`` (antialiased)."""
    import torch.nn.functional as F

    _, h, w = img.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = img[:, top:top + s, left:left + s].float()
    if crop.max() > 1.5:
        crop = crop / 255.0
    return F.interpolate(crop[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


__all__ = ["image_grid", "save_figure", "center_square"]
