"""The result of mining one shot: :class:`TwinPatches`, stored as a safe JSON artifact."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...core.artifact import (
    ArtifactError,
    expect_dict,
    expect_int,
    expect_list,
    expect_tensor,
    load_artifact,
    save_artifact,
)

__all__ = ["MAX_TWIN_ELEMENTS", "TwinPatches"]

#: element cap per tensor in twin files (a 16k-patch MI matrix is 2**28 values)
MAX_TWIN_ELEMENTS = 2**28


@dataclass(frozen=True)
class TwinPatches:
    """Twin patches mined from one shot of a video.

    Attributes:
        boxes: ``(P, 4)`` float ``(x1, y1, x2, y2)`` in reference-frame pixels (the shot's first frame).
        mi: ``(P, P)`` MI between patch trajectories in nats (0 on the diagonal and for inactive patches).
        twins: ``(P,)`` int64, index of each patch's twin, -1 for none.
        significance: ``(P,)`` p-value of the best partner against the shuffled baseline (1 when not tested).
        active: ``(P,)`` bool, tracked through the shot and varying enough to be tested.
        tracked: ``(P,)`` bool, at least one of the patch's points survived the whole shot.
        centres: ``(T, P, 2)`` tracked centre of each patch in every frame of the shot (NaN if not tracked).
        frame_range: ``(start, stop)`` frames of the input clip the shot covers (``stop`` exclusive).
        settings: how the result was mined (patch size, features, estimator, thresholds, ...).
    """

    boxes: Tensor
    mi: Tensor
    twins: Tensor
    significance: Tensor
    active: Tensor
    tracked: Tensor
    centres: Tensor
    frame_range: tuple[int, int]
    settings: dict[str, Any] = field(default_factory=dict)

    KIND = "twin_patches"
    VERSION = 1

    @property
    def num_patches(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def num_twins(self) -> int:
        return int((self.twins >= 0).sum())

    def pairs(self) -> Tensor:
        """``(M, 2)`` int64 ``(patch, twin)`` index pairs."""
        i = torch.nonzero(self.twins >= 0).flatten()
        return torch.stack([i, self.twins[i]], dim=1)

    def twin_mi(self) -> Tensor:
        """``(P,)`` MI between each patch and its twin (NaN for patches without one)."""
        out = torch.full((self.num_patches,), float("nan"))
        i = torch.nonzero(self.twins >= 0).flatten()
        out[i] = self.mi[i, self.twins[i]]
        return out

    def summary(self) -> dict[str, Any]:
        """Counts and MI statistics, JSON-ready."""
        twin_mi = self.twin_mi()
        has = twin_mi[~torch.isnan(twin_mi)]
        return {
            "frames": list(self.frame_range),
            "patches": self.num_patches,
            "tracked": int(self.tracked.sum()),
            "active": int(self.active.sum()),
            "twins": self.num_twins,
            "median_twin_mi": float(has.median()) if has.numel() else None,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the result as a safe JSON artifact (see :mod:`mi_augment.core.artifact`)."""
        tensors = {"boxes": self.boxes, "mi": self.mi, "twins": self.twins, "significance": self.significance,
                   "active": self.active, "tracked": self.tracked, "centres": self.centres}
        meta = {"frame_range": list(self.frame_range), "settings": self.settings}
        return save_artifact(path, self.KIND, self.VERSION, meta, tensors)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TwinPatches:
        """Read a result written by :meth:`save`, validated (fields, shapes, dtypes, finite values, twin
        indices in range, one centre per frame of ``frame_range``); problems raise
        :class:`~mi_augment.core.artifact.ArtifactError` naming the file and the field."""
        meta, t, _ = load_artifact(path, cls.KIND, cls.VERSION, max_elements=MAX_TWIN_ELEMENTS)
        meta = expect_dict(meta, path, "meta", keys=("frame_range", "settings"), required=("frame_range",))
        frame_range = expect_list(meta["frame_range"], path, "meta.frame_range", 2)
        if len(frame_range) != 2:
            raise ArtifactError(f"{path}: meta.frame_range must be [start, stop], got {len(frame_range)} values")
        start = expect_int(frame_range[0], path, "meta.frame_range[0]", 0, 2**31 - 1)
        stop = expect_int(frame_range[1], path, "meta.frame_range[1]", start + 2, 2**31 - 1)
        settings = expect_dict(meta.get("settings", {}), path, "meta.settings")
        names = ("boxes", "mi", "twins", "significance", "active", "tracked", "centres")
        unknown = sorted(set(t) - set(names))
        if unknown:
            raise ArtifactError(f"{path}: unknown tensor(s) {unknown}; expected {list(names)}")
        boxes = expect_tensor(t, path, "boxes", (None, 4))
        p = boxes.shape[0]
        if bool((boxes[:, 2:] < boxes[:, :2]).any()):
            raise ArtifactError(f"{path}: tensors.boxes must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1")
        mi = expect_tensor(t, path, "mi", (p, p))
        twins = expect_tensor(t, path, "twins", (p,), "int", low=-1, high=p - 1)
        if bool((twins == torch.arange(p)).any()):
            raise ArtifactError(f"{path}: tensors.twins pairs a patch with itself")
        significance = expect_tensor(t, path, "significance", (p,), low=0.0, high=1.0)
        active = expect_tensor(t, path, "active", (p,), "bool")
        tracked = expect_tensor(t, path, "tracked", (p,), "bool")
        centres = expect_tensor(t, path, "centres", (stop - start, p, 2), finite=False)
        if bool(torch.isinf(centres).any()):
            raise ArtifactError(f"{path}: tensors.centres holds infinite values (NaN marks a lost patch)")
        return cls(boxes=boxes.float(), mi=mi.float(), twins=twins.long(), significance=significance.float(),
                   active=active, tracked=tracked, centres=centres.float(), frame_range=(start, stop),
                   settings=dict(settings))
