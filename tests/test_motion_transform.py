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


@pytest.mark.parametrize("check", checkers.ALL_CHECKS, ids=lambda c: c.__name__)
def test_contract_with_the_default_model(natural, check):
    check(natural, X)


@pytest.mark.parametrize("check", [checkers.check_batch_equals_singles, checkers.check_replay,
                                   checkers.check_no_input_mutation], ids=lambda c: c.__name__)
def test_contract_with_strong_motion(check):
    # large warps and long streaks exercise the per-sample kernels
    model = MotionModel.uniform(max_translation=0.2, max_rotation=20, scale=(0.8, 1.25), max_blur=0.1)
    check(NaturalMotion(model), X)


def test_identity_at_p0():
    checkers.check_identity_at_p0(lambda p: NaturalMotion(p=p), X)


@pytest.mark.cuda
def test_cpu_equals_cuda(natural):
    checkers.check_cpu_equals_cuda(natural, X)


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
