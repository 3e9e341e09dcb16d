"""The ColorJitter kernel: brightness, contrast, saturation and hue, per sample, each sample in its own order.

One public kernel, :func:`color_jitter`, that :class:`~mi_augment.transforms.ColorJitter` renders with. How it
runs depends on the batch (the same maths per sample, checked against the step-by-step form inside
``mi_augment.kernel_options(fast_paths=False)``): one image runs its four adjustments as numbers; from 64 x 64
pixels the samples are grouped by their sequence of operations; otherwise (and as the reference) one
adjustment call per (step, operation) on the samples doing it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.options import current
from .color import adjust_brightness, adjust_contrast, adjust_hue, adjust_inplace, adjust_saturation

__all__ = ["color_jitter"]

# Samples are grouped by their sequence of operations from this many elements per sample (the copies it
# saves outweigh its up to 96 kernel calls: 0.95x / 1.1x / 1.4x / 1.35x at 32 / 64 / 96 / 224 px, one CPU thread)
_GROUPED_MIN_ELEMENTS = 3 * 64 * 64
_IDENTITY = (1.0, 1.0, 1.0, 0.0)
_KERNELS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(images: Tensor, brightness: Tensor, contrast: Tensor, saturation: Tensor, hue: Tensor,
                 order: Tensor) -> Tensor:
    """Apply ``torchvision``'s ColorJitter operations to each sample with its own factors and order.

    Sample ``i`` goes through brightness, contrast, saturation and hue (:func:`~.color.adjust_brightness` and
    its siblings) in the order ``order[i]``; a factor of 1 (0 for hue) skips its operation, and 1-channel
    images skip saturation and hue.

    Args:
        images: ``[B, C, H, W]`` float in [0, 1], ``C`` = 1 or 3.
        brightness, contrast, saturation: ``(B,)`` non-negative factors (1 = unchanged).
        hue: ``(B,)`` shifts in turns, in [-0.5, 0.5] (0 = unchanged).
        order: ``(B, 4)`` integer, the indices 0-3 (brightness, contrast, saturation, hue) in the order each
            sample applies them.

    Shape:
        - Output: ``[B, C, H, W]``, a new tensor.

    Example:
        >>> x = torch.rand(2, 3, 8, 8)
        >>> one = torch.ones(2)
        >>> y = color_jitter(x, one * 1.2, one, one, torch.zeros(2), torch.arange(4).repeat(2, 1))
        >>> bool(torch.allclose(y, (x * 1.2).clamp(0, 1)))
        True
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float [B, C, H, W] tensor, got {getattr(images, 'shape', type(images))}")
    b = images.shape[0]
    factors = [brightness, contrast, saturation, hue]
    for name, f in zip(("brightness", "contrast", "saturation", "hue"), factors):
        if not isinstance(f, Tensor) or f.reshape(-1).shape != (b,):
            raise ValueError(f"{name} must be a ({b},) tensor, got {tuple(getattr(f, 'shape', ()))}")
    if not isinstance(order, Tensor) or tuple(order.shape) != (b, 4) or order.is_floating_point():
        raise ValueError(f"order must be a ({b}, 4) integer tensor, got {tuple(getattr(order, 'shape', ()))}")
    factors = [f.reshape(-1) for f in factors]
    if b == 1 and current().fast_paths:
        return _one_image(images, torch.cat(factors).tolist(), order[0].tolist())
    if current().fast_paths and images[0].numel() >= _GROUPED_MIN_ELEMENTS:
        return _by_sequence(images, factors, order)
    return _by_step(images, factors, order)


def _changes(factors: list[Tensor], channels: int) -> list[Tensor]:
    """Per operation, ``(B,)`` bool: the factor changes something (grey images skip saturation and hue)."""
    changes = [f != i for f, i in zip(factors, _IDENTITY)]
    if channels == 1:
        changes[2] = changes[3] = torch.zeros_like(changes[3])
    return changes


def _one_image(images: Tensor, values: list[float], order: list[int]) -> Tensor:
    """One image: its operations in its order on its factors as numbers (no row selection)."""
    grey = images.shape[1] != 3
    out = images
    for op in order:
        if values[op] == _IDENTITY[op] or (op >= 2 and grey):
            continue
        # the first kernel makes a new tensor; the next ones may write into it
        out = _KERNELS[op](out, values[op]) if out is images else adjust_inplace(out, op, values[op])
    return images.clone() if out is images else out


def _by_step(images: Tensor, factors: list[Tensor], order: Tensor) -> Tensor:
    """The reference: one adjustment per (step, operation) on the samples doing that operation at that step."""
    changes = _changes(factors, images.shape[1])
    out = images.clone()
    for step in range(4):
        for op in range(4):
            rows = ((order[:, step] == op) & changes[op]).nonzero().squeeze(1)
            if rows.numel():
                out.index_copy_(0, rows, adjust_inplace(out.index_select(0, rows), op, factors[op][rows]))
    return out


def _by_sequence(images: Tensor, factors: list[Tensor], order: Tensor) -> Tensor:
    """The samples grouped by their sequence of operations (at most 24 orders), each group selected once and
    run through its kernels in place: the batch is copied twice instead of up to 9 times."""
    out = torch.empty_like(images)
    done = torch.stack(_changes(factors, images.shape[1]), 1).gather(1, order)  # (N, 4): step s does its op
    # key: the order in base 4 (0-255), plus 256 times the 4 bits of the steps that do something
    key = (order * torch.tensor([64, 16, 4, 1], device=order.device)).sum(1)
    key += (done.long() * torch.tensor([2048, 1024, 512, 256], device=order.device)).sum(1)
    keys, group = key.unique(return_inverse=True)
    for i, k in enumerate(keys.tolist()):
        ops = [(k // 4 ** (3 - s)) % 4 for s in range(4) if (k >> (11 - s)) & 1]
        members = (group == i).nonzero().squeeze(1)
        y = images.index_select(0, members)  # our own copy: the kernels may write into it
        for op in ops:
            y = adjust_inplace(y, op, factors[op].index_select(0, members))
        out.index_copy_(0, members, y)
    return out
