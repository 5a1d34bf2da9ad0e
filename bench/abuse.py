"""Abuse: what one hostile participant can do to a room's media, measured at a bystander.

    python -m bench.abuse [--attack sdp-flood|sdp-flood-unthrottled|stalled-socket|all] [--seconds 20]

A publisher sends VP8 (320x240, 15 fps) to a bystander through a server in its own process. After a
quiet stretch (the reference frame rate), an attacker in a third process attacks for `--seconds`:
  sdp-flood               four connections, each joining and sending well-formed but huge offers (3,000
                          ICE candidates; 500 m-lines; 250 KB) as fast as the server answers, with the
                          server's default limits (per address: 60 joins and 20 offers a minute, then
                          `rate-limited`)
  sdp-flood-unthrottled   the same with the per-address rates lifted, so every offer reaches the SDP
                          checks (sfu/limits/offer_limits.py)
  stalled-socket          eight participants whose sockets never read, while people come and go as fast
                          as they can (rates lifted: each arrival and departure is an event for every socket)
Reported per attack: the bystander's worst 1 s of video against the reference (bystander_min_fps_ratio),
and the longest gap between two of its frames (longest_gap_s); tests/test_stalled_socket.py covers what a
stalled socket does to other sockets' events. Targets: ratio >= 0.9, gap <= 0.5 s. The last line is one
JSON object: the worst attack's figures, then every attack's. Loopback only; on a shared machine the
figures are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

import aiohttp

from bench.attacks import FrameMeter, StalledSocket, padded, real_offer, with_candidates, with_sections
from sfu import aiortc_adapter
from sfu.contrib.client import RoomClient, encode_vp8_clip

FPS = 15.0
ROOM = "abuse"
ATTACKS = ("sdp-flood", "sdp-flood-unthrottled", "stalled-socket")


def serve(port: int, unthrottled: bool) -> None:
    import logging

    from aiohttp import web

    from sfu.app import create_app
    from sfu.config import ServerConfig
    from sfu.lifecycle.heap import freeze_startup_heap
    from sfu.room.groups import Group, GroupsConfig, ServerSettings

    logging.basicConfig(level=logging.ERROR)
    group = Group(slug=ROOM, name="Abuse", agreement="Benchmark.", max_participants=50, lobby=False,
                  facilitator_secret="abuse-benchmark-secret")
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0,
                          offers_per_minute=1e6 if unthrottled else ServerConfig.offers_per_minute,
                          joins_per_minute=1e6 if unthrottled else ServerConfig.joins_per_minute,
                          groups=GroupsConfig(server=ServerSettings(allow_adhoc_rooms=False), groups=(group,)))
    app = create_app(config)

    async def freeze(_: web.Application) -> None:
        freeze_startup_heap()  # as `peerwell serve` does

    app.on_startup.append(freeze)
    web.run_app(app, host="127.0.0.1", port=port, print=lambda *_: print("ready", flush=True))


async def sdp_flood(port: int, seconds: float) -> None:
    base = await real_offer()
    hostile = [with_candidates(base, 3000), with_sections(base, 500), padded(base, 250_000)]
    url = f"ws://127.0.0.1:{port}/ws"
    deadline = time.monotonic() + seconds
    counts: dict[str, int] = {}

    async def one(http: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            async with http.ws_connect(url) as ws:
                await ws.send_json({"type": "join", "room": ROOM, "name": "Attacker", "accept_agreement": True})
                await ws.receive_json(timeout=30)
                for sdp in hostile:
                    await ws.send_str(json.dumps({"type": "offer", "sdp": sdp}))
                    reply = await ws.receive_json(timeout=30)
                    while reply["type"] not in ("error", "answer"):  # other attackers coming and going
                        reply = await ws.receive_json(timeout=30)
                    key = reply.get("code", reply["type"])
                    counts[key] = counts.get(key, 0) + 1

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(one(http) for _ in range(4)))
    print(json.dumps(counts), flush=True)


async def stalled_sockets(port: int, seconds: float) -> None:
    stalled = [StalledSocket(port) for _ in range(8)]
    for i, sock in enumerate(stalled):
        await sock.open()
        await sock.send({"type": "join", "room": ROOM, "name": f"Stalled {i}", "accept_agreement": True})
    url = f"ws://127.0.0.1:{port}/ws"
    deadline = time.monotonic() + seconds
    cycles = 0
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            async with http.ws_connect(url) as ws:
                await ws.send_json({"type": "join", "room": ROOM, "name": "Comes and goes " + "z" * 24,
                                    "accept_agreement": True})
                await ws.receive_json(timeout=30)
                cycles += 1
    print(json.dumps({"cycles": cycles, "disconnected": sum(s.closed_by_server() for s in stalled)}), flush=True)
    for sock in stalled:
        sock.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def measure(attack: str, seconds: float, quiet: float) -> dict[str, object]:
    port = free_port()
    server = subprocess.Popen(  # noqa: ASYNC220 - once, before measuring
        [sys.executable, "-m", "bench.abuse", "--serve", str(port)]
        + (["--unthrottled"] if attack != "sdp-flood" else []), stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        if "ready" not in await asyncio.to_thread(server.stdout.readline):
            raise RuntimeError("server did not start")
        url = f"ws://127.0.0.1:{port}/ws"
        vp8 = encode_vp8_clip(frames=30, width=320, height=240, fps=int(FPS), keyframe_interval=15)
        meter = FrameMeter()
        publisher = RoomClient(url, ROOM, "Publisher", vp8, None, fps=FPS, tag=1, keep_frames=False)
        bystander = RoomClient(url, ROOM, "Bystander", keep_frames=False,
                               on_frame=lambda mid, kind, data, at: meter.frame() if kind == "video" else None)
        await publisher.join()
        await bystander.join()
        await asyncio.sleep(2.0)
        reference_start = time.perf_counter()
        await asyncio.sleep(quiet)
        reference_fps = meter.fps_between(reference_start, time.perf_counter())

        start = time.perf_counter()
        attacker = subprocess.Popen(  # noqa: ASYNC220 - the attacker runs beside the measurement
            [sys.executable, "-m", "bench.abuse", "--attacker", attack, "--port", str(port),
             "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True)
        assert attacker.stdout is not None
        output = await asyncio.to_thread(attacker.stdout.read)
        await asyncio.to_thread(attacker.wait)
        end = time.perf_counter()
        result: dict[str, object] = {
            "attack": attack,
            "bystander_min_fps_ratio": round(meter.min_fps_ratio(start, end, reference_fps), 3),
            "longest_gap_s": round(meter.longest_gap(start, end), 3),
            "reference_fps": round(reference_fps, 2),
            "attacker": json.loads(output.strip().splitlines()[-1]) if output.strip() else None,
        }
        await publisher.leave()
        await bystander.leave()
        return result
    finally:
        server.terminate()
        await asyncio.to_thread(server.wait)


async def run(attacks: list[str], seconds: float, quiet: float) -> None:
    results = []
    print(f"{'attack':<24} {'min fps ratio':>13} {'longest gap s':>13} {'reference fps':>13}  attacker")
    for attack in attacks:
        result = await measure(attack, seconds, quiet)
        results.append(result)
        print(f"{attack:<24} {result['bystander_min_fps_ratio']:>13} {result['longest_gap_s']:>13} "
              f"{result['reference_fps']:>13}  {result['attacker']}", flush=True)
    worst = min(results, key=lambda r: (r["bystander_min_fps_ratio"], -r["longest_gap_s"]))  # type: ignore[operator]
    print(json.dumps({"attack": worst["attack"], "bystander_min_fps_ratio": worst["bystander_min_fps_ratio"],
                      "longest_gap_s": max(r["longest_gap_s"] for r in results),  # type: ignore[type-var]
                      "attacks": results}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attack", choices=[*ATTACKS, "all"], default="all")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quiet", type=float, default=5.0, help="seconds of reference before the attack")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--unthrottled", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--attacker", choices=ATTACKS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.unthrottled)
    elif args.attacker:
        attack = stalled_sockets if args.attacker == "stalled-socket" else sdp_flood
        asyncio.run(attack(args.port, args.seconds))
    else:
        aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])  # the clients' ICE, on loopback like the server's
        asyncio.run(run(list(ATTACKS) if args.attack == "all" else [args.attack], args.seconds, args.quiet))


if __name__ == "__main__":
    main()
