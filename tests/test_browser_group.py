"""A support group in real Chromium: lobby, facilitator moderation, chat, hands, safety alerts, and
user text that must stay text (XSS). Runs against a real server with a groups config that has a lobby
group and a known facilitator secret."""

from __future__ import annotations

import asyncio
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
    join,
    new_page,
    open_panel,
    poll,
    uncaught,
)

pytestmark = pytest.mark.browser

SLUG = "quiet-circle"
SECRET = "facilitator-secret-for-tests-0123"
AGREEMENT = "Be kind.\n- What is shared here stays here.\n- You can always pass."
FACILITATOR_LINK = f"/#room={SLUG}&secret={SECRET}"


def groups_config() -> GroupsConfig:
    group = Group(
        slug=SLUG,
        name="Quiet circle",
        agreement=AGREEMENT,
        topic="Anxiety",
        description="A test group.",
        schedule="Mondays 18:00",
        language="en",
        lobby=True,
        max_participants=8,
        facilitator_secret=SECRET,
    )
    return GroupsConfig(server=ServerSettings(allow_adhoc_rooms=False), groups=(group,))


@pytest.fixture
async def group_server() -> AsyncIterator[RunningServer]:
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0, groups=groups_config())
    runner, running = await start_server(config=config, app=create_app(config, detector=CrisisDetector.from_config()))
    yield running
    await runner.cleanup()



async def person(browser: Browser, server: RunningServer, *, bypass_csp: bool = False) -> Page:
    return await new_page(browser, server.http_url, bypass_csp=bypass_csp)


async def wait_lobby_entry(facilitator: Page, name: str) -> None:
    await facilitator.wait_for_selector(f'#lobby-list button[aria-label="Admit {name}"]', timeout=10000)


async def audio_growth(page: Page, participant_id: str, seconds: float = 1.0) -> int:
    before = await page.evaluate(AUDIO_BYTES, participant_id)
    await asyncio.sleep(seconds)
    return await page.evaluate(AUDIO_BYTES, participant_id) - before


