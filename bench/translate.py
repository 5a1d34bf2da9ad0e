"""Caption translation benchmark: ``python -m bench.translate``.

No real Argos model can be downloaded here, so we build one with the dimensions of a real Argos package
(6+6 layer Transformer, d_model 512, FFN 2048, 32k vocabulary, int8: model.bin ~95 MB) and random
weights, install it for three target languages, and time the production path (TranslationService and
SubtitleRouter). Random weights never emit end-of-sentence, so each output runs to its length cap; we
cap it at 1.2x the input tokens, about what a real translation produces, and also show the service's
default safety cap (1.5x + 8) as a worst case. Captions are 5-25 words from support-group speech; the
test SentencePiece model gives ~1.3 tokens per word like real Argos vocabularies.

The table goes to stdout; the last line is one JSON object with latency_p50_ms, latency_p95_ms,
captions_per_s_1_target and captions_per_s_3_targets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.support builds the package

from models.argos import install_package_file  # noqa: E402
from tests.support.argos_package import REAL_SIZE, TRAINING_LINES, build_argos_package  # noqa: E402
from transcribe.events import Caption  # noqa: E402
from translate.engine import DecodeOptions  # noqa: E402
from translate.router import SubtitleRouter  # noqa: E402
from translate.service import TranslationService  # noqa: E402

TARGETS = ("es", "fr", "de")
LENGTHS = (5, 10, 15, 20, 25)
REALISTIC = DecodeOptions(length_ratio=1.2, length_margin=2)
TARGET_P50_MS = 100.0


def make_captions(words: int, count: int, rng: random.Random, *, one_sentence: bool = False) -> list[str]:
    """Windows of ``words`` consecutive words of support-group speech.

    Kept as spoken (default), a window carries its punctuation, so a long caption is usually two or three
    sentences, as Whisper writes them. ``one_sentence`` strips inner punctuation: the worst case, where
    the whole caption must be decoded as one sequence.
    """
    vocab = " ".join(TRAINING_LINES).split()
    out = []
    for _ in range(count):
        start = rng.randrange(len(vocab))
        picked = [vocab[(start + i) % len(vocab)] for i in range(words)]
        if one_sentence:
            picked = [w.rstrip(".?,!") for w in picked]
        text = " ".join(picked)
        out.append(text[0].upper() + text[1:] + ("" if text[-1] in ".?!" else "."))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def install_targets(work: Path) -> Path:
    """Build one real-size en->es package and install it as en->es, en->fr and en->de."""
    archive = build_argos_package(work / "build", "en", TARGETS[0], REAL_SIZE)
    packages = work / "packages"
    first = install_package_file(archive, dest=packages)
    for code in TARGETS[1:]:
        clone = packages / first.path.name.replace(f"_{TARGETS[0]}-", f"_{code}-")
        shutil.copytree(first.path, clone)
        meta = json.loads((clone / "metadata.json").read_text())
        meta.update(to_code=code, to_name=code)
        (clone / "metadata.json").write_text(json.dumps(meta))
    return packages


def measure_latency(service: TranslationService, captions: dict[int, list[str]]) -> dict[int, list[float]]:
    timings: dict[int, list[float]] = {}
    for words, texts in captions.items():
        for text in texts:
            t0 = time.perf_counter()
            service.translate_sync(text, "en", "es", use_cache=False)
            timings.setdefault(words, []).append((time.perf_counter() - t0) * 1000)
    return timings


def latency_table(title: str, timings: dict[int, list[float]]) -> tuple[float, float]:
    print(title)
    print(f"  {'words':>5}  {'p50 ms':>7}  {'p95 ms':>7}")
    for words, values in timings.items():
        print(f"  {words:>5}  {percentile(values, 0.5):7.1f}  {percentile(values, 0.95):7.1f}")
    everything = [v for values in timings.values() for v in values]
    p50, p95 = percentile(everything, 0.5), percentile(everything, 0.95)
    verdict = "met" if p50 <= TARGET_P50_MS else "NOT met"
    print(f"  {'all':>5}  {p50:7.1f}  {p95:7.1f}   (target p50 <= {TARGET_P50_MS:.0f} ms: {verdict})\n")
    return p50, p95


async def measure_throughput(service: TranslationService, texts: list[str], targets: tuple[str, ...]) -> float:
    sent = 0

    def send(listener_id: str, subtitle: object) -> None:
        nonlocal sent
        sent += 1

    router = SubtitleRouter(service, send)
    for i, code in enumerate(targets):
        router.set_choice(f"listener-{i}", code)
    await asyncio.gather(*(service.preload("en", code) for code in targets))
    t0 = time.perf_counter()
    for n, text in enumerate(texts):
        await router.on_final_caption(Caption(f"s{n}", "p", "Sam", text, True, n, n + 1.0, "en"))
    elapsed = time.perf_counter() - t0
    assert sent == len(texts) * len(targets), (sent, len(texts), targets)
    return len(texts) / elapsed


def p50_at(packages: Path, texts: list[str], decode: DecodeOptions) -> float:
    service = TranslationService([packages], cache_size=0, decode=decode)
    try:
        service.translate_sync("Warm up.", "en", "es")
        return percentile(measure_latency(service, {0: texts})[0], 0.5)
    finally:
        service.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=12, help="captions per length")
    parser.add_argument("--stream", type=int, default=24, help="captions in each throughput run")
    args = parser.parse_args(argv)

    rng = random.Random(7)
    spoken = {n: make_captions(n, args.samples, rng) for n in LENGTHS}
    one_sentence = {n: make_captions(n, args.samples, rng, one_sentence=True) for n in LENGTHS}
    stream = [make_captions(rng.choice(LENGTHS), 1, rng)[0] for _ in range(args.stream)]
    with tempfile.TemporaryDirectory(prefix="peerwell-bench-translate-") as tmp:
        t0 = time.perf_counter()
        packages = install_targets(Path(tmp))
        model_mb = (next(packages.glob("*/model/model.bin")).stat().st_size) / 1e6
        print(
            f"built + installed a random-weight Argos package in {time.perf_counter() - t0:.1f} s: "
            f"model.bin {model_mb:.0f} MB (6+6 layers, d_model 512, FFN 2048, 32k vocab, int8); "
            f"{os.cpu_count()} CPU cores"
        )

        service = TranslationService([packages], cache_size=0, decode=REALISTIC)
        tokenizer = service.catalog.pairs[("en", "es")].package.tokenizer
        tokens_per_word = statistics.mean(len(tokenizer.encode(t)) / n for n, ts in spoken.items() for t in ts)
        t0 = time.perf_counter()
        service.translate_sync("Warm up.", "en", "es")
        print(
            f"model load + first caption {(time.perf_counter() - t0) * 1000:.0f} ms; "
            f"{tokens_per_word:.2f} tokens/word; beam {REALISTIC.beam_size}; output capped at 1.2x input "
            "tokens (random weights never stop early; a real translation is about that long)\n"
        )

        p50, p95 = latency_table(
            "per-caption latency en->es, captions as spoken (sentences batched)", measure_latency(service, spoken)
        )
        latency_table(
            "worst case: each caption one long sentence (no punctuation inside)", measure_latency(service, one_sentence)
        )

        texts = one_sentence[15]
        rows = {
            "beam 1": p50_at(packages, texts, REALISTIC),
            "beam 2": p50_at(packages, texts, replace(REALISTIC, beam_size=2)),
            "beam 4 (Argos' default)": p50_at(packages, texts, replace(REALISTIC, beam_size=4)),
            "beam 1, service safety cap 1.5x+8 tokens": p50_at(packages, texts, DecodeOptions()),
        }
        print("one-sentence 15-word captions, p50: " + " | ".join(f"{k} {v:.0f} ms" for k, v in rows.items()))
        print()

        one = asyncio.run(measure_throughput(service, stream, TARGETS[:1]))
        three = asyncio.run(measure_throughput(service, stream, TARGETS))
        service.close()
        two_workers = TranslationService([packages], cache_size=0, decode=REALISTIC, workers=2)
        three_parallel = asyncio.run(measure_throughput(two_workers, stream, TARGETS))
        two_workers.close()
        print("throughput through SubtitleRouter (final captions as spoken, 5-25 words, no cache hits)")
        print(f"  1 target language:   {one:5.2f} captions/s")
        print(f"  3 target languages:  {three:5.2f} captions/s ({three * 3:.1f} translations/s)")
        print(f"  3 targets, 2 workers: {three_parallel:5.2f} captions/s (default is 1 worker)\n")

    print(
        json.dumps(
            {
                "latency_p50_ms": round(p50, 1),
                "latency_p95_ms": round(p95, 1),
                "captions_per_s_1_target": round(one, 2),
                "captions_per_s_3_targets": round(three, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
