"""Settings read from the environment once, in one place, with the embedded defaults.

SETTINGS is the one table of every variable the app reads: its name, how its value is parsed
(strictly: a bad value is a one-line ConfigError naming the variable and what it accepts) and
its default. Adding a variable is one line there; .env.example is checked against it by
tests/unit/test_env_example.py.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse_many

from signup.errors import ValidationError
from signup.logs import hide_url_password
from signup.messaging import schedule

DEV_TWILIO_AUTH_TOKEN = "dev-only-twilio-auth-token"  # noqa: S105 - documented development default
DEV_TWILIO_ACCOUNT_SID = "AC" + "0" * 32


class ConfigError(RuntimeError):
    """Raised when the settings cannot run the product safely."""


Parser = Callable[[str, str], Any]

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def text(name: str, raw: str) -> str:
    """Any text, as given."""
    return raw


def boolean(name: str, raw: str) -> bool:
    """true/false (also 1/0, yes/no, on/off); anything else is refused, not read as false."""
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be true or false (or 1/0, yes/no, on/off), not {raw!r}")


WHOLE = re.compile(r"[0-9]{1,12}")  # ASCII digits only: not ٣ or ０, not 1e3, not 1_000
DECIMAL = re.compile(r"[0-9]{1,12}(\.[0-9]{1,12})?")  # 0.5, 2, 10.25: no exponent, no sign


@dataclass(frozen=True, slots=True)
class Bounded:
    """A number in ASCII digits between two bounds: whole, or decimal (seconds, rates)."""

    minimum: float
    maximum: float
    decimal: bool = False

    def __call__(self, name: str, raw: str) -> Any:
        """The value, or a one-line ConfigError saying what is accepted."""
        value = raw.strip()
        form = DECIMAL if self.decimal else WHOLE
        if not form.fullmatch(value) or not self.minimum <= float(value) <= self.maximum:
            kind = "number" if self.decimal else "whole number"
            raise ConfigError(
                f"{name} must be a {kind} from {self.minimum:g} to {self.maximum:g}, not {raw!r}"
            )
        return float(value) if self.decimal else int(value)


def _plain(value: float) -> str:
    """A bound as a person writes it: 1073741824, 0.01, never 1.07374e+09."""
    return str(int(value)) if float(value).is_integer() else str(value)


def whole(minimum: int, maximum: int) -> Bounded:
    """A whole number in ASCII digits from `minimum` to `maximum`."""
    return Bounded(minimum, maximum)


def number(minimum: float, maximum: float) -> Bounded:
    """A decimal number in ASCII digits from `minimum` to `maximum` (no exponent, no sign)."""
    return Bounded(minimum, maximum, decimal=True)


def choice(*allowed: str, fold: Callable[[str], str] = str.lower) -> Parser:
    """One of `allowed`, compared after `fold` (lower case unless told otherwise)."""

    def parse(name: str, raw: str) -> str:
        value = fold(raw.strip())
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {raw!r}")
        return value

    return parse


def rate_limits(name: str, raw: str) -> str:
    """Rate limits in the `limits` notation, e.g. 20/minute;300/hour."""
    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(
            f"{name} must be limits like 20/minute;300/hour (per second, minute, hour or day), "
            f"not {raw!r}"
        ) from None
    return raw


def url(*schemes: str, hostless: tuple[str, ...] = ()) -> Parser:
    """A URL with one of these schemes and a host (unless its scheme is `hostless`, a file's);
    the error shows the value with any password masked, never the password."""

    def parse(name: str, raw: str) -> str:
        value = raw.strip()
        try:
            parts = urlsplit(value)
            scheme = parts.scheme.lower()
            found = scheme in schemes and (bool(parts.hostname) or scheme in hostless)
            parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        except ValueError:
            found = False
        if not found:
            raise ConfigError(
                f"{name} must be a URL like {schemes[0]}://host/... "
                f"(scheme {', '.join(schemes)}), not {hide_url_password(value)!r}"
            )
        return value

    return parse


POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
REDIS_SCHEMES = ("redis", "rediss", "unix")
WEB_SCHEMES = ("https", "http")


@dataclass(frozen=True, slots=True)
class Setting:
    """One environment variable: how to parse it, its default and the config key it fills."""

    name: str
    parse: Parser = text
    default: Any = None
    # How the default is written in the docs when it is not a literal (derived at start-up).
    described: str | None = None
    key: str | None = None  # the Flask config key, when it differs from the name
    # Read by code outside from_environment (metrics, CLI, app factory), not put in the config.
    external: bool = False

    @property
    def shown(self) -> str:
        """The default as .env.example and the README write it."""
        if self.described is not None:
            return self.described
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, float) and self.default.is_integer():
            return str(int(self.default))
        return "unset" if self.default is None else str(self.default)


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE_URL",
        url(*POSTGRES_SCHEMES, "sqlite", hostless=("sqlite",)),
        described="a SQLite file",
    ),
    Setting("DATABASE_REPLICA_URL", url(*POSTGRES_SCHEMES)),
    Setting("REDIS_URL", url(*REDIS_SCHEMES, hostless=("unix",)), described="an embedded broker"),
    Setting("BROKER_URL", url(*REDIS_SCHEMES, "amqp", "amqps", hostless=("unix",))),
    Setting("SECRET_KEY"),
    Setting(
        "SIGNUP_ENV",
        choice("development", "production"),
        described="production whenever DATABASE_URL is set",
    ),
    Setting("SMS_PROVIDER", default="console"),  # checked against the senders by build_sender
    Setting("TWILIO_ACCOUNT_SID"),
    Setting("TWILIO_AUTH_TOKEN"),
    Setting("TWILIO_FROM_NUMBER"),
    Setting("TWILIO_MESSAGING_SERVICE_SID"),
    Setting("TWILIO_API_BASE_URL", url(*WEB_SCHEMES), "https://api.twilio.com"),
    Setting("PUBLIC_BASE_URL", url(*WEB_SCHEMES), described="each request's own URL"),
    Setting("SMS_QUIET_HOURS", default="22:00-06:00"),  # checked in finalise()
    Setting("SIGNUP_TIMEZONE", default="Asia/Kolkata"),  # checked in finalise()
    Setting("SMS_MAX_ATTEMPTS", whole(1, 100), 15),
    Setting("SMS_BACKOFF_BASE", number(0.01, 3600), 2.0),
    Setting("SMS_HTTP_TIMEOUT", number(0.1, 300), 10.0),
    Setting("SMS_SENDING_STALE_SECONDS", whole(1, 86400), 600),
    Setting("SMS_REQUEUE_AFTER", whole(1, 86400), 120),
    Setting("RELAY_BATCH_SIZE", whole(1, 100_000), 5000),
    Setting("PROCESS_BATCH_SIZE", whole(1, 10_000), 250),
    Setting("RELAY_NUDGE", boolean, True),
    Setting("WEBHOOK_AUTOCOMMIT", boolean, True),
    Setting("RELAY_REQUEUE_AFTER", whole(1, 86400), 300),
    Setting("RELAY_MAX_IN_FLIGHT", whole(1, 10_000_000), 20000),
    Setting("LOG_FORMAT", choice("json", "text"), described="json outside development"),
    Setting("LOG_LEVEL", choice("DEBUG", "INFO", "WARNING", "ERROR", fold=str.upper), "INFO"),
    Setting("MAX_REQUEST_BYTES", whole(1024, 2**30), 64 * 1024, key="MAX_CONTENT_LENGTH"),
    Setting("IMPORT_MAX_BYTES", whole(1024, 2**30), 10 * 1024 * 1024),  # its own route limit
    Setting("SMS_RATE_PER_SECOND", number(0.01, 100_000), 10.0),
    Setting("SMS_RATE_BURST", number(1, 100_000), described="the rate"),
    Setting("FLOOD_CALLS_PER_HOUR", whole(0, 100_000), 10),
    Setting("CALL_RAW_RETENTION_DAYS", whole(1, 3650), 30),
    Setting("IMPORT_PREVIEW_HOURS", whole(1, 720), 24),
    Setting("SUPPRESSION_KEY", described="SECRET_KEY"),
    Setting("ADMIN_IDLE_MINUTES", whole(1, 1440), 30),
    Setting("ADMIN_LOGIN_ACCOUNT_LIMIT", rate_limits, "100/hour"),
    Setting("ADMIN_LOGIN_ADDRESS_LIMIT", rate_limits, "20/minute;300/hour"),
    Setting("ADMIN_VIEWER_SEARCH_LIMIT", rate_limits, "30/hour"),
    Setting("EXOTEL_ACCOUNT_SID"),
    Setting("EXOTEL_API_KEY"),
    Setting("EXOTEL_API_TOKEN"),
    Setting("EXOTEL_API_BASE_URL", url(*WEB_SCHEMES), "https://api.exotel.com"),
    Setting(
        "EXOTEL_SMS_TYPE",
        choice("transactional", "transactional_opt_in", "promotional"),
        "transactional",
    ),
    Setting("EXOTEL_WEBHOOK_TOKEN"),
    Setting("EXOTEL_ALLOWED_IPS"),
    Setting("TRUSTED_PROXIES"),
    Setting("METRICS_TOKEN", external=True),  # signup.metrics.access
    Setting("METRICS_ALLOW", external=True),
    Setting("METRICS_PORT", whole(1, 65535), external=True),  # parsed by signup.metrics.exporter
    Setting("PROMETHEUS_MULTIPROC_DIR", external=True),  # signup.metrics.registry
    Setting("SIGNUP_INSTANCE_PATH", external=True),  # signup.create_app
    Setting("SIGNUP_PASSWORD", external=True),  # signup user create
)
BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}

# Read by docker-compose.yml, not by the app, but present in the containers' environment (.env).
COMPOSE_ONLY = frozenset(
    {
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "POSTGRES_DB",
        "POSTGRES_APP_USER",
        "POSTGRES_APP_PASSWORD",
        "WEB_PUBLISH",
        "SENDER_CONCURRENCY",
    }
)
# Read by the test suite's end-to-end runs, not by the app, in the product's namespace.
TOOLS_ONLY = frozenset({"SIGNUP_TRICKLE_SECONDS"})
MISSPELLING_CUTOFF = 0.85  # difflib ratio: SMS_MAX_ATTEMPT is 0.97, TEST_DATABASE_URL 0.83
PREFIX = "SIGNUP_"  # the product's own namespace: no unknown variable may use it
# Words so common in other tools' variables (API_KEY, BASE_URL, REDIS_PORT) that sharing them
# says nothing; a near-name must share a word that is not one of these.
GENERIC_WORDS = frozenset(
    {
        *("API", "KEY", "TOKEN", "SECRET", "URL", "BASE", "PORT", "HOST", "PATH", "DIR", "ID"),
        *("SID", "NAME", "USER", "PASSWORD", "LEVEL", "FORMAT", "ENV", "TYPE", "FROM", "NUMBER"),
        *("MAX", "MIN", "SIZE", "BYTES", "LIMIT", "DAYS", "HOURS", "MINUTES", "SECONDS", "AFTER"),
        *("DATABASE", "REDIS", "LOG", "DB", "SMS"),
    }
)
SHORT_WORD = 8  # a lone word this long or longer (TIMEZONE) is distinctive enough by itself


def _near(name: str, known: str) -> bool:
    """True when `name` is a variant of the known setting a person may have meant.

    The same name in other case (sms_max_attempts), its words in another order
    (MAX_IMPORT_BYTES), some of its words (QUIET_HOURS, TIMEZONE), or one word of three or
    more replaced (IMPORT_MAX_SIZE); words other tools use too (API_KEY) do not count.
    """
    upper = name.upper()
    if upper == known:
        return True
    words, wanted = upper.split("_"), known.split("_")
    if sorted(words) == sorted(wanted):
        return True
    if not (set(words) & set(wanted)) - GENERIC_WORDS:
        return False
    if set(words) < set(wanted):
        return len(words) > 1 or len(words[0]) >= SHORT_WORD
    differing = sum(a != b for a, b in zip(words, wanted, strict=False))
    return len(words) == len(wanted) >= 3 and differing == 1


def _suggestion(name: str, known: set[str]) -> str | None:
    """The known setting `name` most likely stands for, if any ("" for an unknown SIGNUP_*)."""
    if name.upper() in known:
        return name.upper()
    close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=MISSPELLING_CUTOFF)
    if close:
        return close[0]
    near = sorted(setting for setting in known if _near(name, setting))
    if near:
        return near[0]
    if name.upper().startswith(PREFIX):
        ours = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.5)
        return ours[0] if ours else ""
    return None


def read(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """The parsed value of one setting from the environment, or its default when unset."""
    setting = BY_NAME[name]
    raw = (os.environ if environ is None else environ).get(name)
    if raw is None or raw == "":
        return setting.default
    return setting.parse(name, raw)


def misspellings(environ: Mapping[str, str]) -> list[str]:
    """One line per variable whose name is close to, but not, one the app reads."""
    known = set(BY_NAME) | COMPOSE_ONLY | TOOLS_ONLY
    found = []
    for name in sorted(environ):
        if name in known:
            continue
        meant = _suggestion(name, known)
        if meant:
            found.append(f"{name} is not a setting; did you mean {meant}?")
        elif meant is not None:
            found.append(f"{name} is not a setting, and {PREFIX}* names are the app's own")
    return found


def check_spelling(environ: Mapping[str, str] | None = None) -> None:
    """Refuse to start when a variable looks like a misspelt setting (it would be ignored)."""
    found = misspellings(os.environ if environ is None else environ)
    if found:
        raise ConfigError("; ".join(found))


def allowed_networks(raw: str | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Parse an address list (EXOTEL_ALLOWED_IPS, TRUSTED_PROXIES): addresses or CIDR ranges."""
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
    """Build the Flask config from environment variables (SETTINGS; README, "Environment")."""
    check_spelling()
    config = {
        setting.key or setting.name: read(setting.name)
        for setting in SETTINGS
        if not setting.external
    }
    database_url = config["DATABASE_URL"]
    del config["DATABASE_URL"]
    # Embedded defaults (no DATABASE_URL) mean a developer's machine unless told otherwise.
    if config["SIGNUP_ENV"] is None:
        config["SIGNUP_ENV"] = "development" if database_url is None else "production"
    if database_url is None:
        database_url = "sqlite:///" + str(Path(instance_path) / "signup.sqlite3")
    config["SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(database_url)
    replica_url = config["DATABASE_REPLICA_URL"]
    config["DATABASE_REPLICA_URL"] = sqlalchemy_url(replica_url) if replica_url else None
    if config["LOG_FORMAT"] is None:
        config["LOG_FORMAT"] = "json" if config["SIGNUP_ENV"] != "development" else "text"
    config.update(
        # Admin sessions: cookies only over https outside development, never readable by
        # scripts, not sent on cross-site requests; an idle session ends (checked server-side).
        SESSION_COOKIE_SECURE=None,  # decided in finalise(): https-only outside development
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    return config


def check_environment() -> None:
    """Parse and check every setting without building the app (gunicorn's master, at start)."""
    finalise(from_environment(os.environ.get("SIGNUP_INSTANCE_PATH") or "instance"))
    for setting in SETTINGS:
        if setting.external:
            read(setting.name)


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
    if not config.get("SMS_RATE_BURST"):  # a bucket smaller than one SMS would never send
        config["SMS_RATE_BURST"] = max(1.0, config["SMS_RATE_PER_SECOND"])
    if not config.get("SUPPRESSION_KEY"):
        # The suppression list is keyed: set SUPPRESSION_KEY and never rotate it.
        config["SUPPRESSION_KEY"] = config["SECRET_KEY"]
    try:
        config["EXOTEL_ALLOWED_NETWORKS"] = allowed_networks(config.get("EXOTEL_ALLOWED_IPS"))
    except ValueError as exc:
        raise ConfigError(f"EXOTEL_ALLOWED_IPS: {exc}") from exc
    try:  # signup.proxies: whose forwarded headers count
        config["TRUSTED_PROXY_NETWORKS"] = allowed_networks(config.get("TRUSTED_PROXIES"))
    except ValueError as exc:
        raise ConfigError(f"TRUSTED_PROXIES: {exc}") from exc
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


def check_or_exit() -> None:
    """Check the settings and exit 2 with one `Error:` line when one is bad (gunicorn.conf.py)."""
    try:
        check_environment()
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)
