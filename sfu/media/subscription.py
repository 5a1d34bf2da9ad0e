"""A Subscription is one forwarded copy of a publication, to one subscriber: RTP packets in, RTP packets out.

Each packet of the layer it forwards is renumbered for the subscriber (sequence number, timestamp and, for VP8,
picture id and TL0PICIDX) and written straight out by the sender's `RtpOutlet` (sfu/aiortc_adapter/outlet.py):
no frames are assembled and nothing is re-packetized. While the outlet cannot send (not connected yet, or the
socket is not draining), packets wait in the subscription's own bounded queue; when that overflows the
subscriber is too slow and loses packets alone (video: the queue is flushed and the copy resumes at the next
keyframe, which it requests; audio: the oldest packet goes), never blocking the publisher or anyone else.

Numbering: the subscriber sees one continuous stream. Sequence numbers are rebased whenever forwarding starts
again (first packet, a layer switch, a resume after drops), so the subscriber sees no gap it would NACK in vain;
within a run, a packet keeps its distance from the run's first one, so a retransmission the server receives late
still lands in its place. Timestamps and VP8 picture numbers are rebased only when the source stream changes (a
layer switch, a new publication on the slot): each layer has its own clock origin and picture ids at the
publisher, so the first forwarded packet of the new layer gets the last forwarded timestamp plus the time
between the two packets' arrivals (in the codec clock), and picture id / TL0PICIDX continue by one.

Video layers: the subscription forwards one of its publication's layers (`select`, decided by
sfu/media/layer_allocation.py), or none while the listener is not shown the video or cannot carry it. A switch
waits for the target layer's first keyframe packet; until then the old layer goes on.

The sender's track is this object, but it never yields anything (`recv` waits until the subscription stops):
aiortc's sender keeps answering RTCP and sending reports, the outlet does the sending.
"""

from __future__ import annotations

import asyncio
import collections

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from sfu import tally
from sfu.aiortc_adapter.outlet import RtpOutlet
from sfu.media.publication import MediaPacket, Publication

VIDEO_QUEUE_PACKETS = 300  # ~1 s of the largest layer; beyond that the subscriber is too slow to queue for
AUDIO_QUEUE_PACKETS = 25  # 0.5 s of 20 ms Opus packets
VIDEO_QUEUE_FRAMES = VIDEO_QUEUE_PACKETS  # older names, kept for callers
AUDIO_QUEUE_FRAMES = AUDIO_QUEUE_PACKETS
_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32
_ANY = -1  # no layer chosen yet: forward the first layer that brings a keyframe

# (sequence number, timestamp, marker, payload, audio level): a packet renumbered, waiting for the outlet
Outgoing = tuple[int, int, int, bytes, int | None]


