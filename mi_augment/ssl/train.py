"""The training loop shared by every recipe.

A recipe supplies a *method*: an ``nn.Module`` with an ``encoder`` attribute whose ``forward(view_a, view_b)``
returns the loss, optionally ``after_step(progress)`` (momentum updates), and a function building its
optimizer. :func:`run` does the rest:

* data resident on the device for small datasets (uint8, augmented there in batches), a DataLoader otherwise;
* mixed precision on CUDA (bfloat16 where supported, else float16 with a GradScaler);
* linear warmup + cosine learning-rate schedule, set per step from the step index (nothing to restore);
* atomic checkpoints (``checkpoint.pt``: written to a temporary file, then renamed) every
  ``--checkpoint-every`` steps and every epoch; ``--resume`` continues from it, ends after the same number of
  steps as an uninterrupted run and, since data order and augmentation depend only on (seed, rank, step),
  sees the same batches; checkpoints load with ``torch.load(weights_only=True)`` and are validated (an unreadable
  or malformed file raises :class:`CheckpointError` naming it); a resume whose settings differ from the
  checkpoint's (method, augment options, batch, lr, epochs, seed, data, model, ...) raises
  :class:`ResumeConfigError` listing them, unless ``--allow-config-change FIELD...`` accepts them (results.json
  then holds ``initial_config`` and ``config_changes`` too);
* DDP under ``torchrun --nproc_per_node N`` (NCCL on GPUs, gloo on CPUs); ``--batch-size`` is global;
* ``--positives views|mi-neighbour|twin`` (what the method's loss pulls together): the two views of each
  image; or each view's partner from a support queue of other images' target embeddings chosen by pointwise
  MI (:class:`~mi_augment.ssl.heads.NeighbourPositives`, NNCLR with ``--neighbour-policy max``); or, besides
  the views, (patch, twin) pairs mined from video through the method's own loss, weighted
  (:class:`TwinBranch`; ``--augment twin`` is ``--augment baseline --positives twin``), with the controls
  ``--twin-control random|views``;
* ``results.json`` records the encoder images forwarded per step (``images_per_step``, with its parts);
* at the end: kNN top-1 and linear-probe top-1 of the frozen encoder, ``results.json`` next to the checkpoint
  (config, git SHA, device, per-epoch loss, accuracies, timings) and ``curves.png``.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..core.artifact import atomic_write_bytes
from ..datasets.loading import DATASETS, EpochSampler, ImageData, load_dataset
from . import AUGMENT_MODES, BACKBONES, POSITIVES
from .augment import ENCODER_SCORERS, MI_SCORERS, AugmentOptions, TwinPairs, make_views
from .backbones import build_encoder
from .evaluate import evaluate_encoder, extract_features, knn_top1
from .heads import NeighbourPositives
from .optim import lr_factor, set_lr

CHECKPOINT = "checkpoint.pt"
RESULTS = "results.json"


# ------------------------------------------------------------------------------------------------ CLI
def make_parser(method: str, *, lr: float, weight_decay: float, batch_size: int = 256, epochs: int = 100,
                warmup_epochs: int = 10) -> argparse.ArgumentParser:
    """The arguments every recipe takes, with the method's own defaults for lr / weight decay / batch."""
    p = argparse.ArgumentParser(prog=f"recipes/{method.lower()}.py",
                                description=f"Pre-train an encoder with {method} and evaluate it (kNN, linear probe).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="default", choices=DATASETS,
                   help="'default' is the embedded Fashion-MNIST subset (10k train / 2k test)")
    p.add_argument("--data-root", default=None, help="dataset folder (ImageFolder root for --dataset folder)")
    p.add_argument("--download", action="store_true", help="let torchvision download missing datasets")
    p.add_argument("--image-size", type=int, default=None, help="resize images to this size (default: native)")
    p.add_argument("--train-subset", type=int, default=None, help="train on a fixed subset of this many images")
    p.add_argument("--test-subset", type=int, default=None, help="evaluate on a fixed subset of this many images")
    p.add_argument("--backbone", default="resnet18", choices=BACKBONES)
    p.add_argument("--patch-size", type=int, default=None, help="ViT patch size (default: suited to the image size)")
    p.add_argument("--cnn-width", type=int, default=32, help="small_cnn: channels of its first layer")
    p.add_argument("--augment", default="baseline", choices=AUGMENT_MODES)
    p.add_argument("--crop-scale-min", type=float, default=None,
                   help="RandomResizedCrop's smallest area (default 0.2 up to 64 px, else 0.08)")
    p.add_argument("--mi-policy", default="threshold", help="MIPairTransform policy (--augment mi)")
    p.add_argument("--mi-candidates", type=int, default=8, help="candidate crop pairs per image (--augment mi)")
    p.add_argument("--mi-photometric", default="jitter", choices=("jitter", "natural", "both"),
                   help="--augment mi: baseline colour jitter, the natural models, or both on the MI-chosen pairs")
    p.add_argument("--natural-strength", type=float, default=1.0,
                   help="--augment natural: scale both natural models' draws away from identity, keeping their "
                        "fitted shape (0: identity, 1: as fitted)")
    p.add_argument("--natural-motion-strength", type=float, default=None,
                   help="--augment natural: the motion model's strength alone (unset: --natural-strength)")
    p.add_argument("--mi-scorer", default="pixels", choices=MI_SCORERS,
                   help="--augment mi: score candidate pairs by pixel-histogram MI, by the pointwise MI of the "
                        "(target) encoder's features (one forward per image, boxes pooled from its feature map), "
                        "or by each crop's pointwise MI with its whole image; controls: 'iou' (overlap alone), "
                        "'garment-oracle' (how much of the known garment both crops hold; fmnist_scenes only)")
    p.add_argument("--positives", default="views", choices=POSITIVES,
                   help="views: the two views of each image; mi-neighbour: each view's partner chosen by pointwise "
                        "MI from a support queue of other images' target embeddings (NNCLR with policy max); "
                        "twin: the views plus (patch, twin) pairs mined from video through the method's own loss")
    p.add_argument("--neighbour-policy", default="max", choices=("max", "band", "topk"),
                   help="--positives mi-neighbour: the nearest (max, NNCLR), uniform in a pMI rank band, or among "
                        "the k best")
    p.add_argument("--neighbour-quantiles", type=float, nargs=2, default=(0.9, 1.0), metavar=("LO", "HI"),
                   help="--neighbour-policy band: the pMI rank range (quantiles over the queue)")
    p.add_argument("--neighbour-k", type=int, default=5, help="--neighbour-policy topk: how many best entries")
    p.add_argument("--queue-size", type=int, default=8192, help="--positives mi-neighbour: support queue capacity")
    p.add_argument("--twin-video", action="append", default=None,
                   help="a video mined for twin patches besides the shipped clips (repeatable)")
    p.add_argument("--no-twin-shipped", dest="twin_shipped", action="store_false",
                   help="mine only --twin-video, not the shipped clips (bikes, carphone, vtest, tree)")
    p.add_argument("--twin-weight", type=float, default=0.5, help="weight of the twin-pair loss (--positives twin)")
    p.add_argument("--twin-control", default="none", choices=("none", "random", "views"),
                   help="--positives twin controls: random (each twin replaced by a random active, non-neighbouring "
                        "patch of the same window and frames) or views (the branch gets a second view pair of the "
                        "image batch: same extra compute, no video)")
    p.add_argument("--twin-batch", type=int, default=None,
                   help="--positives twin: pairs per step over all processes (default: the batch size; capped at "
                        "the unique pairs); give the twin arm's count to the views control to match its compute")
    p.add_argument("--twin-patch-size", type=int, default=16,
                   help="mined patch side in video pixels (16: 375 unique pairs from the shipped clips, 32: 75)")
    p.add_argument("--twin-cache", default=None,
                   help="folder of the per-video twin caches (default: ~/.cache/mi_augment/twins/), or a prepared "
                        "TwinPatchDataset file")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size, help="global batch size (split over processes)")
    p.add_argument("--lr", type=float, default=lr, help="base learning rate per 256 images (scaled linearly)")
    p.add_argument("--weight-decay", type=float, default=weight_decay)
    p.add_argument("--warmup-epochs", type=float, default=warmup_epochs,
                   help="linear warmup length (capped at a tenth of the run)")
    p.add_argument("--out", default=f"runs/{method.lower()}", help="folder for checkpoint, results.json, curves.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt if it exists; refused when a setting that changes the run "
                        "differs from the checkpoint's (see --allow-config-change)")
    p.add_argument("--allow-config-change", nargs="+", default=[], metavar="FIELD",
                   help="with --resume: continue although these config fields (e.g. lr batch_size, or 'all') differ "
                        "from the checkpoint's; results.json then records both configs under 'config' and "
                        "'config_changes'")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-amp", action="store_true", help="train in float32 on CUDA too")
    p.add_argument("--checkpoint-every", type=int, default=500, help="also checkpoint every this many steps")
    p.add_argument("--stop-after", type=int, default=None,
                   help="stop abruptly after this many steps, as if killed (tests --resume)")
    p.add_argument("--knn-every", type=int, default=0, help="kNN monitor every this many epochs (0: at the end only)")
    p.add_argument("--linear-epochs", type=int, default=100, help="linear-probe epochs (0 skips the probe)")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers for large datasets")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


