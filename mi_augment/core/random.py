"""Randomness helpers: every draw goes through an optional ``torch.Generator``."""

from __future__ import annotations

import struct
from typing import Any

import torch

from .kept import kept


def sampling_device(generator: torch.Generator | None, target: Any) -> torch.device:
    """Draw on the generator's device when one is given (so the same seed gives the same numbers whatever
    device the images are on), else on the target device."""
    if generator is not None:
        return generator.device
    return torch.device(target) if target is not None else torch.device("cpu")


def rand(shape: tuple[int, ...], generator: torch.Generator | None, device: Any) -> torch.Tensor:
    dev = sampling_device(generator, device)
    return torch.rand(shape, generator=generator, device=dev).to(device)


_IN_PLACE = {"uniform": torch.Tensor.uniform_, "normal": torch.Tensor.normal_,
             "exponential": torch.Tensor.exponential_}


def cpu_draws(shape: tuple[int, ...], generator: torch.Generator | None = None, kind: str = "uniform") -> torch.Tensor:
    """``torch.rand(shape)`` (``kind="uniform"``), ``torch.randn(shape)`` (``"normal"``) or
    ``torch.empty(shape).exponential_()`` (``"exponential"``) with a CPU ``generator`` (or the default one): the
    same numbers (of torch's default dtype, float32 unless set otherwise) from the same stream, drawn in place into
    a CPU tensor that this thread keeps for the kind, shape and dtype (the factory functions are ``empty`` and these
    in-place draws). In a DataLoader worker's call this
    skips the allocation and the factory function, about a third of a cold ``torch.rand`` call (tens of
    microseconds at 224 px). The tensor is overwritten by this thread's next draw of the same kind and shape:
    copy what must outlive it.

    Example:
        >>> a = cpu_draws((2, 3), torch.Generator().manual_seed(0), "normal")
        >>> torch.equal(a, torch.randn(2, 3, generator=torch.Generator().manual_seed(0)))
        True
    """
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"cpu_draws needs a CPU generator, got one on {generator.device}")
    draw = _IN_PLACE.get(kind)
    if draw is None:
        raise ValueError(f"kind must be one of {sorted(_IN_PLACE)}, got {kind!r}")
    dtype = torch.get_default_dtype()  # the factory functions' dtype, as torch.rand's
    buffer = kept(("cpu_draws", kind, tuple(shape), dtype),  # on the CPU whatever the default device
                  lambda: torch.empty(tuple(shape), dtype=dtype, device="cpu"))
    return draw(buffer, generator=generator)


def cpu_uniforms(n: int, generator: torch.Generator | None = None) -> list[float]:
    """``torch.rand(n, generator=generator).tolist()`` for a CPU generator (or the default one), drawn by
    :func:`cpu_draws` (the same numbers from the same stream).

    Example:
        >>> a = cpu_uniforms(3, torch.Generator().manual_seed(0))
        >>> a == torch.rand(3, generator=torch.Generator().manual_seed(0)).tolist()
        True
    """
    return cpu_draws((n,), generator).tolist()


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
