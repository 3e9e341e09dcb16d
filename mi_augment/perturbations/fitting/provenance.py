"""What a fitted model records about its fit, and the minimum number of observations each model kind needs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

__all__ = ["check_observations", "describe_file", "library_version", "minimum_observations"]


def minimum_observations(dimension: int) -> int:
    """Fewest independent observations (frame pairs) a fit accepts for a ``dimension``-D parameter vector.

    One more than the dimension, because a Gaussian's covariance in D dimensions is singular with fewer than
    D + 1 points: 10 for :class:`~mi_augment.perturbations.IlluminationModel` with the default degree-2
    shading (9-D), 7 for :class:`~mi_augment.perturbations.MotionModel` (6-D). Illumination pairs count
    before their time-reversed copies are added (those carry no new information).

    Example:
        >>> minimum_observations(9), minimum_observations(6)
        (10, 7)
    """
    return int(dimension) + 1


def library_version() -> str:
    """The installed mi_augment version, recorded in every fitted artifact.

    Example:
        >>> isinstance(library_version(), str)
        True
    """
    from ... import __version__

    return __version__


def describe_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> dict[str, Any]:
    """Name, size in bytes and SHA-256 of a source file, so a fitted model says exactly what it saw.

    Args:
        path: a readable file.
        chunk_bytes: read in chunks of this size (memory stays flat for long videos).

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        ...     _ = f.write(b"abc"); f.flush()
        ...     info = describe_file(f.name)
        >>> info["size"], info["sha256"][:12]
        (3, 'ba7816bf8f01')
    """
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_bytes), b""):
            digest.update(block)
    return {"name": path.name, "size": path.stat().st_size, "sha256": digest.hexdigest()}


def check_observations(model_name: str, n_observations: int, minimum: int, n_rejected: int,
                       reasons: dict[str, int], unit: str = "frame pairs") -> None:
    """Refuse a fit on too few observations, saying how many were used and rejected, and why.

    Args:
        model_name: the model's class name, for the message.
        n_observations: independent observations that passed every check.
        minimum: the fewest accepted (see :func:`minimum_observations`).
        n_rejected: observations dropped.
        reasons: count of dropped observations per reason.
        unit: what one observation is, for the message.

    Example:
        >>> check_observations("MotionModel", 12, 7, 3, {"hard cut": 3})
        >>> try:
        ...     check_observations("MotionModel", 6, 7, 0, {})
        ... except ValueError as exc:
        ...     print(str(exc)[:46])
        MotionModel: only 6 usable frame pairs (0 reje
    """
    if n_observations >= minimum:
        return
    why = ", ".join(f"{k}: {v}" for k, v in reasons.items()) or "none rejected"
    raise ValueError(f"{model_name}: only {n_observations} usable {unit} ({n_rejected} rejected: {why}); "
                     f"at least {minimum} are needed to fit its {minimum - 1}-D density. Give longer clips, "
                     "more clips, or a larger --max-frames")
