"""A process-wide ``torch.set_default_device`` (a notebook that puts new tensors on its GPU) does not reach the
CPU paths: one PIL / numpy / uint8-tensor image and a plain CPU batch give the same views, infos and replays as
without it. The ``meta`` device stands in for an accelerator: a tensor made there holds no data, so any tensor the
CPU paths made without ``device=`` would fail to be read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mi_augment.transforms import MIPairTransform


def as_array(view):
    return np.asarray(view) if not isinstance(view, torch.Tensor) else view.numpy()


@pytest.mark.parametrize("make", [lambda: MIPairTransform(48), lambda: MIPairTransform.simclr(48),
                                  lambda: MIPairTransform(48, policy="random")],
                         ids=["default", "simclr", "natural_unscored"])
def test_cpu_paths_ignore_a_default_device(make):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (56, 60, 3), dtype=np.uint8)
    tensor = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    inputs = [image, Image.fromarray(image), tensor, tensor / 255.0, torch.stack([tensor, tensor]),
              torch.stack([tensor] * 2) / 255.0]
    t = make()

    def run():
        out = []
        for x in inputs:
            views, info = t(x, generator=torch.Generator().manual_seed(3), return_info=True)
            replayed = t(x, params=info.params)
            out.append(([as_array(v) for v in views], [as_array(v) for v in replayed]))
        return out

    expected = run()
    torch.set_default_device("meta")
    try:
        got = run()
    finally:
        torch.set_default_device(None)
    for (views, replayed), (ref_views, ref_replayed) in zip(got, expected):
        assert all(np.array_equal(a, b) for a, b in zip(views, ref_views))
        assert all(np.array_equal(a, b) for a, b in zip(replayed, ref_replayed))
