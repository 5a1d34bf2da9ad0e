"""A browser whose connection drops comes back by itself: same place, same id, media flowing again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser

from sfu.config import ServerConfig
from tests.conftest import RunningServer, start_server
from tests.support.browser import TILE_STATE, join, new_page, poll, uncaught

pytestmark = pytest.mark.browser

DROP = """() => { const call = window.peerwell.call; call.pc.close(); call.signaling.ws.close(); }"""
MY_ID = "() => window.peerwell.call && window.peerwell.call.participantId"


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    runner, running = await start_server(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=15))
    yield running
    await runner.cleanup()



async def test_dropped_browser_resumes_its_place(server: RunningServer, browser: Browser) -> None:
    alice = await new_page(browser, server.http_url)
    await join(alice, "Alice", room="drop-room", mic=True, camera=True)
    bob = await new_page(browser, server.http_url)
    await join(bob, "Bob", room="drop-room", mic=True, camera=True)
    await poll(bob, TILE_STATE, "Alice", lambda v: v is not None and v["width"] > 0 and v["time"] > 0)
    alice_id = await alice.evaluate(MY_ID)

    await alice.evaluate(DROP)
    # Alice's client notices, rejoins with its resume token and renegotiates media on a new connection.
    await poll(alice, "() => window.peerwell.call.pc.connectionState", None, lambda s: s == "connected", timeout=30)
    assert await alice.evaluate(MY_ID) == alice_id
    room = server.rooms.rooms["drop-room"]
    assert sorted(p.name for p in room.participants.values()) == ["Alice", "Bob"]
    first = await poll(bob, TILE_STATE, "Alice", lambda v: v is not None and v["width"] > 0, timeout=30)
    await asyncio.sleep(1.0)
    assert (await bob.evaluate(TILE_STATE, "Alice"))["time"] > first["time"], "Alice's video did not come back"
    assert await alice.is_hidden("#status-banner") or not (await alice.text_content("#status-banner") or "").strip()
    assert not uncaught(alice, bob)
