"""The recipes' losses against lightly's, an independent implementation (skipped where lightly is absent)."""

from __future__ import annotations

import pytest
import torch

from mi_augment.ssl import losses

lightly_loss = pytest.importorskip("lightly.loss", reason="lightly is not installed (pip install lightly)")


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    z_a = torch.randn(32, 16, generator=g)
    z_b = z_a + 0.5 * torch.randn(32, 16, generator=g)
    return z_a, z_b


def test_nt_xent_equals_lightly(pair):
    ours = losses.nt_xent(*pair, temperature=0.2)
    theirs = lightly_loss.NTXentLoss(temperature=0.2)(*pair)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_negative_cosine_equals_lightly(pair):
    ours = losses.negative_cosine(*pair)
    theirs = lightly_loss.NegativeCosineSimilarity()(*pair)
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert torch.allclose(losses.byol_loss(*pair), 2 + 2 * theirs, atol=1e-5)  # 2 - 2 cos


def test_barlow_twins_equals_lightly(pair):
    ours = losses.barlow_twins_loss(*pair, off_diagonal_weight=5e-3)
    theirs = lightly_loss.BarlowTwinsLoss(lambda_param=5e-3)(*pair)
    assert torch.allclose(ours, theirs, rtol=1e-3, atol=1e-3)


def test_vicreg_equals_lightly(pair):
    ours = losses.vicreg_loss(*pair)
    theirs = lightly_loss.VICRegLoss(lambda_param=25.0, mu_param=25.0, nu_param=1.0, eps=1e-4)(*pair)
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4)
