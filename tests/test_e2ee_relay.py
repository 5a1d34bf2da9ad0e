"""End-to-end encrypted rooms on the server: the group setting, the opaque relay of sealed captions, chat and key
messages (ordering, history, limits, hidden names), no plain chat, and no server transcription or subtitles."""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import AsyncIterator

import pytest

from peerwell.captioning import CaptionsObserver
from sfu.config import ServerConfig
from sfu.contrib.client import RoomClient
from sfu.room.groups import Group, GroupsConfig, GroupsConfigError, ServerSettings, _parse
from tests.conftest import RunningServer, start_server
from tests.test_room_control import channel_open, events, wait_until

SECRET = "facilitator-secret-for-tests"
SEALED_GROUP = "sealed-circle"
PLAIN_GROUP = "plain-circle"


def opaque(size: int = 48) -> str:
    return base64.urlsafe_b64encode(os.urandom(size)).decode().rstrip("=")


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    groups = GroupsConfig(
        server=ServerSettings(allow_adhoc_rooms=True, adhoc_e2ee=False),
        groups=(Group(slug=SEALED_GROUP, name="Sealed", agreement="Be kind.", lobby=False, facilitator_secret=SECRET,
                      e2ee=True),
                Group(slug=PLAIN_GROUP, name="Plain", agreement="Be kind.", lobby=False, facilitator_secret=SECRET)))
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0, groups=groups)
    runner, running = await start_server(config, observers=[CaptionsObserver(None, None)])
    yield running
    await runner.cleanup()


def test_groups_toml_e2ee_keys() -> None:
    config = _parse({"server": {"adhoc_e2ee": True},
                     "group": [{"slug": "a", "name": "A", "agreement": "x", "e2ee": True},
                               {"slug": "b", "name": "B", "agreement": "x"}]}, None)
    assert config.get("a").e2ee and not config.get("b").e2ee  # type: ignore[union-attr]
    assert config.adhoc_group("free-room").e2ee
    assert not GroupsConfig.default().adhoc_group("free-room").e2ee if GroupsConfig.default().server.allow_adhoc_rooms \
        else True
    with pytest.raises(GroupsConfigError, match="e2ee: must be true or false"):
        _parse({"group": [{"slug": "a", "name": "A", "agreement": "x", "e2ee": "yes"}]}, None)


