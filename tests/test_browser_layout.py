"""The room on every screen (issue 23): for 2, 6 and 12 people, on phones (portrait, landscape, small; Chromium
mobile emulation) and desktops, the microphone and leave controls, the newest caption line and the speaking
person's video are on the first screen, nothing scrolls, the speaker's picture is large, axe-core finds
nothing serious, and phone touch targets are at least 44x44 CSS px. Every layout is saved as a screenshot
under tests/artifacts/layout/ for a person to look at.

One Chromium for the module; one room per group size, with headless aiortc members (sfu/contrib/client.py)
in the other seats: one of them talks (a tone with an audio level, so the server names it the dominant
speaker) and shows video, two more show video, the rest have no media. The browser person joins through the
UI once per screen size, in a fresh context, and leaves again. Captions are injected as caption events (the
layout does not need a speech model; tests/test_browser_captions.py covers real captions).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

from sfu.config import ServerConfig
from sfu.contrib.client import RoomClient, encode_opus_clip, encode_vp8_clip
from tests.conftest import RunningServer, start_server
from tests.support.browser import (
    CHROMIUM,
    axe_violations,
    chromium_args,
    join,
    poll,
    require_axe,
    require_loopback_only_namespace,
    uncaught,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "layout"

# name, viewport, phone (mobile emulation), least share of the screen the speaker's picture must cover
SIZES = [
    ("phone-portrait", (390, 844), True, 0.20),
    ("phone-landscape", (844, 390), True, 0.20),
    ("small-phone", (360, 640), True, 0.15),
    ("laptop", (1280, 720), False, 0.08),
    ("desktop", (1920, 1080), False, 0.08),
    # A 1280x720 laptop at browser zoom 200%: half the CSS pixels each way (the compact layout).
    ("laptop-zoom-200", (640, 360), False, 0.08),
]

EMIT = "(event) => window.peerwell.call.emit('event', event)"

# Geometry from the DOM: where the controls, the newest caption and the speaker's picture are, whether the
# page scrolls, and the painted picture's share of the screen (object-fit: contain letterboxes it).
MEASURE = """(speakerId) => {
  const box = (e) => {
    if (!e) return null;
    const r = e.getBoundingClientRect();
    const style = getComputedStyle(e);
    const visible = r.width > 0 && r.height > 0 && style.visibility !== 'hidden' && style.display !== 'none';
    return {top: Math.round(r.top), left: Math.round(r.left), bottom: Math.round(r.bottom),
            right: Math.round(r.right), width: Math.round(r.width), height: Math.round(r.height), visible,
            inside: visible && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight + 0.5
                    && r.right <= innerWidth + 0.5};
  };
  const lines = document.querySelectorAll('#captions-live .caption');
  const video = document.querySelector(`.tile[data-participant-id="${speakerId}"] video`);
  let picture = 0;
  if (video) {
    const r = video.getBoundingClientRect();
    let w = r.width, h = r.height;
    if (getComputedStyle(video).objectFit === 'contain' && video.videoWidth && video.videoHeight) {
      const scale = Math.min(r.width / video.videoWidth, r.height / video.videoHeight);
      w = video.videoWidth * scale; h = video.videoHeight * scale;
    }
    const cx = (r.left + r.right) / 2, cy = (r.top + r.bottom) / 2;
    const left = Math.max(0, cx - w / 2), right = Math.min(innerWidth, cx + w / 2);
    const top = Math.max(0, cy - h / 2), bottom = Math.min(innerHeight, cy + h / 2);
    picture = Math.max(0, right - left) * Math.max(0, bottom - top) / (innerWidth * innerHeight);
  }
  const scroller = document.scrollingElement;
  return {
    viewport: [innerWidth, innerHeight],
    scrolls: scroller.scrollHeight > innerHeight + 1 || scroller.scrollWidth > innerWidth + 1,
    mic: box(document.getElementById('toggle-mic')), leave: box(document.getElementById('leave')),
    caption: box(lines[lines.length - 1]), speaker: box(video), picture,
    playing: Boolean(video && video.videoWidth > 0 && !video.closest('.tile').classList.contains('no-video')),
    onStage: Boolean(video && video.closest('.tile-box.on-stage')),
  };
}"""

# Visible buttons and other controls smaller than 44x44 CSS px (phones).
SMALL_TARGETS = """() => [...document.querySelectorAll('#room button, #room summary, #room select, #room a')]
  .filter(e => { const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
                 return r.width > 0 && r.height > 0 && s.visibility !== 'hidden'
                   && r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth; })
  .map(e => { const r = e.getBoundingClientRect();
              return {id: e.id || e.className || e.textContent.trim().slice(0, 20),
                      w: Math.round(r.width), h: Math.round(r.height)}; })
  .filter(b => b.w < 44 || b.h < 44)"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[RunningServer]:
    runner, running = await start_server(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0))
    yield running
    await runner.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium() -> AsyncIterator[Browser]:
    """One Chromium for every layout of this module (a fresh context per layout)."""
    require_loopback_only_namespace()
    require_axe()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args(None))
        yield browser
        await browser.close()


