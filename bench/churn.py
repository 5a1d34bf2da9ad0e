"""Churn: people dropping in and out for hours must not grow the server, nor disturb the people who stay.

    python -m bench.churn [--cycles 200] [--steady 3] [--grace 20] [--settle 45]

Three steady participants publish VP8 (320x240, 15 fps) and Opus and watch each other. Beside them, one
person at a time joins, publishes, and goes: a third leave cleanly (`leave`), a third abruptly (socket and
peer connection closed, no `leave`), a third are SIGKILLed (a child process: no DTLS close, no WebSocket
close; the server finds out from the socket and keeps the seat for the reconnect grace).

The server runs in this process so its own objects can be counted; the steady clients' objects are a
constant part of every count, and every churner is a child process. Measured after cycle 20 and again
after the churn has settled (every churner's seat released, then `--settle` seconds for ICE consent and
timers):
  leaked_tasks          asyncio tasks alive, end minus before the churn, less the 3 idle tasks aiortc keeps
                        per pooled slot (its sender's RTP and RTCP loops, its receiver's RTCP loop: aiortc
                        cannot stop a sender and start it again); the raw difference is `tasks_added`
  leaked_subscriptions  Subscription objects not held by a slot of anyone in the room (slots themselves
                        are a reused pool bounded by the most publishers present at once; reported as
                        `slots`, after cycle 20 and at the end)
  leaked_pcs            RTCPeerConnection objects, end minus before
  leaked_fds            open file descriptors, end minus before
  rss_growth_pct        RSS at the end against RSS after cycle 20
  steady_min_fps_ratio  the worst 1 s of any steady viewer's video from any other steady publisher
                        during the churn, against the 15 fps sent (leaving out the seconds in which this
                        process walked its heap for the counts above)
Also counted: log records carrying a traceback (`tracebacks`). The offer rate per address is raised (every
churner comes from 127.0.0.1). Loopback only; figures from a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import subprocess
import sys
import time

import psutil

from bench.attacks import FrameMeter
from sfu import aiortc_adapter
from sfu.client import RoomClient, encode_opus_clip, encode_vp8_clip, read_trailer

FPS = 15.0
ROOM = "churn"


def clips() -> tuple[list[bytes], list[bytes]]:
    return encode_vp8_clip(frames=30, width=320, height=240, fps=int(FPS), keyframe_interval=15), \
        encode_opus_clip(seconds=1.0)


async def child(url: str, tag: int, kind: str) -> None:
    """A churner in its own process (so this process's RSS and descriptors are the server's and the steady
    clients'): it joins, publishes for a second, then leaves cleanly, drops abruptly, or waits to be killed."""
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    vp8, opus = clips()
    client = RoomClient(url, ROOM, f"{kind} {tag}", vp8, opus, fps=FPS, tag=tag, keep_frames=False)
    await client.join()
    while not client.frame_counts:  # media flows (it receives the steady participants' video)
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await asyncio.sleep(1.0)
    if kind == "clean":
        await client.leave()
    elif kind == "abrupt":
        await client.close()  # peer connection and socket closed, no `leave`
    else:
        await asyncio.sleep(3600)


class TracebackCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.examples: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.count += 1
            if len(self.examples) < 5:
                self.examples.append(f"{record.name}: {record.exc_info[0].__name__ if record.exc_info[0] else ''}")


def task_kinds() -> dict[str, int]:
    from collections import Counter

    return dict(Counter(t.get_coro().__qualname__ for t in asyncio.all_tasks()))  # type: ignore[union-attr]


def snapshot(rooms, steady_ids: set[str | None]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from aiortc import RTCPeerConnection

    from sfu.subscription import Subscription

    gc.collect()
    objects = gc.get_objects()
    held = {id(slot.subscription) for room in rooms.rooms.values() for p in room.participants.values()
            for slot in p.media.slots}
    subscriptions = [o for o in objects if isinstance(o, Subscription)]
    return {
        "tasks": len(asyncio.all_tasks()),
        "subscriptions": len(subscriptions),
        "orphan_subscriptions": sum(1 for s in subscriptions if id(s) not in held),
        "slots": len(held),
        "steady_slots": sum(len(p.media.slots) for room in rooms.rooms.values() for p in room.participants.values()
                            if p.id in steady_ids),
        "pcs": sum(1 for o in objects if isinstance(o, RTCPeerConnection)),
        "fds": len(os.listdir("/proc/self/fd")),
        "rss_mb": psutil.Process().memory_info().rss / 1e6,
    }


async def run(cycles: int, steady_count: int, grace: float, settle: float) -> dict[str, object]:
    from peerwell.groups import Group, GroupsConfig, ServerSettings
    from sfu.config import ServerConfig
    from tests.conftest import start_server

    counter = TracebackCounter()
    logging.getLogger().addHandler(counter)
    group = Group(slug=ROOM, name="Churn", agreement="Benchmark.", max_participants=50, lobby=False,
                  facilitator_secret="churn-benchmark-secret")
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=grace, offers_per_minute=1e6, joins_per_minute=1e6,
                          groups=GroupsConfig(server=ServerSettings(allow_adhoc_rooms=False), groups=(group,)))
    runner, server = await start_server(config)
    rooms = server.rooms
    vp8, opus = clips()
    meters: dict[tuple[int, int], FrameMeter] = {}

    def viewer(me: int):  # type: ignore[no-untyped-def]
        def on_frame(mid: str, kind: str, data: bytes, at: float) -> None:
            mark = read_trailer(data) if kind == "video" else None
            if mark is not None and mark[0] < steady_count:
                meters.setdefault((me, mark[0]), FrameMeter()).frame()
        return on_frame

    steady = [RoomClient(server.ws_url, ROOM, f"steady {i}", vp8, opus, fps=FPS, tag=i, keep_frames=False,
                         on_frame=viewer(i)) for i in range(steady_count)]
    for client in steady:
        await client.join()
    await asyncio.sleep(5)
    steady_ids = {c.participant_id for c in steady}
    before = snapshot(rooms, steady_ids)
    tasks_before = task_kinds()
    offers = 0

    def count_offers() -> None:
        """Count the steady clients' server offers and drop them: kept, their SDPs (~400 x 20 KB each over
        200 cycles) would be most of this process's RSS growth."""
        nonlocal offers
        for client in steady:
            offers += sum(1 for s in client.signals if s.get("type") == "offer")
            client.signals.clear()

    count_offers()
    offers = 0
    children: list[subprocess.Popen[bytes]] = []
    after_20: dict[str, float] = {}
    churn_start = time.perf_counter()
    pauses: list[tuple[float, float]] = []  # gc walks in this process (the server's too): not the server's doing
    print(f"{'cycle':>5} {'kind':>7} {'tasks':>6} {'subs':>5} {'slots':>5} {'steady slots':>12} {'pcs':>4} {'fds':>4} "
          f"{'rss MB':>7}")
    for cycle in range(cycles):
        kind = ("clean", "abrupt", "killed")[cycle % 3]
        tag = steady_count + cycle
        process = subprocess.Popen(  # noqa: ASYNC220 - the child is the measured churner
            [sys.executable, "-m", "bench.churn", "--child", server.ws_url, "--tag", str(tag), "--kind", kind],
            stdout=subprocess.PIPE)
        children.append(process)
        assert process.stdout is not None
        line = await asyncio.to_thread(process.stdout.readline)
        if b"ready" not in line:
            raise RuntimeError("a churn child did not join")
        if kind == "killed":
            await asyncio.sleep(1.0)
            process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait)
        process.stdout.close()
        count_offers()
        first_mark = min(20, cycles)  # RSS growth is measured from here (after the first 20 cycles)
        if cycle + 1 == first_mark or (cycle + 1) % 20 == 0:
            paused = time.perf_counter()
            now = snapshot(rooms, steady_ids)
            pauses.append((paused, time.perf_counter()))
            if cycle + 1 == first_mark:
                after_20 = now
            print(f"{cycle + 1:>5} {kind:>7} {now['tasks']:>6} {now['subscriptions']:>5} {now['slots']:>5} "
                  f"{now['steady_slots']:>12} {now['pcs']:>4} {now['fds']:>4} {now['rss_mb']:>7.1f}", flush=True)
    churn_end = time.perf_counter()

    deadline = time.monotonic() + grace + 60
    while (set(rooms.rooms[ROOM].participants) != steady_ids or len(rooms.seats) != steady_count) \
            and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    await asyncio.sleep(settle)
    end = snapshot(rooms, steady_ids)
    if os.environ.get("CHURN_DEBUG"):
        after = task_kinds()
        print({k: after.get(k, 0) - tasks_before.get(k, 0) for k in after if after.get(k, 0) != tasks_before.get(k, 0)})
        for (me, other), meter in meters.items():
            at, line = churn_start, []
            while at < churn_end:
                line.append(f"{meter.fps_between(at, at + 1):.0f}")
                at += 1
            print(me, other, " ".join(line))
    print(f"{'end':>5} {'':>7} {end['tasks']:>6} {end['subscriptions']:>5} {end['slots']:>5} "
          f"{end['steady_slots']:>12} {end['pcs']:>4} {end['fds']:>4} {end['rss_mb']:>7.1f}")
    ratios = [meter.min_fps_ratio(churn_start, churn_end, FPS, skip=pauses) for meter in meters.values()]
    print(f"heap walks: {', '.join(f'{b - a:.2f} s' for a, b in pauses)} (windows overlapping them left out)")
    expected_pairs = steady_count * (steady_count - 1)
    count_offers()
    for client in steady:
        await client.leave()
    await runner.cleanup()
    for process in children:
        if process.poll() is None:
            process.kill()
    result = {
        "cycles": cycles,
        "leaked_tasks": end["tasks"] - before["tasks"] - 3 * (end["slots"] - before["slots"]),
        "tasks_added": end["tasks"] - before["tasks"],
        "leaked_subscriptions": end["orphan_subscriptions"] - before["orphan_subscriptions"],
        "leaked_pcs": end["pcs"] - before["pcs"],
        "leaked_fds": end["fds"] - before["fds"],
        "rss_growth_pct": round((end["rss_mb"] - after_20["rss_mb"]) / after_20["rss_mb"] * 100, 2),
        "steady_min_fps_ratio": round(min(ratios) if len(ratios) == expected_pairs else 0.0, 3),
        "steady_slots_before": before["steady_slots"],
        "steady_slots_after_20": after_20["steady_slots"],
        "steady_slots_end": end["steady_slots"],
        "offers_per_steady": round(offers / steady_count, 1),
        "tracebacks": counter.count,
    }
    logging.getLogger().removeHandler(counter)
    if counter.examples:
        print("tracebacks:", ", ".join(counter.examples))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--steady", type=int, default=3)
    parser.add_argument("--grace", type=float, default=20.0, help="reconnect grace, seconds (server default 20)")
    parser.add_argument("--settle", type=float, default=45.0, help="seconds after the last seat is released")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--tag", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="killed", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.child, args.tag, args.kind))
        return
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(run(args.cycles, args.steady, args.grace, args.settle))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
