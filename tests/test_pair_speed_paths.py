"""The per-image speed paths (issue 12 item 7) render what the public implementations render: every check runs
the same call with the speed paths on and inside ``mi_augment.kernel_options(fast_paths=False)``."""

from __future__ import annotations

import pytest
import torch

import mi_augment
import mi_augment.transforms as T
from mi_augment.functional import adjust_hue

ATOL = 2e-5


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _colourful(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    x = torch.rand(b, 3, h, w, generator=_gen(seed))
    x[:, :, 0] = x[:, :1, 0]  # grey rows (zero chroma)
    x[:, 1, 1] = x[:, 0, 1]  # ties between the maximal channels
    x[:, :, 2, :2] = 0.0  # black
    return x


@pytest.mark.parametrize("batch", [1, 5])
def test_adjust_hue_speed_path_is_kornias_hsv_rotation(batch):
    x = _colourful(batch, 9, 11)
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
def test_color_jitter_one_image_matches_the_batched_reference(channels):
    jitter = T.ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0)
    for seed in range(8):
        x = _colourful(1, 12, 10, seed)[:, :channels]
        fast, params = jitter(x, generator=_gen(seed), return_params=True)
        with mi_augment.kernel_options(fast_paths=False):
            ref = jitter(x, params=params)
        torch.testing.assert_close(fast, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize("jitter", [T.ColorJitter(0.4, (0.6, 1.0), 0.4, 0.1, p=1.0), T.ColorJitter(0, 0.4, 0, 0.2)])
def test_color_jitter_batch_of_large_images_matches_the_reference(jitter):
    # 64 x 64 images: the speed path that groups samples by their sequence of operations (some left out)
    x = _colourful(48, 64, 64, seed=3)
    fast, params = jitter(x, generator=_gen(3), return_params=True)
    with mi_augment.kernel_options(fast_paths=False):
        ref = jitter(x, params=params)
    torch.testing.assert_close(fast, ref, atol=ATOL, rtol=0)
    assert len({tuple(o) for o in params.params.order.tolist()}) > 10  # many distinct orders in one batch
