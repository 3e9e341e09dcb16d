"""Matched-control ablation (issue 11): which positives and perturbations train better encoders?

Each cell pre-trains one SimCLR encoder (``recipes/simclr.py``, in this process) with one *arm* and seed,
then scores it frozen with :func:`mi_augment.ssl.evaluate.evaluate_frozen`: kNN top-1 at k = 20 and 200
(InstDisc's temperature-weighted vote, T = 0.1) against the whole labelled memory, and a full-batch L-BFGS
linear probe on the cached features, on the full test set. The untrained encoder of every seed (the very
weights each run starts from) is scored too. Arms:

``B``                the recipe's SimCLR augmentation (``--augment baseline``)
``S``                ``B`` with RandomResizedCrop's scale matched to ``P``'s chosen pairs: mean pair IoU and
                     mean crop area measured on ``P``'s own draws, matched within 0.02 (searched, never typed in)
``P``                pixel-MI crop pairs (``--augment mi``: 8 candidates, threshold policy, the baseline jitter)
``natural``          the fitted natural illumination / motion models at fitted strength (``--augment natural``)
``natural_matched``  the same with the illumination strength matched to ColorJitter's brightness spread
``F``                feature pointwise-MI pairs, scored in the step by the encoder (``--mi-scorer features``)
``C``                crop-vs-image rejection (``--mi-scorer crop-image``)
``N``                cross-image MI positives from a support queue (``--positives mi-neighbour``)
``T`` / ``R`` / ``H``  video twins / their random-partner control / the branch fed a second view pair
``TG`` / ``RG``      the video route's positive control: twins mined from group videos (same-class garments
                     moving together, ``mi_augment.datasets.group_video``) / random partners of the same videos;
                     ``TG`` must beat ``RG``, else the twin training integration is broken
``O`` / ``I``        crop selection's positive control on ``fmnist_scenes``: of 8 candidate pairs, the one
                     that best shows the garment (``--mi-scorer garment-oracle``) / the one of largest
                     overlap (``--mi-scorer iou``); budget ``cpu_oracle``

Same seed = same initial weights, data order and per-step generator in every arm. Each cell records the
encoder images forwarded per step, wall time and device; ``--compute-matched`` adds a ``B`` cell trained
for the extra images an arm forwards. Cells are appended to ``benchmarks/results/ablation_<budget>.jsonl``
and skipped when already there, so a grid can span sessions. The summary (paired differences per seed,
95 % t CIs, Holm-adjusted p-values, the verdict by the rule written in docs/results.md) is printed, written
as JSON and drawn as a bar chart.

    python benchmarks/ablation.py --budget tiny                      # CI-sized dry run, well under a minute
    python benchmarks/ablation.py --budget cpu                       # both datasets, 5 seeds, small CNN
    python benchmarks/ablation.py --budget cpu --arms B,S,P --datasets fmnist_scenes --seeds 0
    python benchmarks/ablation.py --budget cpu --summary-only        # tables + figure from the JSONL
    python benchmarks/ablation.py --budget cpu_oracle                # B, I, O on fmnist_scenes, 5 seeds
    python benchmarks/ablation.py --budget cpu20k_confirm            # B, natural_matched at seeds 5-9
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks import shift_grid  # noqa: E402
from benchmarks._common import load_script  # noqa: E402
from mi_augment.core.artifact import atomic_write_bytes  # noqa: E402

RESULTS_DIR = ROOT / "benchmarks" / "results"
FIGURES_DIR = ROOT / "docs" / "figures"
ISSUE = "issue 11 (and the issue 'MI that measures information, not overlap')"
METRICS = ("knn_top1_k20", "knn_top1_k200", "linear_top1")
PRIMARY = "knn_top1_k20"  #: the metric the verdict is taken on (docs/results.md, "Decision rule")
ALPHA = 0.05
MATCH_TOLERANCE = 0.02

#: budgets: recipe arguments of every cell, the evaluation, the default grid
BUDGETS: dict[str, dict[str, Any]] = {
    "tiny": {  # CI-sized: a few seconds per cell, the whole grid well under a minute
        "recipe": ["--backbone", "small_cnn", "--cnn-width", "8", "--batch-size", "32", "--hidden-dim", "64",
                   "--warmup-epochs", "0"],
        "epochs": 1, "datasets": ["synthetic"], "train_subset": None, "memory_subset": None, "test_subset": None,
        "arms": ["B", "S", "P", "natural_matched"], "seeds": [0, 1], "linear_steps": 20,
        "calibration_images": 64,
        "group_twins": {"videos": 1, "frames": 24, "size": 128, "object_size": (28, 36), "crop_size": 32},
    },
    # 2 CPU cores: small CNN, 4,000 training images, 8 epochs (120 steps of 256); kNN memory: 10,000 labelled
    # training images (all of fmnist_scenes'); the natural arms as a second grid: --arms B,natural,natural_matched
    "cpu": {
        "recipe": ["--backbone", "small_cnn", "--batch-size", "256", "--hidden-dim", "512", "--warmup-epochs", "1"],
        "epochs": 8, "datasets": ["fashion_mnist", "fmnist_scenes"], "train_subset": 4000,
        "memory_subset": 10_000, "test_subset": None, "arms": ["B", "P", "S"],
        "seeds": [0, 1, 2, 3, 4], "linear_steps": 100, "calibration_images": 1024,
    },
    # fashion_mnist's second CPU try: at 4,000 images the baseline does not beat the untrained encoder's
    # linear probe (docs/results.md), so five times the images (600 steps of 256), same encoder and epochs
    "cpu20k": {
        "recipe": ["--backbone", "small_cnn", "--batch-size", "256", "--hidden-dim", "512", "--warmup-epochs", "1"],
        "epochs": 8, "datasets": ["fashion_mnist"], "train_subset": 20_000,
        "memory_subset": 20_000, "test_subset": None, "arms": ["B", "P", "S"],
        "seeds": [0, 1, 2, 3, 4], "linear_steps": 100, "calibration_images": 1024,
    },
    # the confirmation of natural_matched on cpu20k (docs/results.md, amendment of 2026-12-02 02:41 UTC): the
    # cpu20k cells at five new seeds, B and natural_matched only, one pre-specified comparison
    "cpu20k_confirm": {
        "recipe": ["--backbone", "small_cnn", "--batch-size", "256", "--hidden-dim", "512", "--warmup-epochs", "1"],
        "epochs": 8, "datasets": ["fashion_mnist"], "train_subset": 20_000,
        "memory_subset": 20_000, "test_subset": None, "arms": ["B", "natural_matched"],
        "seeds": [5, 6, 7, 8, 9], "linear_steps": 100, "calibration_images": 1024,
    },
    # the crop-selection controls on fmnist_scenes (docs/results.md, amendment of 2026-12-02): the cpu budget's
    # recipe, arms B, I (largest-overlap pair) and O (the pair that best shows the garment), its own Holm family
    "cpu_oracle": {
        "recipe": ["--backbone", "small_cnn", "--batch-size", "256", "--hidden-dim", "512", "--warmup-epochs", "1"],
        "epochs": 8, "datasets": ["fmnist_scenes"], "train_subset": 4000,
        "memory_subset": 10_000, "test_subset": None, "arms": ["B", "I", "O"],
        "seeds": [0, 1, 2, 3, 4], "linear_steps": 100, "calibration_images": 1024,
    },
    # issue 22 (docs/results.md, rule of 2026-12-07): scenes from the training clips only, every cell also scored
    # on held-out footage (track retrieval) and under two real shifts; F selects (max); Holm over hypotheses only
    "cpu_shift": {
        "recipe": ["--backbone", "small_cnn", "--batch-size", "256", "--hidden-dim", "512", "--warmup-epochs", "1"],
        "epochs": 8, "datasets": ["fmnist_scenes"], "train_subset": 4000,
        "memory_subset": 10_000, "test_subset": None,
        "arms": ["B", "natural_matched", "natural_iso", "natural", "P", "F", "S_F", "natural_fitted_jitter"],
        "seeds": [0, 1, 2, 3, 4, 5, 6, 7], "linear_steps": 100, "calibration_images": 1024,
        "scene_clips": ["bikes", "vtest"], "held_out_clips": ["carphone", "tree"],
        "metrics": [*METRICS, *shift_grid.SHIFT_METRICS], "primary": list(shift_grid.PRIMARY_METRICS),
        "controls": ["S", "S_F", "G_F", "natural_iso", "I", "R", "H", "RG", "TGtrue", "W_S_F", "W_I"],
        "arm_flags": {"F": ["--augment", "mi", "--mi-scorer", "features", "--mi-policy", "max"]},
        # amendment of 2026-12-07 (docs/results.md): the video route and warm start, each its own Holm family;
        # W_N (third amendment, after the warm family's numbers were seen) in a family of its own
        "families": {"video": ["TG", "TGmix"], "warm": ["W_F", "W_O"], "warm_n": ["W_N"]},
        # second amendment of 2026-12-07: F against its geometric control G_F, added after F's numbers were seen
        "post_hoc": {"F": ["G_F"]},
        "clean_commits": True,  # the rule: a cell run from uncommitted changes (+dirty) is not in the tables
    },
    # cpu_shift on one GPU (benchmarks/run_gpu_ablation.sh with BUDGET=gpu_shift): ResNet-18, every training image
    "gpu_shift": {
        "recipe": ["--backbone", "resnet18", "--batch-size", "512", "--hidden-dim", "2048", "--warmup-epochs", "1"],
        "epochs": 10, "datasets": ["fmnist_scenes"], "train_subset": None, "memory_subset": None, "test_subset": None,
        "arms": ["B", "natural_matched", "natural_iso", "natural", "P", "F", "natural_fitted_jitter"],
        "seeds": [0, 1, 2], "linear_steps": 300, "calibration_images": 2048,
        "scene_clips": ["bikes", "vtest"], "held_out_clips": ["carphone", "tree"],
        "metrics": [*METRICS, *shift_grid.SHIFT_METRICS], "primary": list(shift_grid.PRIMARY_METRICS),
        "controls": ["S", "S_F", "G_F", "natural_iso", "I", "R", "H", "RG", "TGtrue", "W_S_F", "W_I"],
        "arm_flags": {"F": ["--augment", "mi", "--mi-scorer", "features", "--mi-policy", "max"]},
        "families": {"video": ["TG", "TGmix"], "warm": ["W_F", "W_O"], "warm_n": ["W_N"]},
        "post_hoc": {"F": ["G_F"]},
    },
    "gpu": {  # one GPU: ResNet-18, every training image, full memory and test set
        "recipe": ["--backbone", "resnet18", "--batch-size", "512", "--hidden-dim", "2048", "--warmup-epochs", "1"],
        "epochs": 10, "datasets": ["fmnist_scenes", "fashion_mnist"], "train_subset": None, "memory_subset": None,
        "test_subset": None, "arms": ["P", "B", "S", "natural_matched", "O", "I", "natural"], "seeds": [0, 1, 2],
        "linear_steps": 300, "calibration_images": 2048,
    },
}


@dataclass(frozen=True)
class Arm:
    """One arm: the recipe flags it adds, its matched control, and the encoder images it forwards per step
    (as a multiple of the batch size)."""

    name: str
    flags: tuple[str, ...] = ()
    controls: tuple[str, ...] = ("B",)
    images_per_sample: float = 2.0  #: two views per image through the encoder
    built: bool = True
    what: str = ""
    datasets: tuple[str, ...] | None = None  #: the datasets the arm can run on (None: every one)
    #: warm start (issue 22 item 4): the arm whose flags it trains with after the seed's shared ``B`` checkpoint
    #: at ``WARM_FRACTION`` of the steps (the same schedule, data order and generator: only the second part differs)
    warm_of: str | None = None


#: share of a cell's steps the warm-start arms spend as ``B`` before switching to their own positives
WARM_FRACTION = 0.5

ARMS: dict[str, Arm] = {a.name: a for a in [
    Arm("B", ("--augment", "baseline"), controls=(), what="SimCLR augmentation of the recipe"),
    Arm("S", ("--augment", "baseline"), what="RandomResizedCrop scale matched to P's pair IoU and area"),
    Arm("P", ("--augment", "mi"), controls=("B", "S"), what="pixel-MI crop pairs"),
    Arm("natural", ("--augment", "natural"), controls=("B", "natural_iso"), what="fitted natural models at fitted strength"),
    Arm("natural_matched", ("--augment", "natural"), controls=("B", "natural_iso"),
        what="natural models, strength matched to ColorJitter"),
    Arm("F", ("--augment", "mi", "--mi-scorer", "features", "--mi-policy", "band"), controls=("B", "S", "S_F"),
        images_per_sample=3.0, what="feature pointwise-MI pairs (InfoMin band), scored by the training encoder"),
    Arm("S_F", ("--augment", "baseline"), what="RandomResizedCrop scale matched to F's kept pairs (F's own control)"),
    Arm("G_F", ("--augment", "mi", "--mi-scorer", "iou", "--mi-policy", "band"),
        what="F's geometric control (amendment of 2026-12-07, after F's numbers were seen): of the same 8 candidate "
             "pairs, uniform among those whose IoU lies in a band calibrated so the kept IoU and area match F's "
             "(no pixels looked at)"),
    Arm("natural_iso", ("--augment", "natural"), built=shift_grid.recipe_takes_models(),
        what="control: a hand-set isotropic photometric density, strength matched like natural_matched"),
    Arm("natural_fitted_jitter", ("--augment", "mi", "--mi-photometric", "both", "--mi-scorer", "iou", "--mi-policy",
                                  "random"), built=shift_grid.recipe_takes_models(),
        what="the natural models at fitted strength, then the baseline's views with their jitter (a random "
             "candidate pair: the baseline's crops)"),
    Arm("C", ("--augment", "mi", "--mi-scorer", "crop-image", "--mi-policy", "threshold"), controls=("B", "S"),
        images_per_sample=3.0, what="crop-vs-image rejection (drop the lower half)"),
    Arm("I", ("--augment", "mi", "--mi-scorer", "iou", "--mi-policy", "max"),
        what="control: of 8 candidate pairs, the one of largest overlap (no pixels looked at)"),
    Arm("O", ("--augment", "mi", "--mi-scorer", "garment-oracle", "--mi-policy", "max"), controls=("B", "I"),
        datasets=("fmnist_scenes",), what="positive control for crop selection: of 8 candidates, the pair that best shows the garment "
             "(fmnist_scenes only; what a content-founded score could reach)"),
    Arm("N", ("--positives", "mi-neighbour", "--neighbour-policy", "max"), controls=("B", "B_compute"),
        what="cross-image MI positives (max: NNCLR)"),
    Arm("W_F", warm_of="F", controls=("B", "W_S_F"), images_per_sample=3.0,
        what="warm start: B for the first half of the steps, then F (does encoder-dependent selection pay once "
             "the encoder means something?)"),
    Arm("W_S_F", warm_of="S_F", what="warm start: B, then F's scale-matched control S_F"),
    Arm("W_N", warm_of="N",
        what="warm start: B for the first half, then the MI neighbours N (the support queue starts empty at the "
             "switch; third amendment of 2026-12-07, its own Holm family)"),
    Arm("W_O", warm_of="O", controls=("B", "W_I"), datasets=("fmnist_scenes",),
        what="warm start: B for the first half, then the garment oracle O"),
    Arm("W_I", warm_of="I", what="warm start: B for the first half, then the largest-overlap pair I"),
    Arm("T", ("--positives", "twin", "--twin-weight", "0.5"), controls=("B", "R", "H"), images_per_sample=4.0,
        what="video twins through the method's own loss"),
    Arm("R", ("--positives", "twin", "--twin-weight", "0.5", "--twin-control", "random"), images_per_sample=4.0,
        what="twins with random partners (same pairs count and frames)"),
    Arm("H", ("--positives", "twin", "--twin-weight", "0.5", "--twin-control", "views"), images_per_sample=4.0,
        what="the twin branch fed a second view pair (same extra compute, no video)"),
    Arm("TGtrue", ("--positives", "twin", "--twin-weight", "0.5", "--no-twin-shipped"), images_per_sample=4.0,
        what="control: TG's patches, each partner drawn from the patch's true group (label-consistent co-motion, "
             "no MI)"),
    Arm("TGmix", ("--positives", "twin", "--twin-weight", "0.5", "--no-twin-shipped"), controls=("B", "RG"),
        images_per_sample=4.0, what="twins mined by MI from group videos whose groups hold garments of random "
                                    "classes (co-motion without a shared label)"),
    Arm("TG", ("--positives", "twin", "--twin-weight", "0.5", "--no-twin-shipped"), controls=("B", "RG", "TGtrue"),
        images_per_sample=4.0, what="positive control: twins mined from group videos (same-class garments that "
                                    "move together)"),
    Arm("RG", ("--positives", "twin", "--twin-weight", "0.5", "--no-twin-shipped", "--twin-control", "random"),
        images_per_sample=4.0, what="TG's random-partner control (the same group videos, patches and frames)"),
]}

#: the positive control's twin source (arms TG / RG): ``videos`` group videos (seeds ``first_seed`` ..), each
#: mined whole with patches of ``patch_size``; every pair cut as ``crop_size`` crops around the two patches
#: (a garment of 36-48 px mostly inside, like an fmnist_scenes image) at ``frames_per_pair`` frames. A budget
#: may override fields under ``"group_twins"``.
GROUP_TWINS: dict[str, Any] = {"videos": 24, "frames": 64, "size": 224, "object_size": (36, 48), "patch_size": 16,
                               "crop_size": 40, "frames_per_pair": 16, "first_seed": 1000}


# ------------------------------------------------------------------------------------------- helpers
def load_recipe(name: str = "simclr"):
    return load_script(f"recipes/{name}.py")


def _key(payload: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file (a torn last line, from a killed process, is skipped)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """One ``write`` of one line in append mode, so parallel processes do not interleave records."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(record, allow_nan=False) + "\n")


