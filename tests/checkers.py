"""Reusable checks that every registered transform must pass (see tests/test_registry.py)."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import torch
from PIL import Image

from mi_augment.core.params import GatedParams


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def textured_batch(b: int = 4, c: int = 3, h: int = 40, w: int = 48, seed: int = 0) -> torch.Tensor:
    g = _gen(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = 0.5 + 0.25 * torch.sin(12 * xx + 7 * yy)[None, None]
    noise = 0.15 * torch.rand(b, c, h, w, generator=g)
    return (base * torch.linspace(0.6, 1.0, c).view(1, c, 1, 1) + noise).clamp(0, 1)


def check_identity_at_p0(t_factory, x):
    t = t_factory(p=0.0)
    out = t(x, generator=_gen(0))
    assert torch.equal(out, x), "p=0 must return the input unchanged"


def check_same_seed_same_output(t, x):
    a = t(x, generator=_gen(3))
    b = t(x, generator=_gen(3))
    assert torch.equal(a, b), "the same generator seed must give the same output"
    c = t(x, generator=_gen(4))
    assert not torch.equal(a, c), "different seeds should give different outputs"


def check_replay(t, x):
    out, params = t(x, generator=_gen(1), return_params=True)
    assert isinstance(params, GatedParams)
    again = t(x, params=params)
    assert torch.equal(out, again), "replaying params must reproduce the output"


def check_batch_equals_singles(t, x, atol=1e-5):
    out, params = t(x, generator=_gen(2), return_params=True)
    for i in range(x.shape[0]):
        single = t(x[i], params=params.index(i))
        assert single.shape == x[i].shape
        assert torch.allclose(single, out[i], atol=atol), f"sample {i}: batched and single outputs differ"


def check_no_input_mutation(t, x):
    before = x.clone()
    t(x, generator=_gen(0))
    assert torch.equal(x, before), "the input must not be modified in place"


def check_output_range_and_shape(t, x):
    out = t(x, generator=_gen(5))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert bool(torch.isfinite(out).all()) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def check_types_preserved(t, x):
    u8 = (x[0] * 255).round().to(torch.uint8)
    out = t(u8, generator=_gen(0))
    assert out.dtype == torch.uint8 and out.shape == u8.shape
    pil = Image.fromarray(u8.permute(1, 2, 0).numpy())
    out_pil = t(pil, generator=_gen(0))
    assert isinstance(out_pil, Image.Image) and out_pil.size == pil.size and out_pil.mode == pil.mode
    arr = np.asarray(pil)
    out_np = t(arr, generator=_gen(0))
    assert isinstance(out_np, np.ndarray) and out_np.shape == arr.shape and out_np.dtype == np.uint8


def check_pickle_round_trip(t, x):
    t2 = pickle.loads(pickle.dumps(t))
    assert torch.equal(t(x, generator=_gen(7)), t2(x, generator=_gen(7)))
    t3 = copy.deepcopy(t)
    assert torch.equal(t(x, generator=_gen(7)), t3(x, generator=_gen(7)))


def check_torchvision_compose(t, x):
    from torchvision.transforms import v2

    pipe = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), t])
    u8 = (x[0] * 255).round().to(torch.uint8)
    pil = Image.fromarray(u8.permute(1, 2, 0).numpy())
    out = pipe(pil)
    assert out.shape == x[0].shape and out.dtype == torch.float32


def check_cpu_equals_cuda(t, x, atol=1e-4):
    out_cpu, params = t(x, generator=_gen(0), return_params=True)
    out_gpu = t.to("cuda")(x.cuda(), params=params.to("cuda"))
    assert torch.allclose(out_cpu, out_gpu.cpu(), atol=atol)


ALL_CHECKS = [
    check_same_seed_same_output,
    check_replay,
    check_batch_equals_singles,
    check_no_input_mutation,
    check_output_range_and_shape,
    check_types_preserved,
    check_pickle_round_trip,
    check_torchvision_compose,
]
