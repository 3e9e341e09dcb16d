"""Tied, discrete, rounded and constant samples in the kNN MI estimators (issue 13, item 2), and inputs that
require gradients."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from mi_augment.mi import histogram_mi, kl3_mi, ksg_mi, pairwise_mi

KNN = {"ksg": ksg_mi, "kl3": kl3_mi}


def plugin_mi(a: torch.Tensor, b: torch.Tensor) -> float:
    """Plug-in MI (nats) of two discrete samples: the truth for discrete data when N is large."""
    _, ia = np.unique(a.numpy(), return_inverse=True)
    _, ib = np.unique(b.numpy(), return_inverse=True)
    joint = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(joint, (ia, ib), 1.0)
    joint /= joint.sum()
    outer = joint.sum(1, keepdims=True) @ joint.sum(0, keepdims=True)
    m = joint > 0
    return float((joint[m] * np.log(joint[m] / outer[m])).sum())


def three_level(n: int, seed: int, copy: float) -> tuple[torch.Tensor, torch.Tensor]:
    """x uniform on {0, 1, 2}; y equals x with probability ``copy``, else an independent draw."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 3, (n,), generator=g).float()
    other = torch.randint(0, 3, (n,), generator=g).float()
    return x, torch.where(torch.rand(n, generator=g) < copy, x, other)


def gaussian_pair(n: int, mi: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rho = math.sqrt(1 - math.exp(-2 * mi))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g)
    return x, rho * x + math.sqrt(1 - rho**2) * torch.randn(n, generator=g)


@pytest.mark.parametrize("name", KNN)
def test_independent_three_level_variables_have_mi_near_zero(name):
    # Used to give 3-4 nats without a generator (x and y got the same jitter); scikit-learn gives ~0.03.
    x, y = three_level(1000, seed=1, copy=0.0)
    assert abs(float(KNN[name](x, y))) < 0.1


@pytest.mark.parametrize("name", KNN)
def test_discrete_dependence_is_estimated_near_the_plugin_truth(name):
    x, y = three_level(2000, seed=2, copy=0.7)
    truth = plugin_mi(x, y)
    assert abs(float(KNN[name](x, y)) - truth) < 0.1


@pytest.mark.parametrize("name", KNN)
@pytest.mark.parametrize("decimals", [1, 0])
def test_rounded_gaussian_data_is_estimated_near_the_truth(name, decimals):
    # MI 0.80 nats before rounding; kl3_mi gave NaN, -inf or -13.6 nats on such data.
    x, y = gaussian_pair(2000, 0.8, seed=3)
    xr, yr = x.round(decimals=decimals), y.round(decimals=decimals)
    big_x, big_y = gaussian_pair(400_000, 0.8, seed=4)
    truth = 0.8 if decimals else plugin_mi(big_x.round(), big_y.round())  # rounding to integers loses MI
    estimate = KNN[name](xr, yr)
    assert torch.isfinite(estimate)
    assert abs(float(estimate) - truth) < 0.12


@pytest.mark.parametrize("name", KNN)
def test_jitter_of_x_and_y_is_independent_without_a_generator(name):
    # Identical tied values in x and y must not look dependent through identical jitter.
    x, _ = three_level(800, seed=5, copy=0.0)
    y = torch.randperm(800, generator=torch.Generator().manual_seed(6)).remainder(3).float()
    assert abs(float(KNN[name](x, y))) < 0.1
    torch.testing.assert_close(KNN[name](x, y), KNN[name](x, y), rtol=0, atol=0)  # still deterministic


@pytest.mark.parametrize("name", KNN)
@pytest.mark.parametrize("noise", ["auto", 0])
def test_constant_input_gives_exactly_zero(name, noise):
    x, y = gaussian_pair(300, 0.8, seed=7)
    constant = torch.full((300,), 2.5)
    batch_x = torch.stack([constant, x])[..., None]
    batch_y = torch.stack([constant, y])[..., None]
    out = KNN[name](batch_x, batch_y, noise=noise)
    assert out[0] == 0
    assert float(KNN[name](x, constant, noise=noise)) == 0
    assert float(out[1]) > 0.5


@pytest.mark.parametrize("name", KNN)
@pytest.mark.parametrize("k", [1, 3])
def test_estimates_are_finite_on_heavily_tied_data_even_without_noise(name, k):
    x, y = three_level(500, seed=8, copy=0.5)
    for noise in ("auto", 0, 1e-12):
        assert torch.isfinite(KNN[name](x, y, k=k, noise=noise))
    assert torch.isfinite(KNN[name](x.double(), y.double(), k=k, noise=0))


def test_kl3_warns_on_atoms_mixed_with_continuous_values_and_ksg_does_not():
    x, y = gaussian_pair(1000, 0.8, seed=9)
    xc, yc = x.clamp(min=0), y.clamp(min=0)  # half the samples are exactly 0
    with pytest.warns(UserWarning, match="tied samples.*kl3_mi is biased"):
        kl3_mi(xc, yc)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        estimate = ksg_mi(xc, yc)
        kl3_mi(x.round(decimals=1), y.round(decimals=1))  # a grid is not a mixture: no warning
    assert abs(float(estimate) - 0.535) < 0.1  # the clipped pair's MI, by numerical integration


def test_pairwise_constant_trajectories_have_zero_rows():
    g = torch.Generator().manual_seed(10)
    traj = torch.randn(4, 60, 1, generator=g)
    traj[1] = 0.5  # a grey patch
    traj[3] = traj[2].round(decimals=1)
    for estimator in ("kl3", "ksg"):
        matrix = pairwise_mi(traj, estimator)
        assert torch.isfinite(matrix).all()
        assert (matrix[1] == 0).all() and (matrix[:, 1] == 0).all()
        assert matrix[2, 3] > 1.0


@pytest.mark.parametrize("fn", [ksg_mi, kl3_mi, histogram_mi])
def test_inputs_requiring_grad_are_accepted(fn):
    x, y = gaussian_pair(200, 0.8, seed=11)
    x.requires_grad_(True)
    expected = fn(x.detach(), y)
    torch.testing.assert_close(fn(x, y).detach(), expected)
    torch.testing.assert_close(pairwise_mi(torch.stack([x, y])[..., None]).detach(),
                               pairwise_mi(torch.stack([x.detach(), y])[..., None]))


def test_grey_video_mines_without_warnings():
    # A constant clip cannot be tracked: no frame steps, so no spread to measure (torch's std() warned).
    from mi_augment.video.twins import mine_twin_patches

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = mine_twin_patches(torch.full((12, 3, 64, 64), 0.5), 16)
    assert result.num_twins == 0 and not result.active.any()
