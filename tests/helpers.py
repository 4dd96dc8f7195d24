"""Shared test helpers: settings, signing like Twilio, and webhook form fields."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator

# scripts/services.sh (`make test`) makes a test role with a random password and writes its URL
# here; without it, the postgres role over TCP (a cluster that trusts local connections).
LOCAL_URL_FILE = Path(__file__).resolve().parent.parent / ".test-database-url"


def _default_database_url() -> str:
    """The URL scripts/services.sh wrote, else postgres on localhost."""
    if LOCAL_URL_FILE.is_file():
        written = LOCAL_URL_FILE.read_text().strip()
        if written:
            return written
    return "postgresql+psycopg://postgres@127.0.0.1:5432/signup_test"


DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or _default_database_url()
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
AUTH_TOKEN = "test_auth_token_123"
ACCOUNT_SID = "AC" + "1" * 32
PUBLIC_BASE_URL = "https://signup.example.org"
TABLES = (
    "consent_events",
    "inbound_messages",
    "suppressions",
    "messages",
    "subscriptions",
    "calls",
    "volunteers",
    "campaigns",
    "users",
)


def base_config(**overrides: Any) -> dict[str, Any]:
    """The settings every test app uses; overrides win."""
    config: dict[str, Any] = {
        "TESTING": True,
        "SIGNUP_ENV": "production",
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": "+15005550006",
        "SMS_PROVIDER": "console",
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "RELAY_NUDGE": False,
        "SMS_QUIET_HOURS": "off",  # tests that need quiet hours set them with an injected clock
        "SESSION_COOKIE_SECURE": False,  # the test client speaks http; production is https
        # The limiter extension keeps the storage of the last app created; tests create many
        # (some with a dead REDIS_URL on purpose), so all of them share the test Redis.
        "RATELIMIT_STORAGE_URI": REDIS_URL,
        # Rolled-back tests hold the connection in a transaction, where autocommit cannot be
        # switched on; tests/integration/test_autocommit.py runs the webhook with it, committed.
        "WEBHOOK_AUTOCOMMIT": False,
        "LOG_FORMAT": "json",
        "SCHEMA_MIGRATIONS": True,
    }
    config.update(overrides)
    return config


def sign(
    path: str, params: dict[str, str], token: str = AUTH_TOKEN, base: str = PUBLIC_BASE_URL
) -> str:
    """The X-Twilio-Signature Twilio would send for these form parameters."""
    return RequestValidator(token).compute_signature(base + path, params)


def twilio_sid(label: str) -> str:
    """A well-formed Twilio id for a short label: its two-letter type, then 32 hex digits.

    `twilio_sid("CA1")` is a CallSid, `twilio_sid("SMa")` a MessageSid; the same label gives
    the same id, so a test can replay it.
    """
    return label[:2] + hashlib.sha256(label.encode()).hexdigest()[:32]


def call_params(call_sid: str, from_: str, to: str, **extra: str) -> dict[str, str]:
    """Form fields of a Twilio incoming-call webhook."""
    params = {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": from_,
        "To": to,
        "Caller": from_,
        "Called": to,
    }
    params.update(extra)
    return params


def post_signed(client: FlaskClient, path: str, params: dict[str, str], **kw: Any) -> Any:
    """POST form parameters with a valid Twilio signature."""
    return client.post(path, data=params, headers={"X-Twilio-Signature": sign(path, params)}, **kw)
