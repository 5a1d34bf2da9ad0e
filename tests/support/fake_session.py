"""A media session without WebRTC, for testing room, lobby and moderation logic alone.

It implements sfu.media.media_session.MediaSession and records what the room asked of it. Nothing real can
stand in here without a browser or an aiortc peer on each side; the WebRTC tests cover the real one.
"""

from __future__ import annotations

from sfu import messages
from sfu.media.media_session import SessionEvents
from sfu.media.publication import Publication


class FakeSession:
    def __init__(self, owner_id: str, *, ready: bool = True) -> None:
        self.owner_id = owner_id
        self.events = SessionEvents()
        self.publications: dict[str, Publication] = {}
        self.ready = ready
        self.media_open = True
        self.subscribed: list[Publication] = []
        self.sent: list[messages.Struct] = []
        self.closed = False
        self.video_views: dict[str, int] = {}
        self.audio_only = False
        self.speaker: str | None = None
        self.fail_subscribe = False  # the next subscribe raises, as a broken connection would

    def publish(self, kind: str) -> Publication:
        publication = Publication(self.owner_id, kind, lambda ssrc: None)
        self.publications[kind] = publication
        return publication

    def subscribe(self, publication: Publication) -> None:
        if self.fail_subscribe:
            raise RuntimeError("connection broke while adding a transceiver")
        if self.media_open and self.ready and publication not in self.subscribed:
            self.subscribed.append(publication)

    def unsubscribe(self, publication: Publication) -> None:
        if publication in self.subscribed:
            self.subscribed.remove(publication)

    def end_media(self) -> None:
        if self.media_open:
            self.media_open = False
            self.subscribed.clear()
            self.events.ended()
            for publication in self.publications.values():  # as PeerSession does: its tracks are gone
                publication.close()
            self.publications.clear()

    def set_video_views(self, views: dict[str, int]) -> None:
        self.video_views = dict(views)

    def set_audio_only(self, audio_only: bool) -> None:
        self.audio_only = audio_only

    def set_dominant_speaker(self, participant_id: str | None) -> None:
        self.speaker = participant_id

    def send_event(self, message: messages.Struct) -> None:
        self.sent.append(message)

    def events_of(self, kind: type) -> list:
        return [m for m in self.sent if isinstance(m, kind)]

    async def close(self) -> None:
        self.closed = True
        self.media_open = False
