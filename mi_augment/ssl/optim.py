"""Optimizers and learning-rate schedule for the recipes."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim import Optimizer


def param_groups(model: nn.Module, weight_decay: float, *, exclude_bias_and_norm: bool = True,
                 **extra) -> list[dict]:
    """Two groups: weights of linear / conv layers (with ``weight_decay``) and biases + normalisation
    parameters (no decay, and no LARS adaptation), as SimCLR, BYOL and Barlow Twins do. Frozen parameters
    (momentum encoders) are left out."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if exclude_bias_and_norm and p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay, **extra}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "lars_exclude": True, **extra})
    return groups


class LARS(Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (You et al., 2017).

    Each parameter's step is scaled by ``trust_coefficient * ||w|| / ||g + wd * w||``; groups marked
    ``lars_exclude=True`` (biases, norms) take plain SGD-momentum steps without weight decay.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001, eps: float = 1e-8):
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient,
                        eps=eps, lars_exclude=False)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if not group["lars_exclude"]:
                    if group["weight_decay"]:
                        g = g.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    trust = group["trust_coefficient"] * w_norm / (g_norm + group["eps"])
                    g = g * torch.where((w_norm > 0) & (g_norm > 0), trust, torch.ones_like(trust))
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(g).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(g)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def lr_factor(step: int, total_steps: int, warmup_steps: int, final_factor: float = 0.0) -> float:
    """Linear warmup from ~0 to 1 over ``warmup_steps``, then a cosine decay to ``final_factor``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: Optimizer, factor: float) -> None:
    """Set every group's ``lr`` to ``base_lr * factor`` (groups with ``fixed_lr=True`` keep ``base_lr``,
    as SimSiam's predictor does)."""
    for group in optimizer.param_groups:
        base = group.setdefault("base_lr", group["lr"])
        group["lr"] = base if group.get("fixed_lr") else base * factor


def adamw_for_vit(model: nn.Module, batch_size: int, lr: float = 5e-4, weight_decay: float = 0.05) -> Optimizer:
    """AdamW as MoCo v3 and DINO train ViTs (LARS / SGD suit ResNets, not ViTs): ``lr`` per 256 images."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr * batch_size / 256, betas=(0.9, 0.95))


def lars_or_adamw(model: nn.Module, args, lr: float) -> Optimizer:
    """The recipes' default optimizer (``build_optimizer`` of :func:`mi_augment.ssl.train.run`): AdamW for
    ``--backbone vit_tiny`` (:func:`adamw_for_vit`), otherwise LARS with momentum 0.9 at ``lr`` and
    ``args.weight_decay`` (biases and norms excluded from decay and adaptation)."""
    if args.backbone == "vit_tiny":
        return adamw_for_vit(model, args.batch_size)
    return LARS(param_groups(model, args.weight_decay), lr=lr, momentum=0.9)
