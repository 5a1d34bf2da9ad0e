"""Publication: keyframe gating, rate-limited keyframe requests and fan-out, fed real VP8 frames as RTP packets."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import pytest
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from sfu.contrib.client import encode_vp8_clip
from sfu.media import publication as publication_module
from sfu.media.codecs import Vp8Descriptor, is_keyframe
from sfu.media.publication import MediaPacket, Publication

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
VP9 = RTCRtpCodecParameters(mimeType="video/VP9", clockRate=90000, payloadType=98)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
SSRC = 0xC0FFEE


@pytest.fixture(scope="module")
def clip() -> list[bytes]:
    frames = encode_vp8_clip(frames=40, width=64, height=48, keyframe_interval=10)
    assert [i for i, f in enumerate(frames) if is_keyframe("video/VP8", f)] == [0, 10, 20, 30]
    return frames


def rtp_packets(codec: RTCRtpCodecParameters, frame: bytes, timestamp: int, first_seq: int,
                ssrc: int = SSRC, packetizer: object = None) -> list[RtpPacket]:
    """The frame as aiortc's sender packetizes it (VP8: payload descriptors with picture ids; one packetizer
    numbers pictures on), as RTP packets labelled with `codec`'s payload type."""
    packet = av.Packet(frame)
    packet.pts = timestamp
    packet.time_base = Fraction(1, codec.clockRate)
    payloads, _ = (packetizer or get_encoder(VP8)).pack(packet)  # type: ignore[attr-defined]
    return [RtpPacket(payload_type=codec.payloadType, marker=int(k == len(payloads) - 1),
                      sequence_number=(first_seq + k) % 65536, timestamp=timestamp, ssrc=ssrc, payload=payload)
            for k, payload in enumerate(payloads)]