async def test_facilitator_admits_denies_mutes_removes_and_locks(group_server: RunningServer, browser: Browser) -> None:
    server = group_server
    fran = await person(browser, server)
    await join(fran, "Fran", link=FACILITATOR_LINK, mic=False)
    assert await fran.locator("#facilitator-panel").is_visible()
    # The secret was read from the fragment and taken out of the address bar at once.
    assert SECRET not in await fran.evaluate("location.href")

    alice, bob, carol = [await person(browser, server) for _ in range(3)]
    await asyncio.gather(
        join(alice, "Alice", SLUG, expect="lobby"),
        join(bob, "Bob", SLUG, expect="lobby"),
        join(carol, "Carol", SLUG, expect="lobby"),
    )
    assert "facilitator" in (await alice.text_content("#lobby-message")).lower()
    for page in (alice, bob, carol):
        assert await page.locator("#facilitator-panel").count() == 0

    # Admit Alice and Carol, deny Bob.
    for name in ("Alice", "Bob", "Carol"):
        await wait_lobby_entry(fran, name)
    await fran.click('button[aria-label="Admit Alice"]')
    await alice.wait_for_selector("#room:not([hidden])")
    await fran.click('button[aria-label="Deny Bob"]')
    await bob.wait_for_selector("#goodbye:not([hidden])")
    assert "wasn't able to let you in" in await bob.text_content("#goodbye-message")
    # Admit Carol once Alice's media flows. (Admitting while Alice's offer is still being answered hits a
    # server race: Room.publication_started subscribes Carol before her own offer, and aiortc binds those
    # transceivers to Carol's offered mids 0/1.)
    alice_id = await alice.evaluate(PARTICIPANT_ID)
    await poll(fran, AUDIO_BYTES, alice_id, lambda b: b > 0)
    await fran.click('button[aria-label="Admit Carol"]')
    await carol.wait_for_selector("#room:not([hidden])")
    await fran.wait_for_selector("#lobby-empty:not([hidden])")

    # Alice's audio reaches Carol and Fran ...
    for listener in (carol, fran):
        await poll(listener, AUDIO_BYTES, alice_id, lambda b: b > 0)
        assert await audio_growth(listener, alice_id) > 0

    # ... until the facilitator mutes her: the server stops forwarding it to everyone.
    await fran.click('button[aria-label="Mute: Alice"]')
    await poll(carol, TILE_STATE, "Alice", lambda s: s is not None and "Muted by facilitator" in s["badges"])
    await alice.wait_for_selector("#request-unmute:not([hidden])")
    await asyncio.sleep(0.5)  # packets already in flight
    for listener in (carol, fran):
        assert await audio_growth(listener, alice_id, 1.5) == 0, "muted audio is still arriving"

    # Alice asks to be unmuted; the facilitator sees the request and unmutes her.
    await alice.click("#request-unmute")
    await fran.click('#unmute-requests button[aria-label="Unmute Alice"]')
    await poll(carol, TILE_STATE, "Alice", lambda s: s is not None and "Muted by facilitator" not in s["badges"])
    await alice.wait_for_selector("#self-moderation", state="hidden")
    await poll(carol, AUDIO_BYTES, alice_id, lambda b: b > 0)
    assert await audio_growth(carol, alice_id, 1.5) > 0, "audio did not resume after unmute"

    # Dave opens the page now: everyone here shares 127.0.0.1, and a browser that arrives at a removed
    # person's address after the removal is refused as "removed" (docs/protocol.md).
    dave = await person(browser, server)
    await dave.goto("/")  # GET / sets the pw_key cookie
    await asyncio.sleep(1.1)  # the cookie's issue time has one-second resolution

    # Remove Carol (with confirmation): she is told kindly and cannot come back from this browser.
    await fran.click('button[aria-label="Remove: Carol"]')
    await fran.click("#confirm-yes")
    await carol.wait_for_selector("#goodbye:not([hidden])")
    assert "removed" in (await carol.text_content("#goodbye-title")).lower()
    await poll(alice, "() => document.querySelectorAll('.tile').length", None, lambda n: n == 2)
    await carol.click("#goodbye-back")
    await join(carol, "Carol again", SLUG, expect="error")
    assert "removed you from this session" in await carol.text_content("#join-error")

    # Lock the room: everyone sees it, and a newcomer is refused.
    await fran.click("#lock-room")
    await alice.wait_for_selector("#lock-status:not([hidden])")
    await fran.wait_for_selector('#lock-room[aria-pressed="true"]')
    await join(dave, "Dave", SLUG, expect="error")
    assert "locked" in await dave.text_content("#join-error")

    # End the session (confirmed): everyone gets the kind goodbye.
    await fran.click("#end-session")
    await fran.click("#confirm-yes")
    for page in (alice, fran):
        await page.wait_for_selector("#goodbye:not([hidden])")
    assert "ended the session" in await alice.text_content("#goodbye-message")
    assert not uncaught(fran, alice, bob, carol, dave)


XSS_NAME = "<img src=x onerror=window.__xss=1>"
XSS_CHAT = "<script>window.__xss=2</script> and <img src=x onerror=window.__xss=1>"
CRISIS_CHAT = "<img src=x onerror=window.__xss=3> I don't want to be alive anymore"

# Hand an event to the client as if it came over the data channel.
EMIT = "(event) => window.peerwell.call.emit('event', event)"

NO_INJECTION = """() => ({
  xss: typeof window.__xss,
  images: document.querySelectorAll('img').length,
  scripts: [...document.scripts].map(s => s.src),
})"""