def recipe_parser():
    from mi_augment.ssl import train

    return train.make_parser("SimCLR", lr=0.3, weight_decay=1e-6)


def has_flag(flag: str) -> bool:
    """Whether the recipe takes ``flag`` (with one value)."""
    _, unknown = recipe_parser().parse_known_args([flag, "0.5"])
    return not unknown


def data_args(budget: dict[str, Any], dataset: str) -> list[str]:
    args = ["--dataset", dataset]
    if budget["train_subset"]:
        args += ["--train-subset", str(budget["train_subset"])]
    return args


def load_training_data(budget: dict[str, Any], dataset: str):
    from mi_augment.datasets.loading import load_dataset

    return load_dataset(dataset, train_subset=budget["train_subset"])


def load_eval_data(budget: dict[str, Any], dataset: str):
    """The labelled memory (all training images, or ``memory_subset`` of them) and the full test set."""
    from mi_augment.datasets.loading import load_dataset

    return load_dataset(dataset, train_subset=budget["memory_subset"], test_subset=budget["test_subset"])


# --------------------------------------------------------------------------------------- calibration
def pair_geometry(boxes: torch.Tensor, height: int, width: int) -> tuple[float, float]:
    """Mean IoU of view 0 with view 1 and mean crop area (fraction of the image) of boxes ``(N, 2, 4)``."""
    from mi_augment.pairs.sampler import box_iou_pairs

    iou = box_iou_pairs(boxes[:, 0], boxes[:, 1])
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]) / (height * width)
    return float(iou.mean()), float(area.mean())


