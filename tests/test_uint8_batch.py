"""A CPU batch (uint8 or float) of views of at least 48 x 48 px renders image by image on the uint8 kernels with
the torch batch path's draws: the same params and scores (within 1e-4 nats), views within the backend's tolerance (mean |d| <= 1 level,
99.9th percentile <= 4), exact replay."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mi_augment
from mi_augment.transforms import MIPairTransform

PRESETS = {
    "simclr": lambda size, **kw: MIPairTransform.simclr(size, **kw),
    "byol": lambda size, **kw: MIPairTransform.byol(size, **kw),
    "natural": lambda size, **kw: MIPairTransform(size, illumination="default", motion="default",
                                                  view_transforms=None, **kw),
}


def batch(seed: int, b: int, c: int, h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, c, max(2, h // 8), max(2, w // 8), generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return ((x + 0.1 * torch.rand(b, c, h, w, generator=g)).clamp(0, 1) * 255).round().to(torch.uint8)


def as_levels(v: torch.Tensor) -> np.ndarray:
    return (v.float() * 255).round().to(torch.int16).numpy() if v.is_floating_point() else v.to(torch.int16).numpy()


@settings(max_examples=12, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2 ** 31 - 1), b=st.integers(1, 4), grey=st.booleans(), size=st.sampled_from([48, 64]),
       preset=st.sampled_from(sorted(PRESETS)), policy=st.sampled_from(["random", "threshold"]),
       dtype=st.sampled_from(["uint8", "float"]))
def test_batch_on_uint8_kernels_matches_the_torch_batch(seed, b, grey, size, preset, policy, dtype):
    images = batch(seed, b, 1 if grey else 3, 70, 90)
    if dtype == "float":
        images = images.float() / 255
    t = PRESETS[preset](size, policy=policy, n_candidates=4)
    views, info = t(images, generator=torch.Generator().manual_seed(seed), return_info=True)
    with mi_augment.kernel_options(uint8_backend=False):
        ref, ref_info = t(images, generator=torch.Generator().manual_seed(seed), return_info=True)
    if policy != "random":  # a uint8 batch is scored image by image on the uint8 scorer, a float one by torch's
        torch.testing.assert_close(info.scores, ref_info.scores, rtol=0, atol=1e-4)
    assert torch.equal(info.params.boxes, ref_info.params.boxes)
    assert torch.equal(info.params.flip, ref_info.params.flip)
    for mine, theirs in zip(info.params.views, ref_info.params.views):
        assert all(torch.equal(a.applied, b.applied) and a.params.row(0) == b.params.row(0)
                   for a, b in zip(mine, theirs))
    for mine, theirs in zip(views, ref):
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape == (b, images.shape[1], size, size)
        d = np.abs(as_levels(mine) - as_levels(theirs))
        assert d.mean() <= 1.0 and np.percentile(d, 99.9) <= 4, (d.mean(), np.percentile(d, 99.9))
    replayed = t(images, params=info.params)
    assert all(torch.equal(a, b) for a, b in zip(views, replayed))


def test_bad_batches_get_the_torch_paths_errors():
    t = MIPairTransform.simclr(64)
    with pytest.raises(ValueError, match="images"):
        t(torch.rand(2, 3, 70, 70) * 3)
    with pytest.raises(ValueError, match="channel"):
        t(torch.zeros(2, 4, 70, 70, dtype=torch.uint8))


def test_an_unscored_float_batch_is_checked_image_by_image_as_the_torch_path_checks_it():
    t = MIPairTransform.simclr(64, policy="random")  # no scores: each image's range is checked as it is rendered
    images = torch.rand(3, 3, 70, 70)
    for bad, message in ((1.5, "clamp it first"), (float("nan"), "NaN"), (-0.2, "normalised")):
        spoiled = images.clone()
        spoiled[2, 1, 4, 4] = bad  # the last image: the first two are rendered before it is read
        with pytest.raises(ValueError, match=message):
            t(spoiled)
    near = images.clone()
    near[0, 0, 0, 0], near[2, 2, 1, 1] = -5e-4, 1 + 5e-4  # within the tolerance: as if clamped
    views = t(near, generator=torch.Generator().manual_seed(3))
    clamped = t(near.clamp(0, 1), generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(views, clamped))



def test_a_batch_that_requires_grad_takes_the_torch_path():
    """The uint8 kernels cannot read a tensor that records a graph: such a batch gets the torch kernels' views
    (it raised numpy()'s error before)."""
    t = MIPairTransform.simclr(64, policy="random")
    images = torch.rand(2, 3, 70, 70, requires_grad=True)
    views = t(images, generator=torch.Generator().manual_seed(0))
    with mi_augment.kernel_options(uint8_backend=False):
        reference = t(images, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(views, reference))
