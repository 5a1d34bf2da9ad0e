"""The server's heap: Python's cyclic garbage collector, and the C heap's free pages.

A full (generation 2) collection walks every tracked object and holds the event loop, and so everyone's
media, while it does. Most of a server's objects are made at start (modules, classes, functions: ~70k for
`peerwell serve`) and live for ever, yet every full collection walked them again; churn leaves cyclic
garbage behind (closed connections), so full collections come every minute or so. Measured by bench.churn
(200 cycles, shared machine): in the server alone, the longest collection took 0.18 s of CPU before the
freeze and 0.10-0.14 s after; on the loaded machine that became 2-3 s of wall time either way, because
the machine did not run the process. Freezing them once the server is set up leaves them out of every
later collection.

glibc's malloc keeps what is freed in its heap and gives pages back to the OS only from the top of it, so
after a peak of connections the server's RSS stays near the peak's even when the connections' objects are
gone: in bench.churn (80 cycles), 9.9 MB of 134.5 MB at rest, the difference between the server's RSS and
the same after `malloc_trim(0)`. `HeapTrimmer` calls `malloc_trim(0)` shortly after a garbage collection
has freed a closed connection's objects (at most every TRIM_MIN_INTERVAL_S), in a worker thread: ctypes
releases the GIL for the call, though the loop still waits if it allocates while glibc holds an arena's
lock. Measured: 1.4-18 ms a call (usually under 3 ms) in bench.churn's server; 11-22 ms for a
deliberately fragmented 140 MB heap (the trimmer records its longest). Python's own allocator
(pymalloc) keeps small objects in 1 MiB arenas that it frees only when empty; no trim reaches those.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

TRIM_DELAY_S = 1.0  # after the collection that freed memory: the rest of a burst of closes comes with it
TRIM_MIN_INTERVAL_S = 10.0  # between two trims, however much churn
FREED_OBJECTS_WORTH_A_TRIM = 500  # a closed peer connection is thousands of objects; a full collection any


def freeze_startup_heap() -> None:
    """Collect what start-up left as garbage, then move everything alive into the permanent generation.

    Call once, after the application is built and before the first client: objects alive now are never
    walked again (reference counting still frees them). Not for test processes that start many servers:
    a cycle frozen there would never be collected.
    """
    gc.collect()
    gc.freeze()


def find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS): then nothing is trimmed."""
    try:
        libc = ctypes.CDLL(None)  # the C library this interpreter runs on
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


class HeapTrimmer:
    """Hands the C heap's free pages back to the OS after garbage collections free enough.

    `start()` on the server's loop, `stop()` at cleanup. One process, one trimmer: it listens to the
    collector (`gc.callbacks`), which is process-wide.
    """

    def __init__(self, delay_s: float = TRIM_DELAY_S, min_interval_s: float = TRIM_MIN_INTERVAL_S,
                 malloc_trim: Callable[[int], int] | None = None) -> None:
        self.delay_s = delay_s
        self.min_interval_s = min_interval_s
        self._malloc_trim = malloc_trim if malloc_trim is not None else find_malloc_trim()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due: asyncio.TimerHandle | None = None
        self._running: asyncio.Future[None] | None = None
        self._last_trim = -1e9
        self.trims = 0
        self.longest_s = 0.0  # the longest malloc_trim call, wall seconds in its thread

    @property
    def available(self) -> bool:
        return self._malloc_trim is not None

    @property
    def busy(self) -> bool:
        """A trim is running in its thread."""
        return self._running is not None

    def start(self) -> None:
        if self._malloc_trim is None:
            logger.info("no malloc_trim in this C library: the heap is not trimmed")
            return
        self._loop = asyncio.get_running_loop()
        gc.callbacks.append(self._after_collection)

    def stop(self) -> None:
        if self._after_collection in gc.callbacks:
            gc.callbacks.remove(self._after_collection)
        if self._due is not None:
            self._due.cancel()
            self._due = None
        self._loop = None

    def _after_collection(self, phase: str, info: dict[str, int]) -> None:
        # Runs in whichever thread's allocation started the collection.
        if phase != "stop" or not info["collected"]:
            return
        if info["generation"] == 2 or info["collected"] >= FREED_OBJECTS_WORTH_A_TRIM:
            loop = self._loop
            if loop is not None:
                try:
                    loop.call_soon_threadsafe(self.memory_freed)
                except RuntimeError:  # the loop closed meanwhile
                    pass

    def memory_freed(self) -> None:
        """Memory went back to the allocator: trim soon, unless a trim is already due."""
        if self._loop is None or self._due is not None:
            return
        at = max(time.monotonic() + self.delay_s, self._last_trim + self.min_interval_s)
        self._due = self._loop.call_later(at - time.monotonic(), self._trim_now)

    def _trim_now(self) -> None:
        self._due = None
        if self._loop is None or self._running is not None:
            return
        self._last_trim = time.monotonic()
        self._running = self._loop.run_in_executor(None, self._timed_trim)
        self._running.add_done_callback(self._trimmed)

    def _timed_trim(self) -> None:
        assert self._malloc_trim is not None
        started = time.perf_counter()
        self._malloc_trim(0)
        self.longest_s = max(self.longest_s, time.perf_counter() - started)
        self.trims += 1

    def _trimmed(self, future: asyncio.Future[None]) -> None:
        self._running = None
        if not future.cancelled() and future.exception() is not None:
            logger.warning("malloc_trim failed: %s", type(future.exception()).__name__)

    async def idle(self, timeout: float = 30.0) -> None:
        """Wait until no trim is due or running (benchmarks and tests read RSS after it)."""
        deadline = time.monotonic() + timeout
        while (self._due is not None or self._running is not None) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
