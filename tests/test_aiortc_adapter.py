"""The pin test for every aiortc/aioice private internal the forwarder relies on, plus the taps themselves
exercised on a real loopback peer connection pair."""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
from collections import Counter

import aioice
import aioice.ice
import aiortc.codecs as aiortc_codecs
import aiortc.rtcpeerconnection as aiortc_pc
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCSessionDescription
from aiortc import rtp as aiortc_rtp
from aiortc import sdp as aiortc_sdp
from aiortc.codecs import vpx
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpSendParameters

from sfu import aiortc_adapter
from sfu.aiortc_adapter import AdapterIncompatible, check_compatibility, clock, compat, ice, receive, sdp, send
from sfu.aiortc_adapter.framing import AssembledFrame, AudioFrameAssembler, VideoStreamsAssembler
from sfu.contrib.client import ReplayTrack, encode_vp8_clip


@pytest.fixture(autouse=True)
def restore_host_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    """set_ice_host_addresses changes aioice globally: put back whatever other tests had."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)


def problems() -> str:
    with pytest.raises(AdapterIncompatible) as info:
        check_compatibility()
    return str(info.value)


# --- the pin -----------------------------------------------------------------------------------


def test_installed_versions_are_the_tested_ones_and_the_check_passes() -> None:
    assert importlib.metadata.version("aiortc") == aiortc_adapter.TESTED_AIORTC
    assert importlib.metadata.version("aioice") == aiortc_adapter.TESTED_AIOICE
    check_compatibility()


@pytest.mark.parametrize("package", ["aiortc", "aioice"])
def test_a_different_version_fails_loudly(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    real = importlib.metadata.version
    monkeypatch.setattr(compat, "version", lambda name: "99.0.1" if name == package else real(name))
    message = problems()
    assert f"{package} 99.0.1 installed, adapter written for" in message
    assert message.count("installed") == 1  # only the package that differs is named


def test_receiver_without_the_jitter_buffer_attribute_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def init_without_jitter_buffer(self, kind, transport):  # type: ignore[no-untyped-def]
        self._RTCRtpReceiver__codecs = {}
        self._RTCRtpReceiver__started = False
        self._RTCRtpReceiver__reorder_queue = object()  # renamed in some future aiortc

    monkeypatch.setattr(RTCRtpReceiver, "__init__", init_without_jitter_buffer)
    message = problems()
    assert "_RTCRtpReceiver__jitter_buffer" in message
    assert "_RTCRtpReceiver__codecs" not in message and "_RTCRtpReceiver__started" not in message


def test_receiver_without_codecs_or_started_flag_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def init(self, kind, transport):  # type: ignore[no-untyped-def]
        self._RTCRtpReceiver__jitter_buffer = None

    monkeypatch.setattr(RTCRtpReceiver, "__init__", init)
    message = problems()
    assert "_RTCRtpReceiver__codecs" in message and "_RTCRtpReceiver__started" in message
    assert "; " in message  # every problem is reported, not just the first


def test_missing_pli_sender_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(RTCRtpReceiver, "_send_rtcp_pli")
    assert "_send_rtcp_pli" in problems()


def test_packet_handler_no_longer_feeding_anything_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    async def handle(self, packet, arrival_time_ms):  # type: ignore[no-untyped-def]
        self._RTCRtpReceiver__jitter_buffer.push(packet)

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", handle)
    assert "_handle_rtp_packet" in problems()


def test_packet_handler_feeding_the_jitter_buffer_differently_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    async def handle(self, packet, arrival_time_ms):  # type: ignore[no-untyped-def]
        self._RTCRtpReceiver__nack_generator.add(packet)
        self._RTCRtpReceiver__remote_streams[packet.ssrc].add(packet)
        self._RTCRtpReceiver__jitter_buffer.push(packet)  # our assembler has no push()

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", handle)
    assert "_handle_rtp_packet" in problems()


def test_sender_keyframe_and_pack_paths_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    async def handle_rtcp(self, packet):  # type: ignore[no-untyped-def]
        self._force_keyframe = True

    async def next_frame(self, codec):  # type: ignore[no-untyped-def]
        return await self._encode(codec)

    monkeypatch.setattr(RTCRtpSender, "_handle_rtcp_packet", handle_rtcp)
    monkeypatch.setattr(RTCRtpSender, "_next_encoded_frame", next_frame)
    message = problems()
    assert "_send_keyframe" in message and "pre-encoded" in message


def test_missing_host_address_function_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(aioice.ice, "get_host_addresses")
    assert "get_host_addresses" in problems()


def test_consent_task_check_fails_before_the_fix_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def connect(self):  # type: ignore[no-untyped-def]
        self._consent = None

    monkeypatch.setattr(aioice.ice.Connection, "connect", connect)
    monkeypatch.setattr(ice, "_original_connect", connect)
    assert "_query_consent_task" in problems()


def test_consent_task_check_still_works_with_the_fix_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def future_aioice_connect(self):  # type: ignore[no-untyped-def]
        self._consent = None  # consent checks renamed/moved in a later aioice

    assert aioice.ice.Connection.connect is ice._connect_respecting_close
    monkeypatch.setattr(ice, "_original_connect", future_aioice_connect)
    assert "_query_consent_task" in problems()


def test_offer_codec_and_extension_table_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    async def create_offer_elsewhere(self):  # type: ignore[no-untyped-def]
        return self._build_offer()

    monkeypatch.setattr(aiortc_pc.RTCPeerConnection, "createOffer", create_offer_elsewhere)
    message = problems()
    assert "filter_preferred_codecs" in message and "HEADER_EXTENSIONS" in message


def test_offer_that_awaits_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def create_offer_awaiting(self):  # type: ignore[no-untyped-def]
        for transceiver in self.getTransceivers():
            transceiver._codecs = aiortc_pc.filter_preferred_codecs(transceiver._codecs,
                                                                    transceiver._preferred_codecs)
            transceiver._headerExtensions = aiortc_pc.HEADER_EXTENSIONS[transceiver.kind][:]
        await asyncio.sleep(0)  # the table swap in create_offer() would leak to other connections

    monkeypatch.setattr(aiortc_pc.RTCPeerConnection, "createOffer", create_offer_awaiting)
    message = problems()
    assert "now awaits" in message
    assert "filter_preferred_codecs" not in message and "HEADER_EXTENSIONS" not in message


def _browser_like_offer(sdp: str) -> str:
    """Renumber aiortc's offer the way a browser might: other payload types and extension IDs."""
    renames = {"m=video": lambda line: line.replace(" 97 98", " 120 121"),
               "a=rtpmap:97 ": lambda line: line.replace(":97 ", ":120 "),
               "a=rtcp-fb:97 ": lambda line: line.replace(":97 ", ":120 "),
               "a=rtpmap:98 ": lambda line: line.replace(":98 ", ":121 "),
               "a=fmtp:98 apt=97": lambda line: "a=fmtp:121 apt=120",
               "a=extmap:1 ": lambda line: line.replace(":1 ", ":4 "),
               "a=extmap:3 ": lambda line: line.replace(":3 ", ":9 ")}
    lines = []
    for line in sdp.split("\r\n"):
        for prefix, rename in renames.items():
            if line.startswith(prefix):
                line = rename(line)
        lines.append(line)
    return "\r\n".join(lines)


