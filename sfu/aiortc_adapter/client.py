"""Helpers only the headless client (sfu.contrib.client), the tests and the benchmarks use (aiortc 1.16.0).

aiortc cannot simulcast, lose packets on purpose, count keyframe requests or send bad text; a browser can, so a
test client that stands in for one needs these. Nothing in the server calls them.
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import aiortc.rtcsctptransport as aiortc_sctp
from aiortc import RTCDataChannel, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc import rtp as aiortc_rtp
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtcrtpreceiver import StreamStatistics

from sfu.aiortc_adapter.compat import AdapterIncompatible
from sfu.aiortc_adapter.outlet import outlet_of
from sfu.aiortc_adapter.receive import skip_decoder_thread

_SENDER_EXTENSIONS_MAP = "_RTCRtpSender__rtp_header_extensions_map"
_SENDER_STARTED = "_RTCRtpSender__started"
_SENDER_CNAME = "_RTCRtpSender__cname"


def drop_outgoing_rtp(pc: RTCPeerConnection, should_drop: Callable[[bytes], bool]) -> None:
    """Lose RTP packets this connection sends (before SRTP) when `should_drop(packet)` says so.

    For loss tests only: every aiortc sender of a max-bundle connection sends through its one DTLS transport's
    private ``_send_rtp`` (first transmissions and NACK retransmissions alike); a forwarded copy's outlet is
    told directly.
    """
    for transceiver in pc.getTransceivers():  # forwarded copies go out through their outlets
        outlet = outlet_of(transceiver.sender)
        if outlet is not None:
            outlet.lose = should_drop
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


_REMOTE_STREAMS = "_RTCRtpReceiver__remote_streams"
_RECEIVER_CODECS = "_RTCRtpReceiver__codecs"
_RECEIVER_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
_RECEIVER_NACK = "_RTCRtpReceiver__nack_generator"


def receive_packets_only(receiver: RTCRtpReceiver, on_packet: Callable[[Any], None]) -> None:
    """A load generator's receiver: each RTP packet to `on_packet` (after RTX unwrapping) with what a peer owes
    the sender kept (statistics for receiver reports and getStats, NACKs), and nothing else: no bitrate
    estimate, no depayloading, no jitter buffer, no decoding. Benchmarks only: so many listeners in a few
    processes measure the server, not themselves."""
    skip_decoder_thread(receiver)
    _parse_headers_only(receiver.transport)
    streams: dict[int, Any] = getattr(receiver, _REMOTE_STREAMS)
    codecs: dict[int, Any] = getattr(receiver, _RECEIVER_CODECS)
    rtx_ssrc: dict[int, int] = getattr(receiver, _RECEIVER_RTX_SSRC)

    async def handle(packet: aiortc_rtp.RtpPacket, arrival_time_ms: int) -> None:
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        stream = streams.get(packet.ssrc)
        if stream is None:
            stream = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)
        if codec.mimeType.lower().endswith("/rtx"):
            original = rtx_ssrc.get(packet.ssrc)
            apt = codec.parameters.get("apt")
            if original is None or len(packet.payload) < 2 or apt not in codecs:
                return
            packet = aiortc_rtp.unwrap_rtx(packet, payload_type=apt, ssrc=original)
        nack = getattr(receiver, _RECEIVER_NACK)
        if nack is not None and nack.add(packet):
            await receiver._send_rtcp_nack(packet.ssrc, sorted(nack.missing))
        on_packet(packet)

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]


_RTP_FIXED = struct.Struct("!BBHLL")
_light_transports: weakref.WeakSet[RTCDtlsTransport] = weakref.WeakSet()


def _parse_headers_only(transport: RTCDtlsTransport) -> None:
    """The load generator's transport reads each RTP packet's fixed header and skips its header extensions
    (aiortc parses every one of them into Python objects): what a packet-level receiver needs is in the fixed
    header and the payload. Routing is by SSRC (the server's offers name its SSRCs) or payload type, as aiortc's."""
    if transport in _light_transports:
        return
    _light_transports.add(transport)
    router = transport._rtp_router

    async def handle(data: bytes, arrival_time_ms: int) -> None:
        if len(data) < 12:
            return
        first, second, sequence_number, timestamp, ssrc = _RTP_FIXED.unpack_from(data)
        start = 12 + 4 * (first & 0x0F)
        if first & 0x10:
            if len(data) < start + 4:
                return
            start += 4 + 4 * (data[start + 2] << 8 | data[start + 3])
        end = len(data) - (data[-1] if first & 0x20 else 0)
        if start > end:
            return
        packet = aiortc_rtp.RtpPacket(payload_type=second & 0x7F, marker=second >> 7,
                                      sequence_number=sequence_number, timestamp=timestamp, ssrc=ssrc,
                                      payload=data[start:end])
        receiver = router.route_rtp(packet)
        if receiver is not None:
            await receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)

    transport._handle_rtp_data = handle  # type: ignore[method-assign]


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
    handle = RTCRtpReceiver._handle_rtp_packet.__code__.co_names
    for name in (_REMOTE_STREAMS, _RECEIVER_CODECS, _RECEIVER_RTX_SSRC, _RECEIVER_NACK, "unwrap_rtx",
                 "_send_rtcp_nack"):
        if name not in handle:
            found.append(f"RTCRtpReceiver._handle_rtp_packet no longer uses {name} (receive_packets_only)")
    if not {"_handle_rtp_data", "unprotect"} <= set(RTCDtlsTransport._recv_next.__code__.co_names) or (
            "route_rtp" not in RTCDtlsTransport._handle_rtp_data.__code__.co_names):
        found.append("RTCDtlsTransport no longer hands unprotected RTP to _handle_rtp_data, which routes it")
    if not callable(getattr(RTCDtlsTransport, "_send_rtp", None)):
        found.append("RTCDtlsTransport._send_rtp is gone (drop_outgoing_rtp)")
    return found
