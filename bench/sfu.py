"""SFU benchmark: a room that looks like a group, measured from the server's process and every listener.

    python -m bench.sfu [--scenario conversation|all-talk|simulcast] [--participants 12] [--captions | --no-captions]
                        [--baseline] [--fixed-video] [--warmup 5] [--window 10]

Every participant publishes VP8 and Opus, encoded once beforehand, and subscribes to everyone else. The
video is sent at the quality the server asks for: the clip is pre-encoded once per cap on the ladder
(sfu/room/video_quality.py) and each publisher replays the largest version its latest `video-cap` allows,
switching at that version's first keyframe, as a browser's encoder would (nothing is encoded during the
run). `--fixed-video` ignores the caps and sends one 640x480 30 fps ~500 kbps clip (the figures before the
ladder). `conversation`: one speaker at a time, changing every 4 s; the others are
silent and send what a browser with Opus DTX sends (a 3-byte packet every 400 ms). `all-talk`: everyone's
audio runs all the time (today's worst case). `--captions` runs the real caption service (Whisper base, in
the server's transcription worker process, as in production) on the speakers' audio (espeak-ng speech):
forwarding figures are taken with it running, and its own CPU is reported apart.

The server runs in its own process so its CPU is measured alone; listeners count what arrives without
decoding it. Reported: delivered fraction of video and audio frames (received / sent x listeners), added
video latency (trailer-stamped frames), CPU cores of the forwarding process and of the transcription
worker, server CPU microseconds per RTP packet delivered to a listener (forwarding process), and the final
captions one listener received. `--baseline` runs the same room through aiortc's MediaRelay (decode once, encode
per subscriber) in the same run: cpu_ratio = its CPU per delivered video frame / ours. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

from sfu import aiortc_adapter
from sfu.contrib.client import (
    RoomClient,
    VideoVariant,
    encode_opus_clip,
    encode_vp8_clip,
    encode_vp8_variants,
    opus_silence_frame,
    read_trailer,
)
from sfu.room.video_quality import LADDER

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
    caption_cpu_seconds: float = 0.0
    captions_final: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def cpu_cores(self) -> float:
        return self.cpu_seconds / self.wall_seconds

    @property
    def caption_cpu_cores(self) -> float:
        return self.caption_cpu_seconds / self.wall_seconds

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

    from peerwell.server import CaptionOptions, build_app
    from sfu.config import ServerConfig
    from sfu.room.groups import Group, GroupsConfig, ServerSettings
    from sfu.signaling.websocket import ROOMS_KEY

    logging.basicConfig(level=logging.WARNING)
    group = Group(slug="bench", name="Bench", agreement="Benchmark.", max_participants=50, lobby=False,
                  facilitator_secret="benchmark-facilitator-secret")
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0,
                          groups=GroupsConfig(server=ServerSettings(allow_adhoc_rooms=False), groups=(group,)))
    app = build_app(config, CaptionOptions(enabled=captions, model="base"), translation=False)
    if mode == "baseline":
        from bench.relay_baseline import RelayPeerSession

        app[ROOMS_KEY].session_class = RelayPeerSession
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


LATENCY_SAMPLE_EVERY = 4  # every 4th video frame number is timed end to end


async def generate(url: str, tags: list[int], participants: int, scenario: str, t0: float,
                   clips: tuple[list[bytes], list[bytes], list[VideoVariant]], count_captions: bool) -> None:
    """Child process: some of the room's participants. Prints "joined", reads the measuring window from
    stdin, then prints what it sent and received in that window as one JSON line."""
    vp8, opus, variants = clips
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    silence = opus_silence_frame()
    measuring = False
    got = {"video": 0, "audio": 0, "captions_final": 0}
    samples: list[tuple[int, int, float]] = []  # (publisher tag, frame number, received at)

    def on_frame(mid: str, kind: str, data: bytes, now: float) -> None:
        if not measuring:
            return
        got[kind] += 1
        if kind == "video":
            mark = read_trailer(data)
            if mark is not None and mark[1] % LATENCY_SAMPLE_EVERY == 0:
                samples.append((mark[0], mark[1], now))

    def on_event(event: dict) -> None:
        if measuring and event.get("type") == "caption" and event.get("final"):
            got["captions_final"] += 1

    def speaker_now() -> int:
        return int((time.monotonic() - t0) / TURN_SECONDS) % participants

    clients: list[RoomClient] = []
    for tag in tags:
        talking = None if scenario == "all-talk" else (lambda tag=tag: speaker_now() == tag)
        client = RoomClient(url, "bench", f"p{tag}", vp8, opus, tag=tag, keep_frames=False, on_frame=on_frame,
                            talking=talking, silence_frame=silence, video_variants=variants,
                            on_event=on_event if count_captions and tag == 0 else None)
        clients.append(client)
        await client.join()
    print("joined", flush=True)
    window_from, window_until = map(float, (await asyncio.to_thread(sys.stdin.readline)).split())

    def sent(kind: str) -> int:
        tracks = [c.video_track if kind == "video" else c.audio_track for c in clients]
        return sum(t.sent for t in tracks if t is not None)

    async def packets() -> int:
        return sum(await asyncio.gather(*(c.packets_received() for c in clients)))

    await asyncio.sleep(max(0.0, window_from - time.monotonic()))
    packets_start, sent_start = await packets(), {k: sent(k) for k in ("video", "audio")}
    measuring = True
    await asyncio.sleep(max(0.0, window_until - time.monotonic()))
    measuring = False
    report = {
        "video_received": got["video"], "audio_received": got["audio"], "captions_final": got["captions_final"],
        "packets": await packets() - packets_start,
        "video_sent": sent("video") - sent_start["video"], "audio_sent": sent("audio") - sent_start["audio"],
        "samples": samples,
        "sent_at": {c.tag: {n: t for n, t in c.video_track.sent_at.items() if n % LATENCY_SAMPLE_EVERY == 0}
                    for c in clients if c.video_track is not None},
    }
    print(json.dumps(report), flush=True)
    for client in clients:
        await client.leave()


class GeneratorFailed(RuntimeError):
    pass


async def open_window(generators: list[asyncio.subprocess.Process], warmup: float,
                      window: float) -> tuple[float, float]:
    """Once every load generator says it joined, tell them the measuring window (monotonic seconds)."""
    for generator in generators:
        assert generator.stdout is not None
        if (await generator.stdout.readline()).strip() != b"joined":
            raise GeneratorFailed("a load generator did not join")
    window_from = time.monotonic() + warmup
    window_until = window_from + window
    for generator in generators:
        assert generator.stdin is not None
        generator.stdin.write(f"{window_from!r} {window_until!r}\n".encode())
        await generator.stdin.drain()
    return window_from, window_until


async def read_reports(generators: list[asyncio.subprocess.Process]) -> list[dict]:
    """Each load generator's report (its JSON line after the window), once all have exited."""
    reports = []
    for generator in generators:
        assert generator.stdout is not None
        reports.append(json.loads(await generator.stdout.readline()))
    for generator in generators:
        await generator.wait()
    return reports


