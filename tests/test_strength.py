"""``strength``: scaling a perturbation model's draws away from identity while keeping their fitted shape."""

import math
import pickle

import pytest
import torch

from mi_augment.perturbations.illumination import IlluminationModel, IlluminationParams
from mi_augment.perturbations.motion import MotionModel, MotionParams
from mi_augment.ssl.views import AugmentOptions, make_views
from mi_augment.transforms.illumination import NaturalIllumination
from mi_augment.transforms.motion import NaturalMotion

from . import checkers

X = checkers.textured_batch(b=4, h=36, w=44)
MODELS = {
    "illumination": IlluminationModel.default,
    "motion": MotionModel.default,
    "illumination[ColorJitter prior]": lambda: IlluminationModel.uniform(0.4, 0.4, 0.4, 0.1),
    "motion[uniform prior]": lambda: MotionModel.uniform(0.1, 10.0, (0.9, 1.1), 0.02),
}
TRANSFORMS = {"NaturalIllumination": NaturalIllumination, "NaturalMotion": NaturalMotion}


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _fields(params):
    return {k: v for k, v in vars(params).items() if isinstance(v, torch.Tensor)}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_strength_zero_samples_identity(name):
    model = MODELS[name]()
    params = model.sample(64, generator=_gen(), strength=0.0)
    identity = model.identity_params(64)
    for key, value in _fields(params).items():
        assert torch.equal(value, _fields(identity)[key]), key


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_strength_zero_transform_is_identity(name):
    out = TRANSFORMS[name](strength=0.0)(X, generator=_gen(1))
    assert torch.allclose(out, X, atol=1e-5)


def test_identity_params_types():
    assert isinstance(IlluminationModel.default().identity_params(2), IlluminationParams)
    motion = MotionModel.default().identity_params(2)
    assert isinstance(motion, MotionParams) and motion.translation.shape == (2, 2)
    assert torch.equal(MotionModel.default().params_to_vector(motion), torch.zeros(2, 6))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_strength_one_is_the_fitted_distribution_exactly(name):
    model = MODELS[name]()
    before = model.params_from_vector(model.density.sample(50, generator=_gen(3)))  # what sample() did before
    for params in (model.sample(50, generator=_gen(3)), model.sample(50, generator=_gen(3), strength=1.0),
                   model.sample(50, generator=_gen(3), strength=1)):
        for key, value in _fields(params).items():
            assert torch.equal(value, _fields(before)[key]), key
        assert torch.equal(model.log_prob(params), model.log_prob(before))


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_strength_one_transform_output_unchanged(name):
    default, explicit = TRANSFORMS[name](), TRANSFORMS[name](strength=1.0)
    assert torch.equal(default(X, generator=_gen(5)), explicit(X, generator=_gen(5)))


@pytest.mark.parametrize("strength", [0.5, 2.0, 4.0])
def test_spread_scales_linearly(strength):
    illumination, motion = IlluminationModel.default(), MotionModel.default()
    base = illumination.sample(4000, generator=_gen(7))
    scaled = illumination.sample(4000, generator=_gen(7), strength=strength)
    # same draws: every photometric coordinate moves exactly `strength` times as far from identity (0)
    assert torch.allclose(scaled.log_gain, strength * base.log_gain, atol=1e-6)
    assert torch.allclose(scaled.shading, strength * base.shading, atol=1e-6)
    # independent draws: the spread grows ~linearly
    other = illumination.sample(4000, generator=_gen(8), strength=strength)
    ratio = other.log_gain.std(0) / base.log_gain.std(0)
    assert torch.allclose(ratio, torch.full_like(ratio, strength), rtol=0.15), ratio
    m_base = motion.sample(4000, generator=_gen(7))
    m_scaled = motion.sample(4000, generator=_gen(7), strength=strength)
    assert torch.allclose(m_scaled.translation, strength * m_base.translation, atol=1e-6)
    assert torch.allclose(m_scaled.rotation, strength * m_base.rotation, atol=1e-6)
    assert torch.allclose(m_scaled.blur_length, strength * m_base.blur_length, atol=1e-6)
    other_t = motion.sample(4000, generator=_gen(8), strength=strength).translation
    iqr = lambda t: t.quantile(0.75, dim=0) - t.quantile(0.25, dim=0)  # noqa: E731 - heavy tails: robust spread
    ratio = iqr(other_t) / iqr(m_base.translation)
    assert torch.allclose(ratio, torch.full_like(ratio, strength), rtol=0.15), ratio


def test_shape_is_kept():
    """Correlations between the density's coordinates do not change with strength."""
    model = IlluminationModel.default()
    a = model.params_to_vector(model.sample(4000, generator=_gen(9)))
    b = model.params_to_vector(model.sample(4000, generator=_gen(9), strength=8.0))
    assert torch.allclose(torch.corrcoef(a.T), torch.corrcoef(b.T), atol=1e-4)


