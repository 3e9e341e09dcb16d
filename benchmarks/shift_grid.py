"""Issue 22's grid: evidence where the claim lives. Helpers of ``benchmarks/ablation.py --budget cpu_shift``.

* **Where the footage comes from.** ``fmnist_scenes`` is rebuilt with backgrounds from
  :data:`mi_augment.datasets.shifts.TRAINING_CLIPS` only; :data:`~mi_augment.datasets.shifts.HELD_OUT_CLIPS`
  are never seen by a training image, and natural models are refitted without them (leave clips out: an arm
  whose models were fitted on a clip is never scored on it).
* **What every cell is scored on** (:func:`shift_metrics`, beside the i.i.d. protocol): retrieval top-1 of
  tracked patches on the held-out clips at gaps 4 / 16 / 64 (:func:`mi_augment.ssl.evaluate.track_retrieval`,
  chance and track counts recorded), and kNN@20 on the two shifted test sets of
  :mod:`mi_augment.datasets.shifts` (new backgrounds; measured relighting), with the same labelled memory.
* **Natural models for the grid** (:func:`natural_models`): illumination and motion refitted on the training
  clips, and ``natural_iso``'s hand-set isotropic photometric density (same dimensions, no fitted shape).
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
GAPS = (4, 16, 64)
#: the new rule's primary metrics (docs/results.md, rule of 2026-12-07); i.i.d. kNN@20 stays secondary
PRIMARY_METRICS = ("retrieval_top1_gap16", "knn_top1_k20_new_backgrounds", "knn_top1_k20_relit")
SHIFT_METRICS = (
    "retrieval_top1_gap4",
    "retrieval_top1_gap16",
    "retrieval_top1_gap64",
    "knn_top1_k20_new_backgrounds",
    "knn_top1_k20_relit",
)


def clip_paths(names: tuple[str, ...]) -> list[Path]:
    from mi_augment.datasets.samples import sample_path

    return [sample_path(n) for n in names]


def use_training_clips(budget: dict[str, Any]) -> None:
    """Point ``fmnist_scenes`` at the budget's training clips (its documented ``MI_AUGMENT_SCENE_CLIPS``), so
    no training or memory image shows a held-out clip; the scenes cache is keyed by the clips."""
    if budget.get("scene_clips"):
        os.environ["MI_AUGMENT_SCENE_CLIPS"] = os.pathsep.join(
            str(p) for p in clip_paths(budget["scene_clips"])
        )


@functools.lru_cache(maxsize=2)
def shifted_sets(held_out: tuple[str, ...], seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The two shifted test sets: ``{"new_backgrounds": (images, labels), "relit": (images, labels)}``, both
    10,000 images, deterministic from ``seed``; built once and kept as ``.npz`` beside the scenes' cache
    (keyed
    by the clips, the scenes' training clips and the seed), so a cell does not rebuild them."""
    import hashlib
    import io
    import json

    import numpy as np

    from mi_augment.core.artifact import atomic_write_bytes
    from mi_augment.datasets.loading import fashion_mnist, load_dataset
    from mi_augment.datasets.scenes import default_cache_dir
    from mi_augment.datasets.shifts import measured_changes, new_background_test_set, relight

    clips = clip_paths(held_out)
    ident = {
        "version": 1,
        "held_out": [[p.name, p.stat().st_size] for p in clips],
        "seed": seed,
        "scene_clips": os.environ.get("MI_AUGMENT_SCENE_CLIPS", ""),
    }
    path = default_cache_dir() / f"shifts-{hashlib.sha1(json.dumps(ident).encode()).hexdigest()[:16]}.npz"
    names = ("new_backgrounds", "relit")
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {
                n: (torch.from_numpy(z[f"{n}_images"].copy()), torch.from_numpy(z[f"{n}_labels"].copy()))
                for n in names
            }
    _, garments = fashion_mnist()
    new_bg = new_background_test_set(
        (garments.images[:, 0].numpy(), garments.labels.numpy()), clips, seed=seed
    )
    test = load_dataset("fmnist_scenes").test
    model, vectors = measured_changes(clips)
    out = {"new_backgrounds": new_bg, "relit": (relight(test.images, model, vectors, seed=seed), test.labels)}
    buffer = io.BytesIO()
    np.savez(buffer, **{f"{n}_{k}": t.numpy() for n in names for k, t in zip(("images", "labels"), out[n])})
    atomic_write_bytes(path, buffer.getvalue())  # a temporary file, then a rename
    return out


