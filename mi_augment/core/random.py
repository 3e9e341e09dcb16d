"""Randomness helpers: every draw goes through an optional ``torch.Generator``."""

from __future__ import annotations

import struct
import threading
from typing import Any

import torch


def sampling_device(generator: torch.Generator | None, target: Any) -> torch.device:
    """Draw on the generator's device when one is given (so the same seed gives the same numbers whatever
    device the images are on), else on the target device."""
    if generator is not None:
        return generator.device
    return torch.device(target) if target is not None else torch.device("cpu")


def rand(shape: tuple[int, ...], generator: torch.Generator | None, device: Any) -> torch.Tensor:
    dev = sampling_device(generator, device)
    return torch.rand(shape, generator=generator, device=dev).to(device)


_BUFFERS = threading.local()  # per thread: float32 tensors that cpu_uniforms draws into, by length


def cpu_uniforms(n: int, generator: torch.Generator | None = None) -> list[float]:
    """``torch.rand(n, generator=generator).tolist()`` for a CPU generator (or the default one): the same ``n``
    uniform float32 numbers from the same stream, drawn in place (``uniform_``) into a float32 tensor that this
    thread keeps for the length. In a DataLoader worker's call this skips the factory function and its
    allocation, about a third of a cold ``torch.rand`` call (tens of microseconds at 224 px).

    Example:
        >>> a = cpu_uniforms(3, torch.Generator().manual_seed(0))
        >>> a == torch.rand(3, generator=torch.Generator().manual_seed(0)).tolist()
        True
    """
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"cpu_uniforms needs a CPU generator, got one on {generator.device}")
    buffers = getattr(_BUFFERS, "by_length", None)
    if buffers is None or len(buffers) > 32:  # a few lengths per transform; a bound for transforms built on the fly
        buffers = _BUFFERS.by_length = {}
    buffer = buffers.get(n)
    if buffer is None:
        buffer = buffers[n] = torch.empty(n)
    return buffer.uniform_(generator=generator).tolist()


def randn(shape: tuple[int, ...], generator: torch.Generator | None, device: Any) -> torch.Tensor:
    dev = sampling_device(generator, device)
    return torch.randn(shape, generator=generator, device=dev).to(device)


def uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator | None,
            device: Any) -> torch.Tensor:
    return low + (high - low) * rand(shape, generator, device)


def as_float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (as a Python float): what a float32 tensor op does to a Python
    scalar. Sums and products of two float32 values computed in float64 and rounded so are exactly the float32
    op's result (float64 has more than twice float32's precision)."""
    return as_float32s([value])[0]


def as_float32s(values: list[float]) -> tuple[float, ...]:
    """:func:`as_float32` of several values in one call."""
    n = len(values)
    try:
        return struct.unpack(f"{n}f", struct.pack(f"{n}f", *values))
    except OverflowError:  # beyond float32's range: torch's cast (to +-inf)
        return tuple(torch.tensor(list(values), dtype=torch.float64).float().tolist())
