"""The ``--augment`` modes: functions from a uint8 batch on the device to two float views in [0, 1].

``baseline``  the method's published recipe, batched: RandomResizedCrop, flip, ColorJitter (p 0.8),
              grayscale (p 0.2), and for BYOL-style methods asymmetric blur / solarisation
``natural``   the same crops and flips, with the fitted natural illumination and motion models
              (:class:`~mi_augment.transforms.NaturalIllumination`, :class:`~mi_augment.transforms.NaturalMotion`)
              in place of ColorJitter
``mi``        crop pairs chosen by mutual information (:class:`~mi_augment.transforms.pair.MIPairTransform`),
              with the baseline's colour jitter (``--mi-photometric jitter``, default), the natural models
              (``natural``) or both (``both``); see :class:`MIViews`
``twin``      the baseline views plus a second stream of (patch, twin) pairs mined from video; see
              :class:`TwinPairs` (the recipe adds a projection head and a weighted loss for them)

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

from .._random import rand, sampling_device
from ..crops.sampler import BoxSampler
from ..functional.color import rgb_to_grayscale
from ..functional.crops import resized_crop
from ..transforms.base import RandomTransform
from ..transforms.photometric import ColorJitter, GaussianBlur, RandomGrayscale, RandomSolarize
from . import AUGMENT_MODES


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
    mi_scorer: str = "pixels"  #: what MI is estimated from: "pixels" (histogram MI) or "features" (the encoder's)
    twin_video: str | None = None  #: video mined for twin patches (default: the vtest sample)
    twin_patch_size: int = 32  #: side of mined patches, in video pixels
    twin_cache: str | None = None  #: cache file of the mined pairs (default: default_twin_cache)


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

    ``mi_scorer="features"`` scores candidates by the cosine similarity of the encoder being trained
    (:class:`~mi_augment.crops.scoring.FeatureScorer`; run in eval mode so BatchNorm statistics are untouched)
    instead of pixel-histogram MI.
    """

    def __init__(self, size, channels, options, encoder: torch.nn.Module | None = None):
        super().__init__(size, channels, options)
        try:
            from ..transforms.pair import MIPairTransform
        except ImportError as exc:
            raise RuntimeError(f"--augment mi needs mi_augment.transforms.pair ({exc})") from exc
        if options.mi_photometric not in ("jitter", "natural", "both"):
            raise ValueError(f"mi_photometric must be 'jitter', 'natural' or 'both', got {options.mi_photometric!r}")
        natural = None if options.mi_photometric in ("natural", "both") else False  # None: shipped models
        if natural is None and (options.natural_strength != 1.0 or options.natural_motion_strength not in (None, 1.0)):
            raise ValueError("natural_strength applies to --augment natural only; MIPairTransform does not take a "
                             "strength yet (--mi-photometric natural|both uses the models as fitted)")
        self.jitter = options.mi_photometric in ("jitter", "both")
        scorer = None
        if options.mi_scorer == "features":
            if encoder is None:
                raise ValueError("mi_scorer='features' needs the encoder")
            from ..crops.scoring import FeatureScorer

            scorer = FeatureScorer(_EvalMode(encoder))
        elif options.mi_scorer != "pixels":
            raise ValueError(f"mi_scorer must be 'pixels' or 'features', got {options.mi_scorer!r}")
        self.pair = MIPairTransform(size, scale=self.scale, n_candidates=options.mi_candidates,
                                    policy=options.mi_policy, illumination=natural, motion=natural, scorer=scorer,
                                    proxy_size=size if scorer is not None else 32)

    def views(self, images, generator=None):
        a, b = self.pair(_to_float(images), generator=generator)
        if self.jitter:
            a, b = color_jitter(a, generator), color_jitter(b, generator)
        return a, b


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
class TwinPairs:
    """(patch, twin) pairs mined from a video, resident on the device, served as augmented float views.

    The pairs are mined once with :func:`mi_augment.video.twins.mine_twin_patches` and cached with
    :class:`~mi_augment.video.twins.TwinPatchDataset` ``save`` / ``load`` (a safe JSON artifact)."""

    def __init__(self, patches: Tensor, twins: Tensor, size: int, channels: int):
        if patches.shape != twins.shape or patches.ndim != 4:
            raise ValueError(f"patches and twins must be matching [M, C, P, P], got {tuple(patches.shape)} "
                             f"and {tuple(twins.shape)}")
        self.patches, self.twins = patches, twins
        self.size, self.channels = size, channels

    def __len__(self) -> int:
        return self.patches.shape[0]

    @classmethod
    def from_video(cls, size: int, channels: int, options: AugmentOptions, device: torch.device | str) -> TwinPairs:
        """Mine ``options.twin_video`` (default: the ``vtest`` sample) once; later calls load the cache
        (``options.twin_cache``, default :func:`default_twin_cache`)."""
        try:
            from ..video.twins import TwinPatchDataset, mine_shots
        except ImportError as exc:
            raise RuntimeError(f"--augment twin needs mi_augment.video.twins ({exc})") from exc
        from ..data.samples import sample_path

        video_path = Path(options.twin_video) if options.twin_video else sample_path("vtest")
        cache = Path(options.twin_cache) if options.twin_cache else default_twin_cache(video_path,
                                                                                    options.twin_patch_size)
        if cache.is_file():
            dataset = TwinPatchDataset.load(cache)
        else:
            from ..video.io import read_video

            # every 64-frame window of the first 384 frames, 16 frames per mined pair: a few hundred pairs
            clip = read_video(video_path, max_frames=384, max_side=512)
            shots = mine_shots(clip, patch_size=options.twin_patch_size, max_frames=64)
            parts = [TwinPatchDataset.from_result(r, clip, frames_per_pair=16,
                                                  source=f"{video_path.name}[{r.frame_range[0]}:{r.frame_range[1]}]")
                     for r in shots]
            parts = [p for p in parts if len(p)]
            if not parts:
                raise RuntimeError(f"twin-patch mining found no pairs in {video_path}; try another --twin-video "
                                   "(moving objects, textured) or pass a prepared TwinPatchDataset as --twin-cache")
            dataset = TwinPatchDataset.concat(parts)
            dataset.save(cache)
        if len(dataset) == 0:
            raise RuntimeError(f"twin-patch mining found no pairs in {video_path}")
        crops = dataset.crops  # (N, 2, C, S, S) uint8
        return cls(crops[:, 0].contiguous().to(device), crops[:, 1].contiguous().to(device), size, channels)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``min(batch_size, len(self))`` distinct random pairs as float ``[B, C, size, size]``, flipped
        together, with independent colour jitter on each side; 1 channel when the encoder expects it."""
        d = self.patches.device
        # without replacement, so a batch never holds the same pair twice (it would be its own negative)
        n = min(batch_size, len(self))
        idx = torch.randperm(len(self), generator=generator, device=sampling_device(generator, d))[:n].to(d)
        out = []
        flip = rand((batch_size,), generator, d) < 0.5
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


def default_twin_cache(video: Path, patch_size: int) -> Path:
    """``$XDG_CACHE_HOME/mi_augment/twins/<video>-p<patch>-<size>.json``: mined once per video and patch
    size, shared by every run."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mi_augment" / "twins"
    size = video.stat().st_size if video.is_file() else 0
    return root / f"{video.stem}-p{patch_size}-{size}.json"


def make_views(mode: str, *, size: int, channels: int, options: AugmentOptions | None = None,
               encoder: torch.nn.Module | None = None) -> ViewPairs:
    """The view-pair function for ``--augment mode`` (``twin`` uses the baseline views; its twin stream is
    :class:`TwinPairs`). ``encoder`` is needed by ``mi`` with ``mi_scorer="features"`` only."""
    options = options or AugmentOptions()
    if mode not in AUGMENT_MODES:
        raise ValueError(f"unknown augment mode {mode!r}; expected one of {AUGMENT_MODES}")
    if mode in ("baseline", "twin"):
        return BaselineViews(size, channels, options)
    if mode == "natural":
        return NaturalViews(size, channels, options)
    return MIViews(size, channels, options, encoder=encoder)
