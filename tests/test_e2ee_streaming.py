"""The streaming logic of captions made in the browser (web/static/e2ee/streaming.js), without a model: what the
endpointer offers for partials and finals, and the resampler, fed synthetic audio under Node."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = """
import { Endpointer, Resampler, RATE } from "%s";
const tone = (seconds, amp, f = 220) => Float32Array.from({ length: Math.round(seconds * RATE) },
  (_, i) => amp * Math.sin(2 * Math.PI * f * i / RATE));
const hiss = (seconds, amp) => Float32Array.from({ length: Math.round(seconds * RATE) },
  () => amp * (Math.random() * 2 - 1));
const run = (...parts) => {
  const e = new Endpointer();
  const out = [];
  for (const part of parts) for (let i = 0; i < part.length; i += 1600) {
    for (const a of e.push(part.subarray(i, i + 1600))) out.push({ final: a.final, start: a.start, end: a.end,
      seconds: a.audio.length / RATE });
  }
  return out;
};
const rms = (a) => Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length);
const resampled = (f) => {
  const r = new Resampler(48000);
  const input = Float32Array.from({ length: 48000 }, (_, i) => 0.5 * Math.sin(2 * Math.PI * f * i / 48000));
  const out = [...r.push(input.subarray(0, 20000)), ...r.push(input.subarray(20000))];
  return { length: out.length, rms: rms(Float32Array.from(out.slice(1000))) };
};
process.stdout.write(JSON.stringify({
  silence: run(hiss(5, 0.001)),
  utterance: run(hiss(1, 0.001), tone(2.5, 0.05), hiss(1.5, 0.001)),
  click: run(hiss(1, 0.001), tone(0.1, 0.2), hiss(1.5, 0.001)),
  quiet: run(hiss(1, 0.0008), tone(2, 0.01), hiss(1.5, 0.0008)),
  long: run(hiss(1, 0.001), tone(14, 0.05), hiss(1.5, 0.001)),
  pass: resampled(1000), stop: resampled(12000),
}));
"""


def test_endpointing_and_resampling(tmp_path: Path) -> None:
    script = tmp_path / "run.mjs"
    script.write_text(SCRIPT % (ROOT / "web" / "static" / "e2ee" / "streaming.js").as_uri())
    got = json.loads(subprocess.run(["node", str(script)], capture_output=True, text=True, check=True,
                                    timeout=60).stdout)
    assert got["silence"] == []  # nothing is ever transcribed from quiet
    assert got["click"] == []  # a burst shorter than a syllable is dropped
    finals = [a for a in got["utterance"] if a["final"]]
    partials = [a for a in got["utterance"] if not a["final"]]
    assert len(finals) == 1 and partials  # partials while speaking, one final at the end
    assert abs(finals[0]["end"] - 3.5) < 0.1 and 0.4 <= 1.0 - finals[0]["start"] <= 0.6  # pre-roll kept
    assert all(p["end"] <= finals[0]["end"] + 0.6 for p in partials)
    assert len([a for a in got["quiet"] if a["final"]]) == 1  # a quiet recording (no AGC) is still speech
    long = [a for a in got["long"] if a["final"]]
    assert len(long) == 2 and all(a["seconds"] <= 10.6 for a in long)  # a long turn is cut, nothing lost
    assert 15900 <= got["pass"]["length"] <= 16100
    assert abs(got["pass"]["rms"] - 0.5 / 2 ** 0.5) < 0.02 and got["stop"]["rms"] < 0.02
