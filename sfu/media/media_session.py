"""What a Room needs from a person's media connection, and what the connection tells its owner.

`Room` depends on this interface only: the real one is `sfu.media.peer_session.PeerSession` (one
RTCPeerConnection); room, lobby and moderation logic is tested with a fake one, without WebRTC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sfu import messages
from sfu.media.publication import Publication


def _ignore(*_: object) -> None:
    return None


@dataclass
class SessionEvents:
    """Set by whoever seats the person (signaling); the session calls them, never the room directly."""

    ready: Callable[[], None] = field(default=_ignore)  # the first answer is out: wire publications
    ended: Callable[[], None] = field(default=_ignore)  # the connection closed or failed
    message: Callable[[str | bytes], None] = field(default=_ignore)  # a data-channel request, raw


class MediaSession(Protocol):
    events: SessionEvents

    @property
    def publications(self) -> dict[str, Publication]:
        """This person's incoming tracks, by kind ("audio", "video")."""

    @property
    def ready(self) -> bool:
        """The client's first offer is answered: subscriptions can be added."""

    @property
    def media_open(self) -> bool:
        """Nothing may call into the connection once this is False."""

    def subscribe(self, publication: Publication) -> None:
        """Forward someone else's publication to this person (idempotent)."""

    def unsubscribe(self, publication: Publication) -> None: ...

    def end_media(self) -> None:
        """Stop forwarding to and from this connection at once (it is gone)."""

    def set_video_views(self, views: dict[str, int]) -> None:
        """The tile height (device pixels, 0 = not shown) at which this person shows each publisher."""

    def set_audio_only(self, audio_only: bool) -> None:
        """This person asked for audio and captions only (no video forwarded to them)."""

    def set_dominant_speaker(self, participant_id: str | None) -> None:
        """The room's dominant speaker changed (their video is kept first when this link is thin)."""

    def send_event(self, message: messages.Struct) -> None:
        """A data-channel event (kept in a bounded backlog until the channel opens)."""

    async def close(self) -> None: ...
