"""Logging set-up: text or JSON lines on stderr, with secrets redacted."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

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


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the `onceflow` logger once per process."""
    logger = logging.getLogger("onceflow")
    logger.handlers.clear()
    handler = logging.StreamHandler()
    handler.addFilter(_RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
        )
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
