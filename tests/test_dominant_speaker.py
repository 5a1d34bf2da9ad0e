"""Dominant speaker from RFC 6464 levels: the detector alone, then three real aiortc clients through a room."""

from __future__ import annotations

import asyncio
import time

from sfu.contrib.client import RoomClient, encode_opus_clip, encode_vp8_clip, opus_silence_frame
from sfu.room.dominant_speaker import EVALUATE_EVERY_S, DominantSpeaker
from tests.conftest import RunningServer

LOUD, QUIET = 30, 127


def feed(detector: DominantSpeaker, levels: dict[str, int | None], start: float, seconds: float) -> list[str]:
    """20 ms packets for each participant (None: no packet at all, as with DTX); returns the changes."""
    changes = []
    t = start
    while t < start + seconds:
        for pid, level in levels.items():
            if level is not None:
                detector.heard(pid, level, t)
        if detector.due(t) and (changed := detector.evaluate(t)) is not None:
            changes.append(changed)
        t += 0.02
    return changes


def test_one_speaker_is_found_and_silence_keeps_the_last_one() -> None:
    detector = DominantSpeaker()
    assert feed(detector, {"a": LOUD, "b": QUIET, "c": None}, 0.0, 1.0) == ["a"]
    assert detector.current == "a"
    assert feed(detector, {"a": QUIET, "b": QUIET, "c": None}, 1.0, 2.0) == []  # nobody else spoke
    assert detector.current == "a"


def test_pauses_and_a_cough_do_not_steal_the_floor() -> None:
    detector = DominantSpeaker()
    feed(detector, {"a": LOUD, "b": QUIET}, 0.0, 1.0)
    # a speaks in bursts (pauses between words) while b coughs once (0.1 s).
    t, changes = 1.0, []
    for _ in range(5):
        changes += feed(detector, {"a": LOUD, "b": QUIET}, t, 0.3)
        changes += feed(detector, {"a": QUIET, "b": LOUD if t == 1.0 else QUIET}, t + 0.3, 0.1)
        t += 0.4
    assert changes == [] and detector.current == "a"


def test_the_floor_passes_when_someone_else_talks() -> None:
    detector = DominantSpeaker()
    feed(detector, {"a": LOUD, "b": QUIET}, 0.0, 1.5)
    changes = feed(detector, {"a": QUIET, "b": LOUD}, 1.5, 1.0)
    assert changes == ["b"]
    # Talking over each other: the one already speaking keeps it until clearly outscored.
    assert feed(detector, {"a": LOUD, "b": LOUD}, 2.5, 1.0) == []


def test_forgetting_the_current_speaker_clears_it() -> None:
    detector = DominantSpeaker()
    feed(detector, {"a": LOUD}, 0.0, 1.0)
    detector.forget("a")
    assert detector.current is None
    assert detector.score("a", 1.0) == 0.0


def test_evaluation_is_rate_limited() -> None:
    detector = DominantSpeaker()
    detector.evaluate(10.0)
    assert not detector.due(10.0 + EVALUATE_EVERY_S / 2)
    assert detector.due(10.0 + EVALUATE_EVERY_S * 1.01)



async def test_three_clients_all_learn_the_speaker_within_a_second_and_the_switch(server: RunningServer) -> None:
    vp8 = encode_vp8_clip(frames=30, width=160, height=120, keyframe_interval=15)
    opus = encode_opus_clip(seconds=1.0)
    speaking = {"who": -1}  # nobody yet
    clients = [RoomClient(server.ws_url, "speakers", f"P{i}", vp8, opus, tag=i + 1,
                          talking=lambda i=i: speaking["who"] == i, silence_frame=opus_silence_frame())
               for i in range(3)]

    def announced(client: RoomClient, participant_id: str, since: float) -> float | None:
        return next((at for at, e in arrivals[client.name] if at >= since
                     and e["type"] == "dominant-speaker" and e["participant_id"] == participant_id), None)

    arrivals: dict[str, list[tuple[float, dict]]] = {c.name: [] for c in clients}
    for client in clients:
        client.on_event = lambda e, name=client.name: arrivals[name].append((time.monotonic(), e))
    try:
        for client in clients:
            await client.join()
        await asyncio.sleep(2.0)  # connected, everyone silent (DTX)
        assert not any(e["type"] == "dominant-speaker" for a in arrivals.values() for _, e in a)

        for who in (1, 2):
            speaking["who"] = who
            started = time.monotonic()
            speaker_id = clients[who].participant_id
            assert speaker_id is not None
            deadline = started + 3.0
            while any(announced(c, speaker_id, started) is None for c in clients) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            delays = [(announced(c, speaker_id, started) or float("inf")) - started for c in clients]
            assert max(delays) <= 1.0, f"dominant-speaker {clients[who].name} arrived after {delays}"
            await asyncio.sleep(1.0)
    finally:
        for client in clients:
            await client.leave()
