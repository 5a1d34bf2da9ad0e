"""A server restart with browsers in a lobby group: the real web client keeps the restart ticket from
`server-shutdown`, reconnects by itself when the new server (same port, same restart key) listens, and is
back in the room with the same id and role, without the lobby, with media flowing."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.support.browser import TILE_STATE, join, new_page, poll, uncaught
from tests.support.serve import LOBBY_GROUP, SECRET, free_port, start_serve

pytestmark = pytest.mark.browser

MY_ID = "() => window.peerwell.call && window.peerwell.call.participantId"
CONNECTED = "() => window.peerwell.call && window.peerwell.call.pc && window.peerwell.call.pc.connectionState"


async def start(port: int, config: Path, log: Path) -> asyncio.subprocess.Process:
    return await start_serve(["--port", str(port), "--ice-host", "127.0.0.1", "--no-captions", "--config",
                              str(config)], log, env={"PEERWELL_SERVER_RESTART_KEY": "restart-key-for-tests"})


async def test_browsers_take_their_places_back_after_a_restart(browser: Browser, tmp_path: Path) -> None:
    config = tmp_path / "peerwell.toml"
    config.write_text(LOBBY_GROUP)
    port = free_port()
    server = await start(port, config, tmp_path / "first.log")
    base = f"http://127.0.0.1:{port}"
    try:
        fran = await new_page(browser, base)
        await join(fran, "Fran", "circle", secret=SECRET, mic=True, camera=True)
        alice = await new_page(browser, base)
        await join(alice, "Alice", "circle", mic=True, camera=True, expect="lobby")
        await fran.wait_for_selector('#lobby-list button[aria-label="Admit Alice"]', timeout=10000)
        await fran.click('button[aria-label="Admit Alice"]')
        await alice.wait_for_selector("#room:not([hidden])")
        await poll(alice, TILE_STATE, "Fran", lambda v: v is not None and v["width"] > 0 and v["time"] > 0)
        ids = {"fran": await fran.evaluate(MY_ID), "alice": await alice.evaluate(MY_ID)}

        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 10)
        server = await start(port, config, tmp_path / "second.log")

        for name, page in (("fran", fran), ("alice", alice)):
            await poll(page, CONNECTED, None, lambda s: s == "connected", timeout=40)
            assert await page.evaluate(MY_ID) == ids[name]
            assert await page.is_visible("#room") and not await page.is_visible("#lobby")
        assert await fran.locator("#facilitator-panel").is_visible()
        first = await poll(alice, TILE_STATE, "Fran", lambda v: v is not None and v["width"] > 0, timeout=30)
        await asyncio.sleep(1.0)
        assert (await alice.evaluate(TILE_STATE, "Fran"))["time"] > first["time"], "Fran's video did not come back"
        assert not uncaught(fran, alice)
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 10)
