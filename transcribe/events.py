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
    in seconds, as passed to ``SpeakerStream.push``.
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
