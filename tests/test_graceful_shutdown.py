"""SIGTERM with people in a room: everyone is told, a caption being spoken still arrives, the process exits
within 10 s, and members come back when a new server listens on the same port."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sfu import aiortc_adapter
from sfu.client import RoomClient, encode_opus_clip, encode_vp8_clip
from tests.support.speech import espeak, have_espeak, load_48k, silence, to_int16

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parent.parent
SPOKEN = ("Tonight I want to tell you about my week. I went walking every morning by the river, "
          "and I called my sister twice, which helped more than I expected.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def text(path: Path) -> str:
    return path.read_text(errors="replace")


async def start(port: int, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "peerwell.cli", "serve", "--port", str(port), "--ice-host", "127.0.0.1",
            "--whisper-model", "tiny.en", "--reconnect-grace", "20", cwd=ROOT, stdout=out, stderr=out)
    deadline = time.monotonic() + 120
    while "peerwell is running" not in text(log):
        assert process.returncode is None and time.monotonic() < deadline, text(log)
        await asyncio.sleep(0.1)
    return process


def signals(client: RoomClient, kind: str) -> list[dict]:
    return [m for m in client.signals if m.get("type") == kind]


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng is not installed")
async def test_sigterm_tells_everyone_finishes_the_caption_and_members_come_back(tmp_path: Path) -> None:
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    port, log = free_port(), tmp_path / "server.log"
    server = await start(port, log)
    speech = load_48k(espeak(SPOKEN, "en", tmp_path))
    ws = f"ws://127.0.0.1:{port}/ws"
    speaker = RoomClient(ws, "restart-room", "Speaker", audio_frames=encode_opus_clip(
        to_int16(np.concatenate([silence(0.3), speech, silence(2.0)]))), loop_audio=False)
    listener = RoomClient(ws, "restart-room", "Listener", video_frames=encode_vp8_clip(frames=60), tag=2)
    try:
        await listener.join()
        await speaker.join()

        def captions() -> list[dict]:
            return [e for e in listener.events if e.get("type") == "caption"]

        # Mid-sentence: partials are out, the utterance has not ended.
        deadline = time.monotonic() + 30
        while not captions():
            assert time.monotonic() < deadline, listener.events
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        finals_before = sum(c["final"] for c in captions())
        events_before = len(listener.events)
        terminated_at = time.monotonic()
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 10)
        exit_seconds = time.monotonic() - terminated_at
        assert server.returncode == 0, text(log)
        assert exit_seconds < 10

        for client in (speaker, listener):
            (notice,) = signals(client, "server-shutdown")
            assert notice["retry"] is True and notice["retry_after"] > 0 and notice["reason"]
        # The words being spoken when SIGTERM came were still decoded and delivered before the close.
        late = [e for e in listener.events[events_before:] if e.get("type") == "caption" and e["final"]]
        assert late or sum(c["final"] for c in captions()) > finals_before, captions()
        await asyncio.sleep(0.5)
        assert listener.pc.connectionState in ("closed", "failed")
    finally:
        await speaker.close()
        await listener.close()

    # A new server on the same port: the members reconnect (their resume tokens died with the old process,
    # so `resume-failed` tells them to join afresh, as the web client does) and media flows again.
    server = await start(port, tmp_path / "restarted.log")
    try:
        back = []
        for old, frames in ((listener, encode_vp8_clip(frames=60)), (speaker, None)):
            client = RoomClient(ws, "restart-room", old.name, video_frames=frames, tag=3, resume=old.joined["resume"])
            with pytest.raises(Exception, match="resume-failed"):
                await client.join()
            await client.close()
            client = RoomClient(ws, "restart-room", old.name, video_frames=frames, tag=3)
            await client.join()
            back.append(client)
        publisher, watcher = back
        deadline = time.monotonic() + 20
        while watcher.count_from(publisher.participant_id, "video") < 10:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        for client in back:
            await client.leave()
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 10)
