"""Streaming captions: per-speaker audio in, Caption events out, one shared Whisper model."""

from transcribe.events import Caption
from transcribe.service import CaptionService
from transcribe.stream import SpeakerStream, StreamConfig

__all__ = ["Caption", "CaptionService", "SpeakerStream", "StreamConfig"]
