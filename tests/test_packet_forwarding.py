"""Packet-level facts the forwarder relies on: keyframe starts per packet (VP8, H.264), and one continuous stream
for a subscriber across a simulcast layer switch (sequence numbers, timestamps, VP8 picture id and TL0PICIDX)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import av
import pytest
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from sfu.contrib.client import encode_h264_clip, encode_vp8_clip
from sfu.media.codecs import Vp8Descriptor, h264_packet_keyframe, is_keyframe, vp8_packet_keyframe
from sfu.media.publication import Publication
from sfu.media.subscription import Subscription

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102, parameters={
    "packetization-mode": "1", "profile-level-id": "42e01f"})


def payloads(codec: RTCRtpCodecParameters, frame: bytes, packetizer: object) -> list[bytes]:
    packet = av.Packet(frame)
    packet.pts, packet.time_base = 0, Fraction(1, 90000)
    return packetizer.pack(packet)[0]  # type: ignore[attr-defined]


def test_vp8_keyframe_is_the_first_packet_of_a_keyframe_only() -> None:
    clip = encode_vp8_clip(frames=12, width=640, height=480, keyframe_interval=10, bitrate=4_000_000)
    packetizer = get_encoder(VP8)
    for i, frame in enumerate(clip):
        parts = payloads(VP8, frame, packetizer)
        flags = [vp8_packet_keyframe(p, Vp8Descriptor(p)) for p in parts]
        assert flags == [is_keyframe("video/VP8", frame)] + [False] * (len(parts) - 1), i
    assert len(payloads(VP8, clip[0], packetizer)) > 1  # the keyframe spans packets: only its first counts


def test_vp8_descriptor_positions() -> None:
    # X=1, S=1, PID=0; I, L, T: 15-bit picture id 0x1234, TL0PICIDX 7, TID/KEYIDX byte; then a key frame tag.
    payload = bytes([0x90, 0xE0, 0x80 | 0x12, 0x34, 7, 0x20, 0x00, 0, 0, 0x9D, 0x01, 0x2A])
    d = Vp8Descriptor(payload)
    assert (d.start, d.picture_id, d.picture_id_bits, d.picture_id_at, d.tl0, d.tl0_at, d.header_size) == (
        True, 0x1234, 15, 2, 7, 4, 6)
    assert vp8_packet_keyframe(payload, d)
    short = Vp8Descriptor(bytes([0x80, 0x80, 0x05, 0x01]))  # 7-bit picture id, not a frame start
    assert (short.start, short.picture_id, short.picture_id_bits, short.header_size) == (False, 5, 7, 3)


def test_h264_keyframe_packets_single_stap_a_and_fu_a() -> None:
    assert h264_packet_keyframe(bytes([0x65, 0x88]))  # IDR slice alone
    assert h264_packet_keyframe(bytes([0x67, 0x42]))  # SPS alone: the IDR follows
    assert not h264_packet_keyframe(bytes([0x41, 0x9A]))  # a non-IDR slice
    stap = bytes([0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xCE])  # STAP-A: SPS, PPS
    assert h264_packet_keyframe(stap)
    assert not h264_packet_keyframe(bytes([0x78, 0, 2, 0x06, 0x05]))  # STAP-A of SEI only
    assert h264_packet_keyframe(bytes([0x7C, 0x85, 0]))  # FU-A, start of an IDR
    assert not h264_packet_keyframe(bytes([0x7C, 0x05, 0]))  # FU-A, middle of an IDR
    assert not h264_packet_keyframe(b"")


def test_h264_keyframes_from_x264_through_aiortcs_packetizer() -> None:
    clip = encode_h264_clip(frames=12, width=64, height=48, keyframe_interval=5)
    packetizer = get_encoder(H264)
    starts = [i for i, frame in enumerate(clip) if h264_packet_keyframe(payloads(H264, frame, packetizer)[0])]
    assert starts == [0, 5, 10]


class Outlet:
    def __init__(self) -> None:
        self.sent: list[tuple[int, int, int, bytes, int | None]] = []

    def send(self, seq: int, timestamp: int, marker: int, payload: bytes, level: int | None = None) -> bool:
        self.sent.append((seq, timestamp, marker, payload, level))
        return True


def vp8_packet(ssrc: int, seq: int, timestamp: int, picture_id: int, tl0: int, key: bool, marker: int = 1) -> RtpPacket:
    descriptor = bytes([0x90, 0xC0, 0x80 | picture_id >> 8, picture_id & 0xFF, tl0])
    frame = (bytes([0x00 if key else 0x01, 0, 0, 0x9D, 0x01, 0x2A, 64, 0, 48 if ssrc == 1 else 96, 0])
             if key else bytes([0x01, 0, 0]))
    return RtpPacket(payload_type=96, marker=marker, sequence_number=seq, timestamp=timestamp, ssrc=ssrc,
                     payload=descriptor + frame)


@pytest.mark.parametrize("wrap", [False, True])
async def test_a_layer_switch_continues_numbers_timestamps_and_picture_ids(wrap: bool) -> None:
    clock = [100.0]
    pub = Publication("alice", "video", lambda ssrc: None, clock=lambda: clock[0])
    outlet = Outlet()
    sub = Subscription("video", "bob", pub, outlet=outlet)  # type: ignore[arg-type]
    try:
        # Layer 1 (small) and layer 2 (large): own sequence numbers, clocks and picture ids, interleaved.
        low = {"seq": 65534 if wrap else 10, "ts": 4_294_960_000 if wrap else 1000, "pid": 32766 if wrap else 50,
               "tl0": 255 if wrap else 3}
        high = {"seq": 30_000, "ts": 7_000_000, "pid": 9000, "tl0": 200}

        def send(layer: dict, ssrc: int, key: bool) -> None:
            pub.on_packet(vp8_packet(ssrc, layer["seq"] % 65536, layer["ts"] % (1 << 32), layer["pid"] % 32768,
                                     layer["tl0"] % 256, key), VP8)
            layer["seq"] += 1
            layer["ts"] += 3000
            layer["pid"] += 1
            layer["tl0"] += 1 if key else 0
            clock[0] += 1 / 30

        sub.select(1)
        for k in range(4):
            send(low, 1, k == 0)
            send(high, 2, k == 0)
        assert sub.current == 1
        sub.select(2)
        for _ in range(2):
            send(low, 1, False)
            send(high, 2, False)  # not a keyframe: the switch waits, the small layer goes on
        assert sub.current == 1
        send(low, 1, False)
        send(high, 2, True)
        send(low, 1, False)
        send(high, 2, False)
        assert sub.current == 2 and sub.layer_switches == 1
        seqs = [seq for seq, *_ in outlet.sent]
        assert seqs == [(seqs[0] + k) % 65536 for k in range(len(seqs))]
        stamps = [ts for _, ts, *_ in outlet.sent]
        steps = [(b - a) % (1 << 32) for a, b in itertools.pairwise(stamps)]
        assert all(0 < step <= 9000 for step in steps), steps  # no jump at the switch
        pids = [Vp8Descriptor(p).picture_id for *_, p, _ in outlet.sent]
        assert pids == [(pids[0] + k) % 32768 for k in range(len(pids))]
        tl0s = [p[Vp8Descriptor(p).tl0_at] for *_, p, _ in outlet.sent]
        assert tl0s[-2] == (tl0s[-3] + 1) % 256  # the new layer's keyframe is the next TL0 picture
    finally:
        sub.stop()
        pub.close()
