"""Safety alerts through a real room: checked off the event loop with the speaker's previous line as context,
explained (triggers, confidence, layer), dismissed as "not a concern" for the session, and a group's own
phrases. Real detector (phrases and the bundled embedding model), real aiortc members."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from safety.detector import CrisisDetector
from sfu.app import create_app
from sfu.config import ServerConfig
from sfu.contrib.client import RoomClient
from sfu.room.groups import Group, GroupsConfig, ServerSettings
from tests.conftest import RunningServer, start_server, wait_for

SECRET = "facilitator-secret-for-tests"
GROUP_PHRASES = '''
language = "en"
[[rule]]
category = "suicidal_ideation"
patterns = ["go to the (old|north) bridge"]
'''


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    phrases = tmp_path / "bridge.toml"
    phrases.write_text(GROUP_PHRASES)
    groups = GroupsConfig(
        server=ServerSettings(allow_adhoc_rooms=False, crisis_resources="Call the local crisis line: 000."),
        groups=(Group(slug="circle", name="Circle", agreement="Be kind.", lobby=False, facilitator_secret=SECRET),
                Group(slug="river", name="River", agreement="Be kind.", lobby=False, facilitator_secret=SECRET,
                      safety_phrases=str(phrases))))
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0, groups=groups)
    app = create_app(config, detector=CrisisDetector.from_config(),
                     group_detectors={"river": CrisisDetector.from_config(extra_phrases_file=phrases)})
    runner, running = await start_server(config, app=app)
    yield running
    await runner.cleanup()


def of(client: RoomClient, kind: str) -> list[dict]:
    return [e for e in client.events if e.get("type") == kind]


async def seated(server: RunningServer, room: str, name: str, **kwargs: object) -> RoomClient:
    client = RoomClient(server.ws_url, room, name, **kwargs)  # type: ignore[arg-type]
    await client.join()
    await wait_for(lambda: client.channel is not None and client.channel.readyState == "open")
    return client


async def test_context_explanation_and_not_a_concern(server: RunningServer) -> None:
    fran = await seated(server, "circle", "Fran", secret=SECRET)
    bob = await seated(server, "circle", "Bob")
    ann = await seated(server, "circle", "Ann")
    try:
        # The same continuation alerts after Bob's own risky line, and not from Ann, who said nothing before.
        ann.send_channel({"type": "chat", "text": "im going to do it tonight"})
        bob.send_channel({"type": "chat", "text": "i cant keep going anymore"})
        bob.send_channel({"type": "chat", "text": "im going to do it tonight"})
        await wait_for(lambda: len(of(fran, "safety-alert")) >= 2)
        first, second = of(fran, "safety-alert")[:2]
        assert {first["participant_id"], second["participant_id"]} == {bob.participant_id}
        assert second["layer"] == "context" and "going to do it" in " ".join(second["triggers"])
        assert first["layer"] == "phrase" and 0 < first["confidence"] <= 1 and first["triggers"]
        assert first["alert_id"] != second["alert_id"]

        # Only facilitators may dismiss, and only alerts this room raised.
        bob.send_channel({"type": "dismiss-alert", "alert_id": first["alert_id"]})
        fran.send_channel({"type": "dismiss-alert", "alert_id": "a999"})
        await wait_for(lambda: of(bob, "error") and of(fran, "error"))
        assert of(bob, "error")[0]["code"] == "not-allowed" and of(fran, "error")[0]["code"] == "no-such-alert"

        fran.send_channel({"type": "dismiss-alert", "alert_id": first["alert_id"]})
        await wait_for(lambda: of(fran, "alert-dismissed"))
        assert of(fran, "alert-dismissed")[0] == {"type": "alert-dismissed", "alert_id": first["alert_id"],
                                                  "by": "Fran"}
        # The same words from Bob stay quiet for the session; other words still alert.
        bob.send_channel({"type": "chat", "text": "i cant keep going anymore"})
        bob.send_channel({"type": "chat", "text": "i want to die"})
        await wait_for(lambda: len(of(fran, "safety-alert")) >= 3)
        assert "want to die" in of(fran, "safety-alert")[2]["text"]
        assert len(of(fran, "safety-alert")) == 3
        assert not of(bob, "safety-alert") and not of(ann, "safety-alert") and not of(bob, "alert-dismissed")
    finally:
        for client in (fran, bob, ann):
            await client.leave()


async def test_a_groups_own_phrases_alert_only_in_that_group(server: RunningServer) -> None:
    river_fran = await seated(server, "river", "Fran", secret=SECRET)
    river_bob = await seated(server, "river", "Bob")
    circle_fran = await seated(server, "circle", "Fran", secret=SECRET)
    circle_bob = await seated(server, "circle", "Bob")
    try:
        for bob in (river_bob, circle_bob):
            bob.send_channel({"type": "chat", "text": "after this i will go to the old bridge"})
            bob.send_channel({"type": "chat", "text": "i want to die"})  # built-in phrases stay in both
        await wait_for(lambda: len(of(river_fran, "safety-alert")) >= 2 and of(circle_fran, "safety-alert"))
        assert any("bridge" in a["text"] for a in of(river_fran, "safety-alert"))
        assert not any("bridge" in a["text"] for a in of(circle_fran, "safety-alert"))
    finally:
        for client in (river_fran, river_bob, circle_fran, circle_bob):
            await client.leave()
