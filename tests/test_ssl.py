"""Unit tests of mi_augment.ssl: data, backbones, losses, baseline views, evaluation, optimizer, schedule."""

from __future__ import annotations

import gzip
import io
import math
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mi_augment.datasets import loading as data
from mi_augment.ssl import losses
from mi_augment.ssl.backbones import build_encoder, vit_patch_size
from mi_augment.ssl.evaluate import knn_top1, linear_probe
from mi_augment.ssl.heads import ema_update, mlp, momentum_at, momentum_copy
from mi_augment.ssl.optim import LARS, lr_factor, param_groups, set_lr
from mi_augment.ssl.train import load_checkpoint, save_checkpoint
from mi_augment.ssl.twins import TwinPairs
from mi_augment.ssl.views import AugmentOptions, BaselineViews, color_jitter, gaussian_blur, make_views


# ------------------------------------------------------------------------------------------------ data
def _write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reader_on_files_in_the_real_format(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("t10k", 5)):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    train, test = data.fashion_mnist(tmp_path)
    assert train.images.shape == (12, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.labels.shape == (5,) and test.labels.dtype == torch.int64
    raw = gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    assert torch.equal(train.images[3, 0], torch.from_numpy(np.frombuffer(raw, np.uint8, offset=16)[3 * 784:4 * 784]
                                                            .reshape(28, 28).copy()))


def test_read_idx_rejects_other_files(tmp_path):
    bad = tmp_path / "x.gz"
    bad.write_bytes(gzip.compress(b"\x01\x02\x03\x04hello"))
    with pytest.raises(ValueError, match="IDX"):
        data.read_idx(bad)


def test_image_folder_dataset(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((20, 24, 3), 40 * i, np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    d = data.load_dataset("folder", tmp_path, image_size=16)
    assert d.num_classes == 2 and d.channels == 3 and d.image_size == 16
    assert d.train.images.shape == (6, 3, 16, 16) and d.test.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_cifar_through_torchvision(tmp_path, monkeypatch):
    """CIFAR-10 in torchvision's pickled-batch layout; torchvision checks every file against the md5 sums its
    public file lists (``train_list``, ``test_list``, ``meta``) name, here those of our own files."""
    import hashlib
    import pickle

    import torchvision

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)

    def write(name, obj):
        (folder / name).write_bytes(pickle.dumps(obj))
        return [name, hashlib.md5((folder / name).read_bytes()).hexdigest()]

    files = [write(name, {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                          "labels": list(rng.integers(0, 10, 4))})
             for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]]
    meta = write("batches.meta", {"label_names": [str(i) for i in range(10)]})
    cifar = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cifar, "train_list", files[:5])
    monkeypatch.setattr(cifar, "test_list", files[5:])
    monkeypatch.setattr(cifar, "meta", {**cifar.meta, "md5": meta[1]})
    d = data.load_dataset("cifar10", tmp_path)
    assert d.train.images.shape == (20, 3, 32, 32) and len(d.test) == 4 and d.num_classes == 10


def test_synthetic_and_fixed_subset():
    d = data.load_dataset("synthetic", train_subset=40, test_subset=8)
    assert len(d.train) == 40 and len(d.test) == 8 and d.memory is d.train
    again = data.load_dataset("synthetic", train_subset=40, test_subset=8)
    assert torch.equal(d.train.images, again.train.images)


def test_epoch_sampler_shards_and_resumes():
    s0 = data.EpochSampler(40, 4, seed=3, rank=0, world_size=2)
    s1 = data.EpochSampler(40, 4, seed=3, rank=1, world_size=2)
    assert s0.steps_per_epoch == 5
    b0, b1 = torch.cat(s0.epoch(2)), torch.cat(s1.epoch(2))
    assert len(set(b0.tolist()) | set(b1.tolist())) == 40  # disjoint shards covering the data
    assert torch.equal(torch.cat(s0.epoch(2, start_step=3)), b0[12:])
    assert not torch.equal(torch.cat(s0.epoch(3)), b0)
    with pytest.raises(ValueError, match="batch"):
        data.EpochSampler(5, 8)


# ------------------------------------------------------------------------------------------- backbones
@pytest.mark.parametrize("name", ["resnet18", "vit_tiny", "small_cnn"])
@pytest.mark.parametrize("channels", [1, 3])
def test_encoders_take_one_or_three_channels(name, channels):
    enc = build_encoder(name, in_channels=channels, image_size=16, mean=(0.5,) * channels, std=(0.25,) * channels)
    out = enc(torch.rand(2, channels, 16, 16))
    assert out.shape == (2, enc.dim)


def test_vit_patch_size_suits_the_image():
    assert vit_patch_size(32) == 4 and vit_patch_size(28) == 4 and vit_patch_size(96) == 8
    assert vit_patch_size(224) == 16 and vit_patch_size(30) == 3
    with pytest.raises(ValueError, match="divide"):
        build_encoder("vit_tiny", in_channels=3, image_size=30, mean=(0,) * 3, std=(1,) * 3, patch_size=4)


# ---------------------------------------------------------------------------------------------- losses
def _reference_nt_xent(a, b, t):
    z = F.normalize(torch.cat([a, b]), dim=1)
    sim = z @ z.T / t
    n = a.shape[0]
    sim.fill_diagonal_(-math.inf)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return -(sim.log_softmax(1)[torch.arange(2 * n), target]).mean()


def test_nt_xent_matches_a_direct_computation_and_prefers_aligned_views():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    assert torch.allclose(losses.nt_xent(a, b, 0.3), _reference_nt_xent(a, b, 0.3), atol=1e-5)
    assert losses.nt_xent(a, a + 0.01 * b, 0.2) < losses.nt_xent(a, b, 0.2)


