"""Process-wide counts the forwarding and room code bump: plain integers, never ids, names or text.

Bumped on the event loop (the only thread that forwards), so plain integers do: a prometheus_client Counter
takes a lock, ~2.5 us for the two per frame, against ~0.1 us here (timeit on a shared 2-core machine).
peerwell/metrics.py reads them when Prometheus scrapes; sfu/ itself knows nothing of Prometheus.
"""

from __future__ import annotations


class Tally:
    def __init__(self) -> None:
        self.frames = {"audio": 0, "video": 0}  # encoded frames handed to subscribers' RTP senders
        self.bytes = {"audio": 0, "video": 0}  # their payload bytes
        self.dropped = {"audio": 0, "video": 0}  # not forwarded to one subscriber (queue full, awaiting keyframe)
        self.keyframe_requests = 0  # PLIs sent to publishers, after rate limiting
        self.safety_alerts = {"caption": 0, "chat": 0}  # alerts raised to facilitators, by source


TALLY = Tally()


def forwarded(kind: str, size: int) -> None:
    TALLY.frames[kind] += 1
    TALLY.bytes[kind] += size


def dropped(kind: str, count: int = 1) -> None:
    TALLY.dropped[kind] += count


def keyframe_requested() -> None:
    TALLY.keyframe_requests += 1


def safety_alert(source: str) -> None:
    TALLY.safety_alerts[source] = TALLY.safety_alerts.get(source, 0) + 1
