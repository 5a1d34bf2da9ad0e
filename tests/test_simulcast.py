"""Simulcast through real aiortc peer connections: a publisher sends three RID layers (its own SSRC,
sequence numbers and RTP clock each, as a browser's), the server forwards each listener one layer chosen
from the tile size it reports, switches at the target layer's keyframe with the timestamps continuing,
pauses video nobody shows and resumes it with a keyframe, and sends no video to an audio-only listener."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from sfu.contrib.client import RoomClient, VideoVariant, encode_opus_clip, encode_vp8_variants
from sfu.media.codecs import vp8_keyframe_size
from tests.conftest import RunningServer, wait_for

LAYERS = [(120_000, 15, 120), (300_000, 15, 240), (800_000, 15, 480)]  # (bps, fps, height), smallest first


@pytest.fixture(scope="module")
def layers() -> list[VideoVariant]:
    return sorted(encode_vp8_variants(LAYERS, seconds=2.0), key=lambda v: v.height)


def heights(client: RoomClient, publisher: str) -> list[int]:
    """The picture height of each keyframe received from `publisher`, in order."""
    sizes = [vp8_keyframe_size(f.data) for f in client.frames_from(publisher, "video")]
    return [size[1] for size in sizes if size is not None]


def delivery(client: RoomClient, publisher: str) -> str | None:
    events = [e for e in client.events if e.get("type") == "video-delivery" and publisher in e["videos"]]
    return events[-1]["videos"][publisher] if events else None


async def test_each_listener_gets_the_layer_its_tile_needs_and_switches_at_a_keyframe(
        server: RunningServer, layers: list[VideoVariant]) -> None:
    publisher = RoomClient(server.ws_url, "layers", "Cam", simulcast=layers, audio_frames=encode_opus_clip(seconds=1.0))
    small = RoomClient(server.ws_url, "layers", "Small", audio_frames=encode_opus_clip(seconds=1.0))
    large = RoomClient(server.ws_url, "layers", "Large")
    try:
        for client in (publisher, small, large):
            await client.join()
        pid = publisher.participant_id
        assert pid is not None
        await wait_for(lambda: all(c.channel is not None and c.channel.readyState == "open"
                                   for c in (publisher, small, large)))
        small.send_channel({"type": "set-video-views", "views": {pid: 100}})
        large.send_channel({"type": "set-video-views", "views": {pid: 480}})
        publication = server.rooms.rooms["layers"].participants[pid].media.publications["video"]
        await wait_for(lambda: len(publication.layers()) == 3, timeout=15)
        await wait_for(lambda: heights(small, pid)[-1:] == [120] and heights(large, pid)[-1:] == [480], timeout=10)
        await asyncio.sleep(1.0)
        assert set(heights(small, pid)[-2:]) == {120} and set(heights(large, pid)[-2:]) == {480}
        assert delivery(small, pid) == delivery(large, pid) == "shown"

        # The small tile grows: the next frame of another layer it gets is that layer's keyframe, and the
        # RTP timestamps run on (each layer has its own clock at the publisher; the decoder sees one).
        before = len(small.frames_from(pid, "video"))
        small.send_channel({"type": "set-video-views", "views": {pid: 240}})
        await wait_for(lambda: heights(small, pid)[-1:] == [240], timeout=5)
        after = small.frames_from(pid, "video")[before:]
        first_new = next(i for i, f in enumerate(after) if vp8_keyframe_size(f.data) == (320, 240))
        assert all(vp8_keyframe_size(f.data) in (None, (160, 120)) for f in after[:first_new])
        stamps = [f.timestamp for f in small.frames_from(pid, "video")]
        steps = [(b - a) % (1 << 32) for a, b in itertools.pairwise(stamps)]
        assert all(0 < step < 90000 for step in steps), steps  # increasing, never a jump back or of seconds
        subscription = next(s.subscription for s in server.rooms.rooms["layers"].participants[
            small.participant_id].media.slots if s.subscription.kind == "video")
        assert subscription.layer_switches >= 1

        # Hidden: no more video bytes; shown again: a keyframe within a second.
        small.send_channel({"type": "set-video-views", "views": {pid: 0}})
        await wait_for(lambda: delivery(small, pid) == "hidden", timeout=3)
        await asyncio.sleep(0.3)  # frames already on the wire
        hidden_count = small.count_from(pid, "video")
        audio_before = small.count_from(pid, "audio")
        await asyncio.sleep(1.5)
        assert small.count_from(pid, "video") == hidden_count
        assert small.count_from(pid, "audio") > audio_before + 40  # audio is not touched
        shown_at = time.monotonic()
        small.send_channel({"type": "set-video-views", "views": {pid: 240}})
        await wait_for(lambda: small.count_from(pid, "video") > hidden_count, timeout=3)
        resumed = small.frames_from(pid, "video")[hidden_count]
        assert vp8_keyframe_size(resumed.data) == (320, 240)
        assert time.monotonic() - shown_at < 1.0

        # Audio and captions only: no video at all, audio goes on.
        large.send_channel({"type": "set-audio-only", "enabled": True})
        await wait_for(lambda: delivery(large, pid) == "audio-only", timeout=3)
        await asyncio.sleep(0.3)
        count = large.count_from(pid, "video")
        audio = large.count_from(pid, "audio")
        await asyncio.sleep(1.0)
        assert large.count_from(pid, "video") == count
        assert large.count_from(pid, "audio") > audio + 20
    finally:
        for client in (publisher, small, large):
            await client.close()


async def test_a_bad_views_message_is_refused_and_changes_nothing(server: RunningServer) -> None:
    client = RoomClient(server.ws_url, "views", "Viewer")
    try:
        await client.join()
        await wait_for(lambda: client.channel is not None and client.channel.readyState == "open")
        client.send_channel({"type": "set-video-views", "views": {"x": -1}})
        client.send_channel({"type": "set-video-views", "views": {f"p{i}": 10 for i in range(65)}})
        await wait_for(lambda: len([e for e in client.events if e.get("type") == "error"]) == 2, timeout=5)
        assert {e["code"] for e in client.events if e.get("type") == "error"} == {"invalid-message"}
    finally:
        await client.close()
