"""NaturalMotion: the shared transform contract (tests/checkers.py) plus motion-specific behaviour."""

from __future__ import annotations

import pytest
import torch

from mi_augment.perturbations.illumination import IlluminationModel
from mi_augment.perturbations.motion import MotionModel
from mi_augment.transforms.motion import NaturalMotion

from . import checkers

X = checkers.textured_batch()


@pytest.fixture(scope="module")
def natural():
    return NaturalMotion()


# the shared battery runs once per transform in tests/test_registry.py (default and strong motion)


def test_default_p_applies_to_every_sample(natural):
    _, params = natural(X, generator=torch.Generator().manual_seed(0), return_params=True)
    assert natural.p == 1.0 and bool(params.applied.all())


def test_bad_arguments():
    with pytest.raises(TypeError, match="MotionModel"):
        NaturalMotion(model=IlluminationModel.default())
    with pytest.raises(ValueError, match="fitted"):
        NaturalMotion(MotionModel())
    with pytest.raises(ValueError, match="p must"):
        NaturalMotion(p=1.5)
    with pytest.raises(ValueError, match="channels"):
        NaturalMotion()(torch.rand(2, 2, 16, 16))
    with pytest.raises(ValueError, match="empty"):
        NaturalMotion()(torch.rand(0, 3, 16, 16))
