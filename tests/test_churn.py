"""Churn, short: people joining and going (cleanly, abruptly, SIGKILLed) leave nothing behind in the server
and never stop the steady participants' video. `python -m bench.churn` is the full 200-cycle version."""

from __future__ import annotations

from bench.churn import run
from sfu import aiortc_adapter


async def test_churn_leaves_nothing_behind() -> None:
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    result = await run(cycles=9, steady_count=2, grace=2.0, settle=5.0)
    assert result["tracebacks"] == 0, result
    assert result["leaked_subscriptions"] == 0 and result["leaked_pcs"] == 0, result
    assert result["leaked_tasks"] == 0 and result["leaked_fds"] == 0, result
    # The steady pair never lost video for a whole second (the frame-rate target is the benchmark's).
    assert result["steady_min_fps_ratio"] > 0, result
