"""Evaluation of a frozen encoder: weighted kNN top-1 and a linear probe.

kNN follows InstDisc (Wu et al., 2018), the usual SSL monitor: cosine similarity to every training feature,
the ``k = 200`` nearest vote for their class with weight ``exp(sim / 0.1)``. The linear probe trains one
linear layer on standardised, precomputed features (no augmentation), so it costs seconds, not epochs.

:func:`evaluate_frozen` is the ablation protocol (issue 11): features of the whole labelled memory and test
set extracted once and cached, kNN at several ``k`` from one top-k search (InstDisc's weighted vote, not a
plain majority), and :func:`linear_probe_lbfgs`, a full-batch L-BFGS probe that starts from zero weights and
so gives the same number on every call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..datasets.loading import ImageData, ImageSet


@torch.no_grad()
def extract_features(encoder: nn.Module, images: ImageSet, device: torch.device | str,
                     batch_size: int = 512) -> tuple[Tensor, Tensor]:
    """Features ``[N, D]`` (float32, on ``device``) and labels ``[N]`` of every image, encoder in eval mode."""
    was_training = encoder.training
    encoder.eval()
    feats, labels = [], []
    for x, y in images.all_batches(batch_size, device):
        feats.append(encoder(x.float() / 255.0).float())
        labels.append(y)
    encoder.train(was_training)
    return torch.cat(feats), torch.cat(labels).to(device)


@torch.no_grad()
def knn_top1(train_features: Tensor, train_labels: Tensor, test_features: Tensor, test_labels: Tensor,
             num_classes: int, k: int = 200, temperature: float = 0.1, chunk: int = 1024) -> float:
    """Top-1 accuracy (in %) of the cosine-weighted kNN classifier."""
    train = F.normalize(train_features, dim=1)
    test = F.normalize(test_features, dim=1)
    k = min(k, train.shape[0])
    correct = 0
    for start in range(0, test.shape[0], chunk):
        sim = test[start:start + chunk] @ train.T
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(sim.shape[0], num_classes, device=sim.device)
        votes.scatter_add_(1, train_labels[top_idx], weights)
        correct += int((votes.argmax(1) == test_labels[start:start + chunk]).sum())
    return 100.0 * correct / max(1, test.shape[0])


def linear_probe(train_features: Tensor, train_labels: Tensor, test_features: Tensor, test_labels: Tensor,
                 num_classes: int, epochs: int = 100, batch_size: int = 1024, lr: float = 3e-3,
                 weight_decay: float = 1e-5, seed: int = 0) -> float:
    """Top-1 accuracy (in %) of a linear classifier trained (AdamW, cosine schedule) on frozen features."""
    mean, std = train_features.mean(0), train_features.std(0).clamp_min(1e-6)
    xtr, xte = (train_features - mean) / std, (test_features - mean) / std
    g = torch.Generator().manual_seed(seed)
    head = nn.Linear(xtr.shape[1], num_classes).to(xtr.device)
    with torch.no_grad():
        head.weight.normal_(0, 0.01, generator=g)
        head.bias.zero_()
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, (xtr.shape[0] + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    with torch.enable_grad():
        for _ in range(epochs):
            perm = torch.randperm(xtr.shape[0], generator=g).to(xtr.device)
            for idx in perm.split(batch_size):
                loss = F.cross_entropy(head(xtr[idx]), train_labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    with torch.no_grad():
        pred = head(xte).argmax(1)
    return 100.0 * float((pred == test_labels).float().mean())


def evaluate_encoder(encoder: nn.Module, data: ImageData, device: torch.device | str, *, k: int = 200,
                     temperature: float = 0.1, linear_epochs: int = 100, batch_size: int = 512,
                     seed: int = 0) -> dict[str, float]:
    """``{"knn_top1": ..., "linear_top1": ...}`` (percent) on ``data.test``, fitted on ``data.memory``.
    ``linear_epochs=0`` skips the probe."""
    train_f, train_y = extract_features(encoder, data.memory, device, batch_size)
    test_f, test_y = extract_features(encoder, data.test, device, batch_size)
    out = {"knn_top1": knn_top1(train_f, train_y, test_f, test_y, data.num_classes, k, temperature)}
    if linear_epochs > 0:
        out["linear_top1"] = linear_probe(train_f, train_y, test_f, test_y, data.num_classes, epochs=linear_epochs,
                                          seed=seed)
    return out


@torch.no_grad()
def knn_accuracies(train_features: Tensor, train_labels: Tensor, test_features: Tensor, test_labels: Tensor,
                   num_classes: int, ks: tuple[int, ...] = (20, 200), temperature: float = 0.1,
                   chunk: int = 1024) -> dict[int, float]:
    """Top-1 accuracy (in %) of the cosine-weighted kNN classifier for each ``k`` in ``ks`` (one top-k search
    for the largest); the same votes as :func:`knn_top1`."""
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive neighbour counts, got {ks}")
    train = F.normalize(train_features, dim=1)
    test = F.normalize(test_features, dim=1)
    k_max = min(max(ks), train.shape[0])
    correct = dict.fromkeys(ks, 0)
    for start in range(0, test.shape[0], chunk):
        sim = test[start:start + chunk] @ train.T
        top_sim, top_idx = sim.topk(k_max, dim=1)  # sorted, so the k nearest are the first k columns
        weights = (top_sim / temperature).exp()
        neighbour_labels = train_labels[top_idx]
        truth = test_labels[start:start + chunk]
        for k in ks:
            kk = min(k, k_max)
            votes = torch.zeros(sim.shape[0], num_classes, device=sim.device)
            votes.scatter_add_(1, neighbour_labels[:, :kk], weights[:, :kk])
            correct[k] += int((votes.argmax(1) == truth).sum())
    return {k: 100.0 * c / max(1, test.shape[0]) for k, c in correct.items()}


def linear_probe_lbfgs(train_features: Tensor, train_labels: Tensor, test_features: Tensor, test_labels: Tensor,
                       num_classes: int, steps: int = 300, weight_decay: float = 1e-4) -> float:
    """Top-1 accuracy (in %) of a multinomial logistic regression on standardised frozen features, fitted by
    full-batch L-BFGS (strong Wolfe line search, at most ``steps`` iterations) from zero weights, with an
    L2 penalty ``weight_decay / 2 * ||W||^2``. No randomness: the same features give the same number."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    mean, std = train_features.mean(0), train_features.std(0).clamp_min(1e-6)
    xtr, xte = (train_features - mean) / std, (test_features - mean) / std
    head = nn.Linear(xtr.shape[1], num_classes).to(xtr.device)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=steps, history_size=20,
                            tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(head(xtr), train_labels) + 0.5 * weight_decay * head.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        pred = head(xte).argmax(1)
    return 100.0 * float((pred == test_labels).float().mean())


def evaluate_frozen(encoder: nn.Module, memory: ImageSet, test: ImageSet, num_classes: int,
                    device: torch.device | str, *, ks: tuple[int, ...] = (20, 200), temperature: float = 0.1,
                    linear_steps: int = 300, weight_decay: float = 1e-4, batch_size: int = 512) -> dict[str, float]:
    """The ablation protocol: ``{"knn_top1_k20": ..., "knn_top1_k200": ..., "linear_top1": ...}`` (percent)
    on ``test``, with ``memory`` (the full labelled training set) as the kNN memory and the probe's training
    set. Features are extracted once (encoder in eval mode) and reused by every score; ``linear_steps=0``
    skips the probe."""
    train_f, train_y = extract_features(encoder, memory, device, batch_size)
    test_f, test_y = extract_features(encoder, test, device, batch_size)
    out = {f"knn_top1_k{k}": acc for k, acc in
           knn_accuracies(train_f, train_y, test_f, test_y, num_classes, ks, temperature).items()}
    if linear_steps > 0:
        out["linear_top1"] = linear_probe_lbfgs(train_f, train_y, test_f, test_y, num_classes, steps=linear_steps,
                                                weight_decay=weight_decay)
    return out
