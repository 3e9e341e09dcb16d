"""Objects each thread keeps between calls: a DataLoader worker's per-call buffers (the draws of
:func:`mi_augment.core.random.cpu_draws`, the uint8 scorer's sampling image and grid). In a worker's call a fresh
allocation and the factory call that fills it cost more than the work on it (docs/benchmarks.md, rounds 7 and 8),
so these are made once per thread and key and overwritten by the next call with the same key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

import torch

__all__ = ["kept"]

_KEPT = threading.local()
#: keys kept per thread (a few shapes per transform and image size); past it the cache starts again, a bound for
#: transforms or image sizes that change from call to call
_LIMIT = 128


def kept(key: Hashable, make: Callable[[], Any]) -> Any:
    """``make()``'s result for ``key``, made once per thread (outside ``torch.inference_mode``, so a tensor made
    there is a normal tensor that can be written in place inside and outside it) and returned as is afterwards:
    the caller overwrites it, and copies what must outlive its next call with the same key. Put the caller's own
    name first in ``key``.

    Example:
        >>> a = kept(("example", 3), lambda: torch.zeros(3))
        >>> a is kept(("example", 3), lambda: torch.ones(3))
        True
    """
    store = getattr(_KEPT, "by_key", None)
    if store is None or len(store) >= _LIMIT:
        store = _KEPT.by_key = {}
    out = store.get(key)
    if out is None:
        with torch.inference_mode(False):
            out = store[key] = make()
    return out
