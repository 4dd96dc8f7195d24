"""Structured logging: one event name plus fields per line, JSON in production.

Callers pass phone numbers through signup.phones.mask. Whatever a logger writes anyway
(gunicorn's access and error lines, Werkzeug's, Flask's, Celery's, a library's exception) is
masked in one place before it is written: the Redact filter on every handler (see configure).
Every line also carries the id of the request or Celery task it was written in
(`request_id`, `task_id`), taken from context variables set by signup.logcontext.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import unquote, urlsplit

from celery import signals

from signup import greenlets
from signup.phones import LOG_DIGIT, PLAIN_SEPARATOR, SEPARATOR
from signup.phones import percent_encoded as _percent

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "_redacted",
    "_signup",
}

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
task_id: ContextVar[str | None] = ContextVar("task_id", default=None)


def _context(fields: dict[str, Any]) -> dict[str, Any]:
    """Add the current request and task ids to a record's fields (a record's own win)."""
    rid, tid = request_id.get(), task_id.get()
    if rid is not None:
        fields.setdefault("request_id", redact(rid))  # a caller's X-Request-Id could be anything
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
        exc = _exception_text(self, record)
        if exc:
            payload["exc"] = exc
        if record.stack_info:
            payload["stack"] = record.stack_info
        return json.dumps(payload, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Render a record as `time level logger event key=value ...` for developers."""

    def format(self, record: logging.LogRecord) -> str:
        extra = _context({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        fields = " ".join(f"{k}={v}" for k, v in extra.items())
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name} "
        line += f"{record.getMessage()} {fields}".rstrip()
        exc = _exception_text(self, record)
        if exc:
            line += "\n" + exc
        if record.stack_info:
            line += "\n" + record.stack_info
        return line


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    """The record's traceback: as redaction left it, else rendered now."""
    if record.exc_text:
        return record.exc_text
    return formatter.formatException(record.exc_info) if record.exc_info else None


# What may not outlive a request in a log line, whichever logger writes it (see configure):
# - query strings: their values go (Exotel's GETs carry the caller, admin searches a number);
QUERY_VALUE = re.compile(r"(?<=[?&])([^=&\s\"'#]+)=[^&\s\"'#]*")
# - the token segment of Exotel's webhook paths;
SECRET_PATH = re.compile(r"(/webhooks/exotel/)[^/\s?\"']+")
# - passwords in URLs (scheme://user:password@host, and a malformed scheme//:password@host);
URL_PASSWORD = re.compile(r"(//[^:/@\s\"']*:)[^@\s\"']+@")
# - any run of 10 or more digits (a mobile without its 0 or +91) that may be split by spaces,
#   dashes, underscores, dots, slashes, brackets and "+" (a URL's space), raw or percent-encoded,
#   with an optional leading "+" or "%2B": a digit in any script (Devanagari too), raw, as a
#   percent-escape, or as gunicorn writes UTF-8 it read as Latin-1 (signup.phones.LOG_DIGIT).
#   A run glued to letters (an id), followed by ":" (a time of day), or an IPv4 address is left.


def _phone(digit: str, separator: str) -> re.Pattern[str]:
    """The number mask over these forms of a digit and of a separator."""
    return re.compile(
        r"(?<![\w%])(?!\d{1,3}(?:\.\d{1,3}){3}(?!\d))(?:\+|%2[bB])?\(?"
        rf"{digit}(?:{separator}{{0,3}}{digit}){{9,}}"
        r"(?![\w:])(?!-[0-9a-fA-F]*[a-fA-F])"  # nor a UUID's first groups (Celery's task ids)
    )


PHONE = _phone(LOG_DIGIT, SEPARATOR)
# The same over raw text only, for the many lines with no "%" nor Latin-1 read UTF-8 (faster).
PLAIN_PHONE = _phone(r"\d", PLAIN_SEPARATOR)
_DIGIT = re.compile(rf"({SEPARATOR}|%2[bB])|{LOG_DIGIT}")  # digits masked, separators kept
_ESCAPED = ("%", "\u00e0")  # a line with one of these may hold an escaped or misread digit
# - the values of configured secrets (tokens, keys, passwords in URLs), wherever they appear.
_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None
_escaped_secret_pattern: re.Pattern[str] | None = None  # any character percent-encoded
MIN_SECRET_LENGTH = 8  # shorter values would mask ordinary words; no real secret is this short


def register_secrets(values: Iterable[str | None]) -> None:
    """Mask these values (and their URL-encoded forms) in every later log line."""
    global _secret_pattern, _escaped_secret_pattern
    fresh = {v for v in values if v and len(v) >= MIN_SECRET_LENGTH} - _secrets
    if not fresh:
        return
    _secrets.update(fresh)
    forms = sorted(_secrets, key=len, reverse=True)
    _secret_pattern = re.compile("|".join(map(re.escape, forms)))
    _escaped_secret_pattern = re.compile("|".join(map(_any_escaping, forms)))


def _any_escaping(secret: str) -> str:
    """A pattern for the secret with any of its characters raw or percent-encoded."""
    return "".join(
        f"(?:{re.escape(ch)}|{_percent(ch)})" if ch.isascii() else re.escape(ch) for ch in secret
    )


SECRET_SETTINGS = (
    "SECRET_KEY",
    "SUPPRESSION_KEY",
    "TWILIO_AUTH_TOKEN",
    "EXOTEL_API_KEY",
    "EXOTEL_API_TOKEN",
    "EXOTEL_WEBHOOK_TOKEN",
    "METRICS_TOKEN",
)
URL_SETTINGS = (
    "SQLALCHEMY_DATABASE_URI",
    "DATABASE_REPLICA_URL",
    "REDIS_URL",
    "BROKER_URL",
    "RATELIMIT_STORAGE_URI",
)


def configured_secrets(config: Mapping[str, Any]) -> list[str | None]:
    """The settings' secret values: tokens and keys, and the passwords in their URLs."""
    values: list[str | None] = [config.get(name) for name in SECRET_SETTINGS]
    for name in URL_SETTINGS:
        url = config.get(name)
        if url:
            try:
                values.append(unquote(urlsplit(str(url)).password or ""))
            except ValueError:  # not a URL: nothing to take from it
                continue
    return values


def redact(text: str) -> str:
    """Text with query values, path tokens, URL passwords, secrets and phone numbers masked."""
    if "=" in text:  # the cheap tests spare most lines a regex scan (an access line: ~15 µs)
        text = QUERY_VALUE.sub(r"\1=[redacted]", text)
    if "/webhooks/" in text:
        text = SECRET_PATH.sub(r"\1[redacted]", text)
    if "//" in text:
        text = hide_url_password(text)
    escaped = any(mark in text for mark in _ESCAPED)
    if _secret_pattern is not None and _escaped_secret_pattern is not None:
        text = (_escaped_secret_pattern if "%" in text else _secret_pattern).sub("[redacted]", text)
    return (PHONE if escaped else PLAIN_PHONE).sub(_mask_digits, text)


def hide_url_password(text: str) -> str:
    """Text with the password of every URL-like `//user:password@` in it masked."""
    return URL_PASSWORD.sub(r"\1[redacted]@", text)


def _mask_digits(found: re.Match[str]) -> str:
    return _DIGIT.sub(lambda d: d.group(1) or "X", found.group())


def _redact_value(value: Any) -> Any:
    """A field's value with the same masking: strings, long numbers and containers alike."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        text = str(value)
        return value if redact(text) == text else redact(text)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v) for v in value]
    return redact(str(value))


_EXCEPTIONS = logging.Formatter()


def redact_record(record: logging.LogRecord) -> None:
    """Mask a record in place: message and arguments, extra fields, traceback and stack."""
    if getattr(record, "_redacted", False):
        return
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep what can be shown
        message = f"{record.msg} {record.args}"
    record.msg, record.args = redact(message), None
    for key, value in list(record.__dict__.items()):
        if key not in _RESERVED:
            record.__dict__[key] = _redact_value(value)
    if record.exc_info:
        record.exc_text = record.exc_text or _EXCEPTIONS.formatException(record.exc_info)
        record.exc_info = None  # no formatter may render the raw exception again
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._redacted = True


class Redact(logging.Filter):
    """Mask every record a handler emits (see redact_record); never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


REDACT = Redact()
# Loggers that keep handlers of their own, taken over so that their lines pass our handler:
# gunicorn's error log (which prints a failing request's URI) and its access log.
ROUTED = ("gunicorn.error", "gunicorn.access")


def route_all_loggers() -> None:
    """Make every logger's output pass the redaction: gunicorn's through the root handler,
    any other handler (Celery's, a library's) with the filter added."""
    for name in ROUTED:
        routed = logging.getLogger(name)
        for handler in list(routed.handlers):
            routed.removeHandler(handler)
        routed.propagate = True
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if REDACT not in handler.filters:
                handler.addFilter(REDACT)


def configure(fmt: str, level: str, secrets: Iterable[str | None] = ()) -> None:
    """Install one redacting stream handler on the root logger, route every logger through
    redaction, and mask these secrets (idempotent across app factories)."""
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
    register_secrets(secrets)
    route_all_loggers()
    greenlets.route_hub_errors()  # gevent prints uncaught greenlet errors to stderr itself
    # Celery sets up its own loggers when a worker starts, after the app was built.
    signals.after_setup_logger.connect(_reroute, weak=False, dispatch_uid="signup.logs.root")
    signals.after_setup_task_logger.connect(_reroute, weak=False, dispatch_uid="signup.logs.task")
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


def _reroute(**_: Any) -> None:
    route_all_loggers()


def event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """Log one structured event."""
    logger.log(level, name, extra=fields)
