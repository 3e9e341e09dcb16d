"""The natural models on one image (issue 23): the Python-float forms of the per-image steps equal the tensor
computations they stand in for.

Each fast form is checked against its reference through public functions: the density's component draw
(``torch.multinomial`` written out) and the view-frame rescaling exactly, the similarity matrices within
float64 rounding (the C library's ``exp`` / ``cos`` / ``sin`` against torch's, 1e-12 relative), the motion
blur kernels and the shading field within float32 rounding (1e-6 per tap; 2e-6 relative).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mi_augment import kernel_options
from mi_augment.functional import uint8
from mi_augment.functional.geometry import (
    motion_blur_kernel,
    motion_blur_kernel_size,
    motion_blur_kernels,
    similarity_matrices,
    similarity_matrix,
)
from mi_augment.functional.shading import cached_shading_basis, render_shading_field, shading_fields
from mi_augment.pairs.plan import PairParams, flatten_views, stack_views
from mi_augment.pairs.render import in_view_frame, view_frame_rows
from mi_augment.perturbations import IlluminationModel, MotionModel
from mi_augment.perturbations.densities import GaussianMixtureDensity

SETTINGS = dict(max_examples=60, deadline=None, derandomize=True)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 9), components=st.integers(1, 7), dim=st.integers(1, 9))
def test_mixture_draws_equal_multinomials_and_keep_the_stream(seed, n, components, dim):
    g = _gen(seed)
    weights = torch.rand(components, generator=g, dtype=torch.float64) + 0.01
    a = torch.randn(components, dim, dim, generator=g, dtype=torch.float64)
    density = GaussianMixtureDensity.from_parameters(weights, torch.randn(components, dim, generator=g,
                                                                          dtype=torch.float64),
                                                     a @ a.transpose(1, 2) + torch.eye(dim, dtype=torch.float64))
    fast_gen, plain_gen = _gen(seed), _gen(seed)
    fast = density.sample(n, generator=fast_gen)
    with kernel_options(fast_paths=False):
        plain = density.sample(n, generator=plain_gen)
    assert torch.equal(fast, plain)
    assert torch.equal(torch.rand(3, generator=fast_gen), torch.rand(3, generator=plain_gen))  # the same stream


def test_mixture_conversions_follow_a_refit():
    density = GaussianMixtureDensity.from_parameters(torch.ones(1), torch.zeros(1, 2), torch.eye(2)[None])
    before = density.sample(4, generator=_gen(0))
    density.means = torch.full((1, 2), 100.0, dtype=torch.float64)
    assert bool((density.sample(4, generator=_gen(0)) - before).sub(100.0).abs().max() < 1e-4)
    density.means.add_(-100.0)  # modified in place: converted again
    assert torch.equal(density.sample(4, generator=_gen(0)), before)


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 8), height=st.integers(1, 300), width=st.integers(1, 300))
def test_similarity_matrix_is_the_tensor_kernel(seed, b, height, width):
    g = _gen(seed)
    log_scale = 0.2 * torch.randn(b, 1, generator=g, dtype=torch.float64)
    rotation = torch.randn(b, 1, generator=g, dtype=torch.float64)
    translation = 0.2 * torch.randn(b, 2, generator=g, dtype=torch.float64)
    with kernel_options(fast_paths=False):
        reference = similarity_matrices(log_scale, rotation, translation, height, width)
    rows = [similarity_matrix(s, r, dx, dy, height, width) for s, r, (dx, dy) in
            zip(log_scale[:, 0].tolist(), rotation[:, 0].tolist(), translation.tolist())]
    scale = max(height, width)
    assert torch.allclose(torch.tensor(rows, dtype=torch.float64), reference, rtol=0, atol=1e-12 * scale)
    assert torch.allclose(similarity_matrices(log_scale, rotation, translation, height, width), reference, rtol=0,
                          atol=1e-12 * scale)


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 8), longest=st.sampled_from([0.0, 0.05, 1.0, 3.0, 12.0]),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_motion_blur_kernels_on_python_floats_are_the_tensor_kernels(seed, b, longest, dtype):
    g = _gen(seed)
    length = (longest * torch.rand(b, generator=g)).to(dtype)
    length[0] = longest if seed % 2 else 0.0
    angle = (8 * torch.rand(b, generator=g) - 4).to(dtype)
    fast = motion_blur_kernels(length, angle)
    with kernel_options(fast_paths=False):
        reference = motion_blur_kernels(length, angle)
    assert fast.shape == reference.shape and fast.dtype == reference.dtype
    assert float((fast - reference).abs().max()) <= 1e-6
    k = motion_blur_kernel_size(float(length.max()))
    assert k == reference.shape[-1]
    one = torch.tensor(motion_blur_kernel(float(length[-1]), float(angle[-1]), k), dtype=torch.float64)
    assert float((one.view(k, k) - reference[-1].double()).abs().max()) <= 1e-6
    assert math.isclose(float(one.sum()), 1.0, abs_tol=1e-12)


def _motion_params(seed: int, views: int, dtype: torch.dtype) -> tuple[PairParams, int, int]:
    g = _gen(seed)
    height, width = (int(v) for v in torch.randint(4, 400, (2,), generator=g))
    x1 = torch.rand(1, views, generator=g) * width * 0.9
    y1 = torch.rand(1, views, generator=g) * height * 0.9
    x2 = x1 + (width - x1) * (0.01 + 0.99 * torch.rand(1, views, generator=g))
    y2 = y1 + (height - y1) * (0.01 + 0.99 * torch.rand(1, views, generator=g))
    draws = MotionModel.default().sample(views, generator=g, strength=float(1 + seed % 10))
    draws = draws.map(lambda t: t.to(dtype).view(1, views, *t.shape[1:]))
    return PairParams(torch.stack([x1, y1, x2, y2], -1), torch.zeros(1, views, dtype=torch.bool), (draws,)), height, width


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), views=st.integers(1, 4), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_view_frame_rows_are_in_view_frame_exactly(seed, views, dtype):
    params, height, width = _motion_params(seed, views, dtype)
    models = [MotionModel.default(), IlluminationModel.default()]
    light = IlluminationModel.default().sample(views, generator=_gen(seed)).map(lambda t: t.view(1, views, -1))
    params = PairParams(params.boxes, params.flip, (params.perturbations[0], light))
    rows = view_frame_rows(models, params, height, width)
    framed = in_view_frame(models, params.perturbations, params.boxes, height, width)
    for row, p in zip(rows, framed):
        flat = flatten_views(p)
        assert row == {k: v.tolist() for k, v in flat.as_dict().items()}
    with kernel_options(fast_paths=False):
        assert view_frame_rows(models, params, height, width) == rows


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), flip=st.booleans(), side=st.integers(3, 120), size=st.integers(2, 40))
def test_uint8_crop_warp_is_the_composed_inverse(seed, flip, side, size):
    """The warp's inverse and the three products on Python floats give the matrix numpy's inverse gives; the
    reflection by padding and a replicated border (OpenCV's faster remap) samples as ``BORDER_REFLECT_101``
    does, within one level (the two remaps' rounding)."""
    params, _, _ = _motion_params(seed, 1, torch.float32)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (side, side + 3, 3), dtype=np.uint8)
    x1, y1 = rng.uniform(0, side / 2, 2)
    box = (x1, y1, x1 + rng.uniform(1, side / 2), y1 + rng.uniform(1, side / 2))
    p = params.perturbations[0]
    m = similarity_matrices(p.log_scale[0].double(), p.rotation[0].double(), p.translation[0].double(), size,
                            size)[0].numpy()
    sx = max(1, math.ceil((box[2] - box[0]) / size))
    sy = max(1, math.ceil((box[3] - box[1]) / size))
    crop = np.vstack([uint8.crop_matrix(box, size, flip), [0.0, 0.0, 1.0]])
    sub = np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5], [0, 0, 1]])
    expected = cv2.warpAffine(image, (crop @ np.linalg.inv(m) @ sub)[:2], (size * sx, size * sy),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT_101)
    if sx > 1 or sy > 1:
        expected = cv2.resize(expected, (size, size), interpolation=cv2.INTER_AREA)
    mine = uint8.crop_warp(image, box, size, m, flip).astype(np.int16)
    assert mine.shape == expected.shape and int(np.abs(mine - expected).max()) <= 1


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(0, 4), degree=st.integers(0, 3), height=st.integers(1, 50),
       width=st.integers(1, 50))
