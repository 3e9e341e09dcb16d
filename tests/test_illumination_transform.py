"""NaturalIllumination: the shared transform contract (tests/checkers.py) plus illumination specifics."""

from __future__ import annotations

import pytest
import torch

from mi_augment.perturbations.illumination import IlluminationModel, IlluminationParams
from mi_augment.transforms.illumination import NaturalIllumination

from . import checkers

X = checkers.textured_batch()


@pytest.fixture(scope="module")
def natural():
    return NaturalIllumination()


@pytest.fixture(scope="module")
def jitter():
    return NaturalIllumination(IlluminationModel.uniform(0.4, 0.4, 0.4, 0.1))


# the shared battery runs once per transform in tests/test_registry.py (default model and ColorJitter prior)


def test_greyscale_images(natural, jitter):
    grey = X[:, :1]
    for t in (natural, jitter):
        checkers.check_batch_equals_singles(t, grey)
        checkers.check_output_range_and_shape(t, grey)


def test_params_are_drawn_per_sample_on_the_images_device(natural):
    out, gated = natural(X, generator=torch.Generator().manual_seed(0), return_params=True)
    params = gated.params
    assert isinstance(params, IlluminationParams) and params.batch_size == X.shape[0]
    assert params.device == X.device
    assert len({tuple(r.tolist()) for r in params.log_gain}) == X.shape[0]
    assert not torch.equal(out, X)


def test_default_changes_are_mild_and_colorjitter_changes_are_large(natural, jitter):
    g = torch.Generator().manual_seed(0)
    batch = X[:1].expand(64, -1, -1, -1)
    mild = (natural(batch, generator=g) - batch).abs().mean(dim=(1, 2, 3))
    large = (jitter(batch, generator=g) - batch).abs().mean(dim=(1, 2, 3))
    assert float(mild.median()) < 0.02 < float(large.median())


def test_bad_models_are_refused():
    with pytest.raises(TypeError, match="IlluminationModel"):
        NaturalIllumination(model=3)
    with pytest.raises(ValueError, match="fitted"):
        NaturalIllumination(IlluminationModel())
    with pytest.raises(ValueError, match="channels"):
        NaturalIllumination()(torch.rand(2, 4, 8, 8))
    with pytest.raises(ValueError, match="empty batch"):
        NaturalIllumination()(torch.rand(0, 3, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        NaturalIllumination()(torch.full((3, 8, 8), float("nan")))


def test_repr_names_the_model(natural):
    assert "IlluminationModel" in repr(natural) and "p=1.0" in repr(natural)


def test_model_accepts_an_instance_default_or_a_saved_file(tmp_path):
    from mi_augment.perturbations import IlluminationModel, MotionModel
    from mi_augment.transforms import MIPairTransform, NaturalMotion

    path = IlluminationModel.uniform(0.3, 0.3, 0.3, 0.05).save(tmp_path / "mine.json")
    x = torch.rand(2, 3, 16, 16)
    g = torch.Generator().manual_seed
    from_file = NaturalIllumination(str(path))(x, generator=g(0))
    assert torch.equal(from_file, NaturalIllumination(IlluminationModel.load(path))(x, generator=g(0)))
    assert torch.equal(NaturalIllumination("default")(x, generator=g(1)), NaturalIllumination()(x, generator=g(1)))
    assert isinstance(NaturalMotion("default").model, MotionModel)
    pair = MIPairTransform(8, illumination=path, motion="default", view_transforms=None)
    assert len(pair(x[0], generator=g(2))) == 2
    with pytest.raises(FileNotFoundError, match="model='nope.json'"):
        NaturalIllumination("nope.json")
    with pytest.raises(TypeError, match="model must be a IlluminationModel"):
        NaturalIllumination(MotionModel.default())
    with pytest.raises(TypeError, match="'default'"):
        NaturalIllumination(3)
