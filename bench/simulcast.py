"""`python -m bench.sfu --scenario simulcast --participants 8`: simulcast forwarding against single-layer, same run.

Every participant publishes VP8 in three layers (135p 15 fps, 270p 30 fps, 540p 30 fps, pre-encoded once;
RID-based like a browser's, sfu.contrib.client `simulcast`) and Opus (one speaker at a time, the rest DTX), and
subscribes to everyone else. Each listener reports mixed tile sizes (listener i shows publisher j at 135,
270 or 540 px by (i + j) mod 3), so the server forwards each pair the layer that fills the tile. The same
room then runs single-layer (every publisher sends only the 540p layer, every listener gets it) on a fresh
server, and cpu_vs_single_layer = server CPU with simulcast / server CPU single-layer (same window).

Delivered video counts, per listener and publisher, the frames of the layer that tile asks for: received /
sent on that layer in the window. Latency is timed end to end on trailer-stamped frames (each layer has its
own trailer tag). The server runs in its own process; listeners count without decoding. Pairs the server
paused for bandwidth (loss reported by a load generator too busy to read its socket) are printed. Loopback
only.
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
from pathlib import Path

import psutil

from bench.sfu import (
    LATENCY_SAMPLE_EVERY,
    TURN_SECONDS,
    RunResult,
    fmt,
    free_port,
    latencies_ms,
    open_window,
    read_reports,
    stop_all,
)
from sfu import aiortc_adapter
from sfu.contrib.client import (
    RoomClient,
    VideoVariant,
    encode_opus_clip,
    encode_vp8_variants,
    opus_silence_frame,
    read_trailer,
)

LAYER_CAPS = [(100_000, 15, 135), (250_000, 30, 270), (700_000, 30, 540)]  # (bps, fps, height), smallest first
TILES = (135, 270, 540)


def layer_tag(tag: int, layer: int) -> int:
    return tag * 10 + layer


async def generate(url: str, tags: list[int], participants: int, mode: str, t0: float,
                   clips: tuple[list[VideoVariant], list[bytes]]) -> None:
    """Child process: some of the room's participants; prints "joined", reads the window, reports JSON."""
    layers, opus = clips
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    silence = opus_silence_frame()
    measuring = False
    received: dict[int, dict[str, int]] = {}  # listener tag -> mid -> video frames
    audio_received = [0]
    samples: list[tuple[int, int, float]] = []

    def on_frame_for(tag: int):  # type: ignore[no-untyped-def]
        counts = received.setdefault(tag, {})

        def on_frame(mid: str, kind: str, data: bytes, now: float) -> None:
            if not measuring:
                return
            if kind == "audio":
                audio_received[0] += 1
                return
            counts[mid] = counts.get(mid, 0) + 1
            mark = read_trailer(data)
            if mark is not None and mark[1] % LATENCY_SAMPLE_EVERY == 0:
                samples.append((mark[0], mark[1], now))

        return on_frame

    def speaker_now() -> int:
        return int((time.monotonic() - t0) / TURN_SECONDS) % participants

    clients: list[RoomClient] = []
    for tag in tags:
        video = {"simulcast": layers} if mode == "simulcast" else {"video_frames": layers[-1].frames,
                                                                      "fps": layers[-1].fps}
        client = RoomClient(url, "bench", f"p{tag}", audio_frames=opus, tag=tag, keep_frames=False,
                            on_frame=on_frame_for(tag), talking=lambda tag=tag: speaker_now() == tag,
                            silence_frame=silence, **video)
        clients.append(client)
        await client.join()
    print("joined", flush=True)
    window_from, window_until = map(float, (await asyncio.to_thread(sys.stdin.readline)).split())

    def names(client: RoomClient) -> dict[str, int]:
        """participant id -> tag, from what signaling told this client."""
        people = list(client.joined.get("participants", []))
        people += [m["participant"] for m in client.signals if m.get("type") == "participant-joined"]
        return {p["id"]: int(p["name"][1:]) for p in people if p["name"].startswith("p")}

    for client in clients:  # mixed tile sizes, reported as a browser does
        deadline = time.monotonic() + 10
        while client.channel is None or client.channel.readyState != "open":
            if time.monotonic() > deadline:
                raise RuntimeError("a data channel did not open")
            await asyncio.sleep(0.05)
        views = {pid: TILES[(client.tag + tag) % 3] for pid, tag in names(client).items() if tag != client.tag}
        client.send_channel({"type": "set-video-views", "views": views})

    def layer_sent() -> dict[int, list[int]]:
        return {c.tag: [t.sent for t in (c.layer_tracks or [c.video_track])] for c in clients if c.video_track}

    await asyncio.sleep(max(0.0, window_from - time.monotonic()))
    packets_start = sum(await asyncio.gather(*(c.packets_received() for c in clients)))
    sent_start = layer_sent()
    audio_start = sum(c.audio_track.sent for c in clients if c.audio_track)
    measuring = True
    await asyncio.sleep(max(0.0, window_until - time.monotonic()))
    measuring = False
    sent_end = layer_sent()
    by_publisher: dict[int, dict[int, int]] = {}  # listener tag -> publisher tag -> video frames
    for client in clients:
        ids = names(client)
        counts = by_publisher.setdefault(client.tag, {})
        for mid, frames in received.get(client.tag, {}).items():
            info = client.tracks.get(mid)
            if info is not None and info["participant_id"] in ids:
                publisher = ids[info["participant_id"]]
                counts[publisher] = counts.get(publisher, 0) + frames
    sent_at = {}
    for c in clients:
        tracks = c.layer_tracks or ([c.video_track] if c.video_track else [])
        for index, track in enumerate(tracks):
            sent_at[layer_tag(c.tag, index) if mode == "simulcast" else c.tag] = {
                n: t for n, t in track.sent_at.items() if n % LATENCY_SAMPLE_EVERY == 0}
    paused = 0  # listener-publisher pairs the server paused for bandwidth (their latest video-delivery)
    for client in clients:
        latest = [e for e in client.events if e.get("type") == "video-delivery"]
        if latest:
            paused += sum(1 for reason in latest[-1]["videos"].values() if reason == "bandwidth")
    report = {
        "paused_for_bandwidth": paused,
        "received": by_publisher, "audio_received": audio_received[0],
        "layer_sent": {tag: [b - a for a, b in zip(sent_start[tag], sent_end[tag], strict=True)] for tag in sent_end},
        "audio_sent": sum(c.audio_track.sent for c in clients if c.audio_track) - audio_start,
        "packets": sum(await asyncio.gather(*(c.packets_received() for c in clients))) - packets_start,
        "samples": samples, "sent_at": sent_at,
    }
    print(json.dumps(report), flush=True)
    for client in clients:
        await client.leave()


