"""A Publication is one track a participant sends; it fans encoded frames out to its sinks.

Sinks are subscriptions (one per listener) and, for audio, at most one decoded-audio tap. Fan-out
never awaits: each sink queues or drops on its own, so a slow subscriber cannot stall the publisher.

A simulcast video publication has several layers (one RTP stream each, told apart by SSRC); every frame
goes to every sink with its layer's SSRC, and each subscription forwards the one layer chosen for it
(sfu/media/layer_allocation.py chooses, sfu/media/subscription.py switches at the target layer's keyframe).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu import tally
from sfu.aiortc_adapter.framing import AssembledFrame
from sfu.media.codecs import FORWARDABLE, is_keyframe, vp8_keyframe_size

logger = logging.getLogger(__name__)

KEYFRAME_REQUEST_INTERVAL = 0.5  # seconds between PLIs we send one publisher's stream, however many ask
LAYER_IDLE_S = 1.0  # a layer without frames this long is not offered to anyone (the browser stopped it)
BITRATE_WINDOW_S = 1.0


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded frame as the publisher sent it, shared read-only by every sink."""

    data: bytes
    timestamp: int  # publisher's RTP timestamp (codec clock)
    keyframe: bool
    received_at: float  # time.monotonic() when the frame was complete
    ssrc: int = 0  # the publisher's RTP stream (a simulcast layer) it came on


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


class FrameSink(Protocol):
    def deliver(self, frame: EncodedFrame) -> None: ...


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
        self._paused = False
        self._clock = clock
        self._sinks: list[FrameSink] = []
        self._layers: dict[int, Layer] = {}  # by SSRC, in arrival order
        self.frames_received = 0
        self.keyframe_requests_sent = 0
        self.closed = False
        self.on_audio_level: Callable[[int, float], None] | None = None  # (RFC 6464 -dBov, received_at)

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
    def sinks(self) -> tuple[FrameSink, ...]:
        return tuple(self._sinks)

    def add_sink(self, sink: FrameSink) -> None:
        self._sinks.append(sink)
        if self.kind == "video":
            self.request_keyframe()  # a new subscriber can show nothing until the next keyframe

    def remove_sink(self, sink: FrameSink) -> None:
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

    def on_assembled(self, assembled: AssembledFrame, codec: RTCRtpCodecParameters | None) -> None:
        """A complete encoded frame from the publisher's receiver, with the codec its payload type names."""
        if codec is None or codec.mimeType.lower() not in FORWARDABLE:
            return
        if self.codec is None or self.codec.payloadType != codec.payloadType:
            self.codec = codec
        self.frames_received += 1
        keyframe = is_keyframe(codec.mimeType, assembled.data)
        now = self._clock()
        if self.kind == "video":
            layer = self._layers.get(assembled.ssrc)
            if layer is None:
                layer = self._layers[assembled.ssrc] = Layer(assembled.ssrc, assembled.rid, now, True)
            layer.count(len(assembled.data), now)
            if assembled.discontinuity:
                layer.waiting_for_keyframe = True
            if keyframe:
                size = vp8_keyframe_size(assembled.data)
                if size is not None:
                    layer.width, layer.height = size
            if layer.waiting_for_keyframe:
                if not keyframe:
                    self.request_keyframe(layer.ssrc)
                    return
                layer.waiting_for_keyframe = False
        if self.paused:
            return
        frame = EncodedFrame(assembled.data, assembled.timestamp, keyframe, now, assembled.ssrc)
        for sink in self._sinks:
            sink.deliver(frame)
        if assembled.audio_level is not None and self.on_audio_level is not None:
            self.on_audio_level(assembled.audio_level, frame.received_at)

    def close(self) -> None:
        self.closed = True
        for layer in self._layers.values():
            if layer.deferred_request is not None:
                layer.deferred_request.cancel()
        self._sinks.clear()
