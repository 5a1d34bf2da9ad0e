"""Joins and leaves must not hold the event loop that forwards everyone's media: no thread is started or
joined for a receiver we tap (aiortc's decoder threads), and the server leaves its start-up heap out of
garbage collections. bench.churn measures the stalls themselves (`server_longest_stall_s`)."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading

from peerwell import server as peerwell_server
from sfu.contrib.client import RoomClient, encode_opus_clip, encode_vp8_clip
from tests.conftest import RunningServer, wait_for


def decoder_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.endswith("-decoder")]


async def test_tapped_receivers_start_no_decoder_thread(server: RunningServer) -> None:
    vp8 = encode_vp8_clip(frames=30, width=160, height=120, keyframe_interval=15)
    opus = encode_opus_clip(seconds=1.0)
    first = RoomClient(server.ws_url, "threads", "First", vp8, opus, tag=1)
    second = RoomClient(server.ws_url, "threads", "Second", vp8, opus, tag=2)
    try:
        await first.join()
        await second.join()
        # Both ways, audio and video: eight receivers (server and clients) that aiortc would give a thread.
        await wait_for(lambda: all(c.count_from(o.participant_id, k) > 5  # type: ignore[arg-type]
                                   for c, o in ((first, second), (second, first)) for k in ("audio", "video")))
        assert decoder_threads() == []
    finally:
        await first.leave()
        await second.leave()
    assert decoder_threads() == []


def test_startup_heap_is_left_out_of_collections() -> None:
    # In a process of its own: frozen objects are never collected, which a test process must not suffer.
    script = (
        "import gc\n"
        "from sfu.app import create_app\n"
        "from sfu.lifecycle.heap import freeze_startup_heap\n"
        "create_app()\n"
        "before = len(gc.get_objects())\n"
        "freeze_startup_heap()\n"
        "print(before, len(gc.get_objects()), gc.get_freeze_count())\n"
    )
    walked_before, walked_after, frozen = map(int, subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split())
    assert walked_before > 20_000 and walked_after < walked_before / 20 and frozen >= walked_before / 2
    # `peerwell serve` does it once it is set up.
    assert any("freeze_startup_heap" in getattr(c, "co_names", ()) for c in peerwell_server.serve.__code__.co_consts)


def test_bitrate_counter_counts_as_aiortcs_without_an_object_per_millisecond() -> None:
    import random

    import aiortc.rate as aiortc_rate

    from sfu.aiortc_adapter import receive

    ours, theirs = receive.CompactRateCounter(1000, 8000), receive._OriginalRateCounter(1000, 8000)
    generator = random.Random(7)
    now = 10_000
    for step in range(5000):
        now += generator.choice((0, 1, 3, 20, 40, 700, 1500))  # bursts, frames, gaps longer than the window
        size = generator.randint(20, 1200)
        ours.add(size, now)
        theirs.add(size, now)
        assert ours.rate(now) == theirs.rate(now), step
        if step % 997 == 0:
            ours.reset()
            theirs.reset()
    # What every video receiver's estimator now holds: no bucket objects for the collector to walk.
    estimator = aiortc_rate.RemoteBitrateEstimator()
    assert isinstance(estimator.incoming_bitrate, receive.CompactRateCounter)
    assert estimator.incoming_bitrate._counts is None  # no arrays until it counts (a slot's receiver never does)
    held = gc.get_referents(*vars(estimator.incoming_bitrate).values())
    assert not any(isinstance(o, aiortc_rate.RateBucket) for o in held)
