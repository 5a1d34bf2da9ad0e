"""Hallucination gate: decide whether a decoded segment is real speech, pure and model-free.

VAD already keeps silence away from Whisper; these rules catch what slips through (noise that looks like
speech to Silero, breaths, the tail of an utterance). Whisper's classic silence hallucinations are only
blocked when the audio is weak evidence, because people in a support group really do say "thank you".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from transcribe.commit import Word

# Normalised (casefolded, punctuation stripped) texts Whisper produces on silence or noise.
BLOCKLIST = frozenset(
    {
        "thank you",
        "thank you very much",
        "thank you so much",
        "thanks",
        "thank you for watching",
        "thanks for watching",
        "thank you for watching and see you next time",
        "thank you so much for watching",
        "please subscribe",
        "subscribe to my channel",
        "like and subscribe",
        "see you next time",
        "bye",
        "bye bye",
        "you",
        "okay",
        "oh",
        "music",
        "applause",
        "silence",
        "laughter",
        "gracias",
        "gracias por ver",
        "gracias por ver el video",
        "merci",
        "danke",
        "obrigado",
        "grazie",
    }
)
# Credit lines from the subtitle files Whisper was trained on ("Subtitles by the Amara.org community").
BLOCKED_PREFIXES = (
    "subtitles by",
    "subtitle by",
    "captions by",
    "captioned by",
    "transcribed by",
    "transcription by",
    "translated by",
    "subtítulos",
    "subtitulado por",
    "sous-titr",
    "untertitel",
    "sottotitoli",
    "amaraorg",
    "amara org",
)
_NON_SPEECH = re.compile(r"^\W*[\[(♪*].*[\])♪*]\W*$|^[\W_]*$")


@dataclass(frozen=True)
class GateConfig:
    max_compression_ratio: float = 2.4  # repetition loops compress well
    no_speech_prob: float = 0.6  # Whisper's rule: silent if no_speech_prob high AND avg_logprob low
    silent_logprob: float = -1.0
    min_avg_logprob: float = -1.6  # whatever the no-speech score, this is a guess, not a transcript
    # Weak evidence: thresholds under which blocklisted phrases are dropped.
    weak_no_speech_prob: float = 0.25
    weak_avg_logprob: float = -0.7
    weak_vad_prob: float = 0.75
    # Audio that stops just after the last word: Whisper may append a word of its own there ("Okay.",
    # "Ready?", "3.", "See you."), and gives it almost no probability (0.04-0.06 measured on two_cities.wav;
    # the real words before it 0.8-1.0).
    min_trailing_word_probability: float = 0.1


@dataclass(frozen=True)
class SegmentScore:
    text: str
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float


def normalize_text(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(ch if ch.isalnum() or ch.isspace() else " " for ch in folded)
    return " ".join(kept.split())


def is_blocklisted(text: str) -> bool:
    norm = normalize_text(text)
    squashed = norm.replace(" ", "")
    return norm in BLOCKLIST or any(
        norm.startswith(p) or squashed.startswith(p.replace(" ", "")) for p in BLOCKED_PREFIXES
    )


def rejection_reason(seg: SegmentScore, vad_mean_prob: float, config: GateConfig | None = None) -> str | None:
    """Why this segment should not become a caption, or None to keep it.

    ``vad_mean_prob``: mean Silero speech probability over the utterance's audio (1.0 when unknown).
    """
    cfg = config or GateConfig()
    if _NON_SPEECH.match(seg.text.strip()):
        return "non-speech marker"
    if seg.compression_ratio > cfg.max_compression_ratio:
        return "repetitive (compression ratio)"
    if seg.no_speech_prob > cfg.no_speech_prob and seg.avg_logprob < cfg.silent_logprob:
        return "no speech (no_speech_prob with low avg_logprob)"
    if seg.no_speech_prob > cfg.no_speech_prob and vad_mean_prob < cfg.weak_vad_prob:
        return "no speech (no_speech_prob, and VAD barely heard speech)"
    if seg.avg_logprob < cfg.min_avg_logprob:
        return "low confidence (avg_logprob)"
    weak = (
        seg.no_speech_prob > cfg.weak_no_speech_prob
        or seg.avg_logprob < cfg.weak_avg_logprob
        or vad_mean_prob < cfg.weak_vad_prob
    )
    if weak and is_blocklisted(seg.text):
        return "known silence hallucination on weak audio"
    return None


def without_trailing_guesses(words: Sequence[Word], config: GateConfig | None = None) -> list[Word]:
    """The words without the run of near-zero-probability words at their end (Whisper's own additions
    where the audio stops)."""
    cfg = config or GateConfig()
    end = len(words)
    while end and words[end - 1].probability < cfg.min_trailing_word_probability:
        end -= 1
    return list(words[:end])
