"""SFU benchmark: a room that looks like a group, measured from the server's process and every listener.

    python -m bench.sfu [--scenario conversation|all-talk] [--participants 12] [--captions | --no-captions]
                        [--baseline] [--fixed-video] [--warmup 5] [--window 10]

Every participant publishes VP8 and Opus, encoded once beforehand, and subscribes to everyone else. The
video is sent at the quality the server asks for: the clip is pre-encoded once per cap on the ladder
(sfu/video_quality.py) and each publisher replays the largest version its latest `video-cap` allows,
switching at that version's first keyframe, as a browser's encoder would (nothing is encoded during the
run). `--fixed-video` ignores the caps and sends one 640x480 30 fps ~500 kbps clip (the figures before the
ladder). `conversation`: one speaker at a time, changing every 4 s; the others are
silent and send what a browser with Opus DTX sends (a 3-byte packet every 400 ms). `all-talk`: everyone's
audio runs all the time (today's worst case). `--captions` runs the real caption service (Whisper base) in
the server process on the speakers' audio (espeak-ng speech), so its cost shows in the same figures.

The server runs in its own process so its CPU is measured alone; listeners count what arrives without
decoding it. Reported: delivered fraction of video and audio frames (received / sent x listeners), added
video latency (trailer-stamped frames), server CPU cores, and server CPU microseconds per RTP packet
delivered to a listener. `--baseline` runs the same room through aiortc's MediaRelay (decode once, encode
per subscriber) in the same run: cpu_ratio = its CPU per delivered video frame / ours. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

from sfu import aiortc_adapter
from sfu.client import (
    RoomClient,
    VideoVariant,
    encode_opus_clip,
    encode_vp8_clip,
    encode_vp8_variants,
    opus_silence_frame,
    read_trailer,
)
from sfu.video_quality import LADDER

TURN_SECONDS = 4.0  # conversation: how long each person speaks before the next one does
FPS = 30
SPEECH = ("I have been feeling a little better this week, mostly because I started walking in the morning "
          "again. It is hard to explain, but having a small routine makes the rest of the day feel possible.")


@dataclass
class RunResult:
    mode: str
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    video_received: int = 0
    audio_received: int = 0
    video_sent_x_listeners: int = 0
    audio_sent_x_listeners: int = 0
    packets_received: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def cpu_cores(self) -> float:
        return self.cpu_seconds / self.wall_seconds

    @property
    def delivered_video(self) -> float:
        return self.video_received / max(self.video_sent_x_listeners, 1)

    @property
    def delivered_audio(self) -> float:
        return self.audio_received / max(self.audio_sent_x_listeners, 1)

    @property
    def us_per_packet(self) -> float:
        return self.cpu_seconds / max(self.packets_received, 1) * 1e6

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def serve(mode: str, port: int, captions: bool) -> None:
    """Child process: one server, forwarding (ours) or relaying (baseline), captions on or off."""
    import logging

    from aiohttp import web

    from peerwell.groups import Group, GroupsConfig, ServerSettings
    from peerwell.server import CaptionOptions, build_app
    from sfu.config import ServerConfig
    from sfu.signaling import ROOMS_KEY

    logging.basicConfig(level=logging.WARNING)
    group = Group(slug="bench", name="Bench", agreement="Benchmark.", max_participants=50, lobby=False,
                  facilitator_secret="benchmark-facilitator-secret")
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0,
                          groups=GroupsConfig(server=ServerSettings(allow_adhoc_rooms=False), groups=(group,)))
    app = build_app(config, CaptionOptions(enabled=captions, model="base"), translation=False)
    if mode == "baseline":
        from bench.relay_baseline import RelayParticipant

        app[ROOMS_KEY].participant_class = RelayParticipant
    web.run_app(app, host="127.0.0.1", port=port, print=lambda *_: print("ready", flush=True))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def speech_clip() -> list[bytes]:
    """Opus frames of a spoken paragraph (espeak-ng, generated in a temporary directory), or a tone."""
    from tests.support.speech import espeak, have_espeak, load_48k, to_int16

    if not have_espeak():
        print("espeak-ng not found: speakers send a tone (captions will have nothing to say)", file=sys.stderr)
        return encode_opus_clip(seconds=8.0)
    with tempfile.TemporaryDirectory() as tmp:
        audio = load_48k(espeak(SPEECH, "en", Path(tmp), name="speech"))
    return encode_opus_clip(to_int16(np.asarray(audio)))


async def run(mode: str, scenario: str, participants: int, captions: bool, warmup: float, window: float,
              vp8: list[bytes], opus: list[bytes], variants: list[VideoVariant]) -> RunResult:
    port = free_port()
    command = [sys.executable, "-m", "bench.sfu", "--serve", mode, "--port", str(port)]
    if captions:
        command.append("--captions")
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220 - once, before measuring
    try:
        assert server.stdout is not None
        line = await asyncio.to_thread(server.stdout.readline)
        if "ready" not in line:
            raise RuntimeError(f"{mode} server did not start")
        process = psutil.Process(server.pid)
        url = f"ws://127.0.0.1:{port}/ws"
        measuring = False
        result = RunResult(mode)
        clients: list[RoomClient] = []
        started = time.monotonic()
        silence = opus_silence_frame()

        def on_frame(mid: str, kind: str, data: bytes, now: float) -> None:
            if not measuring:
                return
            if kind == "audio":
                result.audio_received += 1
                return
            result.video_received += 1
            mark = read_trailer(data)
            if mark is not None:
                tag, number = mark
                sent = clients[tag].video_track.sent_at.get(number) if clients[tag].video_track else None
                if sent is not None:
                    result.latencies_ms.append((now - sent) * 1000)

        def speaker_now() -> int:
            return int((time.monotonic() - started) / TURN_SECONDS) % participants

        for i in range(participants):
            talking = None if scenario == "all-talk" else (lambda i=i: speaker_now() == i)
            client = RoomClient(url, "bench", f"p{i}", vp8, opus, tag=i, keep_frames=False, on_frame=on_frame,
                                talking=talking, silence_frame=silence, video_variants=variants)
            clients.append(client)
            await client.join()
        await asyncio.sleep(warmup)

        def sent(kind: str) -> int:
            tracks = [c.video_track if kind == "video" else c.audio_track for c in clients]
            return sum(t.sent for t in tracks if t is not None)

        async def packets() -> int:
            return sum(await asyncio.gather(*(c.packets_received() for c in clients)))

        packets_start, sent_start = await packets(), {k: sent(k) for k in ("video", "audio")}
        measuring = True
        cpu_start = sum(process.cpu_times()[:2])
        wall_start = time.perf_counter()
        await asyncio.sleep(window)
        result.cpu_seconds = sum(process.cpu_times()[:2]) - cpu_start
        result.wall_seconds = time.perf_counter() - wall_start
        measuring = False
        result.packets_received = await packets() - packets_start
        listeners = participants - 1
        result.video_sent_x_listeners = (sent("video") - sent_start["video"]) * listeners
        result.audio_sent_x_listeners = (sent("audio") - sent_start["audio"]) * listeners
        for client in clients:
            await client.leave()
        return result
    finally:
        server.terminate()
        server.wait(timeout=15)


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=["conversation", "all-talk"], default="conversation")
    parser.add_argument("--participants", type=int, default=12)
    parser.add_argument("--captions", action=argparse.BooleanOptionalAction, default=None,
                        help="real caption service in the server (default: on for conversation)")
    parser.add_argument("--baseline", action="store_true", help="also run aiortc's MediaRelay for cpu_ratio")
    parser.add_argument("--fixed-video", action="store_true",
                        help="ignore the server's video caps: everyone sends 640x480 30 fps ~500 kbps")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=12.0)
    parser.add_argument("--serve", choices=["forward", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    captions = args.captions if args.captions is not None else args.scenario == "conversation"
    if args.serve:
        serve(args.serve, args.port, bool(args.captions))
        return

    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])  # the load generator's candidates too
    vp8 = encode_vp8_clip(frames=90, bitrate=500_000)
    variants = [] if args.fixed_video else encode_vp8_variants([c for r in LADDER for c in (r.gallery, r.speaker)])
    opus = speech_clip() if captions else encode_opus_clip(seconds=2.0)
    kbps = sum(len(f) for f in vp8) * 8 / (len(vp8) / FPS) / 1000
    n = args.participants
    runs = [asyncio.run(run("forward", args.scenario, n, captions, args.warmup, args.window, vp8, opus, variants))]
    if args.baseline:
        runs.append(asyncio.run(run("baseline", args.scenario, n, captions, args.warmup, args.window, vp8, opus,
                                    variants)))
    ours = runs[0]

    def per_frame(r: RunResult) -> float:
        return r.cpu_seconds / max(r.video_received, 1)

    cpu_ratio = per_frame(runs[1]) / per_frame(ours) if len(runs) > 1 else None
    video = (f"VP8 640x480 {FPS} fps ~{kbps:.0f} kbps (caps ignored)" if not variants else
             "VP8 at the server's cap (" + ", ".join(f"{v.height}p{v.fps:.0f} {v.bitrate_bps / 1000:.0f}"
                                                     for v in variants) + " kbps)")
    print(f"SFU benchmark: {args.scenario}, {n} participants, captions {'on' if captions else 'off'}; "
          f"{video} + Opus"
          f"{' (one speaker at a time, the rest DTX)' if args.scenario == 'conversation' else ''}; "
          f"{args.window:.0f} s window after {args.warmup:.0f} s warm-up")
    print(f"{'server':<10}{'cpu cores':>10}{'video deliv.':>14}{'audio deliv.':>14}{'packets':>10}"
          f"{'us/packet':>11}{'lat p50 ms':>12}{'lat p95 ms':>12}")
    for r in runs:
        print(f"{r.mode:<10}{r.cpu_cores:>10.3f}{r.delivered_video:>14.1%}{r.delivered_audio:>14.1%}"
              f"{r.packets_received:>10}{r.us_per_packet:>11.1f}{fmt(r.percentile(0.5)):>12}"
              f"{fmt(r.percentile(0.95)):>12}")
    short = [f"{kind} {value:.1%}" for kind, value in (("video", ours.delivered_video), ("audio", ours.delivered_audio))
             if value < 0.99]
    if short:
        print(f"!!! DELIVERED BELOW 99%: {', '.join(short)} — this room does not fit !!!")
    if cpu_ratio is not None:
        print(f"cpu_ratio (MediaRelay CPU per delivered video frame / ours): {cpu_ratio:.1f}")
    figures: dict[str, object] = {
        "scenario": args.scenario,
        "participants": n,
        "captions": captions,
        "delivered_video": round(ours.delivered_video, 4),
        "delivered_audio": round(ours.delivered_audio, 4),
        "latency_p50_ms": round(ours.percentile(0.5), 2) if ours.latencies_ms else None,  # type: ignore[arg-type]
        "latency_p95_ms": round(ours.percentile(0.95), 2) if ours.latencies_ms else None,  # type: ignore[arg-type]
        "cpu_cores": round(ours.cpu_cores, 3),
        "us_per_packet": round(ours.us_per_packet, 1),
    }
    if cpu_ratio is not None:
        figures["cpu_ratio"] = round(cpu_ratio, 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
