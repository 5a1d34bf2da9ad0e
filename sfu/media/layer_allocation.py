"""Which video layer each listener receives of each publisher: the one place that decides it.

Inputs, per listener: what its client shows (tile height in device pixels per publisher, 0 = not shown),
whether it asked for audio and captions only, who the dominant speaker is, and its downlink budget
(`DownlinkBudget`, from the REMB and receiver reports its browser sends). Per publisher: the layers
sending now (height from keyframes, measured bitrate). Output: per publisher the SSRC to forward, or
None (paused), with the reason the client is told.

Order of sacrifice: audio and captions are reserved for first (AUDIO_RESERVE_BPS); then every shown
video gets its lowest layer, the dominant speaker first, then larger tiles; a video that does not fit
even at its lowest layer is paused ("bandwidth"). What remains raises layers one step at a time in the
same order, up to the smallest layer at least as tall as the tile. So under a shrinking budget video
degrades layer by layer, then pauses, before audio is touched.

Pure: no I/O, no timers; the caller passes the time.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

AUDIO_RESERVE_BPS = 100_000  # the speaker's Opus, everyone's DTX trickle, captions, RTCP: kept free first
DEFAULT_TILE_HEIGHT = 360  # a publisher the client has not reported a tile for yet
# Bitrates assumed for a layer not yet measured (its first second), by rank from the smallest.
NOMINAL_BPS = (150_000, 500_000, 1_200_000)

Reason = Literal["shown", "hidden", "audio-only", "bandwidth"]


@dataclass(frozen=True)
class LayerInfo:
    ssrc: int
    height: int  # 0 when unknown (no keyframe seen yet, or not VP8)
    bitrate_bps: int  # 0 when not measured yet


@dataclass(frozen=True)
class VideoSource:
    publisher_id: str
    layers: Sequence[LayerInfo]  # smallest first


@dataclass(frozen=True)
class Choice:
    ssrc: int | None
    reason: Reason


def layer_cost(layers: Sequence[LayerInfo], index: int) -> int:
    layer = layers[index]
    return layer.bitrate_bps or NOMINAL_BPS[min(index, len(NOMINAL_BPS) - 1)]


def wanted_index(layers: Sequence[LayerInfo], tile_height: int) -> int:
    """The smallest layer at least as tall as the tile (the largest if none is); heights unknown: by rank."""
    if all(layer.height for layer in layers):
        return next((i for i, layer in enumerate(layers) if layer.height >= tile_height), len(layers) - 1)
    if tile_height <= 200:
        return 0
    return len(layers) - 1 if tile_height > 400 else min(1, len(layers) - 1)


def allocate(sources: Sequence[VideoSource], views: dict[str, int], *, audio_only: bool, speaker: str | None,
             budget_bps: float | None) -> dict[str, Choice]:
    """The layer each source is forwarded at, by publisher id. `budget_bps` None: no limit known."""
    choices: dict[str, Choice] = {}
    shown: list[tuple[VideoSource, int]] = []
    for source in sources:
        tile = views.get(source.publisher_id, DEFAULT_TILE_HEIGHT)
        if audio_only:
            choices[source.publisher_id] = Choice(None, "audio-only")
        elif tile <= 0:
            choices[source.publisher_id] = Choice(None, "hidden")
        elif not source.layers:
            choices[source.publisher_id] = Choice(None, "shown")  # nothing sending; nothing to pause either
        else:
            shown.append((source, wanted_index(source.layers, tile)))
    shown.sort(key=lambda item: (item[0].publisher_id != speaker, -views.get(item[0].publisher_id,
                                                                             DEFAULT_TILE_HEIGHT)))
    left = float("inf") if budget_bps is None else budget_bps - AUDIO_RESERVE_BPS
    index: dict[str, int] = {}
    for source, _ in shown:
        cost = layer_cost(source.layers, 0)
        if cost <= left:
            index[source.publisher_id] = 0
            left -= cost
        else:
            left = -1.0  # nobody after a paused video gets one either: the order is the priority
            choices[source.publisher_id] = Choice(None, "bandwidth")
    raised = True
    while raised:
        raised = False
        for source, wanted in shown:
            current = index.get(source.publisher_id)
            if current is None or current >= wanted:
                continue
            step = layer_cost(source.layers, current + 1) - layer_cost(source.layers, current)
            if step <= left:
                index[source.publisher_id] = current + 1
                left -= step
                raised = True
    for source, _ in shown:
        if source.publisher_id in index:
            choices[source.publisher_id] = Choice(source.layers[index[source.publisher_id]].ssrc, "shown")
    return choices


class DownlinkBudget:
    """What one listener's link carries, from the feedback its browser sends about our RTP.

    Congestion is a receiver report with more than 10% loss. Until the first congestion there is no limit;
    then the limit is the most we sent in the last 2 s less half the loss (libwebrtc's loss-based rule; a
    report covers about the last second, during which a switch may have happened), and reports that still
    describe the old rate are not counted again for REACT_S. After `hold_s` without congestion the limit
    is raised one step (x1.5) to try the next layer, and a try that brings congestion back doubles the hold
    (up to MAX_HOLD_S), as Jitsi and LiveKit back off probing.

    REMB is kept (`remb_bps`) but lowers nothing: Chromium 156 sent none to our senders, and aiortc's (the
    test and benchmark clients') fell to 6 kbit/s on a loaded machine with nothing congested, pausing video
    for nothing. It follows what arrives (at most ~1.5x of it), so it could not say how much more fits either.
    """

    LOSS_CONGESTED = 0.1
    FIRST_HOLD_S = 10.0
    MAX_HOLD_S = 120.0
    PROBE_STEP = 1.5
    REACT_S = 1.5  # after lowering the limit, reports still describe the old rate for about this long
    RECENT_S = 2.0

    def __init__(self) -> None:
        self.limit_bps: float | None = None
        self.hold_s = self.FIRST_HOLD_S
        self._since = 0.0  # the limit was last set
        self._probed_at: float | None = None
        self.remb_bps: int | None = None
        self._lowered_at = -1e9
        self._recent: collections.deque[tuple[float, float]] = collections.deque()  # (time, what we sent)

    def observe(self, sending_bps: float, now: float, remb_bps: int | None = None, loss: float | None = None) -> bool:
        """Feedback arrived; True if the limit changed."""
        self._recent.append((now, sending_bps))
        while self._recent and now - self._recent[0][0] > self.RECENT_S:
            self._recent.popleft()
        if remb_bps is not None:
            self.remb_bps = remb_bps
        if loss is not None and loss > self.LOSS_CONGESTED:
            if now - self._lowered_at < self.REACT_S:
                return False  # the last cut has not shown in the feedback yet
            new_limit = max(rate for _, rate in self._recent) * (1 - loss / 2)
            if self.limit_bps is not None and new_limit >= self.limit_bps:
                return False
            if self._probed_at is not None and now - self._probed_at < self.hold_s:
                self.hold_s = min(self.hold_s * 2, self.MAX_HOLD_S)  # the last try up failed
            self._probed_at = None
            self.limit_bps, self._since, self._lowered_at = new_limit, now, now
            return True
        if self.limit_bps is not None and now - self._since >= self.hold_s:
            self.limit_bps *= self.PROBE_STEP
            self._since = self._probed_at = now
            return True
        return False
