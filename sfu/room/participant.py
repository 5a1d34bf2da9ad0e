"""A Participant is one person in a room: who they are, what they chose, and what the facilitator decided.

Their media connection is a `MediaSession` (sfu/media/media_session.py) they hold but do not run: the room
wires publications and subscriptions through it, and the facilitator's mute applies to its publications
(`Room.set_paused`). Nothing here touches WebRTC, so room, lobby and moderation logic can be tested
with a fake session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sfu import messages
from sfu.limits.ratelimit import TokenBucket, message_bucket
from sfu.media.media_session import MediaSession

SignalSender = Callable[[messages.Struct], Awaitable[None]]


class Participant:
    def __init__(self, participant_id: str, name: str, media: MediaSession, send_signal: SignalSender,
                 role: str = "participant") -> None:
        self.id = participant_id
        self.name = name
        self.role = role
        self.media = media
        self._send_signal = send_signal
        self.spoken_language: str | None = None
        self.caption_name_hidden = False
        self.muted_by_facilitator = False
        self.video_stopped_by_facilitator = False
        self.browser_key: str | None = None  # from the pw_key cookie: lets a removal stick for the session
        self.message_limit = message_bucket()
        self.chat_limit: TokenBucket | None = None

    def info(self) -> messages.ParticipantInfo:
        return messages.ParticipantInfo(id=self.id, name=self.name, role=self.role)

    def paused_by_facilitator(self, kind: str) -> bool:
        return self.muted_by_facilitator if kind == "audio" else self.video_stopped_by_facilitator

    def carry_over(self, previous: Participant) -> None:
        """A resumed seat keeps the facilitator's decisions and the person's own preferences."""
        self.muted_by_facilitator = previous.muted_by_facilitator
        self.video_stopped_by_facilitator = previous.video_stopped_by_facilitator
        self.caption_name_hidden = previous.caption_name_hidden
        self.spoken_language = previous.spoken_language

    def send_event(self, message: messages.Struct) -> None:
        """Over the data channel (in-room activity)."""
        self.media.send_event(message)

    async def send_signal(self, message: messages.Struct) -> None:
        """Over the WebSocket (session lifecycle)."""
        await self._send_signal(message)
