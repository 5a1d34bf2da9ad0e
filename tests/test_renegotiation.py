"""Churn must not multiply renegotiations: when someone leaves, the others' idle slots wait for the next
offer (or IDLE_SLOT_OFFER_DELAY) instead of costing an offer of their own, and a newcomer's media is not
held back by that. Real aiortc clients and server; bench.churn counts offers over 200 cycles."""

from __future__ import annotations

import asyncio
import time

import pytest

from sfu import aiortc_adapter
from sfu.contrib.client import RoomClient
from sfu.media import peer_session
from tests.conftest import RunningServer, wait_for


def offers(client: RoomClient) -> list[dict]:
    return [m for m in client.signals if m.get("type") == "offer"]


def receiving(listener: RoomClient, publisher: RoomClient, frames: int = 5) -> bool:
    assert publisher.participant_id is not None
    return listener.count_from(publisher.participant_id, "video") >= frames


async def test_leave_then_join_costs_a_steady_member_one_offer(
        server: RunningServer, clips: tuple[list[bytes], list[bytes]]) -> None:
    vp8, opus = clips
    steady = RoomClient(server.ws_url, "turns", "Steady", vp8, opus, tag=1)
    leaver = RoomClient(server.ws_url, "turns", "Leaver", vp8, opus, tag=2)
    newcomer = RoomClient(server.ws_url, "turns", "Newcomer", vp8, opus, tag=3)
    try:
        await steady.join()
        await leaver.join()
        await wait_for(lambda: receiving(steady, leaver))
        seat = server.rooms.rooms["turns"].participants[steady.participant_id]  # type: ignore[index]
        slots = len(seat.media.slots)
        before = len(offers(steady))

        await leaver.leave()
        await wait_for(lambda: all(s.subscription.publication is None for s in seat.media.slots), 5)
        joining = time.monotonic()
        await newcomer.join()
        await wait_for(lambda: receiving(steady, newcomer), 10)
        newcomer_seen = time.monotonic() - joining
        # The newcomer took the leaver's slots, and one offer told the steady member both changes.
        assert len(seat.media.slots) == slots
        assert len(offers(steady)) == before + 1, [o["tracks"] for o in offers(steady)[before:]]
        assert {t["participant_id"] for t in offers(steady)[-1]["tracks"].values()} == {newcomer.participant_id}
        # Nothing left over fires later.
        await asyncio.sleep(peer_session.IDLE_SLOT_OFFER_DELAY + 1.0)
        assert len(offers(steady)) == before + 1
        # The newcomer's media was not held back (a join takes ~1 s here; the delay is 5 s).
        assert newcomer_seen < peer_session.IDLE_SLOT_OFFER_DELAY, newcomer_seen
        assert not steady.errors and not newcomer.errors
    finally:
        for client in (steady, leaver, newcomer):
            await client.leave()


async def test_idle_slots_are_announced_when_nobody_comes(
        server: RunningServer, clips: tuple[list[bytes], list[bytes]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peer_session, "IDLE_SLOT_OFFER_DELAY", 1.5)
    vp8, opus = clips
    steady = RoomClient(server.ws_url, "quiet", "Steady", vp8, opus, tag=1)
    leaver = RoomClient(server.ws_url, "quiet", "Leaver", vp8, opus, tag=2)
    try:
        await steady.join()
        await leaver.join()
        await wait_for(lambda: receiving(steady, leaver))
        await asyncio.sleep(0.5)  # the joins' offers are answered
        before = len(offers(steady))
        mids = {mid for mid, t in steady.tracks.items() if t["participant_id"] == leaver.participant_id}
        senders = [s.transceiver.sender for s in
                   server.rooms.rooms["quiet"].participants[steady.participant_id].media.slots]  # type: ignore[index]
        # Video keeps what NACKs may ask for again; audio keeps nothing (aiortc negotiates no NACK for audio).
        assert sorted((s.kind, aiortc_adapter.sent_packets_kept(s) > 0) for s in senders) == [
            ("audio", False), ("video", True)]
        await leaver.leave()
        left = time.monotonic()
        await wait_for(lambda: len(offers(steady)) > before, 5)
        waited = time.monotonic() - left
        assert waited >= 1.0, (waited, [o["tracks"] for o in offers(steady)])  # deferred, not at once
        assert offers(steady)[-1]["tracks"] == {}, [o["tracks"] for o in offers(steady)]
        assert len(mids) == 2
        assert all(t.currentDirection == "inactive" for t in steady.pc.getTransceivers() if t.mid in mids)
        # An idle slot keeps no RTP history: nobody can ask for a retransmission of what it sent.
        assert [aiortc_adapter.sent_packets_kept(s) for s in senders] == [0, 0]
        await asyncio.sleep(2.0)
        assert len(offers(steady)) == before + 1, [o["tracks"] for o in offers(steady)]
    finally:
        await steady.leave()
        await leaver.leave()
