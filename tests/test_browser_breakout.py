"""Breakout rooms in real Chromium (issue 25; wire contract in docs/protocol.md, "Breakout rooms"): a
facilitator on a phone prepares two rooms from the tools sheet, assigns by picking a room per person and
opens them with a time; a member on a phone and one on a laptop land in their rooms (the same connection:
no reconnect), see only their room's people, the countdown, the facilitator's message to every room and the
added time; "I need help" from a breakout reaches the facilitator with the room's name; a reload inside a
breakout comes back to it; "Close all" shows the notice with a countdown, then everyone is back in the main
room with the same ids. Phone views are saved under tests/artifacts/breakout/ for a person to look at.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from sfu.app import create_app
from sfu.config import ServerConfig
from sfu.contrib.client import RoomClient, encode_opus_clip, encode_vp8_clip
from sfu.room.groups import Group, GroupsConfig, ServerSettings
from tests.conftest import RunningServer, start_server
from tests.support.browser import (
    CHROMIUM,
    PARTICIPANT_ID,
    chromium_args,
    join,
    poll,
    require_loopback_only_namespace,
    uncaught,
    write_tone_wav,
)

pytestmark = pytest.mark.browser

SLUG = "breakout-circle"
SECRET = "facilitator-secret-for-breakout-01"
NOTICE = 6.0  # the closing notice, shortened from 60 s through the test hook
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "breakout"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}

BANNER = """() => {
  const b = document.getElementById('breakout-banner');
  if (!b) return null;
  const text = (id) => document.getElementById(id).textContent;
  const message = document.getElementById('breakout-message');
  return {hidden: b.hidden, status: text('breakout-status'), time: text('breakout-time'),
          message: message.hidden ? '' : message.textContent};
}"""
TILES = "() => [...document.querySelectorAll('.tile[data-participant-id]')].map(t => t.dataset.participantId)"
# Every visible button, select and input in the breakout line and the facilitator's breakout section, smaller
# than a 44 x 44 CSS px touch target.
SMALL_TARGETS = """() => [...document.querySelectorAll(
    '#breakout-banner button, .breakout-tools button, .breakout-tools select')]
  .filter(e => e.offsetParent !== null)
  .map(e => {
    const r = e.getBoundingClientRect();
    return {text: e.textContent.trim().slice(0, 30), w: r.width, h: r.height};
  })
  .filter(r => r.w < 44 || r.h < 44)"""


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    groups = GroupsConfig(server=ServerSettings(allow_adhoc_rooms=False), groups=(
        Group(slug=SLUG, name="Breakout circle", agreement="Be kind.", language="en", lobby=False,
              facilitator_secret=SECRET),))
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=20, groups=groups, breakout_notice_seconds=NOTICE)
    runner, running = await start_server(config=config, app=create_app(config))
    yield running
    await runner.cleanup()


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    require_loopback_only_namespace()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                    args=chromium_args(write_tone_wav(tmp_path / "tone.wav")))
        yield chromium
        await chromium.close()


async def person(browser: Browser, server: RunningServer, phone: bool) -> Page:
    options = PHONE if phone else {"viewport": {"width": 1280, "height": 720}}
    context = await browser.new_context(base_url=server.http_url, **options)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"Uncaught {exc}"))
    page.errors = errors  # type: ignore[attr-defined]
    return page


async def open_tools_sheet(page: Page) -> None:
    """Phone: the facilitator tools are a sheet opened from the "More" menu."""
    if await page.is_visible("#facilitator-panel"):
        return
    await page.click("#open-more")
    await page.click('#more-menu .menu-item[data-panel="facilitator"]')
    await page.wait_for_selector("#facilitator-panel:not([hidden])")


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


async def test_breakouts_on_phones(server: RunningServer, browser: Browser) -> None:
    fran = await person(browser, server, phone=True)
    await join(fran, "Fran", link=f"/#room={SLUG}&secret={SECRET}", mic=False, camera=True)
    alice = await person(browser, server, phone=True)
    await join(alice, "Alice", SLUG, mic=True, camera=True)
    bob = await person(browser, server, phone=False)
    await join(bob, "Bob", SLUG, mic=False, camera=True)
    cy = RoomClient(server.ws_url, SLUG, "Cy", video_frames=encode_vp8_clip(frames=30, width=320, height=240),
                    audio_frames=encode_opus_clip(seconds=1.0), tag=4)
    await cy.join()
    ids = {name: await page.evaluate(PARTICIPANT_ID) for name, page in (("fran", fran), ("alice", alice), ("bob", bob))}
    ids["cy"] = cy.participant_id
    await alice.evaluate("() => { window.firstPc = window.peerwell.call.pc; }")

    # Prepared on the phone: two rooms, assigned by hand, ten minutes.
    await open_tools_sheet(fran)
    await fran.select_option("#breakout-mode", "manual")
    await fran.fill("#breakout-name-0", "Garden")
    await fran.fill("#breakout-name-1", "Lake")
    await fran.click("#breakout-prepare")
    await fran.wait_for_selector(f"#breakout-assign-{ids['alice']}")
    await fran.select_option(f"#breakout-assign-{ids['alice']}", "0")
    await fran.select_option(f"#breakout-assign-{ids['cy']}", "0")
    await fran.select_option(f"#breakout-assign-{ids['bob']}", "1")
    await poll(fran, "() => [...document.querySelectorAll('.breakout-rooms li')].map(li => li.textContent)", None,
               lambda rooms: len(rooms) == 2 and "(2 in it)" in rooms[0] and "(1 in it)" in rooms[1])
    await fran.select_option("#breakout-duration", "600")
    await shot(fran, "phone-facilitator-prepared")
    assert not await fran.evaluate(SMALL_TARGETS), "touch targets under 44 px in the breakout tools"
    await fran.click("#breakout-open")

    # Everyone in their room, on the connection they had: only that room's people, and the countdown.
    alice_in = await poll(alice, BANNER, None, lambda b: b and not b["hidden"] and "Garden" in b["status"], 20)
    assert "left" in alice_in["time"] and alice_in["time"].startswith(("10:00", "9:"))
    await poll(bob, BANNER, None, lambda b: b and "Lake" in b["status"] and "left" in b["time"], 20)
    await poll(alice, TILES, None, lambda tiles: ids["cy"] in tiles and ids["bob"] not in tiles
               and ids["fran"] not in tiles, 20)
    await poll(bob, TILES, None, lambda tiles: ids["alice"] not in tiles and ids["cy"] not in tiles, 20)
    assert await alice.evaluate("() => window.firstPc === window.peerwell.call.pc"), "moved without reconnecting"
    assert cy.breakout == 0
    await poll(fran, BANNER, None, lambda b: b and "main room" in b["status"])
    assert not await alice.evaluate(SMALL_TARGETS), "touch targets under 44 px in the breakout line"
    await shot(alice, "phone-member-in-breakout")

    # A message to every room, and five more minutes everywhere.
    await fran.fill("#breakout-broadcast-text", "Two more minutes each, then swap")
    await fran.click("#breakout-broadcast")
    for page in (alice, bob):
        await poll(page, BANNER, None, lambda b: "Two more minutes each" in b["message"])
    await fran.click("#breakout-extend")
    for page in (alice, bob):
        await poll(page, BANNER, None, lambda b: b["time"].startswith(("15:00", "14:")))
    await shot(alice, "phone-member-message-and-extended")

    # "I need help" from the breakout: the facilitator in the main room sees who and which room.
    await alice.click("#breakout-help")
    await fran.wait_for_selector('.safety-alert:has-text("(in Garden)")', timeout=10000)
    await shot(fran, "phone-facilitator-help-from-breakout")

    # A reload inside the breakout comes back to it, same id.
    await alice.reload()
    await alice.wait_for_selector("#room:not([hidden])", timeout=20000)
    await poll(alice, BANNER, None, lambda b: b and not b["hidden"] and "Garden" in b["status"], 20)
    assert await alice.evaluate(PARTICIPANT_ID) == ids["alice"]
    await poll(alice, TILES, None, lambda tiles: ids["cy"] in tiles and ids["bob"] not in tiles, 20)

    # Close all: a notice with a countdown everywhere, then everyone is back together with the same ids.
    await open_tools_sheet(fran)
    await fran.click("#breakout-close")
    await fran.click("#confirm-yes")
    closing = await poll(alice, BANNER, None, lambda b: "Back to the main room in" in b["time"])
    assert "closing" in closing["status"]
    await shot(alice, "phone-member-closing-notice")
    await poll(bob, BANNER, None, lambda b: "Back to the main room in" in b["time"])
    for page in (alice, bob, fran):
        await poll(page, BANNER, None, lambda b: b["hidden"], NOTICE + 20)
    for page, me in ((alice, "alice"), (bob, "bob"), (fran, "fran")):
        assert await page.evaluate(PARTICIPANT_ID) == ids[me]
        others = {v for k, v in ids.items() if k != me}
        await poll(page, TILES, None, lambda tiles, others=others: others <= set(tiles), 20)
    assert cy.breakout is None
    await shot(alice, "phone-member-back-in-main")
    assert not uncaught(fran, alice, bob)
    await cy.leave()
