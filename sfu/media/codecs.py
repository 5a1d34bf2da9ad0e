"""Codec facts the forwarder needs without decoding: keyframes, and matching a subscriber to a publisher."""

from __future__ import annotations

from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters

FORWARDABLE = {"audio/opus", "video/vp8", "video/h264"}


def is_keyframe(mime_type: str, frame: bytes) -> bool:
    mime = mime_type.lower()
    if not frame:
        return False
    if mime == "video/vp8":
        # RFC 6386 9.1: bit 0 of the frame tag is 0 for a key frame.
        return (frame[0] & 0x01) == 0
    if mime == "video/h264":
        # aiortc depayloads to Annex B; only an IDR slice (type 5) starts a picture decodable on its own.
        return 5 in _h264_nal_types(frame)
    return True  # audio: every frame stands alone


def vp8_keyframe_size(frame: bytes) -> tuple[int, int] | None:
    """(width, height) from a VP8 keyframe's header (RFC 6386 9.1), None for anything else."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    return (frame[6] | frame[7] << 8) & 0x3FFF, (frame[8] | frame[9] << 8) & 0x3FFF


def _h264_nal_types(stream: bytes) -> list[int]:
    types = []
    i = stream.find(b"\x00\x00\x01")
    while i != -1 and i + 3 < len(stream):
        types.append(stream[i + 3] & 0x1F)
        i = stream.find(b"\x00\x00\x01", i + 3)
    return types


def subscriber_codecs(publisher_codec: RTCRtpCodecParameters) -> list[RTCRtpCodecCapability]:
    """Codec preferences for a forwarded copy: the publisher's codec only (we cannot transcode), plus RTX."""
    capabilities = RTCRtpSender.getCapabilities(publisher_codec.mimeType.split("/")[0]).codecs
    same_mime = [c for c in capabilities if c.mimeType.lower() == publisher_codec.mimeType.lower()]
    exact = [c for c in same_mime if _same_profile(c.parameters, publisher_codec.parameters)]
    chosen = exact[:1] or same_mime[:1]
    rtx = [c for c in capabilities if c.mimeType.lower().endswith("/rtx")]
    return chosen + rtx[:1]


def same_codec(a: RTCRtpCodecParameters | RTCRtpCodecCapability,
               b: RTCRtpCodecParameters | RTCRtpCodecCapability) -> bool:
    """Same encoding a forwarded stream can be sent as (H.264 also needs the same profile and mode)."""
    if a.mimeType.lower() != b.mimeType.lower() or a.clockRate != b.clockRate:
        return False
    return a.mimeType.lower() != "video/h264" or _same_profile(a.parameters, b.parameters)


def _same_profile(a: dict, b: dict) -> bool:
    keys = ("packetization-mode", "profile-level-id")
    return all(str(a.get(k, "")).lower()[:4] == str(b.get(k, "")).lower()[:4] for k in keys)
