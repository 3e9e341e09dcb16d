"""The compiled uint8 scorer (mi_augment.functional.uint8.compiled, numba) against what it stands in for: torch's
grid_sample bit for bit, the numpy + torch scorer within 1e-12 nats, and the fallbacks (the option off, numba
missing) giving the same views."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mi_augment
from mi_augment.functional import uint8 as U
from mi_augment.functional.uint8 import compiled
from mi_augment.pairs.sampler import BoxSampler
from mi_augment.transforms import MIPairTransform

needs_compiled = pytest.mark.skipif(not compiled.available(), reason=f"compiled kernels {compiled.status()}")


def torch_samples(canvas: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """``F.grid_sample`` (bilinear, border, align_corners=True) on the separable grids, ``(P, n * n)``."""
    p, n = axes.shape[0], axes.shape[2]
    grid = torch.empty((1, p * n, n, 2))
    g = grid.numpy().reshape(p, n, n, 2)
    g[..., 0], g[..., 1] = axes[:, None, 0, :], axes[:, 1, :, None]
    x = torch.from_numpy(canvas)[None, None]
    out = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.numpy().reshape(p, n * n)


@needs_compiled
@settings(max_examples=60, deadline=None, derandomize=True)
@given(h=st.integers(1, 70), w=st.integers(1, 70), p=st.integers(1, 6), n=st.integers(1, 33),
       spread=st.sampled_from([0.5, 1.0, 1.3, 4.0]), seed=st.integers(0, 2 ** 31 - 1),
       whole=st.booleans())
def test_compiled_samples_are_torch_grid_sample_bit_for_bit(h, w, p, n, spread, seed, whole):
    rng = np.random.default_rng(seed)
    canvas = rng.random((h, w), dtype=np.float32)
    axes = ((rng.random((p, 2, n), dtype=np.float32) * 2 - 1) * np.float32(spread)).astype(np.float32)
    if whole:  # grid points on whole pixels and on the borders, where a floor or a clip decides
        cols = rng.integers(-1, w + 1, (p, n)) * np.float32(2.0 / max(w - 1, 1)) - 1
        rows = rng.integers(-1, h + 1, (p, n)) * np.float32(2.0 / max(h - 1, 1)) - 1
        axes = np.stack([cols, rows], 1).astype(np.float32)
    mine = compiled.grid_samples(canvas, axes)
    assert mine.dtype == np.float32 and mine.shape == (p, n * n)
    np.testing.assert_array_equal(mine.view(np.uint32), torch_samples(canvas, axes).view(np.uint32))


@needs_compiled
@settings(max_examples=40, deadline=None, derandomize=True)
@given(h=st.integers(1, 300), w=st.integers(1, 300), k=st.integers(1, 8), views=st.integers(2, 3),
       proxy=st.sampled_from([4, 16, 32]), bins=st.sampled_from([2, 16, 33]), seed=st.integers(0, 2 ** 31 - 1))
def test_compiled_scores_equal_the_numpy_scorer(h, w, k, views, proxy, bins, seed):
    """Every size (the pyramid path from large boxes included), every candidate and partner view."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    sampler = BoxSampler()
    u = torch.rand(views * k * sampler.draws_per_box, generator=torch.Generator().manual_seed(seed)).tolist()
    boxes = np.array(sampler.box_rows(u, h, w), np.float32).reshape(views, k, 4)
    mine = U.candidate_scores(image, boxes, proxy, bins)
    with mi_augment.kernel_options(compiled_kernels=False):
        reference = U.candidate_scores(image, boxes, proxy, bins)
    assert mine.shape == (views - 1, k)
    np.testing.assert_allclose(mine, reference, rtol=0, atol=1e-12)


@needs_compiled
def test_non_finite_grid_points_sample_as_torch_does():
    """NaN reads the first pixel and infinities the edges, as torch's clamps do (never outside the canvas)."""
    canvas = np.random.default_rng(0).random((5, 7), dtype=np.float32)
    odd = np.array([np.nan, np.inf, -np.inf, 0.3, 2.0 ** 100], np.float32)
    axes = np.stack([np.stack([odd, odd[::-1]]), np.stack([odd[::-1], odd])])
    mine = compiled.grid_samples(canvas, axes)
    np.testing.assert_array_equal(mine.view(np.uint32), torch_samples(canvas, axes).view(np.uint32))


