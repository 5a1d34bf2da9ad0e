"""Real headless Chromium for end-to-end tests, kept on loopback inside a private network namespace.

`make test` runs pytest under `unshare -n` with only `lo` up, so the browser and the server can reach
nothing but 127.0.0.1. Outside such a namespace Chromium would also pair ICE candidates from the
machine's real interfaces, which these tests must never touch, so the fixture refuses to start there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from playwright.async_api import Browser, Page, Playwright

CHROMIUM = os.environ.get("PEERWELL_CHROMIUM", "/usr/bin/chromium")


def network_interfaces() -> list[str]:
    # /proc/self/net/dev follows the current network namespace (sysfs may still show the host's).
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":", 1)[0].strip() for line in lines)


def require_loopback_only_namespace() -> None:
    interfaces = network_interfaces()
    if interfaces != ["lo"]:
        raise RuntimeError(
            "browser tests run only inside a private network namespace with just loopback "
            f"(found interfaces {interfaces}); run them through `make test`, which uses `unshare -n`"
        )
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        raise RuntimeError(f"Chromium not found at {CHROMIUM}; `.ci/run` installs Debian's chromium package")


def chromium_args(fake_audio: Path | None) -> list[str]:
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        "--allow-loopback-in-peer-connection",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-quic",
    ]
    if fake_audio is not None:
        args.append(f"--use-file-for-fake-audio-capture={fake_audio}")
    return args


def write_tone_wav(path: Path, seconds: float = 3.0, frequency: float = 440.0) -> Path:
    rate = 48000
    t = np.arange(int(rate * seconds)) / rate
    samples = (np.sin(2 * np.pi * frequency * t) * 8000).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


# --- driving the web client -------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
AXE_PATH = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"


def require_axe() -> Path:
    """axe-core is a dev dependency from package.json; never skip silently when it is missing."""
    if not AXE_PATH.is_file():
        raise RuntimeError(
            f"axe-core not found at {AXE_PATH}; run `npm ci` in the repository root (`make setup` does it)"
        )
    return AXE_PATH


async def launch_chromium(playwright: Playwright, fake_audio: Path | None) -> Browser:
    require_loopback_only_namespace()
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args(fake_audio))


async def new_page(browser: Browser, base_url: str, *, bypass_csp: bool = False,
                   viewport: tuple[int, int] | None = None, locale: str | None = None) -> Page:
    """A fresh browser context (its own cookies: one "person") with page errors collected in page.errors.

    bypass_csp: let injected scripts run (axe-core), or prove the client itself never turns user text into
    markup, without the server's Content-Security-Policy as a safety net.
    """
    options: dict[str, Any] = {"viewport": {"width": viewport[0], "height": viewport[1]}} if viewport else {}
    if locale:
        options["locale"] = locale
    context = await browser.new_context(base_url=base_url, bypass_csp=bypass_csp, **options)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"Uncaught {exc}"))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.errors = errors  # type: ignore[attr-defined]
    return page


async def open_group(page: Page, slug: str | None = None, *, room: str | None = None, link: str | None = None) -> None:
    """From the directory (or a link) to the agreement page of a group or an ad-hoc room."""
    await page.goto(link or "/")
    if link:
        await page.wait_for_selector("#agreement:not([hidden])")
        return
    if room is not None:
        await page.wait_for_selector("#adhoc:not([hidden])")
        await page.fill("#room-input", room)
        await page.click("#adhoc-button")
    else:
        await page.click(f'.choose-group[data-slug="{slug}"]')
    await page.wait_for_selector("#agreement:not([hidden])")


async def fill_details(
    page: Page, name: str, *, mic: bool = True, camera: bool = False, secret: str | None = None
) -> None:
    await page.click("#agree-button")
    await page.wait_for_selector("#details:not([hidden])")
    await page.fill("#name-input", name)
    await page.set_checked("#join-mic", mic)
    await page.set_checked("#join-camera", camera)
    if secret is not None:
        await page.click("#facilitator-details > summary")
        await page.fill("#secret-input", secret)


async def join(
    page: Page,
    name: str,
    slug: str | None = None,
    *,
    room: str | None = None,
    link: str | None = None,
    mic: bool = True,
    camera: bool = False,
    secret: str | None = None,
    expect: str = "room",
) -> None:
    """Directory -> agreement -> details -> join; waits for the view named by `expect`
    ("room", "lobby" or "error": the join form's error message)."""
    await open_group(page, slug, room=room, link=link)
    await fill_details(page, name, mic=mic, camera=camera, secret=secret)
    await page.click("#join-button")
    selector = {"room": "#room:not([hidden])", "lobby": "#lobby:not([hidden])", "error": "#join-error:not([hidden])"}[
        expect
    ]
    await page.wait_for_selector(selector, timeout=15000)


async def poll(page: Page, script: str, arg: object, check: Callable[[Any], bool], timeout: float = 20.0) -> Any:
    """Evaluate `script` until `check(value)` holds; the last value is in the assertion message."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    value = None
    while loop.time() < deadline:
        value = await page.evaluate(script, arg)
        if check(value):
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"condition not met; last value {value!r}")


async def open_more(page: Page) -> None:
    """In the room: open the control bar's "More" menu (devices, "I need help", display settings, audio only)."""
    if await page.is_hidden("#more-menu"):
        await page.click("#open-more")
    await page.wait_for_selector("#more-menu:not([hidden])")


async def open_panel(page: Page, button: str, panel: str) -> None:
    """In the room: open a panel (desktop) or sheet (phone) from its bar button unless it is open already."""
    if await page.is_hidden(panel):
        await page.click(button)
    await page.wait_for_selector(f"{panel}:not([hidden])")


def uncaught(*pages: Page) -> list[str]:
    return [e for page in pages for e in page.errors if "Uncaught" in e]  # type: ignore[attr-defined]


# Bytes received on the audio transceiver(s) carrying `participant_id`'s audio (or all audio when None).
AUDIO_BYTES = """async (participantId) => {
  const call = window.peerwell && window.peerwell.call;
  if (!call || !call.pc) return 0;
  let bytes = 0;
  for (const t of call.pc.getTransceivers()) {
    const info = t.mid !== null ? call.tracks[t.mid] : undefined;
    if (!info || info.kind !== 'audio') continue;
    if (participantId && info.participant_id !== participantId) continue;
    const stats = await t.receiver.getStats();
    stats.forEach(s => { if (s.type === 'inbound-rtp') bytes += s.bytesReceived; });
  }
  return bytes;
}"""

PARTICIPANT_ID = "() => window.peerwell && window.peerwell.call ? window.peerwell.call.participantId : null"

# Tile state by the displayed name: video size/time and the badges shown.
TILE_STATE = """(name) => {
  const tile = [...document.querySelectorAll('.tile')].find(t => t.querySelector('.name').textContent === name);
  if (!tile) return null;
  const v = tile.querySelector('video');
  return {width: v.videoWidth, time: v.currentTime,
          badges: [...tile.querySelectorAll('.badge')].map(b => b.textContent)};
}"""


async def axe_violations(page: Page, *, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is now; violations of the given impacts (needs bypass_csp)."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(require_axe()))
    violations = await page.evaluate(AXE_RUN)
    return [v for v in violations if v["impact"] in impacts]


AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ': ' + n.failureSummary)}));
}"""
