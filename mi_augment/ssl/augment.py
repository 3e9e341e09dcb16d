"""The ``--augment`` modes: functions from a uint8 batch on the device to two float views in [0, 1].

``baseline``  the method's published recipe, batched: RandomResizedCrop, flip, ColorJitter (p 0.8),
              grayscale (p 0.2), and for BYOL-style methods asymmetric blur / solarisation
``natural``   the same crops and flips, with the fitted natural illumination and motion models
              (:class:`~mi_augment.transforms.NaturalIllumination`, :class:`~mi_augment.transforms.NaturalMotion`)
              in place of ColorJitter
``mi``        crop pairs chosen by mutual information (:class:`~mi_augment.transforms.pair.MIPairTransform`),
              with the baseline's colour jitter (``--mi-photometric jitter``, default), the natural models
              (``natural``) or both (``both``); see :class:`MIViews`
``twin``      the baseline views plus a second stream of (patch, twin) pairs mined from every frame of the
              shipped clips and ``--twin-video``; see :class:`TwinPairs` (the recipe adds the method's own loss
              on them, weighted: ``--positives twin``)

Every view is drawn with one ``torch.Generator`` on the training device, so a run is reproducible and a
resumed run continues the same random stream. The transforms of the other modes are imported on first use.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.random import rand, sampling_device
from ..functional.color import rgb_to_grayscale
from ..functional.crops import resized_crop
from ..pairs.sampler import BoxSampler
from ..transforms.base import RandomTransform
from ..transforms.photometric import ColorJitter, GaussianBlur, RandomGrayscale, RandomSolarize
from . import AUGMENT_MODES

#: ``mi_scorer`` values: the MI scores, then two controls that are not MI ("iou": overlap alone;
#: "garment-oracle": how much of the known garment both crops hold, fmnist_scenes only)
MI_SCORERS = ("pixels", "features", "crop-image", "iou", "garment-oracle")
#: the scorers that forward images through the encoder (counted as encoder images per step)
ENCODER_SCORERS = ("features", "crop-image")


@dataclass
class AugmentOptions:
    """Knobs of the augment modes (all have recipe CLI flags)."""

    crop_scale_min: float | None = None  #: RandomResizedCrop's smallest area fraction (None: 0.2 <= 64 px, else 0.08)
    asymmetric: bool = False  #: BYOL-style: view A always blurred, view B sometimes solarised
    mi_policy: str = "threshold"  #: MIPairTransform policy
    mi_candidates: int = 8  #: candidate crop pairs scored per image
    mi_photometric: str = "jitter"  #: photometric part of mi views: "jitter", "natural" or "both" (see MIViews)
    natural_strength: float = 1.0  #: --augment natural: strength of both natural models (1: as fitted)
    natural_motion_strength: float | None = None  #: the motion model's strength (None: natural_strength)
    #: what MI is estimated from: "pixels" (histogram MI), "features" (pointwise MI of the target encoder's
    #: features, one forward per image) or "crop-image" (each crop's pointwise MI with its whole image); two
    #: controls that are not MI: "iou" (the pair's overlap alone) and "garment-oracle" (how much of the known
    #: garment both crops hold; --dataset fmnist_scenes only)
    mi_scorer: str = "pixels"
    #: videos mined for twin patches besides the shipped clips (a path or several)
    twin_video: str | tuple[str, ...] | None = None
    twin_patch_size: int = 16  #: side of mined patches, in video pixels (16 finds 5x the pairs 32 does)
    #: folder of the per-video caches (default: ``default_twin_cache``'s), or a prepared TwinPatchDataset file
    twin_cache: str | None = None
    twin_shipped: bool = True  #: mine the shipped sample clips (bikes, carphone, vtest, tree) too
    #: "none", "random" (each twin replaced by a random active, non-neighbouring patch at the same frames) or
    #: "views" (no video: the branch gets a second view pair of the image batch)
    twin_control: str = "none"


def _to_float(images: Tensor) -> Tensor:
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


def _where(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


class ViewPairs:
    """Base class: ``views(images_uint8, generator) -> (view_a, view_b)``, float ``[B, C, size, size]``."""

    def __init__(self, size: int, channels: int, options: AugmentOptions):
        self.size = size
        self.channels = channels
        self.options = options
        scale_min = options.crop_scale_min
        if scale_min is None:
            scale_min = 0.2 if size <= 64 else 0.08
        self.scale = (scale_min, 1.0)
        self.boxes = BoxSampler(scale=self.scale)

    def crop_flip(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        b, _, h, w = x.shape
        boxes = self.boxes.sample((b,), h, w, generator=generator, device=x.device)
        flip = rand((b,), generator, x.device) < 0.5
        return resized_crop(x, boxes, self.size, flip=flip)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        return self.views(images, generator)

    def views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


@functools.lru_cache(maxsize=16)
def _photometric(kind: str, p: float, strength: float = 1.0) -> RandomTransform:
    """The recipes' shared photometric transforms (stateless modules, so one of each setting serves all)."""
    if kind == "jitter":
        s = 0.4 * strength
        return ColorJitter(s, s, s, 0.1 * strength, p=p)
    if kind == "grayscale":
        return RandomGrayscale(p=p)
    if kind == "blur":
        return GaussianBlur(None, sigma=(0.1, 2.0), p=p)
    return RandomSolarize(0.5, p=p)


