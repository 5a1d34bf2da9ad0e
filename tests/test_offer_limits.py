"""Bounded work per offer: huge but well-formed offers are refused before aiortc parses them, offers per
address are rate-limited, and a bystander's video keeps its frame rate while an attacker floods them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bench.attacks import FrameMeter, padded, real_offer, with_candidates, with_sections
from sfu import aiortc_adapter
from sfu.config import ServerConfig
from sfu.contrib.client import RoomClient, encode_vp8_clip
from sfu.limits import offer_limits
from tests.conftest import RunningServer, start_server, wait_for

FPS = 15.0


async def test_limits_refuse_what_aiortc_would_have_built() -> None:
    offer = await real_offer()
    offer_limits.check_offer(offer)  # a real client's offer passes
    assert aiortc_adapter.offer_problem(with_sections(offer, 500)) is None  # well-formed: only the limits stop it
    for hostile, reason in ((with_sections(offer, 500), "KiB"), (with_sections(offer, 40), "sections"),
                            (with_sections(offer, 1), "sections"), (with_candidates(offer, 3000), "KiB"),
                            (with_candidates(offer, 500), "ICE candidates"),
                            (padded(offer, offer_limits.MAX_SDP_BYTES + 1), "KiB"),
                            (offer + "a=x\r\n" * offer_limits.MAX_SDP_LINES, "lines")):
        with pytest.raises(offer_limits.SdpRefused, match=reason):
            offer_limits.check_offer(hostile)
    offer_limits.check_offer(with_candidates(offer, offer_limits.MAX_CANDIDATES - offer.count("a=candidate:")))
    offer_limits.check_answer(offer, 3)
    with pytest.raises(offer_limits.SdpRefused, match="sections"):
        offer_limits.check_answer(with_sections(offer, 40), 3)


def test_offer_rate_counts_per_address() -> None:
    now = [0.0]
    rate = offer_limits.address_rate(per_minute=3, clock=lambda: now[0])
    assert [rate.allow("a") for _ in range(4)] == [True, True, True, False]
    assert rate.allow("b")
    now[0] += 20.0  # one offer's worth of refill
    assert rate.allow("a") and not rate.allow("a")


@pytest.fixture
async def flood_server() -> AsyncIterator[RunningServer]:
    # The per-address rate would stop this flood after 20 offers; raised so every hostile offer is parsed
    # as far as the limits let it, which is what must not starve the media path.
    runner, running = await start_server(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0,
                                                      offers_per_minute=100_000, joins_per_minute=100_000))
    yield running
    await runner.cleanup()


async def test_offer_flood_leaves_a_bystanders_video_alone(flood_server: RunningServer) -> None:
    server = flood_server
    vp8 = encode_vp8_clip(frames=30, width=320, height=240, keyframe_interval=15)
    meter = FrameMeter()
    publisher = RoomClient(server.ws_url, "circle", "Publisher", vp8, None, fps=FPS, tag=1)
    bystander = RoomClient(server.ws_url, "circle", "Bystander", keep_frames=False,
                           on_frame=lambda mid, kind, data, at: meter.frame() if kind == "video" else None)
    base = await real_offer()
    hostile = [with_candidates(base, 3000), with_sections(base, 500), padded(base, 250_000)]
    refused = 0
    try:
        await publisher.join()
        await bystander.join()
        await wait_for(lambda: len(meter.times) > 30)
        settle = time.perf_counter()
        await asyncio.sleep(3.0)
        baseline_fps = meter.fps_between(settle, time.perf_counter())

        start = time.perf_counter()
        async with aiohttp.ClientSession() as http:
            while time.perf_counter() - start < 6.0:
                async with http.ws_connect(server.ws_url) as ws:
                    await ws.send_json({"type": "join", "room": "circle", "name": "Attacker", "accept_agreement": True})
                    assert (await ws.receive_json(timeout=10))["type"] == "joined"
                    for sdp in hostile:
                        await ws.send_str(json.dumps({"type": "offer", "sdp": sdp}))
                        reply = await ws.receive_json(timeout=10)
                        assert reply["type"] == "error" and reply["code"] in ("negotiation-failed",
                                                                              "invalid-message"), reply
                        refused += 1
        end = time.perf_counter()

        ratio = meter.min_fps_ratio(start, end, baseline_fps, window=2.0)  # 1 s at 15 fps is too coarse for jitter
        gap = meter.longest_gap(start, end)
        assert refused >= 30, refused
        assert baseline_fps > FPS * 0.8, baseline_fps
        # The issue measured 1.4 of 15 fps and a 23 s gap under this flood. The target (0.9, 0.5 s) is
        # bench.abuse's; here, on a shared CI machine, the margin only has to tell that failure from a pass.
        assert ratio >= 0.75 and gap <= 1.0, (ratio, gap, refused)
        assert set(server.rooms.rooms["circle"].participants) == {publisher.participant_id, bystander.participant_id}
    finally:
        await publisher.leave()
        await bystander.leave()


async def test_offers_per_address_are_rate_limited(server: RunningServer) -> None:
    base = await real_offer()
    codes = []
    async with aiohttp.ClientSession() as http:
        for _ in range(offer_limits.OFFERS_PER_MINUTE + 2):
            async with http.ws_connect(server.ws_url) as ws:
                await ws.send_json({"type": "join", "room": "circle", "name": "Again", "accept_agreement": True})
                assert (await ws.receive_json(timeout=10))["type"] == "joined"
                await ws.send_str(json.dumps({"type": "offer", "sdp": with_sections(base, 5)}))
                codes.append((await ws.receive_json(timeout=10))["code"])
    assert codes[:offer_limits.OFFERS_PER_MINUTE] == ["negotiation-failed"] * offer_limits.OFFERS_PER_MINUTE
    assert codes[offer_limits.OFFERS_PER_MINUTE:] == ["rate-limited"] * 2


async def test_joins_per_address_are_rate_limited() -> None:
    runner, server = await start_server(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0, joins_per_minute=5))
    try:
        replies = []
        async with aiohttp.ClientSession() as http:
            for i in range(7):
                async with http.ws_connect(server.ws_url) as ws:
                    await ws.send_json({"type": "join", "room": "circle", "name": f"N{i}", "accept_agreement": True})
                    replies.append(await ws.receive_json(timeout=10))
        assert [r["type"] for r in replies[:5]] == ["joined"] * 5
        assert [r.get("code") for r in replies[5:]] == ["rate-limited"] * 2
    finally:
        await runner.cleanup()
