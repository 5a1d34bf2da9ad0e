"""Two real Chromium pages join one room through the UI and see and hear each other via our SFU."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Browser, Page

from tests.conftest import RunningServer
from tests.support.browser import (
    AUDIO_BYTES,
    TILE_STATE,
    join,
    new_page,
    poll,
    uncaught,
)

pytestmark = pytest.mark.browser



async def join_adhoc(browser: Browser, server: RunningServer, room: str, name: str) -> Page:
    page = await new_page(browser, server.http_url)
    # Directory -> "join another room by name" -> agreement ("I agree") -> name, mic + camera -> room.
    await join(page, name, room=room, mic=True, camera=True)
    return page


SELECTED_PAIR = """async () => {
  const stats = await window.peerwell.call.pc.getStats();
  const pairs = []; const byId = new Map(); stats.forEach(s => byId.set(s.id, s));
  stats.forEach(s => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
    pairs.push([byId.get(s.localCandidateId).address, byId.get(s.remoteCandidateId).address]); } });
  return pairs;
}"""


async def test_two_browsers_see_and_hear_each_other(server: RunningServer, browser: Browser) -> None:
    alice = await join_adhoc(browser, server, "e2e-room", "Alice")
    bob = await join_adhoc(browser, server, "e2e-room", "Bob")

    for page, other in ((alice, "Bob"), (bob, "Alice")):
        first = await poll(page, TILE_STATE, other, lambda v: v is not None and v["width"] > 0 and v["time"] > 0)
        await asyncio.sleep(1.0)
        later = await page.evaluate(TILE_STATE, other)
        assert later["time"] > first["time"], f"{other}'s video is not advancing"
        before = await poll(page, AUDIO_BYTES, None, lambda b: b > 0)
        await asyncio.sleep(1.0)
        assert await page.evaluate(AUDIO_BYTES, None) > before, f"no audio arriving from {other}"
        for local, remote in await page.evaluate(SELECTED_PAIR):
            assert local.startswith("127.") and remote.startswith("127."), (local, remote)

    # The server forwarded the browsers' own encoded VP8/Opus; both ends are in one room.
    room = server.rooms.rooms["e2e-room"]
    assert {p.name for p in room.participants.values()} == {"Alice", "Bob"}
    for participant in room.participants.values():
        assert participant.media.publications["video"].codec.mimeType == "video/VP8"
        assert participant.media.publications["audio"].codec.mimeType == "audio/opus"

    await bob.click("#leave")
    await bob.wait_for_selector("#goodbye:not([hidden])")
    await poll(alice, "() => document.querySelectorAll('.tile').length", None, lambda n: n == 1)
    assert not uncaught(alice, bob)