def test_info_nce_byol_simsiam_values():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(6, 4, generator=g)
    assert losses.info_nce(q, q, 0.1) < losses.info_nce(q, torch.randn(6, 4, generator=g), 0.1)
    assert losses.byol_loss(q, 3 * q).item() == pytest.approx(0.0, abs=1e-5)
    assert losses.byol_loss(q, -q).item() == pytest.approx(4.0, abs=1e-5)
    assert losses.negative_cosine(q, 2 * q).item() == pytest.approx(-1.0, abs=1e-5)
    p = q.clone().requires_grad_()
    target = q.clone().requires_grad_()
    losses.negative_cosine(p, target).backward()
    assert target.grad is None  # stop-gradient on the target


def test_barlow_twins_and_vicreg_reward_decorrelated_invariant_embeddings():
    g = torch.Generator().manual_seed(2)
    good = torch.randn(256, 8, generator=g)
    collapsed = good[:, :1].expand(-1, 8) + 0.01 * torch.randn(256, 8, generator=g)
    assert losses.barlow_twins_loss(good, good) < 0.5
    assert losses.barlow_twins_loss(collapsed, collapsed) > losses.barlow_twins_loss(good, good)
    assert losses.vicreg_loss(good, good) < losses.vicreg_loss(collapsed, collapsed)
    assert losses.vicreg_loss(good, good) < losses.vicreg_loss(good, torch.randn(256, 8, generator=g))


# ---------------------------------------------------------------------------------------------- augment
def test_baseline_views_shapes_ranges_and_seed():
    images = (torch.rand(6, 3, 20, 20) * 255).to(torch.uint8)
    views = BaselineViews(16, 3, AugmentOptions())
    a, b = views(images, torch.Generator().manual_seed(0))
    assert a.shape == b.shape == (6, 3, 16, 16) and a.dtype == torch.float32
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    a2, _ = views(images, torch.Generator().manual_seed(0))
    assert torch.equal(a, a2)
    assert not torch.equal(a, b)


def test_baseline_views_gray_and_asymmetric_large_images():
    gray = (torch.rand(4, 1, 64, 64) * 255).to(torch.uint8)
    a, b = BaselineViews(64, 1, AugmentOptions(views="byol"))(gray, torch.Generator().manual_seed(0))
    assert a.shape == (4, 1, 64, 64)


def test_jitter_and_blur_kernels_keep_shape_and_range():
    x = torch.rand(5, 3, 12, 12)
    g = torch.Generator().manual_seed(0)
    assert color_jitter(x, g).shape == x.shape
    blurred = gaussian_blur(x, g, p=1.0)
    assert blurred.shape == x.shape and blurred.std() < x.std()
    assert torch.equal(gaussian_blur(x, g, p=0.0), x)


def test_make_views_rejects_unknown_modes():
    with pytest.raises(ValueError, match="augment mode"):
        make_views("colour", size=8, channels=3)


def test_twin_pairs_sample_resizes_and_converts_channels():
    patches = (torch.rand(10, 3, 12, 12) * 255).to(torch.uint8)
    pairs = TwinPairs(patches, patches.flip(-1), size=16, channels=1)
    a, b = pairs.sample(7, torch.Generator().manual_seed(0))
    assert a.shape == b.shape == (7, 1, 16, 16)


# ------------------------------------------------------------------------------------------- evaluation
def test_knn_and_linear_probe_on_separable_features():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=g) * 3
    y_train, y_test = torch.arange(90) % 3, torch.arange(30) % 3
    x_train = centres[y_train] + torch.randn(90, 16, generator=g)
    x_test = centres[y_test] + torch.randn(30, 16, generator=g)
    assert knn_top1(x_train, y_train, x_test, y_test, 3, k=20) > 90
    assert linear_probe(x_train, y_train, x_test, y_test, 3, epochs=30) > 90
    assert knn_top1(x_train, y_train, torch.randn(30, 16, generator=g), y_test, 3, k=20) < 70


# ------------------------------------------------------------------------------------- optimizer, heads
def test_lr_schedule_warmup_then_cosine():
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10) == pytest.approx(0.5)
    assert lr_factor(100, 100, 10) == pytest.approx(0.0, abs=1e-9)


def test_lars_steps_and_fixed_lr_groups():
    model = mlp(4, 8, 2)
    groups = param_groups(model, 1e-4)
    assert any(g.get("lars_exclude") for g in groups)
    opt = LARS(groups, lr=0.5)
    before = [p.clone() for p in model.parameters()]
    model(torch.randn(6, 4)).pow(2).sum().backward()
    set_lr(opt, 0.5)
    opt.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)


def test_momentum_copy_and_ema():
    online = mlp(3, 4, 2)
    target = momentum_copy(online)
    assert all(not p.requires_grad for p in target.parameters())
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    ema_update(target, online, 0.75)
    p_t, p_o = next(target.parameters()), next(online.parameters())
    assert torch.allclose(p_t, p_o - 0.75)
    assert momentum_at(0.99, 0.0) == pytest.approx(0.99) and momentum_at(0.99, 1.0) == pytest.approx(1.0)


def test_checkpoints_are_atomic_and_load_with_weights_only(tmp_path):
    model = mlp(3, 4, 2)
    opt = LARS(param_groups(model, 0.1), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "state": {"step": 3, "epoch_losses": [1.5]}}
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, state)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary left behind
    loaded = load_checkpoint(path, torch.device("cpu"))
    assert loaded["state"]["step"] == 3
    assert torch.equal(loaded["model"]["0.weight"], model.state_dict()["0.weight"])
    buffer = io.BytesIO()
    torch.save({"bad": object()}, buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        load_checkpoint(path, torch.device("cpu"))
