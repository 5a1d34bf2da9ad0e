"""Keyframe detection on real encoded frames (as aiortc's receiver depayloads them) and codec matching."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc import sdp as aiortc_sdp
from aiortc.codecs import depayload, get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.contrib.client import encode_vp8_clip
from sfu.media.codecs import is_keyframe, subscriber_codecs

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
H264_CB = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102, parameters={
    "level-asymmetry-allowed": "1", "packetization-mode": "1", "profile-level-id": "42e01f"})
H264_B = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=104, parameters={
    "level-asymmetry-allowed": "1", "packetization-mode": "1", "profile-level-id": "42001f"})
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


def through_rtp(codec: RTCRtpCodecParameters, frame: bytes, pts: int) -> bytes:
    """Packetize as aiortc's sender does, depayload as its receiver does: what the frame assembler sees."""
    packet = av.Packet(frame)
    packet.pts = pts
    packet.time_base = Fraction(1, codec.clockRate)
    payloads, _ = get_encoder(codec).pack(packet)
    return b"".join(depayload(codec, p) for p in payloads)


@pytest.fixture(scope="module")
def h264_frames() -> list[bytes]:
    """Real x264 output, IDR every 5 frames, as Annex B access units."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = 64, 48, "yuv420p"
    codec.time_base = Fraction(1, 30)
    codec.framerate = 30
    codec.options = {"tune": "zerolatency", "preset": "ultrafast", "g": "5", "keyint_min": "5",
                     "sc_threshold": "0", "bf": "0"}
    rng = np.random.default_rng(1)
    frames: list[bytes] = []
    for i in range(12):
        image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        picture = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        picture.pts = i
        frames.extend(bytes(p) for p in codec.encode(picture))
    frames.extend(bytes(p) for p in codec.encode(None))
    return frames


def test_vp8_keyframes_in_a_real_clip_after_rtp_round_trip() -> None:
    clip = encode_vp8_clip(frames=25, width=64, height=48, keyframe_interval=10)
    received = [through_rtp(VP8, f, i * 3000) for i, f in enumerate(clip)]
    assert received == clip  # VP8 depayloads to the encoder's exact bytes
    keyframes = [i for i, f in enumerate(received) if is_keyframe("video/VP8", f)]
    assert keyframes == [0, 10, 20]
    assert is_keyframe("VIDEO/vp8", clip[0])  # mime types are case-insensitive
    assert not is_keyframe("video/VP8", b"")


def test_h264_idr_access_units_from_x264_after_rtp_round_trip(h264_frames: list[bytes]) -> None:
    assert len(h264_frames) == 12
    received = [through_rtp(H264_CB, f, i * 3000) for i, f in enumerate(h264_frames)]
    keyframes = [i for i, f in enumerate(received) if is_keyframe("video/H264", f)]
    assert keyframes == [0, 5, 10]


SPS = b"\x67\x42\xe0\x1f\xda\x01\x40\x16\xe8"
PPS = b"\x68\xce\x3c\x80"
IDR = b"\x65\x88\x84\x00\x33\xff"
SLICE = b"\x41\x9a\x24\x6c\x41"
SEI = b"\x06\x05\x10\xb9\xed"


@pytest.mark.parametrize(("stream", "expected"), [
    (b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x00\x01" + PPS + b"\x00\x00\x00\x01" + IDR, True),
    (b"\x00\x00\x01" + IDR, True),  # three-byte start code
    (b"\x00\x00\x00\x01" + SEI + b"\x00\x00\x01" + IDR, True),
    (b"\x00\x00\x00\x01" + SLICE, False),
    (b"\x00\x00\x00\x01" + SEI + b"\x00\x00\x00\x01" + SLICE + b"\x00\x00\x00\x01" + SLICE, False),
    (b"\x00\x00\x00\x01", False),  # a start code with nothing after it
    (SLICE, False),  # no start code at all
    (b"", False),
])
def test_h264_keyframe_from_annex_b_nal_types(stream: bytes, expected: bool) -> None:
    assert is_keyframe("video/H264", stream) is expected


def test_h264_sps_pps_before_a_non_idr_slice_is_not_a_keyframe() -> None:
    stream = b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x00\x01" + PPS + b"\x00\x00\x00\x01" + SLICE
    assert is_keyframe("video/H264", stream) is False


def test_audio_frames_always_stand_alone() -> None:
    assert is_keyframe("audio/opus", b"\xfc\xff\xfe")


def _names(codecs: list) -> list[tuple[str, str | None]]:
    return [(c.mimeType.lower(), c.parameters.get("profile-level-id")) for c in codecs]


def test_subscriber_codecs_vp8_is_exactly_vp8_plus_rtx() -> None:
    assert _names(subscriber_codecs(VP8)) == [("video/vp8", None), ("video/rtx", None)]


@pytest.mark.parametrize("publisher", [H264_CB, H264_B], ids=["constrained-baseline", "baseline"])
def test_subscriber_codecs_h264_keeps_the_publishers_profile(publisher: RTCRtpCodecParameters) -> None:
    chosen = subscriber_codecs(publisher)
    assert _names(chosen) == [("video/h264", publisher.parameters["profile-level-id"]), ("video/rtx", None)]
    assert chosen[0].parameters["packetization-mode"] == "1"


def test_subscriber_codecs_opus_has_no_rtx() -> None:
    chosen = subscriber_codecs(OPUS)
    assert _names(chosen) == [("audio/opus", None)]
    assert chosen[0].clockRate == 48000


@pytest.mark.parametrize("publisher", [VP8, H264_CB, OPUS], ids=["vp8", "h264", "opus"])
async def test_subscriber_codecs_restrict_the_offer_to_the_publishers_codec(
        publisher: RTCRtpCodecParameters) -> None:
    kind = publisher.mimeType.split("/")[0]
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver(kind, direction="sendonly")
        transceiver.setCodecPreferences(subscriber_codecs(publisher))
        await pc.setLocalDescription(await pc.createOffer())
        media = aiortc_sdp.SessionDescription.parse(pc.localDescription.sdp).media[0]
        offered = [c for c in media.rtp.codecs if not c.mimeType.lower().endswith("/rtx")]
        assert [c.mimeType.lower() for c in offered] == [publisher.mimeType.lower()]
        assert offered[0].parameters.get("profile-level-id") == publisher.parameters.get("profile-level-id")
        rtx = [c for c in media.rtp.codecs if c.mimeType.lower().endswith("/rtx")]
        assert len(rtx) == (0 if kind == "audio" else 1)
        if rtx:
            assert rtx[0].parameters["apt"] == offered[0].payloadType
    finally:
        await pc.close()
