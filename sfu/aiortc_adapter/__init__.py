"""Every contact point with aiortc/aioice private internals lives here, and only here.

Why: aiortc's tracks only yield *decoded* frames and its senders encode every frame, so an SFU built
on its public API decodes once per publisher and re-encodes once per subscriber. Its maintainers say
there is no supported way around that (aiortc issues #449, #55). We forward encoded frames instead:

1. Receive side: before a receiver starts, its private JitterBuffer is swapped for our frame assembler
   (framing.py here), which hands each reassembled *encoded* frame to the publication. Nothing is ever decoded
   for forwarding, so such a receiver gets no decoder thread either: aiortc starts one per receiver and
   stops it by joining it, and both wait on the event loop for another thread to be scheduled (measured
   under load by bench.churn: 185 ms in one close).
2. Send side: a subscription track yields ``av.Packet`` objects, which RTCRtpSender only packetizes
   (``encoder.pack``); that part is public behaviour. PLI/FIR from a subscriber normally sets a private
   "force keyframe" flag for the sender's encoder; we redirect it to the publication instead.
3. Keyframe requests to a publisher use the receiver's private ``_send_rtcp_pli``.
4. aioice leaves 127.0.0.1 out of host candidates; ``--ice-host`` needs to choose them.
   It also binds each host candidate to a random UDP port and offers the address it bound, so a firewall
   cannot be opened for a known range and a server behind a 1:1 NAT offers an address nobody can reach.
   ``set_host_candidate_policy`` binds host candidates inside a port range and/or announces a public
   address instead (as mediasoup's ``announcedAddress``), replacing the host part of aioice's gathering.
5. aiortc decodes a data-channel text frame as UTF-8 inside its SCTP receive path; invalid bytes raise
   there and take the sender's whole connection down. Such frames are handed on as bytes instead, so
   our own decoder answers them with an ``error``.
6. aiortc reads the wall clock through ``datetime`` for every RTP packet (the arrival time of each one
   received, two NTP timestamps for each one sent): ~1.6-2.3 us a reading. The same values come from
   ``time.time()`` at a third of the cost; per forwarded packet that is a few microseconds.
7. Simulcast in (RID-based, RFC 8853): aiortc parses the rid/repaired-rid header extensions but neither
   negotiates them nor receives more than one stream per m-line. The answer (and every server re-offer)
   gets ``a=rid:<id> recv`` and ``a=simulcast:recv`` for the layers the browser offered; the receiver's
   jitter buffer becomes one assembler per SSRC (sfu.aiortc_adapter.framing.VideoStreamsAssembler), its NACK generator
   one per SSRC, and RTX streams are mapped to their layer by repaired-rid as they first arrive
   (aiortc knows RTX SSRCs only from ``a=ssrc-group:FID``, which RID simulcast does not send).
8. aiortc's REMB to a publisher follows its delay-based estimate, which never exceeds 1.5x what arrives:
   a simulcast browser turns its top layer on only once the estimate covers all layers, which it then
   never does (measured: stuck at ~500 kbit/s with the top layer off). Without overuse in the last
   REMB_FLOOR_QUIET_S the REMB we send is at least PUBLISHER_REMB_FLOOR_BPS; the browser's own loss-based
   control still backs off on a thin uplink, and overuse still lowers the REMB at once.
9. Downlink feedback: REMB and receiver-report loss a subscriber's browser sends about our RTP reach
   aiortc's sender, which only stores them; ``observe_downlink`` hands them to the session too.
10. aiortc's receive-side bitrate estimator (REMB) counts bytes in a RateCounter holding one RateBucket
    object per millisecond of its 1 s window, made anew at every reset: 1,000+ objects per video receiver
    that every full garbage collection walks (18,000 of the 100,000 tracked objects of a 3-person room,
    server and clients). The same numbers are kept in two integer arrays instead.
11. aiortc's sender keeps its last 128 RTP packets (``RtpPacket`` objects with their header extensions and
    payloads) to answer NACKs, and an idle pooled slot keeps them for ever: ~170 kB per idle video slot and
    ~55 kB per idle audio one at 320x240 (tracemalloc in the server), the largest part of what an idle slot
    costs, and small long-lived objects that pin Python's allocator arenas after the peak of a churn.
    ``forget_sent_packets`` empties the history of a sender that has nothing to send (nothing it could be
    asked to retransmit is still useful to a decoder once the slot is idle). A working sender's history
    (``keep_compact_rtp_history``) keeps each packet as one tuple of what aiortc's sender sets on it (its
    numbers packed in 11 bytes), made back into an RtpPacket when a NACK asks for it: ~130 bytes of Python
    heap a packet besides its payload, instead of ~450 (the packet, its attribute values, HeaderExtensions,
    an empty csrc list, three int objects), ~40 kB less per forwarded video track. An audio sender keeps
    none: aiortc offers and accepts NACK for no audio codec, so nothing can ask for a retransmission
    (~33 kB of 128 small packets per forwarded audio track).
    The REMB counter of patch 10 makes its arrays at its first byte: the receiver of a server->client
    slot never counts anything.

Written against aiortc 1.16.0 / aioice 0.13.0. ``check_compatibility()`` runs at server start and in
tests (tests/test_aiortc_adapter.py) and fails loudly if these internals move.
"""

from __future__ import annotations

import asyncio
import copy
import dis
import errno
import inspect
import ipaddress
import itertools
import logging
import socket
import struct
import threading
import time
import types
import weakref
from array import array
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

