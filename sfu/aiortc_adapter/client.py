"""Helpers only the headless client (sfu.contrib.client), the tests and the benchmarks use (aiortc 1.16.0).

aiortc cannot simulcast, lose packets on purpose, count keyframe requests or send bad text; a browser can, so a
test client that stands in for one needs these. Nothing in the server calls them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import aiortc.rtcsctptransport as aiortc_sctp
from aiortc import RTCDataChannel, RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from aiortc import rtp as aiortc_rtp
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpSendParameters

from sfu.aiortc_adapter.compat import AdapterIncompatible

_SENDER_EXTENSIONS_MAP = "_RTCRtpSender__rtp_header_extensions_map"
_SENDER_STARTED = "_RTCRtpSender__started"
_SENDER_CNAME = "_RTCRtpSender__cname"


def drop_outgoing_rtp(pc: RTCPeerConnection, should_drop: Callable[[bytes], bool]) -> None:
    """Lose RTP packets this connection sends (before SRTP) when `should_drop(packet)` says so.

    For loss tests only: every sender of a max-bundle connection sends through its one DTLS transport's
    private ``_send_rtp`` (first transmissions and NACK retransmissions alike).
    """
    transports = {id(t.sender.transport): t.sender.transport for t in pc.getTransceivers() if t.sender.transport}
    for transport in transports.values():
        original = transport._send_rtp

        async def send(data: bytes, _original: Callable[[bytes], Any] = original) -> None:
            if not should_drop(data):
                await _original(data)

        transport._send_rtp = send  # type: ignore[method-assign]


class _RidStampingMap(aiortc_rtp.HeaderExtensionsMap):
    def __init__(self, rid: str) -> None:
        super().__init__()
        self.rid = rid

    def set(self, values: aiortc_rtp.HeaderExtensions) -> tuple[int, bytes]:
        values.rtp_stream_id = self.rid
        return super().set(values)


def stamp_rid(sender: RTCRtpSender, rid: str) -> None:
    """Make an unstarted sender name its stream `rid` in every packet, as a browser's simulcast layer does.

    For test and benchmark publishers only (aiortc cannot simulcast): the sender's private header
    extension map is swapped before send() configures it.
    """
    if getattr(sender, _SENDER_STARTED):
        raise AdapterIncompatible("stamp_rid needs a sender that has not started")
    setattr(sender, _SENDER_EXTENSIONS_MAP, _RidStampingMap(rid))


async def send_simulcast_layer(transceiver: RTCRtpTransceiver, track: Any, rid: str) -> RTCRtpSender:
    """Another RTP stream (own SSRC) on `transceiver`'s m-line, sending `track` as layer `rid`: a second
    sender on the same transport with the transceiver's negotiated codecs and extensions. Test/bench only."""
    main = transceiver.sender
    sender = RTCRtpSender(track, main.transport)
    stamp_rid(sender, rid)
    parameters = RTCRtpSendParameters(
        codecs=transceiver._codecs, headerExtensions=transceiver._headerExtensions, muxId=transceiver.mid)
    parameters.rtcp.cname = getattr(main, _SENDER_CNAME)
    parameters.rtcp.ssrc = sender._ssrc
    parameters.rtcp.mux = True
    await sender.send(parameters)
    return sender


def offer_simulcast(sdp: str, rids: Sequence[str]) -> str:
    """A test client's offer announcing `rids` on its first video m-line, as a browser's would."""
    out: list[str] = []
    in_video = done = False
    for line in sdp.splitlines():
        if line.startswith("m="):
            if in_video and not done:
                out.extend([*(f"a=rid:{rid} send" for rid in rids), "a=simulcast:send " + ";".join(rids)])
                done = True
            in_video = line.startswith("m=video")
        out.append(line)
    if in_video and not done:
        out.extend([*(f"a=rid:{rid} send" for rid in rids), "a=simulcast:send " + ";".join(rids)])
    return "\r\n".join(out) + "\r\n"


def count_keyframe_requests(sender: RTCRtpSender) -> Callable[[], int]:
    """How many PLI/FIR reached this sender (tests: a subscriber's request got to the publisher)."""
    received = [0]
    original = sender._send_keyframe

    def counted() -> None:
        received[0] += 1
        original()

    sender._send_keyframe = counted  # type: ignore[method-assign]
    return lambda: received[0]


async def send_raw_text_frame(channel: RTCDataChannel, data: bytes) -> None:
    """Send `data` as a data-channel *text* frame whatever its bytes (a browser can do this).

    For hostile-client tests only: aiortc's send() encodes str itself and cannot produce bad UTF-8.
    """
    transport = channel.transport
    transport._data_channel_queue.append((channel, aiortc_sctp.WEBRTC_STRING, data))
    await transport._data_channel_flush()


def problems() -> list[str]:
    """What these helpers rely on (count_keyframe_requests: send.problems() checks _send_keyframe)."""
    found: list[str] = []
    for attr in (_SENDER_EXTENSIONS_MAP, _SENDER_STARTED, _SENDER_CNAME):
        if attr not in RTCRtpSender.__init__.__code__.co_names:
            found.append(f"RTCRtpSender no longer sets {attr} (stamp_rid, send_simulcast_layer)")
    if "_data_channel_queue" not in aiortc_sctp.RTCSctpTransport._data_channel_send.__code__.co_names:
        found.append("RTCSctpTransport._data_channel_send no longer queues (pp_id, bytes)")
    if not callable(getattr(aiortc_sctp.RTCSctpTransport, "_data_channel_flush", None)):
        found.append("RTCSctpTransport._data_channel_flush is gone (send_raw_text_frame)")
    if not callable(getattr(RTCDtlsTransport, "_send_rtp", None)):
        found.append("RTCDtlsTransport._send_rtp is gone (drop_outgoing_rtp)")
    return found