@needs_compiled
def test_pair_scores_of_identical_views_are_their_entropy():
    """The MI of a proxy with itself is its binned entropy: here four equally filled bins, log 4."""
    canvas = np.array([[0.1, 0.3], [0.6, 0.9]], np.float32)
    whole = np.array([-1.0, 1.0], np.float32)  # the two pixel centres per axis
    axes = np.stack([np.stack([whole, whole])] * 2)
    scores = compiled.pair_scores(canvas, axes, views=2, candidates=1, bins=4)
    np.testing.assert_allclose(scores, [[np.log(4)]], rtol=0, atol=1e-12)


@needs_compiled
def test_bad_arguments_name_what_is_wrong():
    axes = np.zeros((2, 2, 4), np.float32)
    with pytest.raises(ValueError, match="canvas"):
        compiled.grid_samples(np.zeros((3, 3)), axes)  # float64
    with pytest.raises(ValueError, match="axes"):
        compiled.grid_samples(np.zeros((3, 3), np.float32), np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="views \\* candidates"):
        compiled.pair_scores(np.zeros((3, 3), np.float32), axes, views=2, candidates=2)
    with pytest.raises(ValueError, match="bins"):
        compiled.pair_scores(np.zeros((3, 3), np.float32), axes, views=2, candidates=1, bins=1)


def test_the_option_switches_the_compiled_scorer_off_and_says_so():
    with mi_augment.kernel_options(compiled_kernels=False):
        assert not compiled.available()
        assert "compiled_kernels=False" in compiled.status() or "not installed" in compiled.status()
    with pytest.raises(TypeError, match="compiled_kernels"):
        with mi_augment.kernel_options(compiled_kernels="yes"):
            pass


def test_views_are_the_same_with_and_without_the_compiled_scorer():
    """A DataLoader worker's call (K = 8 scored, numpy in and out): the same candidate chosen, the same views."""
    t = MIPairTransform.simclr(32, n_candidates=8)
    rng = np.random.default_rng(3)
    for i in range(12):
        image = rng.integers(0, 256, (40 + i, 48, 3), dtype=np.uint8)
        torch.manual_seed(i)
        a = t(image)
        with mi_augment.kernel_options(compiled_kernels=False):
            torch.manual_seed(i)
            b = t(image)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


_WITHOUT_NUMBA = """
import sys
sys.modules["numba"] = None  # as if numba were not installed
import numpy as np
from mi_augment.functional import uint8 as U
from mi_augment.functional.uint8 import compiled
img = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
boxes = np.array([[[0, 0, 20, 30], [5, 5, 40, 48]], [[3, 1, 33, 22], [0, 0, 40, 48]]], np.float32)
print(compiled.available(), compiled.status())
print(repr(U.candidate_scores(img, boxes).tolist()))
"""


def test_without_numba_the_scores_are_the_same():
    out = subprocess.run([sys.executable, "-c", _WITHOUT_NUMBA], capture_output=True, text=True, check=True)
    first, scores = out.stdout.strip().splitlines()
    assert first.startswith("False") and "numba is not installed" in first
    img = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    boxes = np.array([[[0, 0, 20, 30], [5, 5, 40, 48]], [[3, 1, 33, 22], [0, 0, 40, 48]]], np.float32)
    np.testing.assert_allclose(ast.literal_eval(scores), U.candidate_scores(img, boxes), rtol=0, atol=1e-12)


_UNDER_A_DEFAULT_DEVICE = """
import numpy as np, torch
torch.set_default_device("meta")  # a process-wide default device other than the CPU, before the first probe
from mi_augment.transforms import MIPairTransform
views = MIPairTransform.simclr(32, n_candidates=8)(np.zeros((40, 40, 3), np.uint8))
from mi_augment.functional.uint8 import compiled
print(views[0].shape, compiled.status())
"""


