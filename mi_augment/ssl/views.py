"""The ``--augment`` arms: functions from a uint8 batch on the device to two float views in [0, 1].

Every arm takes its method's per-view pipelines from :func:`mi_augment.transforms.presets.method_views` (the
one definition of each method's views) and changes one thing:

``baseline``  RandomResizedCrop and flip, then the method's pipelines (:class:`BaselineViews`)
``natural``   the same crops and flips; the fitted natural illumination and motion models in place of the
              colour jitter, the rest of the pipelines kept (:class:`NaturalViews`)
``mi``        crop pairs chosen by mutual information (:class:`~mi_augment.transforms.pair.MIPairTransform`),
              each view through the method's pipelines (:class:`MIViews`)
``twin``      the baseline views; the recipe adds (patch, twin) pairs mined from video
              (:class:`~mi_augment.ssl.twins.TwinPairs`)

Every view is drawn with one ``torch.Generator`` on the training device, so a run is reproducible and a
resumed run continues the same random stream. The natural models and the pair transform load on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..core.random import rand
from ..functional.crops import resized_crop
from ..pairs.sampler import BoxSampler
from ..transforms.photometric import ColorJitter, GaussianBlur, RandomGrayscale, RandomSolarize
from ..transforms.presets import METHOD_VIEWS, method_views
from . import AUGMENT_MODES

if TYPE_CHECKING:
    from ..pairs.policies import Policy

__all__ = ["ENCODER_SCORERS", "MI_SCORERS", "AugmentOptions", "BaselineViews", "MIViews", "NaturalViews",
           "ViewPairs", "color_jitter", "gaussian_blur", "make_views", "mi_policy", "solarize", "to_float"]

#: ``--mi-scorer`` values and their names in :data:`mi_augment.pairs.SCORERS` (None: the transform's own pixel
#: scorer); "iou" (overlap alone) and "garment-oracle" (where the known garment is) are controls, not MI
MI_SCORERS = {"pixels": None, "features": "features", "crop-image": "crop-image", "iou": "iou",
              "garment-oracle": "object-coverage"}
#: the scorers that forward images through the encoder (counted as encoder images per step)
ENCODER_SCORERS = ("features", "crop-image")


@dataclass
class AugmentOptions:
    """Knobs of the augment arms (all have recipe CLI flags)."""

    views: str = "simclr"  #: the method's views, a key of :data:`~mi_augment.transforms.presets.METHOD_VIEWS`
    crop_scale_min: float | None = None  #: RandomResizedCrop's smallest area fraction (None: 0.2 <= 64 px, else 0.08)
    mi_policy: str = "threshold"  #: MIPairTransform policy
    mi_candidates: int = 8  #: candidate crop pairs scored per image
    mi_photometric: str = "jitter"  #: photometric part of mi views: "jitter", "natural" or "both" (see MIViews)
    natural_strength: float = 1.0  #: --augment natural: strength of both natural models (1: as fitted)
    natural_motion_strength: float | None = None  #: the motion model's strength (None: natural_strength)
    #: the illumination / motion model: "default" (shipped) or a model file's path (``--illumination-model``)
    illumination_model: str = "default"
    motion_model: str = "default"
    mi_scorer: str = "pixels"  #: what scores candidate pairs: a key of :data:`MI_SCORERS`
    #: ``mi_policy="band"``: the absolute band ``(lo, hi)`` of scores kept, in the scorer's units (None: the
    #: policy's default, the middle half by rank)
    mi_band: tuple[float, float] | None = None
    #: videos mined for twin patches besides the shipped clips (a path or several)
    twin_video: str | tuple[str, ...] | None = None
    twin_patch_size: int = 16  #: side of mined patches, in video pixels (16 finds 5x the pairs 32 does)
    #: folder of the per-video caches (default: ``default_twin_cache``'s), or a prepared TwinPatchDataset file
    twin_cache: str | None = None
    twin_shipped: bool = True  #: mine the shipped sample clips (bikes, carphone, vtest, tree) too
    #: "none", "random" (each twin replaced by a random active, non-neighbouring patch at the same frames) or
    #: "views" (no video: the branch gets a second view pair of the image batch)
    twin_control: str = "none"

    def __post_init__(self):
        if self.views not in METHOD_VIEWS:
            raise ValueError(f"views must be one of {sorted(METHOD_VIEWS)}, got {self.views!r}")
        if self.mi_band is not None and self.mi_policy != "band":
            raise ValueError(f"mi_band applies to mi_policy='band' only, got mi_policy={self.mi_policy!r}")


def mi_policy(name: str, band: tuple[float, float] | None = None) -> Policy:
    """The ``MIPairTransform`` policy of ``--mi-policy name`` (and ``--mi-band``: the band policy's absolute
    ``(lo, hi)``; None: its default): what the recipe trains with and what its flag check ranks.

    Example:
        >>> mi_policy("band", (0.2, 0.6)).band
        (0.2, 0.6)
    """
    from ..pairs.policies import make_policy

    return make_policy(name, **({"band": tuple(band)} if band is not None else {}))


def to_float(images: Tensor) -> Tensor:
    """uint8 ``[0, 255]`` -> float ``[0, 1]``; float images are returned as float32."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


