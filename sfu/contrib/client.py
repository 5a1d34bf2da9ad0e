"""A headless aiortc participant for tests, benchmarks and bots.

It publishes media encoded once beforehand (no per-client encoding) and counts what it receives
without decoding it (the same receiver tap the server uses), so it costs the machine little and lets
tests check forwarded frames byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import operator
import re
import ssl as ssl_module
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import aiohttp
import av
import numpy as np
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from sfu import aiortc_adapter
from sfu.aiortc_adapter.framing import AssembledFrame

SIMULCAST_RIDS = ("l", "m", "h")
TRAILER_MAGIC = b"PWtr"
TRAILER_SIZE = 16  # magic, 4-digit publisher tag, 8-digit frame number: identifies a frame end to end
SCREEN_TAG = 5000  # added to a client's tag in its screen frames' trailers


def add_trailer(frame: bytes, tag: int, number: int) -> bytes:
    # ASCII digits, so the trailer never contains an H.264 start code (00 00 01); decoders ignore it.
    return frame + TRAILER_MAGIC + f"{tag % 10_000:04d}{number % 100_000_000:08d}".encode()


def read_trailer(frame: bytes) -> tuple[int, int] | None:
    """(publisher tag, frame number) of a frame sent by a ReplayTrack, or None."""
    tail = frame[-TRAILER_SIZE:]
    if len(tail) != TRAILER_SIZE or not tail.startswith(TRAILER_MAGIC) or not tail[4:].isdigit():
        return None
    return int(tail[4:8]), int(tail[8:])


def _encode_test_pattern(codec_name: str, options: dict[str, str], frames: int, width: int, height: int,
                         fps: int, bitrate: int, profile: str | None = None) -> list[bytes]:
    """A moving test pattern encoded once; publishers replay the result without encoding anything."""
    codec = av.CodecContext.create(codec_name, "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate = bitrate
    codec.framerate = fps
    codec.time_base = Fraction(1, fps)
    if profile is not None:
        codec.profile = profile
    codec.options = options
    packets: list[bytes] = []
    columns = np.arange(width, dtype=np.uint16)[None, :]
    for i in range(frames):
        image = np.zeros((height, width, 3), np.uint8)
        image[..., 1] = (columns + i * 3) % 256
        x = (i * 10) % width
        image[:, x:x + 40, 0] = 255
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets.extend(bytes(p) for p in codec.encode(frame))
    packets.extend(bytes(p) for p in codec.encode(None))
    return packets


def encode_vp8_clip(frames: int = 60, width: int = 640, height: int = 480, fps: int = 30,
                    bitrate: int = 500_000, keyframe_interval: int = 30) -> list[bytes]:
    options = {"deadline": "realtime", "cpu-used": "8", "g": str(keyframe_interval),
               "keyint_min": str(keyframe_interval), "lag-in-frames": "0"}
    return _encode_test_pattern("libvpx", options, frames, width, height, fps, bitrate)


@dataclass(frozen=True)
class VideoVariant:
    """One pre-encoded version of a clip. A publisher given several replays the best the server's
    `video-cap` allows, as a browser's encoder would produce it; nothing is encoded while replaying."""

    frames: tuple[bytes, ...]
    fps: float
    height: int
    bitrate_bps: int  # measured: the clip's bytes over its duration

    def fits(self, cap: dict) -> bool:
        return (self.bitrate_bps <= cap["max_bitrate_bps"] and self.fps <= cap["max_framerate"]
                and self.height <= cap["max_height"])


def encode_vp8_variants(caps: Sequence[tuple[int, int, int]], seconds: float = 3.0) -> list[VideoVariant]:
    """One VP8 clip per (max bitrate, max frame rate, max height), 4:3, one keyframe a second, aimed at 80%
    of the bitrate so the measured rate stays under it."""
    variants = []
    for bitrate, fps, height in sorted(set(caps), reverse=True):
        width = round(height * 4 / 3 / 2) * 2
        frames = encode_vp8_clip(frames=int(seconds * fps), width=width, height=height, fps=fps,
                                 bitrate=int(bitrate * 0.8), keyframe_interval=fps)
        measured = int(sum(len(f) for f in frames) * 8 / (len(frames) / fps))
        variants.append(VideoVariant(tuple(frames), fps, height, measured))
    return variants


