import math

import pytest
import torch

from mi_augment.perturbations.densities import Density, GaussianMixtureDensity, UniformDensity


def test_gmm_recovers_moments_and_picks_two_components_for_two_clusters():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 2, generator=g) * 0.3 + torch.tensor([-3.0, 0.0])
    b = torch.randn(400, 2, generator=g) * 0.3 + torch.tensor([3.0, 1.0])
    x = torch.cat([a, b])
    d = GaussianMixtureDensity().fit(x)
    assert d.components == 2
    assert torch.allclose(d.mean().float(), x.mean(0), atol=0.05)
    assert torch.allclose(d.covariance().float(), torch.cov(x.T), rtol=0.05, atol=0.05)
    s = d.sample(20000, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(s.mean(0), x.mean(0), atol=0.08)


def test_gmm_log_prob_matches_torch_distributions_for_one_component():
    cov = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
    d = GaussianMixtureDensity.from_parameters(torch.ones(1), torch.tensor([[0.5, -1.0]]), cov[None])
    x = torch.randn(50, 2, dtype=torch.float64)
    ref = torch.distributions.MultivariateNormal(torch.tensor([0.5, -1.0], dtype=torch.float64), cov).log_prob(x)
    assert torch.allclose(d.log_prob(x), ref, atol=1e-8)


def test_same_generator_same_samples_and_state_round_trip():
    x = torch.randn(300, 3)
    d = GaussianMixtureDensity().fit(x)
    meta, tensors = d.state()
    d2 = Density.from_state(meta, tensors)
    s1 = d.sample(10, generator=torch.Generator().manual_seed(5))
    s2 = d2.sample(10, generator=torch.Generator().manual_seed(5))
    assert torch.equal(s1, s2)


def test_uniform_density_samples_inside_box_and_log_prob():
    u = UniformDensity([0.0, -1.0, 2.0], [1.0, 1.0, 2.0])
    s = u.sample(1000, generator=torch.Generator().manual_seed(0))
    assert bool((s[:, 0] >= 0).all() and (s[:, 0] <= 1).all() and (s[:, 2] == 2).all())
    lp = u.log_prob(s)
    assert torch.allclose(lp, torch.full_like(lp, -math.log(2.0)))
    assert u.log_prob(torch.tensor([[2.0, 0.0, 2.0]])).item() == -math.inf


def test_bad_input_errors():
    with pytest.raises(ValueError, match="2-D"):
        GaussianMixtureDensity().fit(torch.randn(10))
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixtureDensity().fit(torch.tensor([[0.0], [float("nan")]]))
    with pytest.raises(RuntimeError, match="not fitted"):
        GaussianMixtureDensity().sample(3)
    with pytest.raises(ValueError, match="low <= high"):
        UniformDensity([1.0], [0.0])
    with pytest.raises(ValueError, match="n_components"):
        GaussianMixtureDensity(n_components=0)