import aioice.candidate
import aioice.ice
import aioice.turn
import aiortc.clock as aiortc_clock
import aiortc.codecs as aiortc_codecs
import aiortc.rate as aiortc_rate
import aiortc.rtcpeerconnection as aiortc_pc
import aiortc.rtcrtpreceiver as aiortc_receiver
import aiortc.rtcsctptransport as aiortc_sctp
from aiortc import (
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import rtp as aiortc_rtp
from aiortc import sdp as aiortc_sdp
from aiortc.rate import BandwidthUsage, RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters, RTCRtpSendParameters

from sfu.aiortc_adapter.framing import AudioFrameAssembler, FrameSink, VideoStreamsAssembler

logger = logging.getLogger(__name__)

TESTED_AIORTC = "1.16.0"
TESTED_AIOICE = "0.13.0"

_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_NACK_GENERATOR = "_RTCRtpReceiver__nack_generator"
_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
MAX_SIMULCAST_LAYERS = 3
PUBLISHER_REMB_FLOOR_BPS = 1_300_000  # the web client's three layers together (docs/architecture.md)
REMB_FLOOR_QUIET_S = 10.0
_REMB_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
_RECEIVER_CODECS = "_RTCRtpReceiver__codecs"
_RECEIVER_STARTED = "_RTCRtpReceiver__started"
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"


class AdapterIncompatible(RuntimeError):
    """The installed aiortc/aioice no longer has the internals this adapter relies on."""


def _feeds_jitter_buffer() -> bool:
    """`self.__jitter_buffer.add(...)` is in _handle_rtp_packet (other .add() calls there don't count)."""
    instructions = list(dis.get_instructions(RTCRtpReceiver._handle_rtp_packet))
    return any(a.argval == _JITTER_BUFFER and b.argval == "add" for a, b in itertools.pairwise(instructions))


def check_compatibility() -> None:
    problems: list[str] = []
    for package, tested in (("aiortc", TESTED_AIORTC), ("aioice", TESTED_AIOICE)):
        if version(package) != tested:
            problems.append(f"{package} {version(package)} installed, adapter written for {tested}")
    init_names = RTCRtpReceiver.__init__.__code__.co_names
    for attr in (_JITTER_BUFFER, _RECEIVER_CODECS, _RECEIVER_STARTED, _NACK_GENERATOR, _RTX_SSRC, _REMB_ESTIMATOR):
        if attr not in init_names:
            problems.append(f"RTCRtpReceiver no longer sets {attr}")
    if not _feeds_jitter_buffer():
        problems.append("RTCRtpReceiver._handle_rtp_packet no longer feeds its jitter buffer via add()")
    if not callable(getattr(RTCRtpReceiver, "_send_rtcp_pli", None)):
        problems.append("RTCRtpReceiver._send_rtcp_pli is gone")
    if "_send_keyframe" not in RTCRtpSender._handle_rtcp_packet.__code__.co_names:
        problems.append("RTCRtpSender no longer routes PLI/FIR through _send_keyframe")
    if "_next_encoded_frame" not in RTCRtpSender._run_rtp.__code__.co_names or "audio_level" not in (
            RTCRtpSender._run_rtp.__code__.co_names):
        problems.append("RTCRtpSender._run_rtp no longer takes frames (and their audio_level) from _next_encoded_frame")
    if "pack" not in RTCRtpSender._next_encoded_frame.__code__.co_names:
        problems.append("RTCRtpSender no longer packs pre-encoded av.Packet data")
    if "_query_consent_task" not in _original_connect.__code__.co_names:
        problems.append("aioice Connection.connect no longer starts _query_consent_task")
    if "filter_preferred_codecs" not in aiortc_pc.RTCPeerConnection.createOffer.__code__.co_names:
        problems.append("RTCPeerConnection.createOffer no longer filters codecs via filter_preferred_codecs")
    if "_codecs" not in aiortc_pc.RTCPeerConnection._RTCPeerConnection__localRtp.__code__.co_names:
        problems.append("answers are no longer built from transceiver._codecs (ask_for_opus_dtx)")
    if "HEADER_EXTENSIONS" not in aiortc_pc.RTCPeerConnection.createOffer.__code__.co_names:
        problems.append("RTCPeerConnection.createOffer no longer reads HEADER_EXTENSIONS")
    if any(i.opname == "GET_AWAITABLE" for i in dis.get_instructions(aiortc_pc.RTCPeerConnection.createOffer)):
        problems.append("RTCPeerConnection.createOffer now awaits; create_offer() cannot swap tables around it")
    if not callable(getattr(aioice.ice, "get_host_addresses", None)):
        problems.append("aioice.ice.get_host_addresses is gone")
    problems += _host_candidate_problems()
    problems += _decoder_thread_problems()
    problems += _rate_counter_problems()
    receive = _original_data_channel_receive.__code__
    if "decode" not in receive.co_names or "WEBRTC_STRING" not in receive.co_names:
        problems.append("RTCSctpTransport._data_channel_receive no longer decodes WEBRTC_STRING frames itself")
    if not {"clock", "current_ms"} <= set(RTCDtlsTransport._recv_next.__code__.co_names):
        problems.append("RTCDtlsTransport._recv_next no longer stamps arrival via clock.current_ms")
    if not {"clock", "current_ntp_time"} <= set(RTCRtpSender._run_rtp.__code__.co_names):
        problems.append("RTCRtpSender._run_rtp no longer reads clock.current_ntp_time")
    if abs(_original_current_ms() - _fast_current_ms()) > 50 or abs(
            _original_current_ntp_time() - _fast_current_ntp_time()) > (50 << 32) // 1000:
        problems.append("aiortc's clock no longer counts from the NTP epoch (1900) as the fast clock does")
    if (aiortc_sctp.WEBRTC_STRING, aiortc_sctp.WEBRTC_BINARY) != (51, 53):
        problems.append("aiortc's data-channel PPIDs moved")
    if "_data_channel_queue" not in aiortc_sctp.RTCSctpTransport._data_channel_send.__code__.co_names:
        problems.append("RTCSctpTransport._data_channel_send no longer queues (pp_id, bytes)")
    problems += _simulcast_problems()
    problems += _rtp_history_problems()
    if problems:
        raise AdapterIncompatible("; ".join(problems))


def _simulcast_problems() -> list[str]:
    """What simulcast reception relies on in aiortc 1.16.0."""
    problems: list[str] = []
    handle = RTCRtpReceiver._handle_rtp_packet.__code__.co_names
    for name in (_NACK_GENERATOR, _RTX_SSRC, "unwrap_rtx", "missing"):
        if name not in handle:
            problems.append(f"RTCRtpReceiver._handle_rtp_packet no longer uses {name}")
    uris = {"rtp_stream_id": RID_URI, "repaired_rtp_stream_id": REPAIRED_RID_URI}
    extension_map = aiortc_rtp.HeaderExtensionsMap()
    extension_map.configure(RTCRtpSendParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=i + 5, uri=uri) for i, uri in enumerate(uris.values())]))
    packed = extension_map.set(aiortc_rtp.HeaderExtensions(rtp_stream_id="h", repaired_rtp_stream_id="m"))
    values = extension_map.get(*packed)
    if (values.rtp_stream_id, values.repaired_rtp_stream_id) != ("h", "m"):
        problems.append("aiortc no longer parses the rid / repaired-rid header extensions")
    if not any(e.uri == "urn:ietf:params:rtp-hdrext:sdes:mid" for e in aiortc_codecs.HEADER_EXTENSIONS["video"]):
        problems.append("aiortc's HEADER_EXTENSIONS table changed shape")
    if "HEADER_EXTENSIONS" not in aiortc_pc.RTCPeerConnection.setRemoteDescription.__code__.co_names:
        problems.append("setRemoteDescription no longer negotiates header extensions from HEADER_EXTENSIONS")
    estimator = RemoteBitrateEstimator()
    add_parameters = list(inspect.signature(estimator.add).parameters)
    if not callable(getattr(getattr(estimator, "detector", None), "state", None)) or add_parameters != [
            "arrival_time_ms", "abs_send_time", "payload_size", "ssrc"]:
        problems.append("aiortc's RemoteBitrateEstimator changed (add() or detector.state())")
    for attr in ("_RTCRtpSender__rtp_header_extensions_map", "_RTCRtpSender__started", "_RTCRtpSender__cname"):
        if attr not in RTCRtpSender.__init__.__code__.co_names:
            problems.append(f"RTCRtpSender no longer sets {attr} (stamp_rid, send_simulcast_layer)")
    sender = RTCRtpSender._handle_rtcp_packet.__code__.co_names
    if "unpack_remb_fci" not in sender or "fraction_lost" not in RTCRtpSender._handle_rtcp_packet.__code__.co_names:
        problems.append("RTCRtpSender._handle_rtcp_packet no longer reads REMB and report loss")
    return problems


