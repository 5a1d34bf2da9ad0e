"""A removal sticks without the client's cooperation: the removed browser's key, any key issued at that
address after the removal, and no key at all from that address are refused for the rest of the session;
people at the same address who opened the page before the removal, and facilitators, still get in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sfu.config import ServerConfig
from sfu.contrib.client import JoinError, RoomClient, fetch_browser_key
from sfu.limits.browser_key import BrowserKeys
from sfu.room.groups import Group, GroupsConfig, ServerSettings
from tests.conftest import RunningServer, start_server, wait_for

SECRET = "facilitator-secret-for-the-circle"


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    group = Group(slug="circle", name="Circle", agreement="Be kind.", lobby=False, facilitator_secret=SECRET)
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0,
                          groups=GroupsConfig(server=ServerSettings(allow_adhoc_rooms=False), groups=(group,)))
    runner, running = await start_server(config)
    yield running
    await runner.cleanup()


def test_keys_are_signed_with_their_issue_time() -> None:
    now = [1_000_000.0]
    keys = BrowserKeys(clock=lambda: now[0])
    key = keys.issue()
    assert keys.issued_at(key) == 1_000_000.0
    body, mac = key.rsplit(".", 1)
    random_part, issued = body.split(".")
    assert keys.issued_at(f"{random_part}.{int(issued) - 3600}.{mac}") is None  # backdated: signature breaks
    assert keys.issued_at(key[:-1] + ("0" if key[-1] != "0" else "1")) is None
    assert BrowserKeys().issued_at(key) is None  # another server's (or an earlier process's) key
    # Non-ASCII (a cookie is any text a client sends) is refused, not a TypeError from compare_digest.
    for junk in (None, "", "a.b", "a.b.c.d", "x" * 200, f"{body}.{mac[:-1]}²", "é.1.é", "a.1.\udfff"):
        assert keys.issued_at(junk) is None


async def join_code(server: RunningServer, name: str, **kwargs: object) -> str:
    client = RoomClient(server.ws_url, "circle", name, **kwargs)  # type: ignore[arg-type]
    try:
        await client.join()
        return "joined"
    except JoinError as refused:
        return refused.code
    finally:
        await client.close()


async def test_removal_holds_against_new_keys_and_no_key(server: RunningServer) -> None:
    housemate_key = await fetch_browser_key(server.http_url)
    sam_key = await fetch_browser_key(server.http_url)
    await asyncio.sleep(1.1)  # issue times have one-second resolution
    secret = SECRET
    facilitator = RoomClient(server.ws_url, "circle", "Fran", secret=secret)
    sam = RoomClient(server.ws_url, "circle", "Sam", browser_key=sam_key)
    await facilitator.join()
    await sam.join()
    await wait_for(lambda: facilitator.channel is not None and facilitator.channel.readyState == "open")
    facilitator.send_channel({"type": "remove", "participant_id": sam.participant_id})
    await wait_for(lambda: any(s.get("type") == "bye" for s in sam.signals))
    await sam.close()

    assert await join_code(server, "Sam", browser_key=sam_key) == "removed"
    assert await join_code(server, "Sam") == "removed"  # no cookie, as a client written from the document
    assert await join_code(server, "Sam", browser_key=await fetch_browser_key(server.http_url)) == "removed"
    assert await join_code(server, "Sam", browser_key="made-up.1.0000") == "removed"
    assert await join_code(server, "Housemate", browser_key=housemate_key) == "joined"
    assert await join_code(server, "Co-facilitator", secret=secret) == "joined"
    await facilitator.leave()
    await wait_for(lambda: "circle" not in server.rooms.rooms)
    # The next session starts with no bans.
    assert await join_code(server, "Sam", browser_key=sam_key) == "joined"


@pytest.mark.parametrize("cookie", [None, "forged.1.0"])
async def test_no_ban_without_a_removal(server: RunningServer, cookie: str | None) -> None:
    assert await join_code(server, "Anyone", browser_key=cookie) == "joined"
