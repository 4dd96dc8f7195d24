"""Settings read from the environment once, in one place, with the embedded defaults."""

from __future__ import annotations

import ipaddress
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from signup.errors import ValidationError
from signup.messaging import schedule

DEV_TWILIO_AUTH_TOKEN = "dev-only-twilio-auth-token"  # noqa: S105 - documented development default
DEV_TWILIO_ACCOUNT_SID = "AC" + "0" * 32


class ConfigError(RuntimeError):
    """Raised when the settings cannot run the product safely."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _int_env(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from exc


def _bool_env(name: str, default: bool) -> bool:
    raw = _env(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def allowed_networks(raw: str | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Parse EXOTEL_ALLOWED_IPS: comma-separated addresses or CIDR ranges; empty allows all."""
    if not raw:
        return []
    return [
        ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip()
    ]


REPLICA_BIND = "replica"


def sqlalchemy_url(url: str) -> str:
    """A postgres:// or postgresql:// URL with the psycopg 3 driver named; others unchanged."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


def from_environment(instance_path: str) -> dict[str, Any]:
    """Build the Flask config from environment variables (see README, "Environment")."""
    database_url = _env("DATABASE_URL")
    # Embedded defaults (no DATABASE_URL) mean a developer's machine unless told otherwise.
    environment = _env("SIGNUP_ENV", "development" if database_url is None else "production")
    if database_url is None:
        database_url = "sqlite:///" + str(Path(instance_path) / "signup.sqlite3")
    replica_url = _env("DATABASE_REPLICA_URL")

    return {
        "SIGNUP_ENV": environment,
        "SECRET_KEY": _env("SECRET_KEY"),
        "SQLALCHEMY_DATABASE_URI": sqlalchemy_url(database_url),
        "DATABASE_REPLICA_URL": sqlalchemy_url(replica_url) if replica_url else None,
        "REDIS_URL": _env("REDIS_URL"),
        "BROKER_URL": _env("BROKER_URL"),
        "SMS_PROVIDER": _env("SMS_PROVIDER", "console"),
        "TWILIO_ACCOUNT_SID": _env("TWILIO_ACCOUNT_SID"),
        "TWILIO_AUTH_TOKEN": _env("TWILIO_AUTH_TOKEN"),
        "TWILIO_FROM_NUMBER": _env("TWILIO_FROM_NUMBER"),
        "TWILIO_MESSAGING_SERVICE_SID": _env("TWILIO_MESSAGING_SERVICE_SID"),
        "TWILIO_API_BASE_URL": _env("TWILIO_API_BASE_URL", "https://api.twilio.com"),
        "PUBLIC_BASE_URL": _env("PUBLIC_BASE_URL"),
        "SMS_QUIET_HOURS": _env("SMS_QUIET_HOURS", "22:00-06:00"),
        "SIGNUP_TIMEZONE": _env("SIGNUP_TIMEZONE", "Asia/Kolkata"),
        "SMS_MAX_ATTEMPTS": _int_env("SMS_MAX_ATTEMPTS", 15),
        "SMS_BACKOFF_BASE": float(_env("SMS_BACKOFF_BASE", "2") or 2),
        "SMS_HTTP_TIMEOUT": float(_env("SMS_HTTP_TIMEOUT", "10") or 10),
        "SMS_SENDING_STALE_SECONDS": _int_env("SMS_SENDING_STALE_SECONDS", 600),
        "SMS_REQUEUE_AFTER": _int_env("SMS_REQUEUE_AFTER", 120),
        "RELAY_BATCH_SIZE": _int_env("RELAY_BATCH_SIZE", 5000),
        "PROCESS_BATCH_SIZE": _int_env("PROCESS_BATCH_SIZE", 250),
        "RELAY_NUDGE": _bool_env("RELAY_NUDGE", True),
        "WEBHOOK_AUTOCOMMIT": _bool_env("WEBHOOK_AUTOCOMMIT", True),
        "RELAY_REQUEUE_AFTER": _int_env("RELAY_REQUEUE_AFTER", 300),
        "RELAY_MAX_IN_FLIGHT": _int_env("RELAY_MAX_IN_FLIGHT", 20000),
        "LOG_FORMAT": _env("LOG_FORMAT", "json" if environment != "development" else "text"),
        "LOG_LEVEL": _env("LOG_LEVEL", "INFO"),
        "MAX_CONTENT_LENGTH": _int_env("MAX_REQUEST_BYTES", 64 * 1024),
        "SMS_RATE_PER_SECOND": float(_env("SMS_RATE_PER_SECOND", "10") or 10),
        "SMS_RATE_BURST": float(_env("SMS_RATE_BURST", "0") or 0),
        "FLOOD_CALLS_PER_HOUR": _int_env("FLOOD_CALLS_PER_HOUR", 10),
        "CALL_RAW_RETENTION_DAYS": _int_env("CALL_RAW_RETENTION_DAYS", 30),
        "SUPPRESSION_KEY": _env("SUPPRESSION_KEY"),
        "ADMIN_IDLE_MINUTES": _int_env("ADMIN_IDLE_MINUTES", 30),
        # Admin sessions: cookies only over https outside development, never readable by
        # scripts, not sent on cross-site requests; an idle session ends (checked server-side).
        "SESSION_COOKIE_SECURE": None,  # decided in finalise(): https-only outside development
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Failed logins allowed per account (whoever tries) and per address.
        "ADMIN_LOGIN_ACCOUNT_LIMIT": _env("ADMIN_LOGIN_ACCOUNT_LIMIT", "100/hour"),
        "ADMIN_LOGIN_ADDRESS_LIMIT": _env("ADMIN_LOGIN_ADDRESS_LIMIT", "20/minute;300/hour"),
        "EXOTEL_ACCOUNT_SID": _env("EXOTEL_ACCOUNT_SID"),
        "EXOTEL_API_KEY": _env("EXOTEL_API_KEY"),
        "EXOTEL_API_TOKEN": _env("EXOTEL_API_TOKEN"),
        "EXOTEL_API_BASE_URL": _env("EXOTEL_API_BASE_URL", "https://api.exotel.com"),
        "EXOTEL_SMS_TYPE": _env("EXOTEL_SMS_TYPE", "transactional"),
        "EXOTEL_WEBHOOK_TOKEN": _env("EXOTEL_WEBHOOK_TOKEN"),
        "EXOTEL_ALLOWED_IPS": _env("EXOTEL_ALLOWED_IPS"),
    }


def finalise(config: dict[str, Any]) -> None:
    """Fill development-only defaults and refuse settings that are unsafe in production."""
    development = config["SIGNUP_ENV"] == "development" or config.get("TESTING")
    if not config.get("SECRET_KEY"):
        if not development:
            raise ConfigError("SECRET_KEY must be set outside development (SIGNUP_ENV=production)")
        config["SECRET_KEY"] = secrets.token_hex(32)
    if config.get("DEBUG") and not development:
        raise ConfigError("debug mode is refused outside development")
    if development and not config.get("TWILIO_AUTH_TOKEN"):
        # Lets `signup simulate-call` sign demo webhooks; never used in production.
        config["TWILIO_AUTH_TOKEN"] = DEV_TWILIO_AUTH_TOKEN
        config.setdefault("TWILIO_ACCOUNT_SID", DEV_TWILIO_ACCOUNT_SID)
    if not config.get("TWILIO_ACCOUNT_SID") and development:
        config["TWILIO_ACCOUNT_SID"] = DEV_TWILIO_ACCOUNT_SID
    try:
        schedule.parse_window(config.get("SMS_QUIET_HOURS"))
        ZoneInfo(config["SIGNUP_TIMEZONE"])
    except ValidationError as exc:
        raise ConfigError(f"SMS_QUIET_HOURS: {exc}") from exc
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"SIGNUP_TIMEZONE: unknown time zone {config['SIGNUP_TIMEZONE']!r}"
        ) from exc
    if float(config["SMS_SENDING_STALE_SECONDS"]) <= float(config["SMS_HTTP_TIMEOUT"]):
        raise ConfigError("SMS_SENDING_STALE_SECONDS must be longer than SMS_HTTP_TIMEOUT")
    if float(config.get("SMS_BACKOFF_BASE", 2)) <= 0:
        raise ConfigError("SMS_BACKOFF_BASE must be above 0")
    if float(config.get("SMS_RATE_PER_SECOND") or 0) <= 0:
        raise ConfigError("SMS_RATE_PER_SECOND must be above 0")
    if not config.get("SMS_RATE_BURST"):
        config["SMS_RATE_BURST"] = config["SMS_RATE_PER_SECOND"]
    if not config.get("SUPPRESSION_KEY"):
        # The suppression list is keyed: set SUPPRESSION_KEY and never rotate it.
        config["SUPPRESSION_KEY"] = config["SECRET_KEY"]
    try:
        config["EXOTEL_ALLOWED_NETWORKS"] = allowed_networks(config.get("EXOTEL_ALLOWED_IPS"))
    except ValueError as exc:
        raise ConfigError(f"EXOTEL_ALLOWED_IPS: {exc}") from exc
    token = config.get("EXOTEL_WEBHOOK_TOKEN")
    if token and len(token) < 16:
        raise ConfigError("EXOTEL_WEBHOOK_TOKEN must be at least 16 characters")
    config["PERMANENT_SESSION_LIFETIME"] = timedelta(minutes=config["ADMIN_IDLE_MINUTES"])
    if config.get("SESSION_COOKIE_SECURE") is None:
        config["SESSION_COOKIE_SECURE"] = config["SIGNUP_ENV"] != "development"
    config.setdefault("RATELIMIT_STORAGE_URI", config.get("REDIS_URL") or "memory://")
    config.setdefault("RATELIMIT_KEY_PREFIX", "signup-limits")
    engine_options = config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    # A database error's message must not carry its statement's values (numbers, names) into
    # the log: a failed multi-row INSERT would otherwise log every row.
    engine_options.setdefault("hide_parameters", True)
    if str(config["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite"):
        engine_options.setdefault("connect_args", {"timeout": 30})
    else:
        # Pre-ping costs a round trip per checkout but spares every path (tasks, admin pages)
        # an error after a PostgreSQL restart; connections are also recycled every 30 minutes.
        engine_options.setdefault("pool_pre_ping", True)
        engine_options.setdefault("pool_recycle", 1800)
        engine_options.setdefault("pool_size", 5)
        engine_options.setdefault("max_overflow", 10)
        engine_options.setdefault("pool_timeout", 5)
        engine_options.setdefault(
            "connect_args", {"connect_timeout": 3, "application_name": "missed-call-signup"}
        )
    replica = config.get("DATABASE_REPLICA_URL")
    if replica and not (
        str(replica).startswith("postgresql")
        and str(config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql")
    ):
        raise ConfigError("DATABASE_REPLICA_URL needs PostgreSQL for it and for DATABASE_URL")
    if replica:
        # The admin's list and dashboard read here (signup.database.reads); same pool settings.
        connect_args = {**engine_options.get("connect_args", {})}
        connect_args["application_name"] = "missed-call-signup-replica"
        config.setdefault("SQLALCHEMY_BINDS", {})[REPLICA_BIND] = {
            **engine_options,
            "url": replica,
            "connect_args": connect_args,
        }
