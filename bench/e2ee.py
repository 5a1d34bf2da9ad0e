"""End-to-end encrypted rooms benchmark: captions made in the speaker's browser, and what encryption costs the server.

    python -m bench.e2ee [--forward-seconds 20] [--members 3]

Needs a loopback-only network namespace (like `make bench`) and the browser assets (`make web-assets`).
A real `peerwell serve` process runs on 127.0.0.1 with one end-to-end encrypted group and one plain group
(`--no-captions`: the plain room must not pay for Whisper, or the comparison would say nothing about forwarding).

Captions, per real-speech clip (tests/support/real_speech.py, as bench.captions uses them): a speaker Chromium
(its own browser process) joins the encrypted room with the clip as its microphone (a page-side audio source
started on cue, so clip time 0 is known), a listener Chromium (another process) records every sealed caption
it opens, with its arrival time.
- final latency: per final, arrival (listener, room time) minus the end of speech its segment ends at (the
  speaker's endpointer stamps it, in room time, from the audio clock);
- partial latency: per partial, arrival minus the end of the audio it covers;
- browser CPU per speaker: the speech worker's inference time / the clip's length (single-threaded WASM,
  so busy time is CPU time; on a loaded machine it overstates), and the speaker browser's whole process tree
  (media, encryption, transcription) / the clip's length;
- WER: the concatenated finals against the clip's published text (two_cities); Whisper base (the server's
  model, offline on the whole clip: what the server's streaming captions approach from above) on the same
  text. For the clips without a published text, the browser's WER against Whisper base is shown.

Forwarding CPU: --members Chromium members (fake camera and a tone, speech recognition off in the page) in
the plain room, then in the encrypted room, alternated twice; the server process's CPU seconds per second.

Prints a table; the last line is a JSON object with final_latency_p50_s, wer_browser, wer_server,
browser_cpu_cores and forwarding_cpu_ratio (encrypted / plain).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
from playwright.async_api import Browser, Page, Playwright, async_playwright

from bench.captions import offline_model, offline_transcript, real_clips
from tests.support.browser import join, launch_chromium, new_page, poll, write_tone_wav
from tests.support.serve import free_port, start_serve
from tests.support.speech import wer

SEALED = "sealed"
PLAIN = "plain"
GROUPS = f"""
[server]
allow_adhoc_rooms = false

[[group]]
slug = "{SEALED}"
name = "Sealed"
agreement = "Be kind."
lobby = false
e2ee = true

