"""Overload through the real transcription worker (TranscriberProcess, Whisper base, one decoder on one thread):
four people reading at once. Finals still come within the latency bound of the end of their speech, the
speech that could not be captioned in time is announced with `skipped` finals, and the dominant speaker
keeps priority. The p95 target itself lives in the bench (python -m bench.captions --overload): here, on a
machine other work may load, the median is held to the bound and the tail to twice it (without shedding,
the same four readers' finals were 3-50 s late and growing)."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import pytest

from sfu.contrib.client import encode_opus_clip
from tests.support import real_speech
from tests.support.speech import load_48k, silence, to_int16
from transcribe.events import Caption
from transcribe.process import KILL_AFTER_S, TranscriberProcess
from transcribe.scheduler import LATENCY_BOUND_S
from transcribe.worker import WorkerOptions

pytestmark = pytest.mark.model

SPEAKERS = 4
SECONDS = 30.0


def readings() -> list[np.ndarray]:
    try:
        reel = np.concatenate([load_48k(real_speech.clip_path(name))
                               for name in ("two_cities.wav", "endgame_nagg_nell.wav", "beckett.wav")])
    except real_speech.RealSpeechMissing as exc:
        pytest.skip(str(exc))
    tape = np.tile(reel, 2)
    return [np.concatenate([silence(0.3), tape[int(i * 9.1 * 48_000):][: int(SECONDS * 48_000)], silence(3.0)])
            for i in range(SPEAKERS)]


async def test_four_speakers_on_one_decoder_get_finals_within_the_bound_and_a_skipped_marker() -> None:
    audio = readings()
    process = TranscriberProcess(WorkerOptions(model="base", workers=1, cpu_threads=1))
    await process.start()
    frames = [encode_opus_clip(to_int16(a)) for a in audio]
    origin = time.perf_counter() + 0.3
    heard: list[tuple[int, float, Caption]] = []
    streams = [process.open_stream(f"s{i}", "en", english=False,
                                   on_caption=lambda c, i=i: heard.append((i, time.perf_counter() - origin, c)),
                                   on_english=lambda c: None) for i in range(SPEAKERS)]
    streams[0].set_dominant(True)  # what SpeechTap says for the room's dominant speaker
    try:
        for k in range(max(len(f) for f in frames)):  # real time, as packets arrive from a room
            await asyncio.sleep(max(0.0, origin + k * 0.02 - time.perf_counter()))
            for stream, packets in zip(streams, frames, strict=True):
                if k < len(packets):
                    stream.push_opus(packets[k], k * 0.02)
        for stream in streams:
            await stream.close()
        stats = await process.stats()
    finally:
        await process.close()

    finals = [(i, arrival - c.end, c) for i, arrival, c in heard if c.final and c.text.strip() and not c.skipped]
    markers = [(i, c) for i, _, c in heard if c.skipped]
    latencies = [lat for _, lat, _ in finals]
    assert {i for i, _, _ in finals} == set(range(SPEAKERS)), "everyone still gets captions"
    assert float(np.percentile(latencies, 50)) <= LATENCY_BOUND_S, sorted(latencies)
    assert float(np.percentile(latencies, 95)) <= 2 * LATENCY_BOUND_S, sorted(latencies)
    # Decoding could not keep up with four readers: some speech was skipped, and said so in the stream.
    assert markers, stats
    for _, marker in markers:
        assert marker.final and marker.end >= marker.start and 0 < marker.skipped <= SECONDS
    assert stats["finals_skipped"] == len(markers) and stats["audio_seconds_skipped"] > 0
    assert stats["partials_shed_overload"] > 0
    # The dominant speaker keeps priority: their finals go first, so little or none of their speech is skipped.
    dominant_skipped = sum(c.skipped for i, c in markers if i == 0)
    others_skipped = sum(c.skipped for i, c in markers if i != 0) / (SPEAKERS - 1)
    assert dominant_skipped <= others_skipped, (dominant_skipped, others_skipped)


async def backlogged_worker() -> tuple[TranscriberProcess, int]:
    """A worker with more speech queued than it can decode in seconds: four readers' 20 s, pushed at once."""
    audio = [a[: (20 * 48_000)] for a in readings()]
    process = TranscriberProcess(WorkerOptions(model="base", workers=1, cpu_threads=1))
    await process.start()
    streams = [process.open_stream(f"s{i}", "en", english=False, on_caption=lambda c: None,
                                   on_english=lambda c: None) for i in range(SPEAKERS)]
    for k, packets in enumerate(zip(*(encode_opus_clip(to_int16(a)) for a in audio), strict=True)):
        for stream, packet in zip(streams, packets, strict=True):
            stream.push_opus(packet, k * 0.02)
        if k % 50 == 49:
            await asyncio.sleep(0.01)  # let the 20 ms flushes go out
    await asyncio.sleep(1.0)
    assert process.pid is not None
    return process, process.pid


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_closing_with_a_backlog_drops_what_cannot_finish_in_the_grace() -> None:
    process, pid = await backlogged_worker()
    started = time.monotonic()
    await process.close(grace=0.5)
    assert time.monotonic() - started < 0.5 + KILL_AFTER_S + 1.0
    assert gone(pid)


async def test_a_cancelled_close_stops_the_worker_at_once() -> None:
    """The server's shutdown grace ran out before the worker's: the worker is killed, nothing waits."""
    process, pid = await backlogged_worker()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(process.close(grace=30.0), 0.3)
    assert time.monotonic() - started < 2.0
    assert gone(pid)