def offer_problem(sdp: str) -> str | None:
    """Why an offer is unusable, or None. aiortc reads any text as an SDP with no media sections, which
    would leave the connection with nothing to connect and the client unable to try again."""
    if not sdp.lstrip().startswith("v=0"):
        return "an SDP must start with v=0"
    try:
        parsed = aiortc_sdp.SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises assorted errors on malformed lines
        return f"malformed SDP ({exc})"
    if not parsed.media:
        return "the offer has no media or data channel sections"
    if any(not m.ice.usernameFragment or not m.dtls or not m.dtls.fingerprints for m in parsed.media):
        return "every section needs ICE credentials and a DTLS fingerprint"
    bundled = {mid for g in parsed.group if g.semantic == "BUNDLE" for mid in g.items}
    if any(m.port != 0 and m.rtp.muxId not in bundled for m in parsed.media):
        return "every section must be in the BUNDLE group (one transport, as browsers offer by default)"
    mids = [m.rtp.muxId for m in parsed.media]
    if len(set(mids)) != len(mids) or not bundled <= set(mids):
        # aiortc would build transceivers without a transport and fail half-way through the answer.
        return "each section needs its own mid, and the BUNDLE group may name only those mids"
    return None


def tap_receiver(receiver: RTCRtpReceiver, kind: str, emit: FrameSink) -> None:
    """Make `receiver` hand reassembled encoded frames to `emit` instead of decoding them.

    Must run before the receiver starts (the peer connection's "track" event is early enough).
    """
    if getattr(receiver, _RECEIVER_STARTED):
        raise AdapterIncompatible("receiver already started; tap it from the 'track' event")
    _undecoded_queues.add(getattr(receiver, _DECODER_QUEUE))
    if kind == "audio":
        setattr(receiver, _JITTER_BUFFER, AudioFrameAssembler(emit))
        return
    setattr(receiver, _JITTER_BUFFER, VideoStreamsAssembler(emit))
    setattr(receiver, _NACK_GENERATOR, _NackPerStream(getattr(receiver, _NACK_GENERATOR).__class__))
    _map_rtx_by_repaired_rid(receiver)


def keep_remb_floor(receiver: RTCRtpReceiver) -> None:
    """The server's receiver of a publisher's video: REMB at least PUBLISHER_REMB_FLOOR_BPS while no overuse
    was seen (module docstring, 8)."""
    setattr(receiver, _REMB_ESTIMATOR, _RembWithFloor(getattr(receiver, _REMB_ESTIMATOR)))


class _RembWithFloor:
    """aiortc's estimator, with the REMB it reports kept at PUBLISHER_REMB_FLOOR_BPS or more while no
    overuse was seen for REMB_FLOOR_QUIET_S (module docstring, 8)."""

    def __init__(self, estimator: RemoteBitrateEstimator) -> None:
        self.estimator = estimator
        self._overuse_at_ms = -1e12

    def add(self, arrival_time_ms: int, abs_send_time: int, payload_size: int,
            ssrc: int) -> tuple[int, list[int]] | None:
        result = self.estimator.add(arrival_time_ms=arrival_time_ms, abs_send_time=abs_send_time,
                                    payload_size=payload_size, ssrc=ssrc)
        if self.estimator.detector.state() == BandwidthUsage.OVERUSING:
            self._overuse_at_ms = arrival_time_ms
        if result is None:
            return None
        bitrate, ssrcs = result
        if arrival_time_ms - self._overuse_at_ms > REMB_FLOOR_QUIET_S * 1000:
            bitrate = max(bitrate, PUBLISHER_REMB_FLOOR_BPS)
        return bitrate, ssrcs


class _NackPerStream:
    """aiortc's NackGenerator follows one sequence space; simulcast interleaves one per SSRC, which it
    would read as a storm of losses. The receiver asks for `.missing` right after `add` returned True,
    for the same packet's SSRC, so `.missing` answers for the stream last added to."""

    def __init__(self, generator: type) -> None:
        self._generator = generator
        self._streams: dict[int, Any] = {}
        self._last: Any = None

    def add(self, packet: Any) -> bool:
        stream = self._streams.get(packet.ssrc)
        if stream is None:
            if len(self._streams) >= 2 * MAX_SIMULCAST_LAYERS + 2:
                return False
            stream = self._streams[packet.ssrc] = self._generator()
        self._last = stream
        return bool(stream.add(packet))

    @property
    def missing(self) -> set[int]:
        return self._last.missing if self._last is not None else set()


