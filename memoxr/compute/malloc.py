"""glibc malloc settings for the ``memoxr`` command's own process.

Every chunk read allocates buffers of the chunk's size (the compressed bytes, the
decoded chunk, the array it is copied into). glibc serves allocations above its
mmap threshold (at most 32 MB, dynamically) with fresh ``mmap`` calls and returns
them on ``free``, so each 64 MB chunk is page-faulted and zeroed by the kernel
anew: measured on a 1 GB store, half of ``memoxr calculate``'s system time and a
quarter of its wall time. Keeping freed memory in one heap lets the next chunk
reuse the same pages; the price is a higher peak RSS (a few chunk buffers more),
still set by the chunk size, not by the store's size.

Applied by the command line only (a library should not change its host's
allocator). Users who set any ``MALLOC_*`` environment variable keep their own
settings; the same effect in Jupyter or on dask workers comes from the
environment variables ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` and
``MALLOC_ARENA_MAX`` (see ``man mallopt``).
"""

from __future__ import annotations

import os
import sys

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

#: Buffers up to this size come from the heap and are kept for reuse when freed.
MMAP_THRESHOLD = 1 << 30
#: Free memory at the top of the heap is returned to the system above this size only.
TRIM_THRESHOLD = 1 << 31


def keep_freed_buffers() -> bool:
    """Make glibc keep freed chunk-sized buffers for reuse; True if applied.

    One arena for all threads, so dask's worker threads share the kept buffers
    instead of each holding its own (measured: lower peak RSS, same speed).
    A no-op off Linux, on a libc other than glibc, or when the user has set any
    ``MALLOC_*`` variable.

    Examples
    --------
    A ``MALLOC_*`` variable of the user's wins: nothing is changed.

    >>> os.environ["MALLOC_ARENA_MAX"] = "4"
    >>> keep_freed_buffers()
    False
    >>> del os.environ["MALLOC_ARENA_MAX"]
    """
    if not sys.platform.startswith("linux") or any(name.startswith("MALLOC_") for name in os.environ):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs
        return False
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return all([mallopt(param, value) == 1 for param, value in settings])