def shift_metrics(encoder, memory, num_classes: int, budget: dict[str, Any], device) -> dict[str, Any]:
    """Retrieval on the held-out clips and kNN@20 under both shifts, for one frozen encoder."""
    from mi_augment.datasets.loading import ImageSet
    from mi_augment.ssl.evaluate import extract_features, knn_accuracies, track_retrieval

    held_out = tuple(budget["held_out_clips"])
    out: dict[str, Any] = {}
    train_f, train_y = extract_features(encoder, memory, device)
    for name, (images, labels) in shifted_sets(held_out).items():
        test_f, test_y = extract_features(encoder, ImageSet(images, labels).to(device), device)
        out[f"knn_top1_k20_{name}"] = knn_accuracies(train_f, train_y, test_f, test_y, num_classes, (20,))[20]
    encoder.image_size = budget.get("image_size", 32)
    retrieval = track_retrieval(encoder, clip_paths(held_out), GAPS, device=device)
    for g in GAPS:
        out[f"retrieval_top1_gap{g}"] = retrieval["mean"][str(g)]["top1"]
    out["retrieval"] = {
        "mean": retrieval["mean"],
        "settings": retrieval["settings"],
        "clips": [{k: c[k] for k in ("clip", "frames", "starts", "gaps")} for c in retrieval["clips"]],
    }
    return out


def isotropic_illumination(reference):
    """``natural_iso``'s model: a hand-set Gaussian over the same parameters as ``reference`` (gain, gamma,
    shading), zero mean and one variance for all (the mean of the fitted variances), no correlations: the
    fitted *amount* without the fitted *shape*. Its strength is then matched like natural_matched's."""
    from mi_augment.perturbations import IlluminationModel
    from mi_augment.perturbations.densities import GaussianMixtureDensity

    draws = reference.params_to_vector(reference.sample(20_000, generator=torch.Generator().manual_seed(0)))
    dim = draws.shape[1]
    variance = float(draws.var(0).mean())
    density = GaussianMixtureDensity.from_parameters(
        torch.ones(1), torch.zeros(1, dim), torch.eye(dim)[None] * variance
    )
    return IlluminationModel(density, max_side=reference.config["max_side"])