def _map_rtx_by_repaired_rid(receiver: RTCRtpReceiver) -> None:
    """Teach the receiver which RTX SSRC repairs which layer, from the rid / repaired-rid extensions."""
    rtx_ssrc: dict[int, int] = getattr(receiver, _RTX_SSRC)
    media_by_rid: dict[str, int] = {}
    repair_by_rid: dict[str, int] = {}
    original = receiver._handle_rtp_packet

    def learn(names: dict[str, int], rid: str | None, ssrc: int) -> bool:
        if not rid or rid in names or len(names) >= 2 * MAX_SIMULCAST_LAYERS:
            return False
        names[rid] = ssrc
        return True

    async def handle(packet: Any, arrival_time_ms: int) -> None:
        extensions = packet.extensions
        if packet.ssrc not in rtx_ssrc and extensions is not None:
            media = learn(media_by_rid, extensions.rtp_stream_id, packet.ssrc)
            # Not `or`: both names must be learnt from this packet.
            if learn(repair_by_rid, extensions.repaired_rtp_stream_id, packet.ssrc) | media:
                for rid, repair in repair_by_rid.items():  # only when a name is new, not per packet
                    if rid in media_by_rid and repair not in rtx_ssrc:
                        rtx_ssrc[repair] = media_by_rid[rid]
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]


def offered_simulcast(sdp: str) -> dict[str, list[str]]:
    """The RID layers each m-line of a client's offer sends (`a=simulcast:send`), by mid, at most
    MAX_SIMULCAST_LAYERS each. Paused layers (~rid) and alternatives after the first are left out."""
    layers: dict[str, list[str]] = {}
    for section in _media_sections(sdp):
        mid = next((line[6:].strip() for line in section if line.startswith("a=mid:")), None)
        declared = {line[6:].split()[0] for line in section if line.startswith("a=rid:") and " send" in line}
        for line in section:
            if not line.startswith("a=simulcast:"):
                continue
            words = line[len("a=simulcast:"):].split()
            if len(words) < 2 or words[0] != "send" or mid is None:
                continue
            rids = []
            for stream in words[1].split(";"):
                rid = stream.split(",")[0].lstrip("~")
                if rid in declared and _valid_rid(rid) and rid not in rids:
                    rids.append(rid)
            if rids:
                layers[mid] = rids[:MAX_SIMULCAST_LAYERS]
    return layers


def _valid_rid(rid: str) -> bool:
    return 0 < len(rid) <= 16 and all(c.isalnum() or c in "-_" for c in rid)


def _media_sections(sdp: str) -> list[list[str]]:
    sections: list[list[str]] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append([])
        if sections:
            sections[-1].append(line)
    return sections


def receive_simulcast(sdp: str, layers: dict[str, list[str]]) -> str:
    """Our SDP (answer or re-offer) with `a=rid:<id> recv` and `a=simulcast:recv` on each m-line that
    receives simulcast; aiortc's serializer knows neither attribute."""
    if not layers:
        return sdp
    out: list[str] = []
    mid: str | None = None

    def close_section() -> None:
        if mid in layers:
            out.extend(f"a=rid:{rid} recv" for rid in layers[mid])
            out.append("a=simulcast:recv " + ";".join(layers[mid]))

    for line in sdp.splitlines():
        if line.startswith("m="):
            close_section()
            mid = None
        elif line.startswith("a=mid:"):
            mid = line[6:].strip()
        out.append(line)
    close_section()
    return "\r\n".join(out) + "\r\n"


def observe_downlink(sender: RTCRtpSender, on_remb: Callable[[int], None],
                     on_loss: Callable[[float], None]) -> None:
    """REMB (bits/s) and report-block loss (0..1) the subscriber sends about this sender's stream."""
    original = sender._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        if isinstance(packet, aiortc_rtp.RtcpPsfbPacket) and packet.fmt == aiortc_rtp.RTCP_PSFB_APP:
            try:
                on_remb(aiortc_rtp.unpack_remb_fci(packet.fci)[0])
            except ValueError:
                pass
        elif isinstance(packet, (aiortc_rtp.RtcpRrPacket, aiortc_rtp.RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == sender._ssrc:
                    on_loss(report.fraction_lost / 256)
        await original(packet)

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]


_undecoded_queues: weakref.WeakSet[object] = weakref.WeakSet()  # decoder queues of tapped receivers


class _NoDecoderThread:
    """Stands in for a tapped receiver's decoder thread: starting and joining it costs nothing."""

    def start(self) -> None:
        return None

    def join(self, timeout: float | None = None) -> None:
        return None


class _ReceiverThreading:
    """What aiortc.rtcrtpreceiver sees as `threading`: a real thread for a receiver that decodes, none for a
    tapped one (the decoder queue is the second of the worker's arguments)."""

    Event = threading.Event

    @staticmethod
    def Thread(*, target: Callable[..., None], name: str, args: tuple[Any, ...]) -> object:
        if len(args) > 1 and args[1] in _undecoded_queues:
            return _NoDecoderThread()
        return threading.Thread(target=target, name=name, args=args)


_OriginalRateCounter = aiortc_rate.RateCounter


class CompactRateCounter(_OriginalRateCounter):
    """aiortc's RateCounter (1 ms buckets over a window, a running total), with the buckets in two integer
    arrays instead of one Python object each: same arithmetic, nothing for the garbage collector to walk."""

    def reset(self) -> None:
        self._counts: array[int] | None = None  # made at the first add()
        self._values: array[int] | None = None
        self._origin_index = 0
        self._origin_ms: int | None = None
        self._total_count = 0
        self._total_value = 0

    def add(self, value: int, now_ms: int) -> None:
        if self._counts is None or self._values is None:
            self._counts = array("q", bytes(8 * self._window_size))
            self._values = array("q", bytes(8 * self._window_size))
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms)
        index = (self._origin_index + now_ms - self._origin_ms) % self._window_size
        self._counts[index] += 1
        self._values[index] += value
        self._total_count += 1
        self._total_value += value

    def rate(self, now_ms: int) -> int | None:
        if self._origin_ms is not None:
            self._erase_old(now_ms)
            active_window_size = now_ms - self._origin_ms + 1
            if self._total_count > 0 and active_window_size > 1:
                return round(self._scale * self._total_value / active_window_size)
        return None

    def _erase_old(self, now_ms: int) -> None:
        assert self._origin_ms is not None and self._counts is not None and self._values is not None
        new_origin_ms = now_ms - self._window_size + 1
        while self._origin_ms < new_origin_ms:
            index = self._origin_index
            self._total_count -= self._counts[index]
            self._total_value -= self._values[index]
            self._counts[index] = 0
            self._values[index] = 0
            self._origin_index = (index + 1) % self._window_size
            self._origin_ms += 1


