"""Crisis-language detection for facilitator-only safety alerts (see safety.detector)."""

from safety.detector import (
    BUILTIN_CATEGORIES,
    PHRASES_DIR,
    CrisisDetector,
    Match,
    SafetyConfigError,
    available_languages,
    normalize,
)

__all__ = [
    "BUILTIN_CATEGORIES",
    "PHRASES_DIR",
    "CrisisDetector",
    "Match",
    "SafetyConfigError",
    "available_languages",
    "normalize",
]
