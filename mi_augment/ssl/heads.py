"""Projection and prediction heads: MLPs of Linear-BN-ReLU blocks."""

from __future__ import annotations

import torch
from torch import nn


def mlp(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2, *, last_bn: bool = False,
        last_bn_affine: bool = True) -> nn.Sequential:
    """``num_layers`` linear layers; every layer but the last is followed by BatchNorm and ReLU.

    ``last_bn`` adds a BatchNorm after the last layer (SimSiam's projector, MoCo v3, Barlow Twins use one;
    ``last_bn_affine=False`` gives MoCo v3's affine-free variant).
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers - 1):
        layers += [nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim, bias=not last_bn))
    if last_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=last_bn_affine))
    return nn.Sequential(*layers)


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module`` to be updated by :func:`ema_update` (BYOL's target, MoCo's key encoder)."""
    import copy

    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


def momentum_at(base: float, progress: float) -> float:
    """BYOL's schedule: momentum rises from ``base`` to 1 along a cosine as ``progress`` goes 0 -> 1."""
    import math

    return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``target = momentum * target + (1 - momentum) * online`` for parameters; buffers (BatchNorm
    statistics) are copied."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.lerp_(o.detach(), 1 - momentum)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)