def _rate_counter_problems() -> list[str]:
    problems = []
    ours = {"reset", "add", "rate", "_erase_old"}
    for name, member in vars(_OriginalRateCounter).items():
        code = getattr(member, "__code__", None)
        if code is not None and name not in ours and name != "__init__" and (
                {"_buckets", "_total"} & set(code.co_names)):
            problems.append(f"aiortc's RateCounter.{name} uses its buckets; CompactRateCounter does not have them")
    if not ours <= set(vars(_OriginalRateCounter)):
        problems.append("aiortc's RateCounter no longer has reset/add/rate/_erase_old")
    if "RateCounter" not in aiortc_rate.RemoteBitrateEstimator.__init__.__code__.co_names:
        problems.append("RemoteBitrateEstimator no longer makes its RateCounter from the module's name")
    return problems


def _decoder_thread_problems() -> list[str]:
    receive = inspect.getsource(RTCRtpReceiver.receive)
    problems = []
    if not {"threading", "Thread", "decoder_worker"} <= set(RTCRtpReceiver.receive.__code__.co_names):
        problems.append("RTCRtpReceiver.receive no longer starts threading.Thread(decoder_worker)")
    elif "asyncio.get_event_loop(),\n                    self.__decoder_queue," not in receive:
        problems.append("RTCRtpReceiver.receive no longer passes the decoder queue as the worker's second argument")
    if not {"join", "put"} <= set(RTCRtpReceiver._RTCRtpReceiver__stop_decoder.__code__.co_names):
        problems.append("RTCRtpReceiver stops its decoder other than by put(None) and join()")
    if _DECODER_QUEUE not in RTCRtpReceiver.__init__.__code__.co_names:
        problems.append(f"RTCRtpReceiver no longer sets {_DECODER_QUEUE}")
    return problems


_RTP_HISTORY = "_RTCRtpSender__rtp_history"


def forget_sent_packets(sender: RTCRtpSender) -> None:
    """Drop the RTP packets `sender` keeps for retransmission (its slot went idle: no NACK can want them)."""
    getattr(sender, _RTP_HISTORY).clear()


_PACKET_FIELDS = ("payload_type", "marker", "sequence_number", "timestamp", "ssrc", "payload")
_EXTENSION_FIELDS = ("abs_send_time", "mid", "audio_level")  # what RTCRtpSender._run_rtp sets


_HISTORY_HEADER = struct.Struct("!BHLL")  # marker and payload type, sequence number, timestamp, abs-send-time
_NO_ABS_SEND_TIME = 0xFFFFFFFF  # abs-send-time is 24 bits


class _CompactRtpHistory(dict):  # type: ignore[type-arg]
    """RTCRtpSender's RTP history (sequence number % 128 -> RtpPacket), each packet kept as one tuple of the
    fields _run_rtp sets, its numbers packed in 11 bytes (no int objects kept alive), and rebuilt by get()
    for _retransmit (pinned: _rtp_history_problems)."""

    def __setitem__(self, index: int, packet: aiortc_rtp.RtpPacket) -> None:
        extensions = packet.extensions
        abs_send_time = extensions.abs_send_time
        level = extensions.audio_level  # (voice activity, level): both cached small objects once apart
        super().__setitem__(index, (
            _HISTORY_HEADER.pack(packet.marker << 7 | packet.payload_type, packet.sequence_number, packet.timestamp,
                                 _NO_ABS_SEND_TIME if abs_send_time is None else abs_send_time),
            packet.ssrc, packet.payload, extensions.mid,
            None if level is None else level[0], None if level is None else level[1]))

    def get(self, index: int, default: Any = None) -> Any:
        kept = super().get(index)
        if kept is None:
            return default
        header, ssrc, payload, mid, voice, level = kept
        marker_type, sequence_number, timestamp, abs_send_time = _HISTORY_HEADER.unpack(header)
        packet = aiortc_rtp.RtpPacket(payload_type=marker_type & 0x7F, marker=marker_type >> 7,
                                      sequence_number=sequence_number, timestamp=timestamp, ssrc=ssrc, payload=payload)
        packet.extensions.abs_send_time = None if abs_send_time == _NO_ABS_SEND_TIME else abs_send_time
        packet.extensions.mid = mid
        packet.extensions.audio_level = None if level is None else (voice, level)
        return packet


class _NoRtpHistory(dict):  # type: ignore[type-arg]
    """The history of a sender no NACK can reach: aiortc negotiates NACK for no audio codec."""

    def __setitem__(self, index: int, packet: aiortc_rtp.RtpPacket) -> None:
        return None


def keep_compact_rtp_history(sender: RTCRtpSender) -> None:
    """Keep `sender`'s history for NACKs as tuples, or none for audio (before it sends anything)."""
    if getattr(sender, _RTP_HISTORY):
        raise AdapterIncompatible("keep_compact_rtp_history needs a sender that has sent nothing")
    setattr(sender, _RTP_HISTORY, _CompactRtpHistory() if sender.kind == "video" else _NoRtpHistory())


def sent_packets_kept(sender: RTCRtpSender) -> int:
    """How many sent RTP packets `sender` keeps for retransmission (tests, diagnostics)."""
    return len(getattr(sender, _RTP_HISTORY))


