"""A participant whose connection closes keeps only a resumable seat; nobody else's joins or media depend
on it. Listen-only, audio-only and text-only members get everyone's media. Real aiortc clients, real server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from sfu.config import ServerConfig
from sfu.contrib.client import RoomClient
from tests.conftest import RunningServer, start_server, wait_for

GRACE = 4.0


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    runner, running = await start_server(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=GRACE))
    yield running
    await runner.cleanup()


def receives(listener: RoomClient, publisher: RoomClient, kind: str, at_least: int) -> bool:
    assert publisher.participant_id is not None
    return listener.count_from(publisher.participant_id, kind) >= at_least


async def flowing(listener: RoomClient, publisher: RoomClient, kinds: tuple[str, ...] = ("video", "audio"),
                  within: float = 15.0) -> None:
    """New frames of each kind from `publisher` keep arriving at `listener`."""
    assert publisher.participant_id is not None
    before = {k: listener.count_from(publisher.participant_id, k) for k in kinds}
    await wait_for(lambda: all(listener.count_from(publisher.participant_id, k) >= before[k] + 5 for k in kinds),
                   within)


def offers(client: RoomClient) -> int:
    return sum(1 for m in client.signals if m.get("type") == "offer")


async def vanish(client: RoomClient) -> None:
    """A tab closed without a word: the connection closes, no `leave` is sent."""
    if client._reader is not None:
        client._reader.cancel()
    await client.pc.close()
    if client._ws is not None:
        await client._ws.close()
    if client._session is not None:
        await client._session.close()


async def test_closed_connection_keeps_only_its_seat_and_newcomers_get_media(
        server: RunningServer, clips: tuple[list[bytes], list[bytes]], caplog: pytest.LogCaptureFixture) -> None:
    vp8, opus = clips
    caplog.set_level(logging.INFO)
    gone = RoomClient(server.ws_url, "circle", "Gone", vp8, opus, tag=1)
    stays = RoomClient(server.ws_url, "circle", "Stays", vp8, opus, tag=2)
    newcomers = [RoomClient(server.ws_url, "circle", f"New{i}", vp8, opus, tag=10 + i) for i in range(3)]
    try:
        await gone.join()
        await stays.join()
        await wait_for(lambda: receives(stays, gone, "video", 10) and receives(gone, stays, "video", 10))
        room = server.rooms.rooms["circle"]
        seat = room.participants[gone.participant_id]  # type: ignore[index]
        slots_before = len(seat.media.slots)

        await vanish(gone)
        await wait_for(lambda: seat.media.media_ended, 5)
        # At once: the seat stays (for resume) but stops being a forwarding target or source.
        assert gone.participant_id in room.participants
        assert not seat.media.publications
        stays_seat = room.participants[stays.participant_id]  # type: ignore[index]
        assert all(slot.subscription.publication is None
                   for slot in stays_seat.media.slots if slot.transceiver.direction == "inactive")
        assert sum(1 for slot in stays_seat.media.slots if slot.subscription.publication is not None) == 0

        for newcomer in newcomers:  # every one of them publishes while the dead seat is held
            await newcomer.join(timeout=10)
        for newcomer in newcomers:
            await flowing(stays, newcomer)
            await flowing(newcomer, stays)
        assert len(seat.media.slots) == slots_before, "nothing may be added to a closed connection"
        assert not any(c.errors for c in (stays, *newcomers)), [c.errors for c in (stays, *newcomers)]

        # The grace runs out: the seat goes, and nobody's media or negotiation notices.
        offers_before = [offers(c) for c in (stays, *newcomers)]
        await wait_for(lambda: gone.participant_id not in room.participants, GRACE + 5)
        await asyncio.sleep(0.5)
        for newcomer in newcomers:
            await flowing(stays, newcomer, within=5)
        assert [offers(c) for c in (stays, *newcomers)] == offers_before
        assert all(any(m.get("type") == "participant-left" and m["participant_id"] == gone.participant_id
                       for m in c.signals) for c in (stays, *newcomers))
    finally:
        for client in (stays, *newcomers):
            await client.leave()
    text = caplog.text
    assert "InvalidStateError" not in text and "Traceback" not in text and "failed" not in text.lower().replace(
        "connection failed", ""), text[-2000:]


async def test_resume_after_connection_loss_brings_media_back(
        server: RunningServer, clips: tuple[list[bytes], list[bytes]]) -> None:
    vp8, opus = clips
    first = RoomClient(server.ws_url, "circle", "Phone", vp8, opus, tag=1)
    other = RoomClient(server.ws_url, "circle", "Other", vp8, opus, tag=2)
    await first.join()
    await other.join()
    await wait_for(lambda: receives(other, first, "video", 5))
    token = first.joined["resume"]
    await vanish(first)
    room = server.rooms.rooms["circle"]
    await wait_for(lambda: room.participants[first.participant_id].media.media_ended, 5)  # type: ignore[index]

    again = RoomClient(server.ws_url, "circle", "Phone", vp8, opus, tag=3, resume=token)
    try:
        await again.join()
        assert again.participant_id == first.participant_id
        await flowing(other, again)
        await flowing(again, other)
    finally:
        await again.leave()
        await other.leave()


@pytest.mark.parametrize("what", ["text-only", "audio-only"])
async def test_members_who_do_not_publish_everything_receive_every_publisher(
        server: RunningServer, clips: tuple[list[bytes], list[bytes]], what: str) -> None:
    vp8, opus = clips
    publishers = [RoomClient(server.ws_url, "circle", f"Pub{i}", vp8, opus, tag=i + 1) for i in range(3)]
    listener = RoomClient(server.ws_url, "circle", "Listener", None, opus if what == "audio-only" else None, tag=9)
    try:
        for publisher in publishers:
            await publisher.join()
        await listener.join()
        for publisher in publishers:
            await flowing(listener, publisher)
        seat = server.rooms.rooms["circle"].participants[listener.participant_id]  # type: ignore[index]
        assert len(seat.media.slots) == 6
        assert all(slot.subscription.frames_forwarded > 0 for slot in seat.media.slots)
        if what == "audio-only":
            for publisher in publishers:
                await flowing(publisher, listener, ("audio",))
    finally:
        for client in (*publishers, listener):
            await client.leave()
