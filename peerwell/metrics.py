"""Prometheus metrics: counts and timings only, never ids, names, captions or chat.

Two kinds:
- Event counters and histograms below, bumped by one line where the event happens (forwarding, drops,
  keyframe requests, captions, subtitles, safety alerts). They live in prometheus_client's process-wide
  registry, so they are monotonic for the life of the process; the per-frame ones are plain integers
  (`MediaTally`) to keep the forwarding path cheap.
- `LiveCollector`: gauges read at scrape time from state the server already keeps (rooms, seats, live
  subscriptions, the caption scheduler's own stats()). Nothing is duplicated or kept twice.

Label values are fixed small sets (kind = audio|video, source = caption|chat, ...), never a room or a person.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY as PROCESS_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from sfu.signaling import Rooms

KEYFRAME_REQUESTS = Counter("peerwell_keyframe_requests", "PLIs sent to publishers (after rate limiting)")
CAPTION_LATENCY = Histogram(
    "peerwell_caption_latency_seconds", "From the end of the captioned audio to the caption going out",
    ["final"], buckets=(0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0))
TRANSLATION_LATENCY = Histogram(
    "peerwell_translation_seconds", "From a final caption to its subtitles sent (every chosen language)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0))
SAFETY_ALERTS = Counter("peerwell_safety_alerts", "Safety alerts raised to facilitators (counts only)", ["source"])

class MediaTally:
    """Forwarding counts, bumped once per frame on the event loop (the only thread that forwards), so plain
    integers do: a prometheus_client Counter takes a lock, ~2.5 us for the two per frame, against ~0.1 us
    here (measured with timeit on this shared machine). Exposed as counters by `MediaTallyCollector` at scrape time."""

    def __init__(self) -> None:
        self.frames = {"audio": 0, "video": 0}
        self.bytes = {"audio": 0, "video": 0}
        self.dropped = {"audio": 0, "video": 0}


TALLY = MediaTally()


def forwarded(kind: str, size: int) -> None:
    TALLY.frames[kind] += 1
    TALLY.bytes[kind] += size


def dropped(kind: str, count: int = 1) -> None:
    TALLY.dropped[kind] += count


class MediaTallyCollector(Collector):
    def collect(self) -> Iterator[Any]:
        for name, help_text, values in (
                ("peerwell_forwarded_frames", "Encoded frames handed to subscribers' RTP senders (audio: one RTP "
                 "packet each)", TALLY.frames),
                ("peerwell_forwarded_bytes", "Payload bytes of forwarded frames (before RTP/SRTP)", TALLY.bytes),
                ("peerwell_dropped_frames", "Frames not forwarded to one subscriber: its queue was full or it "
                 "waited for a keyframe", TALLY.dropped)):
            family = CounterMetricFamily(name, help_text, labels=["kind"])
            for kind, value in values.items():
                family.add_metric([kind], value)
            yield family


PROCESS_REGISTRY.register(MediaTallyCollector())


def caption_sent(final: bool, audio_end: float, now: float) -> None:
    """`audio_end` and `now` in the same (room) clock."""
    CAPTION_LATENCY.labels("true" if final else "false").observe(max(0.0, now - audio_end))


async def timed_translation(work: Awaitable[Any]) -> Any:
    started = time.monotonic()
    try:
        return await work
    finally:
        TRANSLATION_LATENCY.observe(time.monotonic() - started)


class LiveCollector(Collector):
    """Gauges from the running server's own state, read when Prometheus scrapes."""

    def __init__(self, rooms: Rooms, caption_stats: Callable[[], dict[str, int | float]] | None = None,
                 accepting: Callable[[], bool] = lambda: True) -> None:
        self.rooms = rooms
        self.caption_stats = caption_stats
        self.accepting = accepting

    def collect(self) -> Iterator[Any]:
        rooms = list(self.rooms.rooms.values())
        yield GaugeMetricFamily("peerwell_rooms", "Rooms with someone in them", value=len(rooms))
        seats = GaugeMetricFamily("peerwell_participants", "People in rooms", labels=["state"])
        seats.add_metric(["admitted"], sum(len(r.participants) for r in rooms))
        seats.add_metric(["lobby"], sum(len(r.lobby) for r in rooms))
        yield seats
        yield GaugeMetricFamily("peerwell_accepting_joins", "1 while the server takes new joins",
                                value=1 if self.accepting() else 0)
        forwarded = dropped = tracks = 0
        for room in rooms:
            for participant in room.participants.values():
                for subscription in _subscriptions(participant):
                    tracks += 1
                    forwarded += subscription.frames_forwarded
                    dropped += subscription.frames_dropped
        yield GaugeMetricFamily("peerwell_forwarded_tracks", "Tracks being forwarded now (one per listener per "
                                "published track)", value=tracks)
        fraction = GaugeMetricFamily(
            "peerwell_delivered_fraction", "Frames forwarded / offered over the subscriptions live now (1 = none "
            "dropped); for a rate use peerwell_forwarded_frames_total and peerwell_dropped_frames_total")
        fraction.add_metric([], forwarded / (forwarded + dropped) if forwarded + dropped else 1.0)
        yield fraction
        if self.caption_stats is not None:
            stats = self.caption_stats()
            yield GaugeMetricFamily("peerwell_transcription_backlog_jobs", "Decode jobs waiting for a worker",
                                    value=stats.get("pending_jobs", 0))
            shed = CounterMetricFamily("peerwell_transcription_shed", "Transcription work skipped to keep up "
                                       "(partials coarsened, translations skipped, finals dropped)", labels=["work"])
            for label, key in (("partial", "partials_shed"), ("translation", "translations_shed"),
                               ("final", "finals_dropped")):
                shed.add_metric([label], stats.get(key, 0))
            yield shed
            yield CounterMetricFamily("peerwell_transcription_decodes", "Whisper decodes run",
                                      value=stats.get("decodes_run", 0))


def _subscriptions(participant: Any) -> Iterator[Any]:
    # The forwarding slots of the participant's media session (sfu/peer_session.py);
    # tests/test_observability.py checks this gauge moves, so a rename there shows up.
    for slot in getattr(participant.media, "slots", ()):
        subscription = getattr(slot, "subscription", None)
        if subscription is not None and subscription.publication is not None:
            yield subscription


def exposition(live: CollectorRegistry) -> bytes:
    """The process-wide counters followed by this server's live gauges, in the text format."""
    return generate_latest(PROCESS_REGISTRY) + generate_latest(live)


def live_registry(collector: LiveCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


__all__ = ["LiveCollector", "caption_sent", "dropped", "exposition", "forwarded", "live_registry",
           "timed_translation"]