def _short(uri: str) -> str:
    return uri.replace(":", "/").rsplit("/", 1)[-1]


def _video_sections(sdp: str) -> list[tuple[list[int], dict[str, int]]]:
    return [([c.payloadType for c in m.rtp.codecs], {_short(e.uri): e.id for e in m.rtp.headerExtensions})
            for m in aiortc_sdp.SessionDescription.parse(sdp).media if m.kind == "video"]


# Added to aiortc's video table by the adapter (simulcast in); aiortc's own offers number them 12 and 13.
RID_EXTENSIONS = {"rtp-stream-id": 12, "repaired-rtp-stream-id": 13}


async def test_reoffer_keeps_the_peers_payload_types_and_extension_ids() -> None:
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    browser, server = RTCPeerConnection(), RTCPeerConnection()
    try:
        sending = browser.addTransceiver("video", direction="sendonly")
        sending.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                     if c.mimeType in ("video/VP8", "video/rtx")])
        await browser.setLocalDescription(await browser.createOffer())
        offer = _browser_like_offer(browser.localDescription.sdp)
        assert _video_sections(offer) == [([120, 121], {"mid": 4, "abs-send-time": 9, **RID_EXTENSIONS})]

        await server.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await server.setLocalDescription(await server.createAnswer())
        (published,) = server.getTransceivers()
        negotiated = aiortc_adapter.negotiated_codecs(published)
        assert [c.payloadType for c in negotiated] == [120, 121]
        aiortc_adapter.pin_codecs(published, negotiated)
        forwarded = server.addTransceiver("video", direction="sendonly")
        aiortc_adapter.pin_codecs(forwarded, negotiated)

        table = aiortc_pc.HEADER_EXTENSIONS
        reoffer = await aiortc_adapter.create_offer(server)
        assert aiortc_pc.HEADER_EXTENSIONS is table  # swapped only while createOffer ran
        assert _video_sections(reoffer.sdp) == [([120, 121], {"mid": 4, "abs-send-time": 9, **RID_EXTENSIONS})] * 2

        # Why: aiortc on its own renumbers the extensions from its fixed table.
        plain = await server.createOffer()
        assert _video_sections(plain.sdp)[0][1] == {"mid": 1, "abs-send-time": 3, **RID_EXTENSIONS}
    finally:
        await browser.close()
        await server.close()


