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
RESTART_DELAY = 1.0  # seconds before a node that died is started again


def this_node() -> tuple[int, int] | None:
    """(index, count) when this process is one of several nodes its parent started, else None."""
    value = os.environ.get(NODE_ENV)
    if not value:
        return None
    index, _, count = value.partition("/")
    return int(index), int(count)


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
    """Run `count` nodes until SIGTERM/SIGINT, which each node gets to shut down gracefully. 2 if a node could
    not start at all (bad settings, a port taken): then the others are stopped too."""
    stopping = False
    result = 0
    children: dict[int, subprocess.Popen[bytes]] = {}

    def start(index: int) -> None:
        children[index] = subprocess.Popen([sys.executable, "-m", "peerwell.cli", *argv],
                                           env={**os.environ, NODE_ENV: f"{index}/{count}"})

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(count):
        start(index)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index = next((i for i, c in children.items() if c.pid == pid), None)
        if index is None:
            continue
        del children[index]
        code = os.waitstatus_to_exitcode(status)
        if code == 2 and not stopping:  # it said why on stderr; restarting would only say it again
            result = 2
            stop(signal.SIGTERM, None)
        if not stopping:
            logger.error("node %d of %d exited (%d); starting it again", index + 1, count, code)
            time.sleep(RESTART_DELAY)
            if not stopping:
                start(index)
    return result
