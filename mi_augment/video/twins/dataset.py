"""(patch, twin) crops for contrastive training: :class:`TwinPatchDataset`, cut from mined shots and stored
as a safe JSON artifact."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...core.artifact import (
    ArtifactError,
    expect_dict,
    expect_int,
    expect_list,
    expect_str,
    expect_tensor,
    load_artifact,
    save_artifact,
)
from ...core.validation import check_positive_int
from ..io import as_clip, read_video
from .result import MAX_TWIN_ELEMENTS, TwinPatches

__all__ = ["SHARD_ELEMENTS", "TwinPatchDataset"]

#: crop values per file of a saved dataset; larger datasets go to shards (2**27 uint8 values are about 180 MB
#: of base64 JSON, inside the loader's caps of 2**28 values per tensor and 1 GiB per file)
SHARD_ELEMENTS = 2**27
#: the artifact kind of one shard of a dataset's crops
SHARD_KIND = "twin_patch_crops"
#: most shard files a dataset lists
_MAX_SHARDS = 2**16


def _crop_boxes(centres: Tensor, size: int, height: int, width: int) -> Tensor:
    """Top-left corners ``(..., 2)`` of ``size`` squares centred on ``centres``, rounded and kept inside."""
    x = (centres[..., 0] - size / 2).round().clamp(0, width - size)
    y = (centres[..., 1] - size / 2).round().clamp(0, height - size)
    return torch.stack([x, y], dim=-1).long()


class TwinPatchDataset(torch.utils.data.Dataset):
    """(patch, twin) crops for contrastive training: item ``i`` is a pair of ``(C, S, S)`` float tensors in
    [0, 1], the two patches cut from the same frame at their tracked positions.

    Build it with :meth:`from_result` (one mined shot plus its video), join several with :meth:`concat`, and
    store it with :meth:`save` / :meth:`load` (a safe JSON artifact: crops as uint8, nothing executed on load).

    Args:
        crops: ``(N, 2, C, S, S)`` uint8.
        info: per-item metadata tensors of length N: ``patch``, ``twin`` (patch indices in their shot),
            ``frame`` (frame index in the source video), ``mi`` (nats), ``p_value`` and ``source`` (index into
            ``sources``).
        sources: names of the videos / shots the items come from.
        transform: optional callable applied to each crop of a pair (e.g. a torchvision transform).
    """

    KIND = "twin_patch_dataset"
    VERSION = 2  # 2: crops may live in shard files (unsharded datasets are still written as 1)
    _INFO = ("patch", "twin", "frame", "mi", "p_value", "source")

    def __init__(self, crops: Tensor, info: dict[str, Tensor], sources: Sequence[str], transform=None):
        if not isinstance(crops, Tensor) or crops.ndim != 5 or crops.shape[1] != 2 or crops.dtype != torch.uint8:
            raise ValueError(f"crops must be an (N, 2, C, S, S) uint8 tensor, got "
                             f"{getattr(crops, 'dtype', type(crops).__name__)} {tuple(getattr(crops, 'shape', ()))}")
        missing = [k for k in self._INFO if k not in info]
        if missing:
            raise ValueError(f"info lacks {missing}")
        for key in self._INFO:
            if info[key].shape != (crops.shape[0],):
                raise ValueError(f"info[{key!r}] must have shape ({crops.shape[0]},), got {tuple(info[key].shape)}")
        self.crops = crops
        self.info = {k: info[k] for k in self._INFO}
        self.sources = [str(s) for s in sources]
        if crops.shape[0] and int(self.info["source"].max()) >= len(self.sources):
            raise ValueError("info['source'] refers to a source name that is not in sources")
        self.transform = transform

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        pair = self.crops[index].float() / 255.0
        patch, twin = pair[0], pair[1]
        if self.transform is not None:
            patch, twin = self.transform(patch), self.transform(twin)
        return patch, twin

    def describe(self, index: int) -> dict[str, Any]:
        """Where item ``index`` comes from: source, frame, patch and twin indices, MI and p-value."""
        out: dict[str, Any] = {k: self.info[k][index].item() for k in self._INFO}
        out["source"] = self.sources[int(out["source"])]
        return out

    @classmethod
    def from_result(cls, result: TwinPatches, video: str | os.PathLike | Tensor | np.ndarray, *,
                    frames_per_pair: int = 8, source: str = "video", crop_size: int | None = None,
                    read_kwargs: dict[str, Any] | None = None, transform=None,
                    first_frame: int = 0) -> TwinPatchDataset:
        """Cut (patch, twin) crops from ``video`` (the clip ``result`` was mined from, or the part of it from
        frame ``first_frame`` on, e.g. the window :func:`~mi_augment.video.twins.mine_windows` yields with the
        result) at ``frames_per_pair`` frames spread evenly over the shot.

        Args:
            result: one mined shot.
            video: a path, a ``(T, C, H, W)`` tensor (uint8 or float in [0, 1]) or a ``(T, H, W, C)`` uint8 array.
            frames_per_pair: crops per (patch, twin) pair.
            source: the name recorded for these items.
            crop_size: side of the crops (default: the patch size).
            read_kwargs: passed to :func:`~mi_augment.video.io.read_video` when ``video`` is a path.
            transform: optional callable applied to each crop.
            first_frame: index, in the video ``result`` was mined from, of ``video``'s first frame.

        Example:
            >>> from mi_augment.video.twins import mine_windows
            >>> clip = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8)
            >>> result, window = next(mine_windows(clip, 16, cuts=None, camera_motion="none"))
            >>> data = TwinPatchDataset.from_result(result, window, first_frame=result.frame_range[0])
            >>> len(data) == 8 * result.num_twins
            True
        """
        frames_per_pair = check_positive_int(frames_per_pair, "frames_per_pair")
        first_frame = check_positive_int(first_frame, "first_frame", minimum=0)
        if isinstance(video, (str, os.PathLike)):
            clip = read_video(video, **(read_kwargs or {}))
        elif isinstance(video, Tensor) and video.dtype == torch.uint8:
            clip = video
        else:
            clip = (as_clip(video) * 255.0).round().to(torch.uint8)
        size = int(crop_size or result.settings.get("patch_size") or (result.boxes[0, 2] - result.boxes[0, 0]))
        _, c, h, w = clip.shape
        start, stop = result.frame_range
        if start < first_frame or stop > first_frame + clip.shape[0]:
            raise ValueError(f"result covers frames {start}..{stop} but the video given holds frames "
                             f"{first_frame}..{first_frame + clip.shape[0]}")
        pairs = result.pairs()
        t_local = torch.linspace(0, stop - start - 1, min(frames_per_pair, stop - start)).round().long().unique()
        n = pairs.shape[0] * t_local.numel()
        crops = torch.zeros(n, 2, c, size, size, dtype=torch.uint8)
        info = {key: torch.zeros(n, dtype=torch.long) for key in ("patch", "twin", "frame", "source")}
        info["mi"] = torch.zeros(n)
        info["p_value"] = torch.zeros(n)
        row = 0
        for i, j in pairs.tolist():
            for t in t_local.tolist():
                frame = clip[start - first_frame + t]
                for side, patch in enumerate((i, j)):
                    x, y = _crop_boxes(result.centres[t, patch], size, h, w).tolist()
                    crops[row, side] = frame[:, y:y + size, x:x + size]
                info["patch"][row], info["twin"][row], info["frame"][row] = i, j, start + t
                info["mi"][row], info["p_value"][row] = result.mi[i, j], result.significance[i]
                row += 1
        return cls(crops, info, [source], transform=transform)

    @classmethod
    def empty(cls, channels: int = 3, size: int = 32) -> TwinPatchDataset:
        """A dataset with no items (``channels`` x ``size`` x ``size`` crops)."""
        info = {k: torch.zeros(0, dtype=torch.float32 if k in ("mi", "p_value") else torch.long) for k in cls._INFO}
        return cls(torch.zeros(0, 2, channels, size, size, dtype=torch.uint8), info, [])

    @classmethod
    def concat(cls, datasets: Sequence[TwinPatchDataset], transform=None) -> TwinPatchDataset:
        """One dataset holding the items of all ``datasets`` (crop sizes and channels must match)."""
        datasets = list(datasets)
        if not datasets:
            raise ValueError("concat needs at least one dataset")
        shapes = {tuple(d.crops.shape[2:]) for d in datasets if len(d)}
        if len(shapes) > 1:
            raise ValueError(f"cannot concatenate datasets with different crop shapes: {sorted(shapes)}")
        sources: list[str] = []
        info: dict[str, list[Tensor]] = {k: [] for k in cls._INFO}
        for d in datasets:
            for key in cls._INFO:
                info[key].append(d.info[key] + len(sources) if key == "source" else d.info[key])
            sources.extend(d.sources)
        shape = shapes.pop() if shapes else tuple(datasets[0].crops.shape[2:])
        crops = torch.cat([d.crops.reshape(-1, 2, *shape) for d in datasets])
        return cls(crops, {k: torch.cat(v) for k, v in info.items()}, sources, transform=transform)

    def save(self, path: str | os.PathLike, shard_elements: int = SHARD_ELEMENTS) -> Path:
        """Write the crops and metadata as a safe JSON artifact (atomic; see :mod:`mi_augment.core.artifact`).

        A dataset of more than ``shard_elements`` crop values goes to shard files beside ``path``
        (``<stem>.shard-<i>-of-<n>.json``, each a whole number of items), written first; ``path`` is written last
        and lists them, so :meth:`load` reads whatever size :meth:`save` wrote. Shards left by an earlier save to
        the same path are removed.

        Args:
            path: the file to write (the index of the shards, if any).
            shard_elements: crop values (uint8) per file, at most ``MAX_TWIN_ELEMENTS``.

        Example:
            >>> import tempfile
            >>> data = TwinPatchDataset.empty(size=8)
            >>> TwinPatchDataset.load(data.save(tempfile.mkdtemp() + "/d.json")).crops.shape
            torch.Size([0, 2, 3, 8, 8])
        """
        path = Path(path)
        shard_elements = check_positive_int(shard_elements, "shard_elements")
        if shard_elements > MAX_TWIN_ELEMENTS:
            raise ValueError(f"shard_elements must be at most {MAX_TWIN_ELEMENTS} (what load accepts per tensor), "
                             f"got {shard_elements}")
        info = {f"info.{k}": v for k, v in self.info.items()}
        if self.crops.numel() <= shard_elements:
            saved = save_artifact(path, self.KIND, 1, {"sources": self.sources}, {"crops": self.crops, **info})
            _remove_shards(path, keep=())
            return saved
        per_item = self.crops[0].numel()
        if per_item > shard_elements:
            raise ValueError(f"one item holds {per_item} crop values, more than shard_elements={shard_elements}")
        step = shard_elements // per_item
        starts = list(range(0, len(self), step))
        names = [f"{path.stem}.shard-{i:05d}-of-{len(starts):05d}{path.suffix}" for i in range(len(starts))]
        for name, start in zip(names, starts):
            stop = min(start + step, len(self))
            save_artifact(path.parent / name, SHARD_KIND, 1, {"items": [start, stop]},
                          {"crops": self.crops[start:stop]})
        meta = {"sources": self.sources, "shards": names, "items": len(self), "crop_shape": list(self.crops.shape[2:])}
        saved = save_artifact(path, self.KIND, self.VERSION, meta, info)
        _remove_shards(path, keep=names)
        return saved

    @classmethod
    def load(cls, path: str | os.PathLike, transform=None) -> TwinPatchDataset:
        """Read a dataset written by :meth:`save` (with its shards, if any); never executes anything from the
        file. Fields, shapes, dtypes, ranges and source indices are validated; problems raise
        :class:`~mi_augment.core.artifact.ArtifactError` naming the file and the field."""
        meta, tensors, _ = load_artifact(path, cls.KIND, cls.VERSION, max_elements=MAX_TWIN_ELEMENTS)
        meta = expect_dict(meta, path, "meta", keys=("sources", "shards", "items", "crop_shape"),
                           required=("sources",))
        sources = expect_list(meta["sources"], path, "meta.sources", 2**20)
        for i, name in enumerate(sources):
            expect_str(name, path, f"meta.sources[{i}]")
        if "shards" in meta:
            if "crops" in tensors:
                raise ArtifactError(f"{path}: holds both tensors.crops and meta.shards; expected one of them")
            tensors = {**tensors, "crops": _load_shards(Path(path), meta)}
        names = ("crops", *(f"info.{k}" for k in cls._INFO))
        unknown = sorted(set(tensors) - set(names))
        if unknown:
            raise ArtifactError(f"{path}: unknown tensor(s) {unknown}; expected {list(names)}")
        crops = expect_tensor(tensors, path, "crops", (None, 2, None, None, None), "int")
        if crops.dtype != torch.uint8 or crops.shape[3] != crops.shape[4] or not 1 <= crops.shape[2] <= 4:
            raise ArtifactError(f"{path}: tensors.crops must be (N, 2, C, S, S) uint8 with 1 <= C <= 4, got "
                                f"{str(crops.dtype)[6:]} {tuple(crops.shape)}")
        n = crops.shape[0]
        info = {}
        for key in cls._INFO:
            if key in ("mi", "p_value"):
                high = 1.0 if key == "p_value" else None
                info[key] = expect_tensor(tensors, path, f"info.{key}", (n,), low=0.0 if high else None, high=high)
            else:
                info[key] = expect_tensor(tensors, path, f"info.{key}", (n,), "int", low=0).long()
        if n and int(info["source"].max()) >= len(sources):
            raise ArtifactError(f"{path}: tensors.info.source refers to source {int(info['source'].max())}, but "
                                f"meta.sources lists {len(sources)}")
        try:
            return cls(crops, info, sources, transform=transform)
        except (KeyError, ValueError) as exc:
            raise ArtifactError(f"{path}: not a valid twin-patch dataset ({exc})") from None


def _shard_pattern(path: Path) -> str:
    return f"{path.stem}.shard-*-of-*{path.suffix}"


def _remove_shards(path: Path, keep: Sequence[str]) -> None:
    """Delete shard files of an earlier save to ``path`` that the new save does not list."""
    for old in path.parent.glob(_shard_pattern(path)):
        if old.name not in keep:
            try:
                old.unlink()
            except OSError:  # removed by someone else first
                pass


def _load_shards(path: Path, meta: dict[str, Any]) -> Tensor:
    """The crops of a sharded dataset: each shard listed in ``meta``, validated, joined in order."""
    names = expect_list(meta["shards"], path, "meta.shards", _MAX_SHARDS)
    items = expect_int(meta.get("items"), path, "meta.items", 0, 2**40)
    shape = expect_list(meta.get("crop_shape"), path, "meta.crop_shape", 3)
    if len(shape) != 3:
        raise ArtifactError(f"{path}: meta.crop_shape must be [C, S, S], got {len(shape)} values")
    c, h, w = (expect_int(v, path, f"meta.crop_shape[{i}]", 1, 2**16) for i, v in enumerate(shape))
    parts, start = [], 0
    for i, name in enumerate(names):
        name = expect_str(name, path, f"meta.shards[{i}]", max_length=255)
        if Path(name).name != name or not Path(name).match(_shard_pattern(path)):
            raise ArtifactError(f"{path}: meta.shards[{i}] must name a shard file beside it "
                                f"({_shard_pattern(path)}), got {name!r}")
        shard = path.parent / name
        shard_meta, tensors, _ = load_artifact(shard, SHARD_KIND, 1, max_elements=MAX_TWIN_ELEMENTS)
        shard_meta = expect_dict(shard_meta, shard, "meta", keys=("items",), required=("items",))
        span = expect_list(shard_meta["items"], shard, "meta.items", 2)
        if len(span) != 2 or span[0] != start:
            raise ArtifactError(f"{shard}: meta.items must be [start, stop] continuing the previous shard from "
                                f"item {start}, got {span}")
        expect_int(span[1], shard, "meta.items[1]", start + 1, items)
        unknown = sorted(set(tensors) - {"crops"})
        if unknown:
            raise ArtifactError(f"{shard}: unknown tensor(s) {unknown}; expected ['crops']")
        crops = expect_tensor(tensors, shard, "crops", (span[1] - start, 2, c, h, w), "int")
        if crops.dtype != torch.uint8:
            raise ArtifactError(f"{shard}: tensors.crops must be uint8, got {str(crops.dtype)[6:]}")
        parts.append(crops)
        start = span[1]
    if start != items:
        raise ArtifactError(f"{path}: the shards hold {start} items, the index announces {items}")
    return torch.cat(parts) if parts else torch.zeros(0, 2, c, h, w, dtype=torch.uint8)
