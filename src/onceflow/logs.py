"""Logging set-up: text or JSON lines on stderr, with secrets redacted."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from onceflow.errors import printable
from onceflow.redact import redact

_EXTRA_KEYS = ("table", "action", "rows", "run_id", "file", "version")


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set: the traceback goes out redacted.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and known extras."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _EXTRA_KEYS:
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info:
            doc["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL message` lines, the message's control characters escaped
    (`errors.printable`): a message quotes values of the data and libraries' errors,
    which must not drive the terminal (an ESC sequence that clears it, a `\\r\\n` that
    forges a line). A traceback keeps its lines. JSON lines need none: JSON escapes them."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return printable(super().formatException(ei), lines=True)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_text:  # set (redacted) by the filter: format() prints it as it is
            record.exc_text = printable(record.exc_text, lines=True)
        return super().format(record)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the `onceflow` logger once per process."""
    logger = logging.getLogger("onceflow")
    logger.handlers.clear()
    handler = logging.StreamHandler()
    handler.addFilter(_RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
