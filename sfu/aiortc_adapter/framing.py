"""Reassemble RTP packets into encoded frames for forwarding, as soon as each frame is complete.

aiortc's own JitterBuffer emits a video frame only when the *next* frame's first packet arrives
(one frame interval of added delay) and holds four audio packets before releasing one. A forwarding
unit needs neither: the subscriber's browser runs its own jitter buffer. So video frames are emitted
when their marker-bit packet arrives and every packet since the previous frame is present, and audio
packets (one Opus frame each) are emitted on arrival.

Loss: aiortc's receiver keeps sending NACKs, and retransmissions (unwrapped from RTX) arrive here like
any packet, completing the frame. A frame still incomplete after ``loss_timeout`` while newer packets
keep coming is abandoned; the next emitted frame is marked ``discontinuity`` so the publication can
wait for a keyframe, and the caller is told to send a PLI.

The contract with aiortc (aiortc 1.16.0, checked by ``problems()``): receive.tap_receiver puts one of these
assemblers where RTCRtpReceiver keeps its private JitterBuffer (``JITTER_BUFFER``); the receiver's
``_handle_rtp_packet`` depayloads each packet into the private ``RtpPacket._data``, calls ``add(packet)`` and
unpacks ``(pli_flag, encoded_frame)``. The assemblers emit frames themselves and always return no frame, so
aiortc never has one to decode.
"""

from __future__ import annotations

import dis
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc import RTCRtpReceiver

JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"  # where RTCRtpReceiver keeps the buffer these stand in for


class RtpLike(Protocol):
    sequence_number: int
    timestamp: int
    marker: int
    payload_type: int
    ssrc: int
    _data: bytes  # depayloaded by aiortc before the jitter buffer
    extensions: Any  # parsed header extensions; .audio_level is (voice, dBov) or None, .rtp_stream_id a rid


@dataclass(frozen=True, slots=True)
class AssembledFrame:
    data: bytes
    timestamp: int  # RTP timestamp of the publisher's stream
    payload_type: int
    ssrc: int
    discontinuity: bool  # frames were lost before this one
    audio_level: int | None = None  # RFC 6464 level in -dBov (0 loudest, 127 silence), when the sender gave one
    rid: str | None = None  # the simulcast layer (RTP stream id) this frame belongs to, when the sender named one


FrameSink = Callable[[AssembledFrame], None]

_SEQ_MOD = 1 << 16
_WINDOW = 1024  # packets kept waiting for completion; a 1080p keyframe is ~300


def seq_after(a: int, b: int) -> bool:
    """True if sequence number a comes after b (RFC 3550 wrap-around arithmetic)."""
    return a != b and ((a - b) % _SEQ_MOD) < _SEQ_MOD // 2


class AudioFrameAssembler:
    """One packet is one frame; late (reordered) packets are dropped rather than sent backwards."""

    def __init__(self, emit: FrameSink) -> None:
        self._emit = emit
        self._last_seq: int | None = None
        self._pending_gap = False

    def add(self, packet: RtpLike) -> tuple[bool, None]:
        seq = packet.sequence_number
        if self._last_seq is not None:
            if not seq_after(seq, self._last_seq):
                return False, None
            if (seq - self._last_seq) % _SEQ_MOD != 1:
                self._pending_gap = True
        self._last_seq = seq
        if packet._data:
            level = packet.extensions.audio_level if packet.extensions is not None else None
            self._emit(
                AssembledFrame(packet._data, packet.timestamp, packet.payload_type, packet.ssrc,
                               self._pending_gap, level[1] if level is not None else None)
            )
            self._pending_gap = False
        return False, None


MAX_VIDEO_STREAMS = 4  # SSRCs one video receiver assembles: three simulcast layers and a spare