def test_the_first_probe_runs_on_the_cpu_whatever_the_default_device():
    out = subprocess.run([sys.executable, "-c", _UNDER_A_DEFAULT_DEVICE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("(32, 32, 3)")


@needs_compiled
def test_compiled_luma_is_the_tables_luma_for_every_colour():
    v = np.arange(1 << 24, dtype=np.uint32)
    image = np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
    mine = compiled.luma(image)
    with mi_augment.kernel_options(compiled_kernels=False):
        reference = U.luma(image)
        grey = U.luma(image[:1, :, :1])
    np.testing.assert_array_equal(mine.view(np.uint32), reference.view(np.uint32))
    np.testing.assert_array_equal(compiled.luma(image[:1, :, :1]), grey)


@needs_compiled
@settings(max_examples=40, deadline=None, derandomize=True)
@given(h=st.integers(2, 200), w=st.integers(2, 200), k=st.integers(1, 8), seed=st.integers(0, 2 ** 31 - 1))
def test_compiled_pyramid_and_grid_are_the_numpy_ones(h, w, k, seed):
    """Boxes up to the whole plane against 4 px proxies: every pyramid level in use."""
    rng = np.random.default_rng(seed)
    lum = rng.random((h, w), dtype=np.float32)
    lo = rng.random((k, 2)) * [w, h] * 0.9
    boxes = np.concatenate([lo, lo + (rng.random((k, 2)) * ([w, h] - lo))], 1).astype(np.float32)
    canvas, axes = U.proxy_grid(lum, boxes, 4)
    with mi_augment.kernel_options(compiled_kernels=False):
        ref_canvas, ref_axes = U.proxy_grid(lum, boxes, 4)
    np.testing.assert_array_equal(canvas, ref_canvas)
    np.testing.assert_array_equal(axes, ref_axes)


@needs_compiled
def test_bad_luma_and_pyramid_arguments_name_what_is_wrong():
    with pytest.raises(ValueError, match="image"):
        compiled.luma(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="lum"):
        compiled.pyramid_canvas(np.zeros((4, 4)), 2)
    with pytest.raises(ValueError, match="levels"):
        compiled.pyramid_canvas(np.zeros((4, 4), np.float32), 4)  # a 4 x 4 plane has 3 levels: 4, 2, 1


_TORCH_ROUNDS_OTHERWISE = """
import warnings
import numpy as np, torch
exact = torch.grid_sampler
torch.grid_sampler = lambda *args: exact(*args).nextafter(torch.tensor(2.0))  # a torch built to round otherwise
from mi_augment.functional import uint8 as U
from mi_augment.functional.uint8 import compiled
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ok = compiled.available()
img = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
scores = U.candidate_scores(img, np.array([[[0, 0, 20, 30]], [[3, 1, 33, 22]]], np.float32))
print(ok, scores.shape, [str(w.message) for w in caught if w.category is RuntimeWarning])
print(compiled.status())
"""


def test_a_machine_where_torch_rounds_otherwise_keeps_the_numpy_scorer_and_warns():
    out = subprocess.run([sys.executable, "-c", _TORCH_ROUNDS_OTHERWISE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    first, status = out.stdout.strip().splitlines()
    assert first.startswith("False (1, 1)") and "differs from torch's grid_sample" in first
    assert status.startswith("not used") and "samples on a" in status


def test_numba_without_its_jit_falls_back_with_a_warning():
    """NUMBA_DISABLE_JIT=1 (numba's debugging switch) cannot run the fused multiply-add: numpy scores, a warning."""
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    out = subprocess.run([sys.executable, "-W", "always", "-c", _WITHOUT_NUMBA.replace(
        'sys.modules["numba"] = None  # as if numba were not installed', "")], capture_output=True, text=True,
        env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    first, scores = out.stdout.strip().splitlines()
    assert first.startswith("False not used: numba could not compile or run the kernels")
    assert "RuntimeWarning" in out.stderr
    img = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    boxes = np.array([[[0, 0, 20, 30], [5, 5, 40, 48]], [[3, 1, 33, 22], [0, 0, 40, 48]]], np.float32)
    np.testing.assert_allclose(ast.literal_eval(scores), U.candidate_scores(img, boxes), rtol=0, atol=1e-12)


_NOWHERE_TO_CACHE = """
import numba.core.caching as caching
caching.CacheImpl._locator_classes = []  # no writable place for numba's cache (a read-only install and home)
import numpy as np
from mi_augment.functional import uint8 as U
from mi_augment.functional.uint8 import compiled
img = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
boxes = np.array([[[0, 0, 20, 30], [5, 5, 40, 48]], [[3, 1, 33, 22], [0, 0, 40, 48]]], np.float32)
print(compiled.available(), compiled.status())
print(repr(U.candidate_scores(img, boxes).tolist()))
"""


@needs_compiled
def test_without_a_place_for_numbas_cache_the_kernels_compile_in_memory():
    try:
        from numba.core.caching import CacheImpl
    except ImportError:  # another numba layout: nothing to simulate with
        pytest.skip("numba.core.caching.CacheImpl not found")
    if not hasattr(CacheImpl, "_locator_classes"):
        pytest.skip("numba's cache locators are not where this test expects them")
    out = subprocess.run([sys.executable, "-c", _NOWHERE_TO_CACHE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    first, scores = out.stdout.strip().splitlines()
    assert first.startswith("True used")
    img = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    boxes = np.array([[[0, 0, 20, 30], [5, 5, 40, 48]], [[3, 1, 33, 22], [0, 0, 40, 48]]], np.float32)
    np.testing.assert_allclose(ast.literal_eval(scores), U.candidate_scores(img, boxes), rtol=0, atol=1e-12)
