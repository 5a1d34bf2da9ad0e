"""Send side: a subscription's encoded frames go out through aiortc's RTCRtpSender unchanged (aiortc 1.16.0).

1. A subscription track yields ``av.Packet`` objects, which RTCRtpSender only packetizes (``encoder.pack``);
   that part is public behaviour. PLI/FIR from a subscriber normally sets a private "force keyframe" flag for
   the sender's encoder; ``redirect_keyframe_requests`` hands it to the publication instead.
2. Downlink feedback: REMB and receiver-report loss a subscriber's browser sends about our RTP reach aiortc's
   sender, which only stores them; ``observe_downlink`` hands them to the session too.
3. RTP history: aiortc's sender keeps its last 128 RTP packets (``RtpPacket`` objects with their header
   extensions and payloads) to answer NACKs, and an idle pooled slot keeps them for ever: ~170 kB per idle video
   slot and ~55 kB per idle audio one at 320x240 (tracemalloc in the server), the largest part of what an idle
   slot costs, and small long-lived objects that pin Python's allocator arenas after the peak of a churn.
   ``forget_sent_packets`` empties the history of a sender that has nothing to send (nothing it could be asked
   to retransmit is still useful to a decoder once the slot is idle). A working sender's history
   (``keep_compact_rtp_history``) keeps each packet as one tuple of what aiortc's sender sets on it (its numbers
   packed in 11 bytes), made back into an RtpPacket when a NACK asks for it: ~130 bytes of Python heap a packet
   besides its payload, instead of ~450 (the packet, its attribute values, HeaderExtensions, an empty csrc list,
   three int objects), ~40 kB less per forwarded video track. An audio sender keeps none: aiortc offers and
   accepts NACK for no audio codec, so nothing can ask for a retransmission (~33 kB of 128 small packets per
   forwarded audio track).
4. Audio level: aiortc computes the RFC 6464 level only for audio it encodes itself; ``stamp_audio_level`` gives
   pre-encoded audio one (test and benchmark publishers).
"""

from __future__ import annotations

import dis
import inspect
import itertools
import struct
from collections.abc import Callable
from typing import Any

import aiortc.codecs as aiortc_codecs
import aiortc.rtcpeerconnection as aiortc_pc
from aiortc import RTCRtpSender
from aiortc import rtp as aiortc_rtp
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.aiortc_adapter.compat import AdapterIncompatible

_RTP_HISTORY = "_RTCRtpSender__rtp_history"


# --- 1. keyframe requests from a subscriber -------------------------------------------------------------------------

def redirect_keyframe_requests(sender: RTCRtpSender, on_request: Callable[[], None]) -> None:
    """PLI/FIR from a subscriber reach `on_request` (there is no encoder of ours to restart)."""
    sender._send_keyframe = on_request  # type: ignore[method-assign]


# --- 2. downlink feedback -------------------------------------------------------------------------------------------

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


# --- 3. RTP history -------------------------------------------------------------------------------------------------

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


# --- 4. audio level -------------------------------------------------------------------------------------------------

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


# --- check ----------------------------------------------------------------------------------------------------------

def problems() -> list[str]:
    found: list[str] = []
    if "_send_keyframe" not in RTCRtpSender._handle_rtcp_packet.__code__.co_names:
        found.append("RTCRtpSender no longer routes PLI/FIR through _send_keyframe")
    if "_next_encoded_frame" not in RTCRtpSender._run_rtp.__code__.co_names or "audio_level" not in (
            RTCRtpSender._run_rtp.__code__.co_names):
        found.append("RTCRtpSender._run_rtp no longer takes frames (and their audio_level) from _next_encoded_frame")
    if "pack" not in RTCRtpSender._next_encoded_frame.__code__.co_names:
        found.append("RTCRtpSender no longer packs pre-encoded av.Packet data")
    sender = RTCRtpSender._handle_rtcp_packet.__code__.co_names
    if "unpack_remb_fci" not in sender or "fraction_lost" not in sender:
        found.append("RTCRtpSender._handle_rtcp_packet no longer reads REMB and report loss")
    return found + _rtp_history_problems()


def _rtp_history_problems() -> list[str]:
    """forget_sent_packets and keep_compact_rtp_history rely on the history being one dict, filled by
    _run_rtp with packets whose fields they know and only read by _retransmit through get() (which finds
    nothing and sends nothing when it is empty), and on no audio codec negotiating NACK."""
    found = []
    if _RTP_HISTORY not in RTCRtpSender.__init__.__code__.co_names:
        found.append(f"RTCRtpSender no longer sets {_RTP_HISTORY}")
    sender_names = {name for name, member in vars(RTCRtpSender).items()
                    if _RTP_HISTORY in getattr(getattr(member, "__code__", None), "co_names", ())}
    if sender_names != {"__init__", "_run_rtp", "_retransmit"}:
        found.append(f"RTCRtpSender's RTP history is used by {sorted(sender_names)}, not only _run_rtp/_retransmit")
    retransmit = list(dis.get_instructions(RTCRtpSender._retransmit))
    if not any(a.argval == _RTP_HISTORY and b.argval == "get" for a, b in itertools.pairwise(retransmit)):
        found.append("RTCRtpSender._retransmit no longer looks packets up with history.get()")
    run_rtp = list(dis.get_instructions(RTCRtpSender._run_rtp))
    if not any(a.argval == _RTP_HISTORY and any(b.opname == "STORE_SUBSCR" for b in run_rtp[k + 1:k + 8])
               for k, a in enumerate(run_rtp)):
        found.append("RTCRtpSender._run_rtp no longer stores packets as history[seq % size] = packet")
    packet_stores = {i.argval for i in run_rtp if i.opname == "STORE_ATTR" and not i.argval.startswith("_RTCRtpSender")}
    if packet_stores != {"ssrc", "payload", "marker", *_EXTENSION_FIELDS}:
        found.append(f"RTCRtpSender._run_rtp sets {sorted(packet_stores)} on its packets; the compact history "
                     "keeps only payload type, marker, sequence number, timestamp, ssrc, payload, "
                     + ", ".join(_EXTENSION_FIELDS))
    if list(inspect.signature(aiortc_rtp.RtpPacket).parameters) != list(_PACKET_FIELDS):
        found.append("aiortc's RtpPacket() takes other arguments")
    if any(feedback.type == "nack" for codec in aiortc_codecs.CODECS["audio"] for feedback in codec.rtcpFeedback):
        found.append("aiortc now negotiates NACK for audio: audio senders need their RTP history")
    if "rtcpFeedback" not in aiortc_pc.find_common_codecs.__code__.co_names:
        found.append("aiortc no longer keeps only the RTCP feedback both sides support")
    return found
