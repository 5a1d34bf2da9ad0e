"""Prometheus metrics: counts and timings only, never ids, names, captions or chat.

Two kinds:
- Event counters, monotonic for the life of the process: the caption and translation histograms below,
  and the forwarding, keyframe and safety-alert counts sfu/ keeps as plain integers (sfu/tally.py, so the
  per-frame path stays cheap and sfu/ never imports peerwell/), exposed by `TallyCollector`.
- `LiveCollector`: gauges read at scrape time from state the server already keeps (rooms, seats, live
  subscriptions, the caption scheduler's own stats()). Nothing is duplicated or kept twice.

Label values are fixed small sets (kind = audio|video, source = caption|chat, ...), never a room or a person.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import REGISTRY as PROCESS_REGISTRY
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sfu.tally import TALLY

if TYPE_CHECKING:
    from sfu.signaling.websocket import Rooms

CAPTION_LATENCY = Histogram(
    "peerwell_caption_latency_seconds", "From the end of the captioned audio to the caption going out",
    ["final"], buckets=(0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0))
TRANSLATION_LATENCY = Histogram(
    "peerwell_translation_seconds", "From a final caption to its subtitles sent (every chosen language)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0))


class TallyCollector(Collector):
    """sfu/tally.py's plain integers as counters, read at scrape time."""

    def collect(self) -> Iterator[Any]:
        for name, help_text, label, values in (
                ("peerwell_forwarded_frames", "Encoded frames handed to subscribers' RTP senders (audio: one RTP "
                 "packet each)", "kind", TALLY.frames),
                ("peerwell_forwarded_bytes", "Payload bytes of forwarded frames (before RTP/SRTP)", "kind",
                 TALLY.bytes),
                ("peerwell_dropped_frames", "Frames not forwarded to one subscriber: its queue was full or it "
                 "waited for a keyframe", "kind", TALLY.dropped),
                ("peerwell_safety_alerts", "Safety alerts raised to facilitators (counts only)", "source",
                 TALLY.safety_alerts)):
            family = CounterMetricFamily(name, help_text, labels=[label])
            for key, value in values.items():
                family.add_metric([key], value)
            yield family
        yield CounterMetricFamily("peerwell_keyframe_requests", "PLIs sent to publishers (after rate limiting)",
                                  value=TALLY.keyframe_requests)


PROCESS_REGISTRY.register(TallyCollector())


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
            shed = CounterMetricFamily(
                "peerwell_transcription_shed", "Transcription work skipped to keep up: partial (superseded by a "
                "newer one), partial_overload (not the dominant speaker while decoding is behind), translation, "
                "final (decode queue full), final_late (could not arrive within the latency bound: its audio "
                "dropped, a `skipped` marker sent)", labels=["work"])
            for label, key in (("partial", "partials_shed"), ("partial_overload", "partials_shed_overload"),
                               ("translation", "translations_shed"), ("final", "finals_dropped"),
                               ("final_late", "finals_skipped")):
                shed.add_metric([label], stats.get(key, 0))
            yield shed
            yield CounterMetricFamily("peerwell_transcription_skipped_audio_seconds", "Seconds of speech left "
                                      "without captions because decoding could not keep up",
                                      value=stats.get("audio_seconds_skipped", 0))
            yield CounterMetricFamily("peerwell_transcription_decodes", "Whisper decodes run",
                                      value=stats.get("decodes_run", 0))


def _subscriptions(participant: Any) -> Iterator[Any]:
    # The forwarding slots of the participant's media session (sfu/media/peer_session.py);
    # tests/test_observability.py checks this gauge moves, so a rename there shows up.
    for slot in getattr(participant.media, "slots", ()):
        subscription = getattr(slot, "subscription", None)
        if subscription is not None and subscription.publication is not None:
            yield subscription


LIVE_METRICS_KEY: web.AppKey[LiveCollector] = web.AppKey("live_metrics", LiveCollector)
_REGISTRY_KEY: web.AppKey[CollectorRegistry] = web.AppKey("metrics_registry", CollectorRegistry)


def serve_metrics(app: web.Application, rooms: Rooms) -> LiveCollector:
    """Add /metrics to the app: process-wide counters and this server's live gauges."""
    collector = LiveCollector(rooms, accepting=lambda: rooms.accepting_joins)
    app[LIVE_METRICS_KEY] = collector
    app[_REGISTRY_KEY] = live_registry(collector)
    app.router.add_get("/metrics", metrics_endpoint)
    return collector


async def metrics_endpoint(request: web.Request) -> web.Response:
    body = exposition(request.app[_REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def exposition(live: CollectorRegistry) -> bytes:
    """The process-wide counters followed by this server's live gauges, in the text format."""
    return generate_latest(PROCESS_REGISTRY) + generate_latest(live)


def live_registry(collector: LiveCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


__all__ = ["LiveCollector", "caption_sent", "exposition", "live_registry", "serve_metrics", "timed_translation"]
