"""The training loop shared by every recipe.

A recipe supplies a *method*: an ``nn.Module`` with an ``encoder`` attribute whose ``forward(view_a, view_b)``
returns the loss, optionally ``after_step(progress)`` (momentum updates), and a function building its
optimizer. :func:`run` does the rest:

* the run folder: refused when it holds a run (unless ``--resume`` / ``--overwrite``), locked while running
  (:mod:`.folder`);
* data resident on the device for small datasets (uint8, augmented there in batches), a DataLoader otherwise;
* mixed precision on CUDA (bfloat16 where supported, else float16 with a GradScaler);
* linear warmup + cosine learning-rate schedule, set per step from the step index (nothing to restore);
* atomic checkpoints (:mod:`.checkpoint`) every ``--checkpoint-every`` steps, every epoch and at
  ``--stop-after``; ``--resume`` continues from it and, since data order and augmentation depend only on
  (seed, rank, step), sees the same batches and ends with the uninterrupted run's weights; a resume whose
  settings differ from the checkpoint's raises :class:`~.checkpoint.ResumeConfigError` unless
  ``--allow-config-change FIELD...`` accepts them;
* DDP under ``torchrun --nproc_per_node N`` (NCCL on GPUs, gloo on CPUs); ``--batch-size`` is global;
* ``--positives views|mi-neighbour|twin``: the two views of each image; each view's partner from a support
  queue chosen by pointwise MI (:class:`~mi_augment.ssl.heads.NeighbourPositives`); or, besides the views,
  (patch, twin) pairs mined from video through the method's own loss (:class:`~mi_augment.ssl.twins.TwinBranch`);
* at the end: kNN top-1 and linear-probe top-1 of the frozen encoder, ``results.json`` (config, git SHA,
  device, per-epoch loss, accuracies, timings, encoder images per step) and ``curves.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ...core.artifact import atomic_write_bytes
from ...datasets.loading import EpochSampler, ImageData, data_root_used, load_dataset
from ..backbones import build_encoder
from ..evaluate import evaluate_encoder
from ..heads import NeighbourPositives
from ..optim import lr_factor, set_lr
from ..twins import TwinBranch, TwinPairs
from ..views import ENCODER_SCORERS, AugmentOptions, make_views
from .checkpoint import (
    CHECKPOINT,
    RESULTS,
    CheckpointError,
    check_resume_config,
    load_checkpoint,
    save_checkpoint,
    validate_checkpoint,
)
from .cli import resolve_positives
from .folder import FolderLock, prepare_run_folder
from .runtime import (
    device_name,
    finish_distributed,
    git_sha,
    jsonable,
    knn_monitor,
    mean_over_ranks,
    plot_curves,
    progress,
    setup_distributed,
    unwrap,
)

__all__ = ["attach_neighbours", "build_encoder_for", "images_per_step", "run", "scoring_parts", "step_generator"]


def step_generator(generator: torch.Generator, seed: int, rank: int, step: int) -> torch.Generator:
    """Reseed the augmentation generator from (seed, rank, step): resumed runs draw the same views.

    Example:
        >>> g = torch.Generator()
        >>> a = torch.rand(2, generator=step_generator(g, 0, 0, 5))
        >>> torch.equal(a, torch.rand(2, generator=step_generator(g, 0, 0, 5)))
        True
    """
    generator.manual_seed(((seed * 1_000_003 + rank) * 1_000_033 + step) % (2**63 - 1))
    return generator


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



def run(args: argparse.Namespace, *, method_name: str,
        build_method: Callable[[nn.Module, argparse.Namespace], nn.Module],
        build_optimizer: Callable[[nn.Module, argparse.Namespace, float], torch.optim.Optimizer],
        views: str = "simclr") -> dict[str, Any]:
    """Train, checkpoint, evaluate and write ``results.json``; return the results (empty dict on ranks > 0
    and when ``--stop-after`` stopped the run).

    Args:
        args: the parsed flags of :func:`~.cli.make_parser` (plus the method's own).
        method_name: the method's display name (printed, recorded).
        build_method: ``(encoder, args) -> method module``.
        build_optimizer: ``(model, args, lr) -> optimizer`` for the already batch-scaled learning rate ``lr``.
        views: the method's views, a key of :data:`~mi_augment.transforms.presets.METHOD_VIEWS`.

    Raises :class:`~.folder.RunFolderError` before any work when ``--out`` holds a run (without
    ``--resume`` / ``--overwrite``), is in use by another run, or has no checkpoint to resume from.
    """
    device, rank, world = setup_distributed(args.device)
    out = Path(args.out)
    lock = FolderLock(out) if rank == 0 else None
    try:
        if lock is not None:
            note = lock.acquire()
            if note:
                print(f"[{method_name}] {note}", flush=True)
            prepare_run_folder(out, resume=args.resume, overwrite=getattr(args, "overwrite", False))
        job = _Run(args, method_name, device, rank, world, views)
        job.build(build_method, build_optimizer)
        job.restore()
        if not job.train():
            return {}
        return job.finish()
    finally:
        if lock is not None:
            lock.release()


class _Run:
    """One training run's parts and state, built and stepped by :func:`run`."""

    def __init__(self, args: argparse.Namespace, name: str, device: torch.device, rank: int, world: int,
                 views: str):
        self.args, self.name, self.device, self.rank, self.world = args, name, device, rank, world
        self.main = rank == 0
        self.view_recipe = views
        self.out = Path(args.out)
        torch.manual_seed(args.seed + rank)
        self.config = jsonable({"method": name, **vars(args)})
        self.initial_config, self.config_changes = self.config, []
        self.run_info = {"git_sha": git_sha(), "device": device_name(device), "world_size": world,
                         "torch": torch.__version__, "python": sys.version.split()[0]}
        self.log("config: " + json.dumps({**self.config, **self.run_info}, sort_keys=True))
        self.state: dict[str, Any] = {"step": 0, "epoch_losses": [], "loss_sum": 0.0, "knn": [], "train_seconds": 0.0}

    def log(self, message: str) -> None:
        if self.main:
            print(f"[{self.name}] {message}", flush=True)

    def options(self) -> AugmentOptions:
        a = self.args
        return AugmentOptions(
            views=self.view_recipe, crop_scale_min=a.crop_scale_min, mi_policy=a.mi_policy,
            mi_candidates=a.mi_candidates, mi_photometric=a.mi_photometric, mi_scorer=a.mi_scorer,
            mi_band=tuple(a.mi_band) if getattr(a, "mi_band", None) is not None else None,
            natural_strength=a.natural_strength, natural_motion_strength=a.natural_motion_strength,
            illumination_model=getattr(a, "illumination_model", "default"),
            motion_model=getattr(a, "motion_model", "default"), twin_video=a.twin_video,
            twin_patch_size=a.twin_patch_size, twin_cache=a.twin_cache, twin_shipped=getattr(a, "twin_shipped", True),
            twin_control=getattr(a, "twin_control", "none"))

    def load_data(self) -> ImageData:
        a = self.args
        root = data_root_used(a.dataset, a.data_root)
        if root is not None:
            self.log(f"data: {a.dataset} from {root}")
        data = load_dataset(a.dataset, a.data_root, image_size=a.image_size, train_subset=a.train_subset,
                            test_subset=a.test_subset, download=a.download)
        return data.to(self.device)

    def build(self, build_method, build_optimizer) -> None:
        a, device, world = self.args, self.device, self.world
        self.data = data = self.load_data()
        encoder = build_encoder_for(a, data)
        model: nn.Module = build_method(encoder, a)
        self.positives = positives = resolve_positives(a)
        self.twin_control = getattr(a, "twin_control", "none")
        options = self.options()
        score_encoder, score_head, temperature = scoring_parts(model)
        self.views = make_views("baseline" if a.augment == "twin" else a.augment, size=data.image_size,
                                channels=data.channels, options=options, encoder=score_encoder, head=score_head,
                                temperature=temperature)
        if positives == "mi-neighbour":
            attach_neighbours(model, a)
        self.twins = None
        if positives == "twin":
            model = TwinBranch(model, a.twin_weight)
            if self.twin_control != "views":
                self.twins = TwinPairs.from_video(data.image_size, data.channels, options, device,
                                                  log=self.log if self.main else None)
                self.log_twins()
        self.train_model = self.distribute(model.to(device))
        if a.batch_size % world:
            raise ValueError(f"--batch-size {a.batch_size} is not divisible by the {world} processes")
        self.per_rank = a.batch_size // world
        twin_batch = getattr(a, "twin_batch", None) or a.batch_size
        if twin_batch < world or twin_batch % world:
            raise ValueError(f"--twin-batch {twin_batch} must be a positive multiple of the {world} process(es)")
        self.twin_per_rank = min(self.per_rank, twin_batch // world)
        self.per_step = images_per_step(unwrap(self.train_model), a, self.twin_per_rank, world, self.twins, positives)
        self.optimizer = build_optimizer(unwrap(self.train_model), a, a.lr * a.batch_size / 256)
        self.sampler = EpochSampler(len(data.train), self.per_rank, seed=a.seed, rank=self.rank, world_size=world)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.total_steps = a.epochs * self.steps_per_epoch
        self.warmup = min(int(a.warmup_epochs * self.steps_per_epoch), self.total_steps // 10)
        use_amp = device.type == "cuda" and not a.no_amp
        amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
        self.autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if use_amp else nullcontext

    def log_twins(self) -> None:
        t = self.twins.summary
        control = " (random-partner control)" if self.twin_control == "random" else ""
        self.log(f"twin pairs{control}: {t.get('unique_pairs')} unique pairs ({t.get('crops')} crops) from "
                 f"{t.get('clips')} clip(s) {t.get('clip_names', [])}, {t.get('frames')} frames mined "
                 f"({t.get('windows')} windows), crops cut at {t.get('crop_frames')} distinct frames")

    def distribute(self, model: nn.Module) -> nn.Module:
        if self.world == 1:
            return model
        if self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[self.device] if self.device.type == "cuda"
                                                   else None)

    def restore(self) -> None:
        """With ``--resume``, continue from the folder's checkpoint (checked against this run's settings)."""
        if not self.args.resume:
            return
        path = self.out / CHECKPOINT
        ckpt = validate_checkpoint(load_checkpoint(path, self.device), path)
        diffs = check_resume_config(ckpt["config"], self.config, list(getattr(self.args, "allow_config_change", None)
                                                                     or []), path)
        if ckpt["world_size"] != self.world:
            raise ValueError(f"{path} belongs to a run on {ckpt['world_size']} process(es); this one has "
                             f"{self.world}: use the same settings")
        if ckpt["total_steps"] != self.total_steps and not diffs:
            raise ValueError(f"{path} belongs to a run of {ckpt['total_steps']} steps; this one has "
                             f"{self.total_steps}: use the same settings")
        if ckpt["state"]["step"] > self.total_steps:
            raise CheckpointError(f"{path} is at step {ckpt['state']['step']}, past this run's {self.total_steps} steps")
        try:
            fresh = load_model_state(unwrap(self.train_model), ckpt["model"], new_buffers=bool(diffs))
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scaler.load_state_dict(ckpt["scaler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path} does not fit this run's model / optimizer: "
                                  f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
        self.state = ckpt["state"]
        self.config_changes = list(ckpt.get("config_changes", []))
        self.initial_config = ckpt.get("initial_config", ckpt["config"])
        if diffs:
            self.config_changes.append({"at_step": self.state["step"], "previous": ckpt["config"],
                                        "changed": {k: [old, new] for k, (old, new) in diffs.items()}})
            self.log("resuming with changed settings (--allow-config-change): "
                     + ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in diffs.items()))
        if fresh:
            self.log("buffers the checkpoint does not hold start from their initial values (a part the changed "
                     "settings add, such as an empty support queue): " + ", ".join(fresh))
        self.log(f"resumed from {path} at step {self.state['step']}/{self.total_steps}")

    def checkpoint(self) -> None:
        if self.main:
            save_checkpoint(self.out / CHECKPOINT, {
                "model": unwrap(self.train_model).state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "state": self.state, "total_steps": self.total_steps,
                "world_size": self.world, "config": self.config, "initial_config": self.initial_config,
                "config_changes": self.config_changes})
        if self.world > 1:
            dist.barrier()

    def train(self) -> bool:
        """Step until ``--stop-after`` or the end; True when the run is complete."""
        a, state = self.args, self.state
        stop_at = self.total_steps if a.stop_after is None else min(self.total_steps, a.stop_after)
        self.generator = torch.Generator(device=self.device)
        self.selection = torch.Generator(device=self.device)  # the same on every rank: disjoint twin pairs
        self.bar = progress(self.total_steps, state["step"], disabled=a.quiet or not self.main,
                            desc=f"{self.name} {a.augment}")
        self.train_model.train()
        self.loss_acc = torch.zeros((), device=self.device)
        while state["step"] < stop_at:
            epoch, start = divmod(state["step"], self.steps_per_epoch)
            self.tic = time.perf_counter()
            index_batches = self.sampler.epoch(epoch, start)
            batches = self.data.train.batches(index_batches, self.device, num_workers=a.workers)
            for ids, (images, _) in zip(index_batches, batches):
                loss = self.step(ids, images)
                if state["step"] % 10 == 0 or state["step"] == stop_at:  # a host sync every 10 steps, not every step
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise FloatingPointError(f"loss is {value} at step {state['step'] - 1}; lower --lr or use "
                                                 "--no-amp")
                    self.bar.set_postfix(loss=f"{value:.4f}", epoch=epoch)
                self.after_step(epoch, stop_at)
                if state["step"] >= stop_at:
                    break
        self.bar.close()
        if state["step"] < self.total_steps:
            self.log(f"stopped after step {state['step']}/{self.total_steps} (--stop-after), checkpoint saved in "
                     f"{self.out / CHECKPOINT}; rerun with --resume to finish")
            finish_distributed(self.world)
            return False
        return True

    def step(self, ids: Tensor, images: Tensor) -> Tensor:
        """One optimisation step on a uint8 batch; returns the loss (not synchronised)."""
        a, step = self.args, self.state["step"]
        set_lr(self.optimizer, lr_factor(step, self.total_steps, self.warmup))
        gen = step_generator(self.generator, a.seed, self.rank, step)
        with torch.no_grad():
            inputs: tuple[Tensor, ...] = tuple(self.views(images, gen))
            if self.twins is not None:
                inputs += self.twins.sample(self.twin_per_rank, gen, step_generator(self.selection, a.seed, -1, step),
                                            self.rank, self.world)
            elif self.positives == "twin":  # --twin-control views: a second view pair of the images, no video
                inputs += tuple(self.views(images[:self.twin_per_rank], gen))
        kwargs = {"ids": ids.to(self.device), "generator": gen} if self.positives == "mi-neighbour" else {}
        with self.autocast():
            loss = self.train_model(*inputs, **kwargs)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        method = unwrap(self.train_model)
        if hasattr(method, "after_step"):
            method.after_step((step + 1) / self.total_steps)
        self.loss_acc += loss.detach().float()
        self.state["step"] = step + 1
        self.bar.update(1)
        return loss

    def after_step(self, epoch: int, stop_at: int) -> None:
        """Bookkeeping after a step: epoch losses, the kNN monitor, and a checkpoint at an epoch's end, every
        ``--checkpoint-every`` steps and at the stop."""
        state, n = self.state, self.state["step"]
        end_of_epoch = n % self.steps_per_epoch == 0
        save = end_of_epoch or n % self.args.checkpoint_every == 0 or n == stop_at
        if save:
            state["loss_sum"] += float(mean_over_ranks(self.loss_acc, self.world))  # sum of step losses so far
            self.loss_acc.zero_()
            state["train_seconds"] += time.perf_counter() - self.tic
        if end_of_epoch:
            state["epoch_losses"].append(state["loss_sum"] / self.steps_per_epoch)
            state["loss_sum"] = 0.0
            if self.args.knn_every and (epoch + 1) % self.args.knn_every == 0 and self.main:
                state["knn"].append([epoch + 1, knn_monitor(unwrap(self.train_model).encoder, self.data, self.device)])
        if save:
            self.checkpoint()
            self.tic = time.perf_counter()

    def finish(self) -> dict[str, Any]:
        """Evaluate the encoder, write ``results.json``, ``encoder.pt`` and ``curves.png``; the results."""
        results: dict[str, Any] = {}
        if self.main:
            encoder = unwrap(self.train_model).encoder
            tic = time.perf_counter()
            scores = evaluate_encoder(encoder, self.data, self.device, linear_epochs=self.args.linear_epochs,
                                      seed=self.args.seed)
            results = self.results(scores, time.perf_counter() - tic)
            atomic_write_bytes(self.out / RESULTS, json.dumps(results, indent=1, allow_nan=False).encode())
            save_checkpoint(self.out / "encoder.pt", encoder.state_dict())
            plot_curves(results, self.out / "curves.png")
            summary = ", ".join(f"{k} {v:.2f}%" for k, v in scores.items())
            control = "" if self.twin_control == "none" else f" (control {self.twin_control})"
            self.log(f"{self.args.augment}, positives {self.positives}{control}: {summary}; results in "
                     f"{self.out / RESULTS}")
        finish_distributed(self.world)
        return results

    def results(self, scores: dict[str, float], eval_seconds: float) -> dict[str, Any]:
        a, data, state = self.args, self.data, self.state
        changes = {"initial_config": self.initial_config, "config_changes": self.config_changes} \
            if self.config_changes else {}
        return {
            "method": self.name, "config": self.config, **self.run_info, **changes,
            "dataset": {"name": data.name, "train": len(data.train), "memory": len(data.memory),
                        "test": len(data.test), "image_size": data.image_size, "channels": data.channels},
            "steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch, "epochs": a.epochs,
            "epoch_loss": state["epoch_losses"], "knn_curve": state["knn"],
            **scores, "knn_k": 200, "knn_temperature": 0.1,
            "train_seconds": state["train_seconds"], "eval_seconds": eval_seconds,
            "images_per_second": self.total_steps * a.batch_size / max(state["train_seconds"], 1e-9),
            "images_per_step": sum(self.per_step.values()), "images_per_step_parts": self.per_step,
            **({"twins": self.twins.summary} if self.twins is not None else {}),
        }


def build_encoder_for(args: argparse.Namespace, data: ImageData) -> nn.Module:
    """The ``--backbone`` encoder for ``data``'s channels, size and normalisation."""
    return build_encoder(args.backbone, in_channels=data.channels, image_size=data.image_size, mean=data.mean,
                         std=data.std, patch_size=args.patch_size, cnn_width=args.cnn_width)


def load_model_state(model: nn.Module, state: dict[str, Any], new_buffers: bool = False) -> list[str]:
    """``model.load_state_dict(state)``; with ``new_buffers`` (a resume whose settings changed) the buffers and
    modules' extra state ``state`` lacks keep their initial values (a module the change adds, e.g. the MI neighbours' empty support
    queue when a run continues from a baseline checkpoint) and their names are returned. A missing parameter or
    an unexpected key still raises ``RuntimeError``."""
    if not new_buffers:
        model.load_state_dict(state)
        return []
    result = model.load_state_dict(state, strict=False)
    buffers = {name for name, _ in model.named_buffers()}
    missing = [k for k in result.missing_keys if k not in buffers and not k.endswith("._extra_state")]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"Error(s) in loading state_dict: missing keys {missing}, unexpected keys "
                           f"{list(result.unexpected_keys)}")
    return list(result.missing_keys)