async def test_sealed_relay(server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    facilitator = RoomClient(server.ws_url, SEALED_GROUP, "Fran", secret=SECRET)
    alice = RoomClient(server.ws_url, SEALED_GROUP, "Alice")
    bob = RoomClient(server.ws_url, SEALED_GROUP, "Bob")
    for client in (facilitator, alice, bob):
        await client.join()
        await channel_open(client)
    assert facilitator.joined["group"]["e2ee"] is True  # type: ignore[index]
    room = server.rooms.rooms[SEALED_GROUP]
    try:
        # Plain chat is refused: it would put text on the server of an encrypted room.
        alice.send_channel({"type": "chat", "text": "hello in clear"})
        await wait_until(lambda: any(e["code"] == "e2ee-room" for e in events(alice, "error")))
        assert not room.chat

        partial, final, chat, key = opaque(), opaque(), opaque(), opaque()
        alice.send_channel({"type": "sealed", "kind": "caption", "payload": partial, "final": False})
        alice.send_channel({"type": "sealed", "kind": "caption", "payload": final, "final": True})
        alice.send_channel({"type": "sealed", "kind": "chat", "payload": chat})
        alice.send_channel({"type": "sealed", "kind": "key", "payload": key})
        await wait_until(lambda: len(events(bob, "sealed")) == 4)
        got = events(bob, "sealed")
        assert [(e["kind"], e["payload"], e["final"]) for e in got] == [
            ("caption", partial, False), ("caption", final, True), ("chat", chat, False), ("key", key, False)]
        assert all(e["participant_id"] == alice.participant_id for e in got)
        assert got[2]["message_id"].startswith("m")
        # The speaker gets their own captions and chat back (as plain rooms do), never their own key messages.
        await wait_until(lambda: len(events(alice, "sealed")) == 3)
        assert [e["kind"] for e in events(alice, "sealed")] == ["caption", "caption", "chat"]
        assert [s.payload for s in room.sealed_captions] == [final]

        # Hidden name: others get no speaker id; facilitators keep it (their browser's phrase layer names them).
        alice.send_channel({"type": "set-caption-name-hidden", "hidden": True})
        hidden = opaque()
        alice.send_channel({"type": "sealed", "kind": "caption", "payload": hidden, "final": True})
        await wait_until(lambda: any(e["payload"] == hidden for e in events(bob, "sealed")))
        assert [e["participant_id"] for e in events(bob, "sealed") if e["payload"] == hidden] == [""]
        await wait_until(lambda: any(e["payload"] == hidden for e in events(facilitator, "sealed")))
        assert [e["participant_id"] for e in events(facilitator, "sealed")
                if e["payload"] == hidden] == [alice.participant_id]

        # The chat limit applies to sealed chat; delete-chat works on it.
        for _ in range(8):
            bob.send_channel({"type": "sealed", "kind": "chat", "payload": opaque()})
        await wait_until(lambda: any(e["code"] == "rate-limited" for e in events(bob, "error")))
        facilitator.send_channel({"type": "delete-chat", "message_id": got[2]["message_id"]})
        await wait_until(lambda: [e["message_id"] for e in events(bob, "chat-deleted")] == [got[2]["message_id"]])

        # A late joiner gets the sealed finals and chat history, as with plain captions and chat.
        carol = RoomClient(server.ws_url, SEALED_GROUP, "Carol")
        await carol.join()
        await channel_open(carol)
        await wait_until(lambda: len([e for e in events(carol, "sealed") if e["kind"] == "caption"]) == 2)
        assert [e["participant_id"] for e in events(carol, "sealed") if e["payload"] == hidden] == [""]

        # Subtitles are unavailable and say why; nothing was offered.
        bob.send_channel({"type": "set-subtitle-language", "language": "es"})
        await wait_until(lambda: events(bob, "subtitle-status"))
        status = events(bob, "subtitle-status")[0]
        assert status["available"] is False and "end-to-end encrypted" in status["message"]
        await carol.close()
    finally:
        for client in (facilitator, alice, bob):
            await client.close()
    # Nothing the room holds or logged is anything but the opaque payloads.
    assert "hello in clear" not in caplog.text


async def test_plain_room_refuses_sealed(server: RunningServer) -> None:
    alice = RoomClient(server.ws_url, PLAIN_GROUP, "Alice")
    await alice.join()
    await channel_open(alice)
    try:
        assert alice.joined["group"]["e2ee"] is False  # type: ignore[index]
        alice.send_channel({"type": "sealed", "kind": "chat", "payload": opaque()})
        await wait_until(lambda: any(e["code"] == "not-e2ee" for e in events(alice, "error")))
        alice.send_channel({"type": "chat", "text": "plain rooms are as before"})
        await wait_until(lambda: events(alice, "chat"))
    finally:
        await alice.close()


async def test_sealed_help_goes_to_facilitators_only(server: RunningServer) -> None:
    alice = RoomClient(server.ws_url, SEALED_GROUP, "Alice")
    bob = RoomClient(server.ws_url, SEALED_GROUP, "Bob")
    for client in (alice, bob):
        await client.join()
        await channel_open(client)
    try:
        alice.send_channel({"type": "sealed", "kind": "help", "payload": opaque()})
        await wait_until(lambda: any(e["code"] == "no-facilitator" for e in events(alice, "error")))
        facilitator = RoomClient(server.ws_url, SEALED_GROUP, "Fran", secret=SECRET)
        await facilitator.join()
        await channel_open(facilitator)
        alice.send_channel({"type": "ask-for-help", "text": "words in clear"})
        await wait_until(lambda: any(e["code"] == "e2ee-room" for e in events(alice, "error")))
        help_payload = opaque()
        alice.send_channel({"type": "sealed", "kind": "help", "payload": help_payload})
        await wait_until(lambda: any(e["kind"] == "help" for e in events(facilitator, "sealed")))
        assert [e["payload"] for e in events(facilitator, "sealed") if e["kind"] == "help"] == [help_payload]
        alice.send_channel({"type": "ask-for-help", "text": ""})  # no words: as in any room
        await wait_until(lambda: events(facilitator, "help-requested") or any(
            e["code"] == "rate-limited" for e in events(alice, "error")))
        assert not [e for e in events(bob, "sealed") if e["kind"] == "help"]
        await facilitator.close()
    finally:
        for client in (alice, bob):
            await client.close()
