"""Per-sample parameter containers: small frozen dataclasses of tensors with leading dimension B.

A field holds a tensor, a nested :class:`Params`, or a tuple of those (e.g. one entry per model of a chain or
per view of a pair); every operation below maps over all of them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import torch
from torch import Tensor

P = TypeVar("P", bound="Params")


def _first_leaf(value: Any) -> Any:
    if isinstance(value, tuple):
        for item in value:
            leaf = _first_leaf(item)
            if leaf is not None:
                return leaf
        return None
    return value


def _map_value(value: Any, fn) -> Any:
    if isinstance(value, tuple):
        return tuple(_map_value(v, fn) for v in value)
    return value._map(fn) if isinstance(value, Params) else fn(value)


def _where_value(a: Any, b: Any, mask: Tensor) -> Any:
    if isinstance(a, tuple):
        if not isinstance(b, tuple) or len(a) != len(b):
            raise TypeError("cannot combine params whose tuple fields differ in length")
        return tuple(_where_value(x, y, mask) for x, y in zip(a, b))
    if isinstance(a, Params):
        return a.where(mask, b)
    return torch.where(mask.reshape(-1, *([1] * (a.ndim - 1))), a, b)


def _cat_values(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, tuple):
        if any(not isinstance(v, tuple) or len(v) != len(first) for v in values):
            raise ValueError("cannot concatenate params whose tuple fields differ in length")
        return tuple(_cat_values([v[i] for v in values]) for i in range(len(first)))
    if isinstance(first, Params):
        return type(first).cat(values)
    return torch.cat(values, 0)


@dataclasses.dataclass(frozen=True)
class Params:
    """Base class. Subclasses declare tensor fields whose first dimension is the batch size."""

    def _tensors(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def _first(self) -> Any:
        for value in self._tensors().values():
            leaf = _first_leaf(value)
            if leaf is not None:
                return leaf
        raise ValueError(f"{type(self).__name__} holds no tensors")

    @property
    def batch_size(self) -> int:
        first = self._first()
        return int(first.shape[0]) if isinstance(first, Tensor) else first.batch_size

    @property
    def device(self) -> torch.device:
        return self._first().device

    def as_dict(self) -> dict[str, Any]:
        """The fields by name (tensors, nested params or tuples of them), not copied.

        Example:
            >>> from mi_augment.perturbations.motion import MotionModel
            >>> sorted(MotionModel.default().identity_params(1).as_dict())
            ['blur_angle', 'blur_length', 'log_scale', 'rotation', 'translation']
        """
        return self._tensors()

    def _map(self: P, fn) -> P:
        return type(self)(**{k: _map_value(v, fn) for k, v in self._tensors().items()})

    def map(self: P, fn) -> P:
        """New params of the same type with ``fn`` applied to every tensor (nested params and tuples too).

        Example:
            >>> from mi_augment.perturbations.motion import MotionModel
            >>> params = MotionModel.default().identity_params(6)
            >>> params.map(lambda t: t.reshape(2, 3, *t.shape[1:])).translation.shape
            torch.Size([2, 3, 2])
        """
        return self._map(fn)

    def to(self: P, device: Any) -> P:
        """The params on ``device``; ``self`` (params are immutable) when every tensor already is there."""
        if isinstance(device, (str, torch.device)) and _all_on(self, torch.device(device)):
            return self
        return self._map(lambda t: t.to(device))

    def index(self: P, idx: Tensor | slice | int) -> P:
        """Select samples (keeps the leading dimension for tensors and slices). Replaying one image with
        ``params.index(i)`` gives it the same draws as in the batch: the same output to float rounding (the
        kernels may take another path for one image; at most ~1e-5 measured with the natural models)."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return self._map(lambda t: t[idx])

    def where(self: P, mask: Tensor, other: P) -> P:
        """Per-sample choice: ``self`` where ``mask`` (B,) is true, else ``other``."""
        if type(other) is not type(self):
            raise TypeError(f"cannot combine {type(self).__name__} with {type(other).__name__}")
        return type(self)(**{k: _where_value(a, b, mask)
                             for (k, a), b in zip(self._tensors().items(), other._tensors().values())})

    @classmethod
    def cat(cls: type[P], items: list[P]) -> P:
        if not items:
            raise ValueError("cannot concatenate an empty list of params")
        return cls(**{f.name: _cat_values([getattr(it, f.name) for it in items]) for f in dataclasses.fields(cls)})

    def row(self, index: int = 0) -> tuple:
        """Sample ``index`` as Python numbers: one entry per field in field order (a number, or a list for a
        field with more dimensions; nested params give a nested tuple). The CPU uint8 kernels take this.

        Example:
            >>> from mi_augment.transforms import ColorJitter
            >>> u = torch.tensor([[0.9, 0.1, 0.5, 0.3, 0.5, 0.5, 0.5, 0.5]])
            >>> ColorJitter(0.4, 0.4, 0.4, 0.1).params_from_uniforms(u).row(0)
            (1.0, 1.0, 1.0, 0.0, [1, 3, 2, 0])
        """
        return tuple(v.row(index) if isinstance(v, Params) else tuple(x.row(index) for x in v)
                     if isinstance(v, tuple) else v[index].tolist() for v in self._tensors().values())

    def rows(self) -> list[tuple]:
        """Every sample's :meth:`row`, ``rows()[i] == row(i)``, each field converted by one ``.tolist()``
        (a batch's rows without a tensor index per sample and field).

        Example:
            >>> from mi_augment.transforms import ColorJitter
            >>> u = torch.tensor([[0.9, 0.1, 0.5, 0.3, 0.5, 0.5, 0.5, 0.5]] * 2)
            >>> ColorJitter(0.4, 0.4, 0.4, 0.1).params_from_uniforms(u).rows()[1]
            (1.0, 1.0, 1.0, 0.0, [1, 3, 2, 0])
        """
        columns = [v.rows() if isinstance(v, Params) else (list(zip(*(x.rows() for x in v))) if v else None)
                   if isinstance(v, tuple) else v.tolist() for v in self._tensors().values()]
        n = next((len(c) for c in columns if c is not None), None)
        if n is None:
            n = self.batch_size
        return list(zip(*(c if c is not None else [()] * n for c in columns)))

    def check_batch(self, batch_size: int, name: str = "params") -> None:
        """Raise ``ValueError`` naming the first field whose leading size is not ``batch_size``."""
        for k, v in self._tensors().items():
            if type(v) is Tensor and v.ndim and v.shape[0] == batch_size:
                continue  # the common case, without building the field's label
            _check_value(v, batch_size, f"{name}.{k}")


def _all_on(value: Any, device: torch.device) -> bool:
    """Whether every tensor in ``value`` (a tensor, params or a tuple of them) is on ``device`` (an index-less
    ``cuda`` never equals ``cuda:0``: such params are mapped, as before)."""
    if isinstance(value, Tensor):
        return value.device == device
    if isinstance(value, tuple):
        return all(_all_on(v, device) for v in value)
    if isinstance(value, Params):
        return all(_all_on(v, device) for v in value._tensors().values())
    return False


def _check_value(value: Any, batch_size: int, label: str) -> None:
    if isinstance(value, tuple):
        for i, item in enumerate(value):
            _check_value(item, batch_size, f"{label}[{i}]")
    elif isinstance(value, Params):
        value.check_batch(batch_size, label)
    else:
        n = value.shape[0] if value.ndim else None
        if n != batch_size:
            raise ValueError(f"{label} has leading size {n}, expected the batch size {batch_size}")


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
