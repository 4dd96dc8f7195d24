"""Structured logging: one event name plus fields per line, JSON in production.

Callers pass phone numbers through signup.phones.mask; nothing here ever sees a secret.
Every line also carries the id of the request or Celery task it was written in
(`request_id`, `task_id`), taken from context variables set by signup.logcontext.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from typing import Any

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
task_id: ContextVar[str | None] = ContextVar("task_id", default=None)


def _context(fields: dict[str, Any]) -> dict[str, Any]:
    """Add the current request and task ids to a record's fields (a record's own win)."""
    rid, tid = request_id.get(), task_id.get()
    if rid is not None:
        fields.setdefault("request_id", rid)
    if tid is not None:
        fields.setdefault("task_id", tid)
    return fields


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object with its extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        payload.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        _context(payload)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Render a record as `time level logger event key=value ...` for developers."""

    def format(self, record: logging.LogRecord) -> str:
        extra = _context({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        fields = " ".join(f"{k}={v}" for k, v in extra.items())
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name} "
        line += f"{record.getMessage()} {fields}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


SECRET_PATH = re.compile(r"(/webhooks/exotel/)[^/\s?\"']+")


def redact(text: str) -> str:
    """Hide secret tokens that travel in URL paths (Exotel's webhooks)."""
    return SECRET_PATH.sub(r"\1[redacted]", text)


class RedactSecrets(logging.Filter):
    """Redact URL-path tokens from access-log records (gunicorn, Werkzeug)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        elif isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def configure(fmt: str, level: str) -> None:
    """Install one stream handler on the root logger (idempotent across app factories)."""
    root = logging.getLogger()
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    for handler in root.handlers:
        if getattr(handler, "_signup", False):
            handler.setFormatter(formatter)
            break
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler._signup = True  # type: ignore[attr-defined]
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())
    for access in ("gunicorn.access", "werkzeug"):
        access_logger = logging.getLogger(access)
        if not any(isinstance(f, RedactSecrets) for f in access_logger.filters):
            access_logger.addFilter(RedactSecrets())
    # The relay runs every second: Celery's per-task and per-tick lines would drown the rest.
    quiet = (
        "twilio.http_client",
        "urllib3",
        "celery.beat",
        "celery.app.trace",
        "celery.worker.strategy",
    )
    for noisy in quiet:
        logging.getLogger(noisy).setLevel(
            logging.WARNING if level.upper() != "DEBUG" else logging.DEBUG
        )


def event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """Log one structured event."""
    logger.log(level, name, extra=fields)