@pytest.fixture(scope="module")
def media() -> tuple[list[bytes], list[bytes]]:
    return encode_vp8_clip(frames=60, width=640, height=480), encode_opus_clip(seconds=2.0)


async def seat_members(server: RunningServer, room: str, count: int,
                       media: tuple[list[bytes], list[bytes]]) -> list[RoomClient]:
    video, audio = media
    members = []
    for i in range(count):
        speaker = i == 0
        member = RoomClient(server.ws_url, room, "Ada Speaker" if speaker else f"Member {i + 1}",
                            video_frames=video if i < 3 else None, audio_frames=audio if speaker else None,
                            tag=i + 1)
        await member.join()
        members.append(member)
    return members


async def open_layout(browser: Browser, server: RunningServer, size: tuple[int, int], phone: bool) -> Page:
    options = {"viewport": {"width": size[0], "height": size[1]}}
    if phone:
        options.update(is_mobile=True, has_touch=True, device_scale_factor=2)
    context = await browser.new_context(base_url=server.http_url, bypass_csp=True, **options)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"Uncaught {exc}"))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def caption(i: int, speaker_id: str) -> dict:
    return {"type": "caption", "segment_id": f"layout-{i}", "speaker_id": speaker_id, "speaker_name": "Ada Speaker",
            "text": f"Line {i}: it has been a hard week, and I am glad to be here with all of you tonight.",
            "final": True, "start": float(i * 3), "end": float(i * 3 + 2.5), "language": "en"}


@pytest.mark.parametrize("people", [2, 6, 12])
async def test_the_room_fits_every_screen(people: int, server: RunningServer, chromium: Browser,
                                          media: tuple[list[bytes], list[bytes]]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    room = f"layout-{people}"
    members = await seat_members(server, room, people - 1, media)
    speaker_id = members[0].participant_id
    failures: list[str] = []
    try:
        for name, size, phone, least in SIZES:
            page = await open_layout(chromium, server, size, phone)
            try:
                await join(page, "Robin", room=room, mic=True, camera=True)
                await page.click("#toggle-mic")  # quiet, so the member who talks stays the dominant speaker
                await poll(page, MEASURE, speaker_id, lambda m: m["playing"] and m["onStage"], 30)
                for i in range(6):
                    await page.evaluate(EMIT, caption(i, speaker_id))
                await asyncio.sleep(0.6)  # layout settles (resize observers, scroll to the newest line)
                m = await page.evaluate(MEASURE, speaker_id)
                await page.screenshot(path=str(ARTIFACTS / f"{people}-people-{name}-{size[0]}x{size[1]}.png"))
                print(f"{people} people {name} {size}: speaker picture {m['picture']:.0%} of the screen; "
                      f"mic {m['mic']['top']},{m['mic']['left']}; leave {m['leave']['top']},{m['leave']['left']}; "
                      f"newest caption {m['caption']['top'] if m['caption'] else None}-"
                      f"{m['caption']['bottom'] if m['caption'] else None}; scrolls {m['scrolls']}")
                label = f"{people} people, {name} {size[0]}x{size[1]}"
                for part in ("mic", "leave", "caption", "speaker"):
                    if not (m[part] and m[part]["inside"]):
                        failures.append(f"{label}: {part} not in the viewport: {m[part]}")
                if m["scrolls"]:
                    failures.append(f"{label}: the page scrolls")
                if m["picture"] < least:
                    failures.append(f"{label}: the speaker's picture covers {m['picture']:.1%} < {least:.0%}")
                if phone:
                    small = await page.evaluate(SMALL_TARGETS)
                    if small:
                        failures.append(f"{label}: touch targets under 44x44: {small}")
                violations = await axe_violations(page)
                if violations:
                    failures.append(f"{label}: axe: {violations}")
                if uncaught(page):
                    failures.append(f"{label}: {uncaught(page)}")
                await page.click("#leave")
                await page.wait_for_selector("#goodbye:not([hidden])")
            finally:
                await page.context.close()
    finally:
        await asyncio.gather(*(member.close() for member in members))
    assert not failures, "\n".join(failures)