# ------------------------------------------------------------------------------------------ plumbing
@functools.lru_cache(maxsize=1)
def git_sha() -> str:
    """``HEAD`` of the repository holding this package, ``+dirty`` when it has uncommitted changes (looked up
    once per process)."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("+dirty" if dirty else "")) if sha else "unknown"


def setup_distributed(device_arg: str) -> tuple[torch.device, int, int]:
    """``(device, rank, world_size)``; joins the process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_arg == "auto":
        device_arg = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_arg)
    if device.type == "cuda":
        if world > 1 or device.index is None:
            device = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device, rank, world


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def _jsonable(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v) for k, v in config.items()}


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to memory, then an atomic write: a crash never leaves a torn checkpoint."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


class CheckpointError(ValueError):
    """A checkpoint file that cannot be resumed from: unreadable, truncated, or missing / mistyped fields.
    The message names the file and what is wrong."""


class ResumeConfigError(ValueError):
    """``--resume`` with settings that change the run (``fields``: ``{name: (saved, now)}``)."""

    def __init__(self, message: str, fields: dict[str, tuple[Any, Any]]):
        super().__init__(message)
        self.fields = fields


#: config fields that do not change what is trained (where results go, progress, checkpoint cadence, ...)
RESUME_IGNORED_FIELDS = frozenset({"out", "resume", "allow_config_change", "quiet", "device", "workers",
                                   "checkpoint_every", "stop_after", "download", "knn_every"})


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``; any failure (empty, truncated, random bytes, pickled code)
    raises :class:`CheckpointError` naming the file."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # EOFError, UnpicklingError, RuntimeError (zip), ...: one error type for all
        size = Path(path).stat().st_size if Path(path).is_file() else 0
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or ["the file ends early (empty or truncated)"]
        detail = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
        raise CheckpointError(f"{path} is not a readable checkpoint ({size} bytes; torch.load with weights_only=True): "
                              f"{type(exc).__name__}: {detail}") from exc


