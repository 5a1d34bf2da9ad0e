"""docs/protocol.md is the truth: every error code the server can send is in it, the room-name rule has one
source, and the HTTP API answers as documented."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from sfu import messages
from sfu.room.groups import SLUG_RE
from tests.conftest import RunningServer

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = (ROOT / "docs" / "protocol.md").read_text()
CODE_PATTERNS = [
    r'self\.error\(\s*"([a-z-]+)"', r'JoinRefused\(\s*"([a-z-]+)"', r'code="([a-z-]+)"',
    r'return "([a-z-]+)", ', r'"error": "([a-z-]+)"', r'\? "([a-z-]+)" :', r'else "([a-z-]+)", ',
]


def server_error_codes() -> set[str]:
    codes: set[str] = set()
    for path in [*(ROOT / "sfu").rglob("*.py"), *(ROOT / "peerwell").rglob("*.py")]:
        text = path.read_text()
        for pattern in CODE_PATTERNS:
            codes.update(re.findall(pattern, text))
    return codes


def test_every_error_code_is_documented() -> None:
    codes = server_error_codes()
    assert {"invalid-message", "negotiation-failed", "secret-locked", "removed", "no-such-room"} <= codes
    missing = sorted(c for c in codes if f"`{c}`" not in PROTOCOL)
    assert not missing, f"error codes the server sends but docs/protocol.md does not list: {missing}"


def test_one_room_name_rule() -> None:
    assert SLUG_RE.pattern == messages.ROOM_NAME_PATTERN
    assert "1-40 characters of lowercase" in messages.ROOM_NAME_RULE
    assert "1-40 chars of `a-z`, `0-9` and `-`, not starting or ending with `-`" in PROTOCOL
    web = (ROOT / "web" / "static" / "app.js").read_text()
    assert "[a-z0-9-]" not in web, "the web client must take the rule from GET /api/groups, not restate it"


async def test_group_endpoints(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.http_url}/api/groups") as response:
            directory = await response.json()
        assert directory["room_name"]["pattern"] == messages.ROOM_NAME_PATTERN
        assert directory["allow_adhoc_rooms"] is True and directory["adhoc"]["lobby"] is False
        assert directory["adhoc"]["max_participants"] == 12
        async with http.get(f"{server.http_url}/api/groups/made-up-room") as response:
            assert response.status == 404 and await response.json() == {"error": "no-such-room"}
        async with http.ws_connect(server.ws_url) as ws:  # someone opens it: now it exists
            await ws.send_json({"type": "join", "room": "made-up-room", "name": "First", "accept_agreement": True})
            assert (await ws.receive_json(timeout=10))["type"] == "joined"
            async with http.get(f"{server.http_url}/api/groups/made-up-room") as response:
                group = await response.json()
            assert response.status == 200 and group["slug"] == "made-up-room" and "facilitator_secret" not in group
        for name in ("Upper", "-dash", "a" * 41):
            async with http.get(f"{server.http_url}/api/groups/{name}") as response:
                assert response.status == 404
