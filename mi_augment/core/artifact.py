"""Safe, atomic storage for fitted state (perturbation models, mined twin patches, ...).

An artifact is one UTF-8 JSON document: a header naming the format, the kind of object and the format
version, free-form JSON metadata, and tensors stored as base64 little-endian bytes with dtype and shape.
Loading parses JSON only; nothing in the file is ever executed (no pickle).
Saving writes to a temporary file in the same folder and renames it, so a crash never leaves a
half-written artifact under the target name; temporary files left by killed saves are recognisable by their
name (``.<target>.mi_augment-<random>.tmp``) and removed by a later save into the same folder.

Loading is bounded and strict: the file size, the JSON nesting depth, the number and size of tensors are
capped before anything is allocated, unknown fields are refused, and every problem is one
:class:`ArtifactError` that names the file and the field. The ``expect_*`` helpers below give loaders of
particular artifacts (models, twin files) the same checks for their own fields.
"""

from __future__ import annotations

import base64
import json
import math
import numbers
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

FORMAT_NAME = "mi_augment-artifact"

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
_NUMPY = {"float32": "<f4", "float64": "<f8", "int64": "<i8", "int32": "<i4", "uint8": "u1", "bool": "?"}


# Caps applied before allocating (see load_artifact): a model file is a few KB, a twin dataset of crops can
# be large, so the byte cap is per loader.
MAX_BYTES = 2**30
MAX_DEPTH = 16  # JSON nesting depth of the whole document
MAX_DIMS = 8  # tensor rank
MAX_TENSORS = 64
# Temporary files of saves: recognisable, and removed by later saves once older than this.
TEMP_MARK = ".mi_augment-"
STALE_TEMP_SECONDS = 600.0
_TOP_LEVEL = ("format", "kind", "version", "meta", "tensors")