def color_jitter(x: Tensor, generator: torch.Generator | None, p: float = 0.8, strength: float = 1.0,
                 grayscale_p: float = 0.2) -> Tensor:
    """SimCLR's colour distortion, per sample: :class:`~mi_augment.transforms.ColorJitter` with brightness,
    contrast, saturation 0.4 and hue 0.1 (times ``strength``) with probability ``p``, then
    :class:`~mi_augment.transforms.RandomGrayscale` with probability ``grayscale_p``.

    Args:
        x: float images in [0, 1]; 1-channel images get brightness and contrast only.
        generator: the random stream.

    Shape:
        - Input and output: ``(B, C, H, W)``.

    Example:
        >>> color_jitter(torch.rand(2, 3, 8, 8), torch.Generator().manual_seed(0)).shape
        torch.Size([2, 3, 8, 8])
    """
    s = 0.4 * strength
    out = ColorJitter(s, s, s, 0.1 * strength, p=p)(x, generator=generator)
    return RandomGrayscale(p=grayscale_p)(out, generator=generator) if grayscale_p > 0 else out


def gaussian_blur(x: Tensor, generator: torch.Generator | None, p: float) -> Tensor:
    """:class:`~mi_augment.transforms.GaussianBlur` with probability ``p``: sigma uniform in [0.1, 2] px, kernel
    0.1 of the image's side (as SimCLR does for 224 px). Shape ``(B, C, H, W)`` in and out."""
    return GaussianBlur(None, sigma=(0.1, 2.0), p=p)(x, generator=generator) if p > 0 else x


def solarize(x: Tensor, generator: torch.Generator | None, p: float) -> Tensor:
    """:class:`~mi_augment.transforms.RandomSolarize` (values >= 0.5 inverted) with probability ``p``. Shape
    ``(B, C, H, W)`` in and out."""
    return RandomSolarize(0.5, p=p)(x, generator=generator) if p > 0 else x


def _apply(pipeline: list, x: Tensor, generator: torch.Generator | None) -> Tensor:
    for transform in pipeline:
        x = transform(x, generator=generator)
    return x


class ViewPairs:
    """Base class: ``views(images_uint8, generator) -> (view_a, view_b)``, float ``[B, C, size, size]``.

    Args:
        size: the views' side in pixels.
        channels: the images' channels.
        options: the arm's :class:`AugmentOptions`.
    """

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
        """RandomResizedCrop to ``size`` and a horizontal flip with probability 0.5, per sample."""
        b, _, h, w = x.shape
        boxes = self.boxes.sample((b,), h, w, generator=generator, device=x.device)
        flip = rand((b,), generator, x.device) < 0.5
        return resized_crop(x, boxes, self.size, flip=flip)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        return self.views(images, generator)

    def views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class BaselineViews(ViewPairs):
    """The method's published views: crop + flip, then its per-view pipelines (:attr:`pipelines`, from
    :func:`~mi_augment.transforms.presets.method_views`).

    Example:
        >>> views = BaselineViews(16, 3, AugmentOptions(views="byol"))
        >>> [type(t).__name__ for t in views.pipelines[1]]
        ['ColorJitter', 'RandomGrayscale', 'RandomSolarize']
        >>> a, b = views(torch.randint(0, 256, (2, 3, 24, 24), dtype=torch.uint8), torch.Generator().manual_seed(0))
        >>> a.shape, a.dtype
        (torch.Size([2, 3, 16, 16]), torch.float32)
    """

    def __init__(self, size: int, channels: int, options: AugmentOptions):
        super().__init__(size, channels, options)
        self.pipelines = method_views(options.views, size)

    def views(self, images, generator=None):
        x = to_float(images)
        a = _apply(self.pipelines[0], self.crop_flip(x, generator), generator)
        return a, _apply(self.pipelines[1], self.crop_flip(x, generator), generator)