def color_jitter(x: Tensor, generator: torch.Generator | None, p: float = 0.8, strength: float = 1.0,
                 grayscale_p: float = 0.2) -> Tensor:
    """SimCLR's colour distortion, per sample: :class:`~mi_augment.transforms.ColorJitter` with brightness,
    contrast, saturation 0.4 and hue 0.1 (times ``strength``) with probability ``p``, in torchvision's random
    order, then :class:`~mi_augment.transforms.RandomGrayscale` with probability ``grayscale_p``. 1-channel
    images get brightness and contrast only."""
    out = _photometric("jitter", p, strength)(x, generator=generator)
    if grayscale_p > 0:
        out = _photometric("grayscale", grayscale_p)(out, generator=generator)
    return out


def gaussian_blur(x: Tensor, generator: torch.Generator | None, p: float) -> Tensor:
    """:class:`~mi_augment.transforms.GaussianBlur` with probability ``p``: sigma uniform in [0.1, 2] px, kernel
    0.1 of the image's side (as SimCLR does for 224 px)."""
    if p <= 0:
        return x
    return _photometric("blur", p)(x, generator=generator)


def solarize(x: Tensor, generator: torch.Generator | None, p: float) -> Tensor:
    """:class:`~mi_augment.transforms.RandomSolarize` (values >= 0.5 inverted) with probability ``p``."""
    if p <= 0:
        return x
    return _photometric("solarize", p)(x, generator=generator)


class BaselineViews(ViewPairs):
    """The hand-tuned recipe: crop + flip + colour jitter + grayscale (+ blur / solarise when asymmetric).

    Blur is used for images of 64 px and more only (SimCLR and solo-learn leave it out for 32 px CIFAR)."""

    def views(self, images, generator=None):
        x = _to_float(images)
        blur = (1.0, 0.1) if self.options.asymmetric else (0.5, 0.5)
        sol = (0.0, 0.2) if self.options.asymmetric else (0.0, 0.0)
        out = []
        for i in range(2):
            v = color_jitter(self.crop_flip(x, generator), generator)
            if self.size >= 64:
                v = gaussian_blur(v, generator, blur[i])
            out.append(solarize(v, generator, sol[i]))
        return out[0], out[1]


def _natural_transforms(illumination_strength: float = 1.0, motion_strength: float = 1.0):
    try:
        from ..transforms.illumination import NaturalIllumination
        from ..transforms.motion import NaturalMotion
    except ImportError as exc:  # the natural models are built in parallel; fail with a clear message
        raise RuntimeError(f"--augment natural needs mi_augment.transforms.illumination and .motion ({exc})") from exc
    return NaturalIllumination(strength=illumination_strength), NaturalMotion(strength=motion_strength)


class NaturalViews(ViewPairs):
    """Crop + flip, then the fitted natural illumination and motion models instead of ColorJitter (their
    default ``p``: the fitted densities already hold "no change"); grayscale with probability 0.2 as in the
    baseline. ``options.natural_strength`` scales both models' draws away from identity (keeping their fitted
    shape), ``options.natural_motion_strength`` the motion model's alone when set."""

    def __init__(self, size, channels, options):
        super().__init__(size, channels, options)
        motion_strength = options.natural_motion_strength
        self.illumination, self.motion = _natural_transforms(
            options.natural_strength, options.natural_strength if motion_strength is None else motion_strength)

    def photometric(self, v: Tensor, generator: torch.Generator | None) -> Tensor:
        v = self.illumination(v, generator=generator)
        v = self.motion(v, generator=generator)
        return _photometric("grayscale", 0.2)(v, generator=generator)

    def views(self, images, generator=None):
        x = _to_float(images)
        return self.photometric(self.crop_flip(x, generator), generator), \
            self.photometric(self.crop_flip(x, generator), generator)


