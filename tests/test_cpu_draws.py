"""``cpu_draws`` / ``cpu_uniforms``: the numbers ``torch.rand``, ``torch.randn`` and ``exponential_`` draw on the CPU,
from the same stream, drawn in place into a per-thread buffer (what one image's call on the uint8 backend draws
its flips, boxes, pipeline numbers and the natural models' mixture draws with)."""

from __future__ import annotations

import threading
import types

import pytest
import torch

from mi_augment.core.random import cpu_draws, cpu_uniforms


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 373, 1000])
def test_the_numbers_and_the_generators_state_are_torch_rands(n):
    g, h = torch.Generator().manual_seed(n), torch.Generator().manual_seed(n)
    assert cpu_uniforms(n, g) == torch.rand(n, generator=h).tolist()
    assert cpu_uniforms(n, g) == torch.rand(n, generator=h).tolist()  # the buffer drawn into again
    assert torch.equal(torch.rand(5, generator=g), torch.rand(5, generator=h))  # the streams moved alike


def test_the_default_generator_is_torch_rands():
    torch.manual_seed(3)
    drawn = cpu_uniforms(40) + cpu_uniforms(7)
    torch.manual_seed(3)
    assert drawn == torch.rand(40).tolist() + torch.rand(7).tolist()


def test_threads_draw_their_own_streams():
    """Concurrent calls from several threads, each with its own generator: every thread gets exactly its own
    stream (each thread has its own buffer)."""
    out: dict[int, list[float]] = {}

    def work(seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        out[seed] = [x for _ in range(200) for x in cpu_uniforms(64, g)]

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in range(4):
        assert out[seed] == torch.rand(200 * 64, generator=torch.Generator().manual_seed(seed)).tolist()


def test_a_generator_off_the_cpu_is_refused():
    with pytest.raises(ValueError, match="CPU generator"):
        cpu_uniforms(4, types.SimpleNamespace(device=torch.device("cuda")))


@pytest.mark.parametrize("shape", [(1, 3), (2, 5), (4, 16), (7, 9)])
@pytest.mark.parametrize("kind", ["uniform", "normal", "exponential"])
def test_each_kind_is_the_factory_functions_draw(kind, shape):
    def reference(g):
        if kind == "uniform":
            return torch.rand(shape, generator=g)
        if kind == "normal":
            return torch.randn(shape, generator=g)
        return torch.empty(shape).exponential_(generator=g)

    g, h = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    for _ in range(2):  # a fresh buffer, then the kept one
        drawn = cpu_draws(shape, g, kind)
        assert drawn.dtype == torch.float32 and torch.equal(drawn, reference(h))
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=h))


def test_an_unknown_kind_is_named():
    with pytest.raises(ValueError, match="kind must be one of"):
        cpu_draws((2,), None, "poisson")


@pytest.mark.parametrize("first_inside", [True, False])
def test_inference_mode_and_grad_modes_on_either_side(first_inside):
    """A buffer made inside ``torch.inference_mode()`` is still drawn into outside it (and the other way round),
    and under ``no_grad``: a validation loop and a training loop share a worker's thread."""
    g, h = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    n = 6 if first_inside else 9  # lengths no other test draws: this test makes the buffer
    modes = [torch.inference_mode, torch.no_grad, torch.enable_grad]
    if not first_inside:
        modes.reverse()
    drawn = []
    for mode in modes:
        with mode():
            drawn += cpu_uniforms(n, g)
    assert drawn == torch.rand(3 * n, generator=h).tolist()


def test_one_image_calls_inside_and_outside_inference_mode_give_the_same_views():
    """``MIPairTransform`` per numpy image (the natural models and SimCLR's views, whose draws go through
    ``cpu_draws``): alternating inference mode and plain calls gives the views of plain calls, seed for seed."""
    import numpy as np

    from mi_augment.transforms import MIPairTransform

    image = np.random.default_rng(0).integers(0, 256, (37, 41, 3), dtype=np.uint8)
    for t in (MIPairTransform.simclr(24), MIPairTransform(24, illumination="default", motion="default",
                                                          view_transforms=None, policy="random")):
        mixed = []
        for s in range(4):  # first inside inference mode: where this test makes its buffers, they are made there
            with torch.inference_mode() if s % 2 == 0 else torch.no_grad():
                mixed.append(t(image, generator=torch.Generator().manual_seed(s)))
        plain = [t(image, generator=torch.Generator().manual_seed(s)) for s in range(4)]
        assert all(np.array_equal(a, b) for p, m in zip(plain, mixed) for a, b in zip(p, m))


def test_the_default_dtype_is_torch_rands():
    g, h = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    before = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        drawn = cpu_draws((11,), g)
        assert drawn.dtype == torch.float64 and torch.equal(drawn, torch.rand(11, generator=h))
    finally:
        torch.set_default_dtype(before)
    drawn = cpu_draws((11,), g)  # back to the default dtype: its own buffer
    assert drawn.dtype == before and torch.equal(drawn, torch.rand(11, generator=h))


def test_a_default_device_set_elsewhere_does_not_move_the_draws():
    """``torch.set_default_device`` (here "meta", which holds no numbers) does not move the CPU draws."""
    g, h = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    try:
        torch.set_default_device("meta")
        drawn = cpu_uniforms(13, g)  # a length no other test draws: the buffer is made here
    finally:
        torch.set_default_device(None)
    assert drawn == torch.rand(13, generator=h).tolist()