def _rtp_history_problems() -> list[str]:
    """forget_sent_packets and keep_compact_rtp_history rely on the history being one dict, filled by
    _run_rtp with packets whose fields they know and only read by _retransmit through get() (which finds
    nothing and sends nothing when it is empty), and on no audio codec negotiating NACK."""
    problems = []
    if _RTP_HISTORY not in RTCRtpSender.__init__.__code__.co_names:
        problems.append(f"RTCRtpSender no longer sets {_RTP_HISTORY}")
    sender_names = {name for name, member in vars(RTCRtpSender).items()
                    if _RTP_HISTORY in getattr(getattr(member, "__code__", None), "co_names", ())}
    if sender_names != {"__init__", "_run_rtp", "_retransmit"}:
        problems.append(f"RTCRtpSender's RTP history is used by {sorted(sender_names)}, not only _run_rtp/_retransmit")
    retransmit = list(dis.get_instructions(RTCRtpSender._retransmit))
    if not any(a.argval == _RTP_HISTORY and b.argval == "get" for a, b in itertools.pairwise(retransmit)):
        problems.append("RTCRtpSender._retransmit no longer looks packets up with history.get()")
    run_rtp = list(dis.get_instructions(RTCRtpSender._run_rtp))
    if not any(a.argval == _RTP_HISTORY and any(b.opname == "STORE_SUBSCR" for b in run_rtp[k + 1:k + 8])
               for k, a in enumerate(run_rtp)):
        problems.append("RTCRtpSender._run_rtp no longer stores packets as history[seq % size] = packet")
    packet_stores = {i.argval for i in run_rtp if i.opname == "STORE_ATTR" and not i.argval.startswith("_RTCRtpSender")}
    if packet_stores != {"ssrc", "payload", "marker", *_EXTENSION_FIELDS}:
        problems.append(f"RTCRtpSender._run_rtp sets {sorted(packet_stores)} on its packets; the compact history "
                        "keeps only payload type, marker, sequence number, timestamp, ssrc, payload, "
                        + ", ".join(_EXTENSION_FIELDS))
    if list(inspect.signature(aiortc_rtp.RtpPacket).parameters) != list(_PACKET_FIELDS):
        problems.append("aiortc's RtpPacket() takes other arguments")
    if any(feedback.type == "nack" for codec in aiortc_codecs.CODECS["audio"] for feedback in codec.rtcpFeedback):
        problems.append("aiortc now negotiates NACK for audio: audio senders need their RTP history")
    if "rtcpFeedback" not in aiortc_pc.find_common_codecs.__code__.co_names:
        problems.append("aiortc no longer keeps only the RTCP feedback both sides support")
    return problems


def receiver_codec(receiver: RTCRtpReceiver, payload_type: int) -> RTCRtpCodecParameters | None:
    codecs: dict[int, RTCRtpCodecParameters] = getattr(receiver, _RECEIVER_CODECS)
    return codecs.get(payload_type)


_pending_plis: set[asyncio.Future[None]] = set()


def request_keyframe(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send a PLI to the publisher for `media_ssrc`."""
    task = asyncio.ensure_future(receiver._send_rtcp_pli(media_ssrc))
    _pending_plis.add(task)
    task.add_done_callback(_pending_plis.discard)


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


_original_get_component_candidates = aioice.ice.Connection.get_component_candidates


def _names_used(code: types.CodeType) -> set[str]:
    """Global and attribute names a function uses, nested comprehensions included."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _names_used(constant)
    return names


def _host_candidate_problems() -> list[str]:
    """What set_host_candidate_policy relies on in aioice 0.13.0."""
    problems: list[str] = []
    gather = _names_used(aioice.ice.Connection.gather_candidates.__code__)
    if "get_component_candidates" not in gather or "get_host_addresses" not in gather:
        problems.append("aioice Connection.gather_candidates no longer passes get_host_addresses() to "
                        "get_component_candidates")
    parameters = list(inspect.signature(_original_get_component_candidates).parameters)
    if parameters[:3] != ["self", "component", "addresses"]:
        problems.append(f"aioice Connection.get_component_candidates takes {parameters}, not (component, addresses)")
    body = _names_used(_original_get_component_candidates.__code__)
    for name in ("create_datagram_endpoint", "stun_server", "turn_server", "relayed_candidate", "_protocols"):
        if name not in body:
            problems.append(f"aioice Connection.get_component_candidates no longer uses {name}")
    if "local_candidate" not in aioice.ice.CandidatePair.local_candidate.fget.__code__.co_names:
        problems.append("aioice CandidatePair no longer takes its local candidate from its protocol")
    if "receiver" not in inspect.signature(aioice.ice.StunProtocol).parameters:
        problems.append("aioice StunProtocol is no longer built from its Connection")
    for name in ("candidate_foundation", "candidate_priority"):
        if not callable(getattr(aioice.candidate, name, None)):
            problems.append(f"aioice.candidate.{name} is gone")
    if not callable(getattr(aioice.ice, "server_reflexive_candidate", None)):
        problems.append("aioice.ice.server_reflexive_candidate is gone")
    return problems


class PortRange:
    """UDP ports host candidates may bind, handed out round-robin so a freed port is not reused at once."""

    def __init__(self, first: int, last: int) -> None:
        if not 1024 <= first <= last <= 65535:
            raise ValueError(f"ICE port range must be within 1024-65535 with first <= last, not {first}-{last}")
        self.first, self.last = first, last
        self._next = first

    def __len__(self) -> int:
        return self.last - self.first + 1

    def candidates(self) -> list[int]:
        """Every port once, starting after the one handed out last."""
        start = self._next - self.first
        ports = list(range(self.first, self.last + 1))
        return ports[start:] + ports[:start]

    def taken(self, port: int) -> None:
        self._next = self.first if port >= self.last else port + 1


async def _bind_host(connection: aioice.ice.Connection, address: str, ports: PortRange | None
                     ) -> aioice.ice.StunProtocol | None:
    loop = asyncio.get_running_loop()
    for port in (ports.candidates() if ports is not None else [0]):
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: aioice.ice.StunProtocol(connection), local_addr=(address, port))
        except OSError as exc:
            if ports is not None and exc.errno == errno.EADDRINUSE:
                continue
            logger.warning("ICE: cannot bind UDP on %s: %s", address, exc)
            return None
        sock = transport.get_extra_info("socket")
        if sock is not None:  # as aioice does for its own host sockets
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE)
        if ports is not None:
            ports.taken(port)
        return protocol
    assert ports is not None
    logger.warning("ICE: every UDP port in %d-%d is in use; a connection has no host candidate "
                   "(the range needs one port per connected participant)", ports.first, ports.last)
    return None


