"""Evaluation of a frozen encoder: weighted kNN top-1 and a linear probe.

kNN follows InstDisc (Wu et al., 2018), the usual SSL monitor: cosine similarity to every training feature,
the ``k = 200`` nearest vote for their class with weight ``exp(sim / 0.1)``. The linear probe trains one
linear layer on standardised, precomputed features (no augmentation), so it costs seconds, not epochs.

:func:`evaluate_frozen` is the ablation protocol (issue 11): features of the whole labelled memory and test
set extracted once and cached, kNN at several ``k`` from one top-k search (InstDisc's weighted vote, not a
plain majority), and :func:`linear_probe_lbfgs`, a full-batch L-BFGS probe that starts from zero weights and
so gives the same number on every call.

:func:`track_retrieval` measures invariance where the claim lives, on real footage: patches tracked through a
clip, and how often the encoder finds each one again among all tracked patches ``gap`` frames later
(``mi-augment invariance`` runs it on any clip; :func:`load_encoder` reads what the recipes save).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
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


# ------------------------------------------------------------------------- invariance to real footage
#: temporal gaps (frames) of :func:`track_retrieval` by default
RETRIEVAL_GAPS = (4, 16, 64)


def load_encoder(path: str | os.PathLike, device: torch.device | str = "cpu") -> nn.Module:
    """The encoder a recipe saved: ``encoder.pt`` (a state dict, read with ``weights_only=True``) and the
    architecture from the ``results.json`` the recipe writes beside it.

    Args:
        path: the ``encoder.pt`` of a run folder (``recipes/*.py --out DIR`` writes ``DIR/encoder.pt``).
        device: where the encoder is put.

    Returns:
        The encoder in eval mode; its input is float images in [0, 1] of the run's channels and size.
    """
    from .backbones import build_encoder

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encoder file {path} not found (expected the encoder.pt a recipe saves)")
    config_path = path.with_name("results.json")
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: the encoder's architecture is read from the "
                                "results.json a recipe writes beside encoder.pt")
    results = json.loads(config_path.read_text())
    config, data = results.get("config", {}), results.get("dataset", {})
    if "backbone" not in config or "channels" not in data or "image_size" not in data:
        raise ValueError(f"{config_path} has no config.backbone / dataset.channels / dataset.image_size: not "
                         "the results.json of a recipe run")
    channels = int(data["channels"])
    encoder = build_encoder(config["backbone"], in_channels=channels, image_size=int(data["image_size"]),
                            mean=(0.0,) * channels, std=(1.0,) * channels, patch_size=config.get("patch_size"),
                            cnn_width=int(config.get("cnn_width", 32)))
    encoder.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))  # mean / std buffers too
    encoder.image_size = int(data["image_size"])  # the crop size track_retrieval feeds it
    return encoder.to(device).eval()


def _clip_frames(clip: Any, index: int, max_side: int | None) -> tuple[str, Tensor]:
    """``(name, uint8 or float (T, C, H, W) frames)`` of a path or a tensor clip."""
    from ..video.io import read_video

    if isinstance(clip, (str, os.PathLike)):
        return Path(clip).name, read_video(clip, max_side=max_side)
    if isinstance(clip, Tensor) and clip.ndim == 4 and clip.shape[1] in (1, 3):
        return f"clip[{index}]", clip
    raise TypeError(f"clips[{index}] must be a video path or a (T, C, H, W) tensor, got "
                    f"{tuple(clip.shape) if isinstance(clip, Tensor) else type(clip).__name__}")


def _start_frames(frames: Tensor, name: str, largest: int, starts: int) -> list[int]:
    """Up to ``starts`` evenly spaced frames from which ``largest`` frames more stay inside one shot."""
    from ..video.tracking import shot_segments

    if frames.shape[0] <= largest:
        raise ValueError(f"clip {name} has {frames.shape[0]} frames, but the largest gap ({largest}) needs at "
                         f"least {largest + 1}: give a longer clip or smaller gaps")
    shots = shot_segments(frames)
    candidates = [t for a, b in shots for t in range(a, b - largest)]
    if not candidates:
        longest = max((b - a for a, b in shots), default=0)
        raise ValueError(f"clip {name}: its longest shot between hard cuts has {longest} frames, but the largest "
                         f"gap ({largest}) needs at least {largest + 1}: give a longer clip or smaller gaps")
    picks = np.unique(np.linspace(0, len(candidates) - 1, min(starts, len(candidates))).round().astype(int))
    return [candidates[i] for i in picks]


def _grid_boxes(height: int, width: int, patch_size: int, stride: int) -> Tensor:
    """``(P, 4)`` square boxes of side ``patch_size`` on a grid of spacing ``stride``, centred in the frame."""
    ys = torch.arange(0, height - patch_size + 1, stride, dtype=torch.float32)
    xs = torch.arange(0, width - patch_size + 1, stride, dtype=torch.float32)
    ys += (height - patch_size - float(ys[-1])) // 2
    xs += (width - patch_size - float(xs[-1])) // 2
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    top_left = torch.stack([x.flatten(), y.flatten()], 1)
    return torch.cat([top_left, top_left + patch_size], 1)


@torch.no_grad()
def _embed_crops(encoder: nn.Module, frame: Tensor, boxes: Tensor, crop_size: int, channels: int,
                 device: torch.device | str, batch_size: int) -> Tensor:
    """Unit-norm features ``(K, D)`` of ``boxes`` cut from one frame ``(C, H, W)`` float in [0, 1]."""
    from ..functional.crops import resized_crop

    crops = resized_crop(frame[None], boxes[None], crop_size)[0]
    if channels == 1 and crops.shape[1] == 3:  # ITU-R 601 luma, as the grey datasets hold
        crops = (crops * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    feats = [encoder(c.to(device)).float() for c in crops.split(batch_size)]
    return F.normalize(torch.cat(feats), dim=1).cpu()


def _score_gallery(query: Tensor, gallery: Tensor) -> dict[str, float]:
    """Sums over the queries of one start: correct top-1, chance, same-track and other-track distances."""
    sim = query @ gallery.T
    n = sim.shape[0]
    distance = 1.0 - sim
    same = distance.diagonal().sum()
    return {"correct": float((sim.argmax(1) == torch.arange(n)).sum()), "queries": n, "chance": 1.0,
            "same": float(same), "other": float(distance.sum() - same), "other_pairs": n * (n - 1)}


def _mean(values: list[float | None]) -> float | None:
    """Mean of the values present (None where a clip had fewer than two tracks at a gap)."""
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _clip_retrieval(encoder: nn.Module, frames: Tensor, name: str, gaps: tuple[int, ...], *, patch_size: int,
                    stride: int, starts: int, crop_size: int, channels: int, device: torch.device | str,
                    batch_size: int) -> dict[str, Any]:
    """One clip of :func:`track_retrieval`: sums per gap pooled over the start frames."""
    from ..video.tracking import track_patches

    largest = max(gaps)
    t_count, _, height, width = frames.shape
    if min(height, width) < patch_size:
        raise ValueError(f"clip {name} is {height}x{width} pixels, smaller than patch_size {patch_size}")
    start_frames = _start_frames(frames, name, largest, starts)
    boxes = _grid_boxes(height, width, patch_size, stride)
    sums = {g: {"correct": 0.0, "queries": 0, "chance": 0.0, "same": 0.0, "other": 0.0, "other_pairs": 0,
                "tracks_per_start": []} for g in gaps}
    for t in start_frames:
        window = frames[t:t + largest + 1]
        tracks = track_patches(window, boxes)
        clip = window.float() / 255.0 if window.dtype == torch.uint8 else window.float()
        for g in gaps:
            alive = torch.nonzero(tracks.alive[g]).flatten()
            sums[g]["tracks_per_start"].append(int(alive.numel()))
            if alive.numel() < 2:
                continue
            moved = tracks.centres[g, alive].repeat(1, 2) + torch.tensor([-1.0, -1.0, 1.0, 1.0]) * patch_size / 2
            query = _embed_crops(encoder, clip[0], boxes[alive], crop_size, channels, device, batch_size)
            gallery = _embed_crops(encoder, clip[g], moved, crop_size, channels, device, batch_size)
            for key, value in _score_gallery(query, gallery).items():
                sums[g][key] += value
    out = {"clip": name, "frames": int(t_count), "size": [int(height), int(width)], "starts": start_frames,
           "gaps": {}}
    for g, s in sums.items():
        q = s["queries"]
        out["gaps"][str(g)] = {
            "top1": 100.0 * s["correct"] / q if q else None, "tracks": q,
            "tracks_per_start": s["tracks_per_start"], "chance": 100.0 * s["chance"] / q if q else None,
            "distance_ratio": (s["same"] / q) / (s["other"] / s["other_pairs"]) if s["other_pairs"] else None}
    return out


def track_retrieval(encoder: nn.Module, clips: Sequence[str | os.PathLike | Tensor],
                    gaps: Sequence[int] = RETRIEVAL_GAPS, *, patch_size: int = 32, stride: int | None = None,
                    max_side: int | None = 320, starts: int = 4, crop_size: int | None = None,
                    device: torch.device | str = "cpu", batch_size: int = 512) -> dict[str, Any]:
    """Invariance to what real footage does: can the encoder find a tracked patch again ``gap`` frames later?

    Square patches on a grid over a start frame are followed through the clip with the library's tracker
    (:func:`mi_augment.video.tracking.track_patches`, Lucas-Kanade with a forward-backward check, never
    across a hard cut). Each patch that survives ``gap`` frames is a *track*; its crop at the start frame is
    the query and the crops of every surviving track at ``start + gap`` are the gallery. Reported per gap:
    top-1 retrieval of the query's own track (in %), the chance level (100 / gallery size, averaged over
    queries), the number of tracks, and the ratio of the mean cosine distance to the same track over the
    mean distance to the other tracks (below 1: the encoder tells tracks apart). Start frames are evenly
    spread over the clip and pooled; each start has its own gallery.

    Args:
        encoder: maps float images ``[B, C, h, w]`` in [0, 1] to features ``[B, D]`` (see :func:`load_encoder`).
        clips: video paths (decoded with OpenCV) or ``(T, C, H, W)`` tensors (uint8, or float in [0, 1]).
        gaps: temporal gaps in frames; every clip needs a shot longer than the largest.
        patch_size: patch side in pixels of the (downscaled) frames.
        stride: grid spacing (default ``patch_size // 2``: about 4x as many tracks as a tiling, for a gallery
            that discriminates).
        max_side: video files are downscaled so the longer side is at most this (None: full size).
        starts: start frames per clip (pooled).
        crop_size: crops are resized to this before the encoder (default: ``encoder.image_size`` when set, else 32).
        device: where the encoder runs.
        batch_size: crops per forward.

    Returns:
        JSON-able ``{"gaps", "settings", "clips": [per clip: "clip", "frames", "size", "starts", "gaps": {gap:
        {"top1", "chance", "tracks", "tracks_per_start", "distance_ratio"}}], "mean": {gap: the same, averaged
        over clips}}``; a score is None where fewer than two tracks survived.

    Shape:
        - clips: ``(T, C, H, W)`` each, ``T > max(gaps)``.

    Example:
        >>> from mi_augment.ssl.backbones import build_encoder
        >>> enc = build_encoder("small_cnn", in_channels=3, image_size=16, mean=(0.5,) * 3, std=(0.25,) * 3,
        ...                     cnn_width=4)
        >>> clip = torch.rand(1, 3, 72, 72).repeat(10, 1, 1, 1)  # a still clip: every patch stays put
        >>> out = track_retrieval(enc, [clip], gaps=(2, 8), patch_size=16, starts=1, crop_size=16)
        >>> out["clips"][0]["gaps"]["8"]["tracks"], out["mean"]["8"]["top1"]
        (64, 100.0)
    """
    gaps = tuple(int(g) for g in gaps)
    if not gaps or min(gaps) < 1:
        raise ValueError(f"gaps must be positive frame counts, got {gaps}")
    if isinstance(clips, (str, os.PathLike, Tensor)) or not clips:
        raise ValueError("clips must be a non-empty list of video paths or (T, C, H, W) tensors")
    if patch_size < 4 or (stride is not None and stride < 1) or starts < 1:
        raise ValueError(f"patch_size must be >= 4, stride >= 1 and starts >= 1, got {patch_size}, {stride}, {starts}")
    stride = stride or max(1, patch_size // 2)
    crop_size = crop_size or int(getattr(encoder, "image_size", 32))
    mean_buffer = getattr(encoder, "mean", None)
    channels = int(mean_buffer.shape[1]) if isinstance(mean_buffer, Tensor) and mean_buffer.ndim == 4 else 3
    was_training = encoder.training
    encoder.eval()
    try:
        per_clip = [_clip_retrieval(encoder, frames, name, gaps, patch_size=patch_size, stride=stride,
                                    starts=starts, crop_size=crop_size, channels=channels, device=device,
                                    batch_size=batch_size)
                    for name, frames in (_clip_frames(c, i, max_side) for i, c in enumerate(clips))]
    finally:
        encoder.train(was_training)
    mean = {str(g): {k: _mean([c["gaps"][str(g)][k] for c in per_clip])
                     for k in ("top1", "chance", "tracks", "distance_ratio")} for g in gaps}
    return {"gaps": list(gaps), "settings": {"patch_size": patch_size, "stride": stride, "max_side": max_side,
                                             "starts": starts, "crop_size": crop_size, "channels": channels},
            "clips": per_clip, "mean": mean}