class ArtifactError(ValueError):
    """A file is not a readable mi_augment artifact of the expected kind and version, or one of its fields
    is malformed, out of range or too large. The message names the file and the field."""


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files of earlier saves into ``folder`` that were killed before their rename (only
    names made by :func:`atomic_write_bytes`, only when older than ``STALE_TEMP_SECONDS``)."""
    now = time.time()
    for tmp in folder.glob(f".*{TEMP_MARK}*.tmp"):
        try:
            if tmp.is_file() and now - tmp.stat().st_mtime > STALE_TEMP_SECONDS:
                tmp.unlink()
        except OSError:  # another process removed or renamed it first
            pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename; remove stale temporary
    files that killed earlier saves left in the same folder."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}", suffix=".tmp", dir=folder)
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; saved models and figures are meant to be shared
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _encode(t: Tensor) -> dict[str, Any]:
    t = t.detach().cpu().contiguous()
    name = str(t.dtype).replace("torch.", "")
    if name not in _DTYPES:
        raise TypeError(f"cannot store tensors of dtype {t.dtype}; supported: {sorted(_DTYPES)}")
    arr = t.numpy().astype(_NUMPY[name], copy=False)
    return {"dtype": name, "shape": list(t.shape), "data": base64.b64encode(arr.tobytes()).decode("ascii")}


def _decode(entry: Any, key: str, path: Path, max_elements: int) -> Tensor:
    field = f"tensors.{key}"
    entry = expect_dict(entry, path, field, keys=("dtype", "shape", "data"), required=("dtype", "shape", "data"))
    name = entry["dtype"]
    if not isinstance(name, str) or name not in _DTYPES:
        raise ArtifactError(f"{path}: {field}.dtype must be one of {sorted(_DTYPES)}, got {_show(name)}")
    shape = entry["shape"]
    if not isinstance(shape, list) or len(shape) > MAX_DIMS:
        raise ArtifactError(f"{path}: {field}.shape must be a list of at most {MAX_DIMS} sizes, got {_show(shape)}")
    for size in shape:
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= max_elements:
            raise ArtifactError(f"{path}: {field}.shape holds {_show(size)}, expected sizes in [0, {max_elements}]")
    count = math.prod(shape)
    if count > max_elements:
        raise ArtifactError(f"{path}: {field} has {count} elements, more than the {max_elements} allowed")
    data = entry["data"]
    nbytes = count * np.dtype(_NUMPY[name]).itemsize
    if not isinstance(data, str) or len(data) != 4 * ((nbytes + 2) // 3):
        raise ArtifactError(f"{path}: {field}.data must be base64 text of {nbytes} bytes for shape {shape} "
                            f"and dtype {name} (tensor is corrupt or truncated)")
    try:
        raw = base64.b64decode(data, validate=True)
        arr = np.frombuffer(raw, dtype=_NUMPY[name]).reshape(shape)
    except Exception as exc:  # noqa: BLE001 - any malformed entry is a corrupt file
        raise ArtifactError(f"{path}: tensor {key!r} is corrupt ({exc})") from None
    return torch.from_numpy(arr.copy()).to(_DTYPES[name])


def save_artifact(path: str | os.PathLike, kind: str, version: int, meta: dict[str, Any],
                  tensors: dict[str, Tensor]) -> Path:
    doc = {
        "format": FORMAT_NAME,
        "kind": kind,
        "version": int(version),
        "meta": meta,
        "tensors": {k: _encode(v) for k, v in tensors.items()},
    }
    data = json.dumps(doc, indent=1, sort_keys=True, allow_nan=False).encode("utf-8")
    return atomic_write_bytes(path, data)


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether parsed JSON nests deeper than ``limit`` containers (iterative: no recursion limit)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not valid JSON")


def read_json(path: str | os.PathLike, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
              what: str = "JSON file") -> Any:
    """Parse a JSON file with the artifact caps: at most ``max_bytes`` bytes, ``max_depth`` nested containers,
    no NaN / Infinity; every failure other than a missing file is an :class:`ArtifactError` naming ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such {what}: {path}")
    size = path.stat().st_size
    if size > max_bytes:
        raise ArtifactError(f"{path}: file is {size} bytes, more than the {max_bytes} allowed for a {what}")
    raw = path.read_bytes()[: max_bytes + 1]
    if raw[:1] == b"\x80" or raw[:2] == b"PK":
        raise ArtifactError(
            f"{path} looks like a pickle / torch.save file; mi_augment artifacts are JSON and pickles are "
            "never loaded (they can execute code). Re-create the file with .save()."
        )
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise ArtifactError(f"{path}: JSON nested deeper than {max_depth} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{path} is not a valid {what} (corrupt or truncated JSON: {exc})") from None
    if _depth_exceeds(doc, max_depth):
        raise ArtifactError(f"{path}: JSON nested deeper than {max_depth} levels")
    return doc


def load_artifact(path: str | os.PathLike, kind: str, max_version: int, *, max_bytes: int = MAX_BYTES,
                  max_elements: int = 2**28) -> tuple[dict[str, Any], dict[str, Tensor], int]:
    """Read an artifact of ``kind``; return ``(meta, tensors, version)``.

    Raises :class:`ArtifactError` for a corrupt, foreign (e.g. pickle), too-new, too-large (over
    ``max_bytes`` bytes, ``MAX_DEPTH`` nested levels, ``MAX_TENSORS`` tensors or ``max_elements`` elements in
    one tensor) or malformed file, and ``FileNotFoundError`` for a missing one.
    """
    path = Path(path)
    doc = read_json(path, max_bytes=max_bytes, what="mi_augment artifact")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise ArtifactError(f"{path} is not a mi_augment artifact (missing format header {FORMAT_NAME!r})")
    if doc.get("kind") != kind:
        raise ArtifactError(f"{path} holds a {_show(doc.get('kind'))} artifact, expected {kind!r}")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ArtifactError(f"{path}: invalid format version {_show(version)}")
    if version > max_version:
        raise ArtifactError(
            f"{path} was written by a newer mi_augment (format version {version}; this version reads up to "
            f"{max_version}). Upgrade mi_augment to load it."
        )
    unknown = sorted(set(doc) - set(_TOP_LEVEL))
    if unknown:
        raise ArtifactError(f"{path}: unknown top-level field(s) {unknown}; expected {list(_TOP_LEVEL)}")
    meta = expect_dict(doc.get("meta", {}), path, "meta")
    tensors_doc = expect_dict(doc.get("tensors", {}), path, "tensors")
    if len(tensors_doc) > MAX_TENSORS:
        raise ArtifactError(f"{path}: tensors holds {len(tensors_doc)} entries, more than {MAX_TENSORS}")
    tensors = {k: _decode(v, k, path, max_elements) for k, v in tensors_doc.items()}
    return meta, tensors, version