def arm_views(budget: dict[str, Any], dataset: str, arm: str, scorer_run: Path | None = None):
    """The ``--augment mi`` views an arm trains with (its recipe flags, the budget's ``arm_flags`` first) and the
    budget's training data; an arm scored by an encoder gets the SimCLR run ``scorer_run``'s (its
    ``checkpoint.pt``). Returns ``(views, data)``."""
    from mi_augment.ssl.views import AugmentOptions, make_views

    flags = budget.get("arm_flags", {}).get(arm, ARMS[arm].flags)
    args, _ = recipe_parser().parse_known_args([*budget["recipe"], *data_args(budget, dataset), *flags])
    data = load_training_data(budget, dataset)
    options = AugmentOptions(crop_scale_min=args.crop_scale_min, mi_policy=args.mi_policy,
                             mi_candidates=args.mi_candidates, mi_photometric=args.mi_photometric,
                             mi_scorer=args.mi_scorer, mi_band=tuple(args.mi_band) if args.mi_band else None)
    parts = {}
    if scorer_run is not None:
        from benchmarks.content_coverage import load_scorer_parts

        encoder, head, temperature = load_scorer_parts(scorer_run)
        parts = {"encoder": encoder, "head": head, "temperature": temperature}
    return make_views("mi", size=data.image_size, channels=data.channels, options=options, **parts), data


def measure_p(budget: dict[str, Any], dataset: str, n_images: int, seed: int = 0, arm: str = "P",
              scorer_run: Path | None = None) -> dict[str, float]:
    """``arm``'s chosen pairs (``P`` by default) on the training images, through the very transform the arm
    trains with (``MIPairTransform(...)(x, return_info=True)``): mean pair IoU and mean crop area. An arm
    scored by an encoder (``F``) is scored by the SimCLR run ``scorer_run`` (its ``checkpoint.pt``)."""
    views, data = arm_views(budget, dataset, arm, scorer_run)
    images = data.train.images[:n_images].float() / 255.0
    g = torch.Generator().manual_seed(seed)
    boxes = []
    for chunk in images.split(256):
        _, info = views.pair(chunk, generator=g, return_info=True)
        boxes.append(info.params.boxes[:, :2])
    h, w = images.shape[-2:]
    iou, area = pair_geometry(torch.cat(boxes), h, w)
    return {"iou": iou, "area": area, "n_pairs": int(images.shape[0]), "image_size": [int(h), int(w)],
            "candidate_scale": list(views.scale)}


def random_crop_geometry(scale: tuple[float, float], height: int, width: int, n: int = 4096,
                         seed: int = 0) -> tuple[float, float]:
    """Mean pair IoU and crop area of two independent RandomResizedCrop boxes (the ``B`` / ``S`` views)."""
    from mi_augment.pairs.sampler import BoxSampler

    g = torch.Generator().manual_seed(seed)
    return pair_geometry(BoxSampler(scale=scale).sample((n, 2), height, width, generator=g), height, width)


def match_scale(target_iou: float, target_area: float, height: int, width: int, search_max: bool,
                step: float = 0.02) -> dict[str, Any]:
    """The RandomResizedCrop ``(scale_min, scale_max)`` whose independent pairs come closest to the target
    IoU and area (largest absolute error of the two minimised on 2,048 pairs, a coarse grid then a finer one
    around the best; the reported IoU, area and error are re-measured on 16,384 fresh pairs).
    ``search_max=False`` keeps ``scale_max = 1``."""
    def err(lo: float, hi: float, n: int = 2048, seed: int = 0) -> tuple[float, float, float]:
        iou, area = random_crop_geometry((lo, hi), height, width, n=n, seed=seed)
        return max(abs(iou - target_iou), abs(area - target_area)), iou, area

    def grid(los, his):
        best = None
        for lo in los:
            for hi in his:
                if lo <= hi:
                    e = err(lo, hi)
                    if best is None or e[0] < best[0][0]:
                        best = (e, lo, hi)
        return best

    def frange(a, b, s):
        n = int(round((b - a) / s))
        return [round(min(max(a + i * s, 0.01), 1.0), 4) for i in range(n + 1)]

    his = frange(0.3, 1.0, step * 2.5) if search_max else [1.0]
    best = grid(frange(0.02, 1.0, step * 2.5), his)
    (_, _, _), lo, hi = best
    fine_his = frange(max(lo, hi - 0.05), min(1.0, hi + 0.05), 0.01) if search_max else [1.0]
    best = grid(frange(max(0.01, lo - 0.05), min(1.0, lo + 0.05), 0.01), fine_his)
    _, lo, hi = best
    e, iou, area = err(lo, hi, n=16384, seed=1)  # checked on fresh, larger draws
    return {"scale_min": lo, "scale_max": hi, "iou": iou, "area": area, "max_error": e,
            "matched": e <= MATCH_TOLERANCE, "searched_scale_max": search_max}


