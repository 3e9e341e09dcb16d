"""The per-image speed paths (issue 12 item 7) render what the public implementations render: every check runs
the same call with the speed paths on and inside ``mi_augment.kernel_options(fast_paths=False)``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import mi_augment
import mi_augment.transforms as T
from mi_augment.functional import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    rgb_to_grayscale,
)
from mi_augment.transforms.pair import MIPairTransform

ATOL = 2e-5


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _colourful(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    x = torch.rand(b, 3, h, w, generator=_gen(seed))
    x[:, :, 0] = x[:, :1, 0]  # grey rows (zero chroma)
    x[:, 1, 1] = x[:, 0, 1]  # ties between the maximal channels
    x[:, :, 2, :2] = 0.0  # black
    return x


@pytest.mark.parametrize("batch, side", [(1, 9), (5, 9), (5, 40)])  # small images and large batches
def test_adjust_hue_speed_path_is_kornias_hsv_rotation(batch, side):
    x = _colourful(batch, side, side + 2)
    shifts = torch.linspace(-0.5, 0.5, batch) if batch > 1 else torch.tensor([0.37])
    fast = adjust_hue(x, shifts)
    with mi_augment.kernel_options(fast_paths=False):
        ref = adjust_hue(x, shifts)
    torch.testing.assert_close(fast, ref, atol=ATOL, rtol=0)
    assert not torch.equal(fast, x)  # the shift did change the colours


def test_adjust_hue_speed_path_full_turns_return_the_image():
    x = _colourful(3, 6, 6)
    for shift in (0.0, 0.5, -0.5):
        back = adjust_hue(adjust_hue(x, torch.full((3,), shift)), torch.full((3,), -shift))
        torch.testing.assert_close(back, x, atol=ATOL, rtol=0)



@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kernel", [adjust_brightness, adjust_contrast, adjust_saturation])
def test_adjust_speed_paths_are_kornias_blends(kernel, channels):
    x = _colourful(4, 7, 9)[:, :channels]
    factors = torch.tensor([0.0, 0.6, 1.0, 1.7])
    fast = kernel(x, factors)
    with mi_augment.kernel_options(fast_paths=False):
        ref = kernel(x, factors)
    torch.testing.assert_close(fast, ref, atol=1e-6, rtol=0)
    assert fast.shape == x.shape and fast.min() >= 0 and fast.max() <= 1
    with mi_augment.kernel_options(fast_paths=False):  # one number for every sample
        ref = kernel(x, 0.7)
    torch.testing.assert_close(kernel(x, 0.7), ref, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="non-negative"):
        kernel(x, -0.5)


def test_adjust_hue_speed_path_takes_one_number_and_refuses_out_of_range():
    x = _colourful(2, 6, 7)
    with mi_augment.kernel_options(fast_paths=False):
        ref = adjust_hue(x, 0.3)
    torch.testing.assert_close(adjust_hue(x, 0.3), ref, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match=r"hue shifts must be in \[-0.5, 0.5\]"):
        adjust_hue(x, 0.7)


def test_luma_speed_path_is_kornias_weights():
    x = _colourful(3, 5, 6)
    with mi_augment.kernel_options(fast_paths=False):
        ref = rgb_to_grayscale(x)
    torch.testing.assert_close(rgb_to_grayscale(x), ref, atol=1e-7, rtol=0)
    torch.testing.assert_close(rgb_to_grayscale(x[0]), ref[0], atol=1e-7, rtol=0)

@pytest.mark.parametrize("channels", [1, 3])
def test_color_jitter_one_image_matches_the_batched_reference(channels):
    jitter = T.ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0)
    for seed in range(8):
        x = _colourful(1, 12, 10, seed)[:, :channels]
        before = x.clone()
        fast, params = jitter(x, generator=_gen(seed), return_params=True)
        assert torch.equal(x, before)
        with mi_augment.kernel_options(fast_paths=False):
            ref = jitter(x, params=params)
        torch.testing.assert_close(fast, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize("side", [16, 64])  # (from 64 x 64 pixels, samples are grouped by their operations)
@pytest.mark.parametrize("jitter", [T.ColorJitter(0.4, (0.6, 1.0), 0.4, 0.1, p=1.0), T.ColorJitter(0, 0.4, 0, 0.2),
                                    T.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.5)])
def test_color_jitter_batch_matches_the_reference(jitter, side):
    x = _colourful(32, side, side, seed=3)
    before = x.clone()
    fast, params = jitter(x, generator=_gen(3), return_params=True)
    assert torch.equal(x, before)  # the kernels write into copies of their own only
    with mi_augment.kernel_options(fast_paths=False):
        ref = jitter(x, params=params)
    torch.testing.assert_close(fast, ref, atol=ATOL, rtol=0)
    assert len({tuple(o) for o in params.params.order.tolist()}) > 10  # many distinct orders in one batch


# (with the motion model on, the fused warp reads the scene around the crop, by design not what the steps render)
@pytest.mark.parametrize("make", [lambda: MIPairTransform(32, policy="random", motion=False),
                                  lambda: MIPairTransform.simclr(32, policy="random"),
                                  lambda: MIPairTransform.simclr(32, n_candidates=8, blur=False),
                                  lambda: MIPairTransform(24, n_candidates=8, motion=False)])
def test_pair_on_one_image_matches_the_reference(make):
    pair = make()
    for seed in range(4):
        x = _colourful(1, 40, 48, seed)[0]
        fast, info = pair(x, generator=_gen(seed), return_info=True)
        with mi_augment.kernel_options(fast_paths=False):
            ref, ref_info = pair(x, generator=_gen(seed), return_info=True)
        torch.testing.assert_close(info.params.boxes, ref_info.params.boxes)
        torch.testing.assert_close(info.iou, ref_info.iou)
        assert len(fast) == 2 and fast[0].shape == (3, *pair.size)
        for a, b in zip(fast, ref):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


@pytest.mark.parametrize("size", [16, 72])  # (PIL views of 64 x 64 pixels and more are merged from planes)
def test_pair_on_a_pil_image_returns_the_float_views_rounded_to_bytes(size):
    from PIL import Image

    pair = MIPairTransform.simclr(size, policy="random", blur=False)
    x = (_colourful(1, 80, 80, 5)[0] * 255).round().to(torch.uint8)
    views = pair(Image.fromarray(x.permute(1, 2, 0).numpy()), generator=_gen(5))
    float_views = pair(x.float() / 255, generator=_gen(5))
    for view, float_view in zip(views, float_views):
        assert view.mode == "RGB" and view.size == (size, size)
        expected = (float_view * 255).round().clamp(0, 255).to(torch.uint8)
        assert torch.equal(torch.from_numpy(np.array(view)).permute(2, 0, 1), expected)


@pytest.mark.parametrize("size", [20, 64])
def test_pair_pipelines_equal_each_transform_applied_to_the_rendered_views(size):
    # the gates write into the pair's own view buffers; the result is what each transform's public call gives
    pipeline = [T.RandomGrayscale(p=0.5), T.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.5), T.RandomSolarize(0.6, p=0.5)]
    pair = MIPairTransform(size, policy="random", illumination=False, motion=False, view_transforms=pipeline)
    x = _colourful(12, 70, 70, seed=7)
    before = x.clone()
    views, info = pair(x, generator=_gen(7), return_info=True)
    assert torch.equal(x, before)
    plain = MIPairTransform(size, policy="random", view_transforms=None)
    rendered = plain(x, params=replace(info.params, views=()))
    for view, base, drawn in zip(views, rendered, info.params.views):
        expected = base
        for t, gated in zip(pipeline, drawn):
            expected = t(expected, params=gated)
        torch.testing.assert_close(view, expected, atol=1e-6, rtol=0)
    applied = torch.stack([d[0].applied for d in info.params.views])
    assert applied.any() and not applied.all()  # the gates held some samples back


def test_simclr_batch_of_large_views_matches_the_reference():
    pair = MIPairTransform.simclr(64, n_candidates=4, blur=False)
    x = _colourful(6, 72, 80, seed=9)
    fast, info = pair(x, generator=_gen(9), return_info=True)
    with mi_augment.kernel_options(fast_paths=False):
        ref = pair(x, params=info.params)
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
