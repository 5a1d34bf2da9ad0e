"""Churn: people dropping in and out for hours must not grow the server, nor disturb the people who stay.

    python -m bench.churn [--cycles 200] [--steady 3] [--grace 20] [--settle 45]

Three steady participants publish VP8 (320x240, 15 fps) and Opus and watch each other. Beside them, one
person at a time joins, publishes, and goes: a third leave cleanly (`leave`), a third abruptly (socket and
peer connection closed, no `leave`), a third are SIGKILLed (a child process: no DTLS close, no WebSocket
close; the server finds out from the socket and keeps the seat for the reconnect grace).

Three kinds of process, so that each figure is the server's: the server runs alone in a child process
(`--serve`), which counts its own objects when asked on its stdin; the steady clients run in this process
(they measure frame arrival); every churner is a child process of its own, at niceness 10 (starting one
takes a core for a second, which no client does on a real server's machine). Until 2026-11-30 the server
and the steady clients shared this process, so a client's cost (its own SDP work, its heap's garbage
collections) stalled the server's forwarding too and was counted against it.
Measured after cycle 20 and again after the churn has settled (every churner's seat released, then
`--settle` seconds for ICE consent and timers):
  leaked_tasks          asyncio tasks alive in the server, end minus before the churn, less the 2 idle tasks
                        aiortc keeps per pooled slot (its sender's RTP and RTCP loops: aiortc cannot stop a
                        sender and start it again); the raw difference is `tasks_added`. (The third task per
                        slot counted before 2026-11-30 was the steady client's receiver, in this process then.)
  leaked_subscriptions  Subscription objects not held by a slot of anyone in the room (slots themselves
                        are a reused pool bounded by the most publishers present at once; reported as
                        `slots`, after cycle 20 and at the end)
  leaked_pcs            RTCPeerConnection objects, end minus before
  leaked_fds            the server's open file descriptors, end minus before
  rss_growth_pct        the server's RSS at the end against its RSS after cycle 20, as the server holds
                        it: read after a full garbage collection and once the server's own heap trimmer
                        (sfu/lifecycle/heap.py, as `peerwell serve` runs it) has acted on it. The same after the
                        benchmark's own malloc_trim(0) is `rss_growth_trimmed_pct` (what no trim reaches:
                        live data, and Python's allocator arenas a few live objects keep). Until 2026-11-30
                        the headline was the trimmed figure, and the server did not trim.
  steady_min_fps_ratio  the worst 1 s of any steady viewer's video from any other steady publisher
                        during the churn, against the 15 fps sent (leaving out the seconds in which the
                        server walked its heap for the counts above)
Also: `offers_per_steady` (server offers each steady member answered during the churn),
`newcomer_media_s` (median and worst seconds from a churner starting to join until a steady member
receives its video), log records carrying a traceback in the server (`tracebacks`). The offer rate per
address is raised (every churner comes from 127.0.0.1). Loopback only; figures from a shared machine are
noisy: compare runs taken under the same load (`load_average`; `server_longest_stall_s` and
`server_longest_gc_s` give wall and process-CPU seconds: CPU far below wall means the machine did not run
the server, not that the server was busy; `clients_longest_stall_s` and `clients_longest_gc_s` are the
same for this process, whose stalls delay the steady clients' frames just as the server's do).

Also `server_trims`, `server_longest_trim_s` (how often the server's trimmer ran, and its longest
malloc_trim in wall seconds, in its worker thread) and `server_longest_stall_trimming_s` (the server's
longest loop stall while a trim was under way, wall and CPU seconds).

Environment: CHURN_DEBUG=1 prints per-second frame rates and the kinds of tasks added; CHURN_NO_FREEZE=1
runs the server without freezing its start-up heap (to compare); CHURN_NO_TRIM=1 without its heap
trimmer; CHURN_KEEP_RTP_HISTORY=1 with aiortc's own RTP history (RtpPacket objects, kept on idle slots too);
CHURN_TRACEMALLOC=1 prints on stderr
what the server's heap grew by between cycle 20 and each later count (slow); CHURN_MALLOCSTATS=1 prints
Python's allocator statistics at each count (how much of its arenas is free: fragmentation).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import psutil

from bench.attacks import FrameMeter
from sfu import aiortc_adapter
from sfu.contrib.client import RoomClient, encode_opus_clip, encode_vp8_clip, read_trailer

FPS = 15.0
ROOM = "churn"
CHURNER_NICENESS = 10


def clips() -> tuple[list[bytes], list[bytes]]:
    return encode_vp8_clip(frames=30, width=320, height=240, fps=int(FPS), keyframe_interval=15), \
        encode_opus_clip(seconds=1.0)


async def child(url: str, tag: int, kind: str) -> None:
    """A churner in its own process: it joins, publishes for a second, then leaves cleanly, drops abruptly,
    or waits to be killed. It prints when it started joining (time.monotonic(), shared by processes)."""
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    vp8, opus = clips()
    client = RoomClient(url, ROOM, f"{kind} {tag}", vp8, opus, fps=FPS, tag=tag, keep_frames=False)
    started = time.monotonic()
    await client.join()
    while not client.frame_counts:  # media flows (it receives the steady participants' video)
        await asyncio.sleep(0.05)
    print(f"ready {started!r}", flush=True)
    await asyncio.sleep(1.0)
    if kind == "clean":
        await client.leave()
    elif kind == "abrupt":
        await client.close()  # peer connection and socket closed, no `leave`
    else:
        await asyncio.sleep(3600)


# --- the server process ------------------------------------------------------------------------


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


class StallWatch:
    """The server's own view: its event loop's longest late wake-up and its longest garbage collection,
    outside the moments it walks its heap for the counts, each with the CPU time the process spent
    meanwhile (CPU close to the wall time: the server was busy; far below: the machine did not run it)."""

    def __init__(self, trimming: Callable[[], tuple[bool, int]] = lambda: (False, 0)) -> None:
        self.longest_stall = (0.0, 0.0)  # (wall, process CPU) seconds
        self.longest_gc = (0.0, 0.0)
        self.trimming = trimming  # (the server's heap trimmer is at work in its thread, trims done)
        self.longest_stall_trimming = (0.0, 0.0)  # the loop's longest late wake-up while it was
        self.walking = False
        self._gc_started = (0.0, 0.0)
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = (time.perf_counter(), time.process_time())
        elif not self.walking:
            took = (time.perf_counter() - self._gc_started[0], time.process_time() - self._gc_started[1])
            self.longest_gc = max(self.longest_gc, took)

    async def tick(self) -> None:
        last = (time.perf_counter(), time.process_time())
        while True:
            trimming = self.trimming()
            await asyncio.sleep(0.02)
            now = (time.perf_counter(), time.process_time())
            if not self.walking:
                stall = (now[0] - last[0] - 0.02, now[1] - last[1])
                self.longest_stall = max(self.longest_stall, stall)
                if trimming[0] or self.trimming() != trimming:  # a trim ran during this wait
                    self.longest_stall_trimming = max(self.longest_stall_trimming, stall)
            last = now

    def report(self) -> dict[str, list[float]]:
        return {"longest_stall_s": [round(x, 3) for x in self.longest_stall],
                "longest_gc_s": [round(x, 3) for x in self.longest_gc],
                "longest_stall_trimming_s": [round(x, 3) for x in self.longest_stall_trimming]}


def task_kinds() -> dict[str, int]:
    from collections import Counter

    return dict(Counter(t.get_coro().__qualname__ for t in asyncio.all_tasks()))  # type: ignore[union-attr]


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss / 1e6)


def trimmed_rss_mb() -> float:
    """RSS after glibc's malloc_trim(0) hands every free heap page back: growth in it is not the allocator's."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass
    return rss_mb()


