"""Every contact point with aiortc/aioice private internals lives here, and only here.

Why: aiortc's tracks only yield *decoded* frames and its senders encode every frame, so an SFU built
on its public API decodes once per publisher and re-encodes once per subscriber. Its maintainers say
there is no supported way around that (aiortc issues #449, #55). We forward encoded frames instead:

1. Receive side: before a receiver starts, its private JitterBuffer is swapped for our frame assembler
   (sfu.framing), which hands each reassembled *encoded* frame to the publication. The decoder thread
   aiortc starts anyway then sits idle on an empty queue: nothing is ever decoded for forwarding.
2. Send side: a subscription track yields ``av.Packet`` objects, which RTCRtpSender only packetizes
   (``encoder.pack``); that part is public behaviour. PLI/FIR from a subscriber normally sets a private
   "force keyframe" flag for the sender's encoder; we redirect it to the publication instead.
3. Keyframe requests to a publisher use the receiver's private ``_send_rtcp_pli``.
4. aioice leaves 127.0.0.1 out of host candidates; ``--ice-host`` needs to choose them.

Written against aiortc 1.16.0 / aioice 0.13.0. ``check_compatibility()`` runs at server start and in
tests (tests/test_aiortc_adapter.py) and fails loudly if these internals move.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from importlib.metadata import version

import aioice.ice
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc import sdp as aiortc_sdp
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.framing import AudioFrameAssembler, FrameSink, VideoFrameAssembler

logger = logging.getLogger(__name__)

TESTED_AIORTC = "1.16.0"
TESTED_AIOICE = "0.13.0"

_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_RECEIVER_CODECS = "_RTCRtpReceiver__codecs"
_RECEIVER_STARTED = "_RTCRtpReceiver__started"


class AdapterIncompatible(RuntimeError):
    """The installed aiortc/aioice no longer has the internals this adapter relies on."""


def check_compatibility() -> None:
    problems: list[str] = []
    for package, tested in (("aiortc", TESTED_AIORTC), ("aioice", TESTED_AIOICE)):
        if version(package) != tested:
            problems.append(f"{package} {version(package)} installed, adapter written for {tested}")
    init_names = RTCRtpReceiver.__init__.__code__.co_names
    for attr in (_JITTER_BUFFER, _RECEIVER_CODECS, _RECEIVER_STARTED):
        if attr not in init_names:
            problems.append(f"RTCRtpReceiver no longer sets {attr}")
    if "add" not in RTCRtpReceiver._handle_rtp_packet.__code__.co_names:
        problems.append("RTCRtpReceiver._handle_rtp_packet no longer feeds a jitter buffer via add()")
    if not callable(getattr(RTCRtpReceiver, "_send_rtcp_pli", None)):
        problems.append("RTCRtpReceiver._send_rtcp_pli is gone")
    if "_send_keyframe" not in RTCRtpSender._handle_rtcp_packet.__code__.co_names:
        problems.append("RTCRtpSender no longer routes PLI/FIR through _send_keyframe")
    if "pack" not in RTCRtpSender._next_encoded_frame.__code__.co_names:
        problems.append("RTCRtpSender no longer packs pre-encoded av.Packet data")
    if "_query_consent_task" not in aioice.ice.Connection.connect.__code__.co_names \
            and "_query_consent_task" not in _original_connect.__code__.co_names:
        problems.append("aioice Connection.connect no longer starts _query_consent_task")
    if not callable(getattr(aioice.ice, "get_host_addresses", None)):
        problems.append("aioice.ice.get_host_addresses is gone")
    if problems:
        raise AdapterIncompatible("; ".join(problems))


def tap_receiver(receiver: RTCRtpReceiver, kind: str, emit: FrameSink) -> None:
    """Make `receiver` hand reassembled encoded frames to `emit` instead of decoding them.

    Must run before the receiver starts (the peer connection's "track" event is early enough).
    """
    if getattr(receiver, _RECEIVER_STARTED):
        raise AdapterIncompatible("receiver already started; tap it from the 'track' event")
    assembler = AudioFrameAssembler(emit) if kind == "audio" else VideoFrameAssembler(emit)
    setattr(receiver, _JITTER_BUFFER, assembler)


def receiver_codec(receiver: RTCRtpReceiver, payload_type: int) -> RTCRtpCodecParameters | None:
    codecs: dict[int, RTCRtpCodecParameters] = getattr(receiver, _RECEIVER_CODECS)
    return codecs.get(payload_type)


def request_keyframe(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send a PLI to the publisher for `media_ssrc`."""
    asyncio.ensure_future(receiver._send_rtcp_pli(media_ssrc))


def redirect_keyframe_requests(sender: RTCRtpSender, on_request: Callable[[], None]) -> None:
    """PLI/FIR from a subscriber reach `on_request` (there is no encoder of ours to restart)."""
    sender._send_keyframe = on_request  # type: ignore[method-assign]


_original_get_host_addresses = aioice.ice.get_host_addresses


def set_ice_host_addresses(addresses: Sequence[str] | None) -> None:
    """Offer exactly `addresses` as ICE host candidates; None restores aioice's own choice."""
    if not addresses:
        aioice.ice.get_host_addresses = _original_get_host_addresses
        return
    chosen = list(addresses)

    def fixed(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = fixed


def negotiated_codec(transceiver: RTCRtpTransceiver) -> RTCRtpCodecParameters | None:
    """The codec the remote side will send first: aiortc keeps the negotiated list privately."""
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    primary = [c for c in codecs if not c.mimeType.lower().endswith("/rtx")]
    return primary[0] if primary else None


_original_connect = aioice.ice.Connection.connect


async def _connect_respecting_close(self: aioice.ice.Connection) -> None:
    await _original_connect(self)
    if getattr(self, "_closing", False):
        task = self._query_consent_task
        if task is not None and not task.done():
            task.cancel()


def stop_consent_checks_after_close() -> None:
    """aioice starts consent checks at the end of connect(), even when close() ran meanwhile; that task
    then finds no nominated pair and loops every few seconds for ever, one per departed peer."""
    aioice.ice.Connection.connect = _connect_respecting_close  # type: ignore[method-assign]


stop_consent_checks_after_close()


def bundle_transport(pc: RTCPeerConnection) -> RTCDtlsTransport | None:
    """The DTLS transport every BUNDLEd m-line shares (the first mid of the remote BUNDLE group)."""
    description = pc.remoteDescription
    if description is None:
        return None
    parsed = aiortc_sdp.SessionDescription.parse(description.sdp)
    bundle = next((g for g in parsed.group if g.semantic == "BUNDLE" and g.items), None)
    first_mid = bundle.items[0] if bundle else (parsed.media[0].rtp.muxId if parsed.media else None)
    for transceiver in pc.getTransceivers():
        if transceiver.mid == first_mid:
            return transceiver.receiver.transport
    if pc.sctp is not None:
        return pc.sctp.transport
    return None
