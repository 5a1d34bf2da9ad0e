"""What the router consumes (captions) and what it sends to listeners (subtitles)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol


class CaptionLike(Protocol):
    """The attributes used of transcribe.events.Caption (duck-typed: neither module imports the other)."""

    @property
    def segment_id(self) -> Hashable: ...
    @property
    def speaker_id(self) -> Any: ...
    @property
    def speaker_name(self) -> str | None: ...
    @property
    def text(self) -> str: ...
    @property
    def final(self) -> bool: ...
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def language(self) -> str | None: ...


@dataclass(frozen=True)
class Subtitle:
    """A caption translated into one listener language."""

    segment_id: Any
    language: str
    text: str
    source_language: str
    speaker_id: Any = None
    speaker_name: str | None = None
    start: float = 0.0
    end: float = 0.0
    final: bool = True