def latencies_ms(reports: list[dict]) -> list[float]:
    """Sampled frames' send-to-receive times, joined across generators by publisher tag and frame number."""
    sent_at = {int(tag): {int(n): t for n, t in times.items()} for r in reports for tag, times in r["sent_at"].items()}
    return [(received - sent) * 1000 for r in reports for tag, number, received in r["samples"]
            if (sent := sent_at.get(tag, {}).get(number)) is not None]


def stop_all(generators: list[asyncio.subprocess.Process], server: subprocess.Popen, timeout: float = 15) -> None:
    for generator in generators:
        if generator.returncode is None:
            generator.kill()
    server.terminate()
    try:
        server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()


async def run(mode: str, scenario: str, participants: int, captions: bool, warmup: float, window: float,
              clips: Path, client_processes: int) -> RunResult:
    port = free_port()
    command = [sys.executable, "-m", "bench.sfu", "--serve", mode, "--port", str(port)]
    if captions:
        command.append("--captions")
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220 - once, before measuring
    generators: list[asyncio.subprocess.Process] = []
    try:
        assert server.stdout is not None
        line = await asyncio.to_thread(server.stdout.readline)
        if "ready" not in line:
            raise RuntimeError(f"{mode} server did not start")
        process = psutil.Process(server.pid)
        url = f"ws://127.0.0.1:{port}/ws"
        t0 = time.monotonic()
        for k in range(client_processes):
            tags = list(range(participants))[k::client_processes]
            generators.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.sfu", "--generate", url, "--tags", ",".join(map(str, tags)),
                "--participants", str(participants), "--scenario", scenario, "--t0", repr(t0),
                "--clips", str(clips), *(["--captions"] if captions else []),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=64 * 1024 * 1024))
        window_from, window_until = await open_window(generators, warmup, window)
        workers = process.children(recursive=True)  # the transcription worker, when captions are on

        def worker_cpu() -> float:
            return sum(sum(w.cpu_times()[:2]) for w in workers if w.is_running())

        await asyncio.sleep(max(0.0, window_from - time.monotonic()))
        cpu_start, worker_start = sum(process.cpu_times()[:2]), worker_cpu()
        wall_start = time.perf_counter()
        await asyncio.sleep(max(0.0, window_until - time.monotonic()))
        result = RunResult(mode)
        result.cpu_seconds = sum(process.cpu_times()[:2]) - cpu_start
        result.caption_cpu_seconds = worker_cpu() - worker_start
        result.wall_seconds = time.perf_counter() - wall_start
        reports = await read_reports(generators)
        listeners = participants - 1
        for report in reports:
            result.video_received += report["video_received"]
            result.audio_received += report["audio_received"]
            result.captions_final += report["captions_final"]
            result.packets_received += report["packets"]
            result.video_sent_x_listeners += report["video_sent"] * listeners
            result.audio_sent_x_listeners += report["audio_sent"] * listeners
        result.latencies_ms = latencies_ms(reports)
        return result
    finally:
        stop_all(generators, server)


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=["conversation", "all-talk", "simulcast"], default="conversation",
                        help="simulcast: bench/simulcast.py (three layers, mixed tiles, against single-layer)")
    parser.add_argument("--participants", type=int, default=12)
    parser.add_argument("--captions", action=argparse.BooleanOptionalAction, default=None,
                        help="real caption service in the server (default: on for conversation)")
    parser.add_argument("--baseline", action="store_true", help="also run aiortc's MediaRelay for cpu_ratio")
    parser.add_argument("--fixed-video", action="store_true",
                        help="ignore the server's video caps: everyone sends 640x480 30 fps ~500 kbps")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=12.0)
    parser.add_argument("--client-processes", type=int, default=2,
                        help="load-generator processes the participants are spread over (one Python process "
                             "receiving 16 people's media saturates its core before the server does)")
    parser.add_argument("--workers", type=int, default=None,
                        help="compare 1 worker with this many (`peerwell serve --workers N` + Redis): rooms are "
                             "added until delivery drops under 99%% (bench/scaleout.py; --participants: per room, "
                             "default 4 there)")
    parser.add_argument("--max-rooms", type=int, default=24, help="with --workers: the most rooms tried")
    parser.add_argument("--serve", choices=["forward", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--generate", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--tags", help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--clips", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workers:  # several worker processes: its own runner, the same clips and rooms (bench/scaleout.py)
        from bench import scaleout

        args.participants = args.participants if "--participants" in sys.argv else 4
        scaleout.run(args)
        return
    captions = args.captions if args.captions is not None else args.scenario == "conversation"
    if args.serve:
        serve(args.serve, args.port, bool(args.captions))
        return
    if args.generate:
        clips = pickle.loads(args.clips.read_bytes())  # our own file, written by the parent process
        asyncio.run(generate(args.generate, [int(t) for t in args.tags.split(",")], args.participants,
                             args.scenario, args.t0, clips, bool(args.captions)))
        return

    if args.scenario == "simulcast":
        from bench import simulcast

        simulcast.main(args.participants, args.warmup, args.window, args.client_processes)
        return
    vp8 = encode_vp8_clip(frames=90, bitrate=500_000)
    variants = [] if args.fixed_video else encode_vp8_variants([c for r in LADDER for c in (r.gallery, r.speaker)])
    opus = speech_clip() if captions else encode_opus_clip(seconds=2.0)
    kbps = sum(len(f) for f in vp8) * 8 / (len(vp8) / FPS) / 1000
    n = args.participants
    with tempfile.TemporaryDirectory() as tmp:
        clips = Path(tmp) / "clips.pickle"
        clips.write_bytes(pickle.dumps((vp8, opus, variants)))
        runs = [asyncio.run(run("forward", args.scenario, n, captions, args.warmup, args.window, clips,
                                args.client_processes))]
        if args.baseline:
            runs.append(asyncio.run(run("baseline", args.scenario, n, captions, args.warmup, args.window, clips,
                                        args.client_processes)))
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
          f"{args.window:.0f} s window after {args.warmup:.0f} s warm-up; participants in "
          f"{args.client_processes} load-generator processes")
    print(f"{'server':<10}{'cpu cores':>10}{'video deliv.':>14}{'audio deliv.':>14}{'packets':>10}"
          f"{'us/packet':>11}{'lat p50 ms':>12}{'lat p95 ms':>12}{'captions cpu':>14}{'finals':>8}")
    for r in runs:
        print(f"{r.mode:<10}{r.cpu_cores:>10.3f}{r.delivered_video:>14.1%}{r.delivered_audio:>14.1%}"
              f"{r.packets_received:>10}{r.us_per_packet:>11.1f}{fmt(r.percentile(0.5)):>12}"
              f"{fmt(r.percentile(0.95)):>12}{r.caption_cpu_cores:>14.3f}{r.captions_final:>8}")
    if captions and not ours.captions_final:
        print("!!! NO FINAL CAPTIONS ARRIVED: the caption path did not run !!!")
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
        "caption_cpu_cores": round(ours.caption_cpu_cores, 3),
        "captions_final": ours.captions_final,
    }
    if cpu_ratio is not None:
        figures["cpu_ratio"] = round(cpu_ratio, 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
