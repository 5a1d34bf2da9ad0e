"""Server-driven video quality: the ladder alone (pure), then real aiortc clients in a room receiving `video-cap`."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest

from sfu import messages
from sfu.config import ServerConfig
from sfu.contrib.client import (
    RoomClient,
    VideoVariant,
    encode_opus_clip,
    encode_vp8_clip,
    encode_vp8_variants,
    opus_silence_frame,
    pick_variant,
)
from sfu.room.video_quality import (
    LADDER,
    MAX_BITRATE_BPS,
    MAX_FRAMERATE,
    MAX_HEIGHT,
    MIN_BITRATE_BPS,
    MIN_FRAMERATE,
    MIN_HEIGHT,
    SHRINK_SETTLE_S,
    SPEAKER_HOLD_S,
    VideoCap,
    VideoQuality,
    rung_index,
)
from tests.conftest import RunningServer, start_server

GALLERY_12, SPEAKER_12 = LADDER[rung_index(12)].gallery, LADDER[rung_index(12)].speaker


def members(n: int) -> list[str]:
    return [f"m{i}" for i in range(n)]


def test_every_cap_on_the_ladder_is_within_the_documented_limits_and_gets_smaller_with_the_room() -> None:
    for rung in LADDER:
        for cap in (rung.gallery, rung.speaker):
            assert MIN_BITRATE_BPS <= cap.max_bitrate_bps <= MAX_BITRATE_BPS
            assert MIN_FRAMERATE <= cap.max_framerate <= MAX_FRAMERATE
            assert MIN_HEIGHT <= cap.max_height <= MAX_HEIGHT
        assert rung.speaker.max_bitrate_bps >= rung.gallery.max_bitrate_bps
    for smaller, larger in itertools.pairwise(LADDER):
        assert larger.gallery.max_bitrate_bps < smaller.gallery.max_bitrate_bps
        assert larger.up_to > smaller.up_to
    # What one listener in a full group receives stays within a thin link (see docs/architecture.md).
    for room in (12, 16):
        rung = LADDER[rung_index(room)]
        assert (room - 2) * rung.gallery.max_bitrate_bps + rung.speaker.max_bitrate_bps <= 2_200_000


def test_everyone_gets_a_cap_on_joining_and_again_only_when_it_changes() -> None:
    quality = VideoQuality()
    assert quality.update(members(2), None, 0.0) == {m: LADDER[0].gallery for m in members(2)}
    assert quality.update(members(2), None, 0.5) == {}  # nothing changed: nothing sent
    changed = quality.update(members(3), None, 1.0)  # a third person: everyone steps down at once
    assert changed == {m: LADDER[1].gallery for m in members(3)}
    assert quality.update(members(4), None, 1.5) == {"m3": LADDER[1].gallery}  # same rung: only the newcomer
    assert quality.update(members(12), None, 2.0) == {m: GALLERY_12 for m in members(12)}


def test_a_smaller_room_gets_better_video_only_once_it_has_lasted() -> None:
    quality = VideoQuality()
    quality.update(members(9), None, 0.0)
    assert quality.rung == rung_index(9)
    # A reconnect: the seat goes and comes back at once. Only the new connection is told its cap.
    assert quality.update(members(8), None, 1.0) == {}
    assert quality.update(members(9), None, 1.0) == {"m8": LADDER[rung_index(9)].gallery}
    # Someone really left: after the settle time everyone steps up, once.
    assert quality.update(members(8), None, 2.0) == {}
    assert quality.update(members(8), None, 2.0 + SHRINK_SETTLE_S / 2) == {}
    changed = quality.update(members(8), None, 2.0 + SHRINK_SETTLE_S)
    assert changed == {m: LADDER[rung_index(8)].gallery for m in members(8)}
    assert quality.update(members(8), None, 10.0) == {}


def test_the_speaker_is_boosted_only_after_holding_the_floor() -> None:
    quality = VideoQuality()
    room = members(12)
    quality.update(room, None, 0.0)
    assert quality.update(room, "m1", 1.0) == {}
    assert quality.update(room, "m1", 1.0 + SPEAKER_HOLD_S * 0.9) == {}
    assert quality.update(room, "m1", 1.0 + SPEAKER_HOLD_S) == {"m1": SPEAKER_12}
    assert quality.update(room, "m1", 10.0) == {}
    # The floor passes: the old speaker goes back to the gallery when the new one gets the boost, not before.
    assert quality.update(room, "m2", 11.0) == {}
    assert quality.update(room, "m2", 11.0 + SPEAKER_HOLD_S) == {"m1": GALLERY_12, "m2": SPEAKER_12}


def test_speaker_flips_shorter_than_the_hold_send_nothing() -> None:
    quality = VideoQuality()
    room = members(12)
    quality.update(room, "m1", 0.0)
    quality.update(room, "m1", SPEAKER_HOLD_S)
    sent: list[dict[str, VideoCap]] = []
    t = SPEAKER_HOLD_S
    for _ in range(20):  # an exchange of quick remarks: the detector flips every 1.2 s
        for who in ("m2", "m1", "m3"):
            for _ in range(6):
                t += 0.2
                sent.append(quality.update(room, who, t))
    assert not any(sent)
    assert quality.boosted == "m1"


def test_a_departing_speaker_frees_the_boost_and_is_forgotten() -> None:
    quality = VideoQuality()
    room = members(12)
    quality.update(room, "m1", 0.0)
    quality.update(room, "m1", SPEAKER_HOLD_S)
    assert quality.boosted == "m1"
    quality.update([m for m in room if m != "m1"], None, 5.0)
    assert quality.boosted is None
    # The same id coming back (a resume) is a newcomer: it is told its cap again.
    assert quality.update(room, None, 6.0) == {"m1": GALLERY_12}


def test_a_small_room_speaker_cap_equal_to_the_gallery_sends_nothing() -> None:
    quality = VideoQuality()
    quality.update(members(2), "m0", 0.0)
    assert quality.update(members(2), "m0", SPEAKER_HOLD_S + 1) == {}


def test_the_message_round_trips() -> None:
    cap = LADDER[-1].speaker
    text = messages.encode(messages.VideoCap(*cap))
    assert messages.decode_channel(text, messages.VideoCap) == messages.VideoCap(*cap)
    assert '"type":"video-cap"' in text


# --- through a room, with real aiortc clients ----------------------------------------------------------

@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    runner, running = await start_server(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0))
    yield running
    await runner.cleanup()


async def test_caps_arrive_on_joining_when_the_room_grows_and_when_the_speaker_settles(server: RunningServer) -> None:
    vp8 = encode_vp8_clip(frames=30, width=160, height=120, keyframe_interval=15)
    opus = encode_opus_clip(seconds=1.0)
    speaking = {"who": -1}
    caps: dict[str, list[tuple[float, dict]]] = {}

    def client(i: int) -> RoomClient:
        name = f"P{i}"
        caps[name] = []
        return RoomClient(server.ws_url, "ladder", name, vp8, opus, tag=i + 1,
                          talking=lambda: speaking["who"] == i, silence_frame=opus_silence_frame(),
                          on_event=lambda e: caps[name].append((time.monotonic(), e)) if e["type"] == "video-cap"
                          else None)

    def last_cap(c: RoomClient) -> VideoCap | None:
        events = caps[c.name]
        return None if not events else VideoCap(events[-1][1]["max_bitrate_bps"], events[-1][1]["max_framerate"],
                                                events[-1][1]["max_height"])

    async def until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, {name: [e for _, e in events] for name, events in caps.items()}
            await asyncio.sleep(0.02)

    clients = [client(i) for i in range(3)]
    try:
        for c in clients[:2]:
            await c.join()
        await until(lambda: all(last_cap(c) == LADDER[0].gallery for c in clients[:2]))  # on joining
        await clients[2].join()  # the room grows past the first rung: everyone is told, once
        await until(lambda: all(last_cap(c) == LADDER[1].gallery for c in clients))
        await asyncio.sleep(1.0)
        assert [len(caps[c.name]) for c in clients] == [2, 2, 1]

        speaker_cap = LADDER[1].speaker
        for who in (1, 2):
            speaking["who"] = who
            started = time.monotonic()
            await until(lambda who=who: last_cap(clients[who]) == speaker_cap)
            boosted_at = caps[clients[who].name][-1][0]
            # Not before the floor was held for the hold time (plus the detector's own second to decide).
            assert SPEAKER_HOLD_S <= boosted_at - started <= SPEAKER_HOLD_S + 1.5, boosted_at - started
            others = [c for i, c in enumerate(clients) if i != who]
            await until(lambda others=others: all(last_cap(c) == LADDER[1].gallery for c in others))
        await asyncio.sleep(1.0)
        # Each change went out once: no repeats of the same cap in a row.
        for c in clients:
            values = [e for _, e in caps[c.name]]
            assert all(a != b for a, b in itertools.pairwise(values)), values
        assert [len(caps[c.name]) for c in clients] == [2, 4, 2]
    finally:
        for c in clients:
            await c.leave()


def vp8_keyframe_height(frame: bytes) -> int | None:
    """RFC 6386 9.1: a keyframe's 3-byte tag (bit 0 clear), start code 9d 01 2a, then 14-bit width, height."""
    if len(frame) < 10 or frame[0] & 1 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    return int.from_bytes(frame[8:10], "little") & 0x3FFF


