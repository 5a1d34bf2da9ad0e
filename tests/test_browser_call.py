"""Two real Chromium pages join one room through the UI and see and hear each other via our SFU."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.conftest import RunningServer
from tests.support.browser import CHROMIUM, chromium_args, require_loopback_only_namespace, write_tone_wav

pytestmark = pytest.mark.browser


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    require_loopback_only_namespace()
    wav = write_tone_wav(tmp_path / "tone.wav")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args(wav))
        yield browser
        await browser.close()


async def join(browser: Browser, server: RunningServer, room: str, name: str) -> Page:
    context = await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(server.http_url + "/")
    await page.fill("#room-input", room)
    await page.fill("#name-input", name)
    await page.click("#join-button")
    await page.wait_for_selector("#room:not([hidden])", timeout=15000)
    return page


VIDEO_STATE = """(name) => {
  const tile = [...document.querySelectorAll('.tile')].find(t => t.querySelector('figcaption').textContent === name);
  if (!tile) return null;
  const v = tile.querySelector('video');
  return {width: v.videoWidth, time: v.currentTime};
}"""

AUDIO_BYTES = """async () => {
  const stats = await window.peerwell.call.pc.getStats();
  let bytes = 0;
  stats.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'audio') bytes += s.bytesReceived; });
  return bytes;
}"""

SELECTED_PAIR = """async () => {
  const stats = await window.peerwell.call.pc.getStats();
  const pairs = []; const byId = new Map(); stats.forEach(s => byId.set(s.id, s));
  stats.forEach(s => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
    pairs.push([byId.get(s.localCandidateId).address, byId.get(s.remoteCandidateId).address]); } });
  return pairs;
}"""


async def poll(page: Page, script: str, arg: object, check, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    value = None
    while asyncio.get_running_loop().time() < deadline:
        value = await page.evaluate(script, arg)
        if check(value):
            return value
        await asyncio.sleep(0.25)
    raise AssertionError(f"condition not met; last value {value!r}")


async def test_two_browsers_see_and_hear_each_other(server: RunningServer, browser: Browser) -> None:
    alice = await join(browser, server, "e2e-room", "Alice")
    bob = await join(browser, server, "e2e-room", "Bob")

    for page, other in ((alice, "Bob"), (bob, "Alice")):
        first = await poll(page, VIDEO_STATE, other, lambda v: v is not None and v["width"] > 0 and v["time"] > 0)
        await asyncio.sleep(1.0)
        later = await page.evaluate(VIDEO_STATE, other)
        assert later["time"] > first["time"], f"{other}'s video is not advancing"
        before = await poll(page, AUDIO_BYTES, None, lambda b: b > 0)
        await asyncio.sleep(1.0)
        assert await page.evaluate(AUDIO_BYTES) > before, f"no audio arriving from {other}"
        for local, remote in await page.evaluate(SELECTED_PAIR):
            assert local.startswith("127.") and remote.startswith("127."), (local, remote)

    # The server forwarded the browsers' own encoded VP8/Opus; both ends are in one room.
    room = server.rooms.rooms["e2e-room"]
    assert {p.name for p in room.participants.values()} == {"Alice", "Bob"}
    for participant in room.participants.values():
        assert participant.publications["video"].codec.mimeType == "video/VP8"
        assert participant.publications["audio"].codec.mimeType == "audio/opus"

    await bob.click("#leave")
    await poll(alice, "() => document.querySelectorAll('.tile').length", None, lambda n: n == 1)
    assert not [e for e in alice.errors + bob.errors if "Uncaught" in e]  # type: ignore[attr-defined]