def natural_models(budget: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Illumination and motion refitted on the training clips only (leave the held-out clips out), and the
    isotropic control's model; saved under ``folder`` (outside git) and returned with their paths."""
    from mi_augment.perturbations import IlluminationModel, MotionModel

    folder.mkdir(parents=True, exist_ok=True)
    clips = clip_paths(tuple(budget["scene_clips"]))
    paths = {
        "illumination": folder / "illumination_loco.json",
        "motion": folder / "motion_loco.json",
        "illumination_iso": folder / "illumination_iso.json",
    }
    if not paths["illumination"].is_file():
        IlluminationModel().fit(clips).save(paths["illumination"])
    if not paths["motion"].is_file():
        MotionModel().fit(clips).save(paths["motion"])
    if not paths["illumination_iso"].is_file():
        isotropic_illumination(IlluminationModel.load(paths["illumination"])).save(paths["illumination_iso"])
    fitted_on = {
        k: IlluminationModel.load(p).fit_info.get("sources", {}) if k == "illumination" else None
        for k, p in paths.items()
    }
    held = {Path(p).name for p in clip_paths(tuple(budget["held_out_clips"]))}
    leaked = held & set(fitted_on["illumination"] or {})
    if leaked:
        raise RuntimeError(f"refitted illumination model saw held-out clips {sorted(leaked)}")
    return {k: os.path.relpath(p, ROOT) if str(p).startswith(str(ROOT)) else str(p) for k, p in paths.items()}


def detectable_effect(sd: float, seeds: int, tests: int, power: float = 0.8, alpha: float = 0.05) -> float:
    """Smallest paired mean difference a two-sided paired t-test detects with ``power`` at Holm's first step
    (level ``alpha / tests``), for a paired SD ``sd`` over ``seeds`` seeds (the usual t approximation)."""
    from scipy import stats

    df = seeds - 1
    return (
        (float(stats.t.ppf(1 - alpha / (2 * tests), df)) + float(stats.t.ppf(power, df)))
        * sd
        / math.sqrt(seeds)
    )


@functools.lru_cache(maxsize=1)
def recipe_takes_models() -> bool:
    """Whether the recipes take a fitted model file per natural model (``--illumination-model PATH``): the
    natural arms of a leave-clips-out grid cannot train without it."""
    from mi_augment.ssl import train

    _, unknown = train.make_parser("SimCLR", lr=0.3, weight_decay=1e-6).parse_known_args(
        ["--illumination-model", "x.json"]
    )
    return not unknown


def _fmt(c: dict[str, Any] | None) -> str:
    if c is None:
        return ""
    p = c.get("p_holm", c["p"])
    tag = "Holm p" if "p_holm" in c else "raw p, post hoc" if c.get("post_hoc") else "raw p"
    return f"{c['mean']:+.2f} [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}] ({tag} {p:.3f})"


def markdown(summary: dict[str, Any], budget: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """The rule's tables: per arm the primary metrics (retrieval top-1 at each gap, kNN@20 under both shifts
    and its drop from i.i.d.), the paired differences against ``B`` and the matched controls, the verdicts;
    the chance level and track counts of retrieval (the same for every encoder: tracking does not use it)."""
    lines = []
    for dataset, s in summary.items():
        comp = {(c["arm"], c["vs"], c["metric"]): c for c in s["comparisons"]}
        lines += [
            f"**{dataset}** (sanity gate {'passed' if s['sanity_gate_passed'] else 'NOT passed'}; "
            "B's differences are against the untrained encoder; partial rows are labelled by their seeds)",
            "",
            "| arm | seeds | retrieval top-1 Δ4 / Δ16 / Δ64 | kNN@20 i.i.d. | new backgrounds (drop) | "
            "relit (drop) | Δ retrieval@16 vs B | Δ new backgrounds vs B | Δ relit vs B | vs control "
            "(retrieval@16) | verdicts |",
            "|---|---:|---|---:|---|---|---|---|---|---|---|",
        ]
        for row in s["rows"]:
            arm = row["arm"]
            ref = "untrained" if arm == "B" else "B"

            def val(m, row=row):
                return f"{row[m]:.2f}" if m in row else "-"

            retrieval = " / ".join(val(f"retrieval_top1_gap{g}") for g in GAPS)
            shifts = []
            for m in ("knn_top1_k20_new_backgrounds", "knn_top1_k20_relit"):
                drop = f" ({row['knn_top1_k20'] - row[m]:+.2f})" if m in row and "knn_top1_k20" in row else ""
                shifts.append(val(m) + drop)
            controls = "; ".join(
                f"vs {c['vs']} {_fmt(c)}"
                for (a, v, m), c in comp.items()
                if a == arm and m == PRIMARY_METRICS[0] and v not in ("B", "untrained")
            )
            verdicts = s["verdicts"].get(arm, "")
            if isinstance(verdicts, dict):
                verdicts = "; ".join(
                    f"{m.replace('knn_top1_k20_', 'kNN ')}: {v}" for m, v in verdicts.items()
                )
            lines.append(
                f"| {arm} | {len(row['seeds'])} | {retrieval} | {val('knn_top1_k20')} | {shifts[0]} | "
                f"{shifts[1]} | {_fmt(comp.get((arm, ref, 'retrieval_top1_gap16')))} | "
                f"{_fmt(comp.get((arm, ref, 'knn_top1_k20_new_backgrounds')))} | "
                f"{_fmt(comp.get((arm, ref, 'knn_top1_k20_relit')))} | {controls} | {verdicts} |"
            )
        cells = [
            r for r in records if r.get("kind") == "cell" and r.get("dataset") == dataset and "retrieval" in r
        ]
        if cells:
            mean = cells[-1]["retrieval"]["mean"]
            lines += [
                "",
                "Retrieval gallery (every encoder; held-out clips "
                + ", ".join(budget["held_out_clips"])
                + "): "
                + "; ".join(
                    f"Δ{g}: {mean[str(g)]['tracks']:.0f} tracks per clip (pooled over its start frames), "
                    f"chance "
                    f"{mean[str(g)]['chance']:.2f} %"
                    for g in GAPS
                ),
            ]
        lines.append("")
    return "\n".join(lines)


#: the README's words for the grid's arms (docs/results.md has each arm's definition)
ARM_LABELS = {
    "B": "baseline SimCLR views", "P": "pixel-MI pairs (the library's default)",
    "F": "feature-MI pairs (the encoder's MI, max)", "S_F": "crops scale-matched to F (control)",
    "G_F": "overlap band matched to F (control, post hoc)", "natural": "natural models, fitted strength",
    "natural_matched": "natural models, ColorJitter's strength", "natural_iso": "isotropic photometric control",
    "natural_fitted_jitter": "natural models + the baseline's jitter", "TG": "video MI twins",
    "RG": "video random partners (control)", "TGtrue": "video true-group partners (control)",
    "TGmix": "video MI twins, mixed-class groups", "W_F": "warm start, then feature-MI pairs",
    "W_S_F": "warm start, then S_F (control)", "W_O": "warm start, then the garment oracle",
    "W_I": "warm start, then the largest overlap (control)", "W_N": "warm start, then MI neighbours (NNCLR-style)",
    "untrained": "untrained encoder",
}

_CLAIMS = (
    ("Invariance to real nuisances: track retrieval top-1 on held-out clips", ("retrieval_top1_gap16",),
     ("retrieval_top1_gap4", "retrieval_top1_gap16", "retrieval_top1_gap64"), "gap 4 / 16 / 64 frames"),
    ("Accuracy under real shift: kNN@20", ("knn_top1_k20_new_backgrounds", "knn_top1_k20_relit"),
     ("knn_top1_k20_new_backgrounds", "knn_top1_k20_relit"), "new backgrounds / relit by measured changes"),
    ("i.i.d. accuracy (secondary): kNN@20 and linear probe", ("knn_top1_k20", "linear_top1"),
     ("knn_top1_k20", "linear_top1"), "kNN@20 / linear"),
)


_SHORT = {"retrieval_top1_gap16": "gap 16", "knn_top1_k20_new_backgrounds": "new backgrounds",
          "knn_top1_k20_relit": "relit", "knn_top1_k20": "kNN@20", "linear_top1": "linear"}


def _secondary(c: dict[str, Any] | None) -> str:
    """A secondary metric's reading against ``B`` (no verdict of the rule): higher / lower when the Holm p
    (a control's raw p) is below 0.05, else no detectable difference."""
    if c is None:
        return ""
    if c.get("p_holm", c["p"]) < 0.05:
        return "higher (secondary)" if c["mean"] > 0 else "lower (secondary)"
    return "no detectable difference (secondary)"


def _verdict_of(verdicts: Any, metric: str) -> str:
    if isinstance(verdicts, dict):
        return verdicts.get(metric, "")
    return verdicts or ""


def claim_tables(summary: dict[str, Any], labels: dict[str, str] | None = None) -> str:
    """One table per claim (invariance, shift, i.i.d.), each row an arm with its values, its paired difference
    against ``B`` on the claim's metrics (95 % CI; Holm p for hypotheses, raw p for controls) and its verdicts;
    arms with a ``helps`` verdict on the claim first, then by the difference. Says so when nothing helps."""
    labels = {**ARM_LABELS, **(labels or {})}
    lines = []
    for dataset, s in summary.items():
        comp = {(c["arm"], c["vs"], c["metric"]): c for c in s["comparisons"]}
        rows = {r["arm"]: r for r in s["rows"]}
        for title, tested, shown, what in _CLAIMS:
            header = ["arm", "seeds", what] + [f"Δ {_SHORT[m]} vs B" for m in tested] + ["verdict"]
            lines += [f"**{title}** ({dataset})", "", "| " + " | ".join(header) + " |",
                      "|" + "---|" * len(header)]

            def key(arm: str, s=s, comp=comp, tested=tested) -> tuple:
                helps = any(_verdict_of(s["verdicts"].get(arm), m) == "helps"
                            or _secondary(comp.get((arm, "B", m))).startswith("higher") for m in tested)
                d = comp.get((arm, "B", tested[0]))
                return (arm == "untrained", arm == "B", not helps, -(d["mean"] if d else 0.0))

            helped = False
            for arm in sorted(rows, key=key):
                row = rows[arm]
                vals = " / ".join(f"{row[m]:.2f}" if m in row else "-" for m in shown)
                diffs = [_fmt(comp.get((arm, "B", m))) if arm not in ("B", "untrained") else "" for m in tested]
                if arm in ("B", "untrained"):
                    verdict = "reference" if arm == "B" else ""
                elif isinstance(s["verdicts"].get(arm), dict):
                    found = [_verdict_of(s["verdicts"][arm], m) or _secondary(comp.get((arm, "B", m))) for m in tested]
                    verdict = found[0] if len(set(found)) == 1 else "; ".join(
                        f"{_SHORT[m]}: {v}" for m, v in zip(tested, found))
                    helped |= "helps" in verdict or "higher" in verdict
                else:
                    verdict = _verdict_of(s["verdicts"].get(arm), tested[0]).replace(
                        "control (raw p, not in the Holm family)", "control (raw p)")
                lines.append(f"| {labels.get(arm, arm)} | {len(row['seeds'])} | {vals} | " + " | ".join(diffs)
                             + f" | {verdict} |")
            lines += ["", "Nothing helps on this claim." if not helped else "", ""]
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1]))
