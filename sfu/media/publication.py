"""A Publication is one track a participant sends; it fans its RTP packets out to its sinks.

Sinks are subscriptions (one per listener) and, for audio, at most one caption tap. Fan-out never awaits:
each sink sends, queues or drops on its own, so a slow subscriber cannot stall the publisher. Packets are
never assembled into frames: each one is looked at once here (codec, keyframe start, VP8 picture numbers,
audio level) and the same immutable `MediaPacket` goes to every sink.

A simulcast video publication has several layers (one RTP stream each, told apart by SSRC); every packet
goes to every sink with its layer's SSRC, and each subscription forwards the one layer chosen for it
(sfu/media/layer_allocation.py chooses, sfu/media/subscription.py switches at the target layer's keyframe).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu import tally
from sfu.media.codecs import FORWARDABLE, Vp8Descriptor, h264_packet_keyframe, vp8_packet_keyframe

logger = logging.getLogger(__name__)

KEYFRAME_REQUEST_INTERVAL = 0.5  # seconds between PLIs we send one publisher's stream, however many ask
LAYER_IDLE_S = 1.0  # a layer without packets this long is not offered to anyone (the browser stopped it)
BITRATE_WINDOW_S = 1.0


class MediaPacket:
    """One RTP packet as the publisher sent it (payload untouched), shared read-only by every sink.

    For audio a packet is one Opus frame: the caption tap reads `data` and `received_at` as it always did.
    """

    __slots__ = ("audio_level", "data", "keyframe", "marker", "picture_id", "picture_id_at", "picture_id_bits",
                 "received_at", "sequence_number", "ssrc", "timestamp", "tl0", "tl0_at")

    def __init__(self, data: bytes, sequence_number: int, timestamp: int, marker: int, ssrc: int, keyframe: bool,
                 received_at: float, audio_level: int | None = None,
                 descriptor: Vp8Descriptor | None = None) -> None:
        self.data = data  # the RTP payload (VP8: payload descriptor included)
        self.sequence_number = sequence_number
        self.timestamp = timestamp  # publisher's RTP timestamp (codec clock)
        self.marker = marker
        self.ssrc = ssrc  # the publisher's RTP stream (a simulcast layer) it came on
        self.keyframe = keyframe  # a subscriber can start here: the first packet of a keyframe (audio: always)
        self.received_at = received_at  # time.monotonic()
        self.audio_level = audio_level  # RFC 6464 level in -dBov (0 loudest, 127 silence), when the sender gave one
        if descriptor is None:
            self.picture_id = self.tl0 = -1
            self.picture_id_at = self.tl0_at = self.picture_id_bits = 0
        else:
            self.picture_id, self.picture_id_at = descriptor.picture_id, descriptor.picture_id_at
            self.picture_id_bits = descriptor.picture_id_bits
            self.tl0, self.tl0_at = descriptor.tl0, descriptor.tl0_at


EncodedFrame = MediaPacket  # the caption tap's name for what it gets (an Opus packet is a frame)


class Layer:
    """One RTP stream of a publication: its picture size (from keyframes) and measured bitrate."""

    __slots__ = (
        "_window_bytes",
        "_window_start",
        "bitrate_bps",
        "deferred_request",
        "height",
        "last_frame_at",
        "last_keyframe_request",
        "rid",
        "ssrc",
        "waiting_for_keyframe",
        "width",
    )

    def __init__(self, ssrc: int, rid: str | None, now: float, waiting_for_keyframe: bool) -> None:
        self.ssrc = ssrc
        self.rid = rid
        self.width = self.height = 0
        self.bitrate_bps = 0
        self.last_frame_at = now
        self.waiting_for_keyframe = waiting_for_keyframe
        self._window_start = now
        self._window_bytes = 0
        self.last_keyframe_request = -1e9
        self.deferred_request: asyncio.TimerHandle | None = None

    def count(self, size: int, now: float) -> None:
        self.last_frame_at = now
        self._window_bytes += size
        elapsed = now - self._window_start
        if elapsed >= BITRATE_WINDOW_S:
            self.bitrate_bps = int(self._window_bytes * 8 / elapsed)
            self._window_start, self._window_bytes = now, 0


class PacketSink(Protocol):
    def deliver(self, packet: MediaPacket) -> None: ...


FrameSink = PacketSink


class RtpPacketLike(Protocol):
    """What the receiver tap hands over (aiortc's parsed RtpPacket, after RTX unwrapping)."""

    sequence_number: int
    timestamp: int
    marker: int
    payload_type: int
    ssrc: int
    payload: bytes
    extensions: Any  # .audio_level (voice, -dBov) or None, .rtp_stream_id the rid or None


_ids = itertools.count(1)


class Publication:
    def __init__(self, participant_id: str, kind: str, send_pli: Callable[[int], None],
                 clock: Callable[[], float] = time.monotonic, source: str = "camera") -> None:
        self.id = f"pub{next(_ids)}"
        self.participant_id = participant_id
        self.kind = kind
        self.source = source  # "camera" (camera or microphone) or "screen" (a screen share, video only)
        self._send_pli = send_pli  # asks the publisher's encoder for a keyframe, for one SSRC
        self.codec: RTCRtpCodecParameters | None = None
        self._in_use: RTCRtpCodecParameters | None = None  # the codec of the last packet forwarded
        self._mime = ""  # its mime type, lower case
        self._paused = False
        self._clock = clock
        self._sinks: list[PacketSink] = []
        self._layers: dict[int, Layer] = {}  # by SSRC, in arrival order
        self.packets_received = 0
        self.keyframe_requests_sent = 0
        self.closed = False
        self.on_audio_level: Callable[[int, float], None] | None = None  # (RFC 6464 -dBov, received_at)

    @property
    def frames_received(self) -> int:
        """Audio: packets are frames. Kept for callers counting audio (metrics, tests)."""
        return self.packets_received

    @property
    def paused(self) -> bool:
        """Muted or video stopped by the facilitator: nothing is forwarded or captioned."""
        return self._paused

    @paused.setter
    def paused(self, paused: bool) -> None:
        resuming = self._paused and not paused
        self._paused = paused
        if resuming and self.kind == "video":
            # Subscribers missed the pictures the next delta frame refers to.
            for layer in self._layers.values():
                layer.waiting_for_keyframe = True
            self.request_keyframe()

    @property
    def sinks(self) -> tuple[PacketSink, ...]:
        return tuple(self._sinks)

    def add_sink(self, sink: PacketSink) -> None:
        self._sinks.append(sink)
        if self.kind == "video":
            self.request_keyframe()  # a new subscriber can show nothing until the next keyframe

    def remove_sink(self, sink: PacketSink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)

    @property
    def simulcast(self) -> bool:
        return len(self._layers) > 1

    def layers(self) -> list[Layer]:
        """The layers sending now, smallest picture first (then lowest bitrate)."""
        now = self._clock()
        active = [layer for layer in self._layers.values() if now - layer.last_frame_at < LAYER_IDLE_S]
        return sorted(active, key=lambda layer: (layer.height, layer.bitrate_bps))

    def active_layer(self, ssrc: int | None) -> Layer | None:
        """The layer with this SSRC, if it is sending now."""
        layer = self._layers.get(ssrc) if ssrc is not None else None
        return layer if layer is not None and self._clock() - layer.last_frame_at < LAYER_IDLE_S else None

    def request_keyframe(self, ssrc: int | None = None) -> None:
        """Ask the publisher for a keyframe on one layer (None: every layer): at most one PLI per layer
        per interval, and a request that arrives inside the interval is sent when it ends, not dropped."""
        if self.kind != "video" or self.closed:
            return
        layers = list(self._layers.values()) if ssrc is None else [self._layers[ssrc]] if ssrc in self._layers else []
        now = self._clock()
        for layer in layers:
            wait = layer.last_keyframe_request + KEYFRAME_REQUEST_INTERVAL - now
            if wait > 0:
                if layer.deferred_request is None:
                    layer.deferred_request = asyncio.get_running_loop().call_later(wait, self._send_deferred, layer)
                continue
            self._send_keyframe_request(layer, now)

    def _send_deferred(self, layer: Layer) -> None:
        layer.deferred_request = None
        if not self.closed:
            self._send_keyframe_request(layer, self._clock())

    def _send_keyframe_request(self, layer: Layer, now: float) -> None:
        layer.last_keyframe_request = now
        self.keyframe_requests_sent += 1
        tally.keyframe_requested()
        self._send_pli(layer.ssrc)

    def on_packet(self, packet: RtpPacketLike, codec: RTCRtpCodecParameters | None) -> None:
        """An RTP packet from the publisher's receiver, with the codec its payload type names."""
        if codec is None or codec is not self._in_use:  # past this only once per payload type change
            if codec is None or codec.mimeType.lower() not in FORWARDABLE:
                return
            self._in_use, self._mime = codec, codec.mimeType.lower()
            if self.codec is None or self.codec.payloadType != codec.payloadType:
                self.codec = codec
        self.packets_received += 1
        now = self._clock()
        payload = packet.payload
        if self.kind != "video":
            if not payload:
                return  # padding: nothing for a listener or the caption tap's decoder
            level = packet.extensions.audio_level
            forwarded = MediaPacket(payload, packet.sequence_number, packet.timestamp, packet.marker, packet.ssrc,
                                    True, now, level[1] if level is not None else None)
            if not self._paused:
                for sink in self._sinks:
                    sink.deliver(forwarded)
            if level is not None and self.on_audio_level is not None:
                self.on_audio_level(level[1], now)
            return
        layer = self._layers.get(packet.ssrc)
        if layer is None:
            layer = self._layers[packet.ssrc] = Layer(packet.ssrc, packet.extensions.rtp_stream_id, now, True)
        layer.count(len(payload), now)
        descriptor = None
        if not payload:
            keyframe = False
        elif self._mime == "video/vp8":
            descriptor = Vp8Descriptor(payload)
            keyframe = vp8_packet_keyframe(payload, descriptor)
            if keyframe:
                at = descriptor.header_size
                if payload[at + 3:at + 6] == b"\x9d\x01\x2a" and len(payload) >= at + 10:
                    layer.width = (payload[at + 6] | payload[at + 7] << 8) & 0x3FFF
                    layer.height = (payload[at + 8] | payload[at + 9] << 8) & 0x3FFF
        else:
            keyframe = h264_packet_keyframe(payload)
        if layer.waiting_for_keyframe:
            if not keyframe:
                self.request_keyframe(layer.ssrc)
                return
            layer.waiting_for_keyframe = False
        if self._paused:
            return
        forwarded = MediaPacket(payload, packet.sequence_number, packet.timestamp, packet.marker, packet.ssrc,
                                keyframe, now, None, descriptor)
        for sink in self._sinks:
            sink.deliver(forwarded)

    def close(self) -> None:
        self.closed = True
        for layer in self._layers.values():
            if layer.deferred_request is not None:
                layer.deferred_request.cancel()
        self._sinks.clear()
