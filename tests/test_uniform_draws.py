"""Draws as uniforms: a transform's ``row_from_uniforms`` (Python numbers, what the CPU uint8 backend renders
one image with) equals ``params_from_uniforms`` (the tensors of ``make_params``) exactly, and the one-image
path draws the same numbers from the generator as the torch path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import mi_augment
from mi_augment.transforms import (
    ColorJitter,
    GaussianBlur,
    MIPairTransform,
    RandomGrayscale,
    RandomSolarize,
)

FLOAT32_UNIFORM = st.integers(0, 2 ** 24 - 1).map(lambda k: k / 2 ** 24)  # torch.rand's float32 values
FACTOR = st.one_of(st.none(), st.floats(0.0, 2.0), st.tuples(st.floats(0.0, 1.0), st.floats(1.0, 3.0)))


@st.composite
def transforms(draw):
    kind = draw(st.sampled_from(["jitter", "blur", "grey", "solarize"]))
    if kind == "jitter":
        hue = draw(st.one_of(st.none(), st.floats(0.0, 0.5), st.tuples(st.floats(-0.5, 0.0), st.floats(0.0, 0.5))))
        return ColorJitter(draw(FACTOR), draw(FACTOR), draw(FACTOR), hue)
    if kind == "blur":
        low = draw(st.floats(0.01, 3.0))
        return GaussianBlur(sigma=(low, low + draw(st.floats(0.0, 3.0))))
    return RandomGrayscale() if kind == "grey" else RandomSolarize()


@settings(max_examples=300, deadline=None, derandomize=True)
@given(t=transforms(), data=st.data())
def test_row_from_uniforms_equals_the_params_row(t, data):
    n = t.uniforms_per_sample()
    u = data.draw(st.lists(FLOAT32_UNIFORM, min_size=n, max_size=n))
    params = t.params_from_uniforms(torch.tensor([u], dtype=torch.float32).view(1, n))
    assert t.row_from_uniforms(u) == params.row(0)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(t=transforms(), b=st.integers(1, 6), seed=st.integers(0, 2 ** 31 - 1))
def test_a_batchs_rows_are_its_samples_rows(t, b, seed):
    params = t.make_params(torch.empty(b, 3, 8, 8), generator=torch.Generator().manual_seed(seed))
    assert params.rows() == [params.row(i) for i in range(b)]


def test_natural_params_rows_are_their_samples_rows():
    from mi_augment.perturbations import IlluminationModel, MotionModel

    for model in (IlluminationModel.default(), MotionModel.default()):
        params = model.sample(5, generator=torch.Generator().manual_seed(0))
        assert params.rows() == [params.row(i) for i in range(5)]


def test_make_params_is_params_from_uniforms_of_the_generators_draws():
    t = ColorJitter(0.4, 0.4, 0.4, 0.1)
    made = t.make_params(torch.rand(5, 3, 4, 4), generator=torch.Generator().manual_seed(3))
    u = torch.rand((5, t.uniforms_per_sample()), generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(made.as_dict().values(), t.params_from_uniforms(u).as_dict().values()))


def pil_image(seed: int, side: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (side, side + 3, 3), dtype=np.uint8))


@pytest.mark.parametrize("preset", ["simclr", "byol", "moco_v3"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_image_draws_the_torch_paths_view_params(preset, seed):
    """The uint8 path's view-pipeline params (gates and factors) are the torch path's, and both leave the
    generator in the same state (the same number of draws)."""
    t = getattr(MIPairTransform, preset)(32, policy="random")
    image = pil_image(seed, 40)
    g, g_ref = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    _, info = t(image, generator=g, return_info=True)
    with mi_augment.kernel_options(uint8_backend=False):
        _, ref = t(image, generator=g_ref, return_info=True)
    assert torch.equal(g.get_state(), g_ref.get_state())
    for mine, theirs in zip(info.params.views, ref.params.views):
        for a, b in zip(mine, theirs):
            assert torch.equal(a.applied, b.applied)
            assert a.params.row(0) == b.params.row(0)


def test_views_do_not_depend_on_return_info():
    t = MIPairTransform.simclr(32)
    image = pil_image(5, 48)
    plain = t(image, generator=torch.Generator().manual_seed(7))
    views, info = t(image, generator=torch.Generator().manual_seed(7), return_info=True)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(plain, views))
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(views, t(image, params=info.params)))


def test_a_transform_without_uniforms_says_what_to_define():
    class Bare(ColorJitter):
        def uniforms_per_sample(self):
            return None

    with pytest.raises(NotImplementedError, match="make_params nor uniforms_per_sample"):
        Bare(0.4).make_params(torch.rand(1, 3, 4, 4))
