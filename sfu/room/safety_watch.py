"""The room's watch for crisis language: every final caption and chat line goes to the crisis detector off
the event loop (its learned layer takes 1-50 ms a line; forwarding must not wait), with the speaker's
previous line of the same kind as context ("i can't keep going" then "i'm going to do it tonight").

Alerts a facilitator marked "not a concern" stay quiet for the rest of the session for the same person and
the same words (a person who keeps saying "this homework is killing me"); anything else they say still
alerts. Memory only: nothing outlives the room, and no text is logged.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from safety.detector import CrisisDetector, Match

log = logging.getLogger(__name__)

# One thread for every room's checks, so lines are checked in the order they were said and the detector's
# model (one lock inside) never has two callers waiting on each other.
_CHECKS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="safety")

# (alert id, participant id, the line, its source, the detector's match)
RaiseAlert = Callable[[str, str, str, str, "Match"], None]


class SafetyWatch:
    def __init__(self, detector: CrisisDetector, raise_alert: RaiseAlert) -> None:
        self._detector = detector
        self._raise = raise_alert
        self._previous: dict[tuple[str, str], str] = {}  # (participant, source) -> their previous line
        self._quiet: set[tuple[str, str]] = set()  # (participant, what triggered) marked "not a concern"
        self._raised: dict[str, tuple[str, str]] = {}  # alert id -> (participant, what triggered)
        self._ids = itertools.count(1)
        self._pending: set[asyncio.Future[Match | None]] = set()
        self._closed = False

    def check(self, participant_id: str, text: str, source: str, language: str | None) -> None:
        context = self._previous.get((participant_id, source))
        self._previous[(participant_id, source)] = text
        future = asyncio.get_running_loop().run_in_executor(_CHECKS, self._detector.check, text, language, context)
        self._pending.add(future)
        future.add_done_callback(functools.partial(self._checked, participant_id, text, source))

    def _checked(self, participant_id: str, text: str, source: str, future: Future[Match | None]) -> None:
        self._pending.discard(future)  # type: ignore[arg-type]
        if self._closed or future.cancelled():
            return
        if (error := future.exception()) is not None:
            log.error("a safety check failed: %s", type(error).__name__)  # never the text
            return
        match = future.result()
        if match is None:
            return
        key = (participant_id, match.pattern or " ".join(text.lower().split()))
        if key in self._quiet:
            return
        alert_id = f"a{next(self._ids)}"
        self._raised[alert_id] = key
        self._raise(alert_id, participant_id, text, source, match)

    def dismiss(self, alert_id: str) -> bool:
        """Mark an alert "not a concern"; False if this room raised no such alert."""
        key = self._raised.get(alert_id)
        if key is None:
            return False
        self._quiet.add(key)
        return True

    def forget(self, participant_id: str) -> None:
        """They left for good: their previous lines go (what facilitators dismissed stays for the session)."""
        for key in [k for k in self._previous if k[0] == participant_id]:
            del self._previous[key]

    async def drain(self) -> None:
        """Wait for the checks already queued (tests, shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def close(self) -> None:
        self._closed = True
        for future in self._pending:
            future.cancel()
        self._previous.clear()
        self._raised.clear()
        self._quiet.clear()
