"""The recipes' command line: :func:`make_parser` and the checks that run before any work.

Every number is checked by its argparse ``type`` (:func:`positive_int`, :func:`non_negative_float`, ...), so a
bad value stops at parse time with ``argument --epochs: must be an integer >= 1, got '0'``; settings that
depend on each other (``--dataset folder`` and its layout, ``--resume`` / ``--overwrite``, model files) are
checked by :meth:`RecipeParser.parse_args`.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from ...datasets.loading import DATASETS, default_data_root
from ...pairs.policies import POLICIES
from .. import AUGMENT_MODES, BACKBONES, POSITIVES
from ..views import MI_SCORERS, mi_policy

__all__ = ["RecipeParser", "make_parser", "non_negative_float", "non_negative_int", "positive_float",
           "positive_int", "resolve_positives", "unit_interval"]


def _number(text: str, kind: type, what: str, ok) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if (kind is float and not math.isfinite(value)) or not ok(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer ``>= 1``.

    Example:
        >>> positive_int("3")
        3
    """
    return _number(text, int, "an integer >= 1", lambda v: v >= 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer ``>= 0``."""
    return _number(text, int, "an integer >= 0", lambda v: v >= 0)


def positive_float(text: str) -> float:
    """argparse type: a finite number ``> 0`` (``nan`` and ``inf`` refused).

    Example:
        >>> positive_float("0.3")
        0.3
    """
    return _number(text, float, "a finite number > 0", lambda v: v > 0)


def non_negative_float(text: str) -> float:
    """argparse type: a finite number ``>= 0``."""
    return _number(text, float, "a finite number >= 0", lambda v: v >= 0)


def unit_interval(text: str) -> float:
    """argparse type: a number in ``[0, 1]``."""
    return _number(text, float, "a number in [0, 1]", lambda v: 0 <= v <= 1)


def _image_size(text: str) -> int:
    return _number(text, int, "an integer >= 8 (pixels)", lambda v: v >= 8)


def _batch_size(text: str) -> int:
    return _number(text, int, "an integer >= 2 (the losses compare the images of a batch)", lambda v: v >= 2)


def _crop_scale(text: str) -> float:
    return _number(text, float, "a number in (0, 1]", lambda v: 0 < v <= 1)


FOLDER_LAYOUT = "ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg (or ROOT/test/<class>/*)"


class RecipeParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose :meth:`parse_args` also checks the settings that depend on each other, with
    argparse's usage error (exit status 2) for each."""

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        for problem in _problems(parsed):
            self.error(problem)
        return parsed


def resolve_positives(args: argparse.Namespace) -> str:
    """What the method's loss pulls together: ``--positives``, with ``--augment twin`` meaning ``--positives
    twin`` on baseline views.

    Args:
        args: the parsed flags (``positives``, ``augment``, ``twin_control``).

    Raises ``ValueError`` naming the flags for conflicting or stray settings.

    Example:
        >>> resolve_positives(argparse.Namespace(positives="views", augment="twin", twin_control="none"))
        'twin'
    """
    positives = getattr(args, "positives", "views")
    if positives not in POSITIVES:
        raise ValueError(f"--positives must be one of {POSITIVES}, got {positives!r}")
    if args.augment == "twin":
        if positives == "mi-neighbour":
            raise ValueError("--augment twin already adds twin positives; it cannot be combined with "
                             "--positives mi-neighbour")
        positives = "twin"
    if getattr(args, "twin_control", "none") != "none" and positives != "twin":
        raise ValueError(f"--twin-control {args.twin_control} is a control of --positives twin, got --positives "
                         f"{positives}")
    return positives


def _problems(args: argparse.Namespace):
    """Messages for settings that cannot work together (each names its flags)."""
    if getattr(args, "resume", False) and getattr(args, "overwrite", False):
        yield "--resume continues the run in --out and --overwrite replaces it: pass one of them"
    try:
        resolve_positives(args)
    except ValueError as exc:
        yield str(exc)
    if args.dataset == "folder":
        root = args.data_root or os.environ.get("MI_AUGMENT_DATA_ROOT")
        if root is None:
            yield f"--dataset folder needs --data-root ROOT holding {FOLDER_LAYOUT}"
        elif not (Path(root) / "train").is_dir() or not any((Path(root) / s).is_dir() for s in ("val", "test")):
            yield f"--dataset folder: {root} does not hold the layout {FOLDER_LAYOUT}"
    if args.train_subset is not None and args.train_subset < args.batch_size:
        yield (f"--train-subset {args.train_subset} cannot fill one batch of --batch-size {args.batch_size}: "
               "lower --batch-size or raise --train-subset")
    band = getattr(args, "mi_band", None)
    if args.mi_policy not in POLICIES:
        yield f"--mi-policy must be one of {sorted(POLICIES)}, got {args.mi_policy!r}"
    elif band is not None and args.mi_policy != "band":
        yield f"--mi-band applies to --mi-policy band only, got --mi-policy {args.mi_policy}"
    elif band is not None and not (math.isfinite(band[0]) and math.isfinite(band[1]) and band[0] <= band[1]):
        yield f"--mi-band LO HI must be finite with LO <= HI, got {band[0]} {band[1]}"
    elif args.augment == "mi" and args.mi_candidates < 2 and mi_policy(args.mi_policy, band).rank_based:
        yield (f"--mi-candidates {args.mi_candidates} leaves --mi-policy {args.mi_policy} nothing to rank: use "
               "--mi-candidates >= 2 or --mi-policy random")
    lo, hi = args.neighbour_quantiles
    if not 0 <= lo < hi <= 1:
        yield f"--neighbour-quantiles LO HI must satisfy 0 <= LO < HI <= 1, got {lo} {hi}"
    yield from _model_problems(args)
    for video in args.twin_video or []:
        if not Path(video).is_file():
            yield f"--twin-video {video}: no such file"


def _model_problems(args: argparse.Namespace):
    """``--illumination-model`` / ``--motion-model``: each file is loaded once here, so a wrong or broken file
    stops the run before any work."""
    from ...perturbations import IlluminationModel, MotionModel

    for flag, name, cls in (("--illumination-model", "illumination_model", IlluminationModel),
                            ("--motion-model", "motion_model", MotionModel)):
        value = getattr(args, name, "default")
        if value == "default":
            continue
        if not Path(value).is_file():
            yield f"{flag} {value}: no such file (pass a model file written by `mi-augment fit`, or 'default')"
            continue
        try:
            cls.from_spec(value, flag)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            yield f"{flag} {value} is not a usable {cls.__name__} file: {str(exc).splitlines()[0]}"


def _data_flags(p: argparse.ArgumentParser) -> None:
    root = default_data_root()
    p.add_argument("--dataset", default="default", choices=DATASETS,
                   help="'default' is the embedded Fashion-MNIST subset (10k train / 2k test); 'folder' is an image "
                        f"folder with the layout {FOLDER_LAYOUT}; 'synthetic' a tiny generated set (smoke tests)")
    p.add_argument("--data-root", default=None,
                   help="dataset folder: the ImageFolder ROOT for --dataset folder (required there), where "
                        f"torchvision keeps cifar10 / cifar100 / stl10 / fashion_mnist (default {root!r}, from "
                        "$MI_AUGMENT_DATA_ROOT when set; the run prints the folder it uses)")
    p.add_argument("--download", action="store_true", help="let torchvision download missing datasets")
    p.add_argument("--image-size", type=_image_size, default=None,
                   help="resize images to this square size (default: the dataset's own: 28 Fashion-MNIST, 32 CIFAR "
                        "and fmnist_scenes, 96 STL-10 and folder, 16 synthetic)")
    p.add_argument("--train-subset", type=positive_int, default=None,
                   help="train on a fixed subset of this many images")
    p.add_argument("--test-subset", type=positive_int, default=None,
                   help="evaluate on a fixed subset of this many images")


def _model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", default="resnet18", choices=BACKBONES)
    p.add_argument("--patch-size", type=positive_int, default=None,
                   help="ViT patch size (default: suited to the image size)")
    p.add_argument("--cnn-width", type=positive_int, default=32, help="small_cnn: channels of its first layer")


def _augment_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--augment", default="baseline", choices=AUGMENT_MODES)
    p.add_argument("--crop-scale-min", type=_crop_scale, default=None,
                   help="RandomResizedCrop's smallest area (default 0.2 up to 64 px, else 0.08)")
    p.add_argument("--mi-policy", default="threshold", help="MIPairTransform policy (--augment mi)")
    p.add_argument("--mi-band", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                   help="--mi-policy band: keep the candidates whose score lies in [LO, HI], in the scorer's units "
                        "(nats for MI, the overlap for --mi-scorer iou); unset: the middle half by rank")
    p.add_argument("--mi-candidates", type=positive_int, default=8,
                   help="candidate crop pairs per image (--augment mi)")
    p.add_argument("--mi-photometric", default="jitter", choices=("jitter", "natural", "both"),
                   help="--augment mi: the method's views (jitter), the natural models in place of the colour "
                        "jitter (natural), or the natural models and the method's views (both)")
    p.add_argument("--natural-strength", type=non_negative_float, default=1.0,
                   help="--augment natural: scale both natural models' draws away from identity, keeping their "
                        "fitted shape (0: identity, 1: as fitted)")
    p.add_argument("--natural-motion-strength", type=non_negative_float, default=None,
                   help="--augment natural: the motion model's strength alone (unset: --natural-strength)")
    p.add_argument("--illumination-model", default="default", metavar="PATH",
                   help="--augment natural / --mi-photometric natural|both: an illumination model file (e.g. refit "
                        "with `mi-augment fit illumination`), or 'default' for the shipped one")
    p.add_argument("--motion-model", default="default", metavar="PATH",
                   help="the motion model file, or 'default' (as --illumination-model)")
    p.add_argument("--mi-scorer", default="pixels", choices=tuple(MI_SCORERS),
                   help="--augment mi: score candidate pairs by pixel-histogram MI, by the pointwise MI of the "
                        "(target) encoder's features (one forward per image, boxes pooled from its feature map), "
                        "or by each crop's pointwise MI with its whole image; controls: 'iou' (overlap alone), "
                        "'garment-oracle' (how much of the known garment both crops hold; fmnist_scenes only)")


def _positives_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--positives", default="views", choices=POSITIVES,
                   help="views: the two views of each image; mi-neighbour: each view's partner chosen by pointwise "
                        "MI from a support queue of other images' target embeddings (NNCLR with policy max); "
                        "twin: the views plus (patch, twin) pairs mined from video through the method's own loss")
    p.add_argument("--neighbour-policy", default="max", choices=("max", "band", "topk"),
                   help="--positives mi-neighbour: the nearest (max, NNCLR), uniform in a pMI rank band, or among "
                        "the k best")
    p.add_argument("--neighbour-quantiles", type=unit_interval, nargs=2, default=(0.9, 1.0), metavar=("LO", "HI"),
                   help="--neighbour-policy band: the pMI rank range (quantiles over the queue)")
    p.add_argument("--neighbour-k", type=positive_int, default=5,
                   help="--neighbour-policy topk: how many best entries")
    p.add_argument("--queue-size", type=positive_int, default=8192,
                   help="--positives mi-neighbour: support queue capacity")
    p.add_argument("--twin-video", action="append", default=None,
                   help="a video mined for twin patches besides the shipped clips (repeatable)")
    p.add_argument("--no-twin-shipped", dest="twin_shipped", action="store_false",
                   help="mine only --twin-video, not the shipped clips (bikes, carphone, vtest, tree)")
    p.add_argument("--twin-weight", type=non_negative_float, default=0.5,
                   help="weight of the twin-pair loss (--positives twin)")
    p.add_argument("--twin-control", default="none", choices=("none", "random", "views"),
                   help="--positives twin controls: random (each twin replaced by a random active, non-neighbouring "
                        "patch of the same window and frames) or views (the branch gets a second view pair of the "
                        "image batch: same extra compute, no video)")
    p.add_argument("--twin-batch", type=positive_int, default=None,
                   help="--positives twin: pairs per step over all processes (default: the batch size; capped at "
                        "the unique pairs); give the twin arm's count to the views control to match its compute")
    p.add_argument("--twin-patch-size", type=_image_size, default=16,
                   help="mined patch side in video pixels (16: 375 unique pairs from the shipped clips, 32: 75)")
    p.add_argument("--twin-cache", default=None,
                   help="folder of the per-video twin caches (default: ~/.cache/mi_augment/twins/), or a prepared "
                        "TwinPatchDataset file")


