"""Real Chromium on two nodes: the pages come from node A, their room lives on node B (the join is forwarded);
B is SIGKILLed and the web client's own reconnect brings both back on A, same ids, video flowing again."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from playwright.async_api import Browser

from sfu import aiortc_adapter
from sfu.contrib.client import RoomClient
from tests.support.browser import PARTICIPANT_ID, TILE_STATE, join, new_page, poll, uncaught
from tests.support.cluster import Node, RedisServer, have_redis
from tests.support.serve import text

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not have_redis(), reason="redis-server is not installed")]


NEW_CALL_STATE = """() => { const call = window.peerwell.call;
  return call && !call.beforeFailure && call.pc ? call.pc.connectionState : null; }"""


async def owner_url(store: aioredis.Redis, room: str) -> str:
    node = (await store.get(f"peerwell:room:{room}")).split("|")[0]
    return await store.hget(f"peerwell:node:{node}", "url")


async def test_browsers_resume_on_another_node_after_sigkill(tmp_path: Path, browser: Browser) -> None:
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    redis = RedisServer(tmp_path / "redis.log")
    await redis.start()
    nodes = [Node("one", tmp_path, redis, (42400, 42449)), Node("two", tmp_path, redis, (42450, 42499))]
    store = aioredis.from_url(redis.url, decode_responses=True)
    anchors: list[RoomClient] = []
    try:
        await asyncio.gather(*(n.start() for n in nodes))
        # Three people in another room make one node the busier: the browsers' room goes to the other one.
        for i in range(3):
            anchors.append(RoomClient(nodes[0].ws, "anchor", f"a{i}"))
            await anchors[-1].join()
        busy = await owner_url(store, "anchor")
        a, b = nodes if nodes[0].ws == busy else nodes[::-1]

        alice = await new_page(browser, a.http)
        await join(alice, "Alice", room="evening", mic=True, camera=True)
        bob = await new_page(browser, a.http)
        await join(bob, "Bob", room="evening", mic=True, camera=True)
        assert await owner_url(store, "evening") == b.ws, "the room should be on the idle node"
        await poll(bob, TILE_STATE, "Alice", lambda v: v is not None and v["width"] > 0 and v["time"] > 0)
        ids = [await page.evaluate(PARTICIPANT_ID) for page in (alice, bob)]

        for page in (alice, bob):
            await page.evaluate("() => { window.peerwell.call.beforeFailure = true; }")
        killed_at = time.monotonic()
        b.process.send_signal(signal.SIGKILL)
        for page in (alice, bob):  # a new Call (the client's reconnect), connected
            await poll(page, NEW_CALL_STATE, None, lambda s: s == "connected", timeout=15)
        assert [await page.evaluate(PARTICIPANT_ID) for page in (alice, bob)] == ids, text(a.log)[-4000:]
        assert await owner_url(store, "evening") == a.ws
        first = await poll(bob, TILE_STATE, "Alice", lambda v: v is not None and v["width"] > 0, timeout=10)
        await poll(bob, TILE_STATE, "Alice", lambda v: v is not None and v["time"] > first["time"], timeout=10)
        print(f"browser failover: Alice's video moves again {time.monotonic() - killed_at:.1f} s after SIGKILL")
        assert time.monotonic() - killed_at < 10
        assert not uncaught(alice, bob)
    finally:
        for anchor in anchors:
            await anchor.close()
        await store.aclose()
        await asyncio.gather(*(n.stop() for n in nodes))
        await redis.stop()
