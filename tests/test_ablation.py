"""The ablation protocol (issue 11): frozen evaluation, matched controls, statistics, the driver, the GPU script."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

from mi_augment.datasets.loading import ImageSet
from mi_augment.ssl.evaluate import evaluate_frozen, knn_accuracies, knn_top1, linear_probe_lbfgs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ablation(load_script):
    return load_script("benchmarks/ablation.py")


def _clusters(n: int, seed: int, dim: int = 8, classes: int = 3):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centres = torch.eye(dim)[:classes] * 3
    return centres[labels] + torch.randn(n, dim, generator=g), labels


# ------------------------------------------------------------------------------------------ evaluation
def test_knn_accuracies_equal_knn_top1_for_each_k():
    xtr, ytr = _clusters(120, 0)
    xte, yte = _clusters(60, 1)
    accs = knn_accuracies(xtr, ytr, xte, yte, 3, ks=(5, 20, 200))
    for k in (5, 20, 200):
        assert accs[k] == pytest.approx(knn_top1(xtr, ytr, xte, yte, 3, k=k))


def test_knn_accuracies_rejects_bad_ks():
    x, y = _clusters(10, 0)
    with pytest.raises(ValueError, match="ks"):
        knn_accuracies(x, y, x, y, 3, ks=(0,))


def test_lbfgs_probe_is_deterministic_and_learns_separable_classes():
    xtr, ytr = _clusters(300, 0)
    xte, yte = _clusters(150, 1)
    a = linear_probe_lbfgs(xtr, ytr, xte, yte, 3, steps=30)
    assert a == linear_probe_lbfgs(xtr, ytr, xte, yte, 3, steps=30)
    assert a > 95
    shuffled = linear_probe_lbfgs(xtr, ytr[torch.randperm(300, generator=torch.Generator().manual_seed(0))], xte, yte,
                                  3, steps=30)
    assert shuffled < 70
    with pytest.raises(ValueError, match="steps"):
        linear_probe_lbfgs(xtr, ytr, xte, yte, 3, steps=0)


def test_evaluate_frozen_reports_every_k_and_the_probe():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 2
    images = (labels.view(-1, 1, 1, 1) * 200 + torch.randint(0, 40, (64, 1, 8, 8), generator=g)).to(torch.uint8)
    memory, test = ImageSet(images[:48], labels[:48]), ImageSet(images[48:], labels[48:])
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    out = evaluate_frozen(encoder, memory, test, 2, "cpu", ks=(3, 20), linear_steps=20)
    assert set(out) == {"knn_top1_k3", "knn_top1_k20", "linear_top1"}
    assert out["linear_top1"] == 100.0
    assert "linear_top1" not in evaluate_frozen(encoder, memory, test, 2, "cpu", linear_steps=0)


# ------------------------------------------------------------------------------------------ statistics
def test_t_interval_agrees_with_scipy(ablation):
    from scipy import stats

    diffs = [0.4, 1.1, -0.2, 0.9, 0.6]
    mean, lo, hi, p = ablation.t_interval(diffs)
    ref = stats.ttest_1samp(diffs, 0.0)
    assert p == pytest.approx(ref.pvalue)
    assert mean == pytest.approx(sum(diffs) / 5) and lo < mean < hi
    assert mean - lo == pytest.approx(hi - mean)


def test_holm_adjustment(ablation):
    assert ablation.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert ablation.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def _records(deltas: dict[str, list[float]], base: float = 70.0, untrained: float = 60.0):
    out = []
    for seed in range(5):
        noise = [0.0, 0.3, -0.2, 0.1, -0.1][seed]
        out.append({"kind": "cell", "dataset": "d", "arm": "untrained", "seed": seed, "images_per_step": 0,
                    "train_seconds": 0.0, "eval_seconds": 1.0,
                    **{m: untrained + noise for m in ("knn_top1_k20", "knn_top1_k200", "linear_top1")}})
        out.append({"kind": "cell", "dataset": "d", "arm": "B", "seed": seed, "images_per_step": 512,
                    "train_seconds": 1.0, "eval_seconds": 1.0,
                    **{m: base + 2 * noise for m in ("knn_top1_k20", "knn_top1_k200", "linear_top1")}})
        for arm, d in deltas.items():
            out.append({"kind": "cell", "dataset": "d", "arm": arm, "seed": seed, "images_per_step": 512,
                        "train_seconds": 1.0, "eval_seconds": 1.0,
                        **{m: base + 2 * noise + d[seed] for m in ("knn_top1_k20", "knn_top1_k200", "linear_top1")}})
    return out


def test_verdicts_follow_the_rule(ablation):
    up = [1.0, 1.2, 0.9, 1.1, 1.05]
    s = ablation.summarise(_records({"S": [0.0, 0.1, -0.1, 0.05, 0.0], "P": up,
                                     "natural": [-2.0, -2.2, -1.9, -2.1, -2.0]}))["d"]
    assert s["sanity_gate_passed"]
    assert s["verdicts"]["P"] == "helps"
    assert s["verdicts"]["natural"] == "hurts"
    assert s["verdicts"]["S"] == "no detectable difference"
    # P beats B but not its matched control S: not "helps"
    s = ablation.summarise(_records({"S": up, "P": [u + e for u, e in zip(up, [0.3, -0.3, 0.2, -0.2, 0.0])]}))["d"]
    assert s["verdicts"]["P"] != "helps"
    # B no better than the untrained encoder: nothing counts
    s = ablation.summarise(_records({"P": up}, base=60.0))["d"]
    assert not s["sanity_gate_passed"] and s["verdicts"]["P"].startswith("inconclusive")


def test_the_shift_rule_keeps_controls_out_of_holm_and_gives_a_verdict_per_primary_metric(ablation):
    """Rule of 2026-12-07: Holm over hypothesis tests only; one verdict per primary metric."""
    up = [1.0, 1.2, 0.9, 1.1, 1.05]
    records = _records({"natural_iso": up, "natural_matched": [2 * u for u in up], "P": [0.1, -0.1, 0.0, 0.05, -0.05]})
    for r in records:  # a primary metric that only natural_matched moves
        r["retrieval_top1_gap16"] = r["knn_top1_k20"] + (3.0 if r["arm"] == "natural_matched" else 0.0)
    metrics = ("knn_top1_k20", "knn_top1_k200", "linear_top1", "retrieval_top1_gap16")
    s = ablation.summarise(records, metrics, ("knn_top1_k20", "retrieval_top1_gap16"), ("natural_iso",))["d"]
    by = {(c["arm"], c["vs"], c["metric"]): c for c in s["comparisons"]}
    control = by[("natural_iso", "B", "knn_top1_k20")]
    assert "p_holm" not in control and s["verdicts"]["natural_iso"].startswith("control")
    # the family is natural_matched (vs B and vs natural_iso) and P: three tests
    hyp = by[("natural_matched", "B", "retrieval_top1_gap16")]
    assert hyp["p_holm"] >= hyp["p"] and hyp["p_holm"] <= 3 * hyp["p"] + 1e-12
    assert s["verdicts"]["natural_matched"]["retrieval_top1_gap16"] == "helps"
    assert s["verdicts"]["P"]["knn_top1_k20"] == "no detectable difference"


def test_a_preregistered_family_gets_its_own_holm_correction(ablation):
    records = _records({"P": [1.0, 1.2, 0.9, 1.1, 1.05], "TG": [0.5, 0.7, 0.4, 0.6, 0.55],
                        "natural": [0.2, -0.1, 0.3, 0.0, 0.1]})
    main = ablation.summarise(records)["d"]
    apart = ablation.summarise(records, families={"video": ["TG"]})["d"]
    by_main = {(c["arm"], c["vs"], c["metric"]): c for c in main["comparisons"]}
    by_apart = {(c["arm"], c["vs"], c["metric"]): c for c in apart["comparisons"]}
    tg = by_apart[("TG", "B", "knn_top1_k20")]
    assert tg["family"] == "video" and tg["p_holm"] == pytest.approx(tg["p"])  # alone in its family
    assert by_main[("TG", "B", "knn_top1_k20")]["p_holm"] > tg["p"]  # shared with P and natural otherwise
    assert by_apart[("P", "B", "knn_top1_k20")]["family"] == "main"


def test_a_post_hoc_comparison_keeps_its_raw_p_out_of_holm_and_out_of_the_verdict(ablation):
    """F against G_F (added after F's numbers were seen): reported, raw p, marked; F's Holm family and verdict
    are what they were without it."""
    f = [-1.0, -1.2, -0.9, -1.1, -1.05]
    records = _records({"F": f, "G_F": [v - 2.0 for v in f], "P": [0.1, -0.1, 0.0, 0.05, -0.05]})
    before = ablation.summarise(records, controls=("G_F",))["d"]
    after = ablation.summarise(records, controls=("G_F",), post_hoc={"F": ["G_F"]})["d"]
    by = {(c["arm"], c["vs"], c["metric"]): c for c in after["comparisons"]}
    added = by[("F", "G_F", "knn_top1_k20")]
    assert added["post_hoc"] and "p_holm" not in added and added["mean"] == pytest.approx(2.0)
    old = {(c["arm"], c["vs"], c["metric"]): c for c in before["comparisons"]}
    assert by[("F", "B", "knn_top1_k20")]["p_holm"] == old[("F", "B", "knn_top1_k20")]["p_holm"]
    assert after["verdicts"] == before["verdicts"] and after["verdicts"]["F"] == "hurts"


def test_an_unmatched_s_f_leaves_f_and_its_warm_start_inconclusive(ablation):
    """S_F's calibration missed F's pairs: F against S_F, and W_F against W_S_F (which continues as S_F), decide
    nothing, so neither arm can be said to help; a matched calibration leaves the rule's verdict."""
    up = [1.0, 1.2, 0.9, 1.1, 1.05]
    records = _records({"F": up, "S_F": [0.0] * 5, "W_F": up, "W_S_F": [0.0] * 5})
    calibration = {"kind": "calibration", "arm": "S_F", "dataset": "d", "matched": False}
    unmatched = ablation.summarise([*records, calibration], controls=("S_F", "W_S_F"))["d"]["verdicts"]
    assert unmatched["F"] == unmatched["W_F"] == "inconclusive (S_F not matched to F within 0.02)"
    matched = ablation.summarise([*records, {**calibration, "matched": True}], controls=("S_F", "W_S_F"))["d"]
    assert matched["verdicts"]["F"] == matched["verdicts"]["W_F"] == "helps"
    # a loss against B stands whatever the control: no verdict is drawn against the unmatched control only
    down = _records({"F": [-v for v in up], "S_F": [0.0] * 5})
    assert ablation.summarise([*down, calibration], controls=("S_F",))["d"]["verdicts"]["F"] == "hurts"


def test_claim_tables_give_one_table_per_claim_leading_with_what_helps(ablation):
    from benchmarks.shift_grid import claim_tables

    records = _records({"natural": [2.0, 2.2, 1.9, 2.1, 2.05], "P": [0.1, -0.1, 0.0, 0.05, -0.05]})
    metrics = ("knn_top1_k20", "linear_top1", "retrieval_top1_gap16", "knn_top1_k20_new_backgrounds",
               "knn_top1_k20_relit")
    for r in records:
        r["retrieval_top1_gap16"] = r["knn_top1_k20"]
        r["knn_top1_k20_new_backgrounds"] = r["knn_top1_k20_relit"] = r["knn_top1_k20"] - 1.0
        r["linear_top1"] = r.get("linear_top1", r["knn_top1_k20"])
    primary = ("retrieval_top1_gap16", "knn_top1_k20_new_backgrounds", "knn_top1_k20_relit")
    text = claim_tables(ablation.summarise(records, metrics, primary))
    tables = text.split("**")[1::2]
    assert [t.split(":")[0] for t in tables] == ["Invariance to real nuisances", "Accuracy under real shift",
                                                 "i.i.d. accuracy (secondary)"]
    invariance = text.split("**Accuracy under real shift")[0]
    rows = [line for line in invariance.splitlines() if line.startswith("| ") and "seeds" not in line]
    assert rows[0].startswith("| natural models, fitted strength") and rows[0].endswith("| helps |")
    assert "Nothing helps" not in invariance


def test_cells_from_uncommitted_changes_are_left_out_of_a_clean_budgets_tables(ablation, capsys):
    records = _records({"P": [1.0, 1.2, 0.9, 1.1, 1.05]})
    p_cells = [r for r in records if r["arm"] == "P"]
    p_cells[0]["git_sha"] = "abc1234+dirty"
    kept = ablation.without_dirty_cells(records)
    assert len(kept) == len(records) - 1 and p_cells[0] not in kept
    assert "P seed" in capsys.readouterr().out
    assert ablation.summarise(kept)["d"]["rows"][1]["seeds"] == sorted(r["seed"] for r in p_cells[1:])
    assert ablation.BUDGETS["cpu_shift"]["clean_commits"]


def test_detectable_effect_shrinks_with_seeds_and_grows_with_tests():
    from benchmarks.shift_grid import detectable_effect

    assert detectable_effect(0.5, 8, 6) < detectable_effect(0.5, 5, 6)
    assert detectable_effect(0.5, 8, 6) > detectable_effect(0.5, 8, 1)
    assert detectable_effect(1.0, 8, 6) == pytest.approx(2 * detectable_effect(0.5, 8, 6))


def test_summary_markdown_and_figure(ablation, tmp_path):
    summary = ablation.summarise(_records({"S": [0.0, 0.1, -0.1, 0.05, 0.0], "P": [1.0, 1.2, 0.9, 1.1, 1.05]}))
    table = ablation.markdown(summary)
    assert "| P | 5 |" in table and "helps" in table
    path = ablation.figure(summary, tmp_path / "fig.png")
    assert path.is_file() and path.stat().st_size > 1000


# --------------------------------------------------------------------------------------- matched controls
def test_match_scale_recovers_a_known_random_crop(ablation):
    iou, area = ablation.random_crop_geometry((0.45, 1.0), 32, 32, seed=5)
    m = ablation.match_scale(iou, area, 32, 32, search_max=False)
    assert m["matched"] and m["max_error"] <= 0.02
    assert abs(m["scale_min"] - 0.45) <= 0.05 and m["scale_max"] == 1.0


def test_match_band_finds_the_band_whose_kept_pairs_give_a_target_geometry(ablation):
    """G_F's calibration: over given candidates, the band search returns a band whose expected kept IoU and area
    (uniform inside the band, else the nearest candidate) equal a target made by a known band on its grid."""
    g = torch.Generator().manual_seed(3)
    iou = torch.rand(512, 8, generator=g, dtype=torch.float64)
    area = (0.3 + 0.6 * iou + 0.1 * torch.rand(512, 8, generator=g, dtype=torch.float64)).clamp(0, 1)
    t_iou, t_area = ablation.band_geometry(iou, area, torch.tensor([0.55], dtype=torch.float64),
                                           torch.tensor([0.8], dtype=torch.float64))
    m = ablation.match_band(float(t_iou), float(t_area), iou, area)
    assert m["expected_error"] < 1e-9
    assert abs(m["expected_iou"] - float(t_iou)) < 1e-9 and abs(m["expected_area"] - float(t_area)) < 1e-9
    # a band holding every candidate keeps them all: the candidates' own means
    all_iou, all_area = ablation.band_geometry(iou, area, torch.tensor([0.0], dtype=torch.float64),
                                               torch.tensor([1.0], dtype=torch.float64))
    assert torch.allclose(all_iou, iou.mean()) and torch.allclose(all_area, area.mean())


def test_s_arm_reproduces_p_pair_iou_and_area(ablation, tmp_path):
    """The must-show check: S's calibrated RandomResizedCrop matches P's measured pairs within 0.02."""
    budget = ablation.BUDGETS["tiny"]
    cal = ablation.calibrate("S", "tiny", budget, "synthetic", tmp_path / "r.jsonl")
    assert cal["matched"], cal
    h, w = cal["P"]["image_size"]
    iou, area = ablation.random_crop_geometry((cal["scale_min"], cal["scale_max"]), h, w, seed=11)
    assert abs(iou - cal["P"]["iou"]) <= 0.02 and abs(area - cal["P"]["area"]) <= 0.02
    again = ablation.calibrate("S", "tiny", budget, "synthetic", tmp_path / "r.jsonl")
    assert again["key"] == cal["key"]
    assert len(ablation.read_jsonl(tmp_path / "r.jsonl")) == 1  # stored once, then reused


@pytest.mark.slow
def test_s_f_matches_the_pairs_f_keeps_under_the_budgets_b_encoder(ablation, tmp_path):
    """S_F, F's own control: RandomResizedCrop matched to the pairs F keeps when B's seed-0 encoder scores them;
    refused, by name, before that encoder exists."""
    budget, runs = ablation.BUDGETS["tiny"], tmp_path / "runs"
    with pytest.raises(RuntimeError, match="B seed 0 first"):
        ablation.calibrate("S_F", "tiny", budget, "synthetic", tmp_path / "r.jsonl", runs)
    ablation.main(["--budget", "tiny", "--arms", "B", "--seeds", "0", "--skip-untrained", "--jsonl",
                   str(tmp_path / "r.jsonl"), "--runs", str(runs), "--figure", str(tmp_path / "f.png")])
    cal = ablation.calibrate("S_F", "tiny", budget, "synthetic", tmp_path / "r.jsonl", runs)
    assert cal["matched"] and "F" in cal and cal["scorer_run"].startswith(str(runs))
    h, w = cal["F"]["image_size"]
    iou, area = ablation.random_crop_geometry((cal["scale_min"], cal["scale_max"]), h, w, n=16384, seed=11)
    assert abs(iou - cal["F"]["iou"]) <= 0.02 and abs(area - cal["F"]["area"]) <= 0.02
    # G_F, F's geometric control: the band found over the candidates keeps, through the transform itself on
    # fresh draws, the IoU and area the search expected; its flags carry the band
    g = ablation.calibrate("G_F", "tiny", budget, "synthetic", tmp_path / "r.jsonl", runs)
    assert g["F"] == cal["F"]
    assert abs(g["iou"] - g["expected_iou"]) <= 0.03 and abs(g["area"] - g["expected_area"]) <= 0.03
    assert g["max_error"] == max(abs(g["iou"] - g["F"]["iou"]), abs(g["area"] - g["F"]["area"]))
    flags, _ = ablation.arm_flags("G_F", "tiny", budget, "synthetic", tmp_path / "r.jsonl", 1.0, runs)
    assert flags[flags.index("--mi-band") + 1:][:2] == [str(b) for b in g["band"]]


def test_natural_matched_strength_matches_colorjitter_spread(ablation):
    x = torch.rand(128, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    cal = ablation.match_natural_strength(x, iterations=8)
    assert cal["strength"] > 1 and cal["fitted_spread"] < cal["target_spread"]
    assert cal["spread"] == pytest.approx(cal["target_spread"], rel=0.15)


# ------------------------------------------------------------------------------------------------ driver
@pytest.mark.slow
def test_in_step_scoring_and_neighbour_arms_run_and_record_their_compute(ablation, tmp_path):
    """F and C forward a third image per sample (the scoring pass); N forwards two; all beside B."""
    ablation.main(["--budget", "tiny", "--arms", "B,F,C,N", "--seeds", "0", "--jsonl", str(tmp_path / "r.jsonl"),
                         "--runs", str(tmp_path / "runs"), "--figure", str(tmp_path / "f.png")])
    cells = {r["arm"]: r for r in ablation.read_jsonl(tmp_path / "r.jsonl") if r.get("kind") == "cell"}
    assert {"B", "F", "C", "N", "untrained"} <= set(cells)
    assert cells["F"]["images_per_step"] == cells["C"]["images_per_step"] == 3 * cells["B"]["images_per_step"] // 2
    assert cells["N"]["images_per_step"] == cells["B"]["images_per_step"]


@pytest.mark.slow
def test_warm_start_arms_continue_the_seeds_shared_b_checkpoint_with_their_own_flags(ablation, tmp_path):
    """W_F: B for the first half of the steps (one shared checkpoint per seed), then F; the run records the
    switch and ends at the same step count as B."""
    runs, jsonl = tmp_path / "runs", tmp_path / "r.jsonl"
    ablation.main(["--budget", "tiny", "--arms", "B,W_F", "--seeds", "0", "--skip-untrained", "--jsonl", str(jsonl),
                   "--runs", str(runs), "--figure", str(tmp_path / "f.png")])
    cells = {r["arm"]: r for r in ablation.read_jsonl(jsonl) if r.get("kind") == "cell"}
    assert cells["W_F"]["steps"] == cells["B"]["steps"]
    assert cells["W_F"]["images_per_step"] == 3 * cells["B"]["images_per_step"] // 2
    shared = list((runs / "tiny").glob("synthetic-B_warm-s0-*/stopped.json"))
    assert len(shared) == 1 and json.loads(shared[0].read_text())["step"] == cells["B"]["steps"] // 2
    run = next((runs / "tiny").glob("synthetic-W_F-s0-*"))
    changes = json.dumps(json.loads((run / "results.json").read_text())["config_changes"])
    assert "augment" in changes and "features" in changes  # the recipe's record of the switch


def test_w_n_continues_the_shared_b_checkpoint_with_an_empty_support_queue(ablation, tmp_path):
    """W_N: B's checkpoint holds no support queue; the MI neighbours start from it with an empty one and the
    run records the switch to --positives mi-neighbour."""
    runs, jsonl = tmp_path / "runs", tmp_path / "r.jsonl"
    ablation.main(["--budget", "tiny", "--arms", "B,W_N", "--seeds", "0", "--skip-untrained", "--jsonl", str(jsonl),
                   "--runs", str(runs), "--figure", str(tmp_path / "f.png")])
    cells = {r["arm"]: r for r in ablation.read_jsonl(jsonl) if r.get("kind") == "cell"}
    assert cells["W_N"]["steps"] == cells["B"]["steps"]
    run = next((runs / "tiny").glob("synthetic-W_N-s0-*"))
    changes = json.dumps(json.loads((run / "results.json").read_text())["config_changes"])
    assert "mi-neighbour" in changes


@pytest.mark.slow
def test_tgtrue_partners_sit_on_the_true_group_and_tgmix_groups_mix_classes(ablation, tmp_path):
    """The video route's new controls (issue 22): TGtrue pairs each patch with a patch of its own group (no
    MI), TGmix mines twins in groups whose garments have random classes."""
    from mi_augment.datasets.group_video import make_group_video

    budget, jsonl = ablation.BUDGETS["tiny"], tmp_path / "r.jsonl"
    true = ablation.group_twins("tiny", budget, jsonl, tmp_path / "twins", variant="TGtrue")
    mined = ablation.group_twins("tiny", budget, jsonl, tmp_path / "twins", variant="TG")
    assert true["arm"] == "TGtrue" and true["key"] != mined["key"]
    assert true["pairs"] == 0 or true["same_group"] == pytest.approx(1.0)
    mix = ablation.group_twins("tiny", budget, jsonl, tmp_path / "twins", variant="TGmix")
    assert mix["arm"] == "TGmix" and (ablation.ROOT / mix["path"]).resolve().is_file()
    video = make_group_video(frames=12, size=128, object_size=(28, 36), seed=1000, mixed_classes=True)
    per_group = [set(video.labels[video.groups == g].tolist()) for g in range(video.num_groups)]
    assert any(len(labels) > 1 for labels in per_group)
    with pytest.raises(ValueError, match="variant"):
        ablation.group_twins("tiny", budget, jsonl, tmp_path / "twins", variant="TGx")


@pytest.mark.slow
def test_positive_control_arms_train_on_group_video_twins_and_their_aligned_random_partners(ablation, tmp_path):
    """TG / RG: twins mined once from group videos (recorded with how often a twin sits on the patch's own
    group), the random control row-aligned with them, both arms forwarding the same images per step."""
    from mi_augment.video.twins import TwinPatchDataset

    budget = {**ablation.BUDGETS["tiny"]}
    jsonl = tmp_path / "r.jsonl"
    record = ablation.group_twins("tiny", budget, jsonl, tmp_path / "twins")
    assert record["pairs"] > 0 and record["same_group"] > record["chance_same_group"]
    path = (ablation.ROOT / record["path"]).resolve()
    assert path.parent == (tmp_path / "twins").resolve()
    twins = TwinPatchDataset.load(path)
    control = TwinPatchDataset.load(path.with_name(path.stem + "-random.json"))
    assert len(twins) == len(control) and torch.equal(twins.info["frame"], control.info["frame"])
    assert not torch.equal(twins.info["twin"], control.info["twin"])
    again = ablation.group_twins("tiny", budget, jsonl, tmp_path / "twins")  # mined once
    assert again["key"] == record["key"] and sum(1 for _ in ablation.read_jsonl(jsonl)) == 1

    ablation.main(["--budget", "tiny", "--arms", "TG,RG", "--seeds", "0", "--jsonl", str(tmp_path / "a.jsonl"),
                   "--runs", str(tmp_path / "runs"), "--figure", str(tmp_path / "f.png"), "--skip-untrained"])
    cells = {r["arm"]: r for r in ablation.read_jsonl(tmp_path / "a.jsonl") if r.get("kind") == "cell"}
    assert set(cells) == {"TG", "RG"}
    assert cells["TG"]["images_per_step"] == cells["RG"]["images_per_step"]
    assert "--no-twin-shipped" in cells["TG"]["flags"] and "random" in cells["RG"]["flags"]
    assert list((tmp_path / "runs" / "group_twins").glob("group_twins-*.json"))  # beside the runs, not in the checkout


def test_unknown_arm_is_named(ablation, tmp_path):
    with pytest.raises(ValueError, match="'Q'"):
        ablation.main(["--budget", "tiny", "--arms", "Q", "--jsonl", str(tmp_path / "r.jsonl")])


def test_dataset_bound_arms_are_planned_only_where_they_can_run(ablation, tmp_path, capsys):
    """The garment oracle needs fmnist_scenes' garment boxes: no O cells elsewhere, its overlap control I runs."""
    budget = ablation.BUDGETS["tiny"]
    cells = ablation.plan_cells("tiny", budget, ["synthetic"], ["O", "I"], [0, 1], 1, tmp_path / "r.jsonl", False, 1.0,
                                untrained=False, runs=tmp_path)
    assert [(c.arm, c.seed) for c in cells] == [("I", 0), ("I", 1)]
    assert "O runs on fmnist_scenes only" in capsys.readouterr().out


@pytest.mark.slow
def test_driver_appends_cells_and_skips_finished_ones(ablation, tmp_path):
    argv = ["--budget", "tiny", "--arms", "B", "--seeds", "0", "--jsonl", str(tmp_path / "r.jsonl"),
            "--runs", str(tmp_path / "runs"), "--figure", str(tmp_path / "f.png"),
            "--cell-json-dir", str(tmp_path / "cells")]
    ablation.main(argv)
    records = ablation.read_jsonl(tmp_path / "r.jsonl")
    assert sorted(r["arm"] for r in records) == ["B", "untrained"]
    b = next(r for r in records if r["arm"] == "B")
    assert b["images_per_step"] == 64 and b["images_forwarded"] == 64 * b["steps"] and b["device"]
    assert {"knn_top1_k20", "knn_top1_k200", "linear_top1", "wall_seconds"} <= set(b)
    assert sorted(p.name for p in (tmp_path / "cells").iterdir()) == ["synthetic-B-s0.json",
                                                                       "synthetic-untrained-s0.json"]
    ablation.main(argv)  # finished: nothing retrained or appended
    assert len(ablation.read_jsonl(tmp_path / "r.jsonl")) == 2
    summary = json.loads((tmp_path / "r_summary.json").read_text())
    assert "synthetic" in summary["summary"]


@pytest.mark.slow
def test_tiny_budget_end_to_end(ablation, tmp_path):
    report = ablation.main(["--budget", "tiny", "--jsonl", str(tmp_path / "r.jsonl"), "--runs", str(tmp_path / "runs"),
                            "--figure", str(tmp_path / "f.png")])
    rows = report["summary"]["synthetic"]["rows"]
    assert {r["arm"] for r in rows} == {"B", "S", "P", "natural_matched", "untrained"}
    assert all(len(r["seeds"]) == 2 for r in rows)
    assert (tmp_path / "f.png").is_file()


@pytest.mark.slow
def test_gpu_script_dry_run(tmp_path):
    """benchmarks/run_gpu_ablation.sh --dry-run: the device script's plan, on the CPU, CI-sized."""
    # LIMIT: the script's own deadline (cells left when it passes are skipped, the summary still runs)
    env = {**os.environ, "OUT": str(tmp_path / "out"), "RUNS": str(tmp_path / "runs"), "LIMIT": "150"}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "run_gpu_ablation.sh"), "--dry-run"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cells = sorted(p.name for p in (tmp_path / "out").glob("cells/*.json"))
    assert cells and all(c.startswith("synthetic-") for c in cells)
    assert (tmp_path / "out" / "ablation_summary.json").is_file()