async def test_user_text_stays_text_and_safety_alerts_stay_private(
    group_server: RunningServer, browser: Browser
) -> None:
    server = group_server
    # No CSP safety net here: the client alone must keep user text as text.
    fran = await person(browser, server, bypass_csp=True)
    await join(fran, "Fran", link=FACILITATOR_LINK, mic=False)
    mallory, vic = await person(browser, server, bypass_csp=True), await person(browser, server, bypass_csp=True)
    # Mallory joins text-only (no microphone, no camera); Vic with a microphone.
    await asyncio.gather(
        join(mallory, XSS_NAME, SLUG, mic=False, expect="lobby"), join(vic, "Vic", SLUG, expect="lobby")
    )
    await wait_lobby_entry(fran, XSS_NAME)
    assert XSS_NAME in await fran.text_content("#lobby-list")
    await fran.click(f'button[aria-label="Admit {XSS_NAME}"]')
    await wait_lobby_entry(fran, "Vic")
    await fran.click('button[aria-label="Admit Vic"]')
    for page in (mallory, vic):
        await page.wait_for_selector("#room:not([hidden])")

    # Chat: the counter counts, the message arrives as literal text, the hand queue shows the name. (The
    # facilitator's side panel shows her tools until she opens the chat.)
    await open_panel(fran, "#toggle-chat", "#chat-panel")
    await mallory.fill("#chat-input", XSS_CHAT)
    assert await mallory.text_content("#chat-counter") == f"{500 - len(XSS_CHAT)} characters left"
    await mallory.click("#chat-send")
    await mallory.click("#toggle-hand")
    for page in (vic, fran):
        item = page.locator(".chat-message").first
        await item.wait_for()
        assert await item.locator(".chat-text").text_content() == XSS_CHAT
        assert await item.locator(".chat-name").text_content() == XSS_NAME
        await page.wait_for_selector("#hand-queue li")
        assert await page.text_content("#hand-queue li .person-name") == XSS_NAME
        # Mallory joined text-only: everyone sees that, besides the raised hand.
        await poll(page, TILE_STATE, XSS_NAME,
                   lambda s: s is not None and s["badges"] == ["Hand raised", "Microphone off", "Camera off"])
    assert await mallory.text_content("#toggle-hand") == "Lower hand"

    # Only the facilitator can delete; everyone sees it go.
    assert await vic.locator(".chat-delete").count() == 0
    await fran.click(f'.chat-delete[aria-label="Delete message from {XSS_NAME}"]')
    for page in (vic, mallory):
        await page.wait_for_selector(".chat-message.removed")
        assert XSS_CHAT not in await page.text_content("#chat-list")

    # Crisis language in the chat: a private alert for the facilitator only, rendered as text.
    await mallory.fill("#chat-input", CRISIS_CHAT)
    await mallory.press("#chat-input", "Enter")
    await open_panel(fran, "#toggle-tools", "#facilitator-panel")
    alert = fran.locator(".safety-alert").first
    await alert.wait_for()
    assert await alert.locator(".alert-text").text_content() == CRISIS_CHAT
    assert "findahelpline" in await alert.locator(".alert-resources").text_content()
    await vic.wait_for_selector(f'.chat-text:text-is("{CRISIS_CHAT}")')
    assert await vic.locator(".safety-alert, #facilitator-panel").count() == 0
    await alert.locator("button", has_text="Dismiss").click()
    await fran.wait_for_selector("#safety-empty:not([hidden])")

    # The chat rate limit (5 per 10 s) is reported in place, and the text is kept for a retry.
    for i in range(5):
        await mallory.fill("#chat-input", f"message {i}")
        await mallory.click("#chat-send")
    await mallory.wait_for_selector("#chat-error:not([hidden])")
    assert "quickly" in await mallory.text_content("#chat-error")
    assert (await mallory.input_value("#chat-input")).startswith("message")

    # Caption preferences reach the server; subtitle choices come from the server's list; caption and
    # subtitle-status text (normally from the server) is shown as text.
    vic_id = await vic.evaluate(PARTICIPANT_ID)
    await vic.evaluate(EMIT, {"type": "subtitle-languages", "languages": ["es", "fr"]})
    await vic.evaluate(
        EMIT,
        {
            "type": "caption",
            "segment_id": "s1",
            "speaker_id": "",
            "speaker_name": XSS_NAME,
            "text": XSS_CHAT,
            "final": True,
            "start": 1.0,
            "end": 2.0,
            "language": "en",
        },
    )
    assert await vic.text_content("#captions-live .caption .text") == XSS_CHAT
    await vic.click(".caption-options > summary")
    assert await vic.eval_on_selector_all("#subtitle-language option", "os => os.map(o => o.value)") == ["", "es", "fr"]
    await vic.select_option("#subtitle-language", "es")
    await vic.check("#hide-name")
    vic_side = server.rooms.rooms[SLUG].participants[vic_id]
    await poll(vic, "() => null", None, lambda _: vic_side.caption_name_hidden)  # subtitles: test_room_subtitles
    await vic.evaluate(EMIT, {"type": "subtitle-status", "language": "es", "available": False, "message": XSS_NAME})
    assert await vic.text_content("#subtitle-status") == XSS_NAME

    for page in (fran, vic, mallory):
        state = await page.evaluate(NO_INJECTION)
        assert state["xss"] == "undefined" and state["images"] == 0, state
        assert len(state["scripts"]) == 1 and state["scripts"][0].endswith("/static/app.js"), state
    assert not uncaught(fran, vic, mallory)
