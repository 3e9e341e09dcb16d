"""(patch, twin) positives mined from video for ``--positives twin``: :class:`TwinPairs` serves them as
augmented views, :class:`TwinBranch` adds the method's own loss on them, and :func:`matched_random_control`
builds the random-partner control. Mining runs once per (video, settings) and is cached.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.random import rand, sampling_device
from ..functional.color import rgb_to_grayscale
from .views import AugmentOptions, color_jitter, to_float

__all__ = ["SHIPPED_CLIPS", "TWIN_CACHE_VERSION", "TWIN_MINING", "TwinBranch", "TwinPairs", "default_twin_cache",
           "describe_twins", "matched_random_control", "twin_videos"]


def _where(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


#: bumped whenever the mining recipe or the cache layout changes (it is part of every cache file's name)
TWIN_CACHE_VERSION = 2
#: the sample clips mined by default, each skipped with a note when its package is not installed
SHIPPED_CLIPS = ("bikes", "carphone", "vtest", "tree")
#: how each clip is mined: frames read at most ``max_side`` px, ``window``-frame windows of every shot,
#: crops cut at ``frames_per_pair`` frames spread over each window
TWIN_MINING = {"max_side": 512, "window": 64, "frames_per_pair": 16}


def matched_random_control(result, generator: torch.Generator | None = None):
    """``(twins, control)``: two :class:`~mi_augment.video.twins.TwinPatches` with the same patches having a
    partner; in ``control`` each patch's twin is replaced by a random *active* patch of the same window that
    is neither the patch, its twin, nor a neighbour (boxes touching or overlapping). Patches for which no such
    patch exists lose their twin in both, so the two hold the same pair count, and (cut with
    ``TwinPatchDataset.from_result``) crops at the same frames."""
    from dataclasses import replace

    from ..video.twins import neighbor_mask

    p = result.num_patches
    twins = result.twins.clone()
    control = torch.full_like(twins, -1)
    allowed = result.active[None, :] & ~neighbor_mask(result.boxes) & ~torch.eye(p, dtype=torch.bool)
    for i in torch.nonzero(twins >= 0).flatten().tolist():
        ok = allowed[i].clone()
        ok[twins[i]] = False
        choices = torch.nonzero(ok).flatten()
        if choices.numel() == 0:
            twins[i] = -1
            continue
        control[i] = choices[torch.randint(choices.numel(), (1,), generator=generator)]
    return replace(result, twins=twins), replace(result, twins=control)


def _pair_ids(dataset) -> Tensor:
    """``(N,)`` unique-pair index of each crop: the same two patches of one mined window, in either order."""
    info = dataset.info
    if len(dataset) == 0:
        return torch.zeros(0, dtype=torch.long)
    lo, hi = torch.minimum(info["patch"], info["twin"]), torch.maximum(info["patch"], info["twin"])
    return torch.unique(torch.stack([info["source"], lo, hi], 1), dim=0, return_inverse=True)[1]


def _clip_name(source: str) -> str:
    return source.split("[", 1)[0]


def describe_twins(dataset) -> dict:
    """Counts of a twin-patch dataset: ``crops``, ``unique_pairs``, ``clips`` (distinct videos),
    ``windows``, ``frames`` (frames of the mined windows, from the ``name[start:stop]`` source names; crops'
    distinct frames when the sources do not say) and ``crop_frames`` (distinct frames the crops come from)."""
    import re

    names = [_clip_name(s) for s in dataset.sources]
    spans = [re.fullmatch(r".*\[(\d+):(\d+)\]", s) for s in dataset.sources]
    frames_of = {(names[int(s)], int(f)) for s, f in zip(dataset.info["source"], dataset.info["frame"])}
    frames = sum(int(m.group(2)) - int(m.group(1)) for m in spans) if spans and all(spans) else len(frames_of)
    return {"crops": len(dataset), "unique_pairs": int(_pair_ids(dataset).max()) + 1 if len(dataset) else 0,
            "clips": len(set(names)), "clip_names": sorted(set(names)), "windows": len(dataset.sources),
            "frames": frames, "crop_frames": len(frames_of)}


class TwinPairs:
    """(patch, twin) pairs mined from video, resident on the device, served as augmented float views.

    ``pair_ids (N,)`` groups the crops of one *unique pair* (the same two patches of one mined window, at
    different frames, in either order): :meth:`draw` takes at most one crop per unique pair per batch, and
    under DDP the ranks take disjoint sets of unique pairs, so no unique pair is ever its own negative.
    ``control (N, C, S, S)`` optional: the random-partner crops, row-aligned with ``twins`` (same patch, same
    frame), which :meth:`with_random_control` serves instead of the twins.

    Build with :meth:`from_video` (mines and caches every clip) or :meth:`from_dataset`.

    Args:
        patches, twins: uint8 crops ``(N, C, P, P)``, row ``i`` of ``twins`` the partner of row ``i`` of ``patches``.
        size: the side the views are served at; channels: the encoder's channels (1 or 3).
        pair_ids: ``(N,)`` unique-pair index of each row (default: every row its own pair).
        control: ``(N, C, P, P)`` random-partner crops, row-aligned with ``twins``.
        summary: counts for the run's log and ``results.json``.

    Example:
        >>> crops = torch.randint(0, 256, (6, 3, 12, 12), dtype=torch.uint8)
        >>> pairs = TwinPairs(crops, crops.flip(-1), size=16, channels=3, pair_ids=torch.tensor([0, 0, 1, 1, 2, 2]))
        >>> pairs.num_pairs
        3
        >>> a, b = pairs.sample(8, torch.Generator().manual_seed(0))
        >>> tuple(a.shape)  # one crop per unique pair
        (3, 3, 16, 16)
    """

    def __init__(self, patches: Tensor, twins: Tensor, size: int, channels: int, pair_ids: Tensor | None = None,
                 control: Tensor | None = None, summary: dict | None = None):
        if patches.shape != twins.shape or patches.ndim != 4:
            raise ValueError(f"patches and twins must be matching [M, C, P, P], got {tuple(patches.shape)} "
                             f"and {tuple(twins.shape)}")
        if control is not None and control.shape != twins.shape:
            raise ValueError(f"control must match twins' shape {tuple(twins.shape)}, got {tuple(control.shape)}")
        n = patches.shape[0]
        pair_ids = torch.arange(n) if pair_ids is None else torch.as_tensor(pair_ids).long()
        if pair_ids.shape != (n,) or (n and int(pair_ids.min()) < 0):
            raise ValueError(f"pair_ids must be ({n},) non-negative integers, got {tuple(pair_ids.shape)}")
        self.patches, self.twins, self.control = patches, twins, control
        self.size, self.channels = size, channels
        self.pair_ids = torch.unique(pair_ids, return_inverse=True)[1].to(patches.device) if n else pair_ids
        counts = torch.bincount(self.pair_ids) if n else torch.zeros(0, dtype=torch.long)
        self._order = torch.argsort(self.pair_ids, stable=True)
        self._counts = counts.to(patches.device)
        self._starts = (torch.cumsum(counts, 0) - counts).to(patches.device)
        self.summary = dict(summary or {"crops": n, "unique_pairs": int(counts.numel())})

    def __len__(self) -> int:
        return self.patches.shape[0]

    @property
    def num_pairs(self) -> int:
        """Unique pairs (at most this many crops per batch over all ranks)."""
        return int(self._counts.numel())

    def with_random_control(self) -> TwinPairs:
        """The same pairs with each twin replaced by its random-partner crop (``--twin-control random``)."""
        if self.control is None:
            raise ValueError("these twin pairs hold no random-control crops (a prepared dataset without its "
                             "'-random' file, or a cache of another version): mine again to get them")
        return TwinPairs(self.patches, self.control, self.size, self.channels, self.pair_ids,
                         summary={**self.summary, "control": "random"})

    @classmethod
    def from_dataset(cls, dataset, size: int, channels: int, device: torch.device | str,
                     control=None) -> TwinPairs:
        """From a :class:`~mi_augment.video.twins.TwinPatchDataset` (and its row-aligned random control)."""
        if len(dataset) == 0:
            raise RuntimeError("the twin-patch dataset holds no pairs")
        crops = dataset.crops  # (N, 2, C, S, S) uint8
        ctrl = None
        if control is not None:
            same = len(control) == len(dataset) and torch.equal(control.info["frame"], dataset.info["frame"]) \
                and torch.equal(control.info["patch"], dataset.info["patch"])
            if not same:
                raise ValueError(f"the random control ({len(control)} crops) is not row-aligned with the twins "
                                 f"({len(dataset)} crops: same patch and frame per row expected); they come from "
                                 "different minings: delete both cache files to mine again")
            ctrl = control.crops[:, 1].contiguous().to(device)
        return cls(crops[:, 0].contiguous().to(device), crops[:, 1].contiguous().to(device), size, channels,
                   _pair_ids(dataset), ctrl, describe_twins(dataset))

    @classmethod
    def from_video(cls, size: int, channels: int, options: AugmentOptions, device: torch.device | str,
                   log=None) -> TwinPairs:
        """Mine every frame of the shipped clips (``options.twin_shipped``; a missing one is skipped with a note
        to ``log``) and of ``options.twin_video``, each cached once per (video, mining options) in the folder
        ``options.twin_cache`` (default :func:`default_twin_cache`'s); or load ``options.twin_cache`` when it
        is a prepared TwinPatchDataset file (its random control, if any, in ``<stem>-random.json`` beside it).
        ``options.twin_control == "random"`` serves the random-partner crops instead of the twins."""
        try:
            from ..video.twins import TwinPatchDataset
        except ImportError as exc:
            raise RuntimeError(f"--positives twin needs mi_augment.video.twins ({exc})") from exc
        log = log or (lambda message: None)
        given = Path(options.twin_cache) if options.twin_cache else None
        if given is not None and given.is_file():
            dataset = TwinPatchDataset.load(given)
            sibling = given.with_name(given.stem + "-random.json")
            control = TwinPatchDataset.load(sibling) if sibling.is_file() else None
        else:
            parts, controls = [], []
            for video in twin_videos(options, log):
                twins, control = _mined(video, options, given, log)
                if not len(twins):
                    log(f"twin clip {video.name}: no significant pairs at these settings")
                else:
                    parts.append(twins)
                    controls.append(control)
            if not parts:
                raise RuntimeError("twin-patch mining found no pairs in any clip; pass another --twin-video (moving "
                                   "objects, textured) or a prepared TwinPatchDataset as --twin-cache")
            dataset, control = TwinPatchDataset.concat(parts), TwinPatchDataset.concat(controls)
        pairs = cls.from_dataset(dataset, size, channels, device, control)
        return pairs.with_random_control() if options.twin_control == "random" else pairs

    def draw(self, batch_size: int, generator: torch.Generator | None = None, rank: int = 0,
             world_size: int = 1) -> Tensor:
        """Crop indices ``(n,)`` of one rank's twin batch, ``n = min(batch_size, num_pairs // world_size)``:
        a random set of unique pairs (disjoint between ranks when every rank passes a generator in the same
        state), one random crop (frame, order) of each."""
        d = self.patches.device
        n = min(batch_size, self.num_pairs // world_size)
        if n < 1:
            raise ValueError(f"{self.num_pairs} unique twin pairs cannot fill a batch on each of {world_size} "
                             "process(es)")
        pick = torch.randperm(self.num_pairs, generator=generator, device=sampling_device(generator, d))
        pick = pick[rank * n:(rank + 1) * n].to(d)
        offset = (rand((n,), generator, d) * self._counts[pick]).long().clamp_max(self._counts[pick] - 1)
        return self._order[self._starts[pick] + offset]

    def sample(self, batch_size: int, generator: torch.Generator | None = None,
               selection: torch.Generator | None = None, rank: int = 0, world_size: int = 1
               ) -> tuple[Tensor, Tensor]:
        """A twin batch (:meth:`draw` with ``selection``, default ``generator``) as float views, flipped
        together, with independent colour jitter on each side (``generator``); 1 channel when the encoder
        expects it.

        Args:
            batch_size: pairs wanted (capped at the unique pairs per process).
            generator: the flips and colour jitter (and the draw when ``selection`` is None).
            selection: the draw of pairs, in the same state on every rank under DDP.
            rank, world_size: this process among the training processes.

        Shape:
            - Output: two ``(n, channels, size, size)`` tensors in [0, 1].
        """
        idx = self.draw(batch_size, selection if selection is not None else generator, rank, world_size)
        d = self.patches.device
        out = []
        flip = rand((idx.shape[0],), generator, d) < 0.5
        for src in (self.patches, self.twins):
            v = to_float(src[idx])
            if self.channels == 1 and v.shape[1] == 3:
                v = rgb_to_grayscale(v)
            elif self.channels == 3 and v.shape[1] == 1:
                v = v.expand(-1, 3, -1, -1)
            if v.shape[-1] != self.size:
                v = F.interpolate(v, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
            v = _where(flip, v.flip(-1), v)
            out.append(color_jitter(v.clamp(0, 1), generator, strength=0.5))
        return out[0], out[1]


def twin_videos(options: AugmentOptions, log=None) -> list[Path]:
    """The clips ``--positives twin`` mines: the shipped samples present (when ``options.twin_shipped``; a
    note to ``log`` for each missing one) and every ``options.twin_video``."""
    from ..datasets.samples import sample_path

    out = []
    if options.twin_shipped:
        for name in SHIPPED_CLIPS:
            try:
                out.append(sample_path(name))
            except FileNotFoundError as exc:
                if log is not None:
                    log(f"twin clip {name!r} skipped: {str(exc).splitlines()[0]}")
    given = options.twin_video
    for video in ([given] if isinstance(given, (str, os.PathLike)) else list(given or [])):
        path = Path(video)
        if not path.is_file():
            raise FileNotFoundError(f"--twin-video {path} does not exist")
        out.append(path)
    if not out:
        raise ValueError("no clip to mine twin patches from: install the sample clips or pass --twin-video")
    return out


def _mining_key(options: AugmentOptions) -> str:
    import hashlib
    import json

    settings = {"version": TWIN_CACHE_VERSION, "patch_size": options.twin_patch_size, **TWIN_MINING}
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def default_twin_cache(video: Path, patch_size: int, options: AugmentOptions | None = None,
                       folder: Path | None = None) -> Path:
    """``$XDG_CACHE_HOME/mi_augment/twins/<video>-<bytes>-<key>.json`` (or in ``folder``): one cache per
    video (name and size) and mining options (patch size, :data:`TWIN_MINING`, :data:`TWIN_CACHE_VERSION`,
    hashed into ``key``), shared by every run; its random control is ``...-<key>-random.json``."""
    root = folder or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mi_augment" / "twins"
    size = video.stat().st_size if video.is_file() else 0
    key = _mining_key(options or AugmentOptions(twin_patch_size=patch_size))
    return root / f"{video.stem}-{size}-{key}.json"


def _mined(video: Path, options: AugmentOptions, folder: Path | None, log):
    """``(twins, control)`` TwinPatchDatasets of every window of every shot of ``video``, from the cache when
    present, else mined and cached."""
    from ..video.io import read_video
    from ..video.twins import TwinPatchDataset, mine_shots

    cache = default_twin_cache(video, options.twin_patch_size, options, folder)
    control_path = cache.with_name(cache.stem + "-random.json")
    if cache.is_file() and control_path.is_file():
        return TwinPatchDataset.load(cache), TwinPatchDataset.load(control_path)
    log(f"mining twin patches from every frame of {video} (once; cached as {cache})")
    clip = read_video(video, max_side=TWIN_MINING["max_side"])
    g = torch.Generator().manual_seed(0)
    twins, controls = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the all-pairs MI is many small kernels: 1 thread 0.3 s vs 2 threads 2.5 s
    try:                      # (docs/twin_patches.md, Performance)
        results = mine_shots(clip, patch_size=options.twin_patch_size, max_frames=TWIN_MINING["window"])
    finally:
        torch.set_num_threads(threads)
    for result in results:
        result, control = matched_random_control(result, g)
        source = f"{video.name}[{result.frame_range[0]}:{result.frame_range[1]}]"
        for kept, out in ((result, twins), (control, controls)):
            out.append(TwinPatchDataset.from_result(kept, clip, frames_per_pair=TWIN_MINING["frames_per_pair"],
                                                    source=source))
    c = clip.shape[1]
    twin_set = TwinPatchDataset.concat(twins) if twins else TwinPatchDataset.empty(c, options.twin_patch_size)
    control_set = TwinPatchDataset.concat(controls) if controls else TwinPatchDataset.empty(c, options.twin_patch_size)
    twin_set.save(cache)
    control_set.save(control_path)
    return twin_set, control_set




class TwinBranch(nn.Module):
    """``--positives twin``: the method's loss on the image views plus ``weight`` x the method's own loss on
    a second pair batch (``twin_a``, ``twin_b``): (patch, twin) pairs mined from video, their random-partner
    control, or (``--twin-control views``) a second view pair of the image batch. The pair batch goes through
    the method's own heads and loss; its negatives, where the loss has them, are the batch's other pairs, at
    most one crop per unique pair (:meth:`TwinPairs.draw`).

    Args:
        method: the method module (``encoder`` attribute, ``forward(view_a, view_b) -> loss``).
        weight: the twin loss's weight.

    Example:
        >>> class Mse(nn.Module):
        ...     encoder = nn.Identity()
        ...     def forward(self, a, b):
        ...         return ((a - b) ** 2).mean()
        >>> x, y = torch.zeros(2, 3), torch.ones(2, 3)
        >>> float(TwinBranch(Mse(), 0.5)(x, x, x, y))
        0.5
    """

    def __init__(self, method: nn.Module, weight: float):
        super().__init__()
        self.method = method
        self.encoder = method.encoder
        self.weight = weight

    def forward(self, view_a: Tensor, view_b: Tensor, twin_a: Tensor, twin_b: Tensor, **kwargs) -> Tensor:
        return self.method(view_a, view_b, **kwargs) + self.weight * self.method(twin_a, twin_b)

    def after_step(self, progress: float) -> None:
        if hasattr(self.method, "after_step"):
            self.method.after_step(progress)