def candidate_geometry(budget: dict[str, Any], dataset: str, n_images: int, seed: int = 0) -> dict[str, Any]:
    """The candidate pairs an ``--augment mi`` arm draws on the first ``n_images`` training images (the arm's
    sampler and candidate count, drawn by the transform's own plan step): per image and candidate, the pair's
    IoU and mean crop area (fraction of the image), as ``(n_images, K)`` tensors."""
    from mi_augment.pairs.sampler import box_iou_pairs

    views, data = arm_views(budget, dataset, "G_F")  # its plan step only: the band does not change the draws
    images = data.train.images[:n_images].float() / 255.0
    plan = views.pair.plan(images, generator=torch.Generator().manual_seed(seed))
    boxes = plan.boxes.double()  # (N, V, K, 4)
    h, w = images.shape[-2:]
    iou = box_iou_pairs(boxes[:, 0], boxes[:, 1])
    area = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])).mean(1) / (h * w)
    return {"iou": iou, "area": area}


def band_geometry(iou: torch.Tensor, area: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor,
                                                                                                     torch.Tensor]:
    """Expected mean kept IoU and area of ``BandPolicy(band=(lo, hi))`` over candidates ``iou, area (N, K)``
    for each band of ``lo, hi (M,)``: uniform among the candidates inside the band, else the nearest one (the
    policy's rule, in expectation over its uniform draw). Returns two ``(M,)`` tensors."""
    s, lo, hi = iou[None], lo[:, None, None], hi[:, None, None]  # (1, N, K), (M, 1, 1)
    inside = (s >= lo) & (s <= hi)
    distance = torch.maximum(lo - s, s - hi).clamp_min(0)
    nearest = torch.nn.functional.one_hot(distance.argmin(-1), s.shape[-1]).bool()
    keep = torch.where(inside.any(-1, keepdim=True), inside, nearest).double()
    weight = keep / keep.sum(-1, keepdim=True)
    return (weight * s).sum(-1).mean(-1), (weight * area[None]).sum(-1).mean(-1)


def match_band(target_iou: float, target_area: float, iou: torch.Tensor, area: torch.Tensor,
               step: float = 0.01) -> dict[str, Any]:
    """The IoU band ``(lo, hi)`` whose kept pairs (:func:`band_geometry` over candidates ``iou, area (N, K)``)
    come closest to the target IoU and area: the largest absolute error of the two minimised over every band
    of a ``step`` grid on [0, 1]."""
    grid = torch.arange(0, 1 + step / 2, step, dtype=torch.float64)
    lo, hi = torch.meshgrid(grid, grid, indexing="ij")
    ok = lo <= hi
    lo, hi = lo[ok], hi[ok]
    best = None
    for chunk in range(0, len(lo), 256):
        k_iou, k_area = band_geometry(iou, area, lo[chunk:chunk + 256], hi[chunk:chunk + 256])
        err = torch.maximum((k_iou - target_iou).abs(), (k_area - target_area).abs())
        i = int(err.argmin())
        if best is None or float(err[i]) < best[0]:
            best = (float(err[i]), round(float(lo[chunk + i]), 4), round(float(hi[chunk + i]), 4),
                    float(k_iou[i]), float(k_area[i]))
    e, b_lo, b_hi, k_iou, k_area = best
    return {"band": [b_lo, b_hi], "expected_iou": k_iou, "expected_area": k_area, "expected_error": e}


def match_natural_strength(images: torch.Tensor, seed: int = 0, iterations: int = 10, model=None) -> dict[str, Any]:
    """The ``NaturalIllumination`` strength whose brightness spread equals ColorJitter's (the baseline's
    ``color_jitter``, p 0.8 included), by bisection on log2(strength) in [0, 7]
    (:meth:`NaturalIllumination.matching`)."""
    from mi_augment.ssl.views import color_jitter
    from mi_augment.transforms.illumination import NaturalIllumination, brightness_spread

    def reference(x: torch.Tensor) -> torch.Tensor:
        return color_jitter(x, torch.Generator().manual_seed(seed))

    def spread(strength: float) -> float:
        out = NaturalIllumination(model, strength=strength)(images, generator=torch.Generator().manual_seed(seed))
        return brightness_spread(out, images)

    strength = NaturalIllumination.matching(reference, images, model=model, seed=seed, batched=True,
                                            strength_range=(1.0, 2.0**7), iterations=iterations).strength
    return {"strength": strength, "target_spread": brightness_spread(reference(images), images),
            "spread": spread(strength), "fitted_spread": spread(1.0)}


def calibrate(arm: str, budget_name: str, budget: dict[str, Any], dataset: str, jsonl: Path,
              runs: Path = ROOT / "runs" / "ablation") -> dict[str, Any]:
    """The calibration an arm needs (``S``: the matched scale; ``natural_matched``: the strength), computed
    once and stored in the JSONL."""
    n = budget["calibration_images"]
    key = _key({"calibration": arm, "dataset": dataset, "recipe": budget["recipe"], "train": budget["train_subset"],
                "n": n, "scale_max": has_flag("--crop-scale-max") if arm in ("S", "S_F") else None})
    for r in read_jsonl(jsonl):
        if r.get("kind") == "calibration" and r.get("key") == key:
            return r
    tic = time.perf_counter()
    if arm == "G_F":  # F's kept pairs as S_F's calibration measured them (B's seed-0 encoder), then the band
        f = calibrate("S_F", budget_name, budget, dataset, jsonl, runs)["F"]
        cand = candidate_geometry(budget, dataset, n)
        band = match_band(f["iou"], f["area"], cand["iou"], cand["area"])
        flags = ["--mi-band", str(band["band"][0]), str(band["band"][1])]
        budget_g = {**budget, "arm_flags": {**budget.get("arm_flags", {}), "G_F": [*ARMS["G_F"].flags, *flags]}}
        g = measure_p(budget_g, dataset, n, seed=1, arm="G_F")  # through the very transform, on fresh draws
        e = max(abs(g["iou"] - f["iou"]), abs(g["area"] - f["area"]))
        result = {"F": f, **band, "iou": g["iou"], "area": g["area"], "max_error": e, "matched": e <= MATCH_TOLERANCE}
    elif arm in ("S", "S_F"):
        target = "P" if arm == "S" else "F"
        run = None
        if arm == "S_F":  # F's pairs as a trained encoder of this budget scores them: B's seed-0 run
            found = sorted((runs / budget_name).glob(f"{dataset}-B-s0-*/checkpoint.pt"))
            if not found:
                raise RuntimeError(f"S_F's calibration measures F's pairs as B's seed-0 encoder of budget "
                                   f"{budget_name!r} scores them: run B seed 0 first (none under {runs / budget_name})")
            run = found[-1].parent
        p = measure_p(budget, dataset, n, arm=target, scorer_run=run)
        h, w = p["image_size"]
        result = {target: p, **match_scale(p["iou"], p["area"], h, w, search_max=has_flag("--crop-scale-max")),
                  **({"scorer_run": str(run)} if run else {})}
    else:
        data = load_training_data(budget, dataset)
        model = None
        if budget.get("held_out_clips"):  # the grid's own models, refitted without the held-out clips
            from mi_augment.perturbations import IlluminationModel

            paths = shift_grid.natural_models(budget, runs / budget_name / "natural_models")
            model = IlluminationModel.load(ROOT / paths["illumination_iso" if arm == "natural_iso" else "illumination"])
        result = match_natural_strength(data.train.images[:n].float() / 255.0, model=model)
    record = {"kind": "calibration", "key": key, "arm": arm, "dataset": dataset, "budget": budget_name, **result,
              "seconds": time.perf_counter() - tic}
    append_jsonl(jsonl, record)
    return record


