"""Drawing a mined shot: its reference frame with an arrow from every patch to its twin."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .result import TwinPatches

__all__ = ["plot_twins"]


def plot_twins(result: TwinPatches, frame: Tensor | np.ndarray, ax=None, *, title: str | None = None,
               colorbar: bool = True):
    """Draw ``frame`` (the reference frame: ``(C, H, W)`` tensor or ``(H, W, C)`` uint8 array) with an arrow
    from every patch to its twin, coloured by their MI; active patches without a twin are outlined in grey.
    Returns the matplotlib axes (matplotlib is imported here only)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if isinstance(frame, Tensor):
        img = frame.float() / 255.0 if frame.dtype == torch.uint8 else frame.float()
        img = img.permute(1, 2, 0).clamp(0, 1).cpu().numpy()
    else:
        img = np.asarray(frame)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 8 * img.shape[0] / img.shape[1]))
    ax.imshow(img.squeeze(), cmap="gray" if img.ndim == 2 or img.shape[-1] == 1 else None)
    for i in torch.nonzero(result.active & (result.twins < 0)).flatten().tolist():
        x1, y1, x2, y2 = result.boxes[i].tolist()
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=0.6, ec="0.8", alpha=0.7))
    pairs = result.pairs()
    if pairs.numel():
        values = result.mi[pairs[:, 0], pairs[:, 1]].numpy()
        norm = plt.Normalize(vmin=float(values.min()), vmax=float(max(values.max(), values.min() + 1e-6)))
        cmap = plt.get_cmap("plasma")
        centres = ((result.boxes[:, :2] + result.boxes[:, 2:]) / 2).numpy()
        for (i, j), v in zip(pairs.tolist(), values):
            (x0, y0), (x1, y1) = centres[i], centres[j]
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops=dict(arrowstyle="->", color=cmap(norm(v)), lw=1.3, shrinkA=0, shrinkB=2))
            ax.plot([x0], [y0], "o", ms=2.5, color=cmap(norm(v)))
        if colorbar:
            sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
            ax.figure.colorbar(sm, ax=ax, fraction=0.03, pad=0.01, label="MI with twin (nats)")
    s = result.summary()
    ax.set_title(title or f"frames {s['frames'][0]}-{s['frames'][1]}: {s['twins']} twins, {s['active']} active, "
                          f"{s['patches']} patches", fontsize=9)
    ax.set_axis_off()
    return ax
