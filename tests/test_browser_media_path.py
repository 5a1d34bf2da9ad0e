"""Real Chromium on the media path: a closed tab leaves a held seat that breaks nobody's join; a member with
neither camera nor microphone receives everyone; Opus DTX and audio levels are negotiated, and the level on a
talker's packets highlights them at the others."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page

from sfu.config import ServerConfig
from sfu.contrib.client import RoomClient, encode_opus_clip, encode_vp8_clip
from tests.conftest import RunningServer, start_server
from tests.support.browser import AUDIO_BYTES, PARTICIPANT_ID, TILE_STATE, join, new_page, poll, uncaught

pytestmark = pytest.mark.browser

GRACE = 8.0

# Video frames decoded and audio bytes received, per publisher, from the page's own transceivers.
RECEIVED = """async () => {
  const call = window.peerwell.call;
  const out = {};
  for (const t of call.pc.getTransceivers()) {
    const info = t.mid !== null ? call.tracks[t.mid] : undefined;
    if (!info) continue;
    const stats = await t.receiver.getStats();
    stats.forEach(s => {
      if (s.type !== 'inbound-rtp') return;
      const entry = out[info.participant_id] = out[info.participant_id] || {video: 0, audio: 0};
      entry[info.kind] += info.kind === 'video' ? (s.framesDecoded || 0) : s.bytesReceived;
    });
  }
  return out;
}"""


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    runner, running = await start_server(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=GRACE))
    yield running
    await runner.cleanup()


async def sees_and_hears(page: Page, name: str, participant_id: str, timeout: float) -> None:
    """`page` shows `name`'s video moving and receives more of their audio."""
    first = await poll(page, TILE_STATE, name, lambda v: v is not None and v["width"] > 0 and v["time"] > 0,
                       timeout=timeout)
    audio = await page.evaluate(AUDIO_BYTES, participant_id)
    await poll(page, TILE_STATE, name, lambda v: v is not None and v["time"] > first["time"], timeout=timeout)
    await poll(page, AUDIO_BYTES, participant_id, lambda b: b > audio, timeout=timeout)


async def test_closed_tab_holds_a_seat_that_breaks_no_later_join(server: RunningServer, browser: Browser) -> None:
    alice = await new_page(browser, server.http_url)
    await join(alice, "Alice", room="tab-room", mic=True, camera=True)
    bob = await new_page(browser, server.http_url)
    await join(bob, "Bob", room="tab-room", mic=True, camera=True)
    await poll(bob, TILE_STATE, "Alice", lambda v: v is not None and v["width"] > 0)
    alice_id = await alice.evaluate(PARTICIPANT_ID)
    bob_id = await bob.evaluate(PARTICIPANT_ID)
    room = server.rooms.rooms["tab-room"]
    alice_seat = room.participants[alice_id]

    # The tab goes without a word (crash, lost network, or a `leave` that never arrived): only the media
    # connection closes, the signaling socket with it, and the seat is held for the resume grace.
    await alice.evaluate("() => { WebSocket.prototype.send = function () {}; }")
    await alice.close()
    deadline = time.monotonic() + 5
    while not alice_seat.media.media_ended:
        assert time.monotonic() < deadline, "the closed tab's connection was not noticed"
        await asyncio.sleep(0.05)
    assert alice_id in room.participants

    carol = await new_page(browser, server.http_url)
    await join(carol, "Carol", room="tab-room", mic=True, camera=True)
    carol_id = await carol.evaluate(PARTICIPANT_ID)
    joined_at = time.monotonic()
    await asyncio.gather(sees_and_hears(bob, "Carol", carol_id, timeout=10),
                         sees_and_hears(carol, "Bob", bob_id, timeout=10))
    took = time.monotonic() - joined_at
    assert took <= 2.0 + 1.0, f"Bob and Carol took {took:.1f} s to see and hear each other"  # 1 s for polling

    # The seat expires; Bob and Carol notice nothing but Alice leaving the list.
    while alice_id in room.participants:
        assert time.monotonic() < joined_at + GRACE + 10, "the held seat never expired"
        await asyncio.sleep(0.1)
    before = {"bob": await bob.evaluate(RECEIVED), "carol": await carol.evaluate(RECEIVED)}
    await asyncio.sleep(1.5)
    after = {"bob": await bob.evaluate(RECEIVED), "carol": await carol.evaluate(RECEIVED)}
    assert after["bob"][carol_id]["video"] > before["bob"][carol_id]["video"]
    assert after["bob"][carol_id]["audio"] > before["bob"][carol_id]["audio"]
    assert after["carol"][bob_id]["video"] > before["carol"][bob_id]["video"]
    assert await bob.locator(".tile .name", has_text="Alice").count() == 0
    assert await bob.evaluate("() => window.peerwell.call.pc.connectionState") == "connected"
    assert not uncaught(bob, carol)


