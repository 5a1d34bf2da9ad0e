"""The caption event handed to the room: one per partial update, final, or translation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True, slots=True)
class Caption:
    """A caption for one segment of one speaker's speech.

    Partials with the same ``segment_id`` replace each other; the ``final`` one (task "transcribe") is sent
    once and never changes. A ``task == "translate"`` event carries Whisper's English translation of the
    same segment (same ``segment_id``, ``language == "en"``, always final). ``start``/``end`` are room time
    in seconds, as passed to ``SpeakerStream.push``. A final with ``skipped`` > 0 ends with that much
    speech uncaptioned (its ``end``); its text, possibly empty, is what had been shown of it.
    """

    segment_id: str
    speaker_id: str
    speaker_name: str
    text: str
    final: bool
    start: float
    end: float
    language: str
    task: Task = "transcribe"
    # Seconds of speech at the end of this (final) segment that have no caption: decoding could not keep up
    # and its audio was dropped rather than captioned late. 0 for an ordinary caption.
    skipped: float = 0.0