def test_codec_filter_patch_is_installed() -> None:
    assert aiortc_pc.filter_preferred_codecs is sdp._filter_keeping_exact


# --- ICE host addresses -------------------------------------------------------------------------


async def test_set_ice_host_addresses_chooses_the_candidates_and_none_restores_aioice() -> None:
    original = ice._original_get_host_addresses
    assert original.__module__ == "aioice.ice"

    aiortc_adapter.set_ice_host_addresses(["127.0.0.1", "::1"])
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
    assert aioice.ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == ["::1"]
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]

    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    connection = aioice.Connection(ice_controlling=True, use_ipv6=False)
    try:
        await connection.gather_candidates()
        hosts = {c.host for c in connection.local_candidates if c.type == "host"}
        assert hosts == {"127.0.0.1"}  # aioice alone would leave loopback out
    finally:
        await connection.close()

    aiortc_adapter.set_ice_host_addresses(None)
    assert aioice.ice.get_host_addresses is original
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    aiortc_adapter.set_ice_host_addresses(())
    assert aioice.ice.get_host_addresses is original


# --- consent checks after close ------------------------------------------------------------------


async def _connect_closing_at_completion(connect) -> aioice.Connection:  # type: ignore[no-untyped-def]
    """Two real aioice connections on loopback; the controlling one is closed just as its checks complete,
    before connect() has returned: the window in which aioice starts consent checks on a closed connection."""
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    a = aioice.Connection(ice_controlling=True, use_ipv6=False)
    b = aioice.Connection(ice_controlling=False, use_ipv6=False)
    await a.gather_candidates()
    await b.gather_candidates()
    for local, remote in ((a, b), (b, a)):
        for candidate in remote.local_candidates:
            await local.add_remote_candidate(candidate)
        await local.add_remote_candidate(None)
        local.remote_username, local.remote_password = remote.local_username, remote.local_password
    put = a._check_list_state.put_nowait
    closing: list[asyncio.Future] = []

    def put_then_close(state: int) -> None:
        put(state)
        if state == aioice.ice.ICE_COMPLETED and not closing:
            closing.append(asyncio.ensure_future(a.close()))

    a._check_list_state.put_nowait = put_then_close  # type: ignore[method-assign]
    await asyncio.wait_for(asyncio.gather(connect(a), b.connect()), 10)
    assert closing, "the check list never completed"
    await closing[0]
    await asyncio.sleep(0.05)
    await b.close()
    return a


async def test_consent_fix_is_installed_and_stops_consent_checks_of_a_closed_connection() -> None:
    assert aioice.ice.Connection.connect is ice._connect_respecting_close
    a = await _connect_closing_at_completion(aioice.ice.Connection.connect)
    assert a._closing
    assert a._query_consent_task is None or a._query_consent_task.done()


async def test_without_the_fix_aioice_leaves_consent_checks_running() -> None:
    """Why the fix exists; if this starts failing, aioice fixed it and the wrapper can go."""
    a = await _connect_closing_at_completion(ice._original_connect)
    task = a._query_consent_task
    try:
        assert task is not None and not task.done()
    finally:
        if task is not None:
            task.cancel()


# --- the taps on a real peer connection ---------------------------------------------------------


