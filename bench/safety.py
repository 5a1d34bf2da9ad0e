"""Crisis-alert benchmark: precision, recall and F1 of safety.CrisisDetector on tests/data/safety.

    python -m bench.safety [--part tune|heldout|both] [--phrases-only] [--quiet]

Every row goes through ``CrisisDetector.check(text, language, context=previous_final)`` exactly as the
server should call it on a final caption. Reported per part (tune: rules and the learned layer were
fitted on it; heldout: never tuned on), per language and per category, then the misses and false
alarms, the per-final latency on this machine (p50/p95/max, model already loaded) and the model load
time. The last line is one JSON object with the figures. Target (issue 24): recall >= 0.85 at
precision >= 0.90 for each of en and es on the held-out part.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from safety.detector import CrisisDetector
from safety.train import DATA_DIR, Row, load_rows

TARGET = {"precision": 0.90, "recall": 0.85}


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3),
            "tp": tp, "fp": fp, "fn": fn}


def evaluate(det: CrisisDetector, rows: list[Row]) -> tuple[list[bool], list[float]]:
    alerts, latencies = [], []
    for r in rows:
        start = time.perf_counter()
        match = det.check(r.text, r.language, context=r.context or None)
        latencies.append((time.perf_counter() - start) * 1000)
        alerts.append(match is not None)
    return alerts, latencies


def report_part(name: str, rows: list[Row], alerts: list[bool], quiet: bool) -> dict[str, dict[str, float]]:
    print(f"\n== {name} ({len(rows)} rows) ==")
    print(f"{'':10} {'precision':>9} {'recall':>7} {'F1':>6} {'tp':>4} {'fp':>4} {'fn':>4}")
    figures: dict[str, dict[str, float]] = {}
    for language in ("en", "es", "all"):
        pairs = [(r, a) for r, a in zip(rows, alerts, strict=True) if language in ("all", r.language)]
        tp = sum(a and r.label == 1 for r, a in pairs)
        fp = sum(a and r.label == 0 for r, a in pairs)
        fn = sum((not a) and r.label == 1 for r, a in pairs)
        f = _prf(tp, fp, fn)
        figures[language] = f
        ok = "" if language == "all" else (
            "  ok" if f["precision"] >= TARGET["precision"] and f["recall"] >= TARGET["recall"] else "  BELOW TARGET")
        print(f"{language:10} {f['precision']:9.3f} {f['recall']:7.3f} {f['f1']:6.3f} {tp:4} {fp:4} {fn:4}{ok}")
    print(f"\n{'category':22} {'label':>5} {'rows':>5} {'alerted':>8} {'rate':>6}")
    keys = sorted({(r.label, r.language, r.category) for r in rows}, key=lambda k: (-k[0], k[2], k[1]))
    for label, language, category in keys:
        key = (label, language, category)
        sel = [a for r, a in zip(rows, alerts, strict=True) if (r.label, r.language, r.category) == key]
        rate = sum(sel) / len(sel)
        kind = "recall" if label else "false alarm"
        print(f"{language + ' ' + category:22} {label:5} {len(sel):5} {sum(sel):8} {rate:6.2f}  {kind}")
    if not quiet:
        misses = [r for r, a in zip(rows, alerts, strict=True) if r.label == 1 and not a]
        false = [r for r, a in zip(rows, alerts, strict=True) if r.label == 0 and a]
        print(f"\nmisses ({len(misses)}):")
        for r in misses:
            print(f"  [{r.language} {r.category}] {r.text}" + (f"   (after: {r.context})" if r.context else ""))
        print(f"false alarms ({len(false)}):")
        for r in false:
            print(f"  [{r.language} {r.category}] {r.text}" + (f"   (after: {r.context})" if r.context else ""))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("tune", "heldout", "both"), default="both")
    parser.add_argument("--phrases-only", action="store_true", help="phrase layer only (no learned layer)")
    parser.add_argument("--quiet", action="store_true", help="do not list misses and false alarms")
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    args = parser.parse_args()

    start = time.perf_counter()
    det = CrisisDetector.from_config(learned=not args.phrases_only)
    build_ms = (time.perf_counter() - start) * 1000
    det.warm_up()
    print(f"detector: phrase sets {build_ms:.0f} ms; learned layer {'on' if det.learned else 'off'}"
          + (f", model loaded in {det.model_load_seconds * 1000:.0f} ms" if det.model_load_seconds else ""))

    out: dict[str, object] = {}
    latencies: list[float] = []
    parts = ("tune", "heldout") if args.part == "both" else (args.part,)
    for part in parts:
        rows = load_rows(args.data / f"{part}.tsv")
        alerts, lat = evaluate(det, rows)
        latencies += lat
        label = "tune (rules and classifier fitted here)" if part == "tune" else "heldout (never tuned on)"
        out[part] = report_part(label, rows, alerts, args.quiet)
    lat = np.array(latencies)
    p50, p95, pmax = (round(float(v), 2) for v in (np.percentile(lat, 50), np.percentile(lat, 95), lat.max()))
    load = os.getloadavg()[0]
    print(f"\nlatency per final ({len(lat)} finals, this machine, {os.cpu_count()} cores, load average {load:.1f}):"
          f" p50 {p50} ms  p95 {p95} ms  max {pmax} ms  (budget 20 ms)")
    out.update({
        "latency_ms_p50": p50, "latency_ms_p95": p95, "latency_ms_max": pmax,
        "model_load_ms": round((det.model_load_seconds or 0) * 1000, 1), "learned": det.learned,
        "load_average": round(load, 1),
    })
    print(json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main()
