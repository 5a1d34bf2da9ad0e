"""The group experience in real Chromium at 1280x800: a reload puts people back in their seat (the facilitator
keeps the role), alerts are noticed whatever the scroll position, captions stay readable at the largest size,
presence cues (self-mute, camera off, reactions) reach the others, and the Spanish group is Spanish end to end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page

from safety.detector import CrisisDetector
from sfu.app import create_app
from sfu.config import ServerConfig
from sfu.room.groups import Group, GroupsConfig, ServerSettings
from tests.conftest import RunningServer, start_server
from tests.support.browser import (
    AUDIO_BYTES,
    PARTICIPANT_ID,
    TILE_STATE,
    axe_violations,
    join,
    new_page,
    open_more,
    poll,
    uncaught,
)

pytestmark = pytest.mark.browser

SECRET = "facilitator-secret-for-experience-01"
LOBBY = "quiet-circle"
OPEN = "open-circle"
SPANISH = "circulo-duelo"
SIZE = (1280, 800)
CRISIS = "I don't want to be alive anymore"


def groups_config() -> GroupsConfig:
    common = {"agreement": "Be kind.\n- What is shared here stays here.", "facilitator_secret": SECRET}
    return GroupsConfig(server=ServerSettings(allow_adhoc_rooms=False), groups=(
        Group(slug=LOBBY, name="Quiet circle", language="en", lobby=True, **common),
        Group(slug=OPEN, name="Open circle", language="en", lobby=False, **common),
        Group(slug=SPANISH, name="Círculo de duelo", topic="Duelo", language="es", lobby=True,
              agreement="Con respeto.\n- Lo que se dice aquí se queda aquí.", facilitator_secret=SECRET),
    ))


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=20, groups=groups_config())
    runner, running = await start_server(config=config, app=create_app(config, detector=CrisisDetector.from_config()))
    yield running
    await runner.cleanup()


# Records every view that becomes visible, from the first moment of each page load (survives reloads as a
# sessionStorage list), so a test can prove the agreement, join form or lobby never appeared.
VIEW_RECORDER = """
(() => {
  const seen = window.__views = JSON.parse(sessionStorage.getItem('test.views') || '[]');
  const record = () => {
    for (const id of ['directory', 'agreement', 'details', 'lobby', 'room', 'goodbye']) {
      const view = document.getElementById(id);
      if (view && !view.hidden && seen[seen.length - 1] !== id) seen.push(id);
    }
    sessionStorage.setItem('test.views', JSON.stringify(seen));
  };
  document.addEventListener('DOMContentLoaded', () => {
    record();
    new MutationObserver(record).observe(document.getElementById('main'), {subtree: true, attributes: true,
                                                                            attributeFilter: ['hidden']});
  });
})();
"""
VIEWS_SEEN = "() => JSON.parse(sessionStorage.getItem('test.views') || '[]')"
# The page's own list too, or a late mutation before the reload would write the old list back.
CLEAR_VIEWS = "() => { window.__views.length = 0; sessionStorage.setItem('test.views', '[]'); }"

IN_VIEWPORT = """(selector) => {
  const e = document.querySelector(selector);
  if (!e) return null;
  const r = e.getBoundingClientRect();
  const visible = r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden';
  return {visible, top: r.top, bottom: r.bottom, left: r.left, right: r.right,
          inside: visible && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth};
}"""

EMIT = "(event) => window.peerwell.call.emit('event', event)"


async def person(browser: Browser, server: RunningServer, **kwargs) -> Page:  # type: ignore[no-untyped-def]
    page = await new_page(browser, server.http_url, viewport=SIZE, **kwargs)
    await page.add_init_script(VIEW_RECORDER)
    return page


async def admit(facilitator: Page, member: Page, name: str, label: str = "Admit") -> None:
    await facilitator.click(f'#lobby-list button[aria-label="{label} {name}"]', timeout=10000)
    await member.wait_for_selector("#room:not([hidden])", timeout=15000)


async def audio_growth(page: Page, participant_id: str, seconds: float = 1.0) -> int:
    before = await page.evaluate(AUDIO_BYTES, participant_id)
    await asyncio.sleep(seconds)
    return await page.evaluate(AUDIO_BYTES, participant_id) - before


async def test_reload_resumes_the_seat_and_the_facilitator_role(server: RunningServer, browser: Browser) -> None:
    fran = await person(browser, server)
    await join(fran, "Fran", link=f"/#room={LOBBY}&secret={SECRET}", mic=False)
    alice = await person(browser, server)
    await join(alice, "Alice", LOBBY, mic=True, camera=True, expect="lobby")
    await admit(fran, alice, "Alice")
    fran_id, alice_id = await fran.evaluate(PARTICIPANT_ID), await alice.evaluate(PARTICIPANT_ID)
    await poll(fran, AUDIO_BYTES, alice_id, lambda b: b > 0)

    # The facilitator reloads: same seat, still facilitator, the secret never in the address bar.
    await fran.evaluate(CLEAR_VIEWS)
    await fran.reload()
    await fran.wait_for_selector("#facilitator-panel", timeout=15000)
    assert await fran.evaluate(PARTICIPANT_ID) == fran_id
    assert SECRET not in await fran.evaluate("location.href")
    assert await fran.evaluate(VIEWS_SEEN) == ["room"]
    room = server.rooms.rooms[LOBBY]
    assert room.participants[fran_id].role == "facilitator"

    # ... and sees alerts raised after the reload.
    await alice.fill("#chat-input", CRISIS)
    await alice.press("#chat-input", "Enter")
    await fran.wait_for_selector(".safety-alert", timeout=5000)
    await fran.wait_for_selector(".toast-urgent", timeout=2000)

    sent_at = await alice.text_content(".chat-message.own .chat-time")
    await alice.click("#toggle-hand")
    await fran.wait_for_selector('#hand-queue li:has-text("Alice")')
    started = await alice.evaluate("() => window.peerwell.store.state.roomStartedAt")
    assert isinstance(started, (int, float))

    # A member reloads: same id, no agreement, no join form, no lobby, media back.
    await alice.evaluate(CLEAR_VIEWS)
    await alice.reload()
    await alice.wait_for_selector("#room:not([hidden])", timeout=15000)
    await poll(alice, PARTICIPANT_ID, None, lambda pid: pid is not None, 15)
    assert await alice.evaluate(PARTICIPANT_ID) == alice_id
    assert await alice.evaluate(VIEWS_SEEN) == ["room"]
    assert not room.lobby and alice_id in room.participants
    tiles_of = "(id) => document.querySelectorAll(`.tile[data-participant-id='${id}']`).length"
    await poll(fran, tiles_of, alice_id, lambda n: n == 1)
    first = await poll(fran, TILE_STATE, "Alice", lambda v: v is not None and v["width"] > 0 and v["time"] > 0, 30)
    await poll(fran, AUDIO_BYTES, alice_id, lambda b: b > 0, 30)
    assert await audio_growth(fran, alice_id, 1.5) > 0, "Alice's audio did not come back"
    await asyncio.sleep(1.0)
    assert (await fran.evaluate(TILE_STATE, "Alice"))["time"] > first["time"], "Alice's video did not come back"
    # Her own earlier message is still hers (same id) and keeps its time.
    own = alice.locator(".chat-message.own .chat-name")
    await own.first.wait_for()
    assert await own.first.text_content() == "Alice (you)"
    # The same clock time (the room's start is re-estimated within a second: at a minute's edge it may tick over).
    shown_at = await alice.text_content(".chat-message.own .chat-time")
    assert shown_at == sent_at or minutes_apart(shown_at, sent_at) == 1, (shown_at, sent_at)
    # Her raised hand kept its place in the queue, and her button says so.
    await alice.wait_for_selector('#toggle-hand[data-raised="1"]')
    assert [p.name for pid in room.hands for p in [room.participants[pid]]] == ["Alice"]
    # Chat times come from the room's clock (room-state), not from when the reloaded page received them.
    again = await alice.evaluate("() => window.peerwell.store.state.roomStartedAt")
    assert isinstance(again, (int, float)) and abs(again - started) < 1000

    # Only Leave gives the seat up at once.
    await alice.click("#leave")
    await alice.wait_for_selector("#goodbye:not([hidden])")
    await poll(fran, "() => null", None, lambda _: alice_id not in room.participants, 5)
    await alice.reload()
    await alice.wait_for_selector("#agreement:not([hidden])")  # starting over, from the group's agreement
    assert alice_id not in room.participants
    assert not uncaught(fran, alice)


async def test_alerts_are_noticed_by_every_facilitator_within_two_seconds(
        server: RunningServer, browser: Browser) -> None:
    fran = await person(browser, server, bypass_csp=True)
    await join(fran, "Fran", link=f"/#room={LOBBY}&secret={SECRET}", mic=False)
    cora = await person(browser, server)
    await join(cora, "Cora", link=f"/#room={LOBBY}&secret={SECRET}", mic=False)
    # A lobby arrival: a notice in view, for both.
    sam = await person(browser, server, bypass_csp=True)
    await join(sam, "Sam", LOBBY, mic=False, expect="lobby")
    for facilitator in (fran, cora):
        await facilitator.wait_for_selector('.toast-urgent:has-text("Sam is waiting to join")', timeout=5000)
    await admit(fran, sam, "Sam")
    # Fran scrolls her tools to the end; the alert must still be seen.
    await fran.evaluate("() => document.querySelector('#facilitator-panel .panel-body').scrollTop = 1e6")

    await sam.fill("#chat-input", CRISIS)
    sent = time.monotonic()
    await sam.press("#chat-input", "Enter")
    notices = [f.wait_for_selector('.toast-urgent:has-text("Private safety alert about Sam")', timeout=2000)
               for f in (fran, cora)]
    await asyncio.gather(*notices)
    elapsed = time.monotonic() - sent
    assert elapsed < 2.0, f"alert notice took {elapsed:.2f} s"
    for facilitator in (fran, cora):
        box = await facilitator.evaluate(IN_VIEWPORT, ".toast-urgent:last-child")
        assert box["inside"], box
        assert (await facilitator.title()).startswith("(")  # a count in the tab title
    assert await sam.locator(".toast-urgent, .safety-alert").count() == 0

    # "Show" brings the alert list into view; the alerts sit inside 1280x800 without page scrolling.
    await fran.click('.toast-urgent:has-text("Private safety alert") button:has-text("Show")')
    box = await fran.evaluate(IN_VIEWPORT, "#safety-alerts .safety-alert")
    assert box["inside"], box
    assert await fran.evaluate("() => document.scrollingElement.scrollHeight <= innerHeight + 1")
    # The alert says why (the words, a confidence); "Not a concern" takes it off every facilitator's list.
    why = await fran.text_content("#safety-alerts .safety-alert .alert-why")
    assert "Words:" in why and "confidence" in why, why
    await fran.click('#safety-alerts .safety-alert button:has-text("Not a concern")')
    for facilitator in (fran, cora):
        await facilitator.wait_for_selector("#safety-alerts .safety-alert", state="detached", timeout=5000)

    # "I need help": private to the facilitators, both notified.
    await open_more(sam)
    await sam.click("#help-details > summary")
    await sam.fill("#help-text", "Could we talk after?")
    await sam.click("#help-send")
    for facilitator in (fran, cora):
        await facilitator.wait_for_selector('.toast-urgent:has-text("Sam asks the facilitators for help")',
                                            timeout=2000)
        assert "Could we talk after?" in await facilitator.text_content("#safety-alerts")

    # Mute all: members muted, facilitators not.
    await fran.click("#mute-all")
    await fran.click("#confirm-yes")
    await sam.wait_for_selector("#self-moderation:not([hidden])")
    assert await sam.text_content("#toggle-mic") == "Muted by the facilitator" or await sam.is_disabled("#toggle-mic")
    room = server.rooms.rooms[LOBBY]
    assert [p.name for p in room.participants.values() if p.muted_by_facilitator] == ["Sam"]

    failures = {}
    for where, page in (("facilitator with notices", fran), ("member", sam)):
        violations = await axe_violations(page)
        if violations:
            failures[where] = violations
    assert not failures, failures
    assert not uncaught(fran, cora, sam)


def minutes_apart(a: str, b: str) -> int:
    """Minutes between two clock times as the page shows them (e.g. "06:03 AM")."""
    from datetime import datetime

    times = [datetime.strptime(t.strip(), "%I:%M %p") for t in (a, b)]
    return abs(round((times[0] - times[1]).total_seconds() / 60))


def caption(i: int) -> dict:
    return {"type": "caption", "segment_id": f"s{i}", "speaker_id": "", "speaker_name": "Ada",
            "text": f"Caption number {i}: a sentence long enough to wrap at the largest size.", "final": True,
            "start": float(i), "end": float(i) + 1.0, "language": "en"}


async def test_captions_stay_readable_at_the_largest_size(server: RunningServer, browser: Browser) -> None:
    reader = await person(browser, server)
    await reader.goto("/")
    await reader.click("#display-settings > summary")
    await reader.select_option("#caption-size", "xx-large")
    await reader.click("#display-settings > summary")
    await join(reader, "Reader", OPEN, mic=False)
    chat_before = await reader.evaluate(IN_VIEWPORT, "#chat-input")
    assert chat_before["inside"], chat_before
    for i in range(30):
        await reader.evaluate(EMIT, caption(i))
    newest = await poll(reader, IN_VIEWPORT, '#captions-live [data-segment-id="s29"]', lambda b: b and b["inside"], 5)
    log = await reader.evaluate(IN_VIEWPORT, "#captions-live")
    assert log["top"] <= newest["top"] and newest["bottom"] <= log["bottom"] + 1, (newest, log)
    chat_after = await reader.evaluate(IN_VIEWPORT, "#chat-input")
    assert chat_after["inside"] and abs(chat_after["top"] - chat_before["top"]) < 1, (chat_before, chat_after)
    assert await reader.evaluate("() => document.scrollingElement.scrollHeight <= innerHeight + 1")

    # Scrolled back to read: new captions do not pull the reader away; the button brings them back.
    await reader.evaluate("() => { const l = document.getElementById('captions-live'); l.scrollTop = 0; "
                          "l.dispatchEvent(new Event('scroll')); }")
    await reader.wait_for_selector("#captions-jump:not([hidden])")
    await reader.evaluate(EMIT, caption(30))
    await asyncio.sleep(0.2)
    assert await reader.evaluate("() => document.getElementById('captions-live').scrollTop") == 0
    await reader.click("#captions-jump")
    newest = await poll(reader, IN_VIEWPORT, '#captions-live [data-segment-id="s30"]', lambda b: b and b["inside"], 5)
    # Speech the server could not caption in time says so (docs/protocol.md `skipped`).
    await reader.evaluate(EMIT, {**caption(31), "text": "we were all going", "skipped": 3.4})
    marked = await reader.text_content('#captions-live [data-segment-id="s31"] .text')
    assert marked == "we were all going [captions skipped 3 s]", marked

    # Captions under the speaker's tile (display option) do not move the chat either. In the room the display
    # settings are in the bar's "More" menu.
    await open_more(reader)
    await reader.click("#display-settings > summary")
    await reader.check("#captions-under-tiles")
    assert await reader.evaluate("document.documentElement.classList.contains('captions-under-tiles')")
    assert (await reader.evaluate(IN_VIEWPORT, "#chat-input"))["inside"]
    assert not uncaught(reader)


async def test_presence_cues_reach_the_others(server: RunningServer, browser: Browser) -> None:
    alice = await person(browser, server)
    await join(alice, "Alice", OPEN, mic=True, camera=True)
    bob = await person(browser, server)
    await join(bob, "Bob", OPEN, mic=True, camera=True)
    await poll(bob, TILE_STATE, "Alice", lambda v: v is not None and v["width"] > 0)
    assert (await bob.evaluate(TILE_STATE, "Alice"))["badges"] == []

    await alice.click("#toggle-mic")
    assert await alice.text_content("#toggle-mic") == "Unmute microphone"
    await poll(bob, TILE_STATE, "Alice", lambda v: v["badges"] == ["Microphone off"], 5)
    await alice.click("#toggle-camera")
    await poll(bob, TILE_STATE, "Alice", lambda v: v["badges"] == ["Microphone off", "Camera off"], 5)
    tile = bob.locator('.tile:has(.name:text-is("Alice"))')
    assert "no-video" in (await tile.get_attribute("class"))
    assert await tile.locator(".initials").is_visible() and await tile.locator(".initials").text_content() == "A"
    await alice.click("#toggle-mic")
    await alice.click("#toggle-camera")
    await poll(bob, TILE_STATE, "Alice", lambda v: v["badges"] == [], 5)

    # Device switching in the room: the chosen camera replaces the sent track; Bob keeps seeing Alice.
    await open_more(alice)
    await alice.click("#devices-details > summary")
    cameras = await poll(alice, "() => [...document.querySelectorAll('#room-camera-device option')].map(o => o.value)",
                         None, lambda v: len(v) > 0, 5)
    before = await alice.evaluate("() => window.peerwell.call.senders.video.track.id")
    await alice.select_option("#room-camera-device", cameras[-1])
    await poll(alice, "() => window.peerwell.call.senders.video.track.id", None, lambda v: v != before, 5)
    playing = (await bob.evaluate(TILE_STATE, "Alice"))["time"]
    await poll(bob, TILE_STATE, "Alice", lambda v: v["time"] > playing + 0.5, 10)

    # A reaction shows briefly on the sender's tile at the others.
    await bob.click("#open-reactions")
    await bob.click('#reactions button[data-reaction="heart"]')
    bobs_tile = alice.locator('.tile:has(.name:text-is("Bob"))')
    await bobs_tile.locator('.reaction[data-reaction="heart"]').wait_for(state="visible", timeout=3000)
    await bobs_tile.locator(".reaction").wait_for(state="hidden", timeout=8000)

    # A gentle notice when someone leaves.
    await bob.click("#leave")
    await alice.wait_for_selector('.toast:has-text("Bob has left the group")', timeout=10000)
    assert not uncaught(alice, bob)


async def test_spanish_group_is_spanish_end_to_end(server: RunningServer, browser: Browser) -> None:
    fran = await person(browser, server, bypass_csp=True)
    await join(fran, "Fran", link=f"/#room={SPANISH}&secret={SECRET}", mic=False)
    assert await fran.text_content("#facilitator-title") == "Herramientas de facilitación"

    lucia = await person(browser, server, bypass_csp=True)
    await lucia.goto("/")
    await lucia.wait_for_selector(".group-card")
    assert await lucia.text_content("#directory-title") == "Support groups"  # the browser's language
    await lucia.click(f'.choose-group[data-slug="{SPANISH}"]')
    await lucia.wait_for_selector("#agreement:not([hidden])")
    assert await lucia.evaluate("document.documentElement.lang") == "es"
    assert await lucia.text_content("#agree-button") == "Acepto"
    assert (await lucia.text_content("#privacy-text")).startswith("Qué pasa con lo que compartes aquí")
    failures = {}
    for where in ("acuerdo",):
        if violations := await axe_violations(lucia):
            failures[where] = violations
    await lucia.click("#agree-button")
    await lucia.wait_for_selector("#details:not([hidden])")
    assert await lucia.text_content("#join-button") == "Entrar"
    await lucia.fill("#name-input", "Lucía")
    await lucia.set_checked("#join-camera", True)
    await lucia.click("#preview-start")
    await lucia.wait_for_selector("#preview:not([hidden])")
    await poll(lucia, "() => document.getElementById('mic-level').value", None, lambda v: v > 0, 10)
    await poll(lucia, "() => document.getElementById('preview-video').videoWidth", None, lambda v: v > 0, 10)
    if violations := await axe_violations(lucia):
        failures["datos y prueba de dispositivos"] = violations
    await lucia.click("#join-button")
    await lucia.wait_for_selector("#lobby:not([hidden])")
    assert await lucia.text_content("#lobby-leave") == "Salir de la sala de espera"
    if violations := await axe_violations(lucia):
        failures["sala de espera"] = violations
    await fran.wait_for_selector('.toast-urgent:has-text("Lucía está esperando para entrar")', timeout=5000)
    await admit(fran, lucia, "Lucía", label="Dejar pasar a")
    assert await lucia.text_content("#toggle-mic") == "Silenciar micrófono"
    assert await lucia.text_content("#leave") == "Salir"
    assert await lucia.text_content("#chat-counter") == "Quedan 500 caracteres"
    assert await lucia.text_content("#captions-status") == (
        "Los subtítulos en directo no están disponibles ahora mismo en este servidor.")
    await lucia.click("#toggle-mic")
    await poll(fran, TILE_STATE, "Lucía", lambda v: v is not None and v["badges"] == ["Micrófono apagado"], 5)
    # No translations installed here: the subtitle menu says why instead of a bare "no subtitles".
    await lucia.click(".caption-options > summary")
    assert "traducciones" in (await lucia.text_content("#subtitle-why"))
    if violations := await axe_violations(lucia):
        failures["sala"] = violations
    if violations := await axe_violations(fran):
        failures["sala (facilitación)"] = violations
    await lucia.click("#leave")
    await lucia.wait_for_selector("#goodbye:not([hidden])")
    assert await lucia.text_content("#goodbye-title") == "Has salido de la sesión"
    assert not failures, failures
    assert not uncaught(fran, lucia)


async def test_interface_language_follows_the_browser_unless_chosen(server: RunningServer, browser: Browser) -> None:
    page = await new_page(browser, server.http_url, viewport=SIZE, locale="es-ES")
    await page.goto("/")
    await page.wait_for_selector(".group-card")
    assert await page.text_content("#directory-title") == "Grupos de apoyo"
    assert await page.evaluate("document.documentElement.lang") == "es"
    # The person's own choice wins over the browser and the group, and is remembered.
    await page.click("#display-settings > summary")
    await page.select_option("#ui-language", "en")
    await page.wait_for_function("document.getElementById('directory-title').textContent === 'Support groups'")
    await page.click(f'.choose-group[data-slug="{SPANISH}"]')
    await page.wait_for_selector("#agreement:not([hidden])")
    assert await page.text_content("#agree-button") == "I agree"
    await page.reload()
    await page.wait_for_selector("#agreement:not([hidden])")
    assert await page.text_content("#agree-button") == "I agree"
    assert not uncaught(page)
