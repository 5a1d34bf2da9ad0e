"""Subscription: per-subscriber queues, drop policy, av.Packet output, lifetime and rebinding."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import pytest
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.aiortc_adapter.framing import AssembledFrame
from sfu.contrib.client import encode_vp8_clip
from sfu.media import publication as publication_module
from sfu.media.codecs import is_keyframe
from sfu.media.publication import Publication
from sfu.media.subscription import AUDIO_QUEUE_FRAMES, VIDEO_QUEUE_FRAMES, Subscription

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
STEP = 3000  # 30 fps at 90 kHz
INTERVAL = 0.05


@pytest.fixture(autouse=True)
def short_keyframe_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publication_module, "KEYFRAME_REQUEST_INTERVAL", INTERVAL)


@pytest.fixture(scope="module")
def clip() -> list[bytes]:
    """100 frames, keyframes at 0, 40 and 80: long delta runs so a queue can overflow on a delta frame."""
    frames = encode_vp8_clip(frames=100, width=64, height=48, keyframe_interval=40)
    assert [i for i, f in enumerate(frames) if is_keyframe("video/VP8", f)] == [0, 40, 80]
    return frames


class Source:
    """A publication fed real frames, counting the PLIs it sends to its (imaginary) publisher."""

    def __init__(self, kind: str = "video", ssrc: int = 1111, base: int = 0) -> None:
        self.plis: list[int] = []
        self.pub = Publication(f"pub-{ssrc}", kind, self.plis.append)
        self.codec = VP8 if kind == "video" else OPUS
        self.ssrc = ssrc
        self.base = base  # RTP timestamp offset, so two sources are told apart

    def ts(self, i: int) -> int:
        return self.base + i * (STEP if self.pub.kind == "video" else 960)

    def send(self, data: bytes, i: int) -> None:
        self.pub.on_assembled(AssembledFrame(data, self.ts(i), self.codec.payloadType, self.ssrc, False),
                              self.codec)

    def send_clip(self, clip: list[bytes], indices) -> None:  # type: ignore[no-untyped-def]
        for i in indices:
            self.send(clip[i], i)


def opus_frame(i: int) -> bytes:
    return bytes([0xFC, i % 256, i // 256])


def queued(sub: Subscription) -> list[int]:
    return [f.timestamp for f in sub._queue]


async def test_recv_returns_the_publishers_bytes_as_av_packets_with_rtp_pts(clip: list[bytes]) -> None:
    src = Source()
    src.send_clip(clip, [0])  # the codec is known before anyone subscribes, as in a room
    sub = Subscription("video", "bob", src.pub)
    try:
        src.send_clip(clip, range(0, 3))
        for i in range(3):
            packet = await sub.recv()
            assert isinstance(packet, av.Packet)
            assert bytes(packet) == clip[i]
            assert packet.pts == src.ts(i)
            assert packet.time_base == Fraction(1, 90000)
        assert sub.frames_forwarded == 3
    finally:
        sub.stop()
        src.pub.close()


async def test_audio_packets_use_the_codec_clock() -> None:
    src = Source("audio", base=123_456)
    src.send(opus_frame(0), 0)
    sub = Subscription("audio", "bob", src.pub)
    try:
        src.send(opus_frame(1), 1)
        packet = await sub.recv()
        assert bytes(packet) == opus_frame(1)
        assert packet.pts == 123_456 + 960
        assert packet.time_base == Fraction(1, 48000)
    finally:
        sub.stop()
        src.pub.close()


async def test_a_new_video_subscription_starts_at_a_keyframe(clip: list[bytes]) -> None:
    src = Source()
    src.send_clip(clip, range(0, 5))
    sub = Subscription("video", "bob", src.pub)
    try:
        assert src.plis == [src.ssrc]  # subscribing asked the publisher for a keyframe
        src.send_clip(clip, range(5, 42))
        assert queued(sub)[0] == src.ts(40)
        assert sub.frames_dropped == 35
    finally:
        sub.stop()
        src.pub.close()


async def test_a_slow_subscriber_drops_frames_for_itself_only(clip: list[bytes]) -> None:
    src = Source()
    src.send_clip(clip, [0])
    slow = Subscription("video", "slow", src.pub)  # nobody ever calls recv()
    fast = Subscription("video", "fast", src.pub)
    try:
        received = []
        for i in range(100):
            src.send(clip[i], i)
            packet = await asyncio.wait_for(fast.recv(), 1)
            received.append((packet.pts, bytes(packet)))
            assert len(slow._queue) <= VIDEO_QUEUE_FRAMES
        assert received == [(src.ts(i), clip[i]) for i in range(100)]
        assert fast.frames_dropped == 0
        assert slow.frames_dropped > 0
        assert slow.frames_dropped + len(slow._queue) == 100
        assert src.pub.frames_received == 101
    finally:
        slow.stop()
        fast.stop()
        src.pub.close()


async def test_video_overflow_flushes_waits_for_a_keyframe_and_asks_for_one(clip: list[bytes]) -> None:
    src = Source()
    src.send_clip(clip, [0])
    sub = Subscription("video", "bob", src.pub)
    await asyncio.sleep(2 * INTERVAL)  # let the subscribe-time keyframe request's interval pass
    plis = len(src.plis)
    try:
        src.send_clip(clip, range(0, VIDEO_QUEUE_FRAMES))
        assert len(sub._queue) == VIDEO_QUEUE_FRAMES
        assert sub.frames_dropped == 0
        src.send_clip(clip, [VIDEO_QUEUE_FRAMES])  # one too many: a delta frame
        assert queued(sub) == []
        assert sub.frames_dropped == VIDEO_QUEUE_FRAMES + 1
        assert len(src.plis) > plis  # the copy asked the publication for a keyframe
        src.send_clip(clip, range(VIDEO_QUEUE_FRAMES + 1, 40))  # deltas: useless without the keyframe
        assert queued(sub) == []
        src.send_clip(clip, range(40, 43))
        assert queued(sub) == [src.ts(40), src.ts(41), src.ts(42)]
        packet = await sub.recv()
        assert bytes(packet) == clip[40]
    finally:
        sub.stop()
        src.pub.close()


async def test_audio_overflow_drops_the_oldest_frames() -> None:
    src = Source("audio")
    src.send(opus_frame(0), 0)
    sub = Subscription("audio", "bob", src.pub)
    try:
        total = AUDIO_QUEUE_FRAMES + 5
        for i in range(1, total + 1):
            src.send(opus_frame(i), i)
        assert len(sub._queue) == AUDIO_QUEUE_FRAMES
        assert sub.frames_dropped == 5
        packet = await sub.recv()
        assert bytes(packet) == opus_frame(6)  # 1..5 went; the newest half second stays
        assert queued(sub)[-1] == src.ts(total)
        assert src.plis == []
    finally:
        sub.stop()
        src.pub.close()


async def test_stop_wakes_a_pending_recv_with_media_stream_error(clip: list[bytes]) -> None:
    src = Source()
    src.send_clip(clip, [0])
    sub = Subscription("video", "bob", src.pub)
    pending = asyncio.ensure_future(sub.recv())
    await asyncio.sleep(0.05)
    assert not pending.done()
    sub.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(pending, 1)
    assert sub.readyState == "ended"
    assert sub.publication is None
    assert sub not in src.pub.sinks
    src.send_clip(clip, range(0, 3))  # frames after stop go nowhere
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(sub.recv(), 1)
    src.pub.close()


async def test_unbind_and_rebind_to_another_publication(clip: list[bytes]) -> None:
    first, second = Source(ssrc=1), Source(ssrc=2, base=5_000_000)
    first.send_clip(clip, [0])
    second.send_clip(clip, range(0, 5))
    sub = Subscription("video", "bob", first.pub)
    try:
        first.send_clip(clip, range(0, 3))
        assert queued(sub) == [first.ts(0), first.ts(1), first.ts(2)]
        sub.unbind()
        assert sub.publication is None and sub not in first.pub.sinks
        assert queued(sub) == []  # nothing stale from the old publisher
        first.send_clip(clip, range(3, 5))
        assert queued(sub) == []

        sub.bind(second.pub)
        assert sub.publication is second.pub and sub in second.pub.sinks
        assert second.plis == [2]  # the new copy needs a keyframe from its new publisher
        second.send_clip(clip, range(5, 41))  # second's deltas do not fit first's pictures
        assert queued(sub) == [second.ts(40)]
        assert (await sub.recv()).pts == second.ts(40)

        # bind() alone moves the copy too, and a subscriber's PLI goes to whoever it is bound to.
        sub.bind(first.pub)
        assert sub not in second.pub.sinks and sub in first.pub.sinks
        await asyncio.sleep(3 * INTERVAL)  # any request deferred by the rebind has gone out
        before = len(first.plis)
        sub.request_keyframe()
        await asyncio.sleep(3 * INTERVAL)  # sent now, or at the end of the current interval
        assert len(first.plis) == before + 1
    finally:
        sub.stop()
        first.pub.close()
        second.pub.close()


async def test_keyframe_request_from_an_unbound_subscription_is_a_no_op() -> None:
    sub = Subscription("video", "bob")
    sub.request_keyframe()
    sub.stop()
