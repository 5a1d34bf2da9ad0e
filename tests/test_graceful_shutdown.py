"""SIGTERM with people in a room: everyone is told, a caption being spoken still arrives, the process exits
within 10 s, and members take their places back (same id, role, no lobby) when a new server started with
the same restart key listens on the same port."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from sfu import aiortc_adapter
from sfu.contrib.client import RoomClient, encode_opus_clip, encode_vp8_clip
from sfu.lifecycle.shutdown import SHUTDOWN_KEY
from tests.conftest import start_server
from tests.support.serve import LOBBY_GROUP, SECRET, free_port, start_serve, text
from tests.support.speech import espeak, have_espeak, load_48k, silence, to_int16

SPOKEN = ("Tonight I want to tell you about my week. I went walking every morning by the river, "
          "and I called my sister twice, which helped more than I expected.")


async def start(port: int, log: Path, config: Path) -> asyncio.subprocess.Process:
    return await start_serve(["--port", str(port), "--ice-host", "127.0.0.1", "--whisper-model", "tiny.en",
                              "--reconnect-grace", "20", "--config", str(config)], log,
                             env={"PEERWELL_SERVER_RESTART_KEY": "restart-key-1234"}, timeout=120)


def signals(client: RoomClient, kind: str) -> list[dict]:
    return [m for m in client.signals if m.get("type") == kind]


@pytest.mark.model
@pytest.mark.skipif(not have_espeak(), reason="espeak-ng is not installed")
async def test_sigterm_tells_everyone_finishes_the_caption_and_members_come_back(tmp_path: Path) -> None:
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    config = tmp_path / "peerwell.toml"
    config.write_text(LOBBY_GROUP)
    port, log = free_port(), tmp_path / "server.log"
    server = await start(port, log, config)
    speech = load_48k(espeak(SPOKEN, "en", tmp_path))
    ws = f"ws://127.0.0.1:{port}/ws"
    facilitator = RoomClient(ws, "circle", "Facilitator", secret=SECRET, audio_frames=encode_opus_clip(
        to_int16(np.concatenate([silence(0.3), speech, silence(2.0)]))), loop_audio=False)
    member = RoomClient(ws, "circle", "Member", video_frames=encode_vp8_clip(frames=60), tag=2)
    waiting = RoomClient(ws, "circle", "Waiting")
    try:
        await facilitator.join()
        await member.join()
        await waiting.join()  # stays in the lobby
        await facilitator.send({"type": "admit", "participant_id": member.participant_id})
        await member.wait_admitted()
        await member.connect_media()

        def captions() -> list[dict]:
            return [e for e in member.events if e.get("type") == "caption"]

        # Mid-sentence: partials are out, the utterance has not ended.
        deadline = time.monotonic() + 30
        while not captions():
            assert time.monotonic() < deadline, member.events
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        finals_before = sum(c["final"] for c in captions())
        terminated_at = time.monotonic()
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 10)
        assert time.monotonic() - terminated_at < 10
        assert server.returncode == 0, text(log)

        for client in (facilitator, member, waiting):
            (notice,) = signals(client, "server-shutdown")
            assert notice["retry"] is True and notice["retry_after"] > 0 and notice["reason"]
        assert signals(facilitator, "server-shutdown")[0]["resume"]
        assert signals(member, "server-shutdown")[0]["resume"]
        assert signals(waiting, "server-shutdown")[0]["resume"] is None, "a ticket would skip the lobby"
        # The words being spoken when SIGTERM came were still decoded and delivered before the close.
        assert sum(c["final"] for c in captions()) > finals_before, captions()
        await asyncio.sleep(0.5)
        assert member.pc.connectionState in ("closed", "failed")
    finally:
        for client in (facilitator, member, waiting):
            await client.close()

    # A new server on the same port with the same restart key: the tickets take the places back.
    server = await start(port, tmp_path / "restarted.log", config)
    try:
        back = []
        for old, frames in ((facilitator, None), (member, encode_vp8_clip(frames=60))):
            ticket = signals(old, "server-shutdown")[0]["resume"]
            client = RoomClient(ws, "circle", old.name, video_frames=frames, tag=3, resume=ticket)
            await client.join()
            assert client.participant_id == old.participant_id and client.joined["role"] == old.joined["role"]
            assert not signals(client, "lobby")
            back.append(client)
        assert [p["id"] for p in back[1].joined["participants"]] == [facilitator.participant_id]
        again = RoomClient(ws, "circle", "Member", resume=signals(member, "server-shutdown")[0]["resume"])
        with pytest.raises(Exception, match="resume-failed"):
            await again.join()  # a ticket is good once
        await again.close()
        watcher, publisher = back
        deadline = time.monotonic() + 20
        while watcher.count_from(publisher.participant_id, "video") < 10:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        for client in back:
            await client.leave()
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 10)


async def test_captions_that_never_finish_do_not_hold_the_shutdown() -> None:
    """A stuck caption decode costs at most `grace`: the members are still told and disconnected."""
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    runner, running = await start_server()
    shutdown = running.app[SHUTDOWN_KEY]
    shutdown.grace = 0.5
    stuck = asyncio.Event()
    shutdown.finish.append(stuck.wait)  # never set
    client = RoomClient(running.ws_url, "stuck-room", "Member")
    try:
        await client.join()
        started = time.monotonic()
        await shutdown()
        assert time.monotonic() - started < 2.5
        (notice,) = signals(client, "server-shutdown")
        assert notice["resume"] is None, "no restart key configured: no ticket"
        assert not running.rooms.accepting_joins and not running.rooms.seats
        deadline = time.monotonic() + 5
        while client._ws is not None and not client._ws.closed:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert client._ws is not None and client._ws.close_code == 1012
        late = RoomClient(running.ws_url, "stuck-room", "Late")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await late.join(timeout=5)  # still listening (until the drain ends): a new socket is refused
        assert refused.value.status == 503
        await late.close()
    finally:
        await client.close()
        await runner.cleanup()


async def test_sigterm_drains_while_readyz_says_503_and_a_late_join_gets_shutting_down() -> None:
    """SIGTERM (a real one, to this process): the listener keeps answering for the whole drain. /readyz says
    503, a new socket is refused with 503, and a `join` on a socket opened before gets `shutting-down` and a
    close frame (1012), not a dropped connection. Only when the drain is over does the port stop answering."""
    import os

    from sfu.app import create_app
    from sfu.config import ServerConfig
    from sfu.lifecycle.shutdown import DrainingRunner, serve_until_signalled

    app = create_app(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0))
    draining = asyncio.Event()

    async def slow_captions() -> None:  # stands in for captions still being decoded
        draining.set()
        await asyncio.sleep(1.5)

    app[SHUTDOWN_KEY].finish.append(slow_captions)
    runner = DrainingRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    serving = asyncio.create_task(serve_until_signalled(runner))
    await asyncio.sleep(0)  # its signal handlers are in place
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/readyz") as ready:
            assert ready.status == 200
        member = RoomClient(f"ws://127.0.0.1:{port}/ws", "drain", "Member")
        await member.join()
        early = await http.ws_connect(f"ws://127.0.0.1:{port}/ws")  # opened before SIGTERM, joins after
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(draining.wait(), 5)
        async with http.get(base + "/readyz") as ready:
            assert ready.status == 503 and await ready.json() == {"status": "shutting-down"}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"ws://127.0.0.1:{port}/ws")
        assert refused.value.status == 503
        await early.send_json({"type": "join", "room": "drain", "name": "Late", "accept_agreement": True})
        reply = await early.receive_json(timeout=5)
        assert reply["type"] == "error" and reply["code"] == "shutting-down", reply
        closing = await early.receive(timeout=5)
        assert closing.type == aiohttp.WSMsgType.CLOSE and early.close_code == 1012, closing
        async with http.get(base + "/readyz") as ready:  # still draining: still answering
            assert ready.status == 503
        await asyncio.wait_for(serving, 10)
        assert signals(member, "server-shutdown")
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(base + "/readyz"):
                pass
    await member.close()