def _run_flags(p: argparse.ArgumentParser, method: str) -> None:
    p.add_argument("--out", default=f"runs/{method.lower()}",
                   help="folder for checkpoint, results.json, curves.png; a folder holding a run is refused unless "
                        "--resume or --overwrite is given, and is locked while a run is in it")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt (an error when there is none); refused when a setting that "
                        "changes the run differs from the checkpoint's (see --allow-config-change)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out (its files deleted)")
    p.add_argument("--allow-config-change", nargs="+", default=[], metavar="FIELD",
                   help="with --resume: continue although these config fields (e.g. lr batch_size, or 'all') differ "
                        "from the checkpoint's; results.json then records both configs under 'config' and "
                        "'config_changes'")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-amp", action="store_true", help="train in float32 on CUDA too")
    p.add_argument("--checkpoint-every", type=positive_int, default=500,
                   help="also checkpoint every this many steps (and at every epoch's end)")
    p.add_argument("--stop-after", type=positive_int, default=None,
                   help="stop after this many steps, saving a checkpoint there (continue with --resume)")
    p.add_argument("--knn-every", type=non_negative_int, default=0,
                   help="kNN monitor every this many epochs (0: at the end only)")
    p.add_argument("--linear-epochs", type=non_negative_int, default=100,
                   help="linear-probe epochs (0 skips the probe)")
    p.add_argument("--workers", type=non_negative_int, default=4, help="DataLoader workers for large datasets")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def make_parser(method: str, *, lr: float, weight_decay: float, batch_size: int = 256, epochs: int = 100,
                warmup_epochs: int = 10) -> RecipeParser:
    """The arguments every recipe takes, with the method's own defaults for lr / weight decay / batch.

    Args:
        method: the method's display name (``"SimCLR"``); the default ``--out`` is ``runs/<method>``.
        lr: base learning rate per 256 images; weight_decay, batch_size, epochs, warmup_epochs: defaults.

    Example:
        >>> args = make_parser("SimCLR", lr=0.3, weight_decay=1e-6).parse_args(["--epochs", "2"])
        >>> args.epochs, args.batch_size, args.out
        (2, 256, 'runs/simclr')
    """
    p = RecipeParser(prog=f"recipes/{method.lower()}.py",
                     description=f"Pre-train an encoder with {method} and evaluate it (kNN, linear probe).",
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _data_flags(p)
    _model_flags(p)
    _augment_flags(p)
    _positives_flags(p)
    p.add_argument("--epochs", type=positive_int, default=epochs)
    p.add_argument("--batch-size", type=_batch_size, default=batch_size,
                   help="global batch size (split over processes)")
    p.add_argument("--lr", type=positive_float, default=lr, help="base learning rate per 256 images (scaled linearly)")
    p.add_argument("--weight-decay", type=non_negative_float, default=weight_decay)
    p.add_argument("--warmup-epochs", type=non_negative_float, default=warmup_epochs,
                   help="linear warmup length (capped at a tenth of the run)")
    _run_flags(p, method)
    return p