class Pair:
    def __init__(self, clip: list[bytes]) -> None:
        self.sender_pc = RTCPeerConnection()
        self.receiver_pc = RTCPeerConnection()
        self.track = ReplayTrack("video", clip, 30.0, tag=0, mark=False)
        self.frames: list[AssembledFrame] = []
        self.receivers: list[RTCRtpReceiver] = []
        self.keyframe_requests = 0
        self.receiver_pc.on("track", self._on_track)

    def _on_track(self, track) -> None:  # type: ignore[no-untyped-def]
        transceiver = next(t for t in self.receiver_pc.getTransceivers() if t.receiver.track is track)
        aiortc_adapter.tap_receiver(transceiver.receiver, track.kind, self.frames.append)
        self.receivers.append(transceiver.receiver)

    async def connect(self) -> None:
        transceiver = self.sender_pc.addTransceiver(self.track, direction="sendonly")
        transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                         if c.mimeType.lower() in ("video/vp8", "video/rtx")])
        aiortc_adapter.redirect_keyframe_requests(transceiver.sender, self._on_keyframe_request)
        await self.sender_pc.setLocalDescription(await self.sender_pc.createOffer())
        await self.receiver_pc.setRemoteDescription(self.sender_pc.localDescription)
        await self.receiver_pc.setLocalDescription(await self.receiver_pc.createAnswer())
        await self.sender_pc.setRemoteDescription(self.receiver_pc.localDescription)

    def _on_keyframe_request(self) -> None:
        self.keyframe_requests += 1

    async def close(self) -> None:
        await self.sender_pc.close()
        await self.receiver_pc.close()


