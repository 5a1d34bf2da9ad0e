"""A Subscription is one forwarded copy of a publication, as the track of one subscriber's RTP sender.

It yields ``av.Packet`` objects built from the publisher's encoded frames, which aiortc's sender only
packetizes: no decode, no encode. Each subscription has its own bounded queue; when a subscriber
cannot keep up, frames are dropped for that subscriber alone (video: the queue is flushed and the
copy resumes at the next keyframe, which it requests), never blocking the publisher or anyone else.

Video layers: the subscription forwards one of its publication's layers (`select`, decided by
sfu/media/layer_allocation.py), or none while the listener is not shown the video or cannot carry it. A
switch waits for the target layer's keyframe, and RTP timestamps are rebased there so the subscriber's
decoder sees one continuous stream (aiortc's sender numbers the packets itself).

A subscription belongs to one sender for the life of the peer connection (aiortc's sender stops for
good when its track ends), so when a publisher leaves the subscription goes idle and may later be
rebound to another publication of the same kind and codec.
"""

from __future__ import annotations

import asyncio
import collections
from fractions import Fraction

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from sfu import tally
from sfu.media.publication import EncodedFrame, Publication

VIDEO_QUEUE_FRAMES = 30  # ~1 s at 30 fps; beyond that the subscriber is too slow to be worth queueing for
AUDIO_QUEUE_FRAMES = 25  # 0.5 s of 20 ms Opus frames
_TS_MOD = 1 << 32
_ANY = -1  # no layer chosen yet: forward the first layer that brings a keyframe


class Subscription(MediaStreamTrack):
    def __init__(self, kind: str, subscriber_id: str, publication: Publication | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.subscriber_id = subscriber_id
        self.publication: Publication | None = None
        self._queue: collections.deque[EncodedFrame] = collections.deque()
        self._limit = VIDEO_QUEUE_FRAMES if kind == "video" else AUDIO_QUEUE_FRAMES
        self._ready = asyncio.Event()
        self._waiting_for_keyframe = kind == "video"
        self._time_base = Fraction(1, 90000)
        self._clock_rate = 90000
        self.target: int | None = _ANY  # SSRC of the layer to forward; None: paused (nothing forwarded)
        self.current: int | None = None  # SSRC of the layer being forwarded
        self._ts_offset = 0
        self._last_timestamp: int | None = None  # last forwarded (rebased) timestamp and its arrival
        self._last_received_at = 0.0
        self.layer_switches = 0
        self.frames_forwarded = 0
        self.frames_dropped = 0
        if publication is not None:
            self.bind(publication)

    def bind(self, publication: Publication) -> None:
        self.unbind()
        self.publication = publication
        if publication.codec is not None:
            self._time_base = Fraction(1, publication.codec.clockRate)
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

    def deliver(self, frame: EncodedFrame) -> None:
        if self.readyState != "live" or self.target is None:
            return
        if frame.ssrc != self.current:
            if self.target != _ANY and frame.ssrc != self.target:
                return  # another layer's frames: not ours (not a loss either)
            if not frame.keyframe:
                if self.current is None:  # nothing forwarded yet: a delta we cannot use
                    self.frames_dropped += 1
                    tally.dropped(self.kind)
                if self.publication is not None and self.kind == "video":
                    self.publication.request_keyframe(frame.ssrc)  # again, rate-limited: a PLI may be lost
                return
            self._switch_to(frame)
        elif self._waiting_for_keyframe and self.target not in (_ANY, frame.ssrc) and frame.keyframe:
            return  # resuming toward another layer: wait for its keyframe
        if self._waiting_for_keyframe:
            if not frame.keyframe:
                self.frames_dropped += 1
                tally.dropped(self.kind)
                if self.publication is not None:
                    self.publication.request_keyframe(frame.ssrc)
                return
            self._waiting_for_keyframe = False
        if len(self._queue) >= self._limit:
            if self.kind == "video":
                self.frames_dropped += len(self._queue) + 1
                tally.dropped(self.kind, len(self._queue) + 1)
                self._queue.clear()
                self._waiting_for_keyframe = True
                self.request_keyframe()
                return
            self._queue.popleft()
            self.frames_dropped += 1
            tally.dropped(self.kind)
        self._queue.append(frame)
        self._ready.set()

    def _switch_to(self, frame: EncodedFrame) -> None:
        """Start forwarding `frame`'s layer at this keyframe, its timestamps continuing ours."""
        if self.current is not None:
            self.layer_switches += 1
        self.current = frame.ssrc
        self._queue.clear()  # the old layer's queued frames lead nowhere now
        self._waiting_for_keyframe = False
        if self._last_timestamp is None:
            self._ts_offset = 0
        else:
            step = max(1, round((frame.received_at - self._last_received_at) * self._clock_rate))
            self._ts_offset = (self._last_timestamp + step - frame.timestamp) % _TS_MOD

    def request_keyframe(self) -> None:
        """Called when the subscriber sends PLI/FIR, or when we dropped its frames: for the layer it
        gets or is switching to."""
        if self.publication is None:
            return
        wanted = self.target if self.target not in (None, _ANY) else self.current
        self.publication.request_keyframe(wanted)

    async def recv(self) -> av.Packet:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        frame = self._queue.popleft()
        packet = av.Packet(frame.data)
        timestamp = (frame.timestamp + self._ts_offset) % _TS_MOD if self._ts_offset else frame.timestamp
        self._last_timestamp, self._last_received_at = timestamp, frame.received_at
        packet.pts = timestamp
        packet.time_base = self._time_base
        self.frames_forwarded += 1
        tally.forwarded(self.kind, len(frame.data))
        return packet

    def stop(self) -> None:
        self.unbind()
        super().stop()
        self._ready.set()  # wake a pending recv() so the sender's loop can end
