"""Accessibility of the web client in real Chromium: axe-core finds no serious or critical violations on
any page (directory, agreement, join details, lobby, room, facilitator tools, goodbye), and joining works
with the keyboard alone.

axe-core comes from package.json (`npm ci`); without it these tests fail and say so, never skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page

from safety.detector import CrisisDetector
from sfu.app import create_app
from sfu.config import ServerConfig
from sfu.room.groups import Group, GroupsConfig, ServerSettings
from tests.conftest import RunningServer, start_server
from tests.support.browser import (
    axe_violations,
    join,
    new_page,
    require_axe,
)

pytestmark = pytest.mark.browser

SECRET = "facilitator-secret-for-a11y-0123"


def groups_config() -> GroupsConfig:
    return GroupsConfig(
        server=ServerSettings(allow_adhoc_rooms=True),
        groups=(
            Group(
                slug="lobby-circle",
                name="Lobby circle",
                agreement="Be kind.\n- Stays here.\n- You can pass.",
                topic="Anxiety",
                description="With a waiting room.",
                schedule="Mondays 18:00",
                language="en",
                lobby=True,
                facilitator_secret=SECRET,
            ),
            Group(
                slug="open-circle",
                name="Círculo abierto",
                agreement="Con respeto.\n- Lo que se dice aquí se queda aquí.",
                topic="Duelo",
                description="Sin sala de espera.",
                language="es",
                lobby=False,
                facilitator_secret=SECRET,
            ),
        ),
    )


@pytest.fixture
async def a11y_server() -> AsyncIterator[RunningServer]:
    require_axe()  # fail early and clearly: run `npm ci`
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0, groups=groups_config())
    runner, running = await start_server(config=config, app=create_app(config, detector=CrisisDetector.from_config()))
    yield running
    await runner.cleanup()



async def check(page: Page, where: str, failures: dict[str, list]) -> None:
    violations = await axe_violations(page)
    if violations:
        failures[where] = violations


def report(failures: dict[str, list]) -> str:
    lines = []
    for where, violations in failures.items():
        for v in violations:
            lines.append(f"{where}: [{v['impact']}] {v['id']}: {v['help']}")
            lines.extend(f"    {node}" for node in v["nodes"])
    return "\n".join(lines)


async def test_axe_finds_no_serious_violations_on_any_page(a11y_server: RunningServer, browser: Browser) -> None:
    server = a11y_server
    failures: dict[str, list] = {}

    page = await new_page(browser, server.http_url, bypass_csp=True)
    await page.goto("/")
    await page.wait_for_selector(".group-card")
    await check(page, "directory", failures)
    await page.click("#display-settings > summary")
    await page.check("#high-contrast")  # the high-contrast theme must hold up too
    await check(page, "directory (high contrast)", failures)
    await page.uncheck("#high-contrast")
    await page.click("#display-settings > summary")

    await page.click('.choose-group[data-slug="lobby-circle"]')
    await page.wait_for_selector("#agreement:not([hidden])")
    await check(page, "agreement", failures)
    await page.click("#agree-button")
    await page.click("#facilitator-details > summary")
    await check(page, "join details", failures)
    await page.fill("#name-input", "Lee")
    await page.click("#join-button")  # empty secret: a participant, so the lobby
    await page.wait_for_selector("#lobby:not([hidden])")
    await check(page, "lobby", failures)

    # The facilitator's room: someone waiting, someone in the room with a raised hand and a chat
    # message, a private safety alert, and the confirmation dialog.
    fran = await new_page(browser, server.http_url, bypass_csp=True)
    await join(fran, "Fran", link=f"/#room=lobby-circle&secret={SECRET}", mic=False)
    await fran.wait_for_selector('#lobby-list button[aria-label="Admit Lee"]')
    sam = await new_page(browser, server.http_url, bypass_csp=True)
    await join(sam, "Sam", "lobby-circle", mic=False, expect="lobby")
    await fran.click('button[aria-label="Admit Sam"]')
    await sam.wait_for_selector("#room:not([hidden])")
    await sam.fill("#chat-input", "I want to die")
    await sam.press("#chat-input", "Enter")
    await sam.click("#toggle-hand")
    await fran.wait_for_selector(".safety-alert")
    await fran.wait_for_selector("#hand-queue li")
    await check(fran, "room (facilitator)", failures)
    await fran.click('button[aria-label="Remove: Sam"]')
    await fran.wait_for_selector("#confirm-dialog[open]")
    await check(fran, "confirm dialog", failures)
    await fran.keyboard.press("Escape")

    await sam.click(".caption-options > summary")
    await check(sam, "room (participant)", failures)

    await page.click("#lobby-leave")
    await page.wait_for_selector("#goodbye:not([hidden])")
    await check(page, "goodbye", failures)

    assert not failures, "axe-core found serious/critical violations:\n" + report(failures)


FOCUS = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const style = getComputedStyle(e);
  return {id: e.id, tag: e.tagName, slug: e.dataset.slug || null, text: e.textContent.trim().slice(0, 40),
          visible: e.matches(':focus-visible') && style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0};
}"""


