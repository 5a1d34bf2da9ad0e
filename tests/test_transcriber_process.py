"""Transcription in its own process, as `peerwell serve` runs it: real worker, real model, real room.

The worker runs below the server's CPU priority; captions reach listeners through it; when it is killed,
media goes on untouched, the worker is restarted and the same speaker's captions come back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from peerwell.server import CAPTIONS_KEY, CaptionOptions, build_app
from sfu.config import ServerConfig
from sfu.contrib.client import RoomClient, encode_opus_clip
from sfu.room.groups import Group, GroupsConfig, ServerSettings
from sfu.signaling.websocket import ROOMS_KEY
from tests.conftest import RunningServer, start_server, wait_for
from tests.support.speech import espeak, load_48k, silence, to_int16, wer
from transcribe.process import TranscriberProcess
from transcribe.worker import NICENESS

pytestmark = pytest.mark.model

SENTENCE = "Thank you all for coming tonight. Walking every morning helps me a lot."
GROUP = Group(slug="circle", name="Circle", agreement="Be kind.", max_participants=12, lobby=False,
              facilitator_secret="process-test-secret")


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0,
                          groups=GroupsConfig(server=ServerSettings(allow_adhoc_rooms=False), groups=(GROUP,)))
    app = build_app(config, CaptionOptions(enabled=True, model="base"), translation=False)
    runner, running = await start_server(app=app)
    yield running
    await runner.cleanup()


def finals(listener: RoomClient, speaker: RoomClient, after: float = 0.0) -> list[dict]:
    return [e for e in listener.events if e.get("type") == "caption" and e["final"] and e["text"].strip()
            and e["speaker_id"] == speaker.participant_id and e.get("_arrived", 0.0) >= after]


async def test_worker_captions_the_room_and_a_crash_costs_only_captions(server: RunningServer, tmp_path: Path) -> None:
    status = server.rooms.captions_status
    assert status.enabled, status.reason
    process = server.app[CAPTIONS_KEY].transcriber
    assert isinstance(process, TranscriberProcess) and process.pid is not None
    assert process.pid != os.getpid()
    assert os.getpriority(os.PRIO_PROCESS, process.pid) >= NICENESS  # forwarding gets the CPU first

    speech = load_48k(espeak(SENTENCE, "en", tmp_path))
    clip = encode_opus_clip(to_int16(np.concatenate([speech, silence(2.0)])))  # looped: speaks every ~7 s
    listener = RoomClient(server.ws_url, GROUP.slug, "Listener",
                          on_event=lambda event: event.__setitem__("_arrived", time.monotonic()))
    speaker = RoomClient(server.ws_url, GROUP.slug, "Speaker", audio_frames=clip, loop_audio=True)
    await listener.join()
    await speaker.join()
    try:
        await wait_for(lambda: finals(listener, speaker), timeout=40)
        first = finals(listener, speaker)[0]
        assert first["speaker_name"] == "Speaker"  # names are added by the room, never sent to the worker
        assert wer(SENTENCE, first["text"], "en") <= 0.35, first["text"]

        old_pid = process.pid
        os.kill(old_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        heard = listener.count_from(speaker.participant_id, "audio")
        await asyncio.sleep(1.0)
        # Media never depended on the worker: a second of audio still arrived in full.
        assert listener.count_from(speaker.participant_id, "audio") - heard >= 40
        await wait_for(lambda: process.counters["worker_restarts"] == 1 and process.running, timeout=20)
        assert process.pid != old_pid
        # The speaker's stream was reopened in the new worker: their captions come back.
        await wait_for(lambda: finals(listener, speaker, after=killed_at), timeout=40)
        again = finals(listener, speaker, after=killed_at)[0]
        assert wer(SENTENCE, again["text"], "en") <= 0.35 or len(again["text"].split()) >= 3, again["text"]
        assert GROUP.slug in server.rooms.rooms and len(server.rooms.rooms[GROUP.slug].participants) == 2
    finally:
        await speaker.leave()
        await listener.leave()


async def test_worker_stops_with_the_server() -> None:
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0,
                          groups=GroupsConfig(server=ServerSettings(allow_adhoc_rooms=False), groups=(GROUP,)))
    app = build_app(config, CaptionOptions(enabled=True, model="tiny.en"), translation=False)
    runner, running = await start_server(app=app)
    process = app[CAPTIONS_KEY].transcriber
    assert isinstance(process, TranscriberProcess) and running.app[ROOMS_KEY].captions_status.enabled
    pid = process.pid
    assert pid is not None
    await runner.cleanup()
    assert process.counters["worker_restarts"] == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not left behind