class MIViews(ViewPairs):
    """Crop pairs chosen by :class:`~mi_augment.transforms.pair.MIPairTransform`: ``mi_candidates``
    RandomResizedCrop pairs per image scored by MI, one kept by ``mi_policy``; flipped by the transform.

    ``mi_photometric`` says what else the views get:

    * ``"jitter"`` (default): the baseline's colour jitter + grayscale, and no natural models inside the
      transform, so the only difference from ``baseline`` is how the crop pair is chosen;
    * ``"natural"``: the transform's natural illumination and motion models (pairs scored under them, views
      carry them), no jitter: the full "learned perturbations + MI pairs" pipeline;
    * ``"both"``: natural models inside the transform, then the baseline jitter on top.

    ``mi_scorer="features"`` scores candidates in the training step by the pointwise MI of ``encoder``'s
    features (:class:`~mi_augment.pairs.scorers.FeatureScorer`, ``input_kind="boxes"``: one forward of each
    whole image through :class:`FeatureMaps`, every candidate box pooled from the map, ``head`` applied, the
    critic at ``temperature``); ``"crop-image"`` by each crop's pointwise MI with its whole image
    (:class:`~mi_augment.pairs.scorers.CropImageScorer`, the smaller of the pair's two). The encoder and head
    run in eval mode without gradients (BatchNorm statistics untouched); pass the target / EMA network when
    the method has one.
    """

    def __init__(self, size, channels, options, encoder: torch.nn.Module | None = None,
                 head: torch.nn.Module | None = None, temperature: float = 0.2):
        super().__init__(size, channels, options)
        try:
            from ..transforms.pair import MIPairTransform
        except ImportError as exc:
            raise RuntimeError(f"--augment mi needs mi_augment.transforms.pair ({exc})") from exc
        if options.mi_photometric not in ("jitter", "natural", "both"):
            raise ValueError(f"mi_photometric must be 'jitter', 'natural' or 'both', got {options.mi_photometric!r}")
        natural = "default" if options.mi_photometric in ("natural", "both") else None  # the shipped models
        if natural is not None and (options.natural_strength != 1.0 or options.natural_motion_strength not in (None, 1.0)):
            raise ValueError("natural_strength applies to --augment natural only; MIPairTransform does not take a "
                             "strength yet (--mi-photometric natural|both uses the models as fitted)")
        self.jitter = options.mi_photometric in ("jitter", "both")
        scorer = None
        if options.mi_scorer in ENCODER_SCORERS:
            if encoder is None:
                raise ValueError(f"mi_scorer={options.mi_scorer!r} needs the encoder")
            from ..pairs.scorers import CropImageScorer, FeatureScorer

            maps, proj = FeatureMaps(encoder), None if head is None else _EvalMode(head)
            scorer = FeatureScorer(maps, temperature, head=proj, input_kind="boxes") \
                if options.mi_scorer == "features" else CropImageScorer(maps, temperature, head=proj)
        elif options.mi_scorer == "iou":  # control: overlap alone, no pixels
            from ..pairs.controls import OverlapScorer

            scorer = OverlapScorer()
        elif options.mi_scorer == "garment-oracle":  # control: where the garment is, known (fmnist_scenes only)
            from ..datasets.scenes import GarmentLookup, SceneConfig
            from ..pairs.controls import ObjectCoverageScorer

            scorer = ObjectCoverageScorer(GarmentLookup.for_split("train", SceneConfig(image_size=size)))
        elif options.mi_scorer != "pixels":
            raise ValueError(f"mi_scorer must be one of {MI_SCORERS}, got {options.mi_scorer!r}")
        from ..pairs.policies import make_policy

        policy = make_policy(options.mi_policy)
        if policy.needs_scores and policy.rank_based and options.mi_candidates < 2:
            raise ValueError(f"mi_candidates={options.mi_candidates} leaves policy {options.mi_policy!r} nothing to "
                             "rank: use --mi-candidates >= 2 or --mi-policy random")
        self.pair = MIPairTransform(size, scale=self.scale, n_candidates=options.mi_candidates,
                                    policy=options.mi_policy, illumination=natural, motion=natural, scorer=scorer,
                                    proxy_size=size if scorer is not None else 32, view_transforms=None)

    def views(self, images, generator=None):
        a, b = self.pair(_to_float(images), generator=generator)
        if self.jitter:
            a, b = color_jitter(a, generator), color_jitter(b, generator)
        return a, b


