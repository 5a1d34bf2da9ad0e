"""The overload policy of transcribe/scheduler.py, with a scripted model and a scripted clock (no Whisper).

Jobs carry the time their speech ended; the test holds the one decoder busy, lets time pass, and checks what
is decoded, what is shed, and in which order: the dominant speaker first, others' partials shed while
behind, finals that can no longer arrive within the bound dropped (their owner told), never queued.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import numpy as np

from transcribe.engine import DecodeRequest, Hypothesis
from transcribe.scheduler import DecodeScheduler, Job, JobKind, Prepared

BOUND = 5.0


class ScriptedModel:
    """Stands in for WhisperEngine: each decode takes `cost` seconds of the scripted clock; a request whose
    prompt is "hold" waits until the test releases it."""

    multilingual = False

    def __init__(self, clock: list[float], cost: float = 0.5) -> None:
        self.clock = clock
        self.cost = cost
        self.release = threading.Event()
        self.decoded: list[str] = []

    def decode(self, request: DecodeRequest) -> Hypothesis:
        if request.prompt == "hold":
            self.release.wait(10)
        else:
            self.decoded.append(str(request.prompt))
        self.clock[0] += self.cost
        return Hypothesis((), "en", 1.0, audio_seconds=2.0, decode_seconds=self.cost)


class Script:
    def __init__(self, workers: int = 1) -> None:
        self.clock = [100.0]
        self.model = ScriptedModel(self.clock)
        self.scheduler = DecodeScheduler(self.model, workers=workers, latency_bound_s=BOUND,  # type: ignore[arg-type]
                                         clock=lambda: self.clock[0])
        self.shed: list[str] = []
        self.applied: list[str] = []

    def job(self, tag: str, kind: JobKind, owner: str, *, spoken_until: float | None = None,
            waited: float = 0.0, audio_s: float = 1.0) -> Job:
        def prepare() -> Prepared:
            request = DecodeRequest(audio=np.zeros(int(16_000 * audio_s), dtype=np.float32), prompt=tag)
            return Prepared(request, lambda hyp, error: self.applied.append(tag))

        on_shed: Callable[[], None] = lambda: self.shed.append(tag)  # noqa: E731
        return Job(kind, owner, prepare, requested_at=self.clock[0] - waited, spoken_until=spoken_until,
                   on_shed=on_shed)

    def submit(self, *args: object, **kwargs: object) -> None:
        self.scheduler.submit(self.job(*args, **kwargs))  # type: ignore[arg-type]

    async def drain(self) -> None:
        self.model.release.set()
        for _ in range(500):
            stats = self.scheduler.stats()
            if not stats["pending_jobs"] and not stats["decodes_in_flight"]:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"scheduler did not drain: {self.scheduler.stats()}")


async def test_dominant_first_others_partials_shed_and_late_finals_dropped_not_queued() -> None:
    s = Script()
    s.scheduler.set_dominant("dom", True)
    s.submit("hold", JobKind.FINAL, "hold")  # the decoder is busy from here on
    await asyncio.sleep(0.05)
    now = s.clock[0]
    s.submit("a final", JobKind.FINAL, "a", spoken_until=now - 1.0)
    s.submit("b final, 5 s old", JobKind.FINAL, "b", spoken_until=now - 5.0)
    s.submit("c partial", JobKind.PARTIAL, "c")
    s.submit("dom partial", JobKind.PARTIAL, "dom")
    s.submit("e final", JobKind.FINAL, "e", spoken_until=now - 0.5)
    assert not s.scheduler.behind()
    s.clock[0] += 1.5  # the finals have waited longer than a decoder should make them: behind
    await s.drain()

    # b could no longer arrive within the bound: shed, its owner told, never decoded. c is not the dominant
    # speaker and decoding is behind: its partial is shed. The dominant speaker's partial goes before the
    # other finals, which keep their order.
    assert s.shed == ["b final, 5 s old"]
    assert s.model.decoded == ["dom partial", "a final", "e final"]
    stats = s.scheduler.stats()
    assert stats["late_jobs_shed"] == 1 and stats["partials_shed_overload"] == 1 and stats["behind"] == 1

    # While behind, a new partial of someone else is refused at once; the dominant speaker's is decoded.
    s.submit("c partial again", JobKind.PARTIAL, "c")
    s.submit("dom partial again", JobKind.PARTIAL, "dom")
    await s.drain()
    assert s.model.decoded[-1] == "dom partial again"
    assert s.scheduler.stats()["partials_shed_overload"] == 2
    # Once it has kept up for a whole bound, everyone's partials are decoded again.
    s.clock[0] += BOUND + 0.1
    s.submit("c partial later", JobKind.PARTIAL, "c")
    await s.drain()
    assert s.model.decoded[-1] == "c partial later" and not s.scheduler.behind()


async def test_audio_older_than_the_bound_is_dropped_oldest_first_and_the_rest_still_in_time() -> None:
    s = Script()
    s.submit("hold", JobKind.FINAL, "hold")
    await asyncio.sleep(0.05)
    start = s.clock[0]
    # Six people finish a sentence every half second while the decoder is held for 3 s.
    for i in range(6):
        s.submit(f"final {i}", JobKind.FINAL, f"speaker {i}", spoken_until=start + 0.5 * i)
        s.clock[0] += 0.5
    s.clock[0] += 0.5
    s.scheduler.set_dominant("speaker 1", True)
    await s.drain()
    # Each decode takes 0.5 s (the estimate learnt from the held final); 0.75 s of the 5 s bound is kept for
    # delivery. At 104.0 the dominant speaker's final (ended 100.5) still fits: 3.5 + 0.5 <= 4.25; at 104.5
    # final 0 (ended 100.0) does not (4.5 + 0.5 > 4.25) and is shed; final 2 (ended 101.0) fits, and so does
    # each one after it.
    assert s.model.decoded == ["final 1", "final 2", "final 3", "final 4", "final 5"]
    assert s.shed == ["final 0"] and "final 0" not in s.applied


async def test_late_work_is_shed_while_every_decoder_is_still_busy() -> None:
    """A slow decode does not hold the marker: the queue is swept while it runs."""
    s = Script()
    s.submit("hold", JobKind.FINAL, "hold")
    await asyncio.sleep(0.05)
    s.submit("a final", JobKind.FINAL, "a", spoken_until=s.clock[0])
    s.submit("b final", JobKind.FINAL, "b", spoken_until=s.clock[0])
    s.clock[0] += 4.5  # the held decode goes on and on
    await asyncio.sleep(0.6)
    assert s.shed == ["a final", "b final"] and s.scheduler.stats()["decodes_in_flight"] == 1
    await s.drain()
    assert s.model.decoded == []


async def test_a_long_final_is_judged_by_its_audio_once_prepared() -> None:
    s = Script()
    s.submit("hold", JobKind.FINAL, "hold")  # teaches the cost: 0.5 s per decode of 2 s of audio
    await asyncio.sleep(0.05)
    s.submit("short", JobKind.FINAL, "a", spoken_until=s.clock[0] - 2.5, audio_s=2.0)
    s.submit("long", JobKind.FINAL, "b", spoken_until=s.clock[0] - 2.5, audio_s=12.0)
    s.submit("translation", JobKind.TRANSLATE, "c")  # someone else waits: a late decode would delay them
    await s.drain()
    # Both fit by the per-decode estimate (3.5 + 0.5 <= 4.25 for the second); the long one, once its 12 s of
    # audio are known, would take (12 + 5) x 0.5 / (2 + 5) = 1.2 s: 3.5 + 1.2 > 4.25, shed rather than late.
    assert s.model.decoded == ["short", "translation"] and s.shed == ["long"]


async def test_partials_are_never_late_and_old_translations_are_shed() -> None:
    s = Script()
    s.submit("hold", JobKind.FINAL, "hold")
    await asyncio.sleep(0.05)
    s.submit("old partial", JobKind.PARTIAL, "b", waited=10.0)  # partials carry no speech end: never late
    await s.drain()
    assert s.model.decoded == ["old partial"] and not s.shed and not s.scheduler.behind()

    s.model.release.clear()
    s.submit("hold", JobKind.FINAL, "hold")
    await asyncio.sleep(0.05)
    s.submit("old translation", JobKind.TRANSLATE, "a", spoken_until=s.clock[0] - 6.0)
    s.scheduler.set_dominant("b", True)  # shedding puts the scheduler behind: only their partial is kept
    s.submit("b partial", JobKind.PARTIAL, "b")
    await s.drain()
    assert s.model.decoded == ["old partial", "b partial"]
    assert s.shed == ["old translation"] and s.scheduler.stats()["translations_shed"] == 1


async def test_a_late_final_with_nobody_else_waiting_is_decoded_late_unless_hopeless() -> None:
    """Shedding makes room for others: one speaker on a slow machine loses nothing by waiting a little."""
    s = Script()
    s.submit("lone final", JobKind.FINAL, "a", spoken_until=s.clock[0] - 8.0)  # 8 + 0.75 <= 10
    await s.drain()
    assert s.model.decoded == ["lone final"] and not s.shed
    s.submit("hopeless final", JobKind.FINAL, "a", spoken_until=s.clock[0] - 9.0)  # 9 + 0.5 + 0.75 > 10
    await s.drain()
    assert s.model.decoded == ["lone final"] and s.shed == ["hopeless final"]


async def test_abandon_drops_what_has_not_started_and_releases_its_owners() -> None:
    s = Script()
    s.submit("hold", JobKind.FINAL, "hold")
    await asyncio.sleep(0.05)
    for i in range(3):
        s.submit(f"final {i}", JobKind.FINAL, f"speaker {i}", spoken_until=s.clock[0])
    waiting = [asyncio.ensure_future(s.scheduler.wait_idle(f"speaker {i}")) for i in range(3)]
    assert s.scheduler.abandon() == 3
    await asyncio.wait_for(asyncio.gather(*waiting), 1.0)  # nobody waits for a decode that will never run
    s.submit("too late", JobKind.FINAL, "speaker 0")
    s.model.release.set()
    await s.scheduler.close()
    assert s.model.decoded == [] and s.scheduler.stats()["jobs_dropped_at_shutdown"] == 3
