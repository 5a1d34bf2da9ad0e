"""PeerSession: one person's media connection (one RTCPeerConnection), renegotiated by the server.

It owns the peer connection, the person's publications, their subscription slots and their data
channel; it knows nothing about rooms, names or roles (that is `sfu.room.participant.Participant`).

Layout: the client makes the first offer (its own audio/video, sendonly, and the data channel). After
that only the server offers, whenever forwarded tracks come or go, so there is never glare. Each
forwarded track gets a sendonly transceiver ("slot"); when its publisher leaves the slot goes
inactive and is reused for the next publication of the same kind and codec.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidStateError
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu import aiortc_adapter, messages
from sfu.media.codecs import FORWARDABLE, same_codec, subscriber_codecs
from sfu.media.layer_allocation import AUDIO_RESERVE_BPS, DownlinkBudget, LayerInfo, VideoSource, allocate
from sfu.media.media_session import SessionEvents
from sfu.media.publication import Publication
from sfu.media.subscription import Subscription

logger = logging.getLogger(__name__)

_closing: set[asyncio.Future[None]] = set()  # pc.close() of failed connections, kept until done
SignalSender = Callable[[messages.Struct], Awaitable[None]]
CHANNEL_BACKLOG = 256  # events kept while the data channel opens: history (50 captions, 100 chat) and more
# An offer that would only make slots idle waits this long: forwarding to them stopped already, and in a
# group people come and go in turns, so the next newcomer's offer (sent at once) usually carries it too.
IDLE_SLOT_OFFER_DELAY = 5.0


CONNECTION_GONE = "your media connection has closed; join again with your resume token"
ALLOCATE_EVERY_S = 0.5  # feedback re-runs the layer choice at most this often (each RTCP packet would ask)


class NegotiationError(Exception):
    pass


@dataclass
class Slot:
    transceiver: RTCRtpTransceiver
    subscription: Subscription
    mime_type: str


class PeerSession:
    """Implements sfu.media.media_session.MediaSession over aiortc."""

    def __init__(self, owner_id: str, send_signal: SignalSender,
                 rtc_configuration: RTCConfiguration | None = None) -> None:
        self.owner_id = owner_id  # the participant id, for logs and the `tracks` map of offers
        self.events = SessionEvents()
        self._send_signal = send_signal
        # max-bundle: with aiortc's default ("balanced") a transceiver added after the first answer is
        # tied to a transport that BUNDLE then discards, so its sender never starts. Offers must BUNDLE
        # every section (aiortc_adapter.offer_problem checks), as browsers do by default.
        self._configuration = dataclasses.replace(rtc_configuration or RTCConfiguration(),
                                                  bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        self.pc = self._new_connection()
        self.publications: dict[str, Publication] = {}  # by kind
        self.slots: list[Slot] = []
        self.channel: RTCDataChannel | None = None
        self._channel_backlog: list[str] = []
        self._negotiation_lock = asyncio.Lock()
        self._initial_answer_sent = False
        self._needs_offer = False
        self._offer_outstanding = False
        self._offer_task: asyncio.Future[None] | None = None
        self._idle_offer: asyncio.TimerHandle | None = None  # a deferred offer for slots gone idle
        self._transport: RTCDtlsTransport | None = None
        self.closed = False
        self.media_ended = False  # the peer connection closed or failed; the seat may outlive it
        # What this person is shown and can carry: the inputs of sfu/media/layer_allocation.py.
        self._simulcast_layers: dict[str, list[str]] = {}  # mid -> rids the client sends
        self.video_views: dict[str, int] = {}  # publisher id -> tile height in device pixels (0: not shown)
        self.audio_only = False
        self.speaker: str | None = None
        self.downlink = DownlinkBudget()
        self._allocated_at = -1e9
        self._delivery: dict[str, str] = {}  # publisher id -> what the client was last told

    def _new_connection(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(self._configuration)
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_connection_state)
        return pc

    async def _start_over(self) -> None:
        """A first offer aiortc failed on half-way leaves the connection half-built (transceivers without
        transports, duplicated mids), and every later offer or close trips over it: start from a fresh one."""
        broken, self.pc = self.pc, self._new_connection()
        broken.remove_all_listeners()
        for publication in self.publications.values():
            publication.close()
        self.publications.clear()
        await aiortc_adapter.close_half_built(broken)

    @property
    def ready(self) -> bool:
        """The client's own offer has been answered: the server may now offer."""
        return self._initial_answer_sent

    @property
    def media_open(self) -> bool:
        """The peer connection can still be used: nothing may call into it otherwise."""
        return not self.closed and not self.media_ended

    # --- negotiation -------------------------------------------------------------------------

    async def accept_offer(self, sdp: str) -> None:
        async with self._negotiation_lock:
            if not self.media_open:
                raise NegotiationError(CONNECTION_GONE)
            if self._initial_answer_sent:
                raise NegotiationError("only the first offer comes from the client; later ones come from the server")
            problem = aiortc_adapter.offer_problem(sdp)
            if problem is not None:
                raise NegotiationError(f"cannot use this offer: {problem}")
            try:
                self._simulcast_layers = aiortc_adapter.offered_simulcast(sdp)
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                for transceiver in self.pc.getTransceivers():
                    aiortc_adapter.ask_for_opus_dtx(transceiver)
                answer = await self.pc.createAnswer()
                await self.pc.setLocalDescription(answer)
            except Exception as exc:  # aiortc raises several types for bad SDP
                await self._start_over()
                raise NegotiationError(f"cannot use this offer: {exc}") from None
            for transceiver in self.pc.getTransceivers():
                aiortc_adapter.pin_codecs(transceiver, aiortc_adapter.negotiated_codecs(transceiver))
            await self._send_signal(messages.ServerAnswer(
                sdp=aiortc_adapter.receive_simulcast(self.pc.localDescription.sdp, self._simulcast_layers)))
            self._initial_answer_sent = True
            self._transport = aiortc_adapter.bundle_transport(self.pc)
            if self._transport is not None:
                self._transport.on("statechange", self._schedule_offer)
        self.events.ready()
        self._schedule_offer()

    async def accept_answer(self, sdp: str) -> None:
        async with self._negotiation_lock:
            if not self.media_open:
                raise NegotiationError(CONNECTION_GONE)
            if not self._offer_outstanding:
                raise NegotiationError("no offer is waiting for an answer")
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            except Exception as exc:
                raise NegotiationError(f"cannot use this answer: {exc}") from None
            self._offer_outstanding = False
        self._schedule_offer()

    def _schedule_offer(self, changed: bool = False) -> None:
        self._needs_offer = self._needs_offer or changed
        # Wait for DTLS: aiortc starts new senders only in the connect step of a negotiation that finds
        # the transport already connected; a renegotiation during the handshake would leave them idle.
        if (self._needs_offer and self._initial_answer_sent and not self._offer_outstanding
                and self.media_open and self._transport is not None and self._transport.state == "connected"):
            self._offer_task = asyncio.ensure_future(self._send_offer())

    async def _send_offer(self) -> None:
        async with self._negotiation_lock:
            if not self._needs_offer or self._offer_outstanding or not self.media_open:
                return
            self._needs_offer = False
            self._offer_outstanding = True
            self._cancel_idle_offer()  # this offer carries the idle slots too
            try:
                await self.pc.setLocalDescription(await aiortc_adapter.create_offer(self.pc))
            except InvalidStateError:  # closed meanwhile: _on_connection_state ends the media
                return
            tracks = {
                slot.transceiver.mid: messages.TrackInfo(
                    participant_id=slot.subscription.publication.participant_id, kind=slot.subscription.kind,
                    source="screen" if slot.subscription.publication.source == "screen" else "camera")
                for slot in self.slots
                if slot.subscription.publication is not None and slot.transceiver.mid is not None
            }
            for slot in self.slots:
                if slot.subscription.publication is None:  # idle since at least this offer's changes
                    aiortc_adapter.forget_sent_packets(slot.transceiver.sender)
            sdp = aiortc_adapter.receive_simulcast(self.pc.localDescription.sdp, self._simulcast_layers)
            await self._send_signal(messages.ServerOffer(sdp=sdp, tracks=tracks))

    # --- publishing --------------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
        receiver = transceiver.receiver
        source = self._source_of(transceiver)
        if source is None:
            return
        publication = Publication(self.owner_id, track.kind,
                                  lambda ssrc: aiortc_adapter.request_keyframe(receiver, ssrc), source=source)
        aiortc_adapter.tap_receiver(
            receiver, track.kind,
            lambda frame: publication.on_assembled(frame, aiortc_adapter.receiver_codec(receiver,
                                                                                       frame.payload_type)))
        if track.kind == "video":
            aiortc_adapter.keep_remb_floor(receiver)
        publication.codec = aiortc_adapter.negotiated_codec(transceiver)
        if publication.codec is None or publication.codec.mimeType.lower() not in FORWARDABLE:
            logger.warning("participant %s offered no forwardable %s codec", self.owner_id, track.kind)
            publication.close()
            return
        self.publications["screen" if source == "screen" else track.kind] = publication

    def _source_of(self, transceiver: RTCRtpTransceiver) -> str | None:
        """The client's first video m-line is its camera, the second its screen (docs/protocol.md); tracks
        only come from the client's own offer, before any slot exists. None: a section we do not publish."""
        if transceiver.kind != "video":
            return "camera"
        own_video = [t for t in self.pc.getTransceivers()
                     if t.kind == "video" and all(s.transceiver is not t for s in self.slots)]
        index = own_video.index(transceiver)
        return ("camera", "screen")[index] if index < 2 else None

    # --- subscribing -------------------------------------------------------------------------

    def subscribe(self, publication: Publication) -> None:
        # Before our answer to the client's offer, a new transceiver would be matched to the client's
        # own m-lines; subscribe_to_everyone() catches up once the answer is out.
        if not self.media_open or not self.ready or publication.codec is None or self.subscription_for(publication):
            return
        mime = publication.codec.mimeType.lower()
        slot = next((s for s in self.slots if s.subscription.publication is None
                     and s.subscription.kind == publication.kind and s.mime_type == mime), None)
        if slot is None:
            codecs = self._codecs_like(publication.codec)
            transceiver = self.pc.addTransceiver(publication.kind, direction="sendonly")
            if codecs:
                aiortc_adapter.pin_codecs(transceiver, codecs)
            else:
                transceiver.setCodecPreferences(subscriber_codecs(publication.codec))
            aiortc_adapter.keep_compact_rtp_history(transceiver.sender)
            subscription = Subscription(publication.kind, self.owner_id)
            transceiver.sender.replaceTrack(subscription)
            aiortc_adapter.redirect_keyframe_requests(transceiver.sender, subscription.request_keyframe)
            aiortc_adapter.observe_downlink(transceiver.sender, lambda bps: self._feedback(remb_bps=bps),
                                            lambda loss: self._feedback(loss=loss))
            slot = Slot(transceiver, subscription, mime)
            self.slots.append(slot)
        else:
            slot.transceiver.direction = "sendonly"
        slot.subscription.bind(publication)
        self._schedule_offer(changed=True)
        self.allocate_layers()

    def _codecs_like(self, codec: RTCRtpCodecParameters) -> list[RTCRtpCodecParameters]:
        """The subscriber's own negotiated payload types for `codec` (and its RTX), if it has any."""
        own = [t for t in self.pc.getTransceivers() if all(s.transceiver is not t for s in self.slots)]
        for transceiver in own:
            if transceiver.kind != codec.mimeType.split("/")[0].lower():
                continue
            negotiated = aiortc_adapter.negotiated_codecs(transceiver)
            matches = [c for c in negotiated if same_codec(c, codec)]
            if matches:
                rtx = [c for c in negotiated
                       if c.mimeType.lower().endswith("/rtx") and c.parameters.get("apt") == matches[0].payloadType]
                return [matches[0], *rtx[:1]]
        return []

    def unsubscribe(self, publication: Publication) -> None:
        for slot in self.slots:
            if slot.subscription.publication is publication:
                slot.subscription.unbind()
                slot.transceiver.direction = "inactive"
                self._defer_idle_offer()
                self.allocate_layers()

    # --- video layers (sfu/media/layer_allocation.py decides; subscriptions switch) ----------------

    def set_video_views(self, views: dict[str, int]) -> None:
        self.video_views = dict(views)
        self.allocate_layers()

    def set_audio_only(self, audio_only: bool) -> None:
        self.audio_only = audio_only
        self.allocate_layers()

    def set_dominant_speaker(self, participant_id: str | None) -> None:
        self.speaker = participant_id
        self.allocate_layers()

    def _video_subscriptions(self, source: str | None = None) -> list[Subscription]:
        return [s.subscription for s in self.slots
                if s.subscription.kind == "video" and s.subscription.publication is not None
                and source in (None, s.subscription.publication.source)]

    def sending_bps(self) -> int:
        """What we forward to this person now: the layers they get, plus what audio may take."""
        total = AUDIO_RESERVE_BPS // 2
        for subscription in self._video_subscriptions():
            assert subscription.publication is not None
            layer = subscription.publication.active_layer(subscription.current)  # per feedback: no sorting
            if layer is not None and not subscription.paused:
                total += layer.bitrate_bps
        return total

    def _feedback(self, remb_bps: int | None = None, loss: float | None = None) -> None:
        now = time.monotonic()
        changed = self.downlink.observe(self.sending_bps(), now, remb_bps=remb_bps, loss=loss)
        if changed or now - self._allocated_at >= ALLOCATE_EVERY_S:
            self.allocate_layers(now)

    def allocate_layers(self, now: float | None = None) -> None:
        """Choose each forwarded video's layer (or pause it) and tell the client what changed."""
        if not self.media_open:
            return
        self._allocated_at = time.monotonic() if now is None else now
        budget = self.downlink.limit_bps
        for screen in self._video_subscriptions("screen"):
            # A share is one layer shown large to everyone: it goes first, and cameras share what is left.
            assert screen.publication is not None
            layers = screen.publication.layers()
            if self.audio_only:
                screen.select(None)
            elif layers:
                screen.select(layers[-1].ssrc)
                if budget is not None:
                    budget = max(0.0, budget - layers[-1].bitrate_bps)
        subscriptions = {sub.publication.participant_id: sub for sub in self._video_subscriptions("camera")
                         if sub.publication is not None}
        sources = [VideoSource(pid, [LayerInfo(x.ssrc, x.height, x.bitrate_bps) for x in sub.publication.layers()])
                   for pid, sub in subscriptions.items() if sub.publication is not None]
        choices = allocate(sources, self.video_views, audio_only=self.audio_only, speaker=self.speaker,
                           budget_bps=budget)
        for pid, choice in choices.items():
            if choice.ssrc is not None or choice.reason != "shown":
                subscriptions[pid].select(choice.ssrc)
        delivery = {pid: choice.reason for pid, choice in choices.items()}
        if delivery != self._delivery:
            self._delivery = delivery
            self.send_event(messages.VideoDelivery(videos=delivery))

    def _defer_idle_offer(self) -> None:
        """Nothing is forwarded on an idle slot any more; the subscriber learns it is idle with the next
        offer, or after IDLE_SLOT_OFFER_DELAY if none comes (one offer instead of two when someone leaves and
        someone else joins, and a reused slot keeps its direction: nothing to tear down and set up again)."""
        if self._idle_offer is None and self.media_open:
            self._idle_offer = asyncio.get_running_loop().call_later(IDLE_SLOT_OFFER_DELAY, self._idle_offer_due)

    def _idle_offer_due(self) -> None:
        self._idle_offer = None
        self._schedule_offer(changed=True)

    def _cancel_idle_offer(self) -> None:
        if self._idle_offer is not None:
            self._idle_offer.cancel()
            self._idle_offer = None

    def subscription_for(self, publication: Publication) -> Subscription | None:
        return next((s.subscription for s in self.slots if s.subscription.publication is publication), None)

    # --- data channel ------------------------------------------------------------------------

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if self.channel is not None:
            channel.close()  # one channel per participant
            return
        self.channel = channel
        channel.on("message", self._on_channel_message)
        if channel.readyState == "open":
            self._flush_backlog()
        else:
            channel.on("open", self._flush_backlog)

    def _on_channel_message(self, raw: str | bytes) -> None:
        # Runs inside aiortc's SCTP receive path: anything raised here would close this connection.
        try:
            self.events.message(raw)
        except Exception as exc:
            logger.error("request from %s failed: %s", self.owner_id, type(exc).__name__)  # never the content
            self.send_event(messages.ChannelError(code="server-error",
                                                  message="the server could not handle that request"))

    def _flush_backlog(self) -> None:
        backlog, self._channel_backlog = self._channel_backlog, []
        for text in backlog:
            self._send_text(text)

    def send_event(self, message: messages.Struct) -> None:
        text = messages.encode(message)
        if self.channel is not None and self.channel.readyState == "open":
            self._send_text(text)
        elif len(self._channel_backlog) < CHANNEL_BACKLOG:
            self._channel_backlog.append(text)

    def _send_text(self, text: str) -> None:
        assert self.channel is not None
        try:
            self.channel.send(text)
        except Exception:  # closing transport; the participant is on its way out
            logger.debug("data channel send failed for %s", self.owner_id)

    # --- lifetime ----------------------------------------------------------------------------

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        logger.info("participant %s connection %s", self.owner_id, state)
        if state in ("closed", "failed") and not self.media_ended and not self.closed:
            self.end_media()
            if state == "failed":
                self._spawn_close()

    def end_media(self) -> None:
        """The connection is gone (tab closed, network lost): stop forwarding to and from it at once.

        The participant keeps its place (the seat's resume grace decides when it goes); its owner (the
        room) makes other people's slots for its tracks idle before the publications close.
        """
        if self.media_ended:
            return
        self.media_ended = True
        self._cancel_idle_offer()
        for slot in self.slots:
            slot.subscription.stop()
        self.events.ended()
        for publication in self.publications.values():
            publication.close()
        self.publications.clear()

    def _spawn_close(self) -> None:
        task = asyncio.ensure_future(self.pc.close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._cancel_idle_offer()
        for slot in self.slots:
            slot.subscription.stop()
        for publication in self.publications.values():
            publication.close()
        await self.pc.close()