def _expect(ok: bool, path: Path, what: str) -> None:
    if not ok:
        raise CheckpointError(f"{path} is not a valid training checkpoint: {what}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_checkpoint(ckpt: Any, path: Path) -> dict[str, Any]:
    """Check a loaded training checkpoint's schema before anything is restored from it: the keys
    :func:`run` writes, their types, ``1 <= total_steps``, ``0 <= state.step <= total_steps``. Raises
    :class:`CheckpointError` naming the file and the field."""
    _expect(isinstance(ckpt, dict), path, f"expected a dict, got {type(ckpt).__name__}")
    for key in ("model", "optimizer", "scaler", "state", "config"):
        _expect(key in ckpt, path, f"missing key {key!r}")
        _expect(isinstance(ckpt[key], dict), path, f"{key!r} must be a dict, got {type(ckpt[key]).__name__}")
    _expect(all(isinstance(k, str) and (isinstance(v, Tensor) or k.endswith("._extra_state") and isinstance(v, dict))
                for k, v in ckpt["model"].items()), path,
            "'model' must map parameter names to tensors (a module's '._extra_state' to a dict)")
    for key in ("total_steps", "world_size"):
        _expect(key in ckpt, path, f"missing key {key!r}")
        _expect(_is_int(ckpt[key]) and ckpt[key] >= 1, path, f"{key!r} must be an int >= 1, got {ckpt[key]!r}")
    state = ckpt["state"]
    for key in ("step", "epoch_losses", "loss_sum", "knn", "train_seconds"):
        _expect(key in state, path, f"missing key 'state.{key}'")
    step, total = state["step"], ckpt["total_steps"]
    _expect(_is_int(step) and 0 <= step <= total, path,
            f"'state.step' must be an int in [0, total_steps={total}], got {step!r}")
    _expect(isinstance(state["epoch_losses"], list) and all(_is_number(v) for v in state["epoch_losses"]), path,
            "'state.epoch_losses' must be a list of finite numbers")
    _expect(isinstance(state["knn"], list), path, f"'state.knn' must be a list, got {type(state['knn']).__name__}")
    for key in ("loss_sum", "train_seconds"):
        _expect(_is_number(state[key]), path, f"'state.{key}' must be a finite number, got {state[key]!r}")
    _expect(isinstance(ckpt.get("initial_config", {}), dict), path, "'initial_config' must be a dict")
    changes = ckpt.get("config_changes", [])
    _expect(isinstance(changes, list) and all(isinstance(c, dict) for c in changes), path,
            "'config_changes' must be a list of dicts")
    return ckpt


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{field: (saved, current)}`` for every config field that changes the run and differs (fields in
    :data:`RESUME_IGNORED_FIELDS` are skipped; a field only one side has counts as a difference)."""
    missing = object()
    diffs = {}
    for key in sorted(set(saved) | set(current)):
        if key in RESUME_IGNORED_FIELDS:
            continue
        old, new = saved.get(key, missing), current.get(key, missing)
        if old != new:
            diffs[key] = (None if old is missing else old, None if new is missing else new)
    return diffs


def check_resume_config(saved: dict[str, Any], current: dict[str, Any], allowed: list[str], path: Path
                        ) -> dict[str, tuple[Any, Any]]:
    """The differences between a checkpoint's config and this run's; :class:`ResumeConfigError` listing them
    (saved -> now) unless each is named in ``allowed`` (``--allow-config-change``; ``"all"`` allows any)."""
    diffs = config_differences(saved, current)
    refused = {k: v for k, v in diffs.items() if "all" not in allowed and k not in allowed}
    if refused:
        listing = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in refused.items())
        raise ResumeConfigError(
            f"{path} was written by a different run; these settings differ (saved -> now): {listing}. Resume with "
            f"the same settings, or pass --allow-config-change {' '.join(refused)} to continue with the new ones",
            refused)
    return diffs


def _step_generator(generator: torch.Generator, seed: int, rank: int, step: int) -> torch.Generator:
    """Reseed the augmentation generator from (seed, rank, step): resumed runs draw the same views."""
    generator.manual_seed(((seed * 1_000_003 + rank) * 1_000_033 + step) % (2**63 - 1))
    return generator


class TwinBranch(nn.Module):
    """``--positives twin``: the method's loss on the image views plus ``weight`` x the method's own loss on
    a second pair batch (``twin_a``, ``twin_b``): (patch, twin) pairs mined from video, their random-partner
    control, or (``--twin-control views``) a second view pair of the image batch. The pair batch goes through
    the method's own heads and loss (NT-Xent for SimCLR, BYOL's regression onto the target network for BYOL,
    ...); its negatives, where the loss has them, are the batch's other pairs, at most one crop per unique
    pair (:meth:`~mi_augment.ssl.augment.TwinPairs.draw`)."""

    def __init__(self, method: nn.Module, weight: float):
        super().__init__()
        self.method = method
        self.encoder = method.encoder
        self.weight = weight

    def forward(self, view_a: Tensor, view_b: Tensor, twin_a: Tensor, twin_b: Tensor, **kwargs: Any) -> Tensor:
        return self.method(view_a, view_b, **kwargs) + self.weight * self.method(twin_a, twin_b)

    def after_step(self, progress: float) -> None:
        if hasattr(self.method, "after_step"):
            self.method.after_step(progress)


def resolve_positives(args: argparse.Namespace) -> str:
    """``--positives``, with ``--augment twin`` meaning ``--positives twin`` on baseline views; conflicting or
    stray settings raise ``ValueError`` naming the flags."""
    positives = getattr(args, "positives", "views")
    if positives not in POSITIVES:
        raise ValueError(f"--positives must be one of {POSITIVES}, got {positives!r}")
    if args.augment == "twin":
        if positives == "mi-neighbour":
            raise ValueError("--augment twin already adds twin positives; it cannot be combined with "
                             "--positives mi-neighbour")
        positives = "twin"
    if getattr(args, "twin_control", "none") != "none" and positives != "twin":
        raise ValueError(f"--twin-control {args.twin_control} is a control of --positives twin, got --positives "
                         f"{positives}")
    return positives


def scoring_parts(method: nn.Module) -> tuple[nn.Module, nn.Module | None, float]:
    """What in-step scoring (``--mi-scorer features|crop-image``) uses: the target / EMA encoder and
    projector when the method has them (``target_encoder``, ``target_projector``), else the online ones;
    and the loss's temperature (0.2 for losses without one)."""
    encoder = getattr(method, "target_encoder", None)
    head = getattr(method, "target_projector", None) if encoder is not None else None
    if encoder is None:
        encoder, head = method.encoder, getattr(method, "projector", None)
    return encoder, head, float(getattr(method, "temperature", 0.2))


