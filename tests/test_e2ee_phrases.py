"""The crisis detector's phrase layer in the facilitators' browsers (web/static/e2ee/phrases.js, for end-to-end
encrypted rooms) decides as the server's detector does without its learned layer, line by line, on the safety
test sets; its rules are data exported from the same compiled phrase sets (safety/export.py)."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

from safety.detector import CrisisDetector
from safety.export import phrase_rules

ROOT = Path(__file__).resolve().parent.parent
RUNNER = """
import { PhraseMatcher } from "%s";
import { readFileSync } from "node:fs";
const matcher = new PhraseMatcher(JSON.parse(readFileSync(process.argv[2], "utf8")));
const lines = JSON.parse(readFileSync(process.argv[3], "utf8"));
const out = lines.map(([text, language, context]) => {
  const m = matcher.decide(text, language, context || null);
  return m ? [m.category, m.layer, m.triggers[0]] : null;
});
process.stdout.write(JSON.stringify(out));
"""


def corpus() -> list[tuple[str, str, str]]:
    lines: list[tuple[str, str, str]] = []
    for name in ("tune.tsv", "heldout.tsv"):
        with (ROOT / "tests" / "data" / "safety" / name).open() as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                lines.append((row["text"], row["language"], row["context"]))
    # Chat spellings, numbers, negation and accents the tables must carry over.
    lines += [("I'm NOT going to kill myself", "en", ""), ("kms", "en", ""), ("i took twenty five pills", "en", ""),
              ("No quiero vivir más", "es", ""), ("quiero matarme, ya no aguanto", "es", ""),
              ("i'm going to do it tonight", "en", "i can't keep going"), ("this traffic is killing me", "en", ""),
              ("my self harm is back", "en", ""), ("i dont i dont want to live anymore", "en", "")]
    return lines


def test_browser_phrase_layer_matches_the_server(tmp_path: Path) -> None:
    rules = tmp_path / "phrases.json"
    rules.write_text(json.dumps(phrase_rules()))
    lines = corpus()
    data = tmp_path / "lines.json"
    data.write_text(json.dumps(lines))
    script = tmp_path / "run.mjs"
    script.write_text(RUNNER % (ROOT / "web" / "static" / "e2ee" / "phrases.js").as_uri())
    result = subprocess.run(["node", str(script), str(rules), str(data)], capture_output=True, text=True, check=True,
                            timeout=120)
    browser = json.loads(result.stdout)
    detector = CrisisDetector.from_config(learned=False)
    expected = []
    for text, language, context in lines:
        match = detector.check(text, language, context or None)
        expected.append(None if match is None else [match.category, match.layer, match.triggers[0]])
    differences = [(line[0], want, got)
                   for line, want, got in zip(lines, expected, browser, strict=True) if want != got]
    assert not differences, differences[:10]
    assert sum(1 for e in expected if e) > 50  # the corpus exercises the rules, not only clean lines