# ------------------------------------------------------------------------------------ field validation


def _show(value: Any, limit: int = 60) -> str:
    """A short description of a (possibly huge) JSON value for error messages."""
    text = repr(value) if not isinstance(value, (dict, list)) else f"of {len(value)} items"
    return text if len(text) <= limit else text[:limit] + "..."


def expect_dict(value: Any, path: Any, field: str, keys: Iterable[str] | None = None,
                required: Iterable[str] = ()) -> dict[str, Any]:
    """``value`` as a JSON object; ``keys``: the allowed keys (others refused), ``required``: keys it must hold."""
    if not isinstance(value, dict):
        raise ArtifactError(f"{path}: {field} must be a JSON object, got {type(value).__name__} {_show(value)}")
    if keys is not None:
        unknown = sorted(set(value) - set(keys))
        if unknown:
            raise ArtifactError(f"{path}: {field} has unknown field(s) {unknown}; expected some of {sorted(keys)}")
    missing = [k for k in required if k not in value]
    if missing:
        raise ArtifactError(f"{path}: {field} lacks {missing}")
    return value


def expect_int(value: Any, path: Any, field: str, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]`` (JSON integers only, not booleans or floats)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ArtifactError(f"{path}: {field} must be an integer in [{low}, {high}], got {_show(value)}")
    return value


def expect_number(value: Any, path: Any, field: str, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` as a finite float in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ArtifactError(f"{path}: {field} must be a finite number in [{low}, {high}], got {_show(value)}")
    return float(value)


def expect_str(value: Any, path: Any, field: str, max_length: int = 4096) -> str:
    if not isinstance(value, str) or len(value) > max_length:
        raise ArtifactError(f"{path}: {field} must be a string of at most {max_length} characters, "
                            f"got {type(value).__name__} {_show(value)}")
    return value


def expect_list(value: Any, path: Any, field: str, max_length: int) -> list[Any]:
    """``value`` as a JSON array of at most ``max_length`` items (a string is not a list)."""
    if not isinstance(value, list) or len(value) > max_length:
        raise ArtifactError(f"{path}: {field} must be a list of at most {max_length} items, "
                            f"got {type(value).__name__} {_show(value)}")
    return value


_KINDS = {"float": (torch.float32, torch.float64), "int": (torch.int64, torch.int32, torch.uint8),
          "bool": (torch.bool,)}


def expect_tensor(tensors: dict[str, Tensor], path: Any, name: str, shape: tuple[int | None, ...],
                  kind: str = "float", *, finite: bool = True, low: float | None = None,
                  high: float | None = None, field: str | None = None) -> Tensor:
    """The tensor ``tensors[name]``, checked: present, of ``kind`` (``"float"``, ``"int"`` or ``"bool"``),
    of ``shape`` (``None`` matches any size), finite (floats) and within ``[low, high]``."""
    field = field or f"tensors.{name}"
    if name not in tensors:
        raise ArtifactError(f"{path}: {field} is missing")
    t = tensors[name]
    if t.dtype not in _KINDS[kind]:
        raise ArtifactError(f"{path}: {field} must hold {kind} values, got dtype {str(t.dtype)[6:]}")
    if t.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, t.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ArtifactError(f"{path}: {field} must have shape {want}, got {tuple(t.shape)}")
    if kind == "float" and finite and not bool(torch.isfinite(t).all()):
        raise ArtifactError(f"{path}: {field} holds NaN or infinite values")
    if t.numel() and low is not None and bool((t < low).any()):
        raise ArtifactError(f"{path}: {field} holds values below {low} (min {t.min().item()})")
    if t.numel() and high is not None and bool((t > high).any()):
        raise ArtifactError(f"{path}: {field} holds values above {high} (max {t.max().item()})")
    return t
