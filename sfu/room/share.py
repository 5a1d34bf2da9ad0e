"""Screen sharing in one room: who shares now (one person at a time), which members a facilitator allowed to
share, and the share timer. Pure state keyed by participant id; the Room owns one, wires the screen
publication and sends the events this builds.

The timer is one `loop.call_later` per set (cancelled on clear, when its person leaves and when the room
closes): an idle room costs nothing, and the expiry cue is sent exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from sfu import messages


@dataclass
class _Timer:
    participant_id: str
    seconds: int
    started_at: float
    handle: asyncio.TimerHandle | None
    expired: bool = False


class ScreenShare:
    def __init__(self, on_expired: Callable[[], None], *, min_seconds: int = messages.SHARE_TIMER_MIN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sharer: str | None = None
        self._allowed: dict[str, None] = {}  # insertion-ordered set: the list everyone is sent keeps its order
        self._timer: _Timer | None = None
        self._on_expired = on_expired
        self.min_seconds = min_seconds
        self._clock = clock

    # --- who may share -----------------------------------------------------------------------

    def may_share(self, participant_id: str, role: str) -> bool:
        return role == "facilitator" or participant_id in self._allowed

    def is_allowed(self, participant_id: str) -> bool:
        return participant_id in self._allowed

    def set_allowed(self, participant_id: str, allowed: bool) -> bool:
        """True when the permission changed (so the room tells everyone)."""
        if allowed == (participant_id in self._allowed):
            return False
        if allowed:
            self._allowed[participant_id] = None
        else:
            del self._allowed[participant_id]
        return True

    # --- the timer ---------------------------------------------------------------------------

    def timer_refusal(self, seconds: int) -> str | None:
        if not self.min_seconds <= seconds <= messages.SHARE_TIMER_MAX_S:
            return f"a share time is {self.min_seconds} to {messages.SHARE_TIMER_MAX_S} seconds"
        return None

    def set_timer(self, participant_id: str, seconds: int) -> None:
        """Start (or restart) the timer; the caller checked `timer_refusal`."""
        self._cancel()
        handle = asyncio.get_running_loop().call_later(seconds, self._expire)
        self._timer = _Timer(participant_id, seconds, self._clock(), handle)

    def clear_timer(self) -> bool:
        """True when there was a timer (so the room tells everyone)."""
        had = self._timer is not None
        self._cancel()
        self._timer = None
        return had

    @property
    def timer_for(self) -> str | None:
        return self._timer.participant_id if self._timer is not None else None

    def _expire(self) -> None:
        if self._timer is None:
            return
        self._timer.handle = None
        self._timer.expired = True
        self._on_expired()

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.handle is not None:
            self._timer.handle.cancel()
            self._timer.handle = None

    # --- leaving and closing -----------------------------------------------------------------

    def forget(self, participant_id: str) -> tuple[bool, bool]:
        """`participant_id` left for good: (their permission was dropped, their timer was cleared)."""
        dropped = self.set_allowed(participant_id, False)
        cleared = self.timer_for == participant_id and self.clear_timer()
        return dropped, cleared

    def close(self) -> None:
        self.clear_timer()
        self.sharer = None
        self._allowed.clear()

    # --- events ------------------------------------------------------------------------------

    def share_event(self) -> messages.Share:
        return messages.Share(participant_id=self.sharer)

    def allowed_event(self) -> messages.ShareAllowed:
        return messages.ShareAllowed(participant_ids=list(self._allowed))

    def timer_event(self) -> messages.ShareTimer:
        timer = self._timer
        if timer is None:
            return messages.ShareTimer(participant_id=None, seconds=0, remaining=0.0, expired=False)
        remaining = 0.0 if timer.expired else max(0.0, timer.seconds - (self._clock() - timer.started_at))
        return messages.ShareTimer(participant_id=timer.participant_id, seconds=timer.seconds,
                                   remaining=round(remaining, 2), expired=timer.expired)