def test_shading_field_is_its_definition(seed, b, degree, height, width):
    size = (degree + 1) * (degree + 2) // 2 - 1
    coeffs = 0.3 * torch.randn(b, size, generator=_gen(seed))
    basis = cached_shading_basis(height, width, degree, torch.device("cpu"), torch.float32)
    expected = torch.einsum("bs,shw->bhw", coeffs, basis).exp().unsqueeze(1)
    assert torch.allclose(render_shading_field(coeffs, height, width), expected, rtol=2e-6, atol=0)  # float32 rounding


def _tensor_draws(model, n: int, seed: int, strength: float):
    """What ``model.sample`` computes for a batch: the density's tensor draws, the strength, the vector map."""
    z = model.density.sample(n, generator=_gen(seed))
    if strength != 1.0:
        z_id = model.params_to_vector(model.identity_params(1)).to(z.dtype)
        z = z_id + strength * (z - z_id)
    return model.params_from_vector(z)


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 8), strength=st.sampled_from([0.0, 0.5, 1.0, 10.0]),
       kind=st.sampled_from(["motion", "illumination"]))
def test_one_images_draws_are_the_tensor_draws_within_float32_rounding(seed, n, strength, kind):
    """A few draws (one image's views) are computed on Python floats: the same stream, components and shapes,
    values within float32 rounding (the mixture's sum in float64, atan2 / hypot correctly rounded)."""
    model = (MotionModel if kind == "motion" else IlluminationModel).default()
    gen = _gen(seed)
    fast = model.sample(n, generator=gen, strength=strength)
    reference = _tensor_draws(model, n, seed, strength)
    for name, value in fast.as_dict().items():
        expected = reference.as_dict()[name]
        assert value.shape == expected.shape and value.dtype == expected.dtype
        assert torch.allclose(value, expected, rtol=1e-5, atol=1e-6 * max(1.0, strength)), name
    ref_gen = _gen(seed)
    model.density.sample(n, generator=ref_gen)
    assert torch.equal(torch.rand(3, generator=gen), torch.rand(3, generator=ref_gen))  # the same stream after


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 8))
def test_mixture_rows_are_its_tensor_draws_within_float32_rounding(seed, n):
    density = MotionModel.default().density
    rows = density.sample_rows(n, _gen(seed))
    reference = density.sample(n, generator=_gen(seed))
    assert torch.allclose(torch.tensor(rows, dtype=torch.float32).reshape(reference.shape), reference, rtol=1e-5,
                          atol=1e-5)


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 5), views=st.integers(1, 3),
       strength=st.sampled_from([0.5, 1.0, 10.0]),
       model=st.sampled_from(["motion", "illumination", "jitter", "uniform_motion"]))
