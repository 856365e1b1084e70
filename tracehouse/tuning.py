"""Memory policy of the serving processes (the server and its decode workers): garbage collection and malloc."""

from __future__ import annotations

import contextlib
import ctypes
import gc

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
# Freed memory glibc keeps instead of returning it to the kernel. Rows, payload texts and parsed payloads are
# mostly larger than Python's small-object allocator takes (512 bytes), so they come from malloc: with the
# default (128 KiB) the heap was trimmed after every batch and refilled through page faults, which made keeping
# 3,000 payload texts of 550 bytes cost 5.2 µs each instead of 0.4 (measured; 16 MiB still 5.1, 32 MiB 0.4).
_KEEP_FREED_BYTES = 128 * 1024 * 1024
# Setting the trim threshold turns off glibc's adaptive mmap threshold, which left at 128 KiB maps and unmaps every
# larger buffer (query results, request bodies) anew: the query benchmark was ~20% slower on every shape. Blocks up
# to 32 MiB (glibc's maximum) come from the heap instead: allocating a 300 KB buffer took 177 µs with glibc's
# defaults and takes 3.6 µs with both settings (measured).
_MMAP_ABOVE_BYTES = 32 * 1024 * 1024


def tune_process() -> None:
    """Call once start-up (imports, migrations) is done.

    Decoding a request allocates many short-lived objects: with the default gen-0 threshold (700) garbage
    collection took about a third of decode time (measured). Long-lived start-up objects are frozen out, so full
    collections do not walk them: a 1,000-run trace tree with the default settings took 132/241 ms p50/p99, with
    these 80/128 ms (tests/bench/query.py, which applies this too so that it measures what the server does)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    with contextlib.suppress(OSError, AttributeError):  # not glibc: its allocator keeps its own policy
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_FREED_BYTES)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_ABOVE_BYTES)
