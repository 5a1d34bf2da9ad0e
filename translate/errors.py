"""Errors the translation layer reports to its callers (and, through them, to listeners)."""

from __future__ import annotations


class TranslationError(Exception):
    """Base class for translation failures."""


class NoTranslationModel(TranslationError, LookupError):
    """No installed Argos package (direct or pivoting) translates ``source`` into ``target``."""

    def __init__(self, source: str | None, target: str, detail: str = "") -> None:
        self.source = source
        self.target = target
        src = source or "*"
        message = f"no model for {src}->{target}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class TranslationBusy(TranslationError):
    """Too many translations are queued; the caller should drop this one rather than fall behind."""
