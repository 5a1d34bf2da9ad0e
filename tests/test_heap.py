"""The server gives the C heap's free pages back to the OS after garbage collections (sfu/lifecycle/heap.py);
bench.churn measures what that does to RSS over 200 join/leave cycles."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import pytest

from peerwell import server as peerwell_server
from sfu.lifecycle import heap

# In a fresh interpreter, so the heap is only this: 60 MB of 1.5 kB blocks (above pymalloc's 512-byte
# limit: glibc's heap), 24 of every 25 freed, which leaves free holes glibc does not return by itself.
FRAGMENTED_HEAP = """
import asyncio, gc, json, psutil
from sfu.lifecycle.heap import HeapTrimmer

def rss():
    return psutil.Process().memory_info().rss / 1e6

async def main(trimming):
    trimmer = HeapTrimmer(delay_s=0.05, min_interval_s=0.0)
    if trimming:
        trimmer.start()
    blocks = [bytes(1500) for _ in range(40_000)]
    kept = blocks[::25]
    del blocks
    for _ in range(100):  # cyclic garbage: the full collection below frees something, as a closed connection
        cycle = []
        cycle.append(cycle)
    del cycle
    before = rss()
    gc.collect()
    await asyncio.sleep(0)
    await trimmer.idle(timeout=5.0)
    after = rss()
    trimmer.stop()
    print(json.dumps({"freed_mb": before - after, "trims": trimmer.trims, "kept": len(kept),
                      "callbacks_left": trimmer._after_collection in gc.callbacks}))

asyncio.run(main(%s))
"""


def run_fragmented(trimming: bool) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", FRAGMENTED_HEAP % trimming], capture_output=True, text=True,
                         timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.skipif(heap.find_malloc_trim() is None, reason="this C library has no malloc_trim (not glibc)")
def test_a_full_collection_gives_the_heaps_free_pages_back() -> None:
    without = run_fragmented(trimming=False)
    trimmed = run_fragmented(trimming=True)
    assert without["trims"] == 0 and without["freed_mb"] < 10, without  # glibc alone keeps the holes
    assert trimmed["trims"] == 1 and trimmed["freed_mb"] > 30, trimmed
    assert trimmed["callbacks_left"] is False, trimmed


def test_without_malloc_trim_the_trimmer_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "find_malloc_trim", lambda: None)
    trimmer = heap.HeapTrimmer()
    callbacks = list(gc.callbacks)
    trimmer.start()  # no running loop needed: it stops at once
    assert not trimmer.available and gc.callbacks == callbacks
    trimmer.memory_freed()
    trimmer.stop()


def test_peerwell_serve_trims_its_heap() -> None:
    listening = next(c for c in peerwell_server.serve.__code__.co_consts
                     if getattr(c, "co_name", "") == "listening")
    assert "HeapTrimmer" in peerwell_server.serve.__code__.co_names
    assert {"trimmer", "freeze_startup_heap"} <= set(listening.co_names) | set(listening.co_freevars)
