"""Every public transform runs the shared checker battery (tests/checkers.py).

A new ``RandomTransform`` subclass exported from ``mi_augment.transforms`` fails ``test_every_transform_is_registered``
until it is added to ``REGISTRY`` below with a small factory.
"""

import inspect

import pytest
import torch

import mi_augment.transforms as T
from mi_augment.perturbations.illumination import IlluminationModel
from mi_augment.perturbations.motion import MotionModel

from . import checkers


def _motion(p=1.0):
    return T.NaturalMotion(MotionModel.default(), p=p)


REGISTRY = {
    "NaturalMotion": _motion,
    "NaturalIllumination": lambda p=1.0: T.NaturalIllumination(IlluminationModel.default(), p=p),
    "NaturalIllumination[ColorJitter prior]": lambda p=1.0: T.NaturalIllumination(
        IlluminationModel.uniform(0.4, 0.4, 0.4, 0.1), p=p),
    "NaturalIllumination[strength=4]": lambda p=1.0: T.NaturalIllumination(IlluminationModel.default(), p=p,
                                                                           strength=4.0),
    "NaturalMotion[strength=4]": lambda p=1.0: T.NaturalMotion(MotionModel.default(), p=p, strength=4.0),
    # large warps and long streaks exercise the per-sample kernels
    "NaturalMotion[strong]": lambda p=1.0: T.NaturalMotion(MotionModel.uniform(
        max_translation=0.2, max_rotation=20, scale=(0.8, 1.25), max_blur=0.1), p=p),
    "ColorJitter": lambda p=1.0: T.ColorJitter(0.4, 0.4, 0.4, 0.1, p=p),
    "ColorJitter[ranges]": lambda p=1.0: T.ColorJitter((0.5, 1.5), (0.2, 1.8), 0.9, (-0.5, 0.5), p=p),
    "RandomGrayscale": lambda p=0.5: T.RandomGrayscale(p=p),
    "GaussianBlur": lambda p=1.0: T.GaussianBlur(p=p),
    "GaussianBlur[kernel 9]": lambda p=1.0: T.GaussianBlur(9, sigma=(0.5, 3.0), p=p),
    "RandomSolarize": lambda p=0.5: T.RandomSolarize(0.5, p=p),
}
# Transforms that return several views have their own contract tests (tests/test_pair.py).
MULTI_VIEW = {"MIPairTransform"}
X = checkers.textured_batch(b=3, h=36, w=44)


def test_every_transform_is_registered():
    exported = {name for name, obj in vars(T).items()
                if inspect.isclass(obj) and issubclass(obj, T.RandomTransform) and obj is not T.RandomTransform}
    missing = exported - {k.split('[')[0] for k in REGISTRY} - MULTI_VIEW
    assert not missing, f"register these transforms in tests/test_registry.py: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("check", checkers.ALL_CHECKS, ids=lambda c: c.__name__)
def test_transform_contract(name, check):
    check(REGISTRY[name](), X)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_identity_at_p0(name):
    checkers.check_identity_at_p0(REGISTRY[name], X)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_grey_images(name):
    out = REGISTRY[name]()(X[:, :1], generator=torch.Generator().manual_seed(0))
    assert out.shape == X[:, :1].shape


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_cpu_equals_cuda(name):
    checkers.check_cpu_equals_cuda(REGISTRY[name](), X)
