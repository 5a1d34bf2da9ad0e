"""A first offer that cannot be used leaves the seat able to try again, and nothing breaks on leaving.

Found by the fuzz test: an offer whose BUNDLE group named a mid no section had made aiortc build
transceivers without a transport and fail half-way through the answer; every later offer, and finally
the connection's close (inside the socket handler), then failed too.
"""

from __future__ import annotations

import asyncio
import logging
import re

import aiohttp

from sfu.config import ServerConfig
from tests.conftest import start_server
from tests.test_fuzz_with_bystander import BASE_OFFER


class ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


async def offer(ws: aiohttp.ClientWebSocketResponse, sdp: str) -> dict:
    await ws.send_json({"type": "offer", "sdp": sdp})
    return await asyncio.wait_for(ws.receive_json(), 10)


async def test_unusable_first_offers_get_errors_and_a_good_one_still_works() -> None:
    errors = ErrorRecords()
    logging.getLogger().addHandler(errors)
    runner, server = await start_server(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0))
    sections = re.split(r"(?=\r\nm=)", BASE_OFFER)
    without_first_bundled = sections[0] + "".join(sections[2:])  # BUNDLE still names mid 0
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(server.ws_url)
            await ws.send_json({"type": "join", "room": "circle", "name": "Retry", "accept_agreement": True})
            joined = await asyncio.wait_for(ws.receive_json(), 10)
            assert joined["type"] == "joined"
            refused = await offer(ws, without_first_bundled)
            assert refused["code"] == "negotiation-failed" and "BUNDLE" in refused["message"], refused

            # Defence in depth: aiortc failing half-way for a reason we do not check for. Fault injection
            # (the one stand-in here): the answer step of the real connection raises, as it did.
            peer = server.rooms.seats[joined["participant_id"]].peer
            broken_pc = peer.pc

            async def fails_half_way() -> None:
                raise AttributeError("'NoneType' object has no attribute 'transport'")

            broken_pc.createAnswer = fails_half_way  # type: ignore[method-assign]
            refused = await offer(ws, BASE_OFFER)
            assert refused["code"] == "negotiation-failed", refused
            assert peer.pc is not broken_pc  # started over

            answered = await offer(ws, BASE_OFFER)
            assert answered["type"] == "answer", answered
            await ws.close()
        await asyncio.sleep(0.5)
        assert not server.rooms.seats and "circle" not in server.rooms.rooms
        assert errors.records == [], errors.records
    finally:
        logging.getLogger().removeHandler(errors)
        await runner.cleanup()
