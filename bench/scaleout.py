"""Rooms over worker processes (issue 15): the same rooms through 1 worker and through N, in one run.

    python -m bench.sfu --workers 2 [--participants 4] [--max-rooms 12] [--captions] [--warmup 4] [--window 8]

For each deployment (`peerwell serve` with 1 worker and no Redis, then `--workers N` with a redis-server this
benchmark starts on loopback) rooms of conversation groups (one speaker at a time, changing every 4 s, the
others sending Opus DTX silence; VP8 at the server's cap, as in bench.sfu) are added step by step (1, 2, 3,
4, 6, 8, ... rooms, a fresh server each step) until fewer than 99% of the video frames sent reach their
listeners. A deployment's figure is its forwarded RTP packets per second (received by every listener) at
the largest step that still delivered >= 99% video and audio. scaling = N-worker / 1-worker figure.

The load generators (aiortc clients, in --client-processes processes) run on the same machine and need CPU
too: on a small machine they, not the server, may be what runs out first. Server CPU (every node, plus their
transcription workers with --captions) and the load average are reported so that can be seen. Each room's
clients connect from their own loopback address (127.0.0.N), as separate households would, so the
per-address join and offer limits apply per room. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.sfu import TURN_SECONDS, GeneratorFailed, free_port, open_window, read_reports, speech_clip, stop_all
from sfu import aiortc_adapter
from sfu.contrib.client import RoomClient, encode_opus_clip, encode_vp8_variants, opus_silence_frame
from sfu.room.video_quality import LADDER

DELIVERED = 0.99
STEPS = (1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24)


@dataclass
class Step:
    workers: int
    rooms: int
    participants: int
    packets: int = 0
    wall: float = 0.0
    video_received: int = 0
    video_expected: int = 0
    audio_received: int = 0
    audio_expected: int = 0
    cpu_seconds: float = 0.0
    captions_final: int = 0
    error: str | None = None

    @property
    def packets_per_s(self) -> float:
        return self.packets / self.wall if self.wall else 0.0

    @property
    def delivered_video(self) -> float:
        return self.video_received / self.video_expected if self.video_expected else 0.0

    @property
    def delivered_audio(self) -> float:
        return self.audio_received / self.audio_expected if self.audio_expected else 0.0

    @property
    def fits(self) -> bool:
        return self.error is None and self.delivered_video >= DELIVERED and self.delivered_audio >= DELIVERED


def room_name(room: int) -> str:
    return f"group-{room}"


async def generate(url: str, members: list[tuple[int, int]], participants: int, t0: float, clips: Path,
                   count_captions: bool) -> None:
    """Child process: some members ((room, tag) pairs). Prints "joined", reads the window from stdin, prints
    one JSON line of what was sent and received in it."""
    opus, variants = pickle.loads(clips.read_bytes())  # noqa: ASYNC240 - our own file, once, before joining
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    silence = opus_silence_frame()
    measuring = False
    got = {"video": 0, "audio": 0, "captions_final": 0}

    def on_frame(mid: str, kind: str, data: bytes, now: float) -> None:
        if measuring:
            got[kind] += 1

    def on_event(event: dict) -> None:
        if measuring and event.get("type") == "caption" and event.get("final"):
            got["captions_final"] += 1

    def speaking(tag: int) -> bool:
        return int((time.monotonic() - t0) / TURN_SECONDS) % participants == tag

    clients: list[tuple[int, RoomClient]] = []
    for room, tag in members:
        client = RoomClient(url, room_name(room), f"p{tag}", None, opus, tag=tag, keep_frames=False,
                            on_frame=on_frame, talking=lambda tag=tag: speaking(tag), silence_frame=silence,
                            video_variants=variants, local_address=f"127.0.0.{10 + room}",
                            on_event=on_event if count_captions and tag == 0 else None)
        clients.append((room, client))
    await asyncio.gather(*(c.join(timeout=60) for _, c in clients))
    print("joined", flush=True)
    window_from, window_until = map(float, (await asyncio.to_thread(sys.stdin.readline)).split())

    def sent() -> dict[str, dict[int, int]]:
        counts: dict[str, dict[int, int]] = {"video": {}, "audio": {}}
        for room, c in clients:
            for kind, track in (("video", c.video_track), ("audio", c.audio_track)):
                counts[kind][room] = counts[kind].get(room, 0) + (track.sent if track is not None else 0)
        return counts

    async def packets() -> int:
        return sum(await asyncio.gather(*(c.packets_received() for _, c in clients)))

    await asyncio.sleep(max(0.0, window_from - time.monotonic()))
    packets_start, sent_start = await packets(), sent()
    measuring = True
    await asyncio.sleep(max(0.0, window_until - time.monotonic()))
    measuring = False
    sent_end = sent()
    print(json.dumps({
        "video_received": got["video"], "audio_received": got["audio"], "captions_final": got["captions_final"],
        "packets": await packets() - packets_start,
        "sent": {kind: {room: sent_end[kind][room] - sent_start[kind].get(room, 0) for room in sent_end[kind]}
                 for kind in ("video", "audio")},
    }), flush=True)
    for _, c in clients:
        await c.leave()


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            import socket

            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


def ports_free(first: int, last: int) -> bool:
    import socket

    for port in range(first, last + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


async def start_server(workers: int, redis_url: str | None, captions: bool, config: Path,
                       log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    while workers > 1 and not ports_free(port + 1, port + workers):  # node ports are port + 1 + i
        port = free_port()
    command = [sys.executable, "-m", "peerwell.cli", "serve", "--port", str(port), "--config", str(config),
               "--ice-host", "127.0.0.1", "--log-level", "WARNING", "--reconnect-grace", "0"]
    command += ["--whisper-model", "base"] if captions else ["--no-captions"]
    if redis_url:
        command += ["--workers", str(workers), "--redis", redis_url]
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)  # noqa: ASYNC220 - before measuring
    ready = "is ready at" if redis_url else "peerwell is running"
    deadline = time.monotonic() + 180
    def output() -> str:
        return log.read_text(errors="replace")

    while output().count(ready) < workers:
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start: {output()[-2000:]}")
        await asyncio.sleep(0.2)
    return server, port


def tree_cpu(process: psutil.Process) -> float:
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += sum(p.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


async def run_step(workers: int, redis_url: str | None, rooms: int, participants: int, captions: bool,
                   warmup: float, window: float, clips: Path, client_processes: int, tmp: Path) -> Step:
    step = Step(workers, rooms, participants)
    server, port = await start_server(workers, redis_url, captions, tmp / "open.toml", tmp / "server.log")
    generators: list[asyncio.subprocess.Process] = []
    try:
        url = f"ws://127.0.0.1:{port}/ws"
        members = [(room, tag) for room in range(rooms) for tag in range(participants)]
        t0 = time.monotonic()
        for k in range(client_processes):
            share = members[k::client_processes]
            if not share:
                continue
            generators.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.scaleout", "--generate", url,
                "--members", ",".join(f"{r}:{t}" for r, t in share), "--participants", str(participants),
                "--t0", repr(t0), "--clips", str(clips), *(["--captions"] if captions else []),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=16 * 1024 * 1024))
        try:
            window_from, window_until = await open_window(generators, warmup, window)
        except GeneratorFailed as exc:
            step.error = str(exc)
            return step
        process = psutil.Process(server.pid)
        await asyncio.sleep(max(0.0, window_from - time.monotonic()))
        cpu_start, wall_start = tree_cpu(process), time.perf_counter()
        await asyncio.sleep(max(0.0, window_until - time.monotonic()))
        step.cpu_seconds = tree_cpu(process) - cpu_start
        step.wall = time.perf_counter() - wall_start
        listeners = participants - 1
        for report in await read_reports(generators):
            step.packets += report["packets"]
            step.video_received += report["video_received"]
            step.audio_received += report["audio_received"]
            step.captions_final += report["captions_final"]
            step.video_expected += sum(report["sent"]["video"].values()) * listeners
            step.audio_expected += sum(report["sent"]["audio"].values()) * listeners
        return step
    finally:
        stop_all(generators, server, timeout=20)


async def ladder(workers: int, redis_url: str | None, args: argparse.Namespace, clips: Path, tmp: Path) -> list[Step]:
    steps: list[Step] = []
    for rooms in [r for r in STEPS if r <= args.max_rooms]:
        step = await run_step(workers, redis_url, rooms, args.participants, args.captions,
                              args.warmup, args.window, clips, args.client_processes, tmp)
        steps.append(step)
        print(f"{workers:>8}{rooms:>7}{step.packets_per_s:>12.0f}{step.delivered_video:>14.1%}"
              f"{step.delivered_audio:>14.1%}{step.cpu_seconds / max(step.wall, 1e-9):>12.2f}"
              f"{os.getloadavg()[0]:>10.2f}{step.captions_final:>8}{'' if step.error is None else '  ' + step.error}",
              flush=True)
        if not step.fits:
            break
    return steps


def limited_by(steps: list[Step], workers: int) -> str:
    """What stopped the ladder: the server (its nodes near a core each) or something else on this machine."""
    failed = [s for s in steps if not s.fits]
    if not failed:
        return "not reached"
    cores = failed[-1].cpu_seconds / max(failed[-1].wall, 1e-9)
    return "server" if cores >= 0.8 * workers else "load generators / shared machine"


def us_per_packet(step: Step | None) -> float | None:
    return round(step.cpu_seconds / step.packets * 1e6, 1) if step and step.packets else None


def best(steps: list[Step]) -> Step | None:
    fitting = [s for s in steps if s.fits]
    return max(fitting, key=lambda s: s.packets_per_s) if fitting else None


def run(args: argparse.Namespace) -> None:
    workers: int = args.workers
    captions = bool(args.captions)
    args.captions = captions
    variants = encode_vp8_variants([c for r in LADDER for c in (r.gallery, r.speaker)])
    opus = speech_clip() if captions else encode_opus_clip(seconds=2.0)
    print(f"Scale-out benchmark: conversation rooms of {args.participants} (one speaker at a time, the rest "
          f"DTX), VP8 at the server's cap + Opus, captions {'on' if captions else 'off'}; 1 worker vs "
          f"{workers}; {args.window:.0f} s window after {args.warmup:.0f} s warm-up; clients in "
          f"{args.client_processes} processes on this machine ({os.cpu_count()} cores, shared)")
    print(f"{'workers':>8}{'rooms':>7}{'packets/s':>12}{'video deliv.':>14}{'audio deliv.':>14}"
          f"{'srv cores':>12}{'load avg':>10}{'finals':>8}")
    redis, redis_url = start_redis()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            (tmp / "open.toml").write_text("[server]\nallow_adhoc_rooms = true\n")
            clips = tmp / "clips.pickle"
            clips.write_bytes(pickle.dumps((opus, variants)))
            one = asyncio.run(ladder(1, None, args, clips, tmp))
            many = asyncio.run(ladder(workers, redis_url, args, clips, tmp))
    finally:
        redis.terminate()
        redis.wait(timeout=10)
    one_best, many_best = best(one), best(many)
    scaling = (many_best.packets_per_s / one_best.packets_per_s) if one_best and many_best else None
    print(f"1 worker holds {one_best.rooms if one_best else 0} room(s) at >= 99% delivered "
          f"({one_best.packets_per_s if one_best else 0:.0f} packets/s); {workers} workers hold "
          f"{many_best.rooms if many_best else 0} ({many_best.packets_per_s if many_best else 0:.0f} packets/s)")
    one_limit, many_limit = limited_by(one, 1), limited_by(many, workers)
    print(f"what ran out first: 1 worker: {one_limit}; {workers} workers: {many_limit} "
          f"(server CPU per forwarded packet: {us_per_packet(one_best)} / {us_per_packet(many_best)} us)")
    us_one, us_many = us_per_packet(one_best), us_per_packet(many_best)
    # If each of N nodes costs what one does per packet, N cores forward N times as much: an estimate from
    # CPU, not a measurement of delivered packets (which needs a machine where the clients are not the limit).
    estimate = round(workers * us_one / us_many, 2) if us_one and us_many else None
    if "server" not in (one_limit, many_limit):
        print("!!! THE SERVER WAS NOT THE LIMIT: the scaling figure measures the load generators, not the workers !!!")
        print(f"estimate from server CPU per packet ({workers} x {us_one} / {us_many} us): {estimate}")
    if scaling is not None:
        print(f"scaling ({workers} workers / 1 worker, forwarded packets per second at >= 99% delivered): "
              f"{scaling:.2f}")
    print(json.dumps({
        "workers": workers,
        "rooms": many_best.rooms if many_best else 0,
        "participants_per_room": args.participants,
        "captions": captions,
        "packets_per_s_1_worker": round(one_best.packets_per_s) if one_best else 0,
        "packets_per_s_2_workers" if workers == 2 else f"packets_per_s_{workers}_workers":
            round(many_best.packets_per_s) if many_best else 0,
        "scaling": round(scaling, 2) if scaling is not None else None,
        "delivered_video": round(many_best.delivered_video, 4) if many_best else None,
        "rooms_1_worker": one_best.rooms if one_best else 0,
        "server_cores_2_workers": round(many_best.cpu_seconds / many_best.wall, 2) if many_best else None,
        "limited_by_1_worker": one_limit,
        "limited_by_2_workers" if workers == 2 else f"limited_by_{workers}_workers": many_limit,
        "us_per_packet_1_worker": us_one,
        "us_per_packet_2_workers" if workers == 2 else f"us_per_packet_{workers}_workers": us_many,
        "scaling_estimated_from_cpu": estimate,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--generate", required=True)
    parser.add_argument("--members", required=True)
    parser.add_argument("--participants", type=int, required=True)
    parser.add_argument("--t0", type=float, required=True)
    parser.add_argument("--clips", type=Path, required=True)
    parser.add_argument("--captions", action="store_true")
    args = parser.parse_args()
    members = [(int(r), int(t)) for r, t in (m.split(":") for m in args.members.split(","))]
    asyncio.run(generate(args.generate, members, args.participants, args.t0, args.clips, args.captions))


if __name__ == "__main__":
    main()

