"""Safe, atomic storage for fitted state (perturbation models, mined twin patches, ...).

An artifact is one UTF-8 JSON document: a header naming the format, the kind of object and the format
version, free-form JSON metadata, and tensors stored as base64 little-endian bytes with dtype and shape.
Loading parses JSON only; nothing in the file is ever executed (no pickle).
Saving writes to a temporary file in the same folder and renames it, so a crash never leaves a
half-written artifact under the target name.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
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


class ArtifactError(ValueError):
    """A file is not a readable mi_augment artifact of the expected kind and version."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
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


def _decode(entry: Any, key: str, path: Path) -> Tensor:
    try:
        name = entry["dtype"]
        shape = [int(s) for s in entry["shape"]]
        raw = base64.b64decode(entry["data"], validate=True)
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


def load_artifact(path: str | os.PathLike, kind: str, max_version: int) -> tuple[dict[str, Any], dict[str, Tensor], int]:
    """Read an artifact of ``kind``; return ``(meta, tensors, version)``.

    Raises :class:`ArtifactError` for a missing, corrupt, foreign (e.g. pickle) or too-new file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such artifact file: {path}")
    raw = path.read_bytes()
    if raw[:1] == b"\x80" or raw[:2] == b"PK":
        raise ArtifactError(
            f"{path} looks like a pickle / torch.save file; mi_augment artifacts are JSON and pickles are "
            "never loaded (they can execute code). Re-create the file with .save()."
        )
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not a valid mi_augment artifact (corrupt or truncated JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise ArtifactError(f"{path} is not a mi_augment artifact (missing format header {FORMAT_NAME!r})")
    if doc.get("kind") != kind:
        raise ArtifactError(f"{path} holds a {doc.get('kind')!r} artifact, expected {kind!r}")
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise ArtifactError(f"{path}: invalid format version {version!r}")
    if version > max_version:
        raise ArtifactError(
            f"{path} was written by a newer mi_augment (format version {version}; this version reads up to "
            f"{max_version}). Upgrade mi_augment to load it."
        )
    meta = doc.get("meta", {})
    tensors_doc = doc.get("tensors", {})
    if not isinstance(meta, dict) or not isinstance(tensors_doc, dict):
        raise ArtifactError(f"{path}: 'meta' and 'tensors' must be JSON objects")
    tensors = {k: _decode(v, k, path) for k, v in tensors_doc.items()}
    return meta, tensors, version
