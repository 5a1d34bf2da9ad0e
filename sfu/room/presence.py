"""Presence in one room: who turned their own microphone or camera off, and how often someone may react or
ask the facilitators for help. Pure state keyed by participant id; the Room owns one and sends the events.

Self-mute is only what a person says about themselves (their tiles show it to everyone); it is separate from
the facilitator's mute, which the server enforces on the forwarding path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sfu.limits.ratelimit import KeyedBuckets

REACTIONS_PER_SECOND = 1.0  # a reaction is seen by everyone: at most one a second, a burst of 3
REACTION_BURST = 3.0
HELP_REQUESTS_PER_MINUTE = 2.0  # "I need help" reaches the facilitators: 2 a minute, a burst of 3
HELP_BURST = 3.0


@dataclass
class MediaState:
    microphone: bool = True
    camera: bool = True


class Presence:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._media: dict[str, MediaState] = {}
        self._reactions = KeyedBuckets(REACTIONS_PER_SECOND, REACTION_BURST, clock=clock)
        self._help = KeyedBuckets(HELP_REQUESTS_PER_MINUTE / 60.0, HELP_BURST, clock=clock)

    def set_media(self, participant_id: str, microphone: bool, camera: bool) -> bool:
        """Record a person's own media state; True when it changed (so the room tells everyone)."""
        new = MediaState(microphone, camera)
        if self._media.get(participant_id) == new:
            return False
        self._media[participant_id] = new
        return True

    def media_of(self, participant_id: str) -> MediaState | None:
        return self._media.get(participant_id)

    def media_states(self) -> Iterator[tuple[str, MediaState]]:
        """Everyone who has said something about their media (a newcomer gets these)."""
        yield from self._media.items()

    def may_react(self, participant_id: str) -> bool:
        return self._reactions.allow(participant_id)

    def may_ask_for_help(self, participant_id: str) -> bool:
        return self._help.allow(participant_id)

    def forget(self, participant_id: str) -> None:
        self._media.pop(participant_id, None)
        self._reactions.forget(participant_id)
        self._help.forget(participant_id)

    def clear(self) -> None:
        self._media.clear()
        self._reactions.clear()
        self._help.clear()
