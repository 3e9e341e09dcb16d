"""Processing big batches a few images at a time (sizes from :mod:`mi_augment.core.options`).

Every elementwise pass over a batch-sized float buffer streams it through memory, and buffers above glibc's
mmap threshold (at most 32 MB) are mapped anew, and page-faulted in, on every call. Splitting a large CPU
batch into chunks of about ``cpu_chunk_elements`` elements keeps each pass in cache and lets the allocator
recycle the buffers (see docs/mi_pairs.md#throughput for the measurements). Accelerators take chunks of
``device_chunk_elements`` (a whole training batch in practice), which bounds peak memory for huge batches.
"""

from __future__ import annotations

from torch import Tensor

from .options import current


def chunk_rows(images: Tensor, per_row: int) -> int:
    """How many images of ``images`` (``[B, ...]``) to process at a time, when each costs ``per_row`` elements
    of working buffer: the whole batch when it fits twice the chunk size (splitting small batches only adds
    per-op overhead), otherwise enough images to fill about one chunk (at least one)."""
    b = images.shape[0]
    opts = current()
    limit = opts.cpu_chunk_elements if images.device.type == "cpu" else opts.device_chunk_elements
    if b * per_row <= 2 * limit:
        return b
    return max(1, limit // max(per_row, 1))
