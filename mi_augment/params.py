"""Per-sample parameter containers: small frozen dataclasses of tensors with leading dimension B."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import torch
from torch import Tensor

P = TypeVar("P", bound="Params")


@dataclasses.dataclass(frozen=True)
class Params:
    """Base class. Subclasses declare tensor fields whose first dimension is the batch size."""

    def _tensors(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @property
    def batch_size(self) -> int:
        first = next(iter(self._tensors().values()))
        return int(first.shape[0]) if isinstance(first, Tensor) else first.batch_size

    @property
    def device(self) -> torch.device:
        first = next(iter(self._tensors().values()))
        return first.device

    def _map(self: P, fn) -> P:
        out = {}
        for k, v in self._tensors().items():
            out[k] = v._map(fn) if isinstance(v, Params) else fn(v)
        return type(self)(**out)

    def to(self: P, device: Any) -> P:
        return self._map(lambda t: t.to(device))

    def index(self: P, idx: Tensor | slice | int) -> P:
        """Select samples (keeps the leading dimension for tensors and slices)."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return self._map(lambda t: t[idx])

    def where(self: P, mask: Tensor, other: P) -> P:
        """Per-sample choice: ``self`` where ``mask`` (B,) is true, else ``other``."""
        if type(other) is not type(self):
            raise TypeError(f"cannot combine {type(self).__name__} with {type(other).__name__}")
        out = {}
        for (k, a), b in zip(self._tensors().items(), other._tensors().values()):
            if isinstance(a, Params):
                out[k] = a.where(mask, b)
            else:
                m = mask.reshape(-1, *([1] * (a.ndim - 1)))
                out[k] = torch.where(m, a, b)
        return type(self)(**out)

    @classmethod
    def cat(cls: type[P], items: list[P]) -> P:
        if not items:
            raise ValueError("cannot concatenate an empty list of params")
        out = {}
        for f in dataclasses.fields(cls):
            vals = [getattr(it, f.name) for it in items]
            out[f.name] = type(vals[0]).cat(vals) if isinstance(vals[0], Params) else torch.cat(vals, 0)
        return cls(**out)

    def check_batch(self, batch_size: int, name: str = "params") -> None:
        for k, v in self._tensors().items():
            n = v.batch_size if isinstance(v, Params) else (v.shape[0] if v.ndim else None)
            if n != batch_size:
                raise ValueError(f"{name}.{k} has leading size {n}, expected the batch size {batch_size}")


@dataclasses.dataclass(frozen=True)
class GatedParams(Params):
    """What a transform's ``forward`` returns for replay: the drawn params and the per-sample ``p`` gate."""

    params: Params
    applied: Tensor  # (B,) bool: whether the transform was applied to each sample

    @property
    def batch_size(self) -> int:
        return int(self.applied.shape[0])

    @property
    def device(self) -> torch.device:
        return self.applied.device
