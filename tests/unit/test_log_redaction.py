"""signup.logs masks in one place: every logger, every part of a record, every number form."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import unicodedata
from collections.abc import Iterator
from urllib.parse import quote, unquote

import pytest
from celery import signals

from signup import logs

TEN = "9876543210"
NUMBER_FORMS = [
    f"+91{TEN}",
    f"91{TEN}",
    f"0{TEN}",
    TEN,
    "98765 43210",
    "+91 98765 43210",
    "+91-98765-43210",
    "(+91) 98765 43210",
    "098765 43210",
    "+91 9876 543 210",
    f"%2B91{TEN}",
    "%2B91%2098765%2043210",
    "+91+98765+43210",
    quote("+91 98765 43210"),
]


def _devanagari(text: str) -> str:
    return text.translate(str.maketrans("0123456789", "०१२३४५६७८९"))


def _every_escape(text: str) -> str:
    return "".join(f"%{byte:02X}" for byte in text.encode())


# The review's forms, and the kind: every separator, raw and encoded, every digit script, every
# escaping (what an access line, a Referer or a User-Agent may hold).
SEPARATED = [f"98765{sep}43210" for sep in (" ", "-", "_", ".", "/", "(", ")", "+")]
SEPARATED += [f"98765{sep}43210" for sep in ("\u2009", "\u00a0", "\u202f", "\u3000")]
SEPARATED += [f"987{quote(sep)}654{quote(sep)}3210" for sep in ("-", "_", ".", "/", "\u2009")]
NUMBER_FORMS += SEPARATED
NUMBER_FORMS += [_devanagari(form) for form in SEPARATED[:6]]
NUMBER_FORMS += [_every_escape(TEN), _every_escape(_devanagari(TEN)), quote(_devanagari(TEN))]
NUMBER_FORMS += [_devanagari(TEN).encode().decode("latin-1")]  # gunicorn's reading of a header
NUMBER_FORMS += [f"+91{quote(chr(0x2009))}98765{quote(chr(0x2009))}43210"]
TOKEN = "exotel-webhook-token-1234abcd"
# Every logger that writes in a deployment: gunicorn's two (own handlers, not propagating),
# Werkzeug's, Flask's app logger, Celery's, ours, any library's, and the root itself.
LOGGERS = [
    "gunicorn.error",
    "gunicorn.access",
    "werkzeug",
    "signup",
    "signup.calls.fastpath",
    "celery.worker",
    "celery.task",
    "sqlalchemy.engine",
    "some.library",
    "",
]


def digits(text: str) -> str:
    """The digits of a text in any script, read after percent-decoding (and Latin-1 undone)."""
    plain = unquote(text)
    with contextlib.suppress(UnicodeError):
        plain = plain.encode("latin-1").decode()
    return "".join(str(unicodedata.digit(ch)) for ch in plain if ch.isdigit())


def shows_the_number(text: str) -> bool:
    """True when any form of TEN (its digits in order, whatever separates them) remains."""
    return TEN in digits(text) or any(form in text for form in NUMBER_FORMS)


@pytest.fixture(params=["json", "text"])
def output(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """What the root handler writes, in each format, after configure() as create_app calls it."""
    logs.configure(request.param, "INFO", [TOKEN])
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_signup", False))
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)  # type: ignore[arg-type]
    logs.configure("json", "INFO")


@pytest.mark.parametrize("form", NUMBER_FORMS)
def test_every_form_of_a_number_is_masked(form: str) -> None:
    line = logs.redact(f"GET /admin/volunteers/search {form} from {form}, again:{form}.")
    assert not shows_the_number(line), line


@pytest.mark.parametrize(
    "kept",
    [
        "2026-12-04 16:25:09+05:30",
        "2026-12-04T16:25:09",
        "remote=192.168.100.200",
        "task 1f2e3d4c-1234-4abc-8def-1234567890ab",
        "task 12345678-1234-4abc-8def-1234567890ab",
        "CA1234567890abcdef1234567890abcdef",
        "duration_ms=41 calls=123456789",
        "Listening at: http://127.0.0.1:18733 (3843)",
    ],
)
def test_times_addresses_and_ids_are_kept(kept: str) -> None:
    assert logs.redact(kept) == kept


@pytest.mark.parametrize(
    "text",
    [
        f"GET /webhooks/exotel/{TOKEN}/sms?From=abc HTTP/1.1",
        f"POST /webhooks/exotel/{TOKEN}/sms-status",
        "postgresql+psycopg://signup:a-db-password@db/signup",
        "redis.exceptions: rediss//:a-db-password@127.0.0.1:6379/11 is not a URL",
        "File x, line 3, in connect\n  url='amqp://u:a-db-password@h//'",
        f"the token is {TOKEN}",
        f"the token is {quote(TOKEN + '/+')}",
        f"GET /elsewhere/{quote(TOKEN, safe='').replace('-', '%2D')}/x HTTP/1.1",
        f"GET /elsewhere/{_every_escape(TOKEN)} HTTP/1.1",
        f"GET /elsewhere/{_every_escape(TOKEN).lower()} HTTP/1.1",
        "GET /admin/volunteers?q=Asha+Devi&page=2 HTTP/1.1",
    ],
)
def test_query_values_path_tokens_and_secrets_are_masked(text: str) -> None:
    logs.register_secrets([TOKEN, TOKEN + "/+"])
    line = logs.redact(text)
    for secret in (TOKEN, "a-db-password", "Asha", "page=2", quote(TOKEN + "/+")):
        assert secret not in unquote(line), line


@pytest.mark.parametrize("name", LOGGERS)
def test_every_logger_and_every_part_of_a_record_is_masked(output: io.StringIO, name: str) -> None:
    """Message, %-arguments, extra fields (also nested and numeric), traceback and stack."""
    logger = logging.getLogger(name)
    try:
        raise ValueError(f"duplicate key (phone)=(+91{TEN}) in /webhooks/exotel/{TOKEN}/sms")
    except ValueError:
        logger.error(
            "failed %s for %s",
            f"/webhooks/exotel/{TOKEN}/sms?From=0{TEN}",
            "98765 43210",
            exc_info=True,
            stack_info=True,
            extra={"caller": f"+91{TEN}", "numbers": [int(TEN)], "raw": {"From": f"0{TEN}"}},
        )
    text = output.getvalue()
    assert "failed /webhooks/exotel/[redacted]/sms?From=[redacted]" in text  # it was written
    assert "ValueError" in text and "Stack (most recent call last)" in text
    assert TOKEN not in text
    assert not shows_the_number(text), text


def test_gunicorn_loggers_lose_their_own_handlers(output: io.StringIO) -> None:
    """gunicorn's handlers (set up before the app loads) would write past the filter."""
    for name in logs.ROUTED:
        logger = logging.getLogger(name)
        logger.addHandler(logging.StreamHandler(io.StringIO()))
        logger.propagate = False
    logs.configure("json", "INFO")
    for name in logs.ROUTED:
        assert logging.getLogger(name).handlers == []
        assert logging.getLogger(name).propagate


def test_handlers_added_later_by_celery_are_filtered_too(output: io.StringIO) -> None:
    """Celery configures its loggers when a worker starts, after the app is built."""
    late = logging.StreamHandler(io.StringIO())
    logger = logging.getLogger("celery.task")
    logger.addHandler(late)
    try:
        signals.after_setup_task_logger.send(sender=None, logger=logger)
        assert logs.REDACT in late.filters
        logger.warning("task for %s", f"+91{TEN}")
        assert not shows_the_number(late.stream.getvalue())  # type: ignore[attr-defined]
    finally:
        logger.removeHandler(late)


def test_json_lines_stay_json_and_text_lines_stay_readable(output: io.StringIO) -> None:
    logging.getLogger("signup.x").info("call.recorded", extra={"caller": f"+91{TEN}", "n": 3})
    line = output.getvalue().strip()
    if line.startswith("{"):
        record = json.loads(line)
        assert record["event"] == "call.recorded" and record["n"] == 3
        assert record["caller"] == "+XXXXXXXXXXXX"
    else:
        assert line.endswith("INFO    signup.x call.recorded caller=+XXXXXXXXXXXX n=3")
