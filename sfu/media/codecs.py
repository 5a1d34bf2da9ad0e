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


# --- per packet (the forwarding path never assembles frames) -------------------------------------------------------

class Vp8Descriptor:
    """What the forwarder reads of a VP8 RTP payload descriptor (RFC 7741 4.2): where the frame starts,
    and where the picture id and TL0PICIDX sit so a subscription can renumber them in place."""

    __slots__ = ("header_size", "picture_id", "picture_id_at", "picture_id_bits", "start", "tl0", "tl0_at")

    def __init__(self, payload: bytes) -> None:
        self.picture_id = self.tl0 = -1
        self.picture_id_at = self.tl0_at = 0
        self.picture_id_bits = 0
        first = payload[0]
        # S (start of partition) with partition index 0: the first packet of a frame.
        self.start = first & 0x10 != 0 and first & 0x07 == 0
        at = 1
        if first & 0x80:
            extension = payload[1]
            at = 2
            if extension & 0x80:  # I: picture id, 7 or 15 bits (M)
                self.picture_id_at = at
                if payload[at] & 0x80:
                    self.picture_id = (payload[at] & 0x7F) << 8 | payload[at + 1]
                    self.picture_id_bits = 15
                    at += 2
                else:
                    self.picture_id = payload[at]
                    self.picture_id_bits = 7
                    at += 1
            if extension & 0x40:  # L: TL0PICIDX
                self.tl0_at = at
                self.tl0 = payload[at]
                at += 1
            if extension & 0x30:  # T or K: one byte for both
                at += 1
        self.header_size = at


def vp8_packet_keyframe(payload: bytes, descriptor: Vp8Descriptor) -> bool:
    """The first packet of a VP8 keyframe: a frame start whose frame tag says key frame (RFC 6386 9.1)."""
    return descriptor.start and len(payload) > descriptor.header_size and payload[descriptor.header_size] & 0x01 == 0


def h264_packet_keyframe(payload: bytes) -> bool:
    """A packet a subscriber can start an H.264 picture at (RFC 6184): it carries an SPS (sent before each IDR by
    browsers and x264), or starts an IDR slice. Single NAL units, STAP-A and FU-A."""
    if not payload:
        return False
    nal = payload[0] & 0x1F
    if nal == 24:  # STAP-A: 16-bit size, then the unit
        at = 1
        while at + 2 < len(payload):
            size = payload[at] << 8 | payload[at + 1]
            if payload[at + 2] & 0x1F in (5, 7):
                return True
            at += 2 + size
        return False
    if nal == 28:  # FU-A: the start fragment of an IDR
        return len(payload) > 1 and payload[1] & 0x80 != 0 and payload[1] & 0x1F == 5
    return nal in (5, 7)
