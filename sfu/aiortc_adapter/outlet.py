"""Send side of packet forwarding: one subscriber's forwarded copy leaves as RTP we write ourselves (aiortc 1.16.0).

aiortc's RTCRtpSender makes RTP only from frames it packetizes itself (``_run_rtp``: a track, ``encoder.pack``,
header extensions, one awaited chain per packet down to the socket). A forwarder already has the packets, so an
``RtpOutlet`` stands beside the sender and writes each forwarded packet straight out: RTP header with the sender's
SSRC and negotiated payload type, the mid / abs-send-time / audio-level extensions at their negotiated IDs, SRTP
with the connection's transmit session (pylibsrtp), and one ``sendto`` on the nominated candidate pair's UDP
socket, synchronously (nothing awaits, so fan-out never waits). The sender itself stays: it answers RTCP, its
track (the subscription) never yields, and it sends Sender Reports from the counters the outlet keeps for it.

What it touches, all private (pinned by ``problems()``):
- the sender: ``send()`` is wrapped to learn the negotiated parameters the first time it runs; ``_retransmit``
  is replaced so NACKs are served from the outlet's history (below); the SR counters
  ``__ntp_timestamp``/``__rtp_timestamp``/``__packet_count``/``__octet_count`` are kept up to date.
- RTCDtlsTransport ``_state`` and ``_tx_srtp`` (and its byte/packet counters), RTCIceTransport ``_connection``,
  aioice ``Connection._nominated`` and ``StunProtocol.transport`` (a TURN pair goes through its own
  ``send_data``).

History for NACKs: the last 128 packets sent (video; aiortc negotiates NACK for no audio codec), each kept as the
one ``bytes`` object that was protected: ~60 bytes of Python heap besides the payload, less than the compact
history this replaces (~130). A retransmission goes out as RTX when RTX was negotiated, as aiortc's does.

Batching: the standard library has no sendmmsg (socket.sendmsg sends one datagram; UDP GSO needs equal sizes)
and pylibsrtp protects one packet a call, so each packet is one protect and one sendto.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
import weakref
from collections.abc import Callable

from aioice.ice import CandidatePair, Connection, StunProtocol
from aiortc import RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpparameters import RTCRtpSendParameters

from sfu.aiortc_adapter.compat import AdapterIncompatible

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
HISTORY_SIZE = 128  # as aiortc's RTP_HISTORY_SIZE
BACKLOG_BYTES = 64 * 1024  # more than this waiting in the socket's asyncio buffer: the link is not draining

_STARTED = "_RTCRtpSender__started"
_NTP_TIMESTAMP = "_RTCRtpSender__ntp_timestamp"
_RTP_TIMESTAMP = "_RTCRtpSender__rtp_timestamp"
_PACKET_COUNT = "_RTCRtpSender__packet_count"
_OCTET_COUNT = "_RTCRtpSender__octet_count"
_TX_BYTES = "_RTCDtlsTransport__tx_bytes"
_TX_PACKETS = "_RTCDtlsTransport__tx_packets"
_NTP_TO_UNIX_S = 2_208_988_800

_HEADER = struct.Struct("!BBHII")
_pending_sends: set[asyncio.Future[None]] = set()
_outlets: weakref.WeakKeyDictionary[RTCRtpSender, RtpOutlet] = weakref.WeakKeyDictionary()


class RtpOutlet:
    """Writes one sender's forwarded RTP straight to its socket (module docstring)."""

    def __init__(self, sender: RTCRtpSender) -> None:
        if sender.__dict__.get(_STARTED):
            raise AdapterIncompatible("an RtpOutlet needs a sender that has not started")
        self._sender = sender
        self._counters = sender.__dict__  # the SR counters, written in place
        self.kind = sender.kind
        self._history: list[bytes | None] | None = [None] * HISTORY_SIZE if sender.kind == "video" else None
        self._kept = 0
        self._payload_type = -1
        self._rtx_payload_type: int | None = None
        self._rtx_sequence_number = random.randrange(1 << 16)  # RFC 3550: a random start
        self._pack: Callable[[int, int, int, float, int | None], bytes] | None = None
        self._dtls: RTCDtlsTransport | None = None
        self._pair: CandidatePair | None = None
        self._nominated: dict[int, CandidatePair] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._sock: socket.socket | None = None
        self._blocked = False
        self._addr: tuple[str, int] = ("", 0)
        self._protect: Callable[[bytes], bytes] | None = None
        self.lose: Callable[[bytes], bool] | None = None  # loss tests: True drops that packet (before SRTP)
        original_send = sender.send

        async def send(parameters: RTCRtpSendParameters) -> None:
            if not sender.__dict__.get(_STARTED):
                self._learn(parameters)
            await original_send(parameters)

        sender.send = send  # type: ignore[method-assign]
        sender._retransmit = self._retransmit  # type: ignore[method-assign]
        _outlets[sender] = self

    # --- negotiated parameters -------------------------------------------------------------------------------

    def _learn(self, parameters: RTCRtpSendParameters) -> None:
        codec = parameters.codecs[0]
        self._payload_type = codec.payloadType
        for rtx in parameters.codecs[1:]:
            if rtx.mimeType.lower().endswith("/rtx") and rtx.parameters.get("apt") == codec.payloadType:
                self._rtx_payload_type = rtx.payloadType
                break
        ids = {ext.uri: ext.id for ext in parameters.headerExtensions if 1 <= ext.id <= 14}  # one-byte form
        self._pack = _header_packer(self._sender._ssrc, codec.payloadType, ids.get(MID_URI), parameters.muxId,
                                    ids.get(ABS_SEND_TIME_URI), ids.get(AUDIO_LEVEL_URI) if self.kind == "audio"
                                    else None)

    # --- the way out -----------------------------------------------------------------------------------------

    def _connect(self) -> bool:
        """Find the socket, address and SRTP session once the sender started and DTLS is up."""
        self._protect = None
        if self._pack is None or not self._sender.__dict__.get(_STARTED):
            return False
        dtls = self._sender.transport
        if dtls is None or dtls._state != State.CONNECTED or dtls._tx_srtp is None:
            return False
        ice: RTCIceTransport = dtls.transport
        connection: Connection = ice._connection
        pair = connection._nominated.get(1)
        if pair is None:
            return False
        self._dtls, self._pair, self._nominated = dtls, pair, connection._nominated
        protocol = pair.protocol
        # A plain UDP pair sends with transport.sendto (StunProtocol.send_data); a TURN pair has its own path.
        self._udp = protocol.transport if type(protocol) is StunProtocol else None
        sock = getattr(self._udp, "_sock", None)  # asyncio's own socket: one sendto without its Python checks
        self._sock = sock if isinstance(sock, socket.socket) else None
        self._addr = pair.remote_addr
        self._protect = dtls._tx_srtp.protect
        return True

    def _can_send(self) -> bool:
        if (self._protect is None or self._dtls is None or self._dtls._state != State.CONNECTED
                or self._nominated.get(1) is not self._pair) and not self._connect():
            return False
        if self._blocked:  # the socket refused a packet: wait until asyncio has drained what it buffered
            if self._udp is not None and self._udp.get_write_buffer_size() >= BACKLOG_BYTES:
                return False
            self._blocked = False
        return True

    def ready(self) -> bool:
        """Packets can go out now: connected, and the socket is draining."""
        return self._can_send()

    def send(self, sequence_number: int, timestamp: int, marker: int, payload: bytes,
             audio_level: int | None = None) -> bool:
        """Write one packet out now; False (nothing sent) while the copy cannot send (not connected yet, or the
        socket is not draining)."""
        if not self._can_send():
            return False
        assert self._pack is not None
        now = time.time() + _NTP_TO_UNIX_S
        packet = self._pack(marker, sequence_number, timestamp, now, audio_level) + payload
        if self._history is not None:
            slot = sequence_number % HISTORY_SIZE
            if self._history[slot] is None:
                self._kept += 1
            self._history[slot] = packet
        self._write(packet)
        counters = self._counters
        counters[_NTP_TIMESTAMP] = int(now * 4294967296.0)
        counters[_RTP_TIMESTAMP] = timestamp
        counters[_PACKET_COUNT] += 1
        counters[_OCTET_COUNT] += len(payload)
        return True

    def _write(self, packet: bytes) -> None:
        assert self._protect is not None and self._dtls is not None
        if self.lose is not None and self.lose(packet):
            return
        data = self._protect(packet)
        if self._sock is not None and not self._blocked:
            try:
                self._sock.sendto(data, self._addr)
            except (BlockingIOError, InterruptedError):
                self._blocked = True
                assert self._udp is not None
                self._udp.sendto(data, self._addr)  # asyncio keeps it and sends when the socket drains
            except OSError:
                pass  # as asyncio's transport: a datagram that cannot go is lost, the connection stays
        elif self._udp is not None:
            self._udp.sendto(data, self._addr)
        else:
            assert self._pair is not None
            task = asyncio.ensure_future(self._pair.protocol.send_data(data, self._addr))
            _pending_sends.add(task)
            task.add_done_callback(_pending_sends.discard)
        stats = self._dtls.__dict__
        stats[_TX_BYTES] += len(data)
        stats[_TX_PACKETS] += 1

    # --- NACKs -----------------------------------------------------------------------------------------------

    async def _retransmit(self, sequence_number: int) -> None:
        """aiortc's sender calls this for each sequence number a NACK names."""
        kept = self._history[sequence_number % HISTORY_SIZE] if self._history is not None else None
        if kept is None or (kept[2] << 8 | kept[3]) != sequence_number or not self._can_send():
            return
        if self._rtx_payload_type is None:
            self._write(kept)  # the transmit policy allows a repeated index
            return
        header_size = 12 + (4 + 4 * (kept[14] << 8 | kept[15]) if kept[0] & 0x10 else 0)
        rtx = (_HEADER.pack(kept[0], (kept[1] & 0x80) | self._rtx_payload_type, self._rtx_sequence_number,
                            int.from_bytes(kept[4:8], "big"), self._sender._rtx_ssrc)
               + kept[12:header_size] + kept[2:4] + kept[header_size:])
        self._rtx_sequence_number = (self._rtx_sequence_number + 1) & 0xFFFF
        self._write(rtx)

    def forget(self) -> None:
        if self._history is not None:
            self._history = [None] * HISTORY_SIZE
            self._kept = 0

    @property
    def kept(self) -> int:
        return self._kept