class VideoStreamsAssembler:
    """One VideoFrameAssembler per SSRC: a simulcast publisher sends each layer as its own RTP stream
    (own SSRC, sequence numbers and timestamps) on one m-line, interleaved. Each stream's rid is learned
    from the first packet that names it (browsers stop repeating it once the stream is acknowledged)."""

    def __init__(self, emit: FrameSink, loss_timeout: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._emit = emit
        self._loss_timeout = loss_timeout
        self._clock = clock
        self._streams: dict[int, VideoFrameAssembler] = {}
        self.rids: dict[int, str] = {}

    def add(self, packet: RtpLike) -> tuple[bool, None]:
        ssrc = packet.ssrc
        stream = self._streams.get(ssrc)
        if stream is None:
            if len(self._streams) >= MAX_VIDEO_STREAMS:
                return False, None  # more streams than any simulcast publisher sends: ignore the extra
            stream = self._streams[ssrc] = VideoFrameAssembler(self._emit, self._loss_timeout, self._clock)
        rid = packet.extensions.rtp_stream_id if packet.extensions is not None else None
        if rid and ssrc not in self.rids:
            self.rids[ssrc] = rid
            stream.rid = rid
        return stream.add(packet)


class VideoFrameAssembler:
    """Emits each video frame once its packets, up to the marker bit, are all present."""

    def __init__(self, emit: FrameSink, loss_timeout: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._emit = emit
        self.rid: str | None = None
        self._loss_timeout = loss_timeout
        self._clock = clock
        self._packets: dict[int, RtpLike] = {}
        self._arrival: dict[int, float] = {}
        self._next_start: int | None = None  # first sequence number of the next frame to emit
        self._discontinuity = False
        self.frames_emitted = 0
        self.frames_abandoned = 0

    def add(self, packet: RtpLike) -> tuple[bool, None]:
        seq = packet.sequence_number
        if self._next_start is None:
            # No frame boundary known yet: the first marker bit gives one.
            if packet.marker:
                self._next_start = (seq + 1) % _SEQ_MOD
            return False, None
        if seq != self._next_start and not seq_after(seq, self._next_start):
            return False, None  # belongs to a frame already emitted or abandoned
        if seq not in self._packets:
            self._packets[seq] = packet
            self._arrival[seq] = self._clock()
        pli = False
        while self._emit_next_frame():
            pass
        if self._packets and self._stalled():
            pli = self._abandon_oldest_frame()
            while self._emit_next_frame():
                pass
        if len(self._packets) > _WINDOW:
            self._reset()
            pli = True
        return pli, None

    def _emit_next_frame(self) -> bool:
        start = self._next_start
        assert start is not None
        first = self._packets.get(start)
        if first is None:
            return False
        parts: list[bytes] = []
        seq = start
        while True:
            packet = self._packets.get(seq)
            if packet is None or packet.timestamp != first.timestamp:
                return False  # a gap: wait for the retransmission
            parts.append(packet._data)
            if packet.marker:
                break
            seq = (seq + 1) % _SEQ_MOD
        end = seq
        seq = start
        while True:
            del self._packets[seq]
            del self._arrival[seq]
            if seq == end:
                break
            seq = (seq + 1) % _SEQ_MOD
        self._next_start = (end + 1) % _SEQ_MOD
        self.frames_emitted += 1
        self._emit(AssembledFrame(b"".join(parts), first.timestamp, first.payload_type, first.ssrc,
                                  self._discontinuity, rid=self.rid))
        self._discontinuity = False
        return True

    def _stalled(self) -> bool:
        oldest = min(self._arrival.values())
        return self._clock() - oldest > self._loss_timeout

    def _abandon_oldest_frame(self) -> bool:
        """Skip past the first marker still waiting: that frame cannot be completed in time."""
        assert self._next_start is not None
        start = self._next_start
        markers = [s for s, p in self._packets.items() if p.marker]
        if not markers:
            return False
        end = min(markers, key=lambda s: (s - start) % _SEQ_MOD)
        for s in list(self._packets):
            if (s - start) % _SEQ_MOD <= (end - start) % _SEQ_MOD:
                del self._packets[s]
                del self._arrival[s]
        self._next_start = (end + 1) % _SEQ_MOD
        self._discontinuity = True
        self.frames_abandoned += 1
        return True

    def _reset(self) -> None:
        self._packets.clear()
        self._arrival.clear()
        self._next_start = None
        self._discontinuity = True


def problems() -> list[str]:
    """What the assemblers rely on: _handle_rtp_packet sets packet._data, then feeds `jitter_buffer.add(packet)`
    (other .add() calls there don't count) and unpacks its result as (pli_flag, encoded_frame)."""
    found: list[str] = []
    instructions = list(dis.get_instructions(RTCRtpReceiver._handle_rtp_packet))
    feeds = [k for k, (a, b) in enumerate(itertools.pairwise(instructions))
             if a.argval == JITTER_BUFFER and b.argval == "add"]
    if not feeds:
        found.append("RTCRtpReceiver._handle_rtp_packet no longer feeds its jitter buffer via add()")
    elif not any(i.opname == "UNPACK_SEQUENCE" and i.argval == 2 for i in instructions[feeds[0]:feeds[0] + 8]):
        found.append("RTCRtpReceiver._handle_rtp_packet no longer takes (pli_flag, frame) from its jitter buffer")
    if not any(i.opname == "STORE_ATTR" and i.argval == "_data" for i in instructions):
        found.append("RTCRtpReceiver._handle_rtp_packet no longer depayloads into packet._data")
    return found
