"""The deployment files stay consistent with the tree (no Docker engine here to build the image)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from peerwell.cli import build_parser
from peerwell.groups import load_groups

ROOT = Path(__file__).resolve().parent.parent


def test_dockerfile_copies_every_package_and_the_lock_file() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+)", dockerfile, flags=re.MULTILINE))
    for source in copied:
        assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    for package in ("peerwell", "sfu", "transcribe", "translate", "models", "safety", "web"):
        assert package in copied, f"{package}/ is not in the image"
    assert "requirements.lock" in copied


def test_compose_command_is_a_valid_serve_invocation() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    service = compose["services"]["peerwell"]
    command = [part.replace("${PUBLIC_IP:?set PUBLIC_IP to the server's public address}", "203.0.113.5")
               for part in service["command"]]
    args = build_parser().parse_args(command)
    assert args.command == "serve" and args.ice_hosts == ["203.0.113.5"]
    mounted = {volume.split(":")[0] for volume in service["volumes"]}
    assert "./groups.toml" in mounted and (ROOT / "docker" / "groups.toml").exists()
    assert load_groups(ROOT / "docker" / "groups.toml").groups