class Subscription(MediaStreamTrack):
    def __init__(self, kind: str, subscriber_id: str, publication: Publication | None = None,
                 outlet: RtpOutlet | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.subscriber_id = subscriber_id
        self.publication: Publication | None = None
        self.outlet = outlet
        self._queue: collections.deque[Outgoing] = collections.deque()
        self._limit = VIDEO_QUEUE_PACKETS if kind == "video" else AUDIO_QUEUE_PACKETS
        self._stopped = asyncio.Event()
        self._live = True
        self._waiting_for_keyframe = kind == "video"
        self._clock_rate = 90000
        self.target: int | None = _ANY  # SSRC of the layer to forward; None: paused (nothing forwarded)
        self.current: int | None = None  # SSRC of the layer being forwarded
        self._source: int | None = None  # SSRC whose clock and picture ids the offsets below follow
        self._run_start = 0  # the source sequence number the current run started at
        self._seq_offset = 0
        self._ts_offset = 0
        self._pid_offset = 0
        self._tl0_offset = 0
        self._last_seq: int | None = None  # last forwarded (renumbered) sequence number, timestamp, ...
        self._last_timestamp = 0
        self._last_received_at = 0.0
        self._last_pid = -1
        self._last_tl0 = -1
        self.layer_switches = 0
        self.packets_forwarded = 0
        self.packets_dropped = 0
        if publication is not None:
            self.bind(publication)

    # Counts under their older names (metrics: forwarded / dropped over the live copies).
    @property
    def frames_forwarded(self) -> int:
        return self.packets_forwarded

    @property
    def frames_dropped(self) -> int:
        return self.packets_dropped

    def bind(self, publication: Publication) -> None:
        self.unbind()
        self.publication = publication
        if publication.codec is not None:
            self._clock_rate = publication.codec.clockRate
        self._waiting_for_keyframe = self.kind == "video"
        self.target, self.current = _ANY, None
        publication.add_sink(self)

    def unbind(self) -> None:
        if self.publication is not None:
            self.publication.remove_sink(self)
        self.publication = None
        self._queue.clear()

    def select(self, ssrc: int | None) -> None:
        """Forward the layer with this SSRC from its next keyframe on; None pauses the video."""
        if ssrc == self.target or self.kind != "video":
            return
        self.target = ssrc
        if ssrc is None:
            self._queue.clear()
            self._waiting_for_keyframe = True
            return
        if ssrc != self.current or self._waiting_for_keyframe:
            self.request_keyframe()

    @property
    def paused(self) -> bool:
        return self.target is None

    def deliver(self, packet: MediaPacket) -> None:
        if self.target is None or not self._live:
            return
        if packet.ssrc != self.current:
            if self.target != _ANY and packet.ssrc != self.target:
                return  # another layer's packets: not ours (not a loss either)
            if not packet.keyframe:
                if self.current is None:  # nothing forwarded yet: a packet we cannot use
                    self._drop()
                if self.publication is not None and self.kind == "video":
                    self.publication.request_keyframe(packet.ssrc)  # again, rate-limited: a PLI may be lost
                return
            self._start_run(packet)
        elif self._waiting_for_keyframe:
            if not packet.keyframe or self.target not in (_ANY, packet.ssrc):
                if not packet.keyframe:
                    self._drop()
                    if self.publication is not None:
                        self.publication.request_keyframe(packet.ssrc)
                return  # resuming toward another layer: wait for its keyframe
            self._start_run(packet)
        elif (packet.sequence_number - self._run_start) % _SEQ_MOD >= _SEQ_MOD // 2:
            return  # from before this run (a late retransmission): the subscriber's stream has moved on
        self._forward(packet)

    def _drop(self) -> None:
        self.packets_dropped += 1
        tally.dropped(self.kind)

    def _start_run(self, packet: MediaPacket) -> None:
        """Forward from `packet` (a keyframe start, or any audio packet after a gap in forwarding) on."""
        if packet.ssrc != self.current:
            if self.current is not None:
                self.layer_switches += 1
            self._queue.clear()  # the old layer's queued packets lead nowhere now
        self.current = packet.ssrc
        self._waiting_for_keyframe = False
        self._run_start = packet.sequence_number
        self._seq_offset = 0 if self._last_seq is None else (self._last_seq + 1 - packet.sequence_number) % _SEQ_MOD
        if packet.ssrc == self._source:
            return
        self._source = packet.ssrc
        if self._last_seq is None:
            self._ts_offset = 0
        else:
            step = max(1, round((packet.received_at - self._last_received_at) * self._clock_rate))
            self._ts_offset = (self._last_timestamp + step - packet.timestamp) % _TS_MOD
        # Picture ids continue from the last one forwarded (the decoder sees one picture sequence).
        self._pid_offset = 0 if self._last_pid < 0 or packet.picture_id < 0 else self._last_pid + 1 - packet.picture_id
        self._tl0_offset = 0 if self._last_tl0 < 0 or packet.tl0 < 0 else self._last_tl0 + 1 - packet.tl0

    def _forward(self, packet: MediaPacket) -> None:
        seq = (packet.sequence_number + self._seq_offset) % _SEQ_MOD
        timestamp = (packet.timestamp + self._ts_offset) % _TS_MOD
        payload = packet.data
        if packet.picture_id >= 0:
            payload = self._renumber_vp8(packet, payload)
        if self._last_seq is None or (seq - self._last_seq) % _SEQ_MOD < _SEQ_MOD // 2:
            self._last_seq = seq
            self._last_timestamp, self._last_received_at = timestamp, packet.received_at
        outlet = self.outlet
        if not self._queue and outlet is not None and outlet.send(seq, timestamp, packet.marker, payload,
                                                                   packet.audio_level):
            self.packets_forwarded += 1
            tally.forwarded(self.kind, len(payload))
            return
        self._enqueue((seq, timestamp, packet.marker, payload, packet.audio_level))

    def _renumber_vp8(self, packet: MediaPacket, payload: bytes) -> bytes:
        if packet.picture_id_bits == 15:
            picture_id = (packet.picture_id + self._pid_offset) & 0x7FFF
        else:
            picture_id = (packet.picture_id + self._pid_offset) & 0x7F
        self._last_pid = picture_id
        tl0 = -1
        if packet.tl0 >= 0:
            tl0 = self._last_tl0 = (packet.tl0 + self._tl0_offset) & 0xFF
        if not self._pid_offset and not self._tl0_offset:
            return payload  # the publisher's own numbers: share its bytes
        data = bytearray(payload)
        at = packet.picture_id_at
        if packet.picture_id_bits == 15:
            data[at], data[at + 1] = 0x80 | picture_id >> 8, picture_id & 0xFF
        else:
            data[at] = picture_id
        if tl0 >= 0:
            data[packet.tl0_at] = tl0
        return bytes(data)

    def _enqueue(self, outgoing: Outgoing) -> None:
        if len(self._queue) >= self._limit:
            if self.kind == "video":
                dropped = len(self._queue) + 1
                self.packets_dropped += dropped
                tally.dropped(self.kind, dropped)
                self._queue.clear()
                self._waiting_for_keyframe = True
                self.request_keyframe()
                return
            self._queue.popleft()
            self._drop()
        self._queue.append(outgoing)
        self.flush()

    def flush(self) -> int:
        """Send what waits in the queue while the outlet takes it; how many packets went."""
        outlet = self.outlet
        sent = 0
        while self._queue and outlet is not None and outlet.send(*self._queue[0]):
            tally.forwarded(self.kind, len(self._queue.popleft()[3]))
            sent += 1
        self.packets_forwarded += sent
        return sent

    def request_keyframe(self) -> None:
        """Called when the subscriber sends PLI/FIR, or when we dropped its packets: for the layer it
        gets or is switching to."""
        if self.publication is None:
            return
        wanted = self.target if self.target not in (None, _ANY) else self.current
        self.publication.request_keyframe(wanted)

    async def recv(self) -> None:  # type: ignore[override]
        """The sender's track yields nothing: the outlet sends. Ends (MediaStreamError) when stopped."""
        await self._stopped.wait()
        raise MediaStreamError

    def stop(self) -> None:
        self.unbind()
        super().stop()
        self._live = False
        self._stopped.set()  # wake the sender's pending recv() so its loop can end
