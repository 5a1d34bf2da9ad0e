"""Subtitles: caption translation over installed Argos packages, fanned out to listeners."""

from translate.errors import NoTranslationModel, TranslationBusy, TranslationError
from translate.router import SubtitleChoice, SubtitleRouter
from translate.service import TranslationResult, TranslationService
from translate.subtitle import CaptionLike, Subtitle

__all__ = [
    "CaptionLike",
    "NoTranslationModel",
    "Subtitle",
    "SubtitleChoice",
    "SubtitleRouter",
    "TranslationBusy",
    "TranslationError",
    "TranslationResult",
    "TranslationService",
]
