"""Generated facilitator secrets are kept in the state directory, so links survive restarts, and
`peerwell facilitator-link GROUP` prints a link that the server accepts."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from peerwell.cli import build_parser
from peerwell.facilitator_secrets import FILE_NAME, keep_generated_secrets
from peerwell.server import settings_from_args
from sfu.room.groups import GroupsConfig, load_groups

CONFIG = """
[server]
allow_adhoc_rooms = false

[[group]]
slug = "generated"
name = "Generated"
agreement = "Be kind."

[[group]]
slug = "configured"
name = "Configured"
agreement = "Be kind."
facilitator_secret = "configured-secret-0123456789"
"""


def test_generated_secrets_are_stable_across_loads(tmp_path: Path) -> None:
    config = tmp_path / "groups.toml"
    config.write_text(CONFIG)
    first = keep_generated_secrets(load_groups(config), tmp_path / "state")
    second = keep_generated_secrets(load_groups(config), tmp_path / "state")
    assert first.get("generated").facilitator_secret == second.get("generated").facilitator_secret
    assert second.get("configured").facilitator_secret == "configured-secret-0123456789"
    stored_file = tmp_path / "state" / FILE_NAME
    assert stat.S_IMODE(stored_file.stat().st_mode) == 0o600
    stored = json.loads(stored_file.read_text())
    assert set(stored) == {"generated"}  # configured secrets are never copied to disk


def test_server_start_and_cli_agree_on_the_link(private_state_dir: Path) -> None:
    args = build_parser().parse_args(["serve"])
    secret = settings_from_args(args).server.groups.get("evening-anxiety").facilitator_secret
    again = settings_from_args(args).server.groups.get("evening-anxiety").facilitator_secret
    assert secret == again
    out = subprocess.run([sys.executable, "-m", "peerwell.cli", "facilitator-link", "evening-anxiety",
                          "--url", "https://circle.example"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == f"https://circle.example/#room=evening-anxiety&secret={secret}"
    missing = subprocess.run([sys.executable, "-m", "peerwell.cli", "facilitator-link", "nope"],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no group 'nope'" in missing.stderr and secret not in missing.stderr


def test_unreadable_store_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text("[1, 2]")
    try:
        keep_generated_secrets(GroupsConfig.default(), tmp_path)
    except Exception as exc:
        assert "not a JSON object" in str(exc)
    else:
        raise AssertionError("a malformed store was accepted")
