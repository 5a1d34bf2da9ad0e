"""Receive side: a publisher's RTP reaches the forwarder as encoded frames, never decoded (aiortc 1.16.0).

1. Receiver tap: before a receiver starts, its private JitterBuffer is swapped for our frame assembler
   (framing.py), which hands each reassembled *encoded* frame to the publication. Nothing is ever decoded for
   forwarding, so such a receiver gets no decoder thread either: aiortc starts one per receiver and stops it by
   joining it, and both wait on the event loop for another thread to be scheduled (measured under load by
   bench.churn: 185 ms in one close). Tapped receivers get no decoder thread (``install()``: the receiver module
   looks ``threading`` up at each call).
2. Keyframe requests to a publisher use the receiver's private ``_send_rtcp_pli``.
3. Simulcast in (RID-based, RFC 8853; the SDP half is in sdp.py): the receiver's jitter buffer becomes one
   assembler per SSRC (framing.VideoStreamsAssembler), its NACK generator one per SSRC, and RTX streams are
   mapped to their layer by repaired-rid as they first arrive (aiortc knows RTX SSRCs only from
   ``a=ssrc-group:FID``, which RID simulcast does not send).
4. REMB floor: aiortc's REMB to a publisher follows its delay-based estimate, which never exceeds 1.5x what
   arrives: a simulcast browser turns its top layer on only once the estimate covers all layers, which it then
   never does (measured: stuck at ~500 kbit/s with the top layer off). Without overuse in the last
   REMB_FLOOR_QUIET_S the REMB we send is at least PUBLISHER_REMB_FLOOR_BPS; the browser's own loss-based
   control still backs off on a thin uplink, and overuse still lowers the REMB at once.
5. Rate counter: aiortc's receive-side bitrate estimator (REMB) counts bytes in a RateCounter holding one
   RateBucket object per millisecond of its 1 s window, made anew at every reset: 1,000+ objects per video
   receiver that every full garbage collection walks (18,000 of the 100,000 tracked objects of a 3-person room,
   server and clients). The same numbers are kept in two integer arrays instead (``install()``: the estimator
   looks ``RateCounter`` up on its module), made at the first byte: the receiver of a server->client slot never
   counts anything.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import weakref
from array import array
from collections.abc import Callable
from typing import Any

import aiortc.rate as aiortc_rate
import aiortc.rtcrtpreceiver as aiortc_receiver
from aiortc import RTCRtpReceiver
from aiortc.rate import BandwidthUsage, RemoteBitrateEstimator
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.aiortc_adapter.compat import AdapterIncompatible
from sfu.aiortc_adapter.framing import JITTER_BUFFER, AudioFrameAssembler, FrameSink, VideoStreamsAssembler
from sfu.aiortc_adapter.sdp import MAX_SIMULCAST_LAYERS

PUBLISHER_REMB_FLOOR_BPS = 1_300_000  # the web client's three layers together (docs/architecture.md)
REMB_FLOOR_QUIET_S = 10.0

_NACK_GENERATOR = "_RTCRtpReceiver__nack_generator"
_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
_REMB_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
_RECEIVER_CODECS = "_RTCRtpReceiver__codecs"
_RECEIVER_STARTED = "_RTCRtpReceiver__started"
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"


# --- 1, 3. the tap, NACK per stream, RTX by repaired-rid ------------------------------------------------------------

def tap_receiver(receiver: RTCRtpReceiver, kind: str, emit: FrameSink) -> None:
    """Make `receiver` hand reassembled encoded frames to `emit` instead of decoding them.

    Must run before the receiver starts (the peer connection's "track" event is early enough).
    """
    if getattr(receiver, _RECEIVER_STARTED):
        raise AdapterIncompatible("receiver already started; tap it from the 'track' event")
    _undecoded_queues.add(getattr(receiver, _DECODER_QUEUE))
    if kind == "audio":
        setattr(receiver, JITTER_BUFFER, AudioFrameAssembler(emit))
        return
    setattr(receiver, JITTER_BUFFER, VideoStreamsAssembler(emit))
    setattr(receiver, _NACK_GENERATOR, _NackPerStream(getattr(receiver, _NACK_GENERATOR).__class__))
    _map_rtx_by_repaired_rid(receiver)


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


def receiver_codec(receiver: RTCRtpReceiver, payload_type: int) -> RTCRtpCodecParameters | None:
    codecs: dict[int, RTCRtpCodecParameters] = getattr(receiver, _RECEIVER_CODECS)
    return codecs.get(payload_type)


# --- 1. no decoder thread for a tapped receiver ---------------------------------------------------------------------

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


# --- 2. keyframe requests to a publisher ----------------------------------------------------------------------------

_pending_plis: set[asyncio.Future[None]] = set()


def request_keyframe(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send a PLI to the publisher for `media_ssrc`."""
    task = asyncio.ensure_future(receiver._send_rtcp_pli(media_ssrc))
    _pending_plis.add(task)
    task.add_done_callback(_pending_plis.discard)


# --- 4. REMB floor --------------------------------------------------------------------------------------------------

def keep_remb_floor(receiver: RTCRtpReceiver) -> None:
    """The server's receiver of a publisher's video: REMB at least PUBLISHER_REMB_FLOOR_BPS while no overuse
    was seen (module docstring, 4)."""
    setattr(receiver, _REMB_ESTIMATOR, _RembWithFloor(getattr(receiver, _REMB_ESTIMATOR)))


class _RembWithFloor:
    """aiortc's estimator, with the REMB it reports kept at PUBLISHER_REMB_FLOOR_BPS or more while no
    overuse was seen for REMB_FLOOR_QUIET_S (module docstring, 4)."""

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


# --- 5. the rate counter --------------------------------------------------------------------------------------------

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


# --- install and check ----------------------------------------------------------------------------------------------

def install() -> None:
    """Tapped receivers get no decoder thread; the bitrate estimator's RateCounter keeps its buckets in arrays."""
    aiortc_receiver.threading = _ReceiverThreading  # type: ignore[assignment]
    aiortc_rate.RateCounter = CompactRateCounter  # type: ignore[misc]


def problems() -> list[str]:
    found: list[str] = []
    init_names = RTCRtpReceiver.__init__.__code__.co_names
    for attr in (JITTER_BUFFER, _RECEIVER_CODECS, _RECEIVER_STARTED, _NACK_GENERATOR, _RTX_SSRC, _REMB_ESTIMATOR):
        if attr not in init_names:
            found.append(f"RTCRtpReceiver no longer sets {attr}")
    if not callable(getattr(RTCRtpReceiver, "_send_rtcp_pli", None)):
        found.append("RTCRtpReceiver._send_rtcp_pli is gone")
    return found + _decoder_thread_problems() + _simulcast_problems() + _remb_problems() + _rate_counter_problems()


def _decoder_thread_problems() -> list[str]:
    receive = inspect.getsource(RTCRtpReceiver.receive)
    found = []
    if not {"threading", "Thread", "decoder_worker"} <= set(RTCRtpReceiver.receive.__code__.co_names):
        found.append("RTCRtpReceiver.receive no longer starts threading.Thread(decoder_worker)")
    elif "asyncio.get_event_loop(),\n                    self.__decoder_queue," not in receive:
        found.append("RTCRtpReceiver.receive no longer passes the decoder queue as the worker's second argument")
    if not {"join", "put"} <= set(RTCRtpReceiver._RTCRtpReceiver__stop_decoder.__code__.co_names):
        found.append("RTCRtpReceiver stops its decoder other than by put(None) and join()")
    if _DECODER_QUEUE not in RTCRtpReceiver.__init__.__code__.co_names:
        found.append(f"RTCRtpReceiver no longer sets {_DECODER_QUEUE}")
    return found


def _simulcast_problems() -> list[str]:
    """What NACK per stream and RTX by repaired-rid rely on."""
    handle = RTCRtpReceiver._handle_rtp_packet.__code__.co_names
    return [f"RTCRtpReceiver._handle_rtp_packet no longer uses {name}"
            for name in (_NACK_GENERATOR, _RTX_SSRC, "unwrap_rtx", "missing") if name not in handle]


def _remb_problems() -> list[str]:
    estimator = RemoteBitrateEstimator()
    add_parameters = list(inspect.signature(estimator.add).parameters)
    if not callable(getattr(getattr(estimator, "detector", None), "state", None)) or add_parameters != [
            "arrival_time_ms", "abs_send_time", "payload_size", "ssrc"]:
        return ["aiortc's RemoteBitrateEstimator changed (add() or detector.state())"]
    return []


def _rate_counter_problems() -> list[str]:
    found = []
    ours = {"reset", "add", "rate", "_erase_old"}
    for name, member in vars(_OriginalRateCounter).items():
        code = getattr(member, "__code__", None)
        if code is not None and name not in ours and name != "__init__" and (
                {"_buckets", "_total"} & set(code.co_names)):
            found.append(f"aiortc's RateCounter.{name} uses its buckets; CompactRateCounter does not have them")
    if not ours <= set(vars(_OriginalRateCounter)):
        found.append("aiortc's RateCounter no longer has reset/add/rate/_erase_old")
    if "RateCounter" not in aiortc_rate.RemoteBitrateEstimator.__init__.__code__.co_names:
        found.append("RemoteBitrateEstimator no longer makes its RateCounter from the module's name")
    return found
