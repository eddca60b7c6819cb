"""Reuse of large freed buffers on CPU: ``keepheap()`` stops glibc from unmapping them between layers.

glibc's malloc serves each block above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and
unmaps it on ``free``. A SAM 2 forward pass allocates and frees hundreds of activations of 10-100 MiB,
so on Linux every one of them costs a page fault per 4 KiB page: 0.3 M faults, about a fifth of the
image encoder's time on a 2-core VM. Inside ``keepheap()`` large blocks come from the heap and freed
memory stays there for the next layer; when the outermost scope exits, glibc's default limits are
restored and free memory goes back to the system as usual (``malloc_trim``). A model built for a
predictor on a CPU holds the setting for its lifetime (``holdheapfor``): freed memory stays cached
for the next call, much as PyTorch's CUDA allocator caches GPU memory.

It does nothing when the C library is not glibc, when the process set its own malloc options
(any of ``_USER_MALLOC_SETTINGS`` in the environment), when another allocator is preloaded (jemalloc,
tcmalloc, mimalloc), or when ``SSSEG_KEEP_HEAP=0``. Once changed, glibc's dynamic mmap threshold stays
off (the threshold keeps the value it had reached), as after any ``mallopt`` call.
"""
import contextlib
import ctypes
import ctypes.util
import os
import platform
import threading
import weakref
from typing import Iterator

# mallopt parameter numbers and glibc's documented defaults for them (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
_USER_MALLOC_SETTINGS = ('MALLOC_MMAP_MAX_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_ARENA_MAX_', 'MALLOC_TOP_PAD_',
                         'MALLOC_MMAP_THRESHOLD_', 'GLIBC_TUNABLES')

_lock = threading.Lock()
_depth = 0


def _loadglibc():
    """The C library as a ctypes handle when keepheap may change its settings, else None."""
    if os.environ.get('SSSEG_KEEP_HEAP', '1') == '0':
        return None
    if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return None
    if any(name in os.environ for name in _USER_MALLOC_SETTINGS):
        return None
    if any(alloc in os.environ.get('LD_PRELOAD', '') for alloc in ('jemalloc', 'tcmalloc', 'mimalloc')):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        return libc if hasattr(libc, 'mallopt') and hasattr(libc, 'malloc_trim') else None
    except OSError:
        return None


_libc = _loadglibc()


def keepheapactive() -> bool:
    """Whether the heap is kept now (for tests).

    Returns:
        True while some scope or holder keeps the heap and the settings were changed.
    """
    return _libc is not None and _depth > 0


def _acquire():
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            _libc.mallopt(_M_MMAP_MAX, 0)
            _libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1)


def _release():
    global _depth
    with _lock:
        _depth -= 1
        if _depth == 0:
            _libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
            _libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
            _libc.malloc_trim(0)


@contextlib.contextmanager
def keepheap() -> Iterator[None]:
    """Serve large allocations from the heap and keep freed memory there until the outermost scope exits.

    Nests and may be entered from several threads; also usable as a decorator. A no-op off glibc.

    Returns:
        A context manager (yielding None).
    """
    if _libc is None:
        yield
        return
    _acquire()
    try:
        yield
    finally:
        _release()


def trimheap() -> None:
    """Give the free pages inside a kept heap back to the system now (a no-op when the heap is not kept).

    Long loops call it now and then: freed blocks split by long-lived small ones are otherwise never
    returned, so resident memory would creep up with the number of iterations.

    Returns:
        None.
    """
    if keepheapactive():
        _libc.malloc_trim(0)


def holdheapfor(owner: object) -> None:
    """Keep the heap as in ``keepheap()`` for as long as ``owner`` lives (until it is garbage-collected).

    Predictor models hold it, so that consecutive calls (frames, images) reuse the buffers of the last.

    Args:
        owner: any object that can be weakly referenced.
    Returns:
        None.
    """
    if _libc is not None:
        _acquire()
        weakref.finalize(owner, _release)