async def wait_until(predicate, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_tapped_receiver_yields_encoded_frames_and_pli_reaches_the_redirected_sender(
        monkeypatch: pytest.MonkeyPatch) -> None:
    decodes: Counter[str] = Counter()
    original_decode = vpx.Vp8Decoder.decode

    def counting_decode(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        decodes["vp8"] += 1
        return original_decode(self, *args, **kwargs)

    monkeypatch.setattr(vpx.Vp8Decoder, "decode", counting_decode)
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    clip = encode_vp8_clip(frames=20, width=160, height=120, keyframe_interval=10)
    pair = Pair(clip)
    try:
        await pair.connect()
        assert len(pair.receivers) == 1
        receiver = pair.receivers[0]
        assert isinstance(receiver._RTCRtpReceiver__jitter_buffer, VideoStreamsAssembler)

        await wait_until(lambda: len(pair.frames) >= 12)
        # Frames arrive whole, in order, byte for byte (the first may be skipped while syncing).
        offset = clip.index(pair.frames[0].data)
        assert offset <= 1
        assert [f.data for f in pair.frames[:10]] == clip[offset:offset + 10]
        assert all(f.timestamp - pair.frames[0].timestamp == i * 3000 for i, f in enumerate(pair.frames[:10]))
        assert decodes["vp8"] == 0  # nothing was decoded on the receiving side

        codec = aiortc_adapter.receiver_codec(receiver, pair.frames[0].payload_type)
        assert codec is not None and codec.mimeType == "video/VP8"
        assert aiortc_adapter.receiver_codec(receiver, 127) is None
        transceiver = pair.receiver_pc.getTransceivers()[0]
        negotiated = aiortc_adapter.negotiated_codec(transceiver)
        assert negotiated is not None and negotiated.mimeType == "video/VP8"
        assert aiortc_adapter.bundle_transport(pair.receiver_pc) is receiver.transport

        with pytest.raises(AdapterIncompatible, match="already started"):
            aiortc_adapter.tap_receiver(receiver, "video", pair.frames.append)

        aiortc_adapter.request_keyframe(receiver, pair.frames[0].ssrc)
        await wait_until(lambda: pair.keyframe_requests >= 1)
    finally:
        await pair.close()


async def test_tap_chooses_the_assembler_by_kind() -> None:
    pc = RTCPeerConnection()
    try:
        audio = pc.addTransceiver("audio").receiver
        video = pc.addTransceiver("video").receiver
        aiortc_adapter.tap_receiver(audio, "audio", lambda frame: None)
        aiortc_adapter.tap_receiver(video, "video", lambda frame: None)
        assert isinstance(audio._RTCRtpReceiver__jitter_buffer, AudioFrameAssembler)
        assert isinstance(video._RTCRtpReceiver__jitter_buffer, VideoStreamsAssembler)
    finally:
        await pc.close()


def test_fast_clock_is_installed_and_agrees_with_aiortcs_own() -> None:
    import aiortc.clock

    assert aiortc.clock.current_ms is clock._fast_current_ms
    assert aiortc.clock.current_ntp_time is clock._fast_current_ntp_time
    assert abs(clock._original_current_ms() - aiortc.clock.current_ms()) <= 2
    ntp_difference = clock._original_current_ntp_time() - aiortc.clock.current_ntp_time()
    assert abs(ntp_difference) / 2**32 < 0.002  # seconds
    # Round trip through aiortc's own NTP helpers: the same instant.
    then = aiortc.clock.datetime_from_ntp(aiortc.clock.current_ntp_time())
    assert abs((aiortc.clock.current_datetime() - then).total_seconds()) < 0.01


def test_clock_callers_and_epoch_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    async def recv_next(self):  # type: ignore[no-untyped-def]
        return time.monotonic()

    monkeypatch.setattr(RTCDtlsTransport, "_recv_next", recv_next)
    monkeypatch.setattr(clock, "_original_current_ms", lambda: int(time.time() * 1000))  # a Unix epoch
    message = problems()
    assert "clock.current_ms" in message and "NTP epoch" in message


# --- simulcast in -------------------------------------------------------------------------------

CHROME_SIMULCAST_VIDEO = (
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\na=sendonly\r\n"
    "a=rid:l send\r\na=rid:m send\r\na=rid:h send\r\na=rid:x-1 send\r\n"
    "a=simulcast:send l;~m;h,x-1;x-1;bad!\r\n")


def test_offered_layers_are_read_and_answered() -> None:
    sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n" + CHROME_SIMULCAST_VIDEO
    layers = aiortc_adapter.offered_simulcast(sdp)
    assert layers == {"1": ["l", "m", "h"]}  # paused ~m kept as a layer, the alternative and extras left out
    answer = aiortc_adapter.receive_simulcast("v=0\r\nm=audio 9 X 111\r\na=mid:0\r\nm=video 9 X 96\r\na=mid:1\r\n",
                                              layers)
    video = answer.split("m=video")[1]
    assert video.endswith("a=rid:l recv\r\na=rid:m recv\r\na=rid:h recv\r\na=simulcast:recv l;m;h\r\n")
    assert "rid" not in answer.split("m=video")[0]
    assert aiortc_adapter.offered_simulcast("v=0\r\nm=video 9 X 96\r\na=mid:0\r\n") == {}


def test_rid_extensions_are_negotiated_for_video_only() -> None:
    video = {e.uri for e in aiortc_codecs.HEADER_EXTENSIONS["video"]}
    audio = {e.uri for e in aiortc_codecs.HEADER_EXTENSIONS["audio"]}
    assert {aiortc_adapter.RID_URI, aiortc_adapter.REPAIRED_RID_URI} <= video
    assert aiortc_adapter.RID_URI not in audio


def test_simulcast_internals_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    async def handle_without_nacks(self, packet, arrival_time_ms):  # type: ignore[no-untyped-def]
        return None

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", handle_without_nacks)
    message = problems()
    assert "_RTCRtpReceiver__nack_generator" in message and "_RTCRtpReceiver__rtx_ssrc" in message


def test_rtp_history_internals_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """forget_sent_packets empties aiortc's RTP history: another user of it, or a lookup other than get(),
    would make that unsafe."""
    async def retransmit(self, sequence_number):  # type: ignore[no-untyped-def]
        return self._RTCRtpSender__rtp_history[sequence_number % 128]

    def prune(self):  # type: ignore[no-untyped-def]
        self._RTCRtpSender__rtp_history.popitem()

    monkeypatch.setattr(RTCRtpSender, "_retransmit", retransmit)
    monkeypatch.setattr(RTCRtpSender, "_prune_history", prune, raising=False)
    message = problems()
    assert "_prune_history" in message and "history.get()" in message


def test_compact_rtp_history_gives_back_the_packets_aiortc_would_retransmit() -> None:
    """Filled as RTCRtpSender._run_rtp fills its history (packets with mid, abs-send-time and, for audio,
    a level), read as _retransmit reads it: the same bytes on the wire, plain and RTX-wrapped."""
    mapping = aiortc_rtp.HeaderExtensionsMap()
    mapping.configure(RTCRtpSendParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
        RTCRtpHeaderExtensionParameters(id=2, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
        RTCRtpHeaderExtensionParameters(id=3, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level")]))
    plain: dict[int, aiortc_rtp.RtpPacket] = {}
    compact = send._CompactRtpHistory()
    for n in range(300):
        sequence_number = (65_400 + n) % 65_536  # wraps
        packet = aiortc_rtp.RtpPacket(payload_type=111 if n % 2 else 96, sequence_number=sequence_number,
                                      timestamp=(4_294_960_000 + 3000 * n) % (1 << 32))
        packet.ssrc = 3_000_000_000 + n
        packet.payload = bytes([n % 256]) * (40 + n)
        packet.marker = 1 if n % 3 == 0 else 0
        if n % 5:  # aiortc's sender always sets it; the history must not invent one either
            packet.extensions.abs_send_time = (n * 7919) & 0xFFFFFF
        packet.extensions.mid = str(n % 4)
        if n % 2:
            packet.extensions.audio_level = (False, n % 127)
        plain[sequence_number % 128] = packet
        compact[sequence_number % 128] = packet
    assert len(compact) == 128
    for index in range(128):
        ours, theirs = compact.get(index), plain.get(index)
        assert ours.sequence_number == theirs.sequence_number
        assert ours.serialize(mapping) == theirs.serialize(mapping)
        assert aiortc_rtp.wrap_rtx(ours, 97, 5, 1234).serialize(mapping) == aiortc_rtp.wrap_rtx(
            theirs, 97, 5, 1234).serialize(mapping)
    assert compact.get(128) is None
    compact.clear()
    assert compact.get(0) is None


def test_sender_packet_fields_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field _run_rtp would set that the compact history does not keep must fail the check."""
    async def run_rtp(self, codec):  # type: ignore[no-untyped-def]
        packet = aiortc_rtp.RtpPacket()
        packet.padding_size = 4
        self._RTCRtpSender__rtp_history[0] = packet

    monkeypatch.setattr(RTCRtpSender, "_run_rtp", run_rtp)
    assert "padding_size" in problems()


def test_nack_for_audio_would_fail_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Audio senders keep no RTP history because aiortc never negotiates NACK for audio."""
    from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters

    opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96,
                                 rtcpFeedback=[RTCRtcpFeedback(type="nack")])
    monkeypatch.setitem(aiortc_codecs.CODECS, "audio", [opus])
    assert "NACK for audio" in problems()


def test_nacks_are_generated_per_stream() -> None:
    from aiortc.rtcrtpreceiver import NackGenerator
    from aiortc.rtp import RtpPacket

    nacks = receive._NackPerStream(NackGenerator)
    for seq in range(100, 110):  # two layers interleaved, each in order: no loss
        assert not nacks.add(RtpPacket(sequence_number=seq, ssrc=1))
        assert not nacks.add(RtpPacket(sequence_number=5000 + seq, ssrc=2))
    assert nacks.add(RtpPacket(sequence_number=112, ssrc=1))  # one real gap on layer 1
    assert nacks.missing == {110, 111}
    single = NackGenerator()  # why: aiortc's own reads the interleaving as thousands of losses
    single.add(RtpPacket(sequence_number=100, ssrc=1))
    assert single.add(RtpPacket(sequence_number=5100, ssrc=2)) and len(single.missing) > 100


def test_importing_the_adapter_or_the_client_patches_nothing() -> None:
    """The patches are installed by an explicit call when a server or client starts, never by an import."""
    import subprocess
    import sys

    probe = (
        "import aioice.ice, aiortc.clock, aiortc.codecs, aiortc.rate, aiortc.rtcpeerconnection as pc\n"
        "import aiortc.rtcrtpreceiver, aiortc.rtcsctptransport as aiortc_sctp, aiortc.rtcdtlstransport as dtls\n"
        "def patched():\n"
        "    return (aiortc.clock.current_ms, aiortc.clock.current_ntp_time, pc.filter_preferred_codecs,\n"
        "            aioice.ice.Connection.connect, aiortc_sctp.RTCSctpTransport._data_channel_receive,\n"
        "            aiortc.rtcrtpreceiver.threading, aiortc.rate.RateCounter,\n"
        "            len(aiortc.codecs.HEADER_EXTENSIONS['video']), dtls.RtpRouter.route_rtp)\n"
        "before = patched()\n"
        "import sfu.contrib.client, sfu.app, sfu.media.peer_session\n"
        "from sfu.aiortc_adapter import bundle, client, clock, compat, framing, ice, receive, sctp, sdp, send\n"
        "assert patched() == before, 'patched on import'\n"
        "from sfu import aiortc_adapter\n"
        "aiortc_adapter.install_patches()\n"
        "after = patched()\n"
        "changed = [i for i, (a, b) in enumerate(zip(before, after)) if a == b]\n"
        "assert not changed, f'install_patches did not install {changed}'\n"
        "aiortc_adapter.install_patches()\n"
        "assert patched() == after, 'a second install_patches changed something'\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)


def test_every_module_checks_what_it_relies_on() -> None:
    """check_compatibility gathers each module's own problems(); today every one of them finds nothing."""
    from sfu.aiortc_adapter import client, framing, sctp

    for module in (compat, receive, framing, send, clock, sdp, ice, sctp, client):
        assert module.problems() == [], module.__name__


def test_jitter_buffer_contract_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    async def handle_without_depayloading(self, packet, arrival_time_ms):  # type: ignore[no-untyped-def]
        packet.data = packet.payload  # renamed in some future aiortc
        frame = self._RTCRtpReceiver__jitter_buffer.add(packet)  # one value back, not (pli_flag, frame)
        return frame

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", handle_without_depayloading)
    message = problems()
    assert "packet._data" in message and "(pli_flag, frame)" in message


def test_client_helper_internals_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiortc.rtcsctptransport as aiortc_sctp

    monkeypatch.delattr(aiortc_sctp.RTCSctpTransport, "_data_channel_flush")
    monkeypatch.delattr(RTCDtlsTransport, "_send_rtp")
    message = problems()
    assert "_data_channel_flush" in message and "_send_rtp" in message


def test_bad_text_receive_path_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from sfu.aiortc_adapter import sctp

    async def receive_without_decoding(self, stream_id, pp_id, data):  # type: ignore[no-untyped-def]
        return None

    monkeypatch.setattr(sctp, "_original_data_channel_receive", receive_without_decoding)
    assert "_data_channel_receive" in problems()


def test_bundle_routes_an_unknown_ssrc_by_its_mid() -> None:
    """A camera (RID simulcast: no SSRCs in the SDP) and a screen share one VP8 payload type on a BUNDLE:
    aiortc alone drops the camera's packets; routed by MID they reach the camera's receiver, which then owns
    the SSRC. Without a MID (or with a MID whose receiver lacks the payload type) aiortc's answer stands."""
    from aiortc.rtcdtlstransport import RtpRouter
    from aiortc.rtp import RtpPacket

    from sfu.aiortc_adapter import bundle

    router = RtpRouter()
    camera, screen, audio = object(), object(), object()
    router.register_receiver(camera, ssrcs=[], payload_types=[96, 97], mid="1")  # type: ignore[arg-type]
    router.register_receiver(screen, ssrcs=[555], payload_types=[96, 97], mid="2")  # type: ignore[arg-type]
    router.register_receiver(audio, ssrcs=[], payload_types=[111], mid="0")  # type: ignore[arg-type]

    def packet(ssrc: int, payload_type: int, mid: str | None) -> RtpPacket:
        p = RtpPacket(payload_type=payload_type, ssrc=ssrc)
        p.extensions.mid = mid
        return p

    assert bundle._original_route_rtp(router, packet(1234, 96, "1")) is None  # what aiortc alone does
    assert bundle._route_rtp_by_mid(router, packet(1234, 96, "1")) is camera
    assert bundle._route_rtp_by_mid(router, packet(1234, 96, None)) is camera  # learnt: later packets omit MID
    assert bundle._route_rtp_by_mid(router, packet(555, 96, None)) is screen
    assert bundle._route_rtp_by_mid(router, packet(4321, 96, None)) is None
    assert bundle._route_rtp_by_mid(router, packet(4321, 111, "1")) is audio  # one receiver has 111: aiortc's way
    assert bundle._route_rtp_by_mid(router, packet(999, 96, "0")) is None  # the MID's receiver lacks the type


def test_bundle_check_names_a_changed_router(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiortc.rtcdtlstransport import RtpRouter

    from sfu.aiortc_adapter import bundle

    monkeypatch.setattr(RtpRouter, "register_receiver", lambda self, receiver, ssrcs, payload_types: None)
    assert any("register_receiver" in p for p in bundle.problems())
