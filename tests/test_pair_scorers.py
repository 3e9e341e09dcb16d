"""The scorer registry: every scorer by name, settings passed through, clear errors."""

import pytest
import torch
from torch import nn

from mi_augment.pairs import SCORERS, FeatureScorer, PixelMIScorer, make_scorer


def test_every_scorer_class_in_the_package_is_registered():
    import mi_augment.pairs as pairs

    classes = {getattr(pairs, n) for n in pairs.__all__ if n.endswith("Scorer") and isinstance(getattr(pairs, n), type)}
    assert classes == set(SCORERS.values())


def test_make_scorer_passes_settings_and_scores():
    scorer = make_scorer("pixel", bins=8)
    assert isinstance(scorer, PixelMIScorer) and scorer.bins == 8
    a = torch.rand(2, 3, 64)
    assert make_scorer("pixel")(a, a).shape == (2, 3)
    assert make_scorer("iou")(torch.rand(2, 3, 8, 8), torch.zeros(2, 3, 4) + torch.tensor([0., 0, 4, 4]),
                              torch.zeros(2, 3, 4) + torch.tensor([0., 0, 4, 4])).eq(1).all()
    feature = make_scorer("feature", encoder=nn.Flatten(), temperature=0.5)
    assert isinstance(feature, FeatureScorer) and feature.temperature == 0.5


def test_make_scorer_returns_a_ready_scorer_unchanged():
    def fn(a, b):
        return (a - b).abs().mean(-1)

    assert make_scorer(fn) is fn


@pytest.mark.parametrize("call, error, words", [
    (lambda: make_scorer("nope"), ValueError, "scorer must be one of"),
    (lambda: make_scorer(3), TypeError, "scorer must be a name"),
    (lambda: make_scorer("feature"), ValueError, "encoder"),
    (lambda: make_scorer(lambda a, b: a, bins=3), ValueError, "ready-made"),
])
def test_make_scorer_refuses_bad_input(call, error, words):
    with pytest.raises(error, match=words):
        call()