def _header_packer(ssrc: int, pt: int, mid_id: int | None, mid: str | None, abs_id: int | None,
                   level_id: int | None) -> Callable[[int, int, int, float, int | None], bytes]:
    """A function writing the RTP header and one-byte header extensions (RFC 8285) for one sender: the mid is
    fixed, abs-send-time is the send time, the audio level is the publisher's (when both sides have it)."""
    fixed = b""
    if mid_id is not None and mid:
        encoded = mid.encode()[:16]
        fixed = bytes([mid_id << 4 | (len(encoded) - 1)]) + encoded
    abs_size = 4 if abs_id is not None else 0
    size = len(fixed) + abs_size
    tail, words = fixed + b"\x00" * (-size % 4), (size + -size % 4) // 4
    level_size = size + 2
    level_tail, level_words = fixed + b"\x00" * (-level_size % 4), (level_size + -level_size % 4) // 4
    abs_tag = (abs_id or 0) << 28 | 2 << 24
    level_tag = (level_id or 0) << 12
    abs_format = "I" if abs_id is not None else ""
    plain = struct.Struct("!BBHIIHH" + abs_format)
    leveled = struct.Struct("!BBHIIHH" + abs_format + "H")

    if not words:  # nothing negotiated that we write (audio level alone is not worth an extension block)
        def pack_bare(marker: int, seq: int, ts: int, now: float, level: int | None) -> bytes:
            return _HEADER.pack(0x80, marker << 7 | pt, seq, ts, ssrc)
        return pack_bare

    def pack(marker: int, seq: int, ts: int, now: float, level: int | None) -> bytes:
        values: tuple[int, ...] = (abs_tag | (int(now * 262144.0) & 0xFFFFFF),) if abs_size else ()  # 6.18 s
        if level is None or level_id is None:
            return plain.pack(0x90, marker << 7 | pt, seq, ts, ssrc, 0xBEDE, words, *values) + tail
        return leveled.pack(0x90, marker << 7 | pt, seq, ts, ssrc, 0xBEDE, level_words, *values,
                            level_tag | level) + level_tail
    return pack


