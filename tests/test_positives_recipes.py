"""``--positives views|mi-neighbour|twin`` and in-step scoring (``--mi-scorer features|crop-image``) in the six
recipes: every method trains with every positives mode on tiny synthetic data and records the images it
forwards; the neighbour module, the feature-map adapter and the losses' additions behave as documented; bad
settings fail with errors naming them."""

from __future__ import annotations

import json

import pytest
import torch

from mi_augment.ssl import train
from mi_augment.ssl.backbones import build_encoder
from mi_augment.ssl.features import FeatureMaps
from mi_augment.ssl.heads import NeighbourPositives
from mi_augment.ssl.losses import info_nce, nnclr_loss
from tests.test_recipes import HEAD, METHODS, TINY, load_recipe, write_twin_cache

SMALL = ["--backbone", "small_cnn", "--cnn-width", "8"]
#: methods with a momentum (target) encoder: it forwards both views again, without gradients
HAS_TARGET = {"moco", "byol"}


def run(method: str, out, *extra: str) -> dict:
    return load_recipe(method).main([*TINY, *HEAD[method], *SMALL, "--out", str(out), *extra])


@pytest.fixture(scope="module")
def twin_cache(tmp_path_factory) -> str:
    pytest.importorskip("mi_augment.video.twins")
    return write_twin_cache(tmp_path_factory.mktemp("twins"), pairs=6)


@pytest.mark.parametrize("positives", ["views", "mi-neighbour", "twin"])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_with_every_positives_mode(method, positives, tmp_path, request):
    extra = ["--positives", positives]
    if positives == "twin":
        extra += ["--twin-cache", request.getfixturevalue("twin_cache")]
    result = run(method, tmp_path, *extra)
    assert result["steps"] == 2 and all(torch.isfinite(torch.tensor(result["epoch_loss"])))
    parts = json.loads((tmp_path / "results.json").read_text())["images_per_step_parts"]
    batch = 8
    assert parts["views"] == 2 * batch
    assert parts["target"] == (2 * batch if method in HAS_TARGET else 0)
    # the prepared cache holds 6 unique pairs: at most one crop of each per batch
    assert parts["twins"] == (2 * 6 if positives == "twin" else 0)
    assert result["images_per_step"] == sum(parts.values())
    if positives == "mi-neighbour":
        ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
        ids = ckpt["model"]["neighbours.queue._ids"]
        assert sorted(ids[ids >= 0].tolist()) == list(range(16))  # one epoch: every image's embedding queued


@pytest.mark.parametrize("method,scorer", [("simclr", "features"), ("byol", "features"), ("moco", "crop-image")])
def test_in_step_scoring_runs_and_counts_one_forward_per_image(method, scorer, tmp_path):
    result = run(method, tmp_path, "--augment", "mi", "--mi-scorer", scorer, "--mi-policy", "band")
    assert result["steps"] == 2
    assert result["images_per_step_parts"]["scoring"] == 8


