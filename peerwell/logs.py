"""Logging for a running server: quiet by default, JSON for log pipelines, never anything a person said.

peerwell's own modules log at the configured level (INFO by default); libraries (aiortc, aioice, aiohttp,
faster-whisper, argostranslate, stanza, ...) only at WARNING and above, since their INFO output is per
packet, per ICE check or per decode. aiohttp's access log is off: it would record every static file.

Privacy: our log calls carry room slugs and participant ids (random, per session), never display names,
captions, subtitles or chat. Extra fields given as ``logger.info(..., extra={"room": ..., "participant": ...})``
become JSON keys. tests/test_observability.py checks a whole session's log for names, chat and captions.
"""

from __future__ import annotations

import json
import logging
import sys
import time

OUR_LOGGERS = ("peerwell", "sfu", "transcribe", "translate", "models", "safety", "__main__")
CONTEXT_FIELDS = ("room", "participant", "event")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """One line per record; the facilitator link of an ad-hoc room framed so it stands out."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if getattr(record, "event", None) == "facilitator-link":
            rule = "=" * 78
            return f"{rule}\n{line}\n{rule}"
        return line


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # libraries
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.captureWarnings(True)