def test_sample_views_is_sample_in_view_layout(seed, batch, views, strength, model):
    """``sample_views`` (what plan_candidates draws) equals ``sample`` reshaped to ``(B, V, ...)`` exactly, for
    one image's few draws (built in that layout) and for batches."""
    m = {"motion": MotionModel.default, "illumination": IlluminationModel.default,
         "jitter": IlluminationModel.uniform, "uniform_motion": MotionModel.uniform}[model]()
    fast = m.sample_views(batch, views, _gen(seed), strength=strength)
    reference = stack_views(m.sample(batch * views, generator=_gen(seed), strength=strength), batch, views)
    for name, value in fast.as_dict().items():
        assert value.shape == reference.as_dict()[name].shape
        assert torch.equal(value, reference.as_dict()[name]), name


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), views=st.integers(1, 8), strength=st.sampled_from([0.0, 0.5, 1.0, 10.0]),
       model=st.sampled_from(["motion", "illumination", "jitter", "uniform_motion"]))
def test_view_rows_are_the_sample_views_values(seed, views, strength, model):
    """``sample_view_rows`` (one image's draws as Python rows, the lean one-image call's) gives the values of
    ``sample_views(1, V)`` field by field, and leaves the generator where it does."""
    m = {"motion": MotionModel.default, "illumination": IlluminationModel.default,
         "jitter": IlluminationModel.uniform, "uniform_motion": MotionModel.uniform}[model]()
    g, ref_g = _gen(seed), _gen(seed)
    rows = m.sample_view_rows(views, g, strength)
    if rows is None:  # a density without few-row draws (the uniform ones): nothing drawn, the caller samples views
        assert model in ("jitter", "uniform_motion") and torch.equal(g.get_state(), ref_g.get_state())
        return
    reference = m.sample_views(1, views, ref_g, strength=strength)
    assert rows == {name: value.tolist()[0] for name, value in reference.as_dict().items()}
    assert torch.equal(g.get_state(), ref_g.get_state())


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 4), degree=st.integers(1, 3), height=st.integers(1, 60),
       width=st.integers(1, 60))
def test_shading_fields_on_numpy_are_the_tensor_fields(seed, b, degree, height, width):
    size = (degree + 1) * (degree + 2) // 2 - 1
    coeffs = 0.5 * torch.randn(b, size, generator=_gen(seed))
    fields = shading_fields(coeffs.tolist(), height, width)
    assert fields.dtype == np.float32 and fields.shape == (b, height, width)
    assert np.allclose(fields, render_shading_field(coeffs, height, width)[:, 0].numpy(), rtol=1e-5, atol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_large_shaded_views_match_the_torch_kernels(seed):
    """At 128 px and above the shaded illumination renders with its field's 1/2.4 power
    (``uint8.illuminate``'s ``field_root``): still within the backend's tolerance of the torch kernels."""
    from mi_augment.transforms import MIPairTransform

    rng = np.random.default_rng(seed)
    image = np.repeat(np.repeat(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8), 8, 0), 8, 1)
    t = MIPairTransform(128, illumination="default", motion="default", view_transforms=None, policy="random")
    views, info = t(image, generator=torch.Generator().manual_seed(seed), return_info=True)
    assert any(bool(p.shading.any()) for p in info.params.perturbations if hasattr(p, "shading"))
    with kernel_options(uint8_backend=False):
        reference = t(image, generator=torch.Generator().manual_seed(seed))
    for mine, ref in zip(views, reference):
        d = np.abs(mine.astype(np.int16) - ref.astype(np.int16))
        assert d.mean() <= 1.0 and np.percentile(d, 99.9) <= 4, (d.mean(), np.percentile(d, 99.9))