async def tab_to(page: Page, matches, limit: int = 40) -> dict:  # type: ignore[no-untyped-def]
    """Press Tab until the focused element matches; every stop on the way must show a visible focus ring."""
    seen = []
    for _ in range(limit):
        await page.keyboard.press("Tab")
        focus = await page.evaluate(FOCUS)
        if focus is None:
            continue
        seen.append(focus["id"] or focus["text"])
        assert focus["visible"], f"no visible focus indicator on {focus}"
        if matches(focus):
            return focus
    raise AssertionError(f"Tab never reached the control; focus went through {seen}")


async def test_joining_with_the_keyboard_only(a11y_server: RunningServer, browser: Browser) -> None:
    page = await new_page(browser, a11y_server.http_url)
    await page.goto("/")
    await page.wait_for_selector(".group-card")

    await tab_to(page, lambda f: f["slug"] == "open-circle")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#agreement:not([hidden])")
    assert (await page.evaluate(FOCUS))["id"] == "agreement-title"  # focus moved to the new page's heading

    await tab_to(page, lambda f: f["id"] == "agree-button")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#details:not([hidden])")

    await tab_to(page, lambda f: f["id"] == "name-input")
    await page.keyboard.type("Kim")
    await tab_to(page, lambda f: f["id"] == "join-mic")
    await page.keyboard.press("Space")  # microphone off: text only
    assert not await page.is_checked("#join-mic")
    await tab_to(page, lambda f: f["id"] == "join-button")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#room:not([hidden])")
    assert (await page.evaluate(FOCUS))["id"] == "room-title"

    # In the room: the chat is reachable and Enter sends; the hand can be raised with Enter.
    await tab_to(page, lambda f: f["id"] == "toggle-hand")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#hand-queue li")
    await tab_to(page, lambda f: f["id"] == "chat-input", limit=60)
    await page.keyboard.type("hello from the keyboard")
    await page.keyboard.press("Enter")
    await page.wait_for_selector('.chat-text:text-is("hello from the keyboard")')
    await tab_to(page, lambda f: f["id"] == "leave", limit=60)
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#goodbye:not([hidden])")


async def test_display_settings_are_remembered(a11y_server: RunningServer, browser: Browser) -> None:
    page = await new_page(browser, a11y_server.http_url)
    await page.goto("/")
    await page.click("#display-settings > summary")
    await page.select_option("#caption-size", "x-large")
    await page.check("#high-contrast")
    await page.reload()
    assert await page.evaluate("document.documentElement.classList.contains('high-contrast')")
    assert await page.evaluate("document.documentElement.dataset.captionSize") == "x-large"
    size = await page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--caption-size').trim()")
    assert size == "1.8rem"
    await page.click("#display-settings > summary")
    assert await page.input_value("#caption-size") == "x-large" and await page.is_checked("#high-contrast")
