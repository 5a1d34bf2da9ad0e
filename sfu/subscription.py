"""A Subscription is one forwarded copy of a publication, as the track of one subscriber's RTP sender.

It yields ``av.Packet`` objects built from the publisher's encoded frames, which aiortc's sender only
packetizes: no decode, no encode. Each subscription has its own bounded queue; when a subscriber
cannot keep up, frames are dropped for that subscriber alone (video: the queue is flushed and the
copy resumes at the next keyframe, which it requests), never blocking the publisher or anyone else.

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

from peerwell import metrics
from sfu.publication import EncodedFrame, Publication

VIDEO_QUEUE_FRAMES = 30  # ~1 s at 30 fps; beyond that the subscriber is too slow to be worth queueing for
AUDIO_QUEUE_FRAMES = 25  # 0.5 s of 20 ms Opus frames


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
        self.frames_forwarded = 0
        self.frames_dropped = 0
        if publication is not None:
            self.bind(publication)

    def bind(self, publication: Publication) -> None:
        self.unbind()
        self.publication = publication
        if publication.codec is not None:
            self._time_base = Fraction(1, publication.codec.clockRate)
        self._waiting_for_keyframe = self.kind == "video"
        publication.add_sink(self)

    def unbind(self) -> None:
        if self.publication is not None:
            self.publication.remove_sink(self)
        self.publication = None
        self._queue.clear()

    def deliver(self, frame: EncodedFrame) -> None:
        if self.readyState != "live":
            return
        if self._waiting_for_keyframe:
            if not frame.keyframe:
                self.frames_dropped += 1
                metrics.dropped(self.kind)
                return
            self._waiting_for_keyframe = False
        if len(self._queue) >= self._limit:
            if self.kind == "video":
                self.frames_dropped += len(self._queue) + 1
                metrics.dropped(self.kind, len(self._queue) + 1)
                self._queue.clear()
                self._waiting_for_keyframe = True
                self.request_keyframe()
                return
            self._queue.popleft()
            self.frames_dropped += 1
            metrics.dropped(self.kind)
        self._queue.append(frame)
        self._ready.set()

    def request_keyframe(self) -> None:
        """Called when the subscriber sends PLI/FIR, or when we dropped its frames."""
        if self.publication is not None:
            self.publication.request_keyframe()

    async def recv(self) -> av.Packet:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        frame = self._queue.popleft()
        packet = av.Packet(frame.data)
        packet.pts = frame.timestamp
        packet.time_base = self._time_base
        self.frames_forwarded += 1
        metrics.forwarded(self.kind, len(frame.data))
        return packet

    def stop(self) -> None:
        self.unbind()
        super().stop()
        self._ready.set()  # wake a pending recv() so the sender's loop can end
