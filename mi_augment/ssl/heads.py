"""Projection and prediction heads (MLPs of Linear-BN-ReLU blocks), momentum copies, and the support-queue
neighbours of ``--positives mi-neighbour``."""

from __future__ import annotations

import torch
from torch import Tensor, nn


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


class NeighbourPositives(nn.Module):
    """``--positives mi-neighbour``: cross-image positives from a support queue (NNCLR with ``policy="max"``).

    Holds a :class:`~mi_augment.ssl.positives.SupportQueue` of target embeddings (the EMA / target network's
    projections when the method has one, the online ones detached otherwise). Each step, :meth:`forward`
    pushes view A's embeddings with their dataset indices (gathered across DDP ranks by the queue), then
    picks, for each sample's view A and view B embedding, a partner among the queue's *other* images by
    pointwise MI with :func:`~mi_augment.ssl.positives.choose_partners` and ``policy``. The method uses the
    partner where its loss had the other view's target. The queue is a buffer of this module, so it is saved
    in checkpoints and restored by ``--resume``.

    Args:
        dim: embedding size of the target side.
        capacity: queue rows (the latest ``capacity`` embeddings of all ranks).
        policy: ``"max"`` (NNCLR's nearest neighbour), ``"band"`` (``quantiles=(lo, hi)``: uniform among the
            entries whose pMI rank lies in that quantile range), ``"topk"`` (``k``: uniform among the k best).
        temperature: the critic's temperature (the method's loss temperature; ranks do not depend on it).
    """

    def __init__(self, dim: int, capacity: int = 8192, policy: str = "max", temperature: float = 0.2,
                 **policy_options):
        super().__init__()
        from ..pairs.policies import make_policy
        from .positives import SupportQueue

        self.policy = make_policy(policy, **policy_options)
        if self.policy.rank_based and capacity < 2:
            raise ValueError(f"capacity={capacity} leaves policy {self.policy.name!r} nothing to rank: a rank "
                             "policy needs a queue of at least 2 entries")
        self.temperature = float(temperature)
        self.queue = SupportQueue(capacity, dim)

    def choose(self, target: Tensor, ids: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Partners ``(B, dim)`` of ``target (B, dim)`` from the queue as it is (raises when it is empty)."""
        from .positives import choose_partners

        partners = choose_partners(target.detach(), self.queue, self.policy, self.temperature, generator,
                                   query_ids=ids)
        return partners.embeddings.to(target.dtype)

    def forward(self, target_a: Tensor, target_b: Tensor, ids: Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Push ``target_a`` (with ``ids``), then the partners of ``target_a`` and ``target_b`` (a sample's own
        entries excluded when ``ids`` are given)."""
        self.queue.push(target_a.detach().float(), ids)
        return self.choose(target_a, ids, generator), self.choose(target_b, ids, generator)