class NaturalViews(ViewPairs):
    """Crop + flip, then the fitted natural illumination and motion models in place of the colour jitter,
    then the rest of the method's pipelines (:attr:`pipelines`: grayscale, and blur / solarize where the
    method has them). ``options.natural_strength`` scales both models' draws away from identity (keeping their
    fitted shape), ``options.natural_motion_strength`` the motion model's alone when set;
    ``options.illumination_model`` / ``motion_model`` name the models (``"default"`` or a file).

    Example:
        >>> views = NaturalViews(16, 3, AugmentOptions(views="byol"))
        >>> [type(t).__name__ for t in views.pipelines[1]]  # BYOL's view 1 without its colour jitter
        ['RandomGrayscale', 'RandomSolarize']
    """

    def __init__(self, size, channels, options):
        super().__init__(size, channels, options)
        from ..transforms.illumination import NaturalIllumination
        from ..transforms.motion import NaturalMotion

        motion_strength = options.natural_motion_strength
        self.illumination = NaturalIllumination(options.illumination_model, strength=options.natural_strength)
        self.motion = NaturalMotion(options.motion_model, strength=options.natural_strength
                                    if motion_strength is None else motion_strength)
        self.pipelines = method_views(options.views, size, color_jitter=False)

    def views(self, images, generator=None):
        x = to_float(images)
        out = []
        for pipeline in self.pipelines:
            v = self.motion(self.illumination(self.crop_flip(x, generator), generator=generator), generator=generator)
            out.append(_apply(pipeline, v, generator))
        return out[0], out[1]


def make_scorer_for(name: str, size: int, encoder: torch.nn.Module | None = None,
                    head: torch.nn.Module | None = None, temperature: float = 0.2):
    """The pair scorer of ``--mi-scorer name`` from :data:`mi_augment.pairs.SCORERS` (None for ``"pixels"``:
    the transform's own pixel-MI scorer). The encoder scorers pool boxes from :class:`FeatureMaps` of
    ``encoder`` (eval mode, no gradients), ``head`` applied, the critic at ``temperature``.

    Example:
        >>> make_scorer_for("pixels", 32) is None, type(make_scorer_for("iou", 32)).__name__
        (True, 'OverlapScorer')
    """
    from ..pairs import make_scorer

    if name not in MI_SCORERS:
        raise ValueError(f"mi_scorer must be one of {tuple(MI_SCORERS)}, got {name!r}")
    settings: dict = {}
    if name in ENCODER_SCORERS:
        if encoder is None:
            raise ValueError(f"mi_scorer={name!r} needs the encoder")
        from .features import EvalMode, FeatureMaps

        settings = {"encoder": FeatureMaps(encoder), "temperature": temperature,
                    "head": None if head is None else EvalMode(head)}
        if name == "features":
            settings["input_kind"] = "boxes"
    elif name == "garment-oracle":  # where the garment is, known from the generator (fmnist_scenes only)
        from ..datasets.scenes import GarmentLookup, SceneConfig

        settings = {"objects": GarmentLookup.for_split("train", SceneConfig(image_size=size))}
    return None if MI_SCORERS[name] is None else make_scorer(MI_SCORERS[name], **settings)