def set_host_candidate_policy(ports: tuple[int, int] | None = None, announced_address: str | None = None,
                              bind_address: str | None = None) -> None:
    """Bind ICE host candidates inside `ports` and/or offer `announced_address` instead of the bound one.

    With an announced address, one socket per connection is bound on `bind_address` (default: the
    wildcard, so packets a 1:1 NAT forwards arrive whatever the local address) and offered as
    announced_address:port; a NAT that keeps ports (as port forwarding of a range does) then delivers.
    Without either, aioice's own gathering is restored. Process-wide, like set_ice_host_addresses.
    """
    if ports is None and announced_address is None:
        aioice.ice.Connection.get_component_candidates = _original_get_component_candidates  # type: ignore[method-assign]
        return
    port_range = PortRange(*ports) if ports is not None else None
    if announced_address is not None:
        family = ipaddress.ip_address(announced_address).version
        bind_address = bind_address or ("0.0.0.0" if family == 4 else "::")

    async def get_component_candidates(self: aioice.ice.Connection, component: int, addresses: list[str],
                                       timeout: int = 5) -> list[aioice.candidate.Candidate]:
        if not addresses:  # relay-only policy: aioice gathers no host candidates, nor do we
            return await _original_get_component_candidates(self, component=component, addresses=[],
                                                            timeout=timeout)
        bind_to = [bind_address] if announced_address is not None else list(addresses)
        protocols = []
        for address in bind_to:
            protocol = await _bind_host(self, address, port_range)
            if protocol is None:
                continue
            bound_host, bound_port = protocol.transport.get_extra_info("sockname")[:2]
            host = announced_address or bound_host
            protocol.local_candidate = aioice.candidate.Candidate(
                foundation=aioice.candidate.candidate_foundation("host", "udp", host),
                component=component, transport="udp", priority=aioice.candidate.candidate_priority(component, "host"),
                host=host, port=bound_port, type="host")
            protocols.append(protocol)
        self._protocols += protocols
        candidates = [p.local_candidate for p in protocols]
        # aioice asks STUN only from the host sockets it bound itself; ask from ours (an announced
        # address already is the public one).
        reflexive = []
        if self.stun_server and announced_address is None:
            reflexive = [asyncio.ensure_future(aioice.ice.server_reflexive_candidate(p, self.stun_server))
                         for p in protocols if ipaddress.ip_address(p.local_candidate.host).version == 4]
        # aioice's own gathering with no addresses does only the TURN allocation.
        relayed = await _original_get_component_candidates(self, component=component, addresses=[], timeout=timeout)
        if reflexive:
            done, pending = await asyncio.wait(reflexive, timeout=timeout)
            candidates += [t.result()[0] for t in done if t.exception() is None]
            for task in pending:
                task.cancel()
        return candidates + relayed

    aioice.ice.Connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]


def negotiated_codec(transceiver: RTCRtpTransceiver) -> RTCRtpCodecParameters | None:
    """The codec the remote side will send first: aiortc keeps the negotiated list privately."""
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    primary = [c for c in codecs if not c.mimeType.lower().endswith("/rtx")]
    return primary[0] if primary else None


class _ExactCodecs(list):  # type: ignore[type-arg]
    """Codec "preferences" that are the exact codecs, payload types included, to offer again."""


_original_filter_preferred_codecs = aiortc_pc.filter_preferred_codecs


def _filter_keeping_exact(codecs: list[RTCRtpCodecParameters], preferred: list) -> list[RTCRtpCodecParameters]:  # type: ignore[type-arg]
    if isinstance(preferred, _ExactCodecs):
        return [copy.deepcopy(c) for c in preferred]
    return _original_filter_preferred_codecs(codecs, preferred)


def pin_codecs(transceiver: RTCRtpTransceiver, codecs: list[RTCRtpCodecParameters]) -> None:
    """Offer exactly `codecs` on this m-line from now on.

    aiortc rebuilds every m-line's codecs from its own table (its payload types) on each createOffer.
    Browsers reject a re-offer that changes a negotiated m-line's payload types, and within a BUNDLE
    group one payload type must mean one codec on every m-line, so forwarded m-lines must reuse the
    payload types the browser itself chose.
    """
    transceiver._preferred_codecs = _ExactCodecs(codecs)


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    return list(transceiver._codecs)


def ask_for_opus_dtx(transceiver: RTCRtpTransceiver) -> None:
    """Put ``usedtx=1`` in the Opus fmtp of our answer for the client's own audio: a browser then sends
    almost nothing while its person is silent. aiortc builds the answer from the negotiated codecs, which
    copy the offer's parameters; pinned re-offers reuse the same objects, so DTX survives renegotiation."""
    for codec in transceiver._codecs:
        if codec.mimeType.lower() == "audio/opus":
            codec.parameters["usedtx"] = 1


def _session_header_extensions(pc: RTCPeerConnection) -> dict[str, list[RTCRtpHeaderExtensionParameters]]:
    """aiortc's header extensions, renumbered to the IDs already negotiated on this connection."""
    negotiated: dict[str, int] = {}
    for description in (pc.remoteDescription, pc.localDescription):
        if description is None:
            continue
        for media in aiortc_sdp.SessionDescription.parse(description.sdp).media:
            for extension in media.rtp.headerExtensions:
                negotiated.setdefault(extension.uri, extension.id)
    used = set(negotiated.values())
    free = (i for i in range(1, 15) if i not in used)
    result: dict[str, list[RTCRtpHeaderExtensionParameters]] = {}
    for kind, extensions in aiortc_codecs.HEADER_EXTENSIONS.items():
        result[kind] = []
        for extension in extensions:
            if extension.uri not in negotiated:
                negotiated[extension.uri] = next(free)
            result[kind].append(RTCRtpHeaderExtensionParameters(id=negotiated[extension.uri], uri=extension.uri))
    return result


