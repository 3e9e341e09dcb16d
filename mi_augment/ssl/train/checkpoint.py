"""Training checkpoints: atomic writes, loading that never executes code, schema validation, and the
comparison of a checkpoint's config with a resumed run's (:func:`check_resume_config`)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...core.artifact import atomic_write_bytes

__all__ = ["CHECKPOINT", "RESULTS", "RESUME_IGNORED_FIELDS", "CheckpointError", "ResumeConfigError",
           "check_resume_config", "config_differences", "load_checkpoint", "save_checkpoint", "validate_checkpoint"]

#: the run folder's checkpoint and results files
CHECKPOINT = "checkpoint.pt"
RESULTS = "results.json"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to memory, then an atomic write: a crash never leaves a torn checkpoint.

    Args:
        path: the file to write; state: tensors, numbers, strings, lists and dicts (what
            :func:`load_checkpoint` reads back with ``weights_only=True``).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     save_checkpoint(Path(d) / "c.pt", {"w": torch.ones(2)})
        ...     load_checkpoint(Path(d) / "c.pt", torch.device("cpu"))["w"].tolist()
        [1.0, 1.0]
    """
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
RESUME_IGNORED_FIELDS = frozenset({"out", "resume", "overwrite", "allow_config_change", "quiet", "device", "workers",
                                   "checkpoint_every", "stop_after", "download", "knn_every"})


#: flags added after checkpoints were first written, with the value that older checkpoints' runs had
FIELDS_ADDED = {"illumination_model": "default", "motion_model": "default", "mi_band": None}


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
    :data:`RESUME_IGNORED_FIELDS` are skipped; a field only one side has counts as a difference, except the
    :data:`FIELDS_ADDED` since, which an older checkpoint had at their default).

    Args:
        saved: the checkpoint's config; current: this run's.

    Example:
        >>> config_differences({"lr": 0.3, "out": "a", "seed": 0}, {"lr": 0.1, "out": "b", "seed": 0})
        {'lr': (0.3, 0.1)}
    """
    missing = object()
    diffs = {}
    saved = {**{k: v for k, v in FIELDS_ADDED.items() if k in current}, **saved}
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