class Recorder:
    def __init__(self) -> None:
        self.frames: list[MediaPacket] = []  # packets: the name says what sinks were given before

    def deliver(self, packet: MediaPacket) -> None:
        self.frames.append(packet)


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Setup:
    def __init__(self, kind: str = "video", clock=None) -> None:  # type: ignore[no-untyped-def]
        self.plis: list[int] = []
        self.clock = clock or FakeClock()
        self.pub = Publication("alice", kind, self.plis.append, clock=self.clock)
        self.sink = Recorder()
        self.pub.add_sink(self.sink)
        self.seq = 65530  # wraps within the first frames
        self.packetizer = get_encoder(VP8)

    def feed(self, clip: list[bytes], indices, codec=VP8) -> None:  # type: ignore[no-untyped-def]
        for i in indices:
            packets = rtp_packets(codec, clip[i], i * 3000, self.seq, packetizer=self.packetizer)
            self.seq = (self.seq + len(packets)) % 65536
            for packet in packets:
                self.pub.on_packet(packet, codec)

    def delivered(self) -> list[int]:
        """Frame numbers of the frames whose packets were delivered (each once, in order)."""
        return sorted({f.timestamp // 3000 for f in self.sink.frames})


async def test_video_forwards_nothing_before_the_first_keyframe_and_asks_for_one(clip: list[bytes]) -> None:
    s = Setup()
    try:
        s.feed(clip, range(3, 10))  # joined mid-stream: deltas only
        assert s.sink.frames == []
        assert s.plis == [SSRC]  # one PLI, then rate limited however many deltas arrive
        s.feed(clip, range(10, 15))
        assert s.delivered() == [10, 11, 12, 13, 14]
        first = s.sink.frames[0]
        assert (first.timestamp, first.keyframe, first.received_at, first.ssrc) == (30000, True, s.clock.now, SSRC)
        assert first.picture_id >= 0 and first.picture_id_bits == 15  # read once here, for every subscription
        # Only the first packet of the keyframe starts a picture; every packet of the frames goes on, unchanged.
        assert [f.keyframe for f in s.sink.frames].count(True) == 1
        assert b"".join(f.data[Vp8Descriptor(f.data).header_size:] for f in s.sink.frames
                        if f.timestamp == 30000) == clip[10]
        assert [f.marker for f in s.sink.frames if f.timestamp == 30000][-1] == 1
        assert s.pub.packets_received == sum(len(rtp_packets(VP8, clip[i], 0, 0)) for i in range(3, 15))
        assert s.pub.codec is VP8
        assert s.pub.layers()[0].height == 48  # the picture size from the keyframe packet's VP8 header
    finally:
        s.pub.close()


async def test_a_subscribers_keyframe_request_reaches_the_publisher_per_layer(clip: list[bytes]) -> None:
    """Loss on the publisher's leg is repaired per hop: aiortc NACKs the publisher, retransmissions are
    forwarded as they come, and a subscriber that still cannot decode sends PLI, which reaches the publisher
    (test_loss_repair.py through real connections; this is the publication's part)."""
    s = Setup()
    try:
        s.feed(clip, range(0, 3))
        s.clock.now += 1
        s.pub.request_keyframe(SSRC)
        s.pub.request_keyframe(12345)  # a layer the publication does not have: nobody to ask
        assert s.plis == [SSRC]
    finally:
        s.pub.close()


async def test_keyframe_requests_are_rate_limited_with_a_trailing_request(
        clip: list[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publication_module, "KEYFRAME_REQUEST_INTERVAL", 0.2)
    loop = asyncio.get_running_loop()
    s = Setup(clock=loop.time)
    try:
        s.pub.request_keyframe()
        assert s.plis == []  # no SSRC known yet: nobody to ask
        s.feed(clip, [0])
        for _ in range(5):
            s.pub.request_keyframe()
        assert s.plis == [SSRC]  # the first goes out at once
        await asyncio.sleep(0.1)
        s.pub.request_keyframe()
        assert s.plis == [SSRC]
        await asyncio.sleep(0.2)  # the interval ended: the requests made inside it become one PLI
        assert s.plis == [SSRC, SSRC]
        assert s.pub.keyframe_requests_sent == 2
        await asyncio.sleep(0.3)
        assert len(s.plis) == 2  # nothing more was asked for
        s.pub.request_keyframe()
        assert len(s.plis) == 3  # outside the interval: immediate
    finally:
        s.pub.close()


async def test_closing_cancels_a_deferred_keyframe_request(
        clip: list[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publication_module, "KEYFRAME_REQUEST_INTERVAL", 0.1)
    s = Setup(clock=asyncio.get_running_loop().time)
    s.feed(clip, [0])
    s.pub.request_keyframe()
    s.pub.request_keyframe()  # deferred
    s.pub.close()
    await asyncio.sleep(0.25)
    assert s.plis == [SSRC]
    assert s.pub.sinks == ()


async def test_a_new_video_sink_asks_for_a_keyframe(clip: list[bytes]) -> None:
    s = Setup()
    try:
        s.feed(clip, range(0, 3))
        assert s.plis == []
        s.clock.now += 1
        late = Recorder()
        s.pub.add_sink(late)
        assert s.plis == [SSRC]
        assert s.pub.sinks == (s.sink, late)
    finally:
        s.pub.close()


async def test_paused_publication_forwards_nothing(clip: list[bytes]) -> None:
    s = Setup()
    try:
        s.feed(clip, range(0, 5))
        s.pub.paused = True
        s.feed(clip, range(5, 25))
        assert s.delivered() == [0, 1, 2, 3, 4]
        assert s.pub.frames_received == s.pub.packets_received >= 25
        s.pub.paused = False
        s.feed(clip, range(25, 33))  # the clip's keyframes are frames 0 and 30
        assert s.delivered()[-3:] == [30, 31, 32]
    finally:
        s.pub.close()


async def test_unpaused_video_resumes_at_a_keyframe(clip: list[bytes]) -> None:
    s = Setup()
    try:
        s.feed(clip, range(0, 5))
        s.pub.paused = True
        s.feed(clip, range(5, 12))
        s.pub.paused = False
        s.clock.now += 1
        plis_before = len(s.plis)
        s.feed(clip, range(12, 22))
        resumed = s.sink.frames[5:]
        assert resumed and resumed[0].keyframe, "first frame after unpausing must be a keyframe"
        assert [f.timestamp // 3000 for f in resumed] == [20, 21]
        assert len(s.plis) > plis_before
    finally:
        s.pub.close()


async def test_frames_without_a_forwardable_codec_are_ignored(clip: list[bytes]) -> None:
    s = Setup()
    try:
        s.feed(clip, range(0, 4), codec=VP9)
        for i in range(4):
            for packet in rtp_packets(VP8, clip[i], i * 3000, i * 10):
                s.pub.on_packet(packet, None)
        assert s.sink.frames == []
        assert s.pub.frames_received == 0
        assert s.pub.codec is None
        assert s.plis == []  # nothing is waiting on a keyframe of a codec we cannot forward
        s.feed(clip, range(0, 2))
        assert s.delivered() == [0, 1]
    finally:
        s.pub.close()


async def test_codec_follows_the_payload_type_in_use(clip: list[bytes]) -> None:
    other_pt = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=120)
    s = Setup()
    try:
        s.feed(clip, [0])
        assert s.pub.codec is VP8
        s.feed(clip, [1], codec=other_pt)
        assert s.pub.codec is other_pt
        assert s.delivered() == [0, 1]
    finally:
        s.pub.close()


async def test_audio_forwards_every_frame_and_never_asks_for_keyframes() -> None:
    s = Setup(kind="audio")
    try:
        opus_frames = [bytes([0xFC, i]) for i in range(6)]
        heard: list[tuple[int, float]] = []
        s.pub.on_audio_level = lambda level, at: heard.append((level, at))
        for i, data in enumerate(opus_frames):
            packet = RtpPacket(payload_type=111, sequence_number=i, timestamp=i * 960, ssrc=SSRC, payload=data)
            packet.extensions.audio_level = (True, 30 + i)
            s.pub.on_packet(packet, OPUS)
        assert heard == [(30 + i, s.clock.now) for i in range(6)]  # read per packet, for the dominant speaker
        assert [f.audio_level for f in s.sink.frames] == [30 + i for i in range(6)]
        assert [f.data for f in s.sink.frames] == opus_frames
        assert all(f.keyframe for f in s.sink.frames)
        s.pub.request_keyframe()
        s.pub.add_sink(Recorder())
        assert s.plis == []
    finally:
        s.pub.close()


async def test_fan_out_shares_one_frame_and_removed_sinks_get_nothing(clip: list[bytes]) -> None:
    s = Setup()
    second = Recorder()
    s.pub.add_sink(second)
    try:
        s.feed(clip, range(0, 3))
        assert [id(f) for f in s.sink.frames] == [id(f) for f in second.frames]
        s.pub.remove_sink(second)
        s.pub.remove_sink(second)  # removing twice is harmless
        s.feed(clip, range(3, 5))
        assert len(s.sink.frames) == 5 and len(second.frames) == 3
    finally:
        s.pub.close()
    s.feed(clip, range(5, 7))
    assert len(s.sink.frames) == 5  # a closed publication has no sinks left
