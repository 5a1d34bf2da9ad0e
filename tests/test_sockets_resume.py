"""A member whose socket drops keeps their place in the hand queue: within the reconnect grace nobody gets a
`hands` queue without them, and the entry burst of their resumed connection lists them where they were."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sfu.config import ServerConfig
from sfu.contrib.client import RoomClient
from tests.conftest import RunningServer, start_server, wait_for


@pytest.fixture
async def graceful() -> AsyncIterator[RunningServer]:
    runner, running = await start_server(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=20))
    yield running
    await runner.cleanup()


def queues(client: RoomClient) -> list[list[str]]:
    return [[h["participant_id"] for h in e["queue"]] for e in client.events if e.get("type") == "hands"]


async def test_a_resumed_member_keeps_their_place_in_the_hand_queue(graceful: RunningServer) -> None:
    url = graceful.ws_url
    watcher, first, second = (RoomClient(url, "hands", name) for name in ("Watcher", "First", "Second"))
    again = None
    try:
        for client in (watcher, first, second):
            await client.join()
        await wait_for(lambda: all(c.channel is not None and c.channel.readyState == "open"
                                   for c in (watcher, first, second)))
        first.send_channel({"type": "raise-hand"})
        await wait_for(lambda: queues(watcher)[-1:] == [[first.participant_id]])
        second.send_channel({"type": "raise-hand"})
        expected = [first.participant_id, second.participant_id]
        await wait_for(lambda: queues(watcher)[-1:] == [expected])
        seen = len(queues(watcher))

        token = first.joined["resume"]
        await first.close()  # the connection drops (no `leave`): the place is held
        again = RoomClient(url, "hands", "First", resume=token)
        await again.join()
        assert again.participant_id == first.participant_id
        await wait_for(lambda: bool(queues(again)))
        assert queues(again)[0] == expected, "the entry burst lists them in their place"
        second.send_channel({"type": "lower-hand"})  # a later change still has them first
        await wait_for(lambda: queues(watcher)[-1:] == [[first.participant_id]])
        assert all(first.participant_id in queue for queue in queues(watcher)[seen:-1]), queues(watcher)
        assert graceful.rooms.rooms["hands"].hands == [first.participant_id]
    finally:
        for client in (watcher, second, again):
            if client is not None:
                await client.leave()
