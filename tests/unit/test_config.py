"""Settings: safe defaults for a developer, refusals for an unsafe production."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from signup import config as config_module
from signup import create_app
from signup.config import SETTINGS, ConfigError, Setting

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "SIGNUP_ENV",
        "SMS_PROVIDER",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_FROM_NUMBER",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SIGNUP_INSTANCE_PATH", str(tmp_path))


def test_embedded_defaults_need_no_configuration() -> None:
    app = create_app()
    assert app.config["SIGNUP_ENV"] == "development"
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert app.config["SECRET_KEY"]
    assert app.extensions["celery"].conf.broker_url.startswith("filesystem://")
    assert app.extensions["sms_sender"].name == "console"


def test_secret_key_is_required_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1/x")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app()
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    app = create_app()
    assert app.config["SIGNUP_ENV"] == "production"
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert app.config["TWILIO_AUTH_TOKEN"] is None  # no development token in production


def test_debug_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    monkeypatch.setenv("SIGNUP_ENV", "production")
    with pytest.raises(ConfigError, match="debug"):
        create_app({"DEBUG": True})


def test_redis_url_selects_redis_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    app = create_app()
    assert app.extensions["celery"].conf.broker_url == "redis://127.0.0.1:6379/3"


def test_broker_url_overrides_redis_for_celery_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    app = create_app()
    conf = app.extensions["celery"].conf
    assert conf.broker_url == "amqp://guest:guest@127.0.0.1:5672//"
    assert "visibility_timeout" not in conf.broker_transport_options  # a Redis-only option
    assert app.config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/3"


def test_unknown_sms_provider_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_PROVIDER", "carrier-pigeon")
    with pytest.raises(ValueError, match="SMS_PROVIDER"):
        create_app()


def test_twilio_provider_needs_a_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_PROVIDER", "twilio")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "2" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "tok")
    with pytest.raises(ValueError, match="TWILIO_FROM_NUMBER"):
        create_app()


def test_embedded_broker_keeps_all_its_files_in_the_instance_folder(tmp_path: object) -> None:
    app = create_app()
    options = app.extensions["celery"].conf.broker_transport_options
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        assert options[key].startswith(app.instance_path), key


def _parsed_settings() -> list[Setting]:
    """Settings the app reads at start-up whose values have a form (number, boolean, choice)."""
    return [s for s in SETTINGS if s.parse is not config_module.text and not s.external]


@pytest.mark.parametrize("setting", _parsed_settings(), ids=lambda s: s.name)
def test_a_malformed_value_of_any_setting_stops_the_app(
    monkeypatch: pytest.MonkeyPatch, setting: Setting
) -> None:
    """`RELAY_NUDGE=ture`, `LOG_FORMAT=jsn`, `SMS_BACKOFF_BASE=abc`: one line, never ignored."""
    monkeypatch.setenv(setting.name, "ture")
    with pytest.raises(ConfigError) as refused:
        create_app()
    message = str(refused.value)
    assert message.startswith(setting.name) and "'ture'" in message and "\n" not in message


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("RELAY_NUDGE", "off", False),
        ("RELAY_NUDGE", " Yes ", True),
        ("LOG_FORMAT", "JSON", "json"),
        ("LOG_LEVEL", "warning", "WARNING"),
        ("SMS_BACKOFF_BASE", "0.5", 0.5),
        ("SMS_MAX_ATTEMPTS", "3", 3),
        ("MAX_REQUEST_BYTES", "2048", 2048),
    ],
)
def test_well_formed_values_are_read(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str, expected: object
) -> None:
    monkeypatch.setenv(name, raw)
    key = config_module.BY_NAME[name].key or name
    assert create_app().config[key] == expected


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_a_misspelt_name_of_any_setting_stops_the_app(
    monkeypatch: pytest.MonkeyPatch, setting: Setting
) -> None:
    """A setting that would be silently ignored (last letter lost) is reported, with the fix."""
    misspelt = setting.name[:-1]
    monkeypatch.setenv(misspelt, "1")
    with pytest.raises(ConfigError, match=f"{misspelt} is not a setting; did you mean"):
        create_app()


def test_unrelated_variables_are_not_taken_for_misspellings() -> None:
    environ = {name: "x" for name in ("TEST_DATABASE_URL", "TEST_REDIS_URL", "REDIS_PORT")}
    environ |= {name: "x" for name in ("PATH", "HOME", "HOSTNAME", "PYTHONPATH", "LANG", "TZ")}
    assert config_module.misspellings(environ) == []
    assert config_module.misspellings(dict(os.environ)) == []  # this machine's, CI's


# --- near-names and odd numbers (review finding 4) ---------------------------------------------

REPORTED_NAMES = {
    "sms_max_attempts": "SMS_MAX_ATTEMPTS",
    "QUIET_HOURS": "SMS_QUIET_HOURS",
    "IMPORT_MAX_SIZE": "IMPORT_MAX_BYTES",
    "MAX_IMPORT_BYTES": "IMPORT_MAX_BYTES",
    "SIGNUP_TZ": "SIGNUP_TIMEZONE",
    "TIMEZONE": "SIGNUP_TIMEZONE",
}


@pytest.mark.parametrize(("name", "meant"), REPORTED_NAMES.items())
def test_each_reported_near_name_is_refused_with_the_setting_meant(name: str, meant: str) -> None:
    assert config_module.misspellings({name: "3"}) == [
        f"{name} is not a setting; did you mean {meant}?"
    ]


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_in_other_case_or_word_order_is_refused(setting: Setting) -> None:
    """The kind: lower case, mixed case and (with two or more words) any other word order."""
    words = setting.name.split("_")
    variants = {setting.name.lower(), setting.name.title()}
    if len(words) > 1:
        variants.add("_".join(reversed(words)))
    variants.discard(setting.name)
    for variant in variants:
        [found] = config_module.misspellings({variant: "1"})
        assert found.startswith(f"{variant} is not a setting; did you mean "), found


def test_an_unknown_variable_in_the_apps_namespace_is_refused() -> None:
    [found] = config_module.misspellings({"SIGNUP_SOMETHING_NEW": "1"})
    assert found.startswith("SIGNUP_SOMETHING_NEW is not a setting")


# Variables CI machines, containers and other tools set: never taken for near-names.
OTHER_TOOLS = [
    *("API_KEY", "API_TOKEN", "GITHUB_TOKEN", "BASE_URL", "REDIS_PORT", "REDIS_HOST", "CI"),
    *("DATABASE_HOST", "POSTGRES_HOST", "POSTGRES_PORT", "CELERY_BROKER_URL", "LOG_FILE"),
    *("VIRTUAL_ENV", "PIP_NO_CACHE_DIR", "DEBIAN_FRONTEND", "RUNNER_TEMP", "SECRET", "PORT"),
    *("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "TZ", "USER", "SHELL", "TERM", "PWD"),
    *("SIGNUP_TRICKLE_SECONDS",),
]


def test_other_tools_variables_are_not_taken_for_near_names() -> None:
    assert config_module.misspellings({name: "x" for name in OTHER_TOOLS}) == []


def plain(value: float) -> str:
    """A number as a person types it: 1073741824, 0.01 (no exponent)."""
    return f"{value:.2f}".removesuffix(".00")


def _bounded() -> list[Setting]:
    return [s for s in SETTINGS if isinstance(s.parse, config_module.Bounded)]


ODD_NUMBERS = [
    "٣", "０", "३", "1e3", "1e-9", "1e-300", "1_000", "-1", "+1", "0x10", "inf", "nan", " ",
    "99999999999", "99999999999999999999999", "1.", ".5", "1,5",
]  # fmt: skip


@pytest.mark.parametrize("setting", _bounded(), ids=lambda s: s.name)
def test_every_numeric_setting_is_ascii_and_bounded(setting: Setting) -> None:
    """The kind: every number setting refuses odd forms and values just outside its bounds."""
    bounds = setting.parse
    assert isinstance(bounds, config_module.Bounded)
    assert bounds.maximum < 10**10  # a bound a person could mean, not "no bound"
    step = 0.01 if bounds.decimal else 1
    below, above = bounds.minimum - step, bounds.maximum + step
    for raw in [*ODD_NUMBERS, plain(below), plain(above)]:
        with pytest.raises(ConfigError, match=f"^{setting.name} must be"):
            bounds(setting.name, raw)
    for value in (bounds.minimum, bounds.maximum):
        assert bounds(setting.name, plain(value)) == value
    if setting.default is not None:
        assert bounds.minimum <= setting.default <= bounds.maximum


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("SMS_RATE_BURST", "0.5"),
        ("SMS_RATE_PER_SECOND", "1e-9"),
        ("SMS_BACKOFF_BASE", "1e-300"),
        ("SMS_MAX_ATTEMPTS", "99999999999"),
        ("RELAY_BATCH_SIZE", "99999999999999999999999"),
        ("FLOOD_CALLS_PER_HOUR", "０"),
        ("FLOOD_CALLS_PER_HOUR", "٣"),
    ],
)
def test_each_reported_odd_value_stops_the_app(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str
) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError, match=f"^{name} must be"):
        create_app()


def test_a_slow_rate_still_has_a_bucket_of_one_sms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_RATE_PER_SECOND", "0.5")
    assert create_app().config["SMS_RATE_BURST"] == 1.0


ENTRY_POINTS = {
    "cli": [str(BIN / "signup"), "campaign", "list"],
    "gunicorn": [str(BIN / "gunicorn"), "--bind", "127.0.0.1:0", "signup:create_app()"],
    # These load the app without calling gunicorn's hooks (gunicorn.conf.py checks them).
    "gunicorn-check": [str(BIN / "gunicorn"), "--check-config", "signup:create_app()"],
    "gunicorn-print": [str(BIN / "gunicorn"), "--print-config", "signup:create_app()"],
    "celery": [str(BIN / "celery"), "-A", "workers", "inspect", "ping", "--timeout", "1"],
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_reports_a_bad_setting_in_one_line(entry: str, tmp_path: Path) -> None:
    """The CLI, gunicorn and Celery exit non-zero with one `Error:` line, not a traceback."""
    env = {**os.environ, "SIGNUP_INSTANCE_PATH": str(tmp_path), "SMS_BACKOFF_BASE": "abc"}
    done = subprocess.run(
        ENTRY_POINTS[entry], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    errors = [line for line in done.stderr.splitlines() if "SMS_BACKOFF_BASE" in line]
    assert done.returncode != 0
    assert errors == ["Error: SMS_BACKOFF_BASE must be a number from 0.01 to 3600, not 'abc'"]
    assert "Traceback" not in done.stderr


PASSWORD = "hunter2secret"
MALFORMED_URLS = (
    f"rediss//:{PASSWORD}@127.0.0.1:6379/11",
    "notaurl",
    "garbage",
    f"mysql://u:{PASSWORD}@127.0.0.1/db",
    f"redis://:{PASSWORD}@127.0.0.1:port/1",
    f"//u:{PASSWORD}@127.0.0.1/x",
    "https:///no-host",
)
URL_SETTINGS = [s for s in SETTINGS if s.name.endswith("_URL")]


def test_every_url_setting_is_parsed_as_a_url() -> None:
    assert {s.name for s in URL_SETTINGS} >= {
        "DATABASE_URL",
        "DATABASE_REPLICA_URL",
        "REDIS_URL",
        "BROKER_URL",
        "TWILIO_API_BASE_URL",
        "EXOTEL_API_BASE_URL",
        "PUBLIC_BASE_URL",
    }
    assert all(s.parse.__qualname__.startswith("url.") for s in URL_SETTINGS)


@pytest.mark.parametrize("raw", MALFORMED_URLS)
@pytest.mark.parametrize("setting", URL_SETTINGS, ids=lambda s: s.name)
def test_a_malformed_url_setting_stops_the_app_in_one_line_without_its_password(
    monkeypatch: pytest.MonkeyPatch, setting: Setting, raw: str
) -> None:
    monkeypatch.setenv(setting.name, raw)
    with pytest.raises(ConfigError) as refused:
        create_app()
    message = str(refused.value)
    assert message.startswith(setting.name) and "\n" not in message
    assert PASSWORD not in message


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_no_entry_point_prints_the_password_of_a_malformed_url(entry: str, tmp_path: Path) -> None:
    """`REDIS_URL='rediss//:pass@host'`: one `Error:` line, the password masked."""
    env = {**os.environ, "SIGNUP_INSTANCE_PATH": str(tmp_path), "REDIS_URL": MALFORMED_URLS[0]}
    done = subprocess.run(
        ENTRY_POINTS[entry], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert [line for line in done.stderr.splitlines() if "REDIS_URL" in line] == [
        "Error: REDIS_URL must be a URL like redis://host/... (scheme redis, rediss, unix),"
        " not 'rediss//:[redacted]@127.0.0.1:6379/11'"
    ]
    assert PASSWORD not in done.stderr + done.stdout and "Traceback" not in done.stderr
