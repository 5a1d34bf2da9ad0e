"""The deployment files agree with the tree and with each other (no container engine here: the image is
never built in tests, so what can be checked statically is checked)."""

from __future__ import annotations

import itertools
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from peerwell.config import load_settings
from peerwell.nodes import port_slice

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"


def makefile_install_steps() -> list[list[str]]:
    """The pip commands of the Makefile's setup recipe, in order, without make variables."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    steps = []
    for line in recipe.splitlines():
        line = line.strip()
        if line.startswith("$(PIP) install"):
            words = [w for w in shlex.split(line.replace("$(PIP)", "pip")) if not w.startswith("$(")]
            steps.append(words)
    return steps


def dockerfile_stages() -> list[str]:
    return re.split(r"^FROM ", (DOCKER / "Dockerfile").read_text(), flags=re.MULTILINE)[1:]


def dockerfile_install_steps() -> list[list[str]]:
    steps = []
    for line in dockerfile_stages()[0].splitlines():
        if line.startswith("RUN pip install"):
            words = shlex.split(line.removeprefix("RUN "))
            if "--index-url" in words:  # the CPU wheel index: what TORCH_PIP_ARGS is for elsewhere
                at = words.index("--index-url")
                del words[at:at + 2]
            steps.append(words)
    return steps


def test_dockerfile_installs_exactly_as_the_makefile_does() -> None:
    make, docker = makefile_install_steps(), dockerfile_install_steps()
    assert len(make) == 3, make
    assert docker == make


def test_image_is_multi_stage_non_root_with_cpu_torch_and_every_package() -> None:
    build, run = dockerfile_stages()[0], dockerfile_stages()[-1]
    assert len(dockerfile_stages()) >= 2
    assert "download.pytorch.org/whl/cpu" in build
    user = re.findall(r"^USER (\S+)", run, flags=re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    assert "pip install" not in run, "the runtime stage installs nothing"
    copied = set(re.findall(r"^COPY (\S+)", build, flags=re.MULTILINE))
    for source in copied:
        assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for package in [p.rstrip("*") for p in packages["include"]] + ["web"]:
        assert package in copied, f"{package}/ is not in the image"
    assert "requirements.lock" in copied


def compose_config(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    files = [arg for name in ("compose.yaml", *extra) for arg in ("-f", name)]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        command = ["docker", "compose", *files, "config"]
    elif shutil.which("docker-compose"):
        command = ["docker-compose", *files, "config"]
    else:
        pytest.fail("needs `docker compose` or docker-compose (Debian package docker-compose; .ci/run installs it)")
    return subprocess.run(command, cwd=DOCKER, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/local/bin:/usr/bin:/bin", **env})


def example_env() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (DOCKER / "example.env").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return {k: v for k, v in pairs}


def test_compose_file_is_valid_and_refuses_to_start_unconfigured() -> None:
    refused = compose_config({})
    assert refused.returncode != 0 and "PUBLIC_IP" in refused.stderr
    ran = compose_config(example_env())
    assert ran.returncode == 0, ran.stderr
    compose = yaml.safe_load(ran.stdout)
    assert set(compose["services"]) == {"peerwell", "coturn", "caddy"}


def test_compose_pieces_agree_with_each_other_and_the_settings() -> None:
    env = example_env()
    compose = yaml.safe_load(compose_config(env).stdout)["services"]
    peerwell = compose["peerwell"]
    environment = {k: str(v) for k, v in peerwell["environment"].items()}
    # The container's settings load from its file plus the compose environment, as `peerwell serve` would.
    settings = load_settings(DOCKER / "peerwell.toml", environ=environment)
    server = settings.server
    assert server.announced_address == env["PUBLIC_IP"] and server.host == "0.0.0.0"
    assert settings.public_url == f"https://{env['DOMAIN']}"
    assert server.turn is not None and server.turn.secret == env["TURN_SECRET"]
    assert server.restart_key == env["RESTART_KEY"]
    assert all(url.startswith(f"turn:{env['DOMAIN']}:3478") for url in server.turn.urls)
    # The published UDP range is the range host candidates bind.
    first, last = server.ice_port_range  # type: ignore[misc]
    published: set[tuple[int, int]] = set()
    for port in (p for p in peerwell["ports"] if p.get("protocol") == "udp"):
        outside, inside = (str(port[k]).split("-") for k in ("published", "target"))
        outside_ports = range(int(outside[0]), int(outside[-1]) + 1)
        inside_ports = range(int(inside[0]), int(inside[-1]) + 1)
        published |= set(zip(outside_ports, inside_ports, strict=True))
    assert published == {(p, p) for p in range(first, last + 1)}
    # coturn checks credentials with the same secret peerwell signs them with, on the port peerwell hands out.
    coturn = " ".join(compose["coturn"]["command"])
    assert f"--static-auth-secret={env['TURN_SECRET']}" in coturn and "--use-auth-secret" in coturn
    assert "--listening-port=3478" in coturn and f"--external-ip={env['PUBLIC_IP']}" in coturn
    # Caddy forwards to the port peerwell listens on; the image's health check asks that port too.
    caddyfile = (DOCKER / "Caddyfile").read_text()
    assert f"reverse_proxy peerwell:{server.port}" in caddyfile
    assert re.search(r"@internal path /metrics\s+respond @internal 404", caddyfile), "metrics must stay internal"
    assert f"127.0.0.1:{server.port}/healthz" in (DOCKER / "Dockerfile").read_text()
    assert int(str(peerwell["stop_grace_period"]).rstrip("s")) > 10


def test_compose_nodes_adds_redis_and_the_workers_share_the_ice_range() -> None:
    ran = compose_config(example_env(), "compose.nodes.yaml")
    assert ran.returncode == 0, ran.stderr
    compose = yaml.safe_load(ran.stdout)["services"]
    assert set(compose) == {"peerwell", "coturn", "caddy", "redis"}
    assert "--save" in compose["redis"]["command"] and "no" in compose["redis"]["command"], "Redis keeps no files"
    assert not compose["redis"].get("ports"), "Redis is not published"
    environment = {k: str(v) for k, v in compose["peerwell"]["environment"].items()}
    settings = load_settings(DOCKER / "peerwell.toml", environ={**environment, "PEERWELL_SERVER_WORKERS": "4"})
    assert settings.redis == "redis://redis:6379/0" and settings.workers == 4
    assert settings.node_address == "127.0.0.1"  # host 0.0.0.0: the workers reach each other in the container
    slices = [port_slice(settings.server.ice_port_range, i, 4) for i in range(4)]
    assert slices[0][0] == 40000 and slices[-1][1] == 40099  # type: ignore[index]
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(slices))  # type: ignore[index]


def test_compose_caddyfile_is_valid_caddy_configuration() -> None:
    assert shutil.which("caddy"), "Caddy is not installed (Debian package caddy; .ci/run installs it)"
    ran = subprocess.run(["caddy", "adapt", "--config", str(DOCKER / "Caddyfile"), "--adapter", "caddyfile"],
                         capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "DOMAIN": "peerwell.example.org", "ACME_EMAIL": "a@example.org",
                              "HOME": "/nonexistent"})
    assert ran.returncode == 0, ran.stderr
    assert '"dial":"peerwell:8080"' in ran.stdout and '"host":["peerwell.example.org"]' in ran.stdout
