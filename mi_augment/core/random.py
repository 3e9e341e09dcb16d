"""Randomness helpers: every draw goes through an optional ``torch.Generator``."""

from __future__ import annotations

import struct
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