def arm_flags(arm: str, budget_name: str, budget: dict[str, Any], dataset: str, jsonl: Path,
              motion_strength: float, runs: Path = ROOT / "runs" / "ablation") -> tuple[list[str], dict[str, Any] | None]:
    spec = ARMS[arm]
    if not spec.built:
        raise NotImplementedError(f"arm {arm!r} ({spec.what}) is not built yet: see {ISSUE}")
    if spec.warm_of:  # the flags (and calibration) of the arm it continues as
        return arm_flags(spec.warm_of, budget_name, budget, dataset, jsonl, motion_strength, runs)
    flags, cal = list(budget.get("arm_flags", {}).get(arm, spec.flags)), None
    if budget.get("held_out_clips") and arm.startswith("natural"):
        # leave the held-out clips out: models refitted on the training clips (shift_grid.natural_models)
        if not shift_grid.recipe_takes_models():
            raise NotImplementedError(f"arm {arm!r} on budget {budget_name!r} needs the recipe flags --illumination-model"
                                      " / --motion-model (models refitted without the held-out clips)")
        models = shift_grid.natural_models(budget, runs / budget_name / "natural_models")
        flags += ["--illumination-model", models["illumination_iso" if arm == "natural_iso" else "illumination"],
                  "--motion-model", models["motion"]]
    if arm in ("S", "S_F"):
        cal = calibrate(arm, budget_name, budget, dataset, jsonl, runs)
        flags += ["--crop-scale-min", str(cal["scale_min"])]
        if cal["searched_scale_max"]:
            flags += ["--crop-scale-max", str(cal["scale_max"])]
    elif arm == "G_F":
        cal = calibrate(arm, budget_name, budget, dataset, jsonl, runs)
        flags += ["--mi-band", str(cal["band"][0]), str(cal["band"][1])]
    elif arm in ("natural_matched", "natural_iso"):
        cal = calibrate(arm, budget_name, budget, dataset, jsonl, runs)
        flags += ["--natural-strength", str(cal["strength"]), "--natural-motion-strength", str(motion_strength)]
    elif arm in ("TG", "RG", "TGtrue", "TGmix"):
        cal = group_twins(budget_name, budget, jsonl, runs / "group_twins", variant="TG" if arm == "RG" else arm)
        flags += ["--twin-cache", str((ROOT / cal["path"]).resolve())]
    return flags, cal


def true_group_partners(result, video, generator: torch.Generator):
    """``result`` with each mined twin replaced by a random active, non-neighbouring patch on an object of the
    patch's own group (the generator's truth, no MI: arm ``TGtrue``); a patch on no object, or with no such
    partner, loses its pair."""
    from dataclasses import replace

    from mi_augment.datasets.group_video import label_patches
    from mi_augment.video.twins import neighbor_mask

    obj = label_patches(video, result.boxes, frame=int(result.frame_range[0]))
    group = torch.where(obj >= 0, video.groups[obj.clamp_min(0)], torch.full_like(obj, -1))
    p = result.num_patches
    allowed = result.active[None, :] & ~neighbor_mask(result.boxes) & ~torch.eye(p, dtype=torch.bool)
    twins = torch.full_like(result.twins, -1)
    for i in torch.nonzero((result.twins >= 0) & (group >= 0)).flatten().tolist():
        choices = torch.nonzero(allowed[i] & (group == group[i])).flatten()
        if choices.numel():
            twins[i] = choices[torch.randint(choices.numel(), (1,), generator=generator)]
    return replace(result, twins=twins)