class MIViews(ViewPairs):
    """Crop pairs chosen by :class:`~mi_augment.transforms.pair.MIPairTransform`: ``mi_candidates``
    RandomResizedCrop pairs per image scored by MI, one kept by ``mi_policy``; flipped by the transform, then
    each view through the method's pipeline (the same :attr:`pipelines` as :class:`BaselineViews`').

    ``mi_photometric`` says what else the views get:

    * ``"jitter"`` (default): the method's pipelines only, so the only difference from ``baseline`` is how
      the crop pair is chosen;
    * ``"natural"``: the natural illumination and motion models inside the transform (pairs scored under
      them, views carrying them) in place of the colour jitter, the rest of the pipelines kept;
    * ``"both"``: natural models inside the transform, then the full pipelines.

    ``mi_scorer`` says what scores the candidates (:func:`make_scorer_for`); pass the target / EMA network as
    ``encoder`` / ``head`` when the method has one.

    Example:
        >>> views = MIViews(16, 3, AugmentOptions(views="vicreg", mi_policy="max"))
        >>> [[type(t).__name__ for t in p] for p in views.pair.view_transforms][1]  # the baseline's view 1
        ['ColorJitter', 'RandomGrayscale', 'RandomSolarize']
        >>> a, b = views(torch.randint(0, 256, (2, 3, 24, 24), dtype=torch.uint8), torch.Generator().manual_seed(0))
        >>> tuple(a.shape)
        (2, 3, 16, 16)
    """

    def __init__(self, size, channels, options, encoder: torch.nn.Module | None = None,
                 head: torch.nn.Module | None = None, temperature: float = 0.2):
        super().__init__(size, channels, options)
        from ..transforms.pair import MIPairTransform

        if options.mi_photometric not in ("jitter", "natural", "both"):
            raise ValueError(f"mi_photometric must be 'jitter', 'natural' or 'both', got {options.mi_photometric!r}")
        natural = options.mi_photometric in ("natural", "both")
        if natural and (options.natural_strength != 1.0 or options.natural_motion_strength not in (None, 1.0)):
            raise ValueError("natural_strength applies to --augment natural only; --mi-photometric natural|both "
                             "uses the models as fitted")
        scorer = make_scorer_for(options.mi_scorer, size, encoder, head, temperature)
        policy = mi_policy(options.mi_policy, options.mi_band)
        if policy.needs_scores and policy.rank_based and options.mi_candidates < 2:
            raise ValueError(f"mi_candidates={options.mi_candidates} leaves policy {options.mi_policy!r} nothing to "
                             "rank: use --mi-candidates >= 2 or --mi-policy random")
        self.pipelines = method_views(options.views, size, color_jitter=options.mi_photometric != "natural")
        self.pair = MIPairTransform(size, scale=self.scale, n_candidates=options.mi_candidates,
                                    policy=policy, scorer=scorer,
                                    illumination=options.illumination_model if natural else None,
                                    motion=options.motion_model if natural else None,
                                    view_transforms=self.pipelines)

    def views(self, images, generator=None):
        a, b = self.pair(to_float(images), generator=generator)
        return a, b


def make_views(mode: str, *, size: int, channels: int, options: AugmentOptions | None = None,
               encoder: torch.nn.Module | None = None, head: torch.nn.Module | None = None,
               temperature: float = 0.2) -> ViewPairs:
    """The view-pair function of ``--augment mode``.

    Args:
        mode: one of :data:`~mi_augment.ssl.AUGMENT_MODES` (``twin`` uses the baseline views; its twin stream
            is :class:`~mi_augment.ssl.twins.TwinPairs`).
        size: the views' side; channels: the images' channels.
        options: the arm's knobs (default :class:`AugmentOptions`).
        encoder, head, temperature: what ``mi`` with ``mi_scorer="features"`` or ``"crop-image"`` scores
            with (the target / EMA network when the method has one).

    Example:
        >>> views = make_views("baseline", size=16, channels=1)
        >>> a, b = views(torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8), torch.Generator().manual_seed(0))
        >>> tuple(a.shape), float(a.min()) >= 0.0
        ((4, 1, 16, 16), True)
    """
    options = options or AugmentOptions()
    if mode not in AUGMENT_MODES:
        raise ValueError(f"unknown augment mode {mode!r}; expected one of {AUGMENT_MODES}")
    if mode in ("baseline", "twin"):
        return BaselineViews(size, channels, options)
    if mode == "natural":
        return NaturalViews(size, channels, options)
    return MIViews(size, channels, options, encoder=encoder, head=head, temperature=temperature)