[[group]]
slug = "{PLAIN}"
name = "Plain"
agreement = "Be kind."
lobby = false
"""

# The page's microphone becomes a buffer played on cue (window.__bench.play()), so clip time 0 is known.
# `noCaptions`: the forwarding members skip speech recognition (its CPU is measured on its own above).
INIT = """(() => {
  const b = window.__bench = { ctx: null, dest: null, buffer: null, t0: null, log: [] };
  if (window.__benchNoCaptions) window.AudioWorkletNode = undefined;
  const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (c) => {
    if (!c || !c.audio || !window.__benchClip) return original(c);
    b.ctx = b.ctx || new AudioContext({ sampleRate: 48000 });
    b.dest = b.dest || b.ctx.createMediaStreamDestination();
    const stream = new MediaStream(b.dest.stream.getAudioTracks());
    if (c.video) (await original({ video: c.video })).getVideoTracks().forEach((t) => stream.addTrack(t));
    return stream;
  };
  b.load = (text, rate) => {
    const bytes = Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));
    const pcm = new Int16Array(bytes.buffer);
    b.buffer = b.ctx.createBuffer(1, pcm.length, rate);
    const data = b.buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i += 1) data[i] = pcm[i] / 32768;
  };
  b.play = async () => {
    await b.ctx.resume();
    const source = b.ctx.createBufferSource();
    source.buffer = b.buffer;
    source.connect(b.dest);
    source.start();
    b.t0 = Date.now();
    return b.t0;
  };
})();"""
CLIP_FLAG = "window.__benchClip = true;"
NO_CAPTIONS_FLAG = "window.__benchNoCaptions = true;"

# The listener: every sealed caption it opens, with its arrival (room time on this page's clock).
RECORD = """() => {
  const call = window.peerwell.call;
  const started = () => window.peerwell.store.state.roomStartedAt;
  const receive = call.e2ee.receive.bind(call.e2ee);
  call.e2ee.receive = (event) => receive(event).then((value) => {
    if (value && event.kind === 'caption') {
      window.__bench.log.push({ ...value, final: Boolean(event.final && value.final),
        arrival: (Date.now() - started()) / 1000 });
    }
    return value;
  });
}"""
CAPTIONS_READY = """() => { const c = window.peerwell && window.peerwell.localCaptions;
  return c ? c.state : null; }"""
WORKER_STATS = "() => window.peerwell.localCaptions.stats()"
ROOM_TIME = "() => (Date.now() - window.peerwell.store.state.roomStartedAt) / 1000"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# --- the browser's own processes -------------------------------------------------------------------------

def browser_processes(profile: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if any(profile in part for part in cmdline):
            found.append(process)
    return found


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


async def launch_own(playwright: Playwright, fake_audio: Path | None) -> tuple[Browser, str]:
    """A Chromium of its own, and the profile directory that names its processes."""
    before = {p.pid for p in psutil.process_iter()}
    browser = await launch_chromium(playwright, fake_audio)
    for process in psutil.process_iter(["cmdline", "name"]):
        if process.pid in before or "chrom" not in (process.info.get("name") or ""):
            continue
        for part in process.info.get("cmdline") or []:
            if part.startswith("--user-data-dir="):
                return browser, part.split("=", 1)[1]
    raise RuntimeError("could not find the new Chromium's profile")


# --- captions made in the browser ---------------------------------------------------------------------------

@dataclass
class ClipResult:
    name: str
    seconds: float
    finals: list[dict] = field(default_factory=list)
    partials: list[dict] = field(default_factory=list)
    final_latency: list[float] = field(default_factory=list)
    partial_latency: list[float] = field(default_factory=list)
    worker_cores: float = 0.0
    browser_cores: float = 0.0
    wer_browser: float | None = None
    wer_server: float | None = None
    wer_vs_whisper: float | None = None
    text: str = ""


def int16_b64(audio: np.ndarray) -> str:
    return base64.b64encode((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()).decode()


async def caption_run(playwright: Playwright, url: str, key: str, clip: object, whisper_text: str,
                      reference: str | None) -> ClipResult:
    audio = clip.audio  # type: ignore[attr-defined]  # 48 kHz float mono
    seconds = len(audio) / 48000
    speaker_browser, profile = await launch_own(playwright, None)
    listener_browser, _ = await launch_own(playwright, None)
    try:
        speaker = await new_page(speaker_browser, url, bypass_csp=True)
        await speaker.add_init_script(CLIP_FLAG)
        await speaker.add_init_script(INIT)
        listener = await new_page(listener_browser, url, bypass_csp=True)
        await listener.add_init_script(INIT)
        await join(speaker, "Speaker", link=f"/#room={SEALED}&key={key}", mic=True, camera=False)
        await join(listener, "Listener", link=f"/#room={SEALED}&key={key}", mic=False, camera=False)
        await poll(listener, "() => Boolean(window.peerwell.call.e2ee && window.peerwell.call.e2ee.ready)", None,
                   bool, timeout=120)
        await listener.evaluate(RECORD)
        await poll(speaker, CAPTIONS_READY, None, lambda s: s in ("ready", "error"), timeout=120)
        await speaker.evaluate("(a) => window.__bench.load(a[0], a[1])", [int16_b64(audio), 48000])
        await asyncio.sleep(1.0)
        processes = browser_processes(profile)
        cpu_before = cpu_seconds(processes)
        stats_before = await speaker.evaluate(WORKER_STATS)
        play_room = await speaker.evaluate(ROOM_TIME)
        await speaker.evaluate("() => window.__bench.play()")
        started = time.monotonic()
        await asyncio.sleep(seconds + 4.0)  # the clip, then the last final
        wall = time.monotonic() - started
        cpu = cpu_seconds(browser_processes(profile)) - cpu_before
        stats = await speaker.evaluate(WORKER_STATS)
        records = await listener.evaluate("() => window.__bench.log")
        for page in (speaker, listener):  # free the seats at once (a closed page's seat is held for a reconnect)
            await page.click("#leave")
    finally:
        await speaker_browser.close()
        await listener_browser.close()
    result = ClipResult(clip.name, seconds)  # type: ignore[attr-defined]
    result.worker_cores = (stats["busyMs"] - stats_before["busyMs"]) / 1000 / seconds
    result.browser_cores = cpu / wall
    for record in records:
        if record["start"] < play_room - 0.5:
            continue  # before the clip (silence): nothing should be there
        (result.finals if record["final"] else result.partials).append(record)
    result.final_latency = [r["arrival"] - r["end"] for r in result.finals]
    result.partial_latency = [r["arrival"] - r["end"] for r in result.partials]
    result.text = " ".join(r["text"] for r in sorted(result.finals, key=lambda r: r["start"]))
    if reference:
        result.wer_browser = wer(reference, result.text)
        result.wer_server = wer(reference, whisper_text)
    result.wer_vs_whisper = wer(whisper_text, result.text)
    return result


# --- forwarding CPU ----------------------------------------------------------------------------------------

async def forwarding_cpu(playwright: Playwright, url: str, server_pid: int, room: str, key: str, members: int,
                         seconds: float, tone: Path) -> float:
    browser = await launch_chromium(playwright, tone)
    try:
        pages: list[Page] = []
        for i in range(members):
            page = await new_page(browser, url)
            await page.add_init_script(NO_CAPTIONS_FLAG)
            await page.add_init_script(INIT)
            target = f"/#room={room}&key={key}" if room == SEALED else f"/#room={room}"
            await join(page, f"Member {i + 1}", link=target, mic=True, camera=True)
            pages.append(page)
        for page in pages:  # everyone sees everyone before the window opens
            await poll(page, "() => document.querySelectorAll('.tile video').length", None,
                       lambda n: n >= members, timeout=60)
        await asyncio.sleep(4.0)
        server = psutil.Process(server_pid)
        before = server.cpu_times()
        started = time.monotonic()
        await asyncio.sleep(seconds)
        after = server.cpu_times()
        wall = time.monotonic() - started
        for page in pages:
            await page.click("#leave")
        await asyncio.sleep(1.0)
        return (after.user + after.system - before.user - before.system) / wall
    finally:
        await browser.close()


async def main(args: argparse.Namespace) -> dict[str, object]:
    load_start = os.getloadavg()
    clips = real_clips()
    log("Whisper base offline on the clips (the server's model) ...")
    model = offline_model("base")
    whisper = {c.name: offline_transcript(model, c, c.language).text for c in clips}
    del model
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "groups.toml"
        config.write_text(GROUPS)
        port = free_port()
        server = await start_serve(["--config", str(config), "--port", str(port), "--host", "127.0.0.1",
                                    "--ice-host", "127.0.0.1", "--no-captions", "--log-level", "WARNING"],
                                   Path(tmp) / "server.log")
        url = f"http://127.0.0.1:{port}"
        results: list[ClipResult] = []
        forwarding: dict[str, list[float]] = {PLAIN: [], SEALED: []}
        try:
            async with async_playwright() as playwright:
                for clip in clips:
                    log(f"captions in the browser: {clip.name} ({len(clip.audio) / 48000:.0f} s) ...")
                    results.append(await caption_run(playwright, url, key, clip, whisper[clip.name], clip.reference))
                tone = write_tone_wav(Path(tmp) / "tone.wav", seconds=5.0)
                for room in (PLAIN, SEALED, PLAIN, SEALED):
                    log(f"forwarding CPU: {room} room, {args.members} members, {args.forward_seconds:.0f} s ...")
                    forwarding[room].append(await forwarding_cpu(playwright, url, server.pid, room, key, args.members,
                                                                 args.forward_seconds, tone))
        finally:
            server.terminate()
            await server.wait()
    load_end = os.getloadavg()

    print(f"load average at start {load_start[0]:.2f} / end {load_end[0]:.2f} (1 min), {os.cpu_count()} cores")
    print(f"{'clip':<24}{'s':>6}{'finals':>8}{'final p50':>11}{'p95':>7}{'partial p50':>13}"
          f"{'WER browser':>13}{'WER whisper':>13}{'vs whisper':>12}{'ASR cores':>11}{'browser cores':>15}")
    for r in results:
        print(f"{r.name:<24}{r.seconds:>6.1f}{len(r.finals):>8}{fmt(pct(r.final_latency, 50)):>11}"
              f"{fmt(pct(r.final_latency, 95)):>7}{fmt(pct(r.partial_latency, 50)):>13}"
              f"{fmt(r.wer_browser, 3):>13}{fmt(r.wer_server, 3):>13}{fmt(r.wer_vs_whisper, 3):>12}"
              f"{r.worker_cores:>11.2f}{r.browser_cores:>15.2f}")
    plain, sealed = float(np.mean(forwarding[PLAIN])), float(np.mean(forwarding[SEALED]))
    print(f"forwarding CPU (cores), {args.members} members: plain {', '.join(f'{v:.3f}' for v in forwarding[PLAIN])}"
          f" -> {plain:.3f}; encrypted {', '.join(f'{v:.3f}' for v in forwarding[SEALED])} -> {sealed:.3f}")
    finals = [x for r in results for x in r.final_latency]
    partials = [x for r in results for x in r.partial_latency]
    scored = [r for r in results if r.wer_browser is not None]
    summary = {
        "final_latency_p50_s": round(pct(finals, 50) or 0.0, 3),
        "final_latency_p95_s": round(pct(finals, 95) or 0.0, 3),
        "partial_latency_p50_s": round(pct(partials, 50) or 0.0, 3),
        "wer_browser": round(float(np.mean([r.wer_browser for r in scored])), 4) if scored else None,
        "wer_server": round(float(np.mean([r.wer_server for r in scored])), 4) if scored else None,
        "wer_browser_vs_whisper": round(float(np.mean([r.wer_vs_whisper for r in results])), 4),
        "browser_cpu_cores": round(max(r.worker_cores for r in results), 3),
        "browser_process_cpu_cores": round(max(r.browser_cores for r in results), 3),
        "forwarding_cpu_plain": round(plain, 4),
        "forwarding_cpu_e2ee": round(sealed, 4),
        "forwarding_cpu_ratio": round(sealed / plain, 3) if plain > 0 else None,
        "load_average": [round(load_start[0], 2), round(load_end[0], 2)],
        "clips": [r.name for r in results],
    }
    return summary


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=3, help="members with camera and microphone (forwarding)")
    parser.add_argument("--forward-seconds", type=float, default=20.0, help="measuring window per forwarding run")
    args = parser.parse_args()
    summary = asyncio.run(main(args))
    print(json.dumps(summary))


if __name__ == "__main__":
    cli()
