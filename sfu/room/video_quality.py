"""How much video each publisher may send: a ladder by room size, one rung up for the settled speaker.

There is no simulcast in aiortc and we never transcode, so every listener receives each publisher's one
encoding: the cap a publisher gets is what every listener's link and the server's forwarding loop pay for
it. docs/architecture.md has the ladder's reasoning (tile sizes, packets per second on a 2-core server,
what a thin link receives).

- The rung follows the number of seated members (camera-off members count: a camera can come on with no
  new negotiation). Moving to a lower-quality rung as the room grows is immediate; moving back up as it
  shrinks waits until the smaller room has lasted SHRINK_SETTLE_S, so a reconnect (leave and come back at
  once) or someone stepping out for a moment does not flip everyone's cap twice.
- The dominant speaker gets the rung's `speaker` cap only after holding the floor for SPEAKER_HOLD_S, and
  keeps it until someone else has held it that long (or leaves): interjections and the detector's own
  switches back and forth change nothing.
- A cap goes out only when it differs from the last one that member was sent.

Pure: the caller gives members, the dominant speaker and the time; no timers, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

SPEAKER_HOLD_S = 2.0
SHRINK_SETTLE_S = 3.0


class VideoCap(NamedTuple):
    max_bitrate_bps: int
    max_framerate: int
    max_height: int  # of the encoded picture; the client scales its capture down to fit


@dataclass(frozen=True)
class Rung:
    up_to: int  # members in the room, inclusive
    gallery: VideoCap
    speaker: VideoCap


LADDER: tuple[Rung, ...] = (
    Rung(2, gallery=VideoCap(800_000, 30, 480), speaker=VideoCap(800_000, 30, 480)),
    Rung(4, gallery=VideoCap(500_000, 30, 360), speaker=VideoCap(800_000, 30, 480)),
    Rung(8, gallery=VideoCap(250_000, 20, 240), speaker=VideoCap(500_000, 30, 360)),
    Rung(10_000, gallery=VideoCap(120_000, 15, 180), speaker=VideoCap(400_000, 24, 360)),
)
# What the server sends is always within these; protocol.md promises them to clients.
MIN_BITRATE_BPS, MAX_BITRATE_BPS = 50_000, 2_500_000
MIN_FRAMERATE, MAX_FRAMERATE = 1, 30
MIN_HEIGHT, MAX_HEIGHT = 90, 720


def rung_index(members: int, ladder: tuple[Rung, ...] = LADDER) -> int:
    return next((i for i, rung in enumerate(ladder) if members <= rung.up_to), len(ladder) - 1)


class VideoQuality:
    """One room's caps: call `update` when membership or the dominant speaker may have changed, and every
    so often (the room does on audio packets) so a held floor or a settled smaller room takes effect."""

    def __init__(self, ladder: tuple[Rung, ...] = LADDER, hold_s: float = SPEAKER_HOLD_S,
                 settle_s: float = SHRINK_SETTLE_S) -> None:
        self.ladder = ladder
        self.hold_s = hold_s
        self.settle_s = settle_s
        self.rung = 0
        self._shrunk_since: float | None = None  # the room has been small enough for a better rung since
        self.boosted: str | None = None  # the speaker who has the rung's speaker cap
        self._floor: tuple[str, float] | None = None  # (dominant speaker, since when) as last seen
        self._sent: dict[str, VideoCap] = {}

    def update(self, members: Iterable[str], dominant: str | None, now: float) -> dict[str, VideoCap]:
        """The caps that changed, by member: newcomers always get one; members gone are forgotten."""
        present = list(members)
        self._follow_room_size(len(present), now)
        self._follow_speaker(dominant, now, set(present))
        for gone in self._sent.keys() - set(present):
            del self._sent[gone]
        changed: dict[str, VideoCap] = {}
        for member in present:
            cap = self.cap_for(member)
            if self._sent.get(member) != cap:
                self._sent[member] = changed[member] = cap
        return changed

    def cap_for(self, member: str) -> VideoCap:
        rung = self.ladder[self.rung]
        return rung.speaker if member == self.boosted else rung.gallery

    def _follow_room_size(self, members: int, now: float) -> None:
        target = rung_index(members, self.ladder)
        if target >= self.rung:
            self.rung, self._shrunk_since = target, None
        elif self._shrunk_since is None:
            self._shrunk_since = now
        elif now - self._shrunk_since >= self.settle_s:
            self.rung, self._shrunk_since = target, None

    def _follow_speaker(self, dominant: str | None, now: float, present: set[str]) -> None:
        if self.boosted not in present:
            self.boosted = None
        if dominant is None or dominant not in present:
            self._floor = None
            return
        if self._floor is None or self._floor[0] != dominant:
            self._floor = (dominant, now)
        if dominant != self.boosted and now - self._floor[1] >= self.hold_s:
            self.boosted = dominant