def snapshot(rooms, steady_ids: set[str | None], counter: TracebackCounter) -> dict[str, object]:  # type: ignore[no-untyped-def]
    from aiortc import RTCPeerConnection

    from sfu.media.subscription import Subscription

    gc.collect()
    objects = gc.get_objects()
    held = {id(slot.subscription) for room in rooms.rooms.values() for p in room.participants.values()
            for slot in p.media.slots}
    subscriptions = [o for o in objects if isinstance(o, Subscription)]
    return {
        "tasks": len(asyncio.all_tasks()),
        "task_kinds": task_kinds(),
        "subscriptions": len(subscriptions),
        "orphan_subscriptions": sum(1 for s in subscriptions if id(s) not in held),
        "slots": len(held),
        "steady_slots": sum(len(p.media.slots) for room in rooms.rooms.values() for p in room.participants.values()
                            if p.id in steady_ids),
        "pcs": sum(1 for o in objects if isinstance(o, RTCPeerConnection)),
        "fds": len(os.listdir("/proc/self/fd")),
        "tracked_objects": len(objects),
        "tracebacks": counter.count,
        "traceback_examples": counter.examples,
    }


async def serve(grace: float) -> None:
    """The server alone in this process. Commands on stdin, one JSON answer per line on stdout:
    `snapshot IDS` (counts), `settled IDS` (only those participants left, seats released), `quit`."""
    from aiohttp import web

    from sfu.app import create_app
    from sfu.config import ServerConfig
    from sfu.lifecycle.heap import HeapTrimmer
    from sfu.room.groups import Group, GroupsConfig, ServerSettings
    from sfu.signaling.websocket import ROOMS_KEY

    counter = TracebackCounter()
    logging.getLogger().addHandler(counter)
    group = Group(slug=ROOM, name="Churn", agreement="Benchmark.", max_participants=50, lobby=False,
                  facilitator_secret="churn-benchmark-secret")
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=grace, offers_per_minute=1e6, joins_per_minute=1e6,
                          groups=GroupsConfig(server=ServerSettings(allow_adhoc_rooms=False), groups=(group,)))
    app = create_app(config)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rooms = app[ROOMS_KEY]
    if os.environ.get("CHURN_KEEP_RTP_HISTORY"):  # to compare: aiortc's own RTP history, kept on idle slots
        aiortc_adapter.forget_sent_packets = lambda sender: None
        aiortc_adapter.keep_compact_rtp_history = lambda sender: None
    traces = []  # CHURN_TRACEMALLOC=1: what grew between the second snapshot (cycle 20) and the last, on stderr
    if os.environ.get("CHURN_TRACEMALLOC"):
        import tracemalloc

        tracemalloc.start(8)
    if not os.environ.get("CHURN_NO_FREEZE"):
        from sfu.lifecycle.heap import freeze_startup_heap  # as `peerwell serve` does

        freeze_startup_heap()
    trimmer = HeapTrimmer()
    if not os.environ.get("CHURN_NO_TRIM"):
        trimmer.start()  # as `peerwell serve` does
    watch = StallWatch(lambda: (trimmer.busy, trimmer.trims))
    ticker = asyncio.ensure_future(watch.tick())
    print(json.dumps({"url": f"ws://127.0.0.1:{port}/ws"}), flush=True)
    while True:
        line = (await asyncio.to_thread(sys.stdin.readline)).strip()
        command, _, argument = line.partition(" ")
        ids = set(json.loads(argument)) if argument.startswith("[") else set()
        if command == "snapshot":
            watch.walking = True
            answer: object = {**snapshot(rooms, ids, counter), **watch.report()}
            if os.environ.get("CHURN_MALLOCSTATS"):
                sys._debugmallocstats()  # Python's own allocator: arenas, and the free blocks inside them
            if os.environ.get("CHURN_TRACEMALLOC"):
                traces.append(tracemalloc.take_snapshot())
                if len(traces) > 2:
                    for stat in traces[-1].compare_to(traces[1], "traceback")[:12]:
                        print(stat, *stat.traceback.format()[-6:], sep="\n  ", file=sys.stderr)
            await asyncio.sleep(0)  # the ticker's wake-up after the walk is the walk's, not a stall
            await asyncio.sleep(0.03)
            watch.walking = False
        elif command == "memory":
            # After a snapshot (its full collection). `memory measure`: once the server's trimmer has acted on
            # it, then again after the benchmark's own trim (only at the two points growth is measured
            # between: a trim in between would lower what the server holds later); `memory now`: as it is.
            if argument == "measure":
                await trimmer.idle()
            walked = time.perf_counter()
            watch.walking = True  # the benchmark's own malloc_trim below, not the server's
            answer = {"rss_mb": rss_mb(), "trims": trimmer.trims, "longest_trim_s": round(trimmer.longest_s, 4)}
            answer["rss_trimmed_mb"] = trimmed_rss_mb() if argument == "measure" else float("nan")
            await asyncio.sleep(0)
            await asyncio.sleep(0.03)
            watch.walking = False
            answer["walk_s"] = time.perf_counter() - walked
        elif command == "settled":
            room = rooms.rooms.get(ROOM)
            answer = room is not None and set(room.participants) == ids and len(rooms.seats) == len(ids)
        else:
            break
        print(json.dumps(answer), flush=True)
    ticker.cancel()
    trimmer.stop()
    await runner.cleanup()