def pick_variant(variants: Sequence[VideoVariant], cap: dict | None) -> VideoVariant:
    """The largest variant within `cap` (height, then frame rate, then bitrate); the smallest if none fits;
    the largest before any cap came (a browser starts uncapped)."""
    size = operator.attrgetter("height", "fps", "bitrate_bps")
    fitting = [v for v in variants if cap is None or v.fits(cap)]
    return max(fitting, key=size) if fitting else min(variants, key=size)


def encode_h264_clip(frames: int = 60, width: int = 640, height: int = 480, fps: int = 30,
                     bitrate: int = 500_000, keyframe_interval: int = 30) -> list[bytes]:
    """Constrained baseline, Annex B, for publishers that prefer H.264."""
    options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(keyframe_interval),
               "keyint_min": str(keyframe_interval), "bf": "0"}
    packets = _encode_test_pattern("libx264", options, frames, width, height, fps, bitrate, profile="Baseline")
    # One 4-byte start code per NAL unit: aiortc's H.264 packetizer trips over empty units otherwise.
    return [b"".join(b"\x00\x00\x00\x01" + unit for unit in re.split(b"\x00\x00\x00?\x01", p) if unit)
            for p in packets]


def opus_silence_frame() -> bytes:
    """What an Opus encoder with DTX sends for silence: a packet of a few bytes."""
    return min(encode_opus_clip(np.zeros(48000, np.int16)), key=len)


