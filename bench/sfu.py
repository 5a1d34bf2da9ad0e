"""SFU benchmark: N participants each publish VP8 (~500 kbps) + Opus and subscribe to all others.

    python -m bench.sfu [--participants 6] [--warmup 5] [--window 10]

The server runs in its own process so its CPU is measured alone. The load generator replays media
encoded once beforehand and counts what arrives without decoding, so it costs little. The same load
then goes through a baseline server that relays with aiortc's MediaRelay (decode once, encode per
subscriber); it may saturate, hence the comparison per delivered frame. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import psutil

from sfu import aiortc_adapter
from sfu.client import RoomClient, encode_opus_clip, encode_vp8_clip, read_trailer


@dataclass
class RunResult:
    mode: str
    cpu_seconds: float
    wall_seconds: float
    video_frames: int
    audio_frames: int
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def cpu_cores(self) -> float:
        return self.cpu_seconds / self.wall_seconds

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def serve(mode: str, port: int) -> None:
    """Child process: one server, forwarding (ours) or relaying (baseline)."""
    from aiohttp import web

    from sfu.app import create_app
    from sfu.config import ServerConfig
    from sfu.signaling import ROOMS_KEY

    app = create_app(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0))
    if mode == "baseline":
        from bench.relay_baseline import RelayParticipant

        app[ROOMS_KEY].participant_class = RelayParticipant
    web.run_app(app, host="127.0.0.1", port=port, print=lambda *_: print("ready", flush=True))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run(mode: str, participants: int, warmup: float, window: float,
              vp8: list[bytes], opus: list[bytes]) -> RunResult:
    port = free_port()
    command = [sys.executable, "-m", "bench.sfu", "--serve", mode, "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220 - once, before measuring
    try:
        assert server.stdout is not None
        line = await asyncio.to_thread(server.stdout.readline)
        if "ready" not in line:
            raise RuntimeError(f"{mode} server did not start")
        process = psutil.Process(server.pid)
        url = f"ws://127.0.0.1:{port}/ws"
        measuring = False
        latencies: list[float] = []
        counts = {"video": 0, "audio": 0}
        clients: list[RoomClient] = []

        def on_frame(mid: str, kind: str, data: bytes, now: float) -> None:
            if not measuring:
                return
            counts[kind] += 1
            mark = read_trailer(data) if kind == "video" else None
            if mark is not None:
                tag, number = mark
                sent = clients[tag].video_track.sent_at.get(number) if clients[tag].video_track else None
                if sent is not None:
                    latencies.append((now - sent) * 1000)

        for i in range(participants):
            client = RoomClient(url, "bench", f"p{i}", vp8, opus, tag=i, keep_frames=False, on_frame=on_frame)
            clients.append(client)
            await client.join()
        await asyncio.sleep(warmup)
        measuring = True
        cpu_start = sum(process.cpu_times()[:2])
        wall_start = time.perf_counter()
        await asyncio.sleep(window)
        cpu = sum(process.cpu_times()[:2]) - cpu_start
        wall = time.perf_counter() - wall_start
        measuring = False
        for client in clients:
            await client.leave()
        return RunResult(mode, cpu, wall, counts["video"], counts["audio"], latencies)
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=6)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--serve", choices=["forward", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return

    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])  # the load generator's candidates too
    vp8 = encode_vp8_clip(frames=90, bitrate=500_000)
    opus = encode_opus_clip(seconds=2.0)
    kbps = sum(len(f) for f in vp8) * 8 / (len(vp8) / 30) / 1000
    n = args.participants
    streams = n * (n - 1)
    ours = asyncio.run(run("forward", n, args.warmup, args.window, vp8, opus))
    base = asyncio.run(run("baseline", n, args.warmup, args.window, vp8, opus))

    def per_frame(r: RunResult) -> float:
        return r.cpu_seconds / max(r.video_frames, 1)

    cpu_ratio = per_frame(base) / per_frame(ours)
    streams_per_core = streams / ours.cpu_cores if ours.cpu_cores > 0 else float("inf")
    expected = streams * 30 * ours.wall_seconds
    print(f"SFU benchmark: {n} participants, VP8 640x480 30 fps ~{kbps:.0f} kbps + Opus, "
          f"{args.window:.0f} s window after {args.warmup:.0f} s warm-up, pid {os.getpid()} load generator")
    print(f"{'server':<10}{'cpu cores':>10}{'video frames':>14}{'of expected':>13}{'audio frames':>14}"
          f"{'cpu ms/frame':>14}{'lat p50 ms':>12}{'lat p95 ms':>12}")
    for r in (ours, base):
        p50, p95 = r.percentile(0.5), r.percentile(0.95)
        print(f"{r.mode:<10}{r.cpu_cores:>10.3f}{r.video_frames:>14}{r.video_frames / expected:>13.0%}"
              f"{r.audio_frames:>14}{per_frame(r) * 1000:>14.3f}"
              f"{(f'{p50:.2f}' if p50 is not None else '-'):>12}{(f'{p95:.2f}' if p95 is not None else '-'):>12}")
    print(f"forwarded video streams {streams}; cpu_ratio {cpu_ratio:.1f} (target >= 20); "
          f"streams_per_core {streams_per_core:.0f} (target >= 100); latency p95 target <= 10 ms")
    print(json.dumps({
        "participants": n,
        "forwarded_video_streams": streams,
        "cpu_cores": round(ours.cpu_cores, 4),
        "baseline_cpu_cores": round(base.cpu_cores, 4),
        "cpu_ratio": round(cpu_ratio, 2),
        "streams_per_core": round(streams_per_core, 1),
        "latency_p50_ms": round(statistics.median(ours.latencies_ms), 3) if ours.latencies_ms else None,
        "latency_p95_ms": round(ours.percentile(0.95), 3) if ours.latencies_ms else None,
    }))


if __name__ == "__main__":
    main()