class FeatureMaps(torch.nn.Module):
    """An :class:`~mi_augment.ssl.backbones.Encoder`'s backbone up to its pooling, in eval mode:
    ``(B, C, H, W)`` in [0, 1] -> feature maps ``(B, D, h, w)``, for ``input_kind="boxes"`` scorers.

    ResNet: the layers up to ``layer4``; the small CNN: all layers but the pooling; ViT: the patch tokens
    after the transformer (class token dropped), reshaped to the patch grid. Shares the encoder's weights
    (held unregistered, so nothing is saved twice)."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        net = getattr(encoder, "backbone", None)
        if net is None or not hasattr(encoder, "mean"):
            raise TypeError(f"FeatureMaps needs an ssl Encoder (backbone, mean, std), got {type(encoder).__name__}")
        from torchvision.models import ResNet
        from torchvision.models.vision_transformer import VisionTransformer

        if isinstance(net, ResNet):
            self.kind = "resnet"
        elif isinstance(net, VisionTransformer):
            self.kind = "vit"
        elif isinstance(net, torch.nn.Sequential) and isinstance(net[-2], torch.nn.AdaptiveAvgPool2d):
            self.kind = "cnn"
        else:
            raise TypeError(f"no feature map for backbone {type(net).__name__}: expected a torchvision ResNet, "
                            "VisionTransformer or a Sequential ending in AdaptiveAvgPool2d, Flatten")
        self._encoder = [encoder]

    def _maps(self, x: Tensor) -> Tensor:
        encoder = self._encoder[0]
        net = encoder.backbone
        x = (x - encoder.mean) / encoder.std
        if self.kind == "cnn":
            return net[:-2](x)
        if self.kind == "resnet":
            x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
            return net.layer4(net.layer3(net.layer2(net.layer1(x))))
        tokens = net.conv_proj(x)  # (B, D, h, w)
        b, d, h, w = tokens.shape
        seq = torch.cat([net.class_token.expand(b, -1, -1), tokens.flatten(2).transpose(1, 2)], dim=1)
        return net.encoder(seq)[:, 1:].transpose(1, 2).reshape(b, d, h, w)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        encoder = self._encoder[0]
        was_training = encoder.training
        encoder.eval()
        try:
            return self._maps(x)
        finally:
            encoder.train(was_training)


class _EvalMode(torch.nn.Module):
    """Calls a module in eval mode (and restores its mode), so scoring never updates BatchNorm statistics.
    Holds the module in a list so it is not registered (and not saved) twice."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self._module = [module]

    def forward(self, x: Tensor) -> Tensor:
        module = self._module[0]
        was_training = module.training
        module.eval()
        try:
            return module(x)
        finally:
            module.train(was_training)


# ------------------------------------------------------------------------------------------ twin patches
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

    Build with :meth:`from_video` (mines and caches every clip) or :meth:`from_dataset`."""

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
        """A twin batch (:meth:`draw` with ``selection``, default ``generator``) as float ``[n, C, size,
        size]`` views, flipped together, with independent colour jitter on each side (``generator``); 1
        channel when the encoder expects it."""
        idx = self.draw(batch_size, selection if selection is not None else generator, rank, world_size)
        d = self.patches.device
        out = []
        flip = rand((idx.shape[0],), generator, d) < 0.5
        for src in (self.patches, self.twins):
            v = _to_float(src[idx])
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


def make_views(mode: str, *, size: int, channels: int, options: AugmentOptions | None = None,
               encoder: torch.nn.Module | None = None, head: torch.nn.Module | None = None,
               temperature: float = 0.2) -> ViewPairs:
    """The view-pair function for ``--augment mode`` (``twin`` uses the baseline views; its twin stream is
    :class:`TwinPairs`). ``encoder`` (the target / EMA one when the method has one), ``head`` and
    ``temperature`` are used by ``mi`` with ``mi_scorer="features"`` or ``"crop-image"`` only."""
    options = options or AugmentOptions()
    if mode not in AUGMENT_MODES:
        raise ValueError(f"unknown augment mode {mode!r}; expected one of {AUGMENT_MODES}")
    if mode in ("baseline", "twin"):
        return BaselineViews(size, channels, options)
    if mode == "natural":
        return NaturalViews(size, channels, options)
    return MIViews(size, channels, options, encoder=encoder, head=head, temperature=temperature)
