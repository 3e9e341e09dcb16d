"""Tests for mi_augment.mi: closed forms, scikit-learn / numpy agreement, properties, errors.

Tolerances for the closed-form checks come from ``benchmarks/mi_estimators.py`` (the measured bias and spread
of each estimator, see ``docs/mi_estimators.md``), with a safety margin.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mi_augment import kernel_options
from mi_augment.mi import ESTIMATORS, gaussian_mi, histogram_mi, kl3_mi, ksg_mi, pairwise_mi
from mi_augment.mi.gaussian import ledoit_wolf_shrinkage

KNN = {"ksg": ksg_mi, "ksg2": lambda x, y, **kw: ksg_mi(x, y, variant=2, **kw), "kl3": kl3_mi}
VECTOR_ESTIMATORS = {**KNN, "gaussian": gaussian_mi}


@pytest.fixture(autouse=True)
def _one_thread():
    # The kNN searches issue many small whole-batch operations; on a shared 2-core machine OpenMP
    # synchronisation between two threads costs more than it saves.
    torch.set_num_threads(1)
    yield


def correlated(reps: int, n: int, d: int, rho: float, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(reps, n, d, generator=g, dtype=torch.float64)
    y = rho * x + math.sqrt(1 - rho**2) * torch.randn(reps, n, d, generator=g, dtype=torch.float64)
    return x.to(dtype), y.to(dtype)


def truth(d: int, rho: float) -> float:
    return -d / 2 * math.log(1 - rho**2)


def test_registry_lists_every_estimator():
    assert ESTIMATORS == {"histogram": histogram_mi, "ksg": ksg_mi, "kl3": kl3_mi, "gaussian": gaussian_mi}


# --------------------------------------------------------------------------------------------------------------
# Closed forms. Mean of 4 batched repetitions with N=1000, float32. Tolerances: |mean - truth| <= tol, where
# tol is the benchmark's measured |bias| at N=1000 (interpolated between N=500 and N=2000 where needed) plus
# about 3 standard errors. The kNN estimators underestimate strong dependence in several dimensions (their
# known bias, tabulated in docs/mi_estimators.md): large tolerances there are the truth about them, and the
# test then also checks the sign.

CLOSED_FORM_N = 1000
TOLERANCE = {
    # (d, rho): tol for ksg / ksg2 / kl3, gaussian
    (1, 0.0): (0.04, 0.06, 0.02), (1, 0.5): (0.05, 0.08, 0.03), (1, 0.9): (0.07, 0.09, 0.06),
    (1, 0.99): (0.08, 0.09, 0.05),
    (2, 0.0): (0.05, 0.09, 0.02), (2, 0.5): (0.07, 0.09, 0.04), (2, 0.9): (0.12, 0.14, 0.12),
    (2, 0.99): (0.45, 0.40, 0.10),
    (3, 0.0): (0.05, 0.08, 0.02), (3, 0.5): (0.10, 0.10, 0.04), (3, 0.9): (0.45, 0.45, 0.13),
    (3, 0.99): (1.80, 1.70, 0.15),
    (4, 0.0): (0.06, 0.22, 0.02), (4, 0.5): (0.18, 0.30, 0.05), (4, 0.9): (1.00, 1.05, 0.13),
    (4, 0.99): (3.60, 3.50, 0.15),
}


@pytest.mark.parametrize("d", [1, 2, 3, 4])
@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("name", ["ksg", "ksg2", "kl3", "gaussian"])
def test_closed_form_correlated_gaussians(name, d, rho):
    x, y = correlated(4, CLOSED_FORM_N, d, rho, seed=17 * d + int(100 * rho), dtype=torch.float32)
    estimate = float(VECTOR_ESTIMATORS[name](x, y).mean())
    tol_knn, tol_kl3, tol_gauss = TOLERANCE[(d, rho)]
    tol = {"ksg": tol_knn, "ksg2": tol_knn, "kl3": tol_kl3, "gaussian": tol_gauss}[name]
    assert abs(estimate - truth(d, rho)) <= tol, (estimate, truth(d, rho))
    if tol > 0.3:  # where the tolerance is loose, the estimator must err on the known (low) side
        assert estimate < truth(d, rho)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_histogram_closed_form_large_n(rho):
    # Plug-in bias ~ +(bins-1)^2 / 2N = +0.006 at N=20000, 16 bins; the discretisation loses about 0.07 of
    # the 0.83 nats at rho=0.9 (16 bins over the sample range cannot resolve the narrow ridge).
    x, y = correlated(2, 20000, 1, rho, seed=3)
    estimate = histogram_mi(x, y, bins=16).mean().item()
    assert abs(estimate - truth(1, rho)) <= 0.1


@pytest.mark.parametrize("name", ["ksg", "ksg2", "kl3", "gaussian"])
def test_independence_is_about_zero(name):
    x, y = correlated(8, 500, 2, 0.0, seed=5)
    assert abs(VECTOR_ESTIMATORS[name](x, y).mean().item()) < 0.06


# --------------------------------------------------------------------------------------------------------------
# Agreement with scikit-learn and numpy


@pytest.mark.parametrize("n,k", [(60, 3), (400, 3), (400, 5), (1200, 1)])
def test_ksg_matches_sklearn(n, k):
    from sklearn.feature_selection import mutual_info_regression

    x, y = correlated(6, n, 1, 0.6, seed=n + k)
    ours = ksg_mi(x, y, k=k).numpy()
    reference = [
        mutual_info_regression(x[b].numpy(), y[b, :, 0].numpy(), n_neighbors=k, random_state=0)[0] for b in range(6)
    ]
    # Same algorithm (KSG variant 1, max norm, unit-variance scaling); both add ~1e-10 jitter, so the only
    # difference left is rounding. scikit-learn clips at 0; MI is well above 0 here.
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-9)


def numpy_histogram_mi(x: np.ndarray, y: np.ndarray, bins: int, value_range=None) -> float:
    joint, _, _ = np.histogram2d(x, y, bins=bins, range=value_range)
    p = joint / joint.sum()
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (px @ py)[nz])).sum())


@pytest.mark.parametrize("bins", [2, 7, 16, 32])
@pytest.mark.parametrize("fixed_range", [False, True])
def test_histogram_matches_numpy(bins, fixed_range):
    rng = np.random.default_rng(bins)
    x = rng.random((5, 700))
    y = np.clip(0.7 * x + 0.3 * rng.random((5, 700)), 0, 1)
    value_range = ((0.0, 1.0), (0.0, 1.0)) if fixed_range else None
    ours = histogram_mi(torch.from_numpy(x), torch.from_numpy(y), bins=bins, range=value_range).numpy()
    reference = [numpy_histogram_mi(x[b], y[b], bins, value_range) for b in range(5)]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-12)


def test_histogram_accepts_trailing_singleton_and_pixel_batches():
    g = torch.Generator().manual_seed(0)
    luma = torch.rand(64, 32 * 32, generator=g)
    other = (luma + 0.05 * torch.rand(64, 1024, generator=g)).clamp(0, 1)
    flat = histogram_mi(luma, other, range=(0, 1))
    assert flat.shape == (64,)
    torch.testing.assert_close(histogram_mi(luma[..., None], other[..., None], range=(0, 1)), flat)
    assert bool((flat > 0).all()) and bool((flat <= math.log(16) + 1e-6).all())


def test_soft_histogram_is_differentiable():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 40, generator=g, dtype=torch.float64, requires_grad=True)
    y = (0.5 * x.detach() + 0.5 * torch.rand(2, 40, generator=g, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: histogram_mi(a, b, bins=5, range=(0, 1), soft=True), (x, y))
    mi = histogram_mi(x, y, bins=8, soft=True)  # data-derived range
    mi.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_soft_histogram_close_to_hard_for_smooth_data():
    x, y = correlated(2, 5000, 1, 0.8, seed=9)
    hard = histogram_mi(x, y, bins=16)
    soft = histogram_mi(x, y, bins=16, soft=True)
    # Soft binning smooths the joint table, which lowers the estimate a little.
    assert bool((soft < hard).all()) and bool(((hard - soft) < 0.15).all())


def test_ledoit_wolf_matches_sklearn():
    from sklearn.covariance import ledoit_wolf_shrinkage as sklearn_shrinkage

    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, 30, 5)) * np.array([1, 2, 1, 1, 0.5])
    z[1] += 0.9 * z[1, :, :1]
    z -= z.mean(1, keepdims=True)
    ours = ledoit_wolf_shrinkage(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(ours, [sklearn_shrinkage(z[b], assume_centered=True) for b in range(4)], atol=1e-12)


def test_gaussian_shrinkage_options():
    x, y = correlated(3, 6, 3, 0.9, seed=1)  # N <= Dx + Dy: singular without shrinkage
    assert torch.isfinite(gaussian_mi(x, y)).all()
    wide_x, wide_y = correlated(2, 10, 16, 0.9, seed=1)  # more dimensions than samples
    assert torch.isfinite(gaussian_mi(wide_x, wide_y)).all()
    assert (gaussian_mi(x, y, shrinkage=0.0) > 10).all()  # singular: infinite, or huge after rounding
    assert torch.allclose(gaussian_mi(x, y, shrinkage=1.0), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    # A constant dimension carries no information.
    x2, y2 = correlated(2, 200, 1, 0.5, seed=2)
    padded = torch.cat([x2, torch.ones_like(x2)], dim=-1)
    torch.testing.assert_close(gaussian_mi(padded, y2), gaussian_mi(x2, y2))


# --------------------------------------------------------------------------------------------------------------
# Properties shared by every estimator


def _run(name: str, x: torch.Tensor, y: torch.Tensor, **kwargs) -> torch.Tensor:
    if name == "histogram":
        return histogram_mi(x[..., 0], y[..., 0], bins=8)
    if name in KNN:
        kwargs.setdefault("noise", 0)
    return VECTOR_ESTIMATORS[name](x, y, **kwargs)


ALL = ["ksg", "ksg2", "kl3", "gaussian", "histogram"]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("n", [50, 300])  # the kNN search switches from brute force to the band scan
def test_symmetric_in_x_and_y(name, n):
    d = 1 if name == "histogram" else 2
    x, y = correlated(3, n, d, 0.7, seed=n)
    y = y[..., :1] if name != "histogram" else y  # different dimensions for x and y
    torch.testing.assert_close(_run(name, x, y), _run(name, y, x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("n", [50, 300])
def test_invariant_to_sample_permutation(name, n):
    x, y = correlated(3, n, 1, 0.7, seed=n + 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(_run(name, x, y), _run(name, x[:, perm], y[:, perm]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_batched_equals_one_by_one_and_shapes(name):
    x, y = correlated(6, 150, 1, 0.5, seed=2)
    xb, yb = x.reshape(2, 3, 150, 1), y.reshape(2, 3, 150, 1)
    batched = _run(name, xb, yb)
    assert batched.shape == (2, 3) and batched.dtype == torch.float64
    singles = torch.stack([_run(name, x[i], y[i]) for i in range(6)]).reshape(2, 3)
    torch.testing.assert_close(batched, singles, rtol=0, atol=1e-12)
    chunked = _run(name, xb, yb, chunk_size=2) if name != "histogram" else histogram_mi(
        xb[..., 0], yb[..., 0], bins=8, chunk_size=2)
    torch.testing.assert_close(chunked, batched, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["ksg", "ksg2", "kl3", "gaussian"])
def test_one_dimensional_convenience_and_float32(name):
    x, y = correlated(1, 200, 1, 0.5, seed=4, dtype=torch.float32)
    scalar = VECTOR_ESTIMATORS[name](x[0, :, 0], y[0, :, 0])
    assert scalar.shape == () and scalar.dtype == torch.float32
    torch.testing.assert_close(scalar, VECTOR_ESTIMATORS[name](x[0], y[0]))
    numpy_input = VECTOR_ESTIMATORS[name](x[0, :, 0].numpy(), y[0, :, 0].numpy())
    torch.testing.assert_close(numpy_input, scalar)


@pytest.mark.parametrize("name", ALL)
def test_empty_batch(name):
    x = torch.zeros(0, 20, 1)
    assert _run(name, x, x).shape == (0,)


@pytest.mark.parametrize("name", ["ksg", "ksg2", "kl3"])
def test_ties_are_broken_by_seeded_noise(name):
    # 8-level quantised data: many exact duplicates.
    x, y = correlated(2, 400, 1, 0.8, seed=6)
    xq, yq = (x * 2).round().clamp(-4, 3), (y * 2).round().clamp(-4, 3)
    fn = VECTOR_ESTIMATORS[name]
    a = fn(xq, yq, generator=torch.Generator().manual_seed(1))
    b = fn(xq, yq, generator=torch.Generator().manual_seed(1))
    c = fn(xq, yq, generator=torch.Generator().manual_seed(2))
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # same seed, same result
    assert not torch.equal(a, c)  # the jitter does decide the ties
    torch.testing.assert_close(fn(xq, yq), fn(xq, yq), rtol=0, atol=0)  # deterministic without a generator


@pytest.mark.parametrize("name", ["ksg", "ksg2", "kl3"])
def test_search_methods_agree(name):
    x, y = correlated(3, 400, 2, 0.8, seed=8)
    fn = VECTOR_ESTIMATORS[name]
    torch.testing.assert_close(fn(x, y, method="band"), fn(x, y, method="brute"), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------------------------
# pairwise_mi


@pytest.mark.parametrize("name,variant", [("kl3", 1), ("ksg", 1), ("ksg", 2)])
def test_pairwise_matches_estimator_per_pair(name, variant):
    g = torch.Generator().manual_seed(0)
    traj = torch.randn(10, 48, 2, generator=g, dtype=torch.float64)
    traj[5:] = 0.8 * traj[:5] + 0.6 * traj[5:]
    matrix = pairwise_mi(traj, name, variant=variant, noise=0)
    assert matrix.shape == (10, 10) and torch.equal(matrix, matrix.T)
    ia, ib = torch.triu_indices(10, 10)
    kwargs = {"variant": variant} if name == "ksg" else {}
    expected = ESTIMATORS[name](traj[ia], traj[ib], noise=0, **kwargs)
    torch.testing.assert_close(matrix[ia, ib], expected, rtol=0, atol=1e-12)
    # Twins (a, a + 5) share information; unrelated pairs do not.
    twins = matrix[torch.arange(5), torch.arange(5) + 5]
    assert twins.min() > matrix[0, 1:5].max()


@pytest.mark.parametrize("name,variant", [("kl3", 1), ("ksg", 1), ("ksg", 2)])
@pytest.mark.parametrize("chunk_size", [None, 7])
def test_pairwise_shared_distances_equal_the_estimator_route(name, variant, chunk_size):
    """The speed path (every trajectory's distance matrix computed once, in blocks of pairs) equals scoring
    each pair through the estimator, which is what runs inside kernel_options(fast_paths=False). The flat
    blocks used on accelerators are checked against the CPU in test_pairwise_cpu_equals_cuda."""
    traj = torch.randn(9, 30, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    fast = pairwise_mi(traj, name, variant=variant, noise=0, chunk_size=chunk_size)
    with kernel_options(fast_paths=False):
        plain = pairwise_mi(traj, name, variant=variant, noise=0, chunk_size=chunk_size)
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["gaussian", "histogram"])
def test_pairwise_generic_estimators(name):
    g = torch.Generator().manual_seed(1)
    traj = torch.rand(6, 100, generator=g, dtype=torch.float64)
    matrix = pairwise_mi(traj, name)
    ia, ib = torch.triu_indices(6, 6)
    x, y = traj[ia], traj[ib]
    expected = histogram_mi(x, y) if name == "histogram" else gaussian_mi(x[..., None], y[..., None])
    torch.testing.assert_close(matrix[ia, ib], expected)
    assert torch.equal(matrix, matrix.T)


def test_pairwise_errors():
    with pytest.raises(ValueError, match="estimator"):
        pairwise_mi(torch.randn(4, 20, 2), "nope")
    with pytest.raises(ValueError, match="trajectories"):
        pairwise_mi(torch.randn(20), "kl3")
    with pytest.raises(ValueError, match="k"):
        pairwise_mi(torch.randn(4, 3, 2), "ksg", k=3)
    with pytest.raises(ValueError, match="D = 1"):
        pairwise_mi(torch.rand(4, 20, 2), "histogram")


# --------------------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("name", ["ksg", "kl3"])
def test_knn_errors(name):
    fn = ESTIMATORS[name]
    x = torch.randn(10, 1)
    with pytest.raises(ValueError, match="N > k"):
        fn(x[:3], x[:3], k=3)
    for bad_k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="k must"):
            fn(x, x, k=bad_k)
    with pytest.raises(ValueError, match="method"):
        fn(x, x, method="kdtree")
    with pytest.raises(ValueError, match="noise"):
        fn(x, x, noise=-1.0)
    with pytest.raises(TypeError, match="generator"):
        fn(x, x, generator=0)


def test_ksg_variant_error():
    with pytest.raises(ValueError, match="variant"):
        ksg_mi(torch.randn(10), torch.randn(10), variant=3)


@pytest.mark.parametrize("name", ["ksg", "kl3", "gaussian"])
def test_shape_and_value_errors(name):
    fn = ESTIMATORS[name]
    good = torch.randn(2, 30, 2)
    with pytest.raises(ValueError, match="same number of samples N"):
        fn(good, torch.randn(2, 31, 2))
    with pytest.raises(ValueError, match="leading"):
        fn(good, torch.randn(3, 30, 2))
    for bad in (float("nan"), float("inf")):
        corrupted = good.clone()
        corrupted[1, 4, 0] = bad
        with pytest.raises(ValueError, match="x contains NaN or inf"):
            fn(corrupted, good)
        with pytest.raises(ValueError, match="y contains NaN or inf"):
            fn(good, corrupted)
    if name != "gaussian":  # gaussian_mi accepts D > N (that is what shrinkage is for)
        with pytest.raises(ValueError, match=r"x\[\.\.\., None\]"):  # (B, N) read as (N, D) with D > N
            fn(torch.randn(4, 100), torch.randn(4, 100))
    with pytest.raises(ValueError, match="chunk_size"):
        fn(good, good, chunk_size=0)


def test_histogram_errors():
    x = torch.rand(3, 50)
    for bad_bins in (1, 0, 2.0, None):
        with pytest.raises(ValueError, match="bins"):
            histogram_mi(x, x, bins=bad_bins)
    for bad_range in ((1, 0), (0, float("inf")), "01", (0, 1, 2)):
        with pytest.raises(ValueError, match="range"):
            histogram_mi(x, x, range=bad_range)
    with pytest.raises(ValueError, match="bandwidth"):
        histogram_mi(x, x, soft=True, bandwidth=0.0)
    with pytest.raises(ValueError, match="same number of samples"):
        histogram_mi(x, torch.rand(3, 49))
    with pytest.raises(ValueError, match="leading"):
        histogram_mi(x, torch.rand(2, 50))
    with pytest.raises(ValueError, match="N=2"):
        histogram_mi(torch.rand(5, 1, 1), torch.rand(5, 1, 1))
    with pytest.raises(ValueError, match="x contains NaN"):
        histogram_mi(torch.tensor([0.1, float("nan"), 0.3]), torch.rand(3))


def test_gaussian_shrinkage_error():
    for bad in ("lw", -0.1, 1.5, True):
        with pytest.raises(ValueError, match="shrinkage"):
            gaussian_mi(torch.randn(20), torch.randn(20), shrinkage=bad)


# --------------------------------------------------------------------------------------------------------------
# Hypothesis: shapes and ranges over random batch shapes, sample counts and dimensions


@settings(max_examples=25, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    n=st.integers(6, 40),
    dx=st.integers(1, 3),
    dy=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_shapes_and_finiteness_property(batch, n, dx, dy, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch, n, dx, generator=g, dtype=torch.float64)
    y = torch.randn(*batch, n, dy, generator=g, dtype=torch.float64) + x[..., :1]
    for name, fn in VECTOR_ESTIMATORS.items():
        out = fn(x, y)
        assert out.shape == tuple(batch), name
        assert torch.isfinite(out).all(), name
    knn_cap = torch.special.digamma(torch.tensor(float(n))) - torch.special.digamma(torch.tensor(3.0))
    assert (ksg_mi(x, y) <= knn_cap + 1e-9).all()  # the KSG ceiling psi(N) - psi(k)
    assert (gaussian_mi(x, y) >= 0).all()
    h = histogram_mi(x[..., 0], y[..., 0], bins=4)
    assert ((h >= -1e-12) & (h <= math.log(4) + 1e-12)).all()


@settings(max_examples=20, deadline=None)
@given(n=st.integers(130, 400), d=st.integers(1, 4), k=st.integers(1, 6), seed=st.integers(0, 2**16),
       levels=st.sampled_from([0, 3, 50]))
def test_band_search_is_exact_property(n, d, k, seed, levels):
    """The band search (neighbours and counts from sorted coordinates) gives exactly the brute-force
    estimates, on quantised data with exact ties too (no jitter: the ties stay ties; KSG's variant 2 reads
    which samples are the k nearest, which ties leave open, so it is compared on untied data only)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2, n, d + 1, generator=g, dtype=torch.float64)
    if levels:  # quantised data with exact ties
        z = (z * levels).round() / levels
    x, y = z[..., :d], z[..., d:]  # y 1-D: counts by binary search; x of d dims: the sorted-offset scan
    cases = [(ksg_mi, {"variant": 1}), (kl3_mi, {})] + ([] if levels else [(ksg_mi, {"variant": 2})])
    for fn, kwargs in cases:
        band = fn(x, y, k=k, noise=0, method="band", **kwargs)
        brute = fn(x, y, k=k, noise=0, method="brute", **kwargs)
        assert torch.equal(band, brute)