class ServerProcess:
    def __init__(self, grace: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.churn", "--serve", "--grace", str(grace)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = ""
        self.children: list[subprocess.Popen[bytes]] = []  # the churners, killed whatever happens

    async def start(self) -> None:
        self.url = (await self._read())["url"]

    async def _read(self):  # type: ignore[no-untyped-def]
        assert self.process.stdout is not None
        line = await asyncio.to_thread(self.process.stdout.readline)
        if not line:
            raise RuntimeError("the churn server process ended")
        return json.loads(line)

    async def ask(self, command: str, ids: set[str | None]):  # type: ignore[no-untyped-def]
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command} {json.dumps(sorted(i for i in ids if i))}\n")
        self.process.stdin.flush()
        return await self._read()

    async def memory(self, measure: bool) -> dict[str, float]:
        assert self.process.stdin is not None
        self.process.stdin.write(f"memory {'measure' if measure else 'now'}\n")
        self.process.stdin.flush()
        return await self._read()  # type: ignore[no-any-return]

    async def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("quit\n")
        self.process.stdin.flush()
        try:
            await asyncio.wait_for(asyncio.to_thread(self.process.wait), 15)
        except TimeoutError:
            self.process.kill()


# --- the measuring process: steady clients and churners ----------------------------------------


async def run(cycles: int, steady_count: int, grace: float, settle: float,
              freeze_heap: bool = False) -> dict[str, object]:
    """`freeze_heap`: freeze this process's heap once the steady clients are in (never in a test process)."""
    server = ServerProcess(grace)
    await server.start()
    try:
        return await measure(server, cycles, steady_count, grace, settle, freeze_heap)
    finally:
        kill_all(server.children)  # also when cancelled mid-cycle: threads waiting on them return
        await server.stop()


