"""The baseline peerwell is measured against: the same server, but media relayed the way aiortc's
public API allows (MediaRelay: decode each publisher once, encode once per subscriber)."""

from __future__ import annotations

from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from sfu import aiortc_adapter
from sfu.media.peer_session import PeerSession, Slot
from sfu.media.publication import Publication
from sfu.media.subscription import Subscription

RELAY = MediaRelay()


class RelayPublication(Publication):
    remote_track: MediaStreamTrack


class RelayPeerSession(PeerSession):
    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
        publication = RelayPublication(self.owner_id, track.kind, lambda ssrc: None)
        publication.codec = aiortc_adapter.negotiated_codec(transceiver)
        publication.remote_track = track  # left untapped: aiortc decodes it
        self.publications[track.kind] = publication

    def subscribe(self, publication: Publication) -> None:
        if self.closed or not isinstance(publication, RelayPublication) or self.subscription_for(publication):
            return
        transceiver = self.pc.addTransceiver(publication.kind, direction="sendonly")
        transceiver.sender.replaceTrack(RELAY.subscribe(publication.remote_track))
        marker = Subscription(publication.kind, self.owner_id)  # bookkeeping only; the relay track sends
        marker.publication = publication
        self.slots.append(Slot(transceiver, marker, publication.codec.mimeType.lower() if publication.codec else ""))
        self._schedule_offer(changed=True)
