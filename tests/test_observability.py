"""A real `peerwell serve` process: /metrics series move with a session, /healthz and /readyz answer, and
its logs (JSON) stay quiet and carry no names, chat or captions.

The session: two members with pseudonyms nobody else uses join an ad-hoc room; one publishes video and
speech (espeak-ng, captioned by the real tiny.en model), the other reads Spanish subtitles (a test-built
Argos package) and chats, including a message that raises a safety alert. Everything the server wrote to
stdout and stderr is then searched for those words.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from sfu import aiortc_adapter
from sfu.contrib.client import RoomClient, encode_opus_clip, encode_vp8_clip
from tests.support.serve import ROOT, free_port
from tests.support.speech import espeak, have_espeak, load_48k, silence, to_int16

pytestmark = pytest.mark.model


SPEAKER, LISTENER = "Zephyrine", "Quillon"
SPOKEN = "I have been walking by the river every morning, and the marmalade sandwiches help me a lot."
CHAT = "my private chat line about tangerine bicycles"
ALERT_CHAT = "sometimes I want to end my life"


@dataclass
class Server:
    process: asyncio.subprocess.Process
    port: int
    stdout: Path
    stderr: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")


@pytest.fixture
async def server(tmp_path: Path, argos_dir: Path) -> AsyncIterator[Server]:
    port = free_port()
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    settings = tmp_path / "peerwell.toml"
    settings.write_text("[server]\nallow_adhoc_rooms = true\n")  # the embedded groups open no ad-hoc rooms
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "peerwell.cli", "serve", "--config", str(settings), "--port", str(port),
            "--ice-host", "127.0.0.1",
            "--whisper-model", "tiny.en", "--log-format", "json", "--reconnect-grace", "0",
            cwd=ROOT, stdout=out, stderr=err, env={**os.environ, "ARGOS_PACKAGES_DIR": str(argos_dir)})
    running = Server(process, port, stdout, stderr)
    deadline = time.monotonic() + 120
    while "peerwell is running" not in stdout.read_text(errors="replace"):
        assert process.returncode is None, running.output()
        assert time.monotonic() < deadline, running.output()
        await asyncio.sleep(0.2)
    yield running
    if process.returncode is None:
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)


async def scrape(session: aiohttp.ClientSession, server: Server) -> dict[str, float]:
    async with session.get(f"{server.url}/metrics") as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    series: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            series[name] = float(value)
    return series


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng is not installed")
async def test_metrics_move_and_logs_keep_nothing_personal(server: Server, tmp_path: Path) -> None:
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])  # the clients' candidates, in this process
    speech = load_48k(espeak(SPOKEN, "en", tmp_path))
    audio = encode_opus_clip(to_int16(np.concatenate([silence(0.5), speech, silence(3.0)])))
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/readyz"):
            async with http.get(server.url + path) as response:
                assert response.status == 200, path
        before = await scrape(http, server)
        assert before["peerwell_rooms"] == 0 and before['peerwell_participants{state="admitted"}'] == 0
        assert before['peerwell_forwarded_frames_total{kind="audio"}'] == 0

        ws = f"ws://127.0.0.1:{server.port}/ws"
        speaker = RoomClient(ws, "obs-room", SPEAKER, audio_frames=audio, loop_audio=False,
                             video_frames=encode_vp8_clip(frames=60), tag=1)
        listener = RoomClient(ws, "obs-room", LISTENER)
        try:
            await speaker.join()
            await listener.join()
            # Test-built en->es Argos package (gibberish output, real loading and translation path).
            while listener.channel is None or listener.channel.readyState != "open":
                await asyncio.sleep(0.05)
            listener.send_channel({"type": "set-subtitle-language", "language": "es"})
            during = await scrape(http, server)
            assert during["peerwell_rooms"] == 1 and during['peerwell_participants{state="admitted"}'] == 2

            def finals() -> list[dict]:
                return [e for e in listener.events if e.get("type") == "caption" and e["final"]]

            deadline = time.monotonic() + len(speech) / 48000 + 40
            while sum(len(f["text"]) for f in finals()) < len(SPOKEN) * 0.5:
                assert time.monotonic() < deadline, f"captions: {finals()}"
                await asyncio.sleep(0.2)
            listener.send_channel({"type": "chat", "text": CHAT})
            listener.send_channel({"type": "chat", "text": ALERT_CHAT})
            while sum(e.get("type") == "chat" for e in speaker.events) < 2:
                assert time.monotonic() < deadline, speaker.events
                await asyncio.sleep(0.1)
            # A newcomer while video flows: the server asks the publisher for a keyframe for them (counted).
            late = RoomClient(ws, "obs-room", "Late")
            await late.join()
            while late.count_from(speaker.participant_id, "video") < 5:
                assert time.monotonic() < deadline + 20, "the newcomer got no video"
                await asyncio.sleep(0.1)
            await late.leave()
            after = await scrape(http, server)
        finally:
            await speaker.leave()
            await listener.leave()

    caption_text = " ".join(f["text"] for f in finals())
    assert "marmalade" in caption_text.lower() or "river" in caption_text.lower(), caption_text
    for kind in ("audio", "video"):
        assert after[f'peerwell_forwarded_frames_total{{kind="{kind}"}}'] > 20
        assert after[f'peerwell_forwarded_bytes_total{{kind="{kind}"}}'] > after[
            f'peerwell_forwarded_frames_total{{kind="{kind}"}}']
    assert after["peerwell_keyframe_requests_total"] >= 1
    assert after["peerwell_forwarded_tracks"] == 2  # the speaker's audio and video, to the listener
    assert 0.5 < after["peerwell_delivered_fraction"] <= 1
    assert after['peerwell_caption_latency_seconds_count{final="true"}'] >= 1
    assert after['peerwell_caption_latency_seconds_count{final="false"}'] >= 1
    assert after["peerwell_transcription_decodes_total"] >= 2
    assert 'peerwell_transcription_shed_total{work="partial"}' in after
    assert "peerwell_transcription_backlog_jobs" in after
    assert after['peerwell_safety_alerts_total{source="chat"}'] == 1
    assert after["peerwell_accepting_joins"] == 1
    assert after["peerwell_translation_seconds_count"] >= 1
    assert any(e.get("type") == "subtitle" for e in listener.events)

    output = server.output()
    words = {w for w in re.findall(r"[a-z]{6,}", (caption_text + " " + CHAT + " " + ALERT_CHAT).lower())}
    leaked = [w for w in [SPEAKER, LISTENER, CHAT, ALERT_CHAT, *words] if w.lower() in output.lower()]
    assert not leaked, f"the server wrote {leaked} to its output:\n{output}"
    # JSON logs, one object per line, and quiet: a whole session is a handful of lines.
    log_lines = server.stderr.read_text().splitlines()
    for line in log_lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= entry.keys()
    assert len(log_lines) <= 15, "\n".join(log_lines)
    # The ad-hoc room's facilitator link stands out: a JSON entry of its own kind naming only the room.
    links = [json.loads(line) for line in log_lines if "facilitator-link" in line]
    assert len(links) == 1 and links[0]["room"] == "obs-room" and "secret=" in links[0]["message"]