async def run(mode: str, participants: int, warmup: float, window: float, clips: Path,
              client_processes: int) -> RunResult:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.sfu", "--serve", "forward", "--port", str(port)],  # noqa: ASYNC220
                              stdout=subprocess.PIPE, text=True)
    generators: list[asyncio.subprocess.Process] = []
    try:
        assert server.stdout is not None
        if "ready" not in await asyncio.to_thread(server.stdout.readline):
            raise RuntimeError("server did not start")
        process = psutil.Process(server.pid)
        url = f"ws://127.0.0.1:{port}/ws"
        t0 = time.monotonic()
        for k in range(client_processes):
            tags = list(range(participants))[k::client_processes]
            generators.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.simulcast", "--generate", url, "--tags", ",".join(map(str, tags)),
                "--participants", str(participants), "--mode", mode, "--t0", repr(t0), "--clips", str(clips),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=64 * 1024 * 1024))
        window_from, window_until = await open_window(generators, warmup, window)
        await asyncio.sleep(max(0.0, window_from - time.monotonic()))
        cpu_start, wall_start = sum(process.cpu_times()[:2]), time.perf_counter()
        await asyncio.sleep(max(0.0, window_until - time.monotonic()))
        result = RunResult(mode)
        result.cpu_seconds = sum(process.cpu_times()[:2]) - cpu_start
        result.wall_seconds = time.perf_counter() - wall_start
        reports = await read_reports(generators)
        layer_sent = {int(tag): sent for r in reports for tag, sent in r["layer_sent"].items()}
        print(f"{mode}: pairs paused for bandwidth at the end: {sum(r['paused_for_bandwidth'] for r in reports)}",
              file=sys.stderr)
        for report in reports:
            result.audio_received += report["audio_received"]
            result.audio_sent_x_listeners += report["audio_sent"] * (participants - 1)
            result.packets_received += report["packets"]
            for listener, counts in report["received"].items():
                for publisher in layer_sent:
                    if publisher == int(listener):
                        continue
                    layer = (int(listener) + publisher) % 3 if mode == "simulcast" else 0
                    result.video_sent_x_listeners += layer_sent[publisher][layer]
                    result.video_received += min(counts.get(str(publisher), 0), layer_sent[publisher][layer])
        result.latencies_ms = latencies_ms(reports)
        return result
    finally:
        stop_all(generators, server)