def attach_neighbours(method: nn.Module, args: argparse.Namespace) -> NeighbourPositives:
    """Give ``method`` its :class:`~mi_augment.ssl.heads.NeighbourPositives` (``--positives mi-neighbour``)."""
    if not hasattr(method, "neighbours") or not isinstance(getattr(method, "embedding_dim", None), int):
        raise ValueError(f"{type(method).__name__} does not support --positives mi-neighbour: it needs an int "
                         "`embedding_dim` and a `neighbours` attribute used in its forward")
    options: dict[str, Any] = {}
    if args.neighbour_policy == "band":
        options["quantiles"] = tuple(args.neighbour_quantiles)
    elif args.neighbour_policy == "topk":
        options["k"] = args.neighbour_k
    method.neighbours = NeighbourPositives(method.embedding_dim, args.queue_size, args.neighbour_policy,
                                           float(getattr(method, "temperature", 0.2)), **options)
    return method.neighbours


def images_per_step(method: nn.Module, args: argparse.Namespace, twin_per_rank: int, world: int,
                    twins: TwinPairs | None, positives: str) -> dict[str, int]:
    """Encoder image forwards per step over all processes, by part: ``views`` (2 per image, with gradients),
    ``target`` (the momentum encoder's forwards of those, no gradients), ``scoring`` (in-step scoring: one per
    image), ``twins`` (the branch's pair batch, 2 per pair: twins, their random control, or the views
    control's second pairs) and ``twin_target``."""
    inner = method.method if isinstance(method, TwinBranch) else method
    has_target = getattr(inner, "target_encoder", None) is not None
    batch = args.batch_size
    parts = {"views": 2 * batch, "target": 2 * batch if has_target else 0,
             "scoring": batch if args.augment == "mi" and args.mi_scorer in ENCODER_SCORERS else 0, "twins": 0,
             "twin_target": 0}
    if positives == "twin":
        pairs = twin_per_rank if twins is None else min(twin_per_rank, twins.num_pairs // world)
        parts["twins"] = 2 * pairs * world
        parts["twin_target"] = parts["twins"] if has_target else 0
    return parts


# ------------------------------------------------------------------------------------------ the loop
def run(args: argparse.Namespace, *, method_name: str,
        build_method: Callable[[nn.Module, argparse.Namespace], nn.Module],
        build_optimizer: Callable[[nn.Module, argparse.Namespace, float], torch.optim.Optimizer],
        asymmetric_views: bool = False) -> dict[str, Any]:
    """Train, checkpoint, evaluate and write ``results.json``; return the results (empty dict on ranks > 0
    and when ``--stop-after`` interrupted the run).

    ``build_method(encoder, args)`` makes the method module; ``build_optimizer(model, args, lr)`` its optimizer
    for the already batch-scaled learning rate ``lr``.
    """
    device, rank, world = setup_distributed(args.device)
    main_process = rank == 0
    torch.manual_seed(args.seed + rank)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = _jsonable({"method": method_name, **vars(args)})
    run_info = {"git_sha": git_sha(), "device": device_name(device), "world_size": world,
                "torch": torch.__version__, "python": sys.version.split()[0]}
    if main_process:
        print(f"[{method_name}] config: " + json.dumps({**config, **run_info}, sort_keys=True), flush=True)

    data: ImageData = load_dataset(args.dataset, args.data_root, image_size=args.image_size,
                                   train_subset=args.train_subset, test_subset=args.test_subset,
                                   download=args.download)
    data = data.to(device)
    encoder = build_encoder(args.backbone, in_channels=data.channels, image_size=data.image_size, mean=data.mean,
                            std=data.std, patch_size=args.patch_size, cnn_width=args.cnn_width)
    model: nn.Module = build_method(encoder, args)
    positives = resolve_positives(args)
    twin_control = getattr(args, "twin_control", "none")
    options = AugmentOptions(crop_scale_min=args.crop_scale_min, asymmetric=asymmetric_views,
                             mi_policy=args.mi_policy, mi_candidates=args.mi_candidates,
                             mi_photometric=args.mi_photometric, mi_scorer=args.mi_scorer, twin_video=args.twin_video,
                             natural_strength=args.natural_strength,
                             natural_motion_strength=args.natural_motion_strength,
                             twin_patch_size=args.twin_patch_size, twin_cache=args.twin_cache,
                             twin_shipped=getattr(args, "twin_shipped", True), twin_control=twin_control)
    score_encoder, score_head, temperature = scoring_parts(model)
    view_mode = "baseline" if args.augment == "twin" else args.augment
    views = make_views(view_mode, size=data.image_size, channels=data.channels, options=options,
                       encoder=score_encoder, head=score_head, temperature=temperature)
    if positives == "mi-neighbour":
        attach_neighbours(model, args)
    twins = None
    if positives == "twin":
        model = TwinBranch(model, args.twin_weight)
        if twin_control != "views":
            log = (lambda m: print(f"[{method_name}] {m}", flush=True)) if main_process else None
            twins = TwinPairs.from_video(data.image_size, data.channels, options, device, log=log)
            if main_process:
                t = twins.summary
                print(f"[{method_name}] twin pairs{' (random-partner control)' if twin_control == 'random' else ''}: "
                      f"{t.get('unique_pairs')} unique pairs ({t.get('crops')} crops) from {t.get('clips')} clip(s) "
                      f"{t.get('clip_names', [])}, {t.get('frames')} frames mined ({t.get('windows')} windows), crops "
                      f"cut at {t.get('crop_frames')} distinct frames", flush=True)
    model.to(device)
    train_model = model
    if world > 1:
        if device.type == "cuda":
            train_model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        train_model = nn.parallel.DistributedDataParallel(train_model, device_ids=[device] if device.type == "cuda"
                                                          else None)
    if args.batch_size % world:
        raise ValueError(f"--batch-size {args.batch_size} is not divisible by the {world} processes")
    per_rank = args.batch_size // world
    twin_batch = getattr(args, "twin_batch", None) or args.batch_size
    if twin_batch < world or twin_batch % world:
        raise ValueError(f"--twin-batch {twin_batch} must be a positive multiple of the {world} process(es)")
    twin_per_rank = min(per_rank, twin_batch // world)
    per_step = images_per_step(unwrap(train_model), args, twin_per_rank, world, twins, positives)
    lr = args.lr * args.batch_size / 256
    optimizer = build_optimizer(unwrap(train_model), args, lr)

    sampler = EpochSampler(len(data.train), per_rank, seed=args.seed, rank=rank, world_size=world)
    steps_per_epoch = sampler.steps_per_epoch
    total_steps = args.epochs * steps_per_epoch
    warmup = min(int(args.warmup_epochs * steps_per_epoch), total_steps // 10)

    use_amp = device.type == "cuda" and not args.no_amp
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if use_amp else nullcontext

    state: dict[str, Any] = {"step": 0, "epoch_losses": [], "loss_sum": 0.0, "knn": [], "train_seconds": 0.0}
    ckpt_path = out / CHECKPOINT
    config_changes: list[dict[str, Any]] = []
    initial_config = config
    if args.resume and ckpt_path.is_file():
        ckpt = validate_checkpoint(load_checkpoint(ckpt_path, device), ckpt_path)
        allowed = list(getattr(args, "allow_config_change", None) or [])
        diffs = check_resume_config(ckpt["config"], config, allowed, ckpt_path)
        if ckpt["world_size"] != world:
            raise ValueError(f"{ckpt_path} belongs to a run on {ckpt['world_size']} process(es); this one has "
                             f"{world}: use the same settings")
        if ckpt["total_steps"] != total_steps and not diffs:
            raise ValueError(f"{ckpt_path} belongs to a run of {ckpt['total_steps']} steps; this one has "
                             f"{total_steps}: use the same settings")
        if ckpt["state"]["step"] > total_steps:
            raise CheckpointError(f"{ckpt_path} is at step {ckpt['state']['step']}, past this run's {total_steps} "
                                  f"steps")
        try:
            unwrap(train_model).load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scaler.load_state_dict(ckpt["scaler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{ckpt_path} does not fit this run's model / optimizer: "
                                  f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
        state = ckpt["state"]
        config_changes = list(ckpt.get("config_changes", []))
        initial_config = ckpt.get("initial_config", ckpt["config"])
        if diffs:
            config_changes.append({"at_step": state["step"], "previous": ckpt["config"],
                                   "changed": {k: [old, new] for k, (old, new) in diffs.items()}})
            if main_process:
                print(f"[{method_name}] resuming with changed settings (--allow-config-change): "
                      + ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in diffs.items()), flush=True)
        if main_process:
            print(f"[{method_name}] resumed from {ckpt_path} at step {state['step']}/{total_steps}", flush=True)

    def checkpoint() -> None:
        if main_process:
            save_checkpoint(ckpt_path, {"model": unwrap(train_model).state_dict(), "optimizer": optimizer.state_dict(),
                                        "scaler": scaler.state_dict(), "state": state, "total_steps": total_steps,
                                        "world_size": world, "config": config, "initial_config": initial_config,
                                        "config_changes": config_changes})
        if world > 1:
            dist.barrier()

    generator = torch.Generator(device=device)
    selection = torch.Generator(device=device)  # the same state on every rank: disjoint twin pairs per rank
    stop_at = total_steps if args.stop_after is None else min(total_steps, args.stop_after)
    progress_bar = _progress(total_steps, state["step"], disabled=args.quiet or not main_process,
                             desc=f"{method_name} {args.augment}")
    train_model.train()
    loss_acc = torch.zeros((), device=device)
    while state["step"] < stop_at:
        epoch, start = divmod(state["step"], steps_per_epoch)
        tic = time.perf_counter()
        index_batches = sampler.epoch(epoch, start)
        for ids, (images, _) in zip(index_batches, data.train.batches(index_batches, device,
                                                                       num_workers=args.workers)):
            step = state["step"]
            set_lr(optimizer, lr_factor(step, total_steps, warmup))
            gen = _step_generator(generator, args.seed, rank, step)
            with torch.no_grad():
                view_a, view_b = views(images, gen)
                inputs: tuple[Tensor, ...] = (view_a, view_b)
                if twins is not None:
                    inputs += twins.sample(twin_per_rank, gen, _step_generator(selection, args.seed, -1, step), rank,
                                           world)
                elif positives == "twin":  # --twin-control views: a second view pair of the images, no video
                    inputs += tuple(views(images[:twin_per_rank], gen))
            kwargs = {"ids": ids.to(device), "generator": gen} if positives == "mi-neighbour" else {}
            with autocast():
                loss = train_model(*inputs, **kwargs)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            method = unwrap(train_model)
            if hasattr(method, "after_step"):
                method.after_step((step + 1) / total_steps)
            loss_acc += loss.detach().float()
            state["step"] = step + 1
            progress_bar.update(1)
            if state["step"] % 10 == 0 or state["step"] == stop_at:  # a host sync every 10 steps, not every step
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(f"loss is {value} at step {step}; lower --lr or use --no-amp")
                progress_bar.set_postfix(loss=f"{value:.4f}", epoch=epoch)
            end_of_epoch = state["step"] % steps_per_epoch == 0
            if end_of_epoch or state["step"] % args.checkpoint_every == 0:
                state["loss_sum"] += float(_mean_over_ranks(loss_acc, world))  # sum of step losses so far
                loss_acc.zero_()
            if end_of_epoch:
                state["train_seconds"] += time.perf_counter() - tic
                state["epoch_losses"].append(state["loss_sum"] / steps_per_epoch)
                state["loss_sum"] = 0.0
                if args.knn_every and (epoch + 1) % args.knn_every == 0 and main_process:
                    state["knn"].append([epoch + 1, _knn_monitor(unwrap(train_model).encoder, data, device)])
                checkpoint()
                tic = time.perf_counter()
            elif state["step"] % args.checkpoint_every == 0:
                state["train_seconds"] += time.perf_counter() - tic
                checkpoint()
                tic = time.perf_counter()
            if state["step"] >= stop_at:
                break
    progress_bar.close()
    if state["step"] < total_steps:
        if main_process:
            print(f"[{method_name}] stopped after step {state['step']}/{total_steps} (--stop-after); "
                  f"rerun with --resume to finish from the last checkpoint", flush=True)
        _finish_distributed(world)
        return {}

    results: dict[str, Any] = {}
    if main_process:
        encoder = unwrap(train_model).encoder
        tic = time.perf_counter()
        scores = evaluate_encoder(encoder, data, device, linear_epochs=args.linear_epochs, seed=args.seed)
        eval_seconds = time.perf_counter() - tic
        images_seen = total_steps * args.batch_size
        results = {
            "method": method_name, "config": config, **run_info,
            **({"initial_config": initial_config, "config_changes": config_changes} if config_changes else {}),
            "dataset": {"name": data.name, "train": len(data.train), "memory": len(data.memory),
                        "test": len(data.test), "image_size": data.image_size, "channels": data.channels},
            "steps": total_steps, "steps_per_epoch": steps_per_epoch, "epochs": args.epochs,
            "epoch_loss": state["epoch_losses"], "knn_curve": state["knn"],
            **scores, "knn_k": 200, "knn_temperature": 0.1,
            "train_seconds": state["train_seconds"], "eval_seconds": eval_seconds,
            "images_per_second": images_seen / max(state["train_seconds"], 1e-9),
            "images_per_step": sum(per_step.values()), "images_per_step_parts": per_step,
            **({"twins": twins.summary} if twins is not None else {}),
        }
        atomic_write_bytes(out / RESULTS, json.dumps(results, indent=1, allow_nan=False).encode())
        save_checkpoint(out / "encoder.pt", encoder.state_dict())
        plot_curves(results, out / "curves.png")
        summary = ", ".join(f"{k} {v:.2f}%" for k, v in scores.items())
        print(f"[{method_name}] {args.augment}, positives {positives}"
              f"{'' if twin_control == 'none' else f' (control {twin_control})'}: {summary}; results in "
              f"{out / RESULTS}", flush=True)
    _finish_distributed(world)
    return results


def _mean_over_ranks(x: Tensor, world: int) -> Tensor:
    if world > 1:
        x = x.clone()
        dist.all_reduce(x)
        x /= world
    return x


def _finish_distributed(world: int) -> None:
    if world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _knn_monitor(encoder: nn.Module, data: ImageData, device: torch.device) -> float:
    train_f, train_y = extract_features(encoder, data.memory, device)
    test_f, test_y = extract_features(encoder, data.test, device)
    return knn_top1(train_f, train_y, test_f, test_y, data.num_classes)


def _progress(total: int, initial: int, disabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=disabled, desc=desc, unit="step", dynamic_ncols=True,
                mininterval=1.0)


def plot_curves(results: dict[str, Any], path: Path) -> None:
    """Per-epoch loss (and the kNN monitor when recorded) as a PNG."""
    from ..figures import pyplot, save_figure

    plt = pyplot()
    knn = results.get("knn_curve") or []
    fig, axes = plt.subplots(1, 2 if knn else 1, figsize=(9 if knn else 5, 3.5), squeeze=False)
    losses = results["epoch_loss"]
    axes[0, 0].plot(range(1, len(losses) + 1), losses, marker="o")
    axes[0, 0].set(xlabel="epoch", ylabel="training loss", title=f"{results['method']} ({results['config']['augment']})")
    if knn:
        axes[0, 1].plot([e for e, _ in knn], [a for _, a in knn], marker="o", color="C1")
        axes[0, 1].set(xlabel="epoch", ylabel="kNN top-1 (%)", title="kNN monitor")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)