def group_twins(budget_name: str, budget: dict[str, Any], jsonl: Path, folder: Path, variant: str = "TG"
                ) -> dict[str, Any]:
    """Mine the positive control's twins (:data:`GROUP_TWINS`, a budget's ``"group_twins"`` on top) once:
    a ``TwinPatchDataset`` file and its row-aligned random-partner control (``<stem>-random.json``), given to
    the recipe as ``--twin-cache``. The record (pairs, the share of twins on the patch's own group and a
    random partner's, per video) is stored in the JSONL as a calibration.

    ``variant`` (issue 22): ``"TG"`` (MI twins in same-class groups), ``"TGtrue"`` (the same videos and
    patches, each partner drawn from the patch's true group: no MI), ``"TGmix"`` (MI twins in groups of garments
    of random classes: co-motion without a shared label)."""
    if variant not in ("TG", "TGtrue", "TGmix"):
        raise ValueError(f"variant must be 'TG', 'TGtrue' or 'TGmix', got {variant!r}")
    settings = {**GROUP_TWINS, **budget.get("group_twins", {})}
    key = _key({"group_twins": settings, "version": 1, **({"variant": variant} if variant != "TG" else {})})
    path = folder / f"group_twins-{key}.json"
    control_path = path.with_name(path.stem + "-random.json")
    for r in read_jsonl(jsonl):
        if r.get("kind") == "calibration" and r.get("key") == key and path.is_file() and control_path.is_file():
            return r
    from mi_augment.datasets.group_video import make_group_video, twin_agreement
    from mi_augment.ssl.twins import matched_random_control
    from mi_augment.video.twins import TwinPatchDataset, mine_twin_patches

    tic = time.perf_counter()
    g = torch.Generator().manual_seed(0)
    twins, controls, videos = [], [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the all-pairs MI is many small kernels (docs/twin_patches.md, Performance)
    try:
        for i in range(settings["videos"]):
            seed = settings["first_seed"] + i
            video = make_group_video(frames=settings["frames"], size=settings["size"],
                                     object_size=tuple(settings["object_size"]), seed=seed,
                                     mixed_classes=variant == "TGmix")
            result = mine_twin_patches(video.frames, settings["patch_size"], cuts=None, max_frames=None)
            if variant == "TGtrue":
                result = true_group_partners(result, video, g)
            agreement = twin_agreement(video, result)
            kept, control = matched_random_control(result, g)
            for r, out in ((kept, twins), (control, controls)):
                out.append(TwinPatchDataset.from_result(r, video.frames, frames_per_pair=settings["frames_per_pair"],
                                                        crop_size=settings["crop_size"], source=f"group_video[{seed}]"))
            videos.append({"seed": seed, "pairs": int(kept.pairs().shape[0]), "same_group": agreement.same_group,
                           "chance_same_group": agreement.chance_same_group})
            print(f"  group video {i + 1}/{settings['videos']} (seed {seed}): {videos[-1]['pairs']} twin pairs, "
                  f"{agreement.same_group:.2f} on the patch's own group (random partner "
                  f"{agreement.chance_same_group:.2f})", flush=True)
    finally:
        torch.set_num_threads(threads)
    twin_set, control_set = TwinPatchDataset.concat(twins), TwinPatchDataset.concat(controls)
    if not len(twin_set):
        raise RuntimeError(f"no twin pairs in {settings['videos']} group video(s) ({settings}); the positive "
                           "control cannot run")
    control_set.save(control_path)  # the control first: the twins file existing means both are complete
    twin_set.save(path)
    n = len(videos)
    record = {"kind": "calibration", "key": key, "arm": variant, "dataset": "group_video", "budget": budget_name,
              "settings": settings, "path": os.path.relpath(path, ROOT), "pairs": sum(v["pairs"] for v in videos),
              "crops": len(twin_set), "same_group": sum(v["same_group"] for v in videos) / n,
              "chance_same_group": sum(v["chance_same_group"] for v in videos) / n, "videos": videos,
              "seconds": time.perf_counter() - tic}
    append_jsonl(jsonl, record)
    return record


# ------------------------------------------------------------------------------------------------ cells
@dataclass
class Cell:
    dataset: str
    arm: str  #: an arm name, "untrained", or "B_compute:<arm>"
    seed: int
    flags: list[str] = field(default_factory=list)
    epochs: int = 0
    calibration: dict[str, Any] | None = None

    def key(self, budget_name: str, budget: dict[str, Any]) -> str:
        # paths inside the checkout count relative to it, so a cell's key is the same on every machine
        flags = [os.path.relpath(f, ROOT) if f.startswith(str(ROOT) + os.sep) else f for f in self.flags]
        return _key({"budget": budget_name, "recipe": budget["recipe"], "train": budget["train_subset"],
                     "memory": budget["memory_subset"], "test": budget["test_subset"],
                     "linear_steps": budget["linear_steps"], "dataset": self.dataset, "arm": self.arm,
                     "seed": self.seed, "flags": flags, "epochs": self.epochs})


def evaluate(encoder, budget: dict[str, Any], dataset: str, device: torch.device) -> dict[str, float]:
    """The i.i.d. protocol, and on budgets with held-out clips every metric of issue 22's rule as well."""
    from mi_augment.ssl.evaluate import evaluate_frozen

    data = load_eval_data(budget, dataset).to(device)
    out = evaluate_frozen(encoder, data.memory, data.test, data.num_classes, device, linear_steps=budget["linear_steps"])
    if budget.get("held_out_clips"):
        out.update(shift_grid.shift_metrics(encoder, data.memory, data.num_classes, budget, device))
    return out


def build_initial_encoder(budget: dict[str, Any], dataset: str, seed: int):
    """The encoder a run of ``seed`` starts from: the recipe seeds the global RNG with ``seed``, loads the
    data (no global draws) and builds the encoder first."""
    from mi_augment.ssl.backbones import build_encoder

    args, _ = recipe_parser().parse_known_args([*budget["recipe"], *data_args(budget, dataset)])
    data = load_training_data(budget, dataset)
    torch.manual_seed(seed)
    return build_encoder(args.backbone, in_channels=data.channels, image_size=data.image_size, mean=data.mean,
                         std=data.std, patch_size=args.patch_size, cnn_width=args.cnn_width)


def run_cell(cell: Cell, budget_name: str, budget: dict[str, Any], runs: Path, device: torch.device) -> dict:
    from mi_augment.ssl.train import device_name, git_sha

    tic = time.perf_counter()
    record: dict[str, Any] = {"kind": "cell", "budget": budget_name, "dataset": cell.dataset, "arm": cell.arm,
                              "seed": cell.seed, "epochs": cell.epochs, "flags": cell.flags,
                              "git_sha": git_sha(), "device": device_name(device),
                              "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if cell.arm == "untrained":
        encoder = build_initial_encoder(budget, cell.dataset, cell.seed).to(device)
        record.update(train_seconds=0.0, steps=0, images_per_step=0, images_forwarded=0)
    else:
        out = runs / budget_name / f"{cell.dataset}-{cell.arm.replace(':', '_')}-s{cell.seed}-{cell.key(budget_name, budget)}"
        warm = cell.arm in ARMS and ARMS[cell.arm].warm_of is not None
        if warm and not (out / "results.json").is_file():
            warm_start(cell, budget_name, budget, runs, device, out)
        argv = [*budget["recipe"], *data_args(budget, cell.dataset), *cell.flags, "--seed", str(cell.seed),
                "--epochs", str(cell.epochs), "--out", str(out),
                *(["--resume"] if (out / "checkpoint.pt").is_file() else []), "--quiet", "--linear-epochs", "0",
                "--test-subset", "500", "--device", str(device), *(["--allow-config-change", "all"] if warm else [])]
        result = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() \
            else load_recipe("simclr").main(argv)
        if not result:
            raise RuntimeError(f"cell {cell.dataset}/{cell.arm}/seed {cell.seed} stopped before its last step")
        encoder = build_initial_encoder(budget, cell.dataset, cell.seed).to(device)
        encoder.load_state_dict(torch.load(out / "encoder.pt", map_location=device, weights_only=True))
        batch = result["config"]["batch_size"]
        # the recipe's own count (views, target and scoring passes, twins) when it records one
        per_step = result.get("images_per_step") or (int(round(ARMS[cell.arm.split(":")[-1]].images_per_sample * batch))
                                                     if cell.arm.split(":")[-1] in ARMS else 2 * batch)
        if cell.arm.startswith("B_compute"):
            per_step = 2 * batch
        record.update(train_seconds=result["train_seconds"], steps=result["steps"], images_per_step=per_step,
                      images_forwarded=per_step * result["steps"], final_loss=result["epoch_loss"][-1],
                      recipe_argv=argv, device=result["device"], git_sha=result["git_sha"])
    t_eval = time.perf_counter()
    record.update(evaluate(encoder, budget, cell.dataset, device))
    record["eval_seconds"] = time.perf_counter() - t_eval
    record["wall_seconds"] = time.perf_counter() - tic
    if cell.calibration is not None:
        record["calibration_key"] = cell.calibration["key"]
    record["key"] = cell.key(budget_name, budget)
    return record


def warm_start(cell: Cell, budget_name: str, budget: dict[str, Any], runs: Path, device: torch.device,
               out: Path) -> None:
    """Put the seed's shared ``B`` checkpoint at :data:`WARM_FRACTION` of the steps into ``out`` (trained once per
    seed with ``--stop-after``, kept in ``runs``), so the cell resumes from it with its own flags."""
    if (out / "checkpoint.pt").is_file():
        return  # resumed before, or interrupted after the switch: the cell's own checkpoint wins
    args, _ = recipe_parser().parse_known_args([*budget["recipe"], *data_args(budget, cell.dataset)])
    steps = cell.epochs * (len(load_training_data(budget, cell.dataset).train) // args.batch_size)
    half = max(1, int(steps * WARM_FRACTION))
    shared = runs / budget_name / f"{cell.dataset}-B_warm-s{cell.seed}-" \
        f"{_key({'budget': budget_name, 'recipe': budget['recipe'], 'seed': cell.seed, 'epochs': cell.epochs, 'stop': half})}"
    if not (shared / "stopped.json").is_file():
        argv = [*budget["recipe"], *data_args(budget, cell.dataset), *ARMS["B"].flags, "--seed", str(cell.seed),
                "--epochs", str(cell.epochs), "--out", str(shared), "--stop-after", str(half), "--quiet",
                "--linear-epochs", "0", "--test-subset", "500", "--device", str(device),
                *(["--resume"] if (shared / "checkpoint.pt").is_file() else [])]
        load_recipe("simclr").main(argv)
        atomic_write_bytes(shared / "stopped.json", json.dumps({"step": half, "of": steps}).encode())
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "checkpoint.pt", (shared / "checkpoint.pt").read_bytes())  # never a torn copy


def plan_cells(budget_name: str, budget: dict[str, Any], datasets: list[str], arms: list[str], seeds: list[int],
               epochs: int, jsonl: Path, compute_matched: bool, motion_strength: float,
               untrained: bool = True, runs: Path = ROOT / "runs" / "ablation") -> list[Cell]:
    """Every cell of the grid, most informative first: arm by arm (in the order given), seeds inner; the
    untrained rows last (cheap, and only needed for the summary) unless ``untrained=False``. The arm name
    ``untrained`` asks for those rows alone."""
    untrained = untrained or "untrained" in arms
    arms = [a for a in arms if a != "untrained"]
    for arm in arms:
        if arm not in ARMS:
            raise ValueError(f"unknown arm {arm!r}; expected some of {sorted(ARMS)}")
        if not ARMS[arm].built:
            raise NotImplementedError(f"arm {arm!r} ({ARMS[arm].what}) is not built yet: see {ISSUE}")
    cells = []
    for dataset in datasets:
        for arm in arms:
            if ARMS[arm].datasets is not None and dataset not in ARMS[arm].datasets:
                print(f"  {arm} runs on {', '.join(ARMS[arm].datasets)} only: no {arm} cells on {dataset}", flush=True)
                continue
            flags, cal = arm_flags(arm, budget_name, budget, dataset, jsonl, motion_strength, runs)
            for seed in seeds:
                cells.append(Cell(dataset, arm, seed, flags, epochs, cal))
            ratio = ARMS[arm].images_per_sample / ARMS["B"].images_per_sample
            if compute_matched and ratio > 1:
                for seed in seeds:
                    cells.append(Cell(dataset, f"B_compute:{arm}", seed, list(ARMS["B"].flags),
                                      int(math.ceil(epochs * ratio))))
        if untrained:
            cells += [Cell(dataset, "untrained", seed) for seed in seeds]
    return cells


# ---------------------------------------------------------------------------------------------- summary
def t_interval(diffs: list[float]) -> tuple[float, float, float, float]:
    """Mean, 95 % t CI (low, high) and the two-sided p-value of a paired-difference sample."""
    from scipy import stats

    n = len(diffs)
    mean = sum(diffs) / n
    if n < 2:
        return mean, float("nan"), float("nan"), float("nan")
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    se = sd / math.sqrt(n)
    half = float(stats.t.ppf(0.975, n - 1)) * se
    p = 1.0 if se == 0 and mean == 0 else (0.0 if se == 0 else float(2 * stats.t.sf(abs(mean / se), n - 1)))
    return mean, mean - half, mean + half, p


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given; NaN stays NaN)."""
    idx = sorted((i for i, p in enumerate(pvalues) if not math.isnan(p)), key=lambda i: pvalues[i])
    m, out, running = len(idx), list(pvalues), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def without_dirty_cells(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records less every cell run from a worktree with uncommitted changes (``git_sha`` ending in
    ``+dirty``), which a budget with ``clean_commits`` keeps out of its tables; says which it left out."""
    dirty = [r for r in records if r.get("kind") == "cell" and str(r.get("git_sha", "")).endswith("+dirty")]
    if dirty:
        print("  left out (run from uncommitted changes, +dirty): "
              + ", ".join(f"{r['arm']} seed {r['seed']}" for r in dirty), flush=True)
    return [r for r in records if not any(r is d for d in dirty)]


def summarise(records: list[dict[str, Any]], metrics: tuple[str, ...] | list[str] = METRICS,
              primary: tuple[str, ...] | list[str] = (PRIMARY,), controls: tuple[str, ...] | list[str] = (),
              families: dict[str, list[str]] | None = None,
              post_hoc: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Per dataset: mean / sd per arm, paired differences vs ``B`` and vs each matched control (95 % t CI,
    Holm across the comparisons of the dataset on each metric), the sanity gate and the verdicts.

    ``controls`` (the rule of 2026-12-07): those arms' checks against ``B`` stay out of the Holm family and keep
    their raw p-value. With several ``primary`` metrics each arm gets one verdict per metric. ``families``
    (``{name: arms}``) gives those arms' tests a Holm family of their own (a question pre-registered apart);
    every other arm's tests share the main family. ``post_hoc`` (``{arm: [control, ...]}``): comparisons added
    after the arm's numbers were seen; reported with their raw p (marked ``post_hoc``), in no Holm family and in
    no verdict."""
    post_hoc = post_hoc or {}
    cells = {}
    for r in records:
        if r.get("kind") == "cell":
            cells[(r["dataset"], r["arm"], r["seed"])] = r  # the latest record of a cell wins
    out: dict[str, Any] = {}
    for dataset in dict.fromkeys(d for d, _, _ in cells):
        order = {name: i for i, name in enumerate(ARMS)}  # B first, the arms in their order, untrained last
        arms = sorted(dict.fromkeys(a for d, a, _ in cells if d == dataset),
                      key=lambda a: (a == "untrained", order.get(a.split(":")[-1], len(order)), a))
        rows = []
        for arm in arms:
            rs = [cells[k] for k in cells if k[0] == dataset and k[1] == arm]
            row = {"arm": arm, "seeds": sorted(r["seed"] for r in rs), "images_per_step": rs[0]["images_per_step"],
                   "train_seconds": sum(r["train_seconds"] for r in rs) / len(rs),
                   "eval_seconds": sum(r["eval_seconds"] for r in rs) / len(rs)}
            for m in metrics:
                vals = [r[m] for r in rs if m in r and r[m] is not None]
                if vals:
                    mean = sum(vals) / len(vals)
                    row[m] = mean
                    row[m + "_sd"] = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) \
                        if len(vals) > 1 else 0.0
            rows.append(row)
        comparisons = []
        for arm in arms:
            base = arm.split(":")[0] if arm.startswith("B_compute") else arm
            if arm == "untrained":
                continue
            against = ["untrained"] if arm == "B" else (["B"] + [c for c in ARMS.get(base, Arm(base)).controls
                                                          if c != "B"] + list(post_hoc.get(arm, ())))
            for ctrl in against:
                ctrl_arm = f"B_compute:{arm}" if ctrl == "B_compute" else ctrl
                for m in metrics:
                    diffs = [cells[(dataset, arm, s)][m] - cells[(dataset, ctrl_arm, s)][m]
                             for (d, a, s) in cells if d == dataset and a == arm and (dataset, ctrl_arm, s) in cells
                             and cells[(dataset, arm, s)].get(m) is not None
                             and cells[(dataset, ctrl_arm, s)].get(m) is not None]
                    if diffs:
                        mean, lo, hi, p = t_interval(diffs)
                        comparisons.append({"arm": arm, "vs": ctrl_arm, "metric": m, "n": len(diffs), "mean": mean,
                                            "ci_low": lo, "ci_high": hi, "p": p, "diffs": diffs,
                                            **({"post_hoc": True} if ctrl in post_hoc.get(arm, ()) else {})})
        family_of = {a: name for name, members in (families or {}).items() for a in members}
        for m in metrics:  # Holm over the arm comparisons (not the sanity gate, not the controls) of each metric
            tests = [c for c in comparisons if c["metric"] == m and c["vs"] != "untrained" and c["arm"] not in controls
                     and not c.get("post_hoc")]
            for name in dict.fromkeys(family_of.get(c["arm"], "main") for c in tests):
                family = [c for c in tests if family_of.get(c["arm"], "main") == name]
                for c, adj in zip(family, holm([c["p"] for c in family])):
                    c["p_holm"], c["family"] = adj, name
        s_cal = [r for r in records if r.get("kind") == "calibration" and r.get("arm") == "S"
                 and r.get("dataset") == dataset]
        s_matched = bool(s_cal[-1]["matched"]) if s_cal else None
        sf_cal = [r for r in records if r.get("kind") == "calibration" and r.get("arm") == "S_F"
                  and r.get("dataset") == dataset]
        sf_matched = bool(sf_cal[-1]["matched"]) if sf_cal else None
        gate = {c["metric"]: c for c in comparisons if c["vs"] == "untrained" and c["metric"] in METRICS}
        gate_ok = bool(gate) and all(c["ci_low"] > 0 for c in gate.values()) if gate else False
        verdicts = {}
        for arm in arms:
            if arm in ("B", "untrained") or arm.startswith("B_compute"):
                continue
            if arm in controls:
                verdicts[arm] = "control (raw p, not in the Holm family)"
                continue
            per_metric = {m: verdict([c for c in comparisons if c["arm"] == arm and c["metric"] == m
                                      and c["vs"] != "untrained" and not c.get("post_hoc")], gate_ok) for m in primary}
            # a matched control that missed its target decides nothing (the rule: "no verdict against it is
            # drawn"): the arm cannot be said to help; a loss against B alone still stands
            unmatched = None
            if s_matched is False and any(c["vs"] == "S" and c["arm"] == arm for c in comparisons):
                unmatched = "inconclusive (S not matched to P within 0.02)"
            if sf_matched is False and any(c["vs"] in ("S_F", "W_S_F") and c["arm"] == arm
                                                            for c in comparisons):  # W_S_F continues as S_F
                unmatched = "inconclusive (S_F not matched to F within 0.02)"
            if unmatched:
                per_metric = {m: v if v == "hurts" else unmatched for m, v in per_metric.items()}
            verdicts[arm] = per_metric[primary[0]] if len(primary) == 1 else per_metric
        out[dataset] = {"rows": rows, "comparisons": comparisons, "sanity_gate_passed": gate_ok, "verdicts": verdicts,
                        "S_matched": s_matched}
    return out


def verdict(comparisons: list[dict[str, Any]], gate_ok: bool) -> str:
    """The pre-registered rule (docs/results.md): ``helps`` when every comparison (vs B and the matched
    controls) on the primary metric is positive with Holm-adjusted p < 0.05; ``hurts`` when the one vs B is
    negative with Holm-adjusted p < 0.05; else ``no detectable difference``. Nothing counts before the
    sanity gate (B beats the untrained encoder on every metric, CIs excluding zero)."""
    if not gate_ok:
        return "inconclusive (B does not clearly beat the untrained encoder)"
    if not comparisons or any(math.isnan(c.get("p_holm", float("nan"))) for c in comparisons):
        return "inconclusive (too few seeds or missing controls)"
    if all(c["mean"] > 0 and c["p_holm"] < ALPHA for c in comparisons):
        return "helps"
    vs_b = [c for c in comparisons if c["vs"] == "B"]
    if vs_b and vs_b[0]["mean"] < 0 and vs_b[0]["p_holm"] < ALPHA:
        return "hurts"
    return "no detectable difference"


def markdown(summary: dict[str, Any]) -> str:
    lines = []
    for dataset, s in summary.items():
        comp = {(c["arm"], c["vs"], c["metric"]): c for c in s["comparisons"]}
        lines += [f"**{dataset}** (sanity gate {'passed' if s['sanity_gate_passed'] else 'NOT passed'}; "
                  "the B row's differences are against the untrained encoder)", "",
                  "| arm | seeds | kNN@20 | kNN@200 | linear | Δ kNN@20 vs B [95 % CI] (Holm p) | "
                  "Δ kNN@20 vs control | Δ linear vs B | images/step | train s | verdict |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]

        def fmt(c):
            if c is None:
                return ""
            p = c.get("p_holm", c["p"])
            return f"{c['mean']:+.2f} [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}] ({p:.3f})"

        for row in s["rows"]:
            arm = row["arm"]
            vals = " | ".join(f"{row[m]:.2f} ± {row[m + '_sd']:.2f}" if m in row else "-" for m in METRICS)
            ref = "untrained" if arm == "B" else "B"
            controls = [c for (a, v, m), c in comp.items() if a == arm and m == PRIMARY and v not in ("B", "untrained")]
            ctrl = "; ".join(f"vs {c['vs']} {fmt(c)}" for c in controls)
            lines.append(f"| {arm} | {len(row['seeds'])} | {vals} | {fmt(comp.get((arm, ref, PRIMARY)))} | {ctrl} | "
                         f"{fmt(comp.get((arm, ref, 'linear_top1')))} | {row['images_per_step']} | "
                         f"{row['train_seconds']:.0f} | {s['verdicts'].get(arm, '')} |")
        lines.append("")
    return "\n".join(lines)


def figure(summary: dict[str, Any], path: Path) -> Path | None:
    """Bars: each arm's paired difference to ``B`` on the primary metric, with its 95 % t CI, per dataset."""
    from mi_augment.figures import pyplot, save_figure

    panels = [(d, [c for c in s["comparisons"] if c["vs"] == "B" and c["metric"] == PRIMARY])
              for d, s in summary.items()]
    panels = [(d, cs) for d, cs in panels if cs]
    if not panels:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), squeeze=False)
    for ax, (dataset, cs) in zip(axes[0], panels):
        x = range(len(cs))
        means = [c["mean"] for c in cs]
        err = [[c["mean"] - c["ci_low"] if not math.isnan(c["ci_low"]) else 0 for c in cs],
               [c["ci_high"] - c["mean"] if not math.isnan(c["ci_high"]) else 0 for c in cs]]
        ax.bar(x, means, yerr=err, capsize=4, color=["C2" if m > 0 else "C3" for m in means])
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(list(x), [c["arm"] for c in cs], rotation=45, ha="right")
        gate = "" if summary[dataset]["sanity_gate_passed"] else " (sanity gate not passed: no verdicts)"
        ax.set(title=dataset + gate, ylabel="Δ kNN@20 vs B (points, 95 % CI)")
    fig.tight_layout()
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", choices=sorted(BUDGETS), default="tiny")
    p.add_argument("--arms", default=None, help=f"comma-separated arms (default: the budget's); known: {sorted(ARMS)}")
    p.add_argument("--datasets", default=None, help="comma-separated datasets (default: the budget's)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the budget's)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per cell (default: the budget's)")
    p.add_argument("--compute-matched", action="store_true",
                   help="also train B for the extra encoder images an arm forwards per step")
    p.add_argument("--matched-motion-strength", type=float, default=1.0,
                   help="natural_matched: the motion model's strength (the illumination strength is calibrated)")
    p.add_argument("--jsonl", default=None, help="results file (default: benchmarks/results/ablation_<budget>.jsonl)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "ablation"), help="folder for the training runs")
    p.add_argument("--cell-json-dir", default=None, help="also write each finished cell as its own JSON here")
    p.add_argument("--skip-untrained", action="store_true",
                   help="leave out the untrained-encoder rows (parallel runs: one process does them with --arms untrained)")
    p.add_argument("--calibrate-only", action="store_true", help="compute the S / natural_matched calibrations, train nothing")
    p.add_argument("--summary-only", action="store_true", help="summarise the JSONL, train nothing")
    p.add_argument("--figure", default=None, help="bar chart path (default: docs/figures/ablation_<budget>.png)")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    budget = BUDGETS[args.budget]
    shift_grid.use_training_clips(budget)
    arms = args.arms.split(",") if args.arms else budget["arms"]
    datasets = args.datasets.split(",") if args.datasets else budget["datasets"]
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else budget["seeds"]
    epochs = args.epochs or budget["epochs"]
    jsonl = Path(args.jsonl) if args.jsonl else RESULTS_DIR / f"ablation_{args.budget}.jsonl"
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    command = " ".join(["python", "benchmarks/ablation.py", *(argv if argv is not None else sys.argv[1:])])
    print(f"ablation: {command}\n  budget {args.budget}: datasets {datasets}, arms {arms}, seeds {seeds}, "
          f"{epochs} epochs; recipe {budget['recipe']}", flush=True)

    if not args.summary_only:
        cells = plan_cells(args.budget, budget, datasets, arms, seeds, epochs, jsonl, args.compute_matched,
                           args.matched_motion_strength, untrained=not args.skip_untrained, runs=Path(args.runs))
        for r in read_jsonl(jsonl):
            if r.get("kind") == "calibration":
                print(f"  calibration {r['dataset']} {r['arm']}: " + json.dumps(
                    {k: v for k, v in r.items() if k not in ("kind", "key", "P")}), flush=True)
        if not args.calibrate_only:
            done = {r["key"] for r in read_jsonl(jsonl) if r.get("kind") == "cell"}
            for cell in cells:
                if cell.key(args.budget, budget) in done:
                    continue
                record = run_cell(cell, args.budget, budget, Path(args.runs), device)
                append_jsonl(jsonl, record)
                if args.cell_json_dir:
                    atomic_write_bytes(Path(args.cell_json_dir) / f"{cell.dataset}-{cell.arm.replace(':', '_')}"
                                       f"-s{cell.seed}.json", json.dumps(record, indent=1).encode())
                print(f"  {cell.dataset:14s} {cell.arm:16s} seed {cell.seed}: "
                      + "  ".join(f"{m} {record[m]:.2f}" for m in METRICS if m in record)
                      + f"  ({record['train_seconds']:.0f} s train, {record['eval_seconds']:.0f} s eval)", flush=True)
    records = [r for r in read_jsonl(jsonl) if r.get("kind") != "cell" or r.get("budget") == args.budget]
    if budget.get("clean_commits"):
        records = without_dirty_cells(records)
    summary = summarise(records, budget.get("metrics", METRICS), budget.get("primary", (PRIMARY,)),
                        budget.get("controls", ()), budget.get("families"), budget.get("post_hoc"))
    table = markdown(summary) if "primary" not in budget else shift_grid.markdown(summary, budget, records)
    claims = shift_grid.claim_tables(summary) if "primary" in budget else None
    report = {"command": command, "budget": args.budget, "jsonl": str(jsonl), "summary": summary,
              "calibrations": [r for r in records if r.get("kind") == "calibration"], "markdown": table,
              **({"claims_markdown": claims} if claims else {})}
    atomic_write_bytes(jsonl.with_name(jsonl.stem + "_summary.json"), json.dumps(report, indent=1).encode())
    # the default figure is a tracked file of the checkout: a run that trains cells leaves it alone, so that the
    # worktree its cells run from stays clean for the next invocation (--summary-only or --figure draws it)
    draw = args.summary_only or args.figure or not budget.get("clean_commits")
    fig = figure(summary, Path(args.figure) if args.figure else FIGURES_DIR / f"ablation_{args.budget}.png") \
        if draw else None
    print("\n" + table + (f"\nfigure: {fig}" if fig else ""), flush=True)
    if claims:
        print("\nOne table per claim (the README's):\n\n" + claims, flush=True)
    return report


if __name__ == "__main__":
    main()
