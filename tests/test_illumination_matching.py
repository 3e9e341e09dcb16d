"""NaturalIllumination.matching: the strength whose brightness spread equals a reference transform's (the
configuration that trained level with ColorJitter in the ablation, where the fitted strength trained worse)."""

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from mi_augment.transforms import NaturalIllumination
from mi_augment.transforms.illumination import brightness_spread


def _images(n: int, size: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 0.6 + 0.2


def test_matches_torchvision_colorjitter_spread_on_fresh_draws():
    x = _images(1024)
    jitter = T.ColorJitter(0.4, 0.4, 0.4, 0.1)
    natural = NaturalIllumination.matching(jitter, x)
    assert natural.strength > 10  # real exposure changes are far milder than ColorJitter's
    torch.manual_seed(5)
    target = brightness_spread(torch.stack([jitter(im) for im in x]), x)
    fresh = brightness_spread(natural(x, generator=torch.Generator().manual_seed(5)), x)
    assert fresh == pytest.approx(target, rel=0.1)
    assert brightness_spread(NaturalIllumination()(x, generator=torch.Generator().manual_seed(5)), x) < target / 10


def test_recovers_the_strength_of_a_natural_reference():
    x = _images(1024, size=8)
    found = NaturalIllumination.matching(NaturalIllumination(strength=3.0), x, seed=1).strength
    assert found == pytest.approx(3.0, rel=0.1)


def test_deterministic_for_a_seed_and_leaves_the_global_generator_alone():
    x = _images(64)
    state = torch.get_rng_state()
    a = NaturalIllumination.matching(T.ColorJitter(brightness=0.3), x, seed=3, iterations=10)
    assert torch.equal(torch.get_rng_state(), state)
    b = NaturalIllumination.matching(T.ColorJitter(brightness=0.3), x, seed=3, iterations=10)
    assert a.strength == b.strength and a.strength > 1
    stronger = NaturalIllumination.matching(T.ColorJitter(brightness=0.6), x, seed=3, iterations=10)
    assert stronger.strength > a.strength


def test_takes_pil_images_and_uint8_batches_and_keeps_p():
    pil = [Image.fromarray((im.permute(1, 2, 0).numpy() * 255).astype(np.uint8)) for im in _images(40)]
    natural = NaturalIllumination.matching(T.ColorJitter(brightness=0.4), pil, p=0.5, iterations=8)
    assert natural.p == 0.5 and natural.strength > 1
    as_uint8 = (_images(40) * 255).to(torch.uint8)
    assert NaturalIllumination.matching(T.ColorJitter(brightness=0.4), as_uint8, iterations=8).strength > 1


def test_bad_input_is_refused_with_the_argument_named():
    x = _images(32)
    with pytest.raises(TypeError, match="reference must be a callable"):
        NaturalIllumination.matching("colorjitter", x)
    with pytest.raises(ValueError, match="at least 20 images"):
        NaturalIllumination.matching(T.ColorJitter(0.4), x[:5])
    with pytest.raises(ValueError, match="does not change the images' brightness"):
        NaturalIllumination.matching(lambda im: im, x)
    with pytest.raises(ValueError, match="widen strength_range"):
        NaturalIllumination.matching(T.ColorJitter(brightness=0.8), x, strength_range=(0.5, 1.0))
    with pytest.raises(ValueError, match="input's shape"):
        NaturalIllumination.matching(lambda im: im[:, :4, :4], x)
    with pytest.raises(ValueError, match="strength_range"):
        NaturalIllumination.matching(T.ColorJitter(0.4), x, strength_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="one shape"):
        NaturalIllumination.matching(T.ColorJitter(0.4), [im for im in x[:20]] + [torch.rand(3, 5, 5)])
    with pytest.raises(ValueError, match="changed must have the shape"):
        brightness_spread(x[:4], x)


def test_brightness_spread_is_zero_for_no_change_and_grows_with_the_change():
    x = _images(200)
    assert brightness_spread(x.clone(), x) == 0
    gains = torch.linspace(0.5, 1.5, 200).view(-1, 1, 1, 1)
    wide = brightness_spread((x * gains).clamp(0, 1), x)
    narrow = brightness_spread((x * gains.sqrt()).clamp(0, 1), x)
    assert 0 < narrow < wide