def outlet_of(sender: RTCRtpSender) -> RtpOutlet | None:
    return _outlets.get(sender)


def problems() -> list[str]:
    """What the outlet relies on (module docstring)."""
    found: list[str] = []
    init = RTCRtpSender.__init__.__code__.co_names
    for attr in (_STARTED, _NTP_TIMESTAMP, _RTP_TIMESTAMP, _PACKET_COUNT, _OCTET_COUNT):
        if attr not in init:
            found.append(f"RTCRtpSender no longer sets {attr}")
    rtcp = RTCRtpSender._run_rtcp.__code__.co_names
    if not {_NTP_TIMESTAMP, _RTP_TIMESTAMP, _PACKET_COUNT, _OCTET_COUNT} <= set(rtcp):
        found.append("RTCRtpSender._run_rtcp no longer reports the counters the outlet keeps")
    if "_retransmit" not in RTCRtpSender._handle_rtcp_packet.__code__.co_names:
        found.append("RTCRtpSender no longer answers NACKs through _retransmit")
    if _STARTED not in RTCRtpSender.send.__code__.co_names or "_run_rtp" not in RTCRtpSender.send.__code__.co_names:
        found.append("RTCRtpSender.send no longer starts once, guarded by its started flag")
    dtls_init = RTCDtlsTransport.__init__.__code__.co_names
    for attr in ("_tx_srtp", "_state", _TX_BYTES, _TX_PACKETS):
        if attr not in dtls_init:
            found.append(f"RTCDtlsTransport no longer sets {attr}")
    if "_connection" not in RTCIceTransport.__init__.__code__.co_names:
        found.append("RTCIceTransport no longer keeps its aioice Connection as _connection")
    if "_nominated" not in Connection.sendto.__code__.co_names:
        found.append("aioice Connection.sendto no longer sends on _nominated[component]")
    if StunProtocol.send_data.__code__.co_names != ("transport", "sendto"):
        found.append("aioice StunProtocol.send_data no longer is transport.sendto(data, addr)")
    if not isinstance(getattr(CandidatePair, "remote_addr", None), property):
        found.append("aioice CandidatePair.remote_addr is gone")
    return found
