"""A Publication is one track a participant sends; it fans encoded frames out to its sinks.

Sinks are subscriptions (one per listener) and, for audio, at most one decoded-audio tap. Fan-out
never awaits: each sink queues or drops on its own, so a slow subscriber cannot stall the publisher.
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

from peerwell import metrics
from sfu.codecs import FORWARDABLE, is_keyframe
from sfu.framing import AssembledFrame

logger = logging.getLogger(__name__)

KEYFRAME_REQUEST_INTERVAL = 0.5  # seconds between PLIs we send one publisher, however many ask


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded frame as the publisher sent it, shared read-only by every sink."""

    data: bytes
    timestamp: int  # publisher's RTP timestamp (codec clock)
    keyframe: bool
    received_at: float  # time.monotonic() when the frame was complete


class FrameSink(Protocol):
    def deliver(self, frame: EncodedFrame) -> None: ...


_ids = itertools.count(1)


class Publication:
    def __init__(self, participant_id: str, kind: str, send_pli: Callable[[int], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.id = f"pub{next(_ids)}"
        self.participant_id = participant_id
        self.kind = kind
        self._send_pli = send_pli  # asks the publisher's encoder for a keyframe, for one SSRC
        self.codec: RTCRtpCodecParameters | None = None
        self._paused = False
        self._clock = clock
        self._sinks: list[FrameSink] = []
        self._ssrc: int | None = None
        self._last_keyframe_request = -1e9
        self._deferred_request: asyncio.TimerHandle | None = None
        self._waiting_for_keyframe = kind == "video"
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
            self._waiting_for_keyframe = True
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

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe: at most one PLI per interval, and a request that arrives
        inside the interval is sent when it ends rather than dropped."""
        if self.kind != "video" or self._ssrc is None or self.closed:
            return
        now = self._clock()
        wait = self._last_keyframe_request + KEYFRAME_REQUEST_INTERVAL - now
        if wait > 0:
            if self._deferred_request is None:
                self._deferred_request = asyncio.get_running_loop().call_later(wait, self._send_deferred)
            return
        self._send_keyframe_request(now)

    def _send_deferred(self) -> None:
        self._deferred_request = None
        if not self.closed and self._ssrc is not None:
            self._send_keyframe_request(self._clock())

    def _send_keyframe_request(self, now: float) -> None:
        assert self._ssrc is not None
        self._last_keyframe_request = now
        self.keyframe_requests_sent += 1
        metrics.KEYFRAME_REQUESTS.inc()
        self._send_pli(self._ssrc)

    def on_assembled(self, assembled: AssembledFrame, codec: RTCRtpCodecParameters | None) -> None:
        """A complete encoded frame from the publisher's receiver, with the codec its payload type names."""
        self._ssrc = assembled.ssrc
        if codec is None or codec.mimeType.lower() not in FORWARDABLE:
            return
        if self.codec is None or self.codec.payloadType != codec.payloadType:
            self.codec = codec
        self.frames_received += 1
        keyframe = is_keyframe(codec.mimeType, assembled.data)
        if self.kind == "video":
            if assembled.discontinuity:
                self._waiting_for_keyframe = True
            if self._waiting_for_keyframe:
                if not keyframe:
                    self.request_keyframe()
                    return
                self._waiting_for_keyframe = False
        if self.paused:
            return
        frame = EncodedFrame(assembled.data, assembled.timestamp, keyframe, self._clock())
        for sink in self._sinks:
            sink.deliver(frame)
        if assembled.audio_level is not None and self.on_audio_level is not None:
            self.on_audio_level(assembled.audio_level, frame.received_at)

    def close(self) -> None:
        self.closed = True
        if self._deferred_request is not None:
            self._deferred_request.cancel()
        self._sinks.clear()