async def test_member_without_camera_or_microphone_receives_three_publishers(
        server: RunningServer, browser: Browser) -> None:
    vp8 = encode_vp8_clip(frames=60, width=320, height=240, keyframe_interval=30)
    opus = encode_opus_clip(seconds=1.0)
    publishers = [RoomClient(server.ws_url, "listen-room", f"Speaker{i}", vp8, opus, tag=i + 1) for i in range(3)]
    listener = await new_page(browser, server.http_url)
    try:
        for publisher in publishers:
            await publisher.join()
        await join(listener, "Quiet", room="listen-room", mic=False, camera=False)
        ids = [p.participant_id for p in publishers]

        def everyone(received: dict) -> bool:
            return all(pid in received and received[pid]["video"] > 10 and received[pid]["audio"] > 2000
                       for pid in ids)

        await poll(listener, RECEIVED, None, everyone, timeout=20)
        for publisher in publishers:
            await poll(listener, TILE_STATE, publisher.name, lambda v: v is not None and v["width"] == 320)
        assert not uncaught(listener)
    finally:
        for publisher in publishers:
            await publisher.leave()


# Audio RTP packets the page has sent so far (its own microphone).
AUDIO_PACKETS_SENT = """async () => {
  const call = window.peerwell.call;
  let packets = 0;
  for (const t of call.pc.getTransceivers()) {
    if (!t.sender.track || t.sender.track.kind !== 'audio') continue;
    (await t.sender.getStats()).forEach(s => { if (s.type === 'outbound-rtp') packets += s.packetsSent; });
  }
  return packets;
}"""


async def test_browsers_negotiate_dtx_and_audio_level_and_the_speaker_is_highlighted(
        server: RunningServer, browser: Browser, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import async_playwright

    from tests.support.browser import launch_chromium, write_tone_wav

    silent_wav = write_tone_wav(tmp_path / "silence.wav", frequency=0.0)  # sin(0) = 0: digital silence
    async with async_playwright() as playwright:
        quiet_browser = await launch_chromium(playwright, silent_wav)
        try:
            talker = await new_page(browser, server.http_url)  # a steady tone on the microphone
            await join(talker, "Talker", room="dtx-room", mic=True, camera=False)
            quiet = await new_page(quiet_browser, server.http_url)
            await join(quiet, "Quiet", room="dtx-room", mic=True, camera=False)
            talker_id = await talker.evaluate(PARTICIPANT_ID)
            quiet_id = await quiet.evaluate(PARTICIPANT_ID)

            for page in (talker, quiet):
                await poll(page, "() => window.peerwell.call.pc && window.peerwell.call.pc.connectionState", None,
                           lambda state: state == "connected")
            room = server.rooms.rooms["dtx-room"]
            for pid in (talker_id, quiet_id):  # the latest of our descriptions: re-offers keep both
                answer = room.participants[pid].media.pc.localDescription.sdp
                opus_fmtp = [line for line in answer.splitlines() if line.startswith("a=fmtp:111")]
                assert opus_fmtp and "usedtx=1" in opus_fmtp[0], opus_fmtp
                assert "urn:ietf:params:rtp-hdrext:ssrc-audio-level" in answer

            # The silent browser sends a trickle (DTX), the talking one 50 packets a second.
            await poll(quiet, AUDIO_PACKETS_SENT, None, lambda n: n > 0)
            rates = {}
            for name, page in (("talker", talker), ("quiet", quiet)):
                before = await page.evaluate(AUDIO_PACKETS_SENT)
                await asyncio.sleep(2.0)
                rates[name] = (await page.evaluate(AUDIO_PACKETS_SENT) - before) / 2.0
            assert rates["talker"] >= 40 and rates["quiet"] <= 10, rates

            # The level on the talker's packets makes it the dominant speaker: highlighted at the other page.
            await quiet.wait_for_selector(f'.tile.speaking[data-participant-id="{talker_id}"]', timeout=5000)
            assert room.speakers.current == talker_id
            assert not uncaught(talker, quiet)
        finally:
            await quiet_browser.close()