async def create_offer(pc: RTCPeerConnection) -> RTCSessionDescription:
    """pc.createOffer(), keeping the RTP header extension IDs this connection already negotiated.

    aiortc numbers extensions from a fixed table on every offer; a browser refuses a re-offer that
    moves an ID ("RTP extension ID reassignment not supported"). createOffer never awaits, so the
    table is swapped only while it runs.
    """
    original = aiortc_pc.HEADER_EXTENSIONS
    aiortc_pc.HEADER_EXTENSIONS = _session_header_extensions(pc)
    try:
        return await pc.createOffer()
    finally:
        aiortc_pc.HEADER_EXTENSIONS = original


_original_connect = aioice.ice.Connection.connect


async def _connect_respecting_close(self: aioice.ice.Connection) -> None:
    await _original_connect(self)
    if getattr(self, "_closing", False):
        task = self._query_consent_task
        if task is not None and not task.done():
            task.cancel()


_original_data_channel_receive = aiortc_sctp.RTCSctpTransport._data_channel_receive


async def _receive_bad_text_as_bytes(self: aiortc_sctp.RTCSctpTransport, stream_id: int, pp_id: int,
                                     data: bytes) -> None:
    if pp_id == aiortc_sctp.WEBRTC_STRING:
        try:
            data.decode("utf8")
        except UnicodeDecodeError:
            pp_id = aiortc_sctp.WEBRTC_BINARY
    await _original_data_channel_receive(self, stream_id, pp_id, data)


def stamp_audio_level(sender: RTCRtpSender, level_of: Callable[[bytes], int]) -> None:
    """Give pre-encoded audio an RFC 6464 level (-dBov, 0 loudest .. 127 silence), as a browser's does.

    aiortc computes the level only for audio it encodes itself; for our replayed Opus (test and benchmark
    publishers) ``level_of`` says it from the encoded frame.
    """
    original = sender._next_encoded_frame

    async def stamped(codec: RTCRtpCodecParameters) -> object:
        frame = await original(codec)
        if frame is not None and frame.audio_level is None and frame.payloads:
            frame.audio_level = -level_of(frame.payloads[0])  # aiortc keeps it negative, as computed
        return frame

    sender._next_encoded_frame = stamped  # type: ignore[method-assign]


async def close_half_built(pc: RTCPeerConnection) -> None:
    """Close a connection an offer failed on half-way, as far as it was built.

    aiortc's close() stops every transceiver's transports and raises at the first transceiver that never
    got one (a failed setRemoteDescription/createAnswer leaves such), leaving the rest running.
    """
    try:
        await pc.close()
        return
    except AttributeError:
        logger.debug("closing a half-built connection transport by transport")
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        for transport in (dtls, dtls.transport if dtls is not None else None):
            if transport is not None:
                try:
                    await transport.stop()
                except Exception:  # already stopped, or never started
                    logger.debug("a transport of a half-built connection would not stop")


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
    if sender._RTCRtpSender__started:
        raise AdapterIncompatible("stamp_rid needs a sender that has not started")
    sender._RTCRtpSender__rtp_header_extensions_map = _RidStampingMap(rid)


async def send_simulcast_layer(transceiver: RTCRtpTransceiver, track: Any, rid: str) -> RTCRtpSender:
    """Another RTP stream (own SSRC) on `transceiver`'s m-line, sending `track` as layer `rid`: a second
    sender on the same transport with the transceiver's negotiated codecs and extensions. Test/bench only."""
    main = transceiver.sender
    sender = RTCRtpSender(track, main.transport)
    stamp_rid(sender, rid)
    parameters = RTCRtpSendParameters(
        codecs=transceiver._codecs, headerExtensions=transceiver._headerExtensions, muxId=transceiver.mid)
    parameters.rtcp.cname = main._RTCRtpSender__cname
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


_NTP_TO_UNIX_S = 2_208_988_800  # seconds from 1900-01-01 (NTP's epoch) to 1970-01-01 (time.time's)
_original_current_ms = aiortc_clock.current_ms
_original_current_ntp_time = aiortc_clock.current_ntp_time


def _fast_current_ms() -> int:
    return int((time.time() + _NTP_TO_UNIX_S) * 1000)


def _fast_current_ntp_time() -> int:
    """64-bit NTP timestamp: seconds since 1900 in the high word, the fraction in the low one."""
    now = time.time() + _NTP_TO_UNIX_S
    seconds = int(now)
    return (seconds << 32) | int((now - seconds) * 4_294_967_296)


_installed = False


def install_patches() -> None:
    """Module-level replacements, installed by the server (create_app) or a client (RoomClient) when it
    starts, never as an import side effect; a second call does nothing:
    - aioice starts consent checks at the end of connect(), even when close() ran meanwhile; that task
      then finds no nominated pair and loops every few seconds for ever, one per departed peer.
    - aiortc's codec filter learns to honour pin_codecs().
    - text frames that are not UTF-8 reach the channel as bytes instead of raising inside aiortc.
    - aiortc's per-packet clock readings use time.time() instead of datetime (callers look the
      functions up on the module at each call, so replacing them there reaches every caller).
    - video m-lines negotiate the rid / repaired-rid header extensions (simulcast in; the IDs are the
      browser's in answers and renumbered to free ones by create_offer).
    - tapped receivers get no decoder thread (the receiver module looks `threading` up at each call).
    - the bitrate estimator's RateCounter keeps its buckets in arrays (looked up on the module).
    """
    global _installed
    if _installed:
        return
    _installed = True
    aioice.ice.Connection.connect = _connect_respecting_close  # type: ignore[method-assign]
    aiortc_pc.filter_preferred_codecs = _filter_keeping_exact
    aiortc_sctp.RTCSctpTransport._data_channel_receive = _receive_bad_text_as_bytes  # type: ignore[method-assign]
    aiortc_clock.current_ms = _fast_current_ms
    aiortc_clock.current_ntp_time = _fast_current_ntp_time
    video_extensions = aiortc_codecs.HEADER_EXTENSIONS["video"]
    for uri in (RID_URI, REPAIRED_RID_URI):
        if all(e.uri != uri for e in video_extensions):
            video_extensions.append(RTCRtpHeaderExtensionParameters(id=len(video_extensions) + 10, uri=uri))
    aiortc_receiver.threading = _ReceiverThreading  # type: ignore[assignment]
    aiortc_rate.RateCounter = CompactRateCounter  # type: ignore[misc]


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
