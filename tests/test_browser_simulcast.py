"""Real Chromium with simulcast: the web client publishes three VP8 RID layers, the server forwards each
viewer the layer its tile needs, a hidden tile's video stops arriving and comes back with a picture within
a second of being shown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page

from sfu import messages
from sfu.config import ServerConfig
from tests.conftest import RunningServer, start_server
from tests.support.browser import PARTICIPANT_ID, TILE_STATE, join, new_page, open_more, poll, uncaught

pytestmark = pytest.mark.browser

# Inbound video and audio from one participant, as this page's getStats sees them.
INBOUND = """async (participantId) => {
  const call = window.peerwell.call;
  const out = {video: {bytes: 0, frames: 0, height: 0, packets: 0}, audio: {packets: 0, concealed: 0, samples: 0},
               at: performance.now()};
  for (const t of call.pc.getTransceivers()) {
    const info = t.mid !== null ? call.tracks[t.mid] : undefined;
    if (!info || info.participant_id !== participantId) continue;
    (await t.receiver.getStats()).forEach(s => {
      if (s.type !== 'inbound-rtp') return;
      if (info.kind === 'video') {
        out.video.bytes += s.bytesReceived; out.video.frames += s.framesDecoded || 0;
        out.video.height = s.frameHeight || out.video.height; out.video.packets += s.packetsReceived;
      } else {
        out.audio.packets += s.packetsReceived; out.audio.concealed += s.concealedSamples || 0;
        out.audio.samples += s.totalSamplesReceived || 0;
      }
    });
  }
  return out;
}"""

# The publisher's own layers: bytes, frames and height per rid.
OUTBOUND_LAYERS = """async () => {
  const out = {};
  (await window.peerwell.call.senders.video.getStats()).forEach(s => {
    if (s.type === 'outbound-rtp') out[s.rid || '-'] = {bytes: s.bytesSent, frames: s.framesSent || 0,
                                                         height: s.frameHeight || 0, at: s.timestamp,
                                                         limit: s.qualityLimitationReason, active: s.active};
    if (s.type === 'candidate-pair' && s.nominated) out.available = s.availableOutgoingBitrate;
  });
  return out;
}"""

SET_TILE_HEIGHT = """([name, height]) => {
  const tile = [...document.querySelectorAll('.tile')].find(t => t.querySelector('.name').textContent === name);
  tile.closest('.tile-box').style.display = height === null ? '' : (height === 0 ? 'none' : '');
  tile.style.height = height ? height + 'px' : '';
  tile.style.flex = height ? 'none' : '';  // on the stage a tile grows to fill it
}"""


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    runner, running = await start_server(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0))
    yield running
    await runner.cleanup()


async def layer_heights(server: RunningServer, room: str, publisher: Page) -> list[int]:
    """The heights of the layers the publisher sends now, smallest first (the server's view)."""
    members = server.rooms.rooms[room].participants
    publication = members[await publisher.evaluate(PARTICIPANT_ID)].media.publications["video"]
    return [layer.height for layer in publication.layers()]


async def video_layer(server: RunningServer, room: str, viewer: Page, publisher: Page) -> tuple[int, int]:
    """(height of the layer the server forwards to `viewer`, number of layers the publisher sends)."""
    members = server.rooms.rooms[room].participants
    publication = members[await publisher.evaluate(PARTICIPANT_ID)].media.publications["video"]
    session = members[await viewer.evaluate(PARTICIPANT_ID)].media
    subscription = session.subscription_for(publication)
    layer = next((x for x in publication.layers() if x.ssrc == subscription.current), None)
    return (layer.height if layer else 0), len(publication.layers())


async def test_chromium_simulcasts_and_a_hidden_tile_pauses_then_resumes_with_a_picture(
        server: RunningServer, browser: Browser) -> None:
    publisher = await new_page(browser, server.http_url)
    await join(publisher, "Camera", room="layers", mic=True, camera=True)
    viewer = await new_page(browser, server.http_url, viewport=(1280, 720))
    await join(viewer, "Viewer", room="layers", mic=False, camera=False)
    await poll(viewer, TILE_STATE, "Camera", lambda v: v is not None and v["width"] > 0 and v["time"] > 0)
    camera_id = await publisher.evaluate(PARTICIPANT_ID)

    # Three layers arrive from Chromium (the camera's 960x540 scaled by 4, 2, 1).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while (await video_layer(server, "layers", viewer, publisher))[1] < 3 and loop.time() < deadline:
        await asyncio.sleep(0.3)
    layers = await publisher.evaluate(OUTBOUND_LAYERS)
    assert (await video_layer(server, "layers", viewer, publisher))[1] == 3, layers
    assert set(layers) - {"available"} == {"l", "m", "h"}, layers

    # A small tile gets the small layer, a large one the large layer.
    # (Heights as the server sees them: a busy machine's Chromium may scale a layer down for CPU.)
    heights = await layer_heights(server, "layers", publisher)
    await viewer.evaluate(SET_TILE_HEIGHT, ["Camera", 100])
    await poll(viewer, INBOUND, camera_id, lambda v: v["video"]["height"] == heights[0], timeout=10)
    await viewer.evaluate(SET_TILE_HEIGHT, ["Camera", 500])
    await poll(viewer, INBOUND, camera_id, lambda v: v["video"]["height"] == heights[-1] > heights[0], timeout=10)
    assert (await video_layer(server, "layers", viewer, publisher))[0] == heights[-1]

    # Hidden (as a collapsed or scrolled-away tile): no video bytes arrive; audio goes on.
    await viewer.evaluate(SET_TILE_HEIGHT, ["Camera", 0])
    await asyncio.sleep(1.0)  # the report, and frames already on the wire
    before = await viewer.evaluate(INBOUND, camera_id)
    await asyncio.sleep(2.0)
    after = await viewer.evaluate(INBOUND, camera_id)
    assert after["video"]["bytes"] == before["video"]["bytes"], (before, after)
    assert after["audio"]["packets"] > before["audio"]["packets"] + 50, (before, after)

    # Shown again: a new decoded picture within a second.
    shown_at = time.monotonic()
    await viewer.evaluate(SET_TILE_HEIGHT, ["Camera", None])
    await poll(viewer, INBOUND, camera_id, lambda v: v["video"]["frames"] > after["video"]["frames"], timeout=3)
    resumed_after = time.monotonic() - shown_at
    print(f"\nresumed with a picture {resumed_after:.2f} s after the tile was shown")
    assert resumed_after < 1.0
    assert not uncaught(publisher, viewer)


async def test_audio_only_mode_and_the_paused_for_bandwidth_notice(server: RunningServer, browser: Browser) -> None:
    publisher = await new_page(browser, server.http_url)
    await join(publisher, "Camera", room="thin-ui", mic=True, camera=True)
    viewer = await new_page(browser, server.http_url)
    await join(viewer, "Viewer", room="thin-ui", mic=False, camera=False)
    await poll(viewer, TILE_STATE, "Camera", lambda v: v is not None and v["width"] > 0 and v["time"] > 0)
    camera_id = await publisher.evaluate(PARTICIPANT_ID)
    session = server.rooms.rooms["thin-ui"].participants[await viewer.evaluate(PARTICIPANT_ID)].media

    # "Low bandwidth: audio and captions only": no video bytes, audio goes on, the tile shows initials.
    await open_more(viewer)  # the switch is in the control bar's "More" menu
    await viewer.click("#toggle-audio-only")
    assert await viewer.get_attribute("#toggle-audio-only", "aria-pressed") == "true"
    await poll(viewer, "() => [...window.peerwell.store.state.videoDelivery.values()]", None,
               lambda v: v == ["audio-only"], timeout=5)
    assert session.audio_only
    await asyncio.sleep(0.5)
    before = await viewer.evaluate(INBOUND, camera_id)
    await asyncio.sleep(1.5)
    after = await viewer.evaluate(INBOUND, camera_id)
    assert after["video"]["bytes"] == before["video"]["bytes"], (before, after)
    assert after["audio"]["packets"] > before["audio"]["packets"], (before, after)
    assert await viewer.locator(".tile.no-video .name", has_text="Camera").count() == 1
    await open_more(viewer)
    await viewer.click("#toggle-audio-only")
    await poll(viewer, INBOUND, camera_id, lambda v: v["video"]["frames"] > after["video"]["frames"], timeout=5)

    # What the viewer sees when the server pauses a video for its link (sent through the real event path).
    assert await viewer.is_hidden("#bandwidth-status")
    session.send_event(messages.VideoDelivery(videos={camera_id: "bandwidth"}))
    await viewer.wait_for_selector("#bandwidth-status:not([hidden])", timeout=5000)
    await poll(viewer, TILE_STATE, "Camera", lambda v: "Video paused: slow connection" in v["badges"], timeout=5)
    session.send_event(messages.VideoDelivery(videos={camera_id: "shown"}))
    await viewer.wait_for_selector("#bandwidth-status", state="hidden", timeout=5000)
    assert not uncaught(publisher, viewer)
