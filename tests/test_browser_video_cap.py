"""Real Chromium: a publisher told by the server to cap its video keeps its outbound bitrate (all simulcast
layers together), frame rate and height under the cap (its own getStats), and goes back up when the cap is
lifted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page

from sfu import messages
from sfu.config import ServerConfig
from sfu.room.video_quality import LADDER, VideoCap, rung_index
from tests.conftest import RunningServer, start_server
from tests.support.browser import PARTICIPANT_ID, TILE_STATE, join, new_page, poll, uncaught

pytestmark = pytest.mark.browser

SETTLE_S = 4.0  # the encoder and the bandwidth estimate adapt over a couple of seconds
WINDOW_S = 4.0

# The page's own video sender: payload bytes and frames sent so far, the last frame's height, and the
# encoding parameters it runs with.
# The page's own video sender (three simulcast layers): payload bytes over all layers, frames and the
# latest frame height per layer, and the cap its encodings were last set for.
OUTBOUND_VIDEO = """async () => {
  const call = window.peerwell.call;
  const out = {bytes: 0, layers: {}, at: 0, cap: call.videoCapApplied};
  (await call.senders.video.getStats()).forEach(s => {
    if (s.type !== 'outbound-rtp') return;
    out.bytes += s.bytesSent; out.at = s.timestamp;
    out.layers[s.rid || '-'] = {frames: s.framesSent || 0, height: s.frameHeight || 0};
  });
  return out;
}"""


def applied(value: dict, cap: VideoCap) -> bool:
    return value["cap"] is not None and value["cap"]["max_bitrate_bps"] == cap.max_bitrate_bps


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    runner, running = await start_server(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0))
    yield running
    await runner.cleanup()


async def measure(page: Page) -> dict[str, float]:
    """Bitrate (payload, all layers), the fastest layer's frame rate and the tallest sending layer's latest
    frame height over WINDOW_S."""
    first = await page.evaluate(OUTBOUND_VIDEO)
    await asyncio.sleep(WINDOW_S)
    last = await page.evaluate(OUTBOUND_VIDEO)
    seconds = (last["at"] - first["at"]) / 1000
    rates = {rid: (layer["frames"] - first["layers"].get(rid, {"frames": 0})["frames"]) / seconds
             for rid, layer in last["layers"].items()}
    sending = [rid for rid, fps in rates.items() if fps > 0]
    return {"bps": (last["bytes"] - first["bytes"]) * 8 / seconds, "fps": max(rates.values(), default=0),
            "height": max((last["layers"][rid]["height"] for rid in sending), default=0)}


async def test_a_capped_publisher_stays_under_its_cap_and_goes_back_up(server: RunningServer,
                                                                        browser: Browser) -> None:
    publisher = await new_page(browser, server.http_url)
    await join(publisher, "Camera", room="cap-room", mic=True, camera=True)
    viewer = await new_page(browser, server.http_url)
    await join(viewer, "Viewer", room="cap-room", mic=False, camera=False)
    await poll(viewer, TILE_STATE, "Camera", lambda v: v is not None and v["width"] > 0 and v["time"] > 0)
    participant = server.rooms.rooms["cap-room"].participants[await publisher.evaluate(PARTICIPANT_ID)]

    # Two people: the room's own cap, the ladder's first rung, came on joining and is in force.
    top = LADDER[0].gallery
    await poll(publisher, OUTBOUND_VIDEO, None, lambda v: applied(v, top))
    await asyncio.sleep(SETTLE_S)
    before = await measure(publisher)

    # What a publisher is told in a 12-person room (the sending path Room.update_video_caps uses).
    cap = LADDER[rung_index(12)].gallery
    participant.send_event(messages.VideoCap(*cap))
    await poll(publisher, OUTBOUND_VIDEO, None, lambda v: applied(v, cap))
    await asyncio.sleep(SETTLE_S)
    capped = await measure(publisher)
    # 10%: maxBitrate bounds the encoder's target; a keyframe may overshoot it within a window.
    assert capped["bps"] <= cap.max_bitrate_bps * 1.1, (before, capped)
    assert capped["fps"] <= cap.max_framerate + 0.5, (before, capped)
    assert 0 < capped["height"] <= cap.max_height, (before, capped)
    assert capped["fps"] > cap.max_framerate / 2, (before, capped)  # capped, not stopped

    participant.send_event(messages.VideoCap(*top))
    await poll(publisher, OUTBOUND_VIDEO, None, lambda v: applied(v, top))
    await asyncio.sleep(SETTLE_S)
    after = await measure(publisher)
    assert after["bps"] > cap.max_bitrate_bps * 2, (before, capped, after)
    assert after["height"] > cap.max_height, (before, capped, after)
    assert after["fps"] > capped["fps"], (before, capped, after)
    print(f"\nbefore {before}\ncapped {capped}\nafter  {after}")
    assert not uncaught(publisher, viewer)
