"""Worker processes on one machine (`peerwell serve --workers N`): each is a node of the deployment.

The parent only starts N copies of the same command, each told its place by ``PEERWELL_NODE=i/N`` (internal),
passes SIGTERM/SIGINT on, and starts a node again if one dies (its rooms are placed again meanwhile). Every
node listens on the public port with SO_REUSEPORT (the kernel spreads new connections over them) and on its
own node port, public port + 1 + i, where other nodes forward the joins for its rooms; each takes its own
slice of the ICE port range, so media goes straight to the node that holds the room.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time

logger = logging.getLogger("peerwell")
NODE_ENV = "PEERWELL_NODE"
PARENT_ENV = "PEERWELL_NODE_PARENT"  # internal: the parent's pid, to notice it died before prctl
RESTART_DELAY = 1.0  # seconds before a node that died is started again
MAX_RESTART_DELAY = 30.0  # the delay doubles while a node keeps dying within STABLE_AFTER s of its start
STABLE_AFTER = 60.0
STOP_DEADLINE = 10.0  # seconds nodes get to stop after SIGTERM before they are killed


def this_node() -> tuple[int, int] | None:
    """(index, count) when this process is one of several nodes its parent started, else None."""
    value = os.environ.get(NODE_ENV)
    if not value:
        return None
    index, _, count = value.partition("/")
    return int(index), int(count)


def stop_with_parent() -> None:
    """A node gets SIGTERM (a graceful stop) when its parent dies, also by SIGKILL: else it would go on
    serving the shared port beside the nodes a restarted parent starts. Linux only (prctl); elsewhere the
    node outlives a killed parent."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.environ.get(PARENT_ENV) not in (None, str(os.getppid())):  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def port_slice(port_range: tuple[int, int] | None, index: int, count: int) -> tuple[int, int] | None:
    """Node `index`'s share of the ICE port range (equal slices; the last takes the remainder)."""
    if port_range is None or count == 1:
        return port_range
    first, last = port_range
    size = (last - first + 1) // count
    if size < 1:
        raise ValueError(f"ice.port_range {first}-{last} has fewer ports than the {count} workers")
    start = first + index * size
    return start, (last if index == count - 1 else start + size - 1)


def _bound(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def listen(host: str, port: int, index: int, count: int) -> tuple[list[socket.socket], int]:
    """The sockets node `index` of `count` serves, and the port other nodes forward joins to."""
    if count == 1:
        return [_bound(host, port, reuse_port=False)], port
    return [_bound(host, port, reuse_port=True), _bound(host, port + 1 + index, reuse_port=False)], port + 1 + index


def supervise(count: int, argv: list[str]) -> int:
    """Run `count` nodes until SIGTERM/SIGINT, which each node gets to shut down gracefully (one still running
    `STOP_DEADLINE` s later is killed). 2 if a node could not start at all (bad settings, a port taken): then
    the others are stopped too. A node that dies later is started again, also if it cannot start yet (Redis
    down): the others and their rooms go on, and the delay grows while it keeps failing."""
    stopping: float | None = None  # when SIGTERM/SIGINT came
    result = 0
    children: dict[int, subprocess.Popen[bytes]] = {}
    started: dict[int, float] = {}  # index -> when its current process started
    restart_at: dict[int, float] = {}  # index -> when to start it again
    failures = dict.fromkeys(range(count), 0)  # quick deaths in a row (crash loop backoff)

    def start(index: int) -> None:
        env = {**os.environ, NODE_ENV: f"{index}/{count}", PARENT_ENV: str(os.getpid())}
        children[index] = subprocess.Popen([sys.executable, "-m", "peerwell.cli", *argv], env=env)
        started[index] = time.monotonic()
        if stopping is not None:  # the signal came while it was being started
            children[index].send_signal(signal.SIGTERM)

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        if stopping is None:
            stopping = time.monotonic()
        for child in list(children.values()):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(count):
        start(index)
    first_start = set(range(count))  # a node that never ran: exit 2 means the settings are wrong for all
    killed = False
    while children or (restart_at and stopping is None):
        # Popen reaps a child itself when it polls (send_signal does): such a child has its returncode set.
        exited = [(i, c.returncode) for i, c in children.items() if c.returncode is not None]
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid = status = 0
        index = next((i for i, c in children.items() if c.pid == pid), None) if pid else None
        if index is not None:
            exited.append((index, os.waitstatus_to_exitcode(status)))
        if not exited:
            now = time.monotonic()
            if stopping is not None and now - stopping > STOP_DEADLINE and not killed:
                killed = True
                for i, child in children.items():
                    logger.error("node %d of %d did not stop within %.0f s; killing it", i + 1, count, STOP_DEADLINE)
                    child.kill()
            for i, when in list(restart_at.items()):
                if stopping is None and now >= when:
                    del restart_at[i]
                    start(i)
            time.sleep(0.1)
            continue
        for index, code in exited:
            children.pop(index).returncode = code
            if stopping is not None:
                continue
            if code == 2 and index in first_start:  # it said why on stderr; restarting would only say it again
                result = 2
                stop(signal.SIGTERM, None)
                continue
            first_start.discard(index)
            lived = time.monotonic() - started[index]
            failures[index] = failures[index] + 1 if lived < STABLE_AFTER else 0
            delay = min(RESTART_DELAY * 2 ** max(failures[index] - 1, 0), MAX_RESTART_DELAY)
            logger.error("node %d of %d exited (%d); starting it again in %.0f s", index + 1, count, code, delay)
            restart_at[index] = time.monotonic() + delay
    return result