def main(participants: int, warmup: float, window: float, client_processes: int) -> None:
    layers = sorted(encode_vp8_variants(LAYER_CAPS, seconds=3.0), key=lambda v: v.height)
    opus = encode_opus_clip(seconds=2.0)
    with tempfile.TemporaryDirectory() as tmp:
        clips = Path(tmp) / "clips.pickle"
        clips.write_bytes(pickle.dumps((layers, opus)))
        simulcast = asyncio.run(run("simulcast", participants, warmup, window, clips, client_processes))
        single = asyncio.run(run("single", participants, warmup, window, clips, client_processes))
    ratio = simulcast.cpu_seconds / max(single.cpu_seconds, 1e-9)
    print(f"SFU benchmark: simulcast, {participants} participants; VP8 layers "
          + ", ".join(f"{v.height}p{v.fps:.0f} {v.bitrate_bps / 1000:.0f} kbps" for v in layers)
          + f" (single-layer: the {layers[-1].height}p layer only) + Opus (one speaker at a time, the rest DTX); "
          f"tiles mixed {TILES}; {window:.0f} s window after {warmup:.0f} s warm-up; {client_processes} "
          "load-generator processes")
    print(f"{'run':<10}{'cpu cores':>10}{'video deliv.':>14}{'audio deliv.':>14}{'packets':>10}"
          f"{'us/packet':>11}{'lat p50 ms':>12}{'lat p95 ms':>12}")
    for r in (simulcast, single):
        print(f"{r.mode:<10}{r.cpu_cores:>10.3f}{r.delivered_video:>14.1%}{r.delivered_audio:>14.1%}"
              f"{r.packets_received:>10}{r.us_per_packet:>11.1f}{fmt(r.percentile(0.5)):>12}"
              f"{fmt(r.percentile(0.95)):>12}")
    print(f"cpu_vs_single_layer (server CPU simulcast / single-layer): {ratio:.2f}")
    short = [f"{kind} {value:.1%}" for kind, value in (("video", simulcast.delivered_video),
                                                        ("audio", simulcast.delivered_audio)) if value < 0.99]
    if short:
        print(f"!!! DELIVERED BELOW 99%: {', '.join(short)} !!!")
    print(json.dumps({
        "scenario": "simulcast",
        "participants": participants,
        "delivered_video": round(simulcast.delivered_video, 4),
        "delivered_audio": round(simulcast.delivered_audio, 4),
        "latency_p95_ms": round(simulcast.percentile(0.95), 2) if simulcast.latencies_ms else None,  # type: ignore[arg-type]
        "us_per_packet": round(simulcast.us_per_packet, 1),
        "cpu_vs_single_layer": round(ratio, 3),
        "cpu_cores": round(simulcast.cpu_cores, 3),
        "single_layer_cpu_cores": round(single.cpu_cores, 3),
    }))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--generate", required=True)
    parser.add_argument("--tags", required=True)
    parser.add_argument("--participants", type=int, required=True)
    parser.add_argument("--mode", choices=["simulcast", "single"], required=True)
    parser.add_argument("--t0", type=float, required=True)
    parser.add_argument("--clips", type=Path, required=True)
    args = parser.parse_args()
    clips = pickle.loads(args.clips.read_bytes())  # our own file, written by the parent process
    asyncio.run(generate(args.generate, [int(t) for t in args.tags.split(",")], args.participants, args.mode,
                         args.t0, clips))
