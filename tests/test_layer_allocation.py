"""The layer choice alone (pure): tiles, audio-only, the speaker first, video degrading layer by layer and
then pausing before the audio reserve is touched; the downlink budget from REMB and loss."""

from __future__ import annotations

from sfu.media.layer_allocation import AUDIO_RESERVE_BPS, DownlinkBudget, LayerInfo, VideoSource, allocate

LAYERS = (LayerInfo(1, 135, 100_000), LayerInfo(2, 270, 250_000), LayerInfo(3, 540, 800_000))


def source(pid: str, base: int = 0) -> VideoSource:
    return VideoSource(pid, [LayerInfo(x.ssrc + base, x.height, x.bitrate_bps) for x in LAYERS])


def heights(choices: dict, sources: list[VideoSource]) -> dict[str, int | None]:
    by_ssrc = {x.ssrc: x.height for s in sources for x in s.layers}
    return {pid: by_ssrc.get(c.ssrc) if c.ssrc is not None else None for pid, c in choices.items()}


def test_the_smallest_layer_that_fills_the_tile() -> None:
    sources = [source("a"), source("b", 10), source("c", 20), source("d", 30)]
    views = {"a": 100, "b": 200, "c": 540, "d": 2000}
    choices = allocate(sources, views, audio_only=False, speaker=None, budget_bps=None)
    assert heights(choices, sources) == {"a": 135, "b": 270, "c": 540, "d": 540}
    assert {c.reason for c in choices.values()} == {"shown"}


def test_hidden_and_audio_only_pause_with_their_reason() -> None:
    sources = [source("a"), source("b", 10)]
    choices = allocate(sources, {"a": 0, "b": 300}, audio_only=False, speaker=None, budget_bps=None)
    assert (choices["a"].ssrc, choices["a"].reason) == (None, "hidden")
    assert choices["b"].reason == "shown"
    choices = allocate(sources, {"a": 300, "b": 300}, audio_only=True, speaker=None, budget_bps=None)
    assert all(c.ssrc is None and c.reason == "audio-only" for c in choices.values())


def test_a_shrinking_budget_degrades_layer_by_layer_then_pauses_keeping_the_audio_reserve() -> None:
    sources = [source("speaker"), source("other", 10)]
    views = {"speaker": 540, "other": 540}
    seen = []
    for budget in (3_000_000, 1_200_000, 700_000, 450_000, 300_000, 250_000, 150_000):
        choices = allocate(sources, views, audio_only=False, speaker="speaker", budget_bps=budget)
        chosen = heights(choices, sources)
        used = sum(x.bitrate_bps for s in sources for x in s.layers if x.ssrc in {c.ssrc for c in choices.values()})
        assert used <= budget - AUDIO_RESERVE_BPS or used == 0, (budget, chosen)
        seen.append((chosen["speaker"], chosen["other"]))
    assert seen == [(540, 540), (540, 270), (270, 270), (270, 135), (135, 135), (135, None), (None, None)]
    assert choices["other"].reason == "bandwidth"


def test_the_speaker_and_larger_tiles_come_first() -> None:
    sources = [source("small"), source("big", 10), source("talker", 20)]
    views = {"small": 135, "big": 540, "talker": 135}
    choices = allocate(sources, views, audio_only=False, speaker="talker", budget_bps=AUDIO_RESERVE_BPS + 250_000)
    assert heights(choices, sources) == {"talker": 135, "big": 135, "small": None}


def test_a_single_layer_publisher_is_forwarded_or_paused() -> None:
    single = [VideoSource("h264", [LayerInfo(7, 0, 600_000)])]
    assert allocate(single, {}, audio_only=False, speaker=None, budget_bps=None)["h264"].ssrc == 7
    assert allocate(single, {}, audio_only=False, speaker=None, budget_bps=500_000)["h264"].reason == "bandwidth"


def test_budget_follows_loss_and_probes_up_with_growing_holds() -> None:
    budget = DownlinkBudget()
    assert not budget.observe(1_000_000, 0.0, remb_bps=300_000)
    assert not budget.observe(1_000_000, 0.5, remb_bps=6_000)  # a REMB falling alone changes nothing
    assert not budget.observe(1_000_000, 0.6, loss=0.05)  # nor does a little loss
    assert budget.limit_bps is None
    assert budget.observe(1_000_000, 1.0, loss=0.4)
    assert budget.limit_bps == 1_000_000 * 0.8  # the most sent in the last 2 s, less half the loss
    assert not budget.observe(500_000, 1.5, loss=0.5)  # the same overload still being reported
    assert budget.observe(500_000, 3.2, loss=0.5)  # after the reaction time: lower again
    assert budget.limit_bps == 500_000 * 0.75
    assert not budget.observe(300_000, 4.0)
    assert budget.observe(300_000, 3.2 + budget.FIRST_HOLD_S)  # held: try a step up
    assert budget.limit_bps == 500_000 * 0.75 * 1.5
    assert budget.observe(560_000, 4.2 + budget.FIRST_HOLD_S, loss=0.3)  # the try failed
    assert budget.limit_bps == 560_000 * 0.85
    assert budget.hold_s == 2 * budget.FIRST_HOLD_S
