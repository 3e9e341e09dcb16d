from dataclasses import dataclass

import pytest
import torch

from mi_augment.core.params import Params
from mi_augment.core.random import rand
from mi_augment.transforms.base import RandomTransform

from . import checkers


@dataclass(frozen=True)
class _GainParams(Params):
    gain: torch.Tensor


class _Gain(RandomTransform):
    """A minimal transform used to test the shared contract itself."""

    def make_params(self, images, generator=None):
        return _GainParams(0.5 + rand((images.shape[0], 1, 1, 1), generator, images.device))

    def transform(self, images, params):
        return (images * params.gain).clamp(0, 1)


X = checkers.textured_batch()


@pytest.mark.parametrize("check", checkers.ALL_CHECKS, ids=lambda c: c.__name__)
def test_base_contract(check):
    check(_Gain(), X)


def test_identity_at_p0():
    checkers.check_identity_at_p0(_Gain, X)


def test_p_gate_is_per_sample():
    t = _Gain(p=0.5)
    x = checkers.textured_batch(b=64)
    out, params = t(x, generator=torch.Generator().manual_seed(0), return_params=True)
    applied = params.applied
    assert 10 < int(applied.sum()) < 54
    assert torch.equal(out[~applied], x[~applied])
    assert not torch.equal(out[applied], x[applied])


def test_bad_input_errors():
    t = _Gain()
    with pytest.raises(ValueError, match="channels"):
        t(torch.rand(2, 4, 8, 8))
    with pytest.raises(ValueError, match="empty batch"):
        t(torch.rand(0, 3, 8, 8))
    with pytest.raises(ValueError, match="NaN or inf"):
        t(torch.full((3, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="shape"):
        t(torch.rand(8, 8))
    with pytest.raises(TypeError, match="dtype"):
        t(torch.zeros(3, 8, 8, dtype=torch.int32))
    with pytest.raises(ValueError, match="p must be"):
        _Gain(p=1.5)
    with pytest.raises(TypeError, match="generator"):
        t(X, generator=0)
    with pytest.raises(ValueError, match="batch size"):
        _, params = t(X, return_params=True)
        t(X[:2], params=params)


@pytest.mark.parametrize("name", ["illumination", "motion"])
def test_model_transforms_render_large_cpu_batches_in_chunks_with_the_same_result(name):
    """Large CPU batches go through the model a few images at a time (cache-sized buffers); with the same
    params that equals one whole-batch call."""
    from mi_augment import kernel_options
    from mi_augment.transforms.illumination import NaturalIllumination
    from mi_augment.transforms.motion import NaturalMotion

    t = NaturalIllumination() if name == "illumination" else NaturalMotion(strength=4.0)
    x = torch.rand(7, 3, 24, 20, generator=torch.Generator().manual_seed(0))
    whole, params = t(x, generator=torch.Generator().manual_seed(1), return_params=True)
    with kernel_options(cpu_chunk_elements=1):
        chunked = t(x, params=params)
    assert (chunked - whole).abs().max() < 1e-5
    assert (chunked - x).abs().max() > 1e-3  # the perturbation was really applied
