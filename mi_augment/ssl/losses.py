"""Self-supervised losses. Each takes the two views' embeddings ``[N, D]`` of the local batch and, under
DDP, gathers what it needs from the other processes (with gradients where the loss needs them), so a loss
over 2 processes x N images equals the loss over one process with 2N images.

All losses compute in float32, whatever the autocast dtype of the embeddings.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather(x: Tensor, *, with_grad: bool = True) -> Tensor:
    """Concatenate ``x`` from every process along dim 0 (rank order); ``x`` itself outside DDP.

    ``with_grad=True`` keeps the autograd graph so each process's gradient reaches its own inputs.
    """
    if not _distributed():
        return x
    if with_grad:
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(x), dim=0)
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def _offset(n: int) -> int:
    return dist.get_rank() * n if _distributed() else 0


def nt_xent(z_a: Tensor, z_b: Tensor, temperature: float = 0.2) -> Tensor:
    """SimCLR's normalised-temperature cross entropy: each of the 2N views must pick out its partner among
    the 2N - 1 other views (of every process)."""
    n = z_a.shape[0]
    a = F.normalize(z_a.float(), dim=1)
    b = F.normalize(z_b.float(), dim=1)
    everyone = torch.cat([gather(a), gather(b)], dim=0)  # [2M, D]
    m = everyone.shape[0] // 2
    idx = _offset(n) + torch.arange(n, device=a.device)
    logits = torch.cat([a, b], dim=0) @ everyone.T / temperature  # [2N, 2M]
    self_col = torch.cat([idx, idx + m])
    rows = torch.arange(2 * n, device=a.device)
    logits[rows, self_col] = float("-inf")
    targets = torch.cat([idx + m, idx])
    return F.cross_entropy(logits, targets)


def info_nce(query: Tensor, key: Tensor, temperature: float = 0.2, positive: Tensor | None = None) -> Tensor:
    """MoCo v3's InfoNCE: queries against the (gradient-free) keys of the whole global batch, positives on
    the diagonal; scaled by ``2 * temperature`` as in the paper so the loss scale does not depend on it.

    ``positive (N, D)`` (cross-image positives, NNCLR-style) replaces each query's own key as its positive
    logit; the negatives stay the other keys of the batch (so a partner chosen twice is never a negative)."""
    n = query.shape[0]
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(key.float(), dim=1).detach()
    logits = q @ gather(k, with_grad=False).T / temperature
    targets = _offset(n) + torch.arange(n, device=q.device)
    if positive is not None:
        if positive.shape != key.shape:
            raise ValueError(f"positive must have the keys' shape {tuple(key.shape)}, got {tuple(positive.shape)}")
        pos = (q * F.normalize(positive.float(), dim=1).detach()).sum(1) / temperature
        logits = logits.scatter(1, targets[:, None], pos[:, None])
    return F.cross_entropy(logits, targets) * (2 * temperature)


def nnclr_loss(neighbour: Tensor, z: Tensor, temperature: float = 0.2) -> Tensor:
    """NNCLR's contrastive loss: each sample's (gradient-free) support-set neighbour must pick out the
    sample's other view ``z`` among the ``z`` of the whole global batch. ``neighbour (N, D)``, ``z (N, D)``;
    gradients reach ``z`` only. Symmetrise over the two views in the method."""
    n = z.shape[0]
    a = F.normalize(neighbour.float(), dim=1).detach()
    b = F.normalize(z.float(), dim=1)
    logits = a @ gather(b).T / temperature
    targets = _offset(n) + torch.arange(n, device=a.device)
    return F.cross_entropy(logits, targets)


def negative_cosine(prediction: Tensor, target: Tensor) -> Tensor:
    """SimSiam: minus the mean cosine similarity, with a stop-gradient on ``target``. Range [-1, 1]."""
    return -F.cosine_similarity(prediction.float(), target.detach().float(), dim=1).mean()


def byol_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """BYOL: the squared distance of the normalised vectors, ``2 - 2 cos``, target detached. Range [0, 4]."""
    return (2 - 2 * F.cosine_similarity(prediction.float(), target.detach().float(), dim=1)).mean()


def _standardise(z: Tensor, eps: float = 1e-5) -> Tensor:
    return (z - z.mean(0)) / (z.std(0, unbiased=False) + eps)


def barlow_twins_loss(z_a: Tensor, z_b: Tensor, off_diagonal_weight: float = 5e-3) -> Tensor:
    """Barlow Twins: drive the cross-correlation matrix of the standardised embeddings to the identity.
    ``sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2``."""
    a = _standardise(gather(z_a.float()))
    b = _standardise(gather(z_b.float()))
    c = a.T @ b / a.shape[0]
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on + off_diagonal_weight * off


def vicreg_loss(z_a: Tensor, z_b: Tensor, invariance_weight: float = 25.0, variance_weight: float = 25.0,
                covariance_weight: float = 1.0, eps: float = 1e-4) -> Tensor:
    """VICReg: mean squared distance between views (invariance) + a hinge keeping every dimension's std
    above 1 (variance) + the squared off-diagonal covariances (covariance), each view on its own."""
    invariance = F.mse_loss(z_a.float(), z_b.float())
    variance = z_a.new_zeros((), dtype=torch.float32)
    covariance = z_a.new_zeros((), dtype=torch.float32)
    for z in (gather(z_a.float()), gather(z_b.float())):
        z = z - z.mean(0)
        std = torch.sqrt(z.var(0) + eps)
        variance = variance + F.relu(1 - std).mean() / 2
        n, d = z.shape
        cov = z.T @ z / max(n - 1, 1)
        covariance = covariance + (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d
    return invariance_weight * invariance + variance_weight * variance + covariance_weight * covariance
