"""Rendering big CPU batches a few images at a time.

Every elementwise pass over a batch-sized float buffer streams it through memory, and buffers above glibc's
mmap threshold (at most 32 MB) are mapped anew, and page-faulted in, on every call. Splitting a large CPU
batch into chunks of about :data:`CPU_CHUNK_ELEMENTS` elements keeps each pass in cache and lets the
allocator recycle the buffers (see docs/mi_pairs.md#throughput for the measurements). Accelerators always
take the whole batch (one launch per op).
"""

from __future__ import annotations

from torch import Tensor

#: Elements per chunk of CPU rendering: ~4 MB of float32. On the 2-vCPU AMD EPYC development VM, 0.25-4 M
#: elements render 224 px pairs ~1.4x faster than batch-sized buffers (``benchmarks/cpu_breakdown.py``).
CPU_CHUNK_ELEMENTS = 1 << 20


def chunk_rows(images: Tensor, per_row: int) -> int:
    """How many images of ``images`` (``[B, ...]``) to process at a time, when each costs ``per_row`` elements
    of working buffer: the whole batch on accelerators and for small CPU batches (up to twice
    :data:`CPU_CHUNK_ELEMENTS` in all: splitting those only adds per-op overhead), otherwise enough images to
    fill about :data:`CPU_CHUNK_ELEMENTS` elements (at least one)."""
    b = images.shape[0]
    if images.device.type != "cpu" or b * per_row <= 2 * CPU_CHUNK_ELEMENTS:
        return b
    return max(1, CPU_CHUNK_ELEMENTS // max(per_row, 1))