def test_the_test_publisher_picks_the_largest_variant_within_its_cap() -> None:
    variants = [VideoVariant((b"x",), 30, 480, 640_000), VideoVariant((b"x",), 30, 360, 400_000),
                VideoVariant((b"x",), 15, 180, 90_000)]
    as_dict = {"max_bitrate_bps": 500_000, "max_framerate": 30, "max_height": 360}
    assert pick_variant(variants, None).height == 480  # no cap yet: as a browser starts
    assert pick_variant(variants, as_dict).height == 360
    assert pick_variant(variants, dict(as_dict, max_framerate=20)).height == 180
    assert pick_variant(variants, dict(as_dict, max_bitrate_bps=50_000)).height == 180  # none fits: the smallest


async def test_a_test_publisher_with_variants_sends_what_the_room_asks_for(server: RunningServer) -> None:
    first, second = LADDER[0].gallery, LADDER[1].gallery
    variants = encode_vp8_variants([first, second], seconds=1.0)
    assert [v.height for v in variants] == [first.max_height, second.max_height]
    assert all(v.bitrate_bps <= cap.max_bitrate_bps for v, cap in zip(variants, (first, second), strict=True))
    publisher = RoomClient(server.ws_url, "variants", "Pub", video_variants=variants, tag=1)
    others = [RoomClient(server.ws_url, "variants", f"L{i}") for i in range(2)]

    def heights(listener: RoomClient) -> list[int]:
        assert publisher.participant_id is not None
        found = (vp8_keyframe_height(f.data) for f in listener.frames_from(publisher.participant_id, "video"))
        return [h for h in found if h is not None]

    async def until(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, (publisher.video_cap, [heights(o) for o in others])
            await asyncio.sleep(0.05)

    try:
        await publisher.join()
        await others[0].join()  # two people: the first rung, 480p
        await until(lambda: heights(others[0])[-1:] == [first.max_height])
        await others[1].join()  # three: the next rung; the publisher switches to its 360p clip
        await until(lambda: publisher.video_cap is not None and publisher.video_cap["max_height"] == second.max_height)
        await until(lambda: all(heights(o)[-1:] == [second.max_height] for o in others))
        assert publisher.video_variant is variants[1]
    finally:
        for client in (publisher, *others):
            await client.leave()