CHILD_JOIN_TIMEOUT_S = 60.0


def kill_all(children: list[subprocess.Popen[bytes]]) -> None:
    for process in children:
        if process.poll() is None:
            process.kill()


async def measure(server: ServerProcess, cycles: int, steady_count: int, grace: float,
                  settle: float, freeze_heap: bool) -> dict[str, object]:
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    vp8, opus = clips()
    meters: dict[tuple[int, int], FrameMeter] = {}
    first_seen: dict[tuple[int, int], float] = {}  # (steady viewer, churner tag) -> time.monotonic()

    def viewer(me: int):  # type: ignore[no-untyped-def]
        def on_frame(mid: str, kind: str, data: bytes, at: float) -> None:
            mark = read_trailer(data) if kind == "video" else None
            if mark is None:
                return
            if mark[0] < steady_count:
                meters.setdefault((me, mark[0]), FrameMeter()).frame()
            elif (me, mark[0]) not in first_seen:
                first_seen[(me, mark[0])] = time.monotonic()
        return on_frame

    steady = [RoomClient(server.url, ROOM, f"steady {i}", vp8, opus, fps=FPS, tag=i, keep_frames=False,
                         on_frame=viewer(i)) for i in range(steady_count)]
    for client in steady:
        await client.join()
    await asyncio.sleep(5)
    if freeze_heap:  # this process's own full collections would read as the server's stalls
        from sfu.lifecycle.heap import freeze_startup_heap

        freeze_startup_heap()
    steady_ids = {c.participant_id for c in steady}
    watch = StallWatch()  # this process's own stalls delay frames too: say how long they were
    ticker = asyncio.ensure_future(watch.tick())
    before = await server.ask("snapshot", steady_ids)
    offers = 0

    def count_offers() -> None:
        """Count the steady clients' server offers and drop them (kept, their SDPs would grow this process)."""
        nonlocal offers
        for client in steady:
            offers += sum(1 for s in client.signals if s.get("type") == "offer")
            client.signals.clear()

    count_offers()
    offers = 0
    children = server.children
    join_started: dict[int, float] = {}
    after_20: dict[str, object] = {}
    churn_start = time.perf_counter()
    pauses: list[tuple[float, float]] = []  # the server walking its heap for the counts: not its usual self
    print(f"{'cycle':>5} {'kind':>7} {'tasks':>6} {'subs':>5} {'slots':>5} {'steady slots':>12} {'pcs':>4} {'fds':>4} "
          f"{'rss MB':>7} {'trimmed':>8} {'objects':>8} {'trims':>5}")

    def row(label: str, kind: str, now: dict) -> None:  # type: ignore[type-arg]
        print(f"{label:>5} {kind:>7} {now['tasks']:>6} {now['subscriptions']:>5} {now['slots']:>5} "
              f"{now['steady_slots']:>12} {now['pcs']:>4} {now['fds']:>4} {now['rss_mb']:>7.1f} "
              f"{now['rss_trimmed_mb']:>8.1f} {now['tracked_objects']:>8} {now['trims']:>5}", flush=True)

    for cycle in range(cycles):
        kind = ("clean", "abrupt", "killed")[cycle % 3]
        tag = steady_count + cycle
        process = subprocess.Popen(  # noqa: ASYNC220 - the child is the measured churner
            [sys.executable, "-m", "bench.churn", "--child", server.url, "--tag", str(tag), "--kind", kind],
            stdout=subprocess.PIPE)
        # Below the server and the steady clients: a churner's start (Python, aiortc, encoding its clip)
        # takes a core for a second or so, which on a real server's machine no client would.
        os.setpriority(os.PRIO_PROCESS, process.pid, CHURNER_NICENESS)
        children.append(process)
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), CHILD_JOIN_TIMEOUT_S)
        except TimeoutError:
            line = b""
        if not line.startswith(b"ready"):
            kill_all(children)  # the thread reading its output returns, so the caller's loop can close
            raise RuntimeError("a churn child did not join")
        join_started[tag] = float(line.split()[1])
        if kind == "killed":
            await asyncio.sleep(1.0)
            process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait)
        process.stdout.close()
        count_offers()
        first_mark = min(20, cycles)  # RSS growth is measured from here (after the first 20 cycles)
        if cycle + 1 == first_mark or (cycle + 1) % 20 == 0:
            paused = time.perf_counter()
            now = await server.ask("snapshot", steady_ids)
            pauses.append((paused, time.perf_counter()))
            now.update(await server.memory(measure=cycle + 1 == first_mark))
            pauses.append((time.perf_counter() - now["walk_s"] - 0.05, time.perf_counter()))
            if cycle + 1 == first_mark:
                after_20 = now
            row(str(cycle + 1), kind, now)
    churn_end = time.perf_counter()

    deadline = time.monotonic() + grace + 60
    while not await server.ask("settled", steady_ids) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    await asyncio.sleep(settle)
    end = await server.ask("snapshot", steady_ids)
    end.update(await server.memory(measure=True))
    if os.environ.get("CHURN_DEBUG"):
        added = {k: v - before["task_kinds"].get(k, 0) for k, v in end["task_kinds"].items()}
        print({k: v for k, v in added.items() if v})
        for (me, other), meter in meters.items():
            at, line_ = churn_start, []
            while at < churn_end:
                line_.append(f"{meter.fps_between(at, at + 1):.0f}")
                at += 1
            print(me, other, " ".join(line_))
    row("end", "", end)
    ratios = [meter.min_fps_ratio(churn_start, churn_end, FPS, skip=pauses) for meter in meters.values()]
    print(f"heap walks: {', '.join(f'{b - a:.2f} s' for a, b in pauses)} (windows overlapping them left out)")
    delays = sorted(seen - join_started[tag] for (_, tag), seen in first_seen.items() if tag in join_started)
    expected_pairs = steady_count * (steady_count - 1)
    count_offers()
    ticker.cancel()
    for client in steady:
        await client.leave()
    kill_all(children)
    if end["traceback_examples"]:
        print("tracebacks:", ", ".join(end["traceback_examples"]))
    return {
        "cycles": cycles,
        "leaked_tasks": end["tasks"] - before["tasks"] - 2 * (end["slots"] - before["slots"]),
        "tasks_added": end["tasks"] - before["tasks"],
        "leaked_subscriptions": end["orphan_subscriptions"] - before["orphan_subscriptions"],
        "leaked_pcs": end["pcs"] - before["pcs"],
        "leaked_fds": end["fds"] - before["fds"],
        "rss_growth_pct": round((end["rss_mb"] - after_20["rss_mb"]) / after_20["rss_mb"] * 100, 2),
        "rss_growth_trimmed_pct": round(
            (end["rss_trimmed_mb"] - after_20["rss_trimmed_mb"]) / after_20["rss_trimmed_mb"] * 100, 2),
        "rss_mb": [round(after_20["rss_mb"], 1), round(end["rss_mb"], 1)],
        "steady_min_fps_ratio": round(min(ratios) if len(ratios) == expected_pairs else 0.0, 3),
        "steady_slots_before": before["steady_slots"],
        "steady_slots_after_20": after_20["steady_slots"],
        "steady_slots_end": end["steady_slots"],
        "offers_per_steady": round(offers / steady_count, 1),
        "newcomer_media_s": [round(statistics.median(delays), 2), round(delays[-1], 2)] if delays else None,
        "tracebacks": end["tracebacks"],
        "server_longest_stall_s": end["longest_stall_s"],
        "server_longest_gc_s": end["longest_gc_s"],
        "server_trims": end["trims"],
        "server_longest_trim_s": end["longest_trim_s"],
        "server_longest_stall_trimming_s": end["longest_stall_trimming_s"],
        "clients_longest_stall_s": watch.report()["longest_stall_s"],
        "clients_longest_gc_s": watch.report()["longest_gc_s"],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--steady", type=int, default=3)
    parser.add_argument("--grace", type=float, default=20.0, help="reconnect grace, seconds (server default 20)")
    parser.add_argument("--settle", type=float, default=45.0, help="seconds after the last seat is released")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tag", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="killed", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.child, args.tag, args.kind))
        return
    logging.basicConfig(level=logging.WARNING)
    if args.serve:
        asyncio.run(serve(args.grace))
        return
    result = asyncio.run(run(args.cycles, args.steady, args.grace, args.settle, freeze_heap=True))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
