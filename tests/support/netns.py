"""Network namespaces a test builds for itself: veth pairs, addresses from 198.18.0.0/15, nothing else.

Each extra namespace is held open by a `sleep` started with `unshare -n`; commands run inside it through
`nsenter`. The test process's own namespace (private: the suite runs under `unshare -n`) is one end of
the topology. Stopping the holders removes the namespaces and their veths.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def require_private_namespace() -> None:
    """Veths must never be created in the machine's real namespace."""
    names = {name for _, name in socket.if_nameindex()}
    if names - {"lo"}:
        pytest.fail(f"run this test inside a private network namespace (unshare -n), found interfaces {names}")


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return result.stdout


class Namespace:
    def __init__(self, name: str) -> None:
        self.name = name
        self._holder = subprocess.Popen(["unshare", "-n", "sleep", "infinity"])
        self.pid = self._holder.pid
        self.processes: list[subprocess.Popen[bytes]] = []
        for _ in range(250):  # `unshare` execs `sleep` once the namespace exists
            if Path(f"/proc/{self.pid}/comm").read_text().strip() == "sleep":
                break
            time.sleep(0.02)
        assert os.readlink(f"/proc/{self.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        self.run("ip", "link", "set", "lo", "up")

    def command(self, *command: str) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-n", *command]

    def run(self, *command: str) -> str:
        return run(*self.command(*command))

    def spawn(self, command: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        out = log.open("wb")
        process = subprocess.Popen(self.command(*command), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                   env={**os.environ, **(env or {})})
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(5)
            if process.poll() is None:
                process.kill()
                process.wait()
        self._holder.terminate()
        self._holder.wait()


def link(a: Namespace | None, a_address: str, b: Namespace, b_address: str, name: str) -> None:
    """A veth pair between `a` (None: this process's namespace) and `b`, with /24 addresses."""
    a_end, b_end = f"{name}a", f"{name}b"
    if a is None:
        run("ip", "link", "add", a_end, "type", "veth", "peer", "name", b_end, "netns", str(b.pid))
        run("ip", "addr", "add", f"{a_address}/24", "dev", a_end)
        run("ip", "link", "set", a_end, "up")
    else:
        a.run("ip", "link", "add", a_end, "type", "veth", "peer", "name", b_end, "netns", str(b.pid))
        a.run("ip", "addr", "add", f"{a_address}/24", "dev", a_end)
        a.run("ip", "link", "set", a_end, "up")
    b.run("ip", "addr", "add", f"{b_address}/24", "dev", b_end)
    b.run("ip", "link", "set", b_end, "up")


def unlink(name: str) -> None:
    """Delete our end of a veth pair now (the kernel removes it with its peer namespace, but later)."""
    subprocess.run(["ip", "link", "del", f"{name}a"], capture_output=True, timeout=20)


# A plain TCP forwarder: the edge host's reverse proxy for signaling (media never goes through it).
FORWARDER = """
import asyncio, sys
listen_host, listen_port, target_host, target_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
async def handle(reader, writer):
    try:
        up_reader, up_writer = await asyncio.open_connection(target_host, target_port)
    except OSError:
        writer.close()
        return
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)
async def main():
    server = await asyncio.start_server(handle, listen_host, listen_port)
    print("forwarding", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def start_forwarder(namespace: Namespace, listen: tuple[str, int], target: tuple[str, int], log: Path
                    ) -> subprocess.Popen[bytes]:
    return namespace.spawn([sys.executable, "-c", FORWARDER, listen[0], str(listen[1]), target[0], str(target[1])],
                           log)


def udp_ports_bound(namespace: Namespace) -> set[int]:
    """Every UDP port bound in the namespace (IPv4 and IPv6), from the kernel's socket tables."""
    ports: set[int] = set()
    for table in ("udp", "udp6"):
        path = Path(f"/proc/{namespace.pid}/net/{table}")
        for line in path.read_text().splitlines()[1:]:
            local = line.split()[1]
            ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports
