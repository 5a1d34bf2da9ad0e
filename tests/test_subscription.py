"""Subscription: renumbered packets out, per-subscriber queues, drop policy, lifetime and rebinding."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import pytest
from aiortc.codecs import get_encoder
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from sfu.contrib.client import encode_vp8_clip
from sfu.media import publication as publication_module
from sfu.media import subscription as subscription_module
from sfu.media.codecs import Vp8Descriptor, is_keyframe
from sfu.media.publication import Publication
from sfu.media.subscription import AUDIO_QUEUE_PACKETS, Subscription

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
STEP = 3000  # 30 fps at 90 kHz
INTERVAL = 0.05


@pytest.fixture(autouse=True)
def short_keyframe_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publication_module, "KEYFRAME_REQUEST_INTERVAL", INTERVAL)


@pytest.fixture
def short_video_queue(monkeypatch: pytest.MonkeyPatch) -> int:
    """The test clip's frames are one packet each: a queue of 30 is a second of it."""
    monkeypatch.setattr(subscription_module, "VIDEO_QUEUE_PACKETS", 30)
    return 30


@pytest.fixture(scope="module")
def clip() -> list[bytes]:
    """100 frames, keyframes at 0, 40 and 80: long delta runs so a queue can overflow on a delta frame."""
    frames = encode_vp8_clip(frames=100, width=64, height=48, keyframe_interval=40)
    assert [i for i, f in enumerate(frames) if is_keyframe("video/VP8", f)] == [0, 40, 80]
    return frames