@pytest.mark.parametrize("control", ["views", "random"])
def test_twin_controls_forward_as_many_images_as_twins(control, tmp_path, twin_cache):
    twins = run("simclr", tmp_path / "twin", "--positives", "twin", "--twin-cache", twin_cache)
    other = run("simclr", tmp_path / control, "--positives", "twin", "--twin-cache", twin_cache, "--twin-control",
                control)
    if control == "random":
        assert other["images_per_step_parts"] == twins["images_per_step_parts"]
        assert other["twins"]["unique_pairs"] == twins["twins"]["unique_pairs"]
    else:  # a second view pair of the image batch, no video: as many pairs as --twin-batch says
        assert other["images_per_step_parts"]["twins"] == 2 * 8 and "twins" not in other
        matched = run("simclr", tmp_path / "matched", "--positives", "twin", "--twin-control", "views",
                      "--twin-batch", str(twins["images_per_step_parts"]["twins"] // 2))
        assert matched["images_per_step_parts"] == twins["images_per_step_parts"]


def test_augment_twin_is_baseline_views_with_twin_positives(tmp_path, twin_cache, capsys):
    result = run("byol", tmp_path, "--augment", "twin", "--twin-cache", twin_cache)
    assert result["twins"]["unique_pairs"] == 6 and result["twins"]["crops"] == 12
    assert "6 unique pairs (12 crops) from 1 clip(s)" in capsys.readouterr().out


def test_neighbour_run_resumes_to_the_same_weights(tmp_path):
    """The support queue is saved in the checkpoint: a killed mi-neighbour run resumes to the same result."""
    common = ["--positives", "mi-neighbour", "--train-subset", "32", "--epochs", "2", "--checkpoint-every", "3"]
    full = run("simclr", tmp_path / "full", *common)
    assert run("simclr", tmp_path / "killed", *common, "--stop-after", "5") == {}
    resumed = run("simclr", tmp_path / "killed", *common, "--resume")
    assert resumed["epoch_loss"] == pytest.approx(full["epoch_loss"], rel=1e-4)
    a = torch.load(tmp_path / "full" / "encoder.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "encoder.pt", weights_only=True)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


# ------------------------------------------------------------------------------------------- bad settings
@pytest.mark.parametrize("extra,match", [
    (["--positives", "mi-neighbour", "--queue-size", "1", "--neighbour-policy", "band"], "capacity=1"),
])
def test_bad_settings_raise_errors_naming_them(extra, match, tmp_path):
    """(Conflicting --positives / --twin-control / --mi-candidates flags are usage errors at parse time:
    test_recipe_flags.py.)"""
    with pytest.raises(ValueError, match=match):
        run("simclr", tmp_path, *extra)


def test_choosing_from_an_empty_queue_says_so():
    with pytest.raises(ValueError, match="queue is empty"):
        NeighbourPositives(4, capacity=8).choose(torch.randn(3, 4))


# ------------------------------------------------------------------------------------------- pieces
def test_neighbour_partners_come_from_other_images_of_the_same_cluster():
    """Two well separated clusters pushed with ids: each sample's partner (max policy) is another entry of its
    own cluster, never its own."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(2, 16, generator=g) * 5
    labels = torch.arange(20) % 2
    emb = centres[labels] + 0.3 * torch.randn(20, 16, generator=g)
    module = NeighbourPositives(16, capacity=64)
    ids = torch.arange(20)
    part_a, part_b = module(emb, emb + 0.01, ids)
    index = torch.cdist(part_a, emb).argmin(1)  # which stored row each partner is
    assert (index != ids).all() and (labels[index] == labels).all()
    assert part_b.shape == emb.shape and len(module.queue) == 20


def test_info_nce_positive_replaces_only_the_positive_logit():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    assert float(info_nce(q, k, positive=k)) == pytest.approx(float(info_nce(q, k)), rel=1e-6)
    assert float(info_nce(q, k, positive=q)) < float(info_nce(q, k))  # a perfectly aligned partner
    with pytest.raises(ValueError, match="positive"):
        info_nce(q, k, positive=k[:3])


def test_nnclr_loss_rewards_neighbours_aligned_with_the_other_view():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 16, generator=g, requires_grad=True)
    aligned = nnclr_loss(z.detach() + 0.01, z)
    assert float(aligned.detach()) < float(nnclr_loss(torch.randn(8, 16, generator=g), z).detach())
    aligned.backward()
    assert z.grad is not None and bool(z.grad.abs().sum() > 0)


@pytest.mark.parametrize("backbone", ["small_cnn", "resnet18", "vit_tiny"])
def test_feature_maps_pool_to_the_encoder_features(backbone):
    """The adapter's map has the encoder's width; for CNNs its spatial mean is the encoder's own feature; BN
    statistics and the train mode are left as they were."""
    encoder = build_encoder(backbone, in_channels=3, image_size=16, mean=(0.5,) * 3, std=(0.25,) * 3, cnn_width=8)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    maps = FeatureMaps(encoder)(x)
    assert maps.ndim == 4 and maps.shape[:2] == (2, encoder.dim) and encoder.training
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    if backbone != "vit_tiny":
        encoder.eval()
        assert torch.allclose(maps.mean((2, 3)), encoder(x), atol=1e-5)


def test_scoring_uses_the_target_network_when_the_method_has_one():
    encoder = build_encoder("small_cnn", in_channels=1, image_size=16, mean=(0.5,), std=(0.25,), cnn_width=8)
    byol = load_recipe("byol").BYOL(encoder, hidden_dim=16)
    assert train.scoring_parts(byol)[:2] == (byol.target_encoder, byol.target_projector)
    moco = load_recipe("moco").MoCoV3(encoder, temperature=0.1, hidden_dim=16)
    assert train.scoring_parts(moco) == (moco.key_encoder, moco.key_projector, 0.1)
    simclr = load_recipe("simclr").SimCLR(encoder, temperature=0.3, hidden_dim=16)
    assert train.scoring_parts(simclr) == (encoder, simclr.projector, 0.3)


@pytest.mark.slow
def test_neighbour_queue_under_two_gloo_processes_holds_both_ranks_entries(tmp_path):
    """torchrun with 2 CPU processes: the support queue (saved by rank 0) holds every image both ranks saw."""
    import os
    import subprocess
    import sys

    from tests.test_recipes import ROOT

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "recipes" / "simclr.py"), *TINY, *HEAD["simclr"], *SMALL, "--train-subset", "32",
           "--positives", "mi-neighbour", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ids = torch.load(out / "checkpoint.pt", weights_only=True)["model"]["neighbours.queue._ids"]
    assert sorted(ids[ids >= 0].tolist()) == list(range(32))  # 4 steps x 2 ranks x 4 images
