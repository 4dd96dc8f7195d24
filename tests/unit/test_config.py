"""Settings: safe defaults for a developer, refusals for an unsafe production."""

from __future__ import annotations

import pytest

from signup import create_app
from signup.config import ConfigError


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
