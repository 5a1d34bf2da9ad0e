"""A client that stops reading its WebSocket delays nobody, and is disconnected once its queue fills.

A facilitator's socket that never reads sits beside a healthy facilitator while people come and go in a
full lobby (each change sends both a ~1.5 KB `lobby-update`). The healthy one must see every update at
once; the stalled one must be cut off (its seat released, reconnect grace 0) rather than buffer forever."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bench.attacks import StalledSocket
from sfu.config import ServerConfig
from sfu.room.groups import Group, GroupsConfig, ServerSettings
from sfu.room.room import LOBBY_SEATS
from tests.conftest import RunningServer, start_server

SECRET = "facilitator-secret-lobbied"


@pytest.fixture
async def lobby_server() -> AsyncIterator[RunningServer]:
    group = Group(slug="lobbied", name="Lobbied", agreement="Be kind.", lobby=True, facilitator_secret=SECRET)
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0, joins_per_minute=1e6,  # ~100 joins
                          groups=GroupsConfig(server=ServerSettings(allow_adhoc_rooms=False), groups=(group,)))
    runner, running = await start_server(config)
    yield running
    await runner.cleanup()


def join(name: str, **extra: object) -> dict:
    return {"type": "join", "room": "lobbied", "name": name, "accept_agreement": True, **extra}


async def test_a_stalled_socket_delays_nobody_and_is_disconnected(lobby_server: RunningServer) -> None:
    server = lobby_server
    stalled = StalledSocket(server.port)
    async with aiohttp.ClientSession() as http:
        healthy = await http.ws_connect(server.ws_url)
        updates: list[tuple[float, int]] = []  # (arrival, people waiting)

        async def read_healthy() -> None:
            async for raw in healthy:
                message = raw.json()
                if message["type"] == "lobby-update":
                    updates.append((time.perf_counter(), len(message["waiting"])))

        await healthy.send_json(join("Healthy", secret=SECRET))
        reader = asyncio.ensure_future(read_healthy())
        await stalled.open()
        await stalled.send(join("Stalled", secret=SECRET))  # and never reads again
        room = None
        for _ in range(100):
            room = server.rooms.rooms.get("lobbied")
            if room is not None and len(room.facilitators) == 2:
                break
            await asyncio.sleep(0.05)
        assert room is not None and len(room.facilitators) == 2
        stalled_id = next(p.id for p in room.facilitators if p.name == "Stalled")

        waiters = []
        for i in range(LOBBY_SEATS - 1):
            ws = await http.ws_connect(server.ws_url)
            await ws.send_json(join(f"Waiting person number {i:02d} " + "x" * 14))
            waiters.append(ws)
        delays: list[float] = []
        cycles = 0
        deadline = time.monotonic() + 60
        while stalled_id in room.participants and time.monotonic() < deadline:
            cycles += 1
            for expected in (LOBBY_SEATS, LOBBY_SEATS - 1):
                sent = time.perf_counter()
                if expected == LOBBY_SEATS:
                    churner = await http.ws_connect(server.ws_url)
                    await churner.send_json(join("Coming and going " + "y" * 20))
                else:
                    await churner.close()
                while not any(at >= sent and waiting == expected for at, waiting in updates):
                    assert time.perf_counter() - sent < 5, f"the healthy facilitator waited 5 s (cycle {cycles})"
                    await asyncio.sleep(0.005)
                delays.append(next(at for at, waiting in updates if at >= sent and waiting == expected) - sent)

        # Every update reached the healthy facilitator promptly, before and after the stall was detected.
        assert max(delays) < 0.5, sorted(delays)[-5:]
        assert stalled_id not in room.participants, f"still connected after {cycles} cycles"
        assert stalled.closed_by_server()
        healthy_id = next(p.id for p in room.facilitators if p.name == "Healthy")
        assert healthy_id in room.participants and not healthy.closed
        reader.cancel()
        for ws in waiters:
            await ws.close()
        await healthy.close()
    stalled.close()