def test_uniform_prior_scales_about_its_identity():
    """ColorJitter's factors scale about 1 (not about 0), hue about 0."""
    model = IlluminationModel.uniform(0.4, 0.4, 0.4, 0.1)
    base = model.sample(200, generator=_gen(2))
    half = model.sample(200, generator=_gen(2), strength=0.5)
    for key in ("brightness", "contrast", "saturation"):
        assert torch.allclose(getattr(half, key) - 1, 0.5 * (getattr(base, key) - 1), atol=1e-6)
    assert torch.allclose(half.hue, 0.5 * base.hue, atol=1e-6)


def test_stronger_draws_are_less_likely_under_the_fitted_density():
    model = IlluminationModel.default()
    lp1 = model.log_prob(model.sample(2000, generator=_gen(4))).mean()
    lp4 = model.log_prob(model.sample(2000, generator=_gen(4), strength=4.0)).mean()
    assert lp4 < lp1


@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf, -math.inf])
def test_bad_strength_value(bad):
    with pytest.raises(ValueError, match="strength"):
        IlluminationModel.default().sample(2, strength=bad)
    with pytest.raises(ValueError, match="strength"):
        MotionModel.default().sample(2, strength=bad)
    for cls in TRANSFORMS.values():
        with pytest.raises(ValueError, match="strength"):
            cls(strength=bad)


@pytest.mark.parametrize("bad", ["2", None, True, torch.tensor(2.0), [1.0]])
def test_bad_strength_type(bad):
    with pytest.raises(TypeError, match="strength"):
        IlluminationModel.default().sample(2, strength=bad)
    for cls in TRANSFORMS.values():
        with pytest.raises(TypeError, match="strength"):
            cls(strength=bad)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_pickle_and_repr(name):
    t = TRANSFORMS[name](strength=3)
    assert t.strength == 3.0 and isinstance(t.strength, float)
    assert "strength=3.0" in repr(t)
    clone = pickle.loads(pickle.dumps(t))
    assert clone.strength == 3.0
    assert torch.equal(clone(X, generator=_gen(6)), t(X, generator=_gen(6)))


def test_recipe_views_carry_strength():
    views = make_views("natural", size=28, channels=1,
                       options=AugmentOptions(natural_strength=2.0, natural_motion_strength=0.5))
    assert views.illumination.strength == 2.0 and views.motion.strength == 0.5
    views = make_views("natural", size=28, channels=1, options=AugmentOptions(natural_strength=3.0))
    assert views.illumination.strength == 3.0 and views.motion.strength == 3.0
    assert make_views("natural", size=28, channels=1).illumination.strength == 1.0


def test_recipe_strength_refused_where_it_would_be_ignored():
    with pytest.raises(ValueError, match="natural_strength"):
        make_views("mi", size=28, channels=1, options=AugmentOptions(mi_photometric="natural", natural_strength=2.0))


def test_pair_transform_strength_scales_the_drawn_perturbations():
    import pickle

    from mi_augment.transforms import MIPairTransform

    x = torch.rand(4, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    shipped = dict(illumination="default", motion="default")
    plain = MIPairTransform(24, policy="random", **shipped)
    zero = MIPairTransform(24, policy="random", illumination_strength=0.0, motion_strength=0.0, **shipped)
    strong = MIPairTransform(24, policy="random", illumination_strength=3.0, motion_strength=2.0, **shipped)
    _, info1 = plain(x, generator=torch.Generator().manual_seed(1), return_info=True)
    _, info0 = zero(x, generator=torch.Generator().manual_seed(1), return_info=True)
    _, info3 = strong(x, generator=torch.Generator().manual_seed(1), return_info=True)
    (light0, _), (light1, motion1), (light3, motion3) = (i.params.perturbations for i in (info0, info1, info3))
    assert torch.equal(light0.log_gain, torch.zeros_like(light0.log_gain))
    assert torch.allclose(light3.log_gain, 3.0 * light1.log_gain, atol=1e-5)
    assert torch.allclose(motion3.translation, 2.0 * motion1.translation, atol=1e-5)
    assert "strength=3.0" in repr(strong)
    again = pickle.loads(pickle.dumps(strong))
    assert again.strengths == strong.strengths
    with pytest.raises(ValueError, match="motion_strength"):
        MIPairTransform(24, motion_strength=-1.0)
    with pytest.raises(ValueError, match="illumination_strength=2.0 scales the illumination model, which is off"):
        MIPairTransform(24, illumination_strength=2.0)  # the natural models are opt-in