class FakeOutlet:
    """Stands for the sender's RtpOutlet: records what would go out, or refuses while closed."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, int, bytes, int | None]] = []
        self.open = True

    def send(self, seq: int, timestamp: int, marker: int, payload: bytes, level: int | None = None) -> bool:
        if self.open:
            self.sent.append((seq, timestamp, marker, payload, level))
        return self.open

    def timestamps(self) -> list[int]:
        return sorted({ts for _, ts, *_ in self.sent})


class Source:
    """A publication fed real frames as RTP packets, counting the PLIs it sends to its (imaginary) publisher."""

    def __init__(self, kind: str = "video", ssrc: int = 1111, base: int = 0, seq: int = 65000) -> None:
        self.plis: list[int] = []
        self.pub = Publication(f"pub-{ssrc}", kind, self.plis.append)
        self.codec = VP8 if kind == "video" else OPUS
        self.ssrc = ssrc
        self.base = base  # RTP timestamp offset, so two sources are told apart
        self.seq = seq
        self.packetizer = get_encoder(VP8)
        self.packets: dict[int, list[RtpPacket]] = {}  # frame number -> its packets, as sent

    def ts(self, i: int) -> int:
        return (self.base + i * (STEP if self.pub.kind == "video" else 960)) % (1 << 32)

    def packetize(self, data: bytes, i: int) -> list[RtpPacket]:
        if self.pub.kind == "audio":
            payloads = [data]
        else:
            frame = av.Packet(data)
            frame.pts, frame.time_base = i, Fraction(1, 90000)
            payloads, _ = self.packetizer.pack(frame)  # type: ignore[attr-defined]
        packets = [RtpPacket(payload_type=self.codec.payloadType, marker=int(k == len(payloads) - 1),
                             sequence_number=(self.seq + k) % 65536, timestamp=self.ts(i), ssrc=self.ssrc,
                             payload=p) for k, p in enumerate(payloads)]
        self.seq = (self.seq + len(packets)) % 65536
        self.packets[i] = packets
        return packets

    def send(self, data: bytes, i: int) -> None:
        for packet in self.packetize(data, i):
            self.pub.on_packet(packet, self.codec)

    def send_clip(self, clip: list[bytes], indices) -> None:  # type: ignore[no-untyped-def]
        for i in indices:
            self.send(clip[i], i)


def subscribe(kind: str, src: Source) -> tuple[Subscription, FakeOutlet]:
    outlet = FakeOutlet()
    return Subscription(kind, "bob", src.pub, outlet=outlet), outlet  # type: ignore[arg-type]


def opus_frame(i: int) -> bytes:
    return bytes([0xFC, i % 256, i // 256])


def queued(sub: Subscription) -> list[int]:
    return sorted({ts for _, ts, *_ in sub._queue})


def frame_bytes(sent: list[tuple[int, int, int, bytes, int | None]], timestamp: int) -> bytes:
    return b"".join(p[Vp8Descriptor(p).header_size:] for _, ts, _, p, _ in sent if ts == timestamp)


async def test_packets_go_out_as_the_publisher_sent_them_with_one_continuous_numbering(clip: list[bytes]) -> None:
    src = Source()
    src.send_clip(clip, [0])  # the codec is known before anyone subscribes, as in a room
    sub, outlet = subscribe("video", src)
    try:
        src.send_clip(clip, range(0, 3))
        assert outlet.timestamps() == [src.ts(i) for i in range(3)]
        for i in range(3):
            assert frame_bytes(outlet.sent, src.ts(i)) == clip[i]  # nothing re-packetized
        sent = [p for frame in range(3) for p in src.packets[frame]]
        assert [payload for _, _, _, payload, _ in outlet.sent] == [p.payload for p in sent]  # same ids too
        assert [marker for _, _, marker, _, _ in outlet.sent] == [p.marker for p in sent]
        seqs = [seq for seq, *_ in outlet.sent]
        assert seqs == [(seqs[0] + k) % 65536 for k in range(len(seqs))]  # across the wrap, no gap
        assert sub.packets_forwarded == sub.frames_forwarded == len(sent)
    finally:
        sub.stop()
        src.pub.close()


async def test_audio_is_forwarded_as_is_with_its_level() -> None:
    src = Source("audio", base=123_456)
    src.send(opus_frame(0), 0)
    sub, outlet = subscribe("audio", src)
    try:
        for packet in src.packetize(opus_frame(1), 1):
            packet.extensions.audio_level = (True, 42)
            src.pub.on_packet(packet, OPUS)
        packet = src.packets[1][0]
        assert outlet.sent == [(packet.sequence_number, 123_456 + 960, packet.marker, opus_frame(1), 42)]
    finally:
        sub.stop()
        src.pub.close()


async def test_a_new_video_subscription_starts_at_a_keyframe(clip: list[bytes]) -> None:
    src = Source()
    src.send_clip(clip, range(0, 5))
    sub, outlet = subscribe("video", src)
    try:
        assert src.plis == [src.ssrc]  # subscribing asked the publisher for a keyframe
        src.send_clip(clip, range(5, 42))
        assert outlet.timestamps()[0] == src.ts(40)
        assert sub.packets_dropped == sum(len(src.packets[i]) for i in range(5, 40))
        assert outlet.sent[0][0] == src.packets[40][0].sequence_number  # the first run keeps the numbers
    finally:
        sub.stop()
        src.pub.close()


async def test_a_slow_subscriber_drops_packets_for_itself_only(clip: list[bytes], short_video_queue: int) -> None:
    src = Source()
    src.send_clip(clip, [0])
    slow, slow_outlet = subscribe("video", src)
    fast, fast_outlet = subscribe("video", src)
    slow_outlet.open = False  # its socket never drains
    try:
        for i in range(100):
            src.send(clip[i], i)
            assert len(slow._queue) <= short_video_queue
        assert fast_outlet.timestamps() == [src.ts(i) for i in range(100)]
        assert fast.packets_dropped == 0
        total = sum(len(p) for p in src.packets.values())
        assert slow.packets_dropped > 0
        assert slow.packets_dropped + len(slow._queue) == total
        assert slow_outlet.sent == []
    finally:
        slow.stop()
        fast.stop()
        src.pub.close()


async def test_video_overflow_flushes_waits_for_a_keyframe_and_asks_for_one(clip: list[bytes],
                                                                             short_video_queue: int) -> None:
    src = Source()
    src.send_clip(clip, [0])
    sub, outlet = subscribe("video", src)
    outlet.open = False
    await asyncio.sleep(2 * INTERVAL)  # let the subscribe-time keyframe request's interval pass
    plis = len(src.plis)
    try:
        i = 0
        while len(sub._queue) + len(src.packetize(clip[i], i)) <= short_video_queue:
            for packet in src.packets[i]:
                src.pub.on_packet(packet, VP8)
            i += 1
        assert sub.packets_dropped == 0
        overflowing = len(sub._queue)
        src.send_clip(clip, [i])  # too many: a delta frame overflows the queue
        assert queued(sub) == []
        assert sub.packets_dropped >= overflowing + 1
        assert len(src.plis) > plis  # the copy asked the publication for a keyframe
        outlet.open = True  # the link drains again
        src.send_clip(clip, range(i + 1, 40))  # deltas: useless without the keyframe
        assert queued(sub) == [] and outlet.sent == []
        last_seq = sub._last_seq
        src.send_clip(clip, range(40, 43))
        assert outlet.timestamps() == [src.ts(40), src.ts(41), src.ts(42)]
        assert frame_bytes(outlet.sent, src.ts(40)) == clip[40]
        assert outlet.sent[0][0] == (last_seq + 1) % 65536  # the resumed run continues the numbering
    finally:
        sub.stop()
        src.pub.close()


async def test_audio_overflow_drops_the_oldest_packets() -> None:
    src = Source("audio")
    src.send(opus_frame(0), 0)
    sub, outlet = subscribe("audio", src)
    outlet.open = False
    try:
        total = AUDIO_QUEUE_PACKETS + 5
        for i in range(1, total + 1):
            src.send(opus_frame(i), i)
        assert len(sub._queue) == AUDIO_QUEUE_PACKETS
        assert sub.packets_dropped == 5
        outlet.open = True
        assert sub.flush() == AUDIO_QUEUE_PACKETS
        assert outlet.sent[0][3] == opus_frame(6)  # 1..5 went; the newest half second stays
        assert outlet.sent[-1][1] == src.ts(total)
        assert src.plis == []
    finally:
        sub.stop()
        src.pub.close()


async def test_a_late_retransmission_lands_in_its_place_and_older_packets_are_not_sent(clip: list[bytes]) -> None:
    src = Source()
    src.send_clip(clip, [0])
    sub, outlet = subscribe("video", src)
    try:
        packets = src.packetize(clip[40], 40) + src.packetize(clip[41], 41) + src.packetize(clip[42], 42)
        late = packets.pop(len(packets) // 2)  # lost on the publisher's leg, repaired later
        for packet in packets:
            src.pub.on_packet(packet, VP8)
        src.pub.on_packet(late, VP8)
        first = outlet.sent[0][0]
        assert sorted((seq - first) % 65536 for seq, *_ in outlet.sent) == list(range(len(packets) + 1))
        assert outlet.sent[-1][0] == (first + late.sequence_number - packets[0].sequence_number) % 65536
        before = RtpPacket(payload_type=96, sequence_number=(packets[0].sequence_number - 3) % 65536,
                           timestamp=src.ts(39), ssrc=src.ssrc, payload=src.packets[0][-1].payload)
        src.pub.on_packet(before, VP8)  # from before this run started: not ours to send
        assert len(outlet.sent) == len(packets) + 1
    finally:
        sub.stop()
        src.pub.close()


async def test_stop_wakes_the_senders_pending_recv_with_media_stream_error(clip: list[bytes]) -> None:
    src = Source()
    src.send_clip(clip, [0])
    sub, outlet = subscribe("video", src)
    pending = asyncio.ensure_future(sub.recv())  # the sender's track never yields: the outlet sends
    await asyncio.sleep(0.05)
    assert not pending.done()
    sub.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(pending, 1)
    assert sub.readyState == "ended"
    assert sub.publication is None
    assert sub not in src.pub.sinks
    src.send_clip(clip, range(0, 3))  # packets after stop go nowhere
    assert outlet.sent == []
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(sub.recv(), 1)
    src.pub.close()


async def test_unbind_and_rebind_to_another_publication(clip: list[bytes]) -> None:
    first, second = Source(ssrc=1), Source(ssrc=2, base=5_000_000, seq=100)
    first.send_clip(clip, [0])
    second.send_clip(clip, range(0, 5))
    sub, outlet = subscribe("video", first)
    try:
        first.send_clip(clip, range(0, 3))
        assert outlet.timestamps() == [first.ts(0), first.ts(1), first.ts(2)]
        sub.unbind()
        assert sub.publication is None and sub not in first.pub.sinks
        first.send_clip(clip, range(3, 5))
        assert len(outlet.timestamps()) == 3
        last_seq, last_ts = outlet.sent[-1][0], outlet.sent[-1][1]
        last_pid = Vp8Descriptor(outlet.sent[-1][3]).picture_id

        sub.bind(second.pub)
        assert sub.publication is second.pub and sub in second.pub.sinks
        assert second.plis == [2]  # the new copy needs a keyframe from its new publisher
        second.send_clip(clip, range(5, 42))  # second's deltas do not fit first's pictures
        moved = outlet.sent[len(outlet.sent) - sum(len(second.packets[i]) for i in (40, 41)):]
        # One stream for the subscriber: numbers, timestamps and picture ids go on from the first publisher's.
        assert moved[0][0] == (last_seq + 1) % 65536
        assert (moved[0][1] - last_ts) % (1 << 32) < 90000  # rebased: the time between them, not 5_000_000
        assert Vp8Descriptor(moved[0][3]).picture_id == (last_pid + 1) % 32768
        assert frame_bytes(moved, moved[0][1]) == clip[40]
        assert sub.layer_switches == 0  # a new publication, not a layer switch

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