# --------------------------------------------------------------------------------------------------------------
# CUDA


@pytest.mark.cuda
@pytest.mark.parametrize("name", ALL)
def test_cpu_equals_cuda(name):
    x, y = correlated(4, 300, 1, 0.7, seed=11)
    cpu = _run(name, x, y)
    gpu = _run(name, x.cuda(), y.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-9)


@pytest.mark.cuda
def test_pairwise_cpu_equals_cuda():
    g = torch.Generator().manual_seed(0)
    traj = torch.randn(16, 64, 3, generator=g, dtype=torch.float64)
    for name in ("kl3", "ksg"):
        cpu = pairwise_mi(traj, name, noise=0)
        gpu = pairwise_mi(traj.cuda(), name, noise=0)
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kl3_is_robust_to_one_huge_outlier(dtype):
    """Issue 24 item 19: one 1e6 outlier among 500 samples (true MI 0.83) gave -5.44 nats; the robust scale
    keeps the estimate near the outlier-free one, and all-pairs scoring agrees with the estimator."""
    x, y = correlated(1, 500, 1, 0.9, seed=0, dtype=dtype)
    clean = float(kl3_mi(x, y))
    x[0, 0, 0] = 1e6
    with_outlier = float(kl3_mi(x, y))
    assert abs(with_outlier - truth(1, 0.9)) < 0.2 and abs(with_outlier - clean) < 0.1, (clean, with_outlier)
    matrix = pairwise_mi(torch.cat([x, y])[:, :, :1], "kl3")
    assert abs(float(matrix[0, 1]) - with_outlier) < 2e-3  # (their tie-breaking jitters differ)


def test_ksg_warns_when_an_outlier_sets_its_scale():
    """KSG keeps scikit-learn's std scaling (agreement above), so on the same data as the kl3 test it returns
    about 0; it says so instead of failing silently."""
    x, y = correlated(1, 500, 1, 0.9, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ksg_mi(x, y)  # no outlier: no warning
    x[0, 0, 0] = 1e6
    with pytest.warns(UserWarning, match="outliers set the scale"):
        ksg_mi(x, y)
