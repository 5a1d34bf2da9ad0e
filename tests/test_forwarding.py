"""Real aiortc peer connections through a real server on loopback: forwarding without transcoding."""

from __future__ import annotations

import asyncio
import gc
import re
from collections import Counter

import pytest
from aiortc.codecs import h264, opus, vpx

from sfu.contrib.client import (
    TRAILER_SIZE,
    RoomClient,
    encode_h264_clip,
    encode_opus_clip,
    encode_vp8_clip,
    read_trailer,
)
from sfu.media.publication import EncodedFrame
from tests.conftest import RunningServer, wait_for

CODEC_WORK = [
    (vpx.Vp8Encoder, "encode"), (vpx.Vp8Decoder, "decode"),
    (h264.H264Encoder, "encode"), (h264.H264Decoder, "decode"),
    (opus.OpusEncoder, "encode"), (opus.OpusDecoder, "decode"),
]


@pytest.fixture
def codec_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts every encode/decode aiortc performs in this process (server and test clients alike)."""
    calls: Counter[str] = Counter()
    for cls, method in CODEC_WORK:
        original = getattr(cls, method)

        def spy(self, *args, _original=original, _name=f"{cls.__name__}.{method}", **kwargs):  # type: ignore[no-untyped-def]
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, method, spy)
    return calls


@pytest.fixture(scope="module")
def clips() -> tuple[list[bytes], list[bytes]]:
    return encode_vp8_clip(frames=60), encode_opus_clip(seconds=1.0)



class Recorder:
    def __init__(self, frames: list[EncodedFrame]) -> None:
        self.frames = frames

    def deliver(self, frame: EncodedFrame) -> None:
        self.frames.append(frame)


async def test_three_publishers_forwarded_byte_for_byte_without_transcoding(
        server: RunningServer, clips: tuple[list[bytes], list[bytes]], codec_calls: Counter[str]) -> None:
    vp8, opus_frames = clips
    clients = [RoomClient(server.ws_url, "circle", f"person{i}", vp8, opus_frames, tag=i + 1) for i in range(3)]
    try:
        for client in clients:
            await client.join()
        ids = {c.tag: c.participant_id for c in clients}

        def everyone_gets_everyone() -> bool:
            return all(
                c.count_from(other.participant_id, "video") >= 45 and c.count_from(other.participant_id, "audio") >= 100
                for c in clients for other in clients if other is not c)

        await wait_for(everyone_gets_everyone, timeout=20)

        # What a caption tap gets: the encoded packets (transcription decodes them in its own process).
        room = server.rooms.rooms["circle"]
        speaker = room.participants[clients[0].participant_id]
        tapped: list[EncodedFrame] = []
        tap = Recorder(tapped)
        speaker.media.publications["audio"].add_sink(tap)
        await asyncio.sleep(1.0)
        speaker.media.publications["audio"].remove_sink(tap)
    finally:
        for client in clients:
            await client.leave()

    for client in clients:
        for other in clients:
            if other is client:
                continue
            video = client.frames_from(other.participant_id, "video")
            for frame in video:
                mark = read_trailer(frame.data)
                assert mark is not None and ids[mark[0]] == other.participant_id
                assert frame.data[:-TRAILER_SIZE] == vp8[mark[1] % len(vp8)], "forwarded frame differs from sent"
            audio = client.frames_from(other.participant_id, "audio")
            assert set(f.data for f in audio) <= set(opus_frames)

    assert codec_calls["Vp8Encoder.encode"] == 0
    assert codec_calls["Vp8Decoder.decode"] == 0
    assert codec_calls["H264Encoder.encode"] == codec_calls["H264Decoder.decode"] == 0
    assert codec_calls["OpusEncoder.encode"] == codec_calls["OpusDecoder.decode"] == 0
    assert len(tapped) > 30 and {f.data for f in tapped} <= set(opus_frames)


async def test_leaving_releases_peer_connection_and_tasks(
        server: RunningServer, clips: tuple[list[bytes], list[bytes]]) -> None:
    vp8, opus_frames = clips
    stayer = RoomClient(server.ws_url, "room2", "stayer", vp8, opus_frames, tag=1)
    await stayer.join()
    await asyncio.sleep(0.5)
    baseline_tasks = len(asyncio.all_tasks())  # stayer's own connection, both ends

    leaver = RoomClient(server.ws_url, "room2", "leaver", vp8, opus_frames, tag=2)
    await leaver.join()
    await wait_for(lambda: stayer.count_from(leaver.participant_id, "video") > 10)
    room = server.rooms.rooms["room2"]
    server_side = room.participants[leaver.participant_id]
    await leaver.leave()

    await wait_for(lambda: leaver.participant_id not in room.participants)
    assert server_side.media.pc.connectionState == "closed"
    assert all(s.subscription.readyState == "ended" for s in server_side.media.slots)
    assert all(p.closed for p in server_side.media.publications.values())
    # The stayer's copy of the leaver's media is unbound and renegotiated away.
    stayer_side = room.participants[stayer.participant_id]
    await wait_for(lambda: all(s.subscription.publication is None for s in stayer_side.media.slots))
    await wait_for(lambda: all(t["participant_id"] != leaver.participant_id for t in stayer.tracks.values()))
    await wait_for(lambda: any(m.get("type") == "participant-left" and m["participant_id"] == leaver.participant_id
                               for m in stayer.signals))
    del server_side
    await asyncio.sleep(2.0)
    gc.collect()
    after_first_leave = len(asyncio.all_tasks())
    snap1 = sorted(str(t.get_coro()).split(" at")[0] for t in asyncio.all_tasks())
    # What remains is the stayer's own: its two idle slots keep their sender tasks for reuse.
    assert after_first_leave <= baseline_tasks + 2 * 3

    # A newcomer reuses the stayer's idle slots instead of growing the SDP, and leaves no tasks behind.
    slots_before = len(stayer_side.media.slots)
    newcomer = RoomClient(server.ws_url, "room2", "newcomer", vp8, opus_frames, tag=3)
    await newcomer.join()
    await wait_for(lambda: stayer.count_from(newcomer.participant_id, "video") > 10)
    assert len(stayer_side.media.slots) == slots_before
    await newcomer.leave()
    await wait_for(lambda: newcomer.participant_id not in room.participants)
    await asyncio.sleep(2.0)
    gc.collect()
    snap2 = sorted(str(t.get_coro()).split(" at")[0] for t in asyncio.all_tasks())
    assert snap1 == snap2
    await stayer.leave()
    await wait_for(lambda: "room2" not in server.rooms.rooms)


async def test_new_subscriber_triggers_rate_limited_keyframe_request(
        server: RunningServer, clips: tuple[list[bytes], list[bytes]]) -> None:
    vp8, _ = clips
    publisher = RoomClient(server.ws_url, "kf", "publisher", vp8, None, tag=1)
    await publisher.join()
    await asyncio.sleep(1.0)
    publication = server.rooms.rooms["kf"].participants[publisher.participant_id].media.publications["video"]
    before = publication.keyframe_requests_sent
    watchers = [RoomClient(server.ws_url, "kf", f"w{i}", None, None) for i in range(3)]
    for watcher in watchers:
        await watcher.join()
    await wait_for(lambda: all(w.count_from(publisher.participant_id, "video") > 0 for w in watchers))
    sent = publication.keyframe_requests_sent - before
    assert sent >= 1
    assert sent <= 4, "keyframe requests must be rate limited, not one per frame"
    for client in [publisher, *watchers]:
        await client.leave()


async def test_h264_is_forwarded_when_offered(server: RunningServer, codec_calls: Counter[str]) -> None:
    h264_frames = encode_h264_clip(frames=60)
    publisher = RoomClient(server.ws_url, "h264", "pub", h264_frames, None, tag=7, video_codec="video/H264")
    watcher = RoomClient(server.ws_url, "h264", "watcher")
    await publisher.join()
    await watcher.join()
    await wait_for(lambda: watcher.count_from(publisher.participant_id, "video") >= 30, timeout=20)
    publication = server.rooms.rooms["h264"].participants[publisher.participant_id].media.publications["video"]
    assert publication.codec is not None and publication.codec.mimeType == "video/H264"

    def nal_units(stream: bytes) -> list[bytes]:
        return [unit for unit in re.split(b"\x00\x00\x00?\x01", stream) if unit]

    for frame in watcher.frames_from(publisher.participant_id, "video"):
        mark = read_trailer(frame.data)
        assert mark is not None and mark[0] == 7
        assert nal_units(frame.data[:-TRAILER_SIZE]) == nal_units(h264_frames[mark[1] % len(h264_frames)])
    assert codec_calls["H264Encoder.encode"] == codec_calls["H264Decoder.decode"] == 0
    for client in (publisher, watcher):
        await client.leave()
