"""Process-wide kernel options: whether speed paths are taken, and the working-set size of chunked work.

Every operation has one public kernel in :mod:`mi_augment.functional`; inside it, a faster form may render the
same result for the inputs it covers. ``kernel_options(fast_paths=False)`` runs every kernel's reference form
(to check the faster ones against it, or to rule one out while debugging); it never changes what a transform
means: the default output and the reference agree to float rounding, within one uint8 level
(``tests/test_fast_paths.py`` checks 200 random ``MIPairTransform`` configurations). The scores that choose
``MIPairTransform``'s candidates are computed with the default kernels in both settings, so that a
rounding-level difference cannot change which candidate is chosen. Large batches are processed a
few images at a time so that peak memory stays near a fixed working set, whatever the batch size::

    with mi_augment.kernel_options(fast_paths=False, cpu_chunk_elements=1 << 18):
        views = pair(images)

The options are process-wide (DataLoader workers inherit them when they fork) and restored on exit.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator

__all__ = ["KernelOptions", "current", "kernel_options"]


class KernelOptions:
    """The current options (read with :func:`current`).

    Attributes:
        fast_paths: take the speed paths where they apply (default True).
        uint8_backend: render one PIL / numpy / uint8 CPU image's pair views, and a plain CPU batch's (uint8 or
            float) when its views have at least 48 x 48 px, with the CPU uint8 backend
            (:mod:`mi_augment.functional.uint8`, default True; the same draws, views within its documented
            tolerance); False renders them with the torch kernels.
        compiled_kernels: score one image's candidates on the CPU uint8 backend with the compiled kernels of
            :mod:`mi_augment.functional.uint8.compiled` where numba is installed and they matched torch on this
            machine (default True; the same scores within 1e-12 nats); False scores with numpy and torch.
        cpu_chunk_elements: elements of working buffer per chunk on the CPU (default 2**20, about 4 MB of
            float32: on the 2-vCPU development VM 0.25-4 M elements render 224 px pairs ~1.4x faster than
            batch-sized buffers, ``benchmarks/cpu_breakdown.py``).
        device_chunk_elements: the same on accelerators (default 2**28, 1 GiB of float32): large enough that
            a training batch is one launch per op, small enough that peak memory stays bounded.
    """

    __slots__ = ("fast_paths", "uint8_backend", "compiled_kernels", "cpu_chunk_elements", "device_chunk_elements")

    def __init__(self) -> None:
        self.fast_paths = True
        self.uint8_backend = True
        self.compiled_kernels = True
        self.cpu_chunk_elements = 1 << 20
        self.device_chunk_elements = 1 << 28

    def __repr__(self) -> str:
        return (f"KernelOptions(fast_paths={self.fast_paths}, uint8_backend={self.uint8_backend}, "
                f"compiled_kernels={self.compiled_kernels}, "
                f"cpu_chunk_elements={self.cpu_chunk_elements}, "
                f"device_chunk_elements={self.device_chunk_elements})")


_CURRENT = KernelOptions()


def current() -> KernelOptions:
    """The options in force."""
    return _CURRENT


def _check_elements(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


@contextlib.contextmanager
def kernel_options(*, fast_paths: bool | None = None, cpu_chunk_elements: int | None = None,
                   device_chunk_elements: int | None = None, uint8_backend: bool | None = None,
                   compiled_kernels: bool | None = None) -> Iterator[KernelOptions]:
    """Set kernel options inside a ``with`` block (None leaves an option as it is); restored on exit."""
    for name, flag in (("fast_paths", fast_paths), ("uint8_backend", uint8_backend),
                       ("compiled_kernels", compiled_kernels)):
        if flag is not None and not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    new = {"fast_paths": fast_paths, "uint8_backend": uint8_backend, "compiled_kernels": compiled_kernels,
           "cpu_chunk_elements": None if cpu_chunk_elements is None
           else _check_elements(cpu_chunk_elements, "cpu_chunk_elements"),
           "device_chunk_elements": None if device_chunk_elements is None
           else _check_elements(device_chunk_elements, "device_chunk_elements")}
    old = {k: getattr(_CURRENT, k) for k in new}
    try:
        for k, v in new.items():
            if v is not None:
                setattr(_CURRENT, k, v)
        yield _CURRENT
    finally:
        for k, v in old.items():
            setattr(_CURRENT, k, v)