def encode_opus_clip(pcm: np.ndarray | None = None, seconds: float = 2.0) -> list[bytes]:
    """20 ms Opus packets from 48 kHz mono int16 (a quiet tone if none is given)."""
    if pcm is None:
        t = np.arange(int(48000 * seconds)) / 48000
        pcm = (np.sin(2 * np.pi * 440 * t) * 3000).astype(np.int16)
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = 48000
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = 32000
    codec.time_base = Fraction(1, 48000)
    packets: list[bytes] = []
    for i, start in enumerate(range(0, len(pcm) - 959, 960)):
        frame = av.AudioFrame.from_ndarray(pcm[None, start:start + 960], format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = i * 960
        packets.extend(bytes(p) for p in codec.encode(frame))
    packets.extend(bytes(p) for p in codec.encode(None))
    return packets


async def fetch_browser_key(http_url: str) -> str:
    """What a browser gets from `GET /`: the server-signed `pw_key` cookie that makes a removal stick."""
    async with aiohttp.ClientSession() as session, session.get(http_url + "/") as response:
        return response.cookies["pw_key"].value


class JoinError(RuntimeError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class ReplayTrack(MediaStreamTrack):
    """Sends pre-encoded frames in real time, looping; each video frame carries a trailer with its
    publisher tag and number (VP8 decoders ignore trailing bytes) so receivers can match it."""

    DTX_INTERVAL = 20  # frames: with Opus DTX a silent browser sends one packet per 400 ms

    def __init__(self, kind: str, frames: Sequence[bytes], fps: float, tag: int, mark: bool,
                 loop: bool = True, talking: Callable[[], bool] | None = None,
                 silence: bytes | None = None) -> None:
        super().__init__()
        self.kind = kind
        self._frames = list(frames)
        self._interval = 1.0 / fps
        self._clock_step = int((90000 if kind == "video" else 48000) * self._interval)
        self._time_base = Fraction(1, 90000 if kind == "video" else 48000)
        self._tag = tag
        self._mark = mark
        self._loop = loop  # False: play once, then repeat the last frame (silence at the end of a clip)
        self._count = 0  # frame number (the trailer's), DTX gaps included
        self._clip_start = 0  # the frame number at which the current clip began
        self._due: float | None = None
        self._pts = 0
        self._next_clip: tuple[list[bytes], float] | None = None
        self._talking = talking  # audio: while this says False, send `silence` as Opus DTX does
        self._silence = silence
        self.sent = 0  # frames handed to the sender
        self.sent_at: dict[int, float] = {}

    def switch(self, frames: Sequence[bytes], fps: float) -> None:
        """Replay another clip from its first frame (a keyframe) from the next frame on; the RTP clock and
        the frame numbers run on."""
        self._next_clip = (list(frames), fps)

    async def recv(self) -> av.Packet:
        if self._due is None:
            self._due = time.perf_counter()
        delay = self._due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._next_clip is not None:
            (self._frames, fps), self._next_clip = self._next_clip, None
            self._interval = 1.0 / fps
            self._clock_step = int(self._time_base.denominator * self._interval)
            self._clip_start = self._count
        step = 1
        if self._talking is not None and self._silence is not None and not self._talking():
            data, step = self._silence, self.DTX_INTERVAL  # the RTP clock runs on over the gap
        else:
            position = self._count - self._clip_start
            index = position % len(self._frames) if self._loop else min(position, len(self._frames) - 1)
            data = self._frames[index]
        if self._mark:
            data = add_trailer(data, self._tag, self._count)
        packet = av.Packet(data)
        packet.pts = self._pts
        packet.time_base = self._time_base
        self._pts += self._clock_step * step
        self._due += self._interval * step
        self.sent_at[self._count] = time.perf_counter()
        if len(self.sent_at) > 2000:
            self.sent_at.pop(next(iter(self.sent_at)))
        self._count += step
        self.sent += 1
        return packet


@dataclass
class ReceivedFrame:
    data: bytes
    received_at: float  # time.perf_counter()
    timestamp: int = 0  # RTP timestamp as received


@dataclass
class RoomClient:
    url: str  # ws://127.0.0.1:PORT/ws
    room: str
    name: str
    video_frames: Sequence[bytes] | None = None
    audio_frames: Sequence[bytes] | None = None
    fps: float = 30.0
    # Given: video starts with the largest and follows each `video-cap` (video_frames and fps are ignored).
    # Without: the one clip is sent whatever the cap (dropping VP8 frames would break the picture).
    video_variants: Sequence[VideoVariant] = ()
    # Given: VP8 simulcast, one RTP stream per variant (smallest first) named SIMULCAST_RIDS, as a browser's
    # layers; the server chooses per listener (video_frames, fps and video_variants are ignored). Layer i's
    # frames carry the trailer tag `tag * 10 + i`.
    simulcast: Sequence[VideoVariant] = ()
    loop_audio: bool = True
    video_codec: str = "video/VP8"  # or "video/H264"
    resume: str | None = None  # a resume token from an earlier `joined`: take back that place
    wait_in_lobby: bool = False  # True: join() waits for admission; False: returns in the lobby
    tag: int = 0
    mark_frames: bool = True
    keep_frames: bool = True  # keep received bytes (tests); benchmarks only count
    on_frame: Callable[[str, str, bytes, float], None] | None = None  # (mid, kind, data, perf_counter)
    on_event: Callable[[dict], None] | None = None  # each data-channel event, as it arrives
    talking: Callable[[], bool] | None = None  # audio: False = silent, sent as Opus DTX (needs silence_frame)
    silence_frame: bytes | None = None
    secret: str | None = None  # facilitator secret
    # True: the offer gets a second video section (after the camera's; a trackless one if there is no camera),
    # the screen publication of docs/protocol.md. start_share() sends `screen_frames` on it (trailer tag
    # `tag + SCREEN_TAG`).
    screen: bool = False
    screen_frames: Sequence[bytes] | None = None
    # "all" or "relay": build the peer connection from the ICE servers `joined` hands out ("relay": TURN only,
    # as a browser with iceTransportPolicy "relay"). None: no ICE servers, host candidates only.
    ice_transport_policy: str | None = None
    ssl: ssl_module.SSLContext | None = None  # for wss:// with a certificate the system does not trust
    browser_key: str | None = None  # what a browser's pw_key cookie would carry
    local_address: str | None = None  # source address of the WebSocket (benchmarks: one per room, for the limits)
    participant_id: str | None = None
    joined: dict = field(default_factory=dict)
    tracks: dict[str, dict] = field(default_factory=dict)  # mid -> {participant_id, kind}
    frames: dict[str, list[ReceivedFrame]] = field(default_factory=lambda: defaultdict(list))
    frame_counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    events: list[dict] = field(default_factory=list)
    video_cap: dict | None = None  # the latest `video-cap` from the server
    signals: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    breakout: int | None = None  # the breakout room this client is in (from `moved`; None: the main room)
    room_participants: dict[str, dict] = field(default_factory=dict)  # who is in my room now, by id

    def __post_init__(self) -> None:
        aiortc_adapter.install_patches()  # the same aiortc behaviour as the server's (clock, SCTP, codecs)
        # max-bundle, as the server: aiortc's "balanced" strands transceivers added by a later offer.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.video_track: ReplayTrack | None = None
        self.layer_tracks: list[ReplayTrack] = []  # simulcast: one per layer, smallest first
        self._layer_senders: list[RTCRtpSender] = []
        self._layer_start: asyncio.Task[None] | None = None
        self.video_variant: VideoVariant | None = None
        self.audio_track: ReplayTrack | None = None
        self.screen_transceiver: RTCRtpTransceiver | None = None
        self.screen_track: ReplayTrack | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._answer: asyncio.Future[str] | None = None
        self._joined: asyncio.Future[dict] | None = None
        self._admitted: asyncio.Future[dict] | None = None
        self.pc.on("track", self._on_track)
        self.channel: RTCDataChannel | None = None  # created with the offer, after the media sections

    async def join(self, timeout: float = 20.0) -> None:
        loop = asyncio.get_running_loop()
        cookies = {"pw_key": self.browser_key} if self.browser_key else None
        connector = aiohttp.TCPConnector(local_addr=(self.local_address, 0)) if self.local_address else None
        self._session = aiohttp.ClientSession(cookies=cookies, connector=connector)
        self._ws = await self._session.ws_connect(self.url, ssl=self.ssl if self.ssl is not None else True)
        self._joined = loop.create_future()
        self._answer = loop.create_future()
        self._admitted = loop.create_future()
        self._reader = asyncio.ensure_future(self._read())
        join = {"type": "join", "room": self.room, "name": self.name, "accept_agreement": True}
        if self.secret:
            join["secret"] = self.secret
        if self.resume:
            join["resume"] = self.resume
        await self.send(join)
        self.joined = await asyncio.wait_for(self._joined, timeout)
        self.participant_id = self.joined["participant_id"]
        if self._in_lobby():
            if not self.wait_in_lobby:
                return  # the caller decides when to call connect_media()
            await asyncio.wait_for(self._admitted, timeout)
        await self.connect_media(timeout)

    def _in_lobby(self) -> bool:
        group = self.joined.get("group") or {}
        return bool(group.get("lobby")) and self.joined.get("role") != "facilitator" and not self.resume

    async def wait_admitted(self, timeout: float = 20.0) -> None:
        assert self._admitted is not None
        await asyncio.wait_for(self._admitted, timeout)

    async def connect_media(self, timeout: float = 20.0) -> None:
        """Send the client's one offer (after `joined`, or after `admitted` from a lobby)."""
        assert self._answer is not None
        if self.ice_transport_policy is not None:
            servers = [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
                       for s in self.joined["ice_servers"]]
            await self.pc.close()  # unused so far: nothing was added to it before the offer
            self.pc = RTCPeerConnection(RTCConfiguration(
                iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
                iceTransportPolicy=RTCIceTransportPolicy(self.ice_transport_policy)))
            self.pc.on("track", self._on_track)
        if self.audio_frames:
            self.audio_track = ReplayTrack("audio", self.audio_frames, 50.0, self.tag, mark=False,
                                           loop=self.loop_audio, talking=self.talking, silence=self.silence_frame)
            audio = self.pc.addTransceiver(self.audio_track, direction="sendonly")
            # Loud while it has something to say; the DTX silence packet is silence.
            aiortc_adapter.stamp_audio_level(audio.sender, lambda frame: 127 if frame == self.silence_frame else 30)
        if self.video_variants and not self.simulcast:
            self.video_variant = pick_variant(self.video_variants, self.video_cap)
            self.video_frames, self.fps = self.video_variant.frames, self.video_variant.fps
        rids = SIMULCAST_RIDS[:len(self.simulcast)]
        if self.simulcast:
            self.layer_tracks = [ReplayTrack("video", v.frames, v.fps, self.tag * 10 + i, self.mark_frames)
                                 for i, v in enumerate(self.simulcast[:len(rids)])]
            self.video_track = self.layer_tracks[0]
            transceiver = self.pc.addTransceiver(self.video_track, direction="sendonly")
            aiortc_adapter.stamp_rid(transceiver.sender, rids[0])
            transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                             if c.mimeType.lower() in ("video/vp8", "video/rtx")])
        elif self.video_frames:
            self.video_track = ReplayTrack("video", self.video_frames, self.fps, self.tag, self.mark_frames)
            transceiver = self.pc.addTransceiver(self.video_track, direction="sendonly")
            transceiver.setCodecPreferences(self._video_codecs())
        if self.screen:
            if not any(t.kind == "video" for t in self.pc.getTransceivers()):
                # The server takes the first video section for the camera: keep that place, with no track.
                self.pc.addTransceiver("video", direction="sendonly").setCodecPreferences(self._video_codecs())
            self.screen_transceiver = self.pc.addTransceiver("video", direction="sendonly")
            self.screen_transceiver.setCodecPreferences(self._video_codecs())
        # After the transceivers: aiortc's max-bundle gives a data channel created first its own
        # transport, then discards that transport when BUNDLE makes the first media section primary.
        self.channel = self.pc.createDataChannel("peerwell")
        self.channel.on("message", self._on_event)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = self.pc.localDescription.sdp
        if self.simulcast:
            sdp = aiortc_adapter.offer_simulcast(sdp, rids)
        await self.send({"type": "offer", "sdp": sdp})
        await asyncio.wait_for(self._answer, timeout)
        if self.simulcast:
            self._layer_start = asyncio.ensure_future(self._start_layers(transceiver, rids, timeout))

    def _video_codecs(self) -> list:  # type: ignore[type-arg]
        capabilities = RTCRtpSender.getCapabilities("video").codecs
        return [c for c in capabilities if c.mimeType.lower() in (self.video_codec.lower(), "video/rtx")]

    def start_share(self, frames: Sequence[bytes] | None = None) -> None:
        """Send `frames` (default `screen_frames`) on the screen section, then ask to share (as a browser
        does: replaceTrack, then `start-share`)."""
        assert self.screen_transceiver is not None, "RoomClient(screen=True) and connect_media() first"
        frames = frames or self.screen_frames
        assert frames, "no screen frames to send"
        self.screen_track = ReplayTrack("video", frames, self.fps, self.tag + SCREEN_TAG, self.mark_frames)
        self.screen_transceiver.sender.replaceTrack(self.screen_track)
        self.send_channel({"type": "start-share"})

    def stop_share(self) -> None:
        """`stop-share`, then nothing more is sent on the screen section."""
        assert self.screen_transceiver is not None
        self.send_channel({"type": "stop-share"})
        self.screen_transceiver.sender.replaceTrack(None)
        if self.screen_track is not None:
            self.screen_track.stop()
            self.screen_track = None

    async def _start_layers(self, transceiver: object, rids: Sequence[str], timeout: float) -> None:
        """The layers after the first get their own senders once the transport is up (a sender that
        finds it down stops for good)."""
        deadline = time.monotonic() + timeout
        while self.pc.connectionState != "connected":
            if time.monotonic() > deadline or self.pc.connectionState in ("failed", "closed"):
                return
            await asyncio.sleep(0.05)
        for track, rid in zip(self.layer_tracks[1:], rids[1:], strict=True):
            self._layer_senders.append(await aiortc_adapter.send_simulcast_layer(transceiver, track, rid))

    async def send(self, message: dict) -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps(message))

    def _on_event(self, raw: str | bytes) -> None:
        event = json.loads(raw)
        self.events.append(event)
        if event.get("type") == "video-cap":
            self._follow_video_cap(event)
        if self.on_event is not None:
            self.on_event(event)

    def _follow_video_cap(self, cap: dict) -> None:
        self.video_cap = cap
        if not self.video_variants or self.video_track is None:
            return
        variant = pick_variant(self.video_variants, cap)
        if variant is not self.video_variant:
            self.video_variant = variant
            self.video_track.switch(variant.frames, variant.fps)

    def send_channel(self, message: dict) -> None:
        assert self.channel is not None, "connect_media() first"
        self.channel.send(json.dumps(message))

    # --- breakout rooms (docs/protocol.md, "Breakout rooms") ---------------------------------------

    def breakouts(self) -> dict | None:
        """The latest `breakouts` event (None: none came yet)."""
        return next((e for e in reversed(self.events) if e.get("type") == "breakouts"), None)

    def plan_breakouts(self, names: Sequence[str], mode: str = "auto") -> None:
        self.send_channel({"type": "breakout-plan", "names": list(names), "mode": mode})

    def assign_breakout(self, participant_id: str, room: int | None) -> None:
        self.send_channel({"type": "breakout-assign", "participant_id": participant_id, "room": room})

    def open_breakouts(self, seconds: int = 0) -> None:
        self.send_channel({"type": "breakout-open", "seconds": seconds})

    def join_breakout(self, room: int | None) -> None:
        self.send_channel({"type": "breakout-join", "room": room})

    def playing_in_room(self) -> set[str]:
        """Whose media the latest server offer forwards to me."""
        return {info["participant_id"] for info in self.tracks.values()}

    async def _read(self) -> None:
        assert self._ws is not None
        async for raw in self._ws:
            if raw.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(raw.data)
            self.signals.append(message)
            kind = message.get("type")
            if kind == "joined":
                self.room_participants = {p["id"]: p for p in message["participants"]}
            elif kind == "moved":  # breakout rooms: the people of the room I am in now
                self.breakout = message["room"]
                self.room_participants = {p["id"]: p for p in message["participants"]}
            elif kind == "participant-joined":
                self.room_participants[message["participant"]["id"]] = message["participant"]
            elif kind == "participant-left":
                self.room_participants.pop(message["participant_id"], None)
            if kind == "joined" and self._joined and not self._joined.done():
                self._joined.set_result(message)
            elif kind == "answer" and self._answer and not self._answer.done():
                # Applied here, in order: the server's next offer may already be queued behind it.
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=message["sdp"], type="answer"))
                self._answer.set_result(message["sdp"])
            elif kind == "offer":
                try:
                    await self._answer_server_offer(message)
                except ConnectionError:  # the server is closing the socket: keep reading, its close comes next
                    pass
            elif kind == "error":
                self.errors.append(message)
                if self._joined and not self._joined.done():
                    self._joined.set_exception(JoinError(message["code"], message["message"]))
            elif kind == "admitted" and self._admitted is not None and not self._admitted.done():
                if message.get("resume"):  # several nodes: the token that also survives a failover
                    self.joined = {**self.joined, "resume": message["resume"]}
                self._admitted.set_result(message)

    async def _answer_server_offer(self, message: dict) -> None:
        self.tracks = message["tracks"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=message["sdp"], type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.send({"type": "answer", "sdp": self.pc.localDescription.sdp})

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)

        def count(frame: AssembledFrame) -> None:
            mid = transceiver.mid or "?"
            now = time.perf_counter()
            self.frame_counts[mid] += 1
            if self.keep_frames:
                self.frames[mid].append(ReceivedFrame(frame.data, now, frame.timestamp))
            if self.on_frame is not None:
                self.on_frame(mid, track.kind, frame.data, now)

        aiortc_adapter.tap_receiver(transceiver.receiver, track.kind, count)

    async def packets_received(self) -> int:
        """RTP packets received on every transceiver (aiortc's inbound-rtp statistics)."""
        total = 0
        for transceiver in self.pc.getTransceivers():
            stats = await transceiver.receiver.getStats()
            total += sum(s.packetsReceived for s in stats.values() if s.type == "inbound-rtp")
        return total

    def _mids(self, participant_id: str, kind: str, source: str | None) -> list[str]:
        """`source` None: camera and screen alike (a server before screen sharing sent no source)."""
        return [mid for mid, info in self.tracks.items()
                if info["participant_id"] == participant_id and info["kind"] == kind
                and source in (None, info.get("source", "camera"))]

    def frames_from(self, participant_id: str, kind: str, source: str | None = None) -> list[ReceivedFrame]:
        return [f for mid in self._mids(participant_id, kind, source) for f in self.frames.get(mid, [])]

    def count_from(self, participant_id: str, kind: str, source: str | None = None) -> int:
        return sum(self.frame_counts.get(mid, 0) for mid in self._mids(participant_id, kind, source))

    async def leave(self) -> None:
        with contextlib.suppress(Exception):
            await self.send({"type": "leave"})
        await self.close()

    async def close(self) -> None:
        if self._layer_start is not None:
            self._layer_start.cancel()
        for sender in self._layer_senders:
            with contextlib.suppress(Exception):
                await sender.stop()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self.pc.close()
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
