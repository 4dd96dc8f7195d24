"""`/metrics`: the guard, the database gauges with real rows, task timings and foreign metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY, Counter
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from signup import clock, create_app
from signup.calls import services as calls
from signup.calls.models import Call, CallState
from signup.config import ConfigError
from signup.extensions import db
from signup.logs import JsonFormatter
from signup.messaging.models import Message, MessageStatus
from signup.metrics import access
from tests.helpers import base_config, call_params, sign
from tests.integration.factories import campaign, inbound

TOKEN = "scrape-token-0123456789abcdef"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# Another feature's metric, registered the usual way (prometheus-client's default registry).
PROBE = Counter("signup_test_probe", "A metric defined outside signup.metrics.", ["kind"])


def samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


@pytest.fixture
def guard(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Swap the app's /metrics policy for one built from these settings."""

    def install(**settings: str) -> None:
        rule = access.policy({"SIGNUP_ENV": "production", **settings})
        monkeypatch.setitem(app.extensions, "metrics_policy", rule)

    return install


@pytest.fixture
def fixed_clock() -> Iterator[datetime]:
    clock.set_clock(lambda: NOW)
    yield NOW
    clock.set_clock(None)


def test_off_in_production_when_nothing_is_configured(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 404


def test_open_in_development_when_nothing_is_configured(client: FlaskClient, guard: Any) -> None:
    guard(SIGNUP_ENV="development")
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 200


def test_token_refused_without_it_or_wrong_allowed_with_it(client: FlaskClient, guard: Any) -> None:
    guard(METRICS_TOKEN=TOKEN)
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in missing.get_data(as_text=True)
    wrong = client.get("/metrics", headers={"Authorization": "Bearer " + TOKEN[:-1] + "X"})
    assert wrong.status_code == 401
    basic = client.get("/metrics", headers={"Authorization": "Basic " + TOKEN})
    assert basic.status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer " + TOKEN})
    assert ok.status_code == 200
    assert ok.mimetype == "text/plain"
    assert "signup_metrics_database_up 1.0" in ok.get_data(as_text=True)


def test_allowlist_checks_the_peer_address(client: FlaskClient, guard: Any) -> None:
    guard(METRICS_ALLOW="10.0.0.0/8, 192.0.2.7")
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.8"}).status_code == 403


def test_token_and_allowlist_together_need_both(client: FlaskClient, guard: Any) -> None:
    guard(METRICS_TOKEN=TOKEN, METRICS_ALLOW="10.0.0.0/8")
    bearer = {"Authorization": "Bearer " + TOKEN}
    inside, outside = {"REMOTE_ADDR": "10.9.9.9"}, {"REMOTE_ADDR": "198.51.100.1"}
    assert client.get("/metrics", headers=bearer, environ_base=inside).status_code == 200
    assert client.get("/metrics", environ_base=inside).status_code == 401
    assert client.get("/metrics", headers=bearer, environ_base=outside).status_code == 403


def test_settings_come_from_the_environment_and_bad_ones_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    monkeypatch.setenv("METRICS_ALLOW", "127.0.0.1")
    rule = create_app(base_config()).extensions["metrics_policy"]
    assert rule.token == TOKEN.encode()
    assert [str(n) for n in rule.networks] == ["127.0.0.1/32"]
    monkeypatch.setenv("METRICS_TOKEN", "short")
    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        create_app(base_config())
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    monkeypatch.setenv("METRICS_ALLOW", "10.0.0.0/33")
    with pytest.raises(ConfigError, match="METRICS_ALLOW"):
        create_app(base_config())


def test_database_gauges_from_real_rows(
    client: FlaskClient, guard: Any, fixed_clock: datetime
) -> None:
    campaign()
    mobiles = ("+919911278181", "+919911278182", "+919911278183")
    message_ids = []
    for phone in mobiles:
        processed = calls.process_call(inbound(phone).id)
        assert processed is not None
        message_ids += processed.message_ids
    waiting = inbound("+919911278184")
    queued = inbound("+919911278185")
    db.session.execute(
        update(Call).where(Call.id == waiting.id).values(received_at=NOW - timedelta(seconds=120))
    )
    db.session.execute(update(Call).where(Call.id == queued.id).values(state=CallState.QUEUED))
    failed, undelivered, due = message_ids
    changes: list[tuple[int, dict[str, Any]]] = [
        (failed, {"status": MessageStatus.FAILED, "error_code": 21211}),
        (undelivered, {"status": MessageStatus.UNDELIVERED, "error_code": 30005}),
        (due, {"status": MessageStatus.QUEUED, "next_attempt_at": NOW - timedelta(seconds=45)}),
    ]
    for message_id, values in changes:
        db.session.execute(update(Message).where(Message.id == message_id).values(**values))
    db.session.commit()

    guard(METRICS_TOKEN=TOKEN)
    response = client.get("/metrics", headers={"Authorization": "Bearer " + TOKEN})
    found = samples(response.get_data(as_text=True))

    assert value(found, "signup_metrics_database_up") == 1
    assert value(found, "signup_calls_unprocessed", state="pending") == 1
    assert value(found, "signup_calls_unprocessed", state="queued") == 1
    assert value(found, "signup_calls_oldest_unprocessed_age_seconds") == 120
    assert value(found, "signup_sms_messages", status="failed") == 1
    assert value(found, "signup_sms_messages", status="undelivered") == 1
    assert value(found, "signup_sms_messages", status="queued") == 1
    assert value(found, "signup_sms_messages", status="delivered") == 0
    assert value(found, "signup_sms_errors", status="failed", error_code="21211") == 1
    assert value(found, "signup_sms_errors", status="undelivered", error_code="30005") == 1
    assert value(found, "signup_sms_oldest_due_age_seconds") == 45


def test_empty_outbox_reads_zero(client: FlaskClient, guard: Any) -> None:
    guard(METRICS_TOKEN=TOKEN)
    found = samples(
        client.get("/metrics", headers={"Authorization": "Bearer " + TOKEN}).get_data(as_text=True)
    )
    assert value(found, "signup_calls_unprocessed", state="pending") == 0
    assert value(found, "signup_calls_oldest_unprocessed_age_seconds") == 0
    assert value(found, "signup_sms_oldest_due_age_seconds") == 0


def test_metrics_of_other_features_in_the_default_registry_are_exposed(
    client: FlaskClient, guard: Any
) -> None:
    PROBE.labels(kind="webhook").inc()
    guard(METRICS_TOKEN=TOKEN)
    text = client.get("/metrics", headers={"Authorization": "Bearer " + TOKEN}).get_data(
        as_text=True
    )
    assert value(samples(text), "signup_test_probe_total", kind="webhook") is not None


def _count(task: str, outcome: str) -> float:
    found = REGISTRY.get_sample_value(
        "signup_task_duration_seconds_count", {"task": task, "outcome": outcome}
    )
    return found or 0.0


def test_task_durations_and_failures_from_celery_signals(
    app: Flask, client: FlaskClient, guard: Any
) -> None:
    celery_app = app.extensions["celery"]

    @celery_app.task(name="tests.metrics.fine")
    def fine() -> int:
        return 1

    @celery_app.task(name="tests.metrics.broken")
    def broken() -> None:
        raise LookupError("boom")

    before_ok = _count("tests.metrics.fine", "success")
    before_failed = _count("tests.metrics.broken", "failure")
    fine.apply()
    fine.apply()
    broken.apply()
    assert _count("tests.metrics.fine", "success") == before_ok + 2
    assert _count("tests.metrics.broken", "failure") == before_failed + 1
    failures = REGISTRY.get_sample_value(
        "signup_task_failures_total", {"task": "tests.metrics.broken", "exception": "LookupError"}
    )
    assert failures is not None and failures >= 1

    guard(METRICS_TOKEN=TOKEN)
    text = client.get("/metrics", headers={"Authorization": "Bearer " + TOKEN}).get_data(
        as_text=True
    )
    found = samples(text)
    exposed = value(
        found, "signup_task_duration_seconds_count", task="tests.metrics.fine", outcome="success"
    )
    assert exposed == before_ok + 2


class Captured(logging.Handler):
    """Keeps each record formatted by the production JSON formatter at the moment it is logged."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def captured() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def test_request_log_lines_carry_the_request_id(client: FlaskClient, captured: Captured) -> None:
    path = "/webhooks/twilio/voice"
    params = call_params("CA" + "e" * 32, "+919911278181", "+918047259725")
    bad = {"X-Twilio-Signature": sign(path, params, token="wrong")}
    response = client.post(path, data=params, headers=bad)
    assert response.status_code == 403
    generated = response.headers["X-Request-Id"]
    [line] = [line for line in captured.lines if line["event"] == "webhook.forbidden"]
    assert line["request_id"] == generated
    assert "+919911278181" not in json.dumps(line)  # still masked

    kept = client.post(path, data=params, headers={**bad, "X-Request-Id": "lb-7f3a.42"})
    assert kept.headers["X-Request-Id"] == "lb-7f3a.42"
    assert captured.lines[-1]["request_id"] == "lb-7f3a.42"

    odd = client.get("/healthz", headers={"X-Request-Id": "x" * 65})
    assert odd.headers["X-Request-Id"] != "x" * 65
    assert len(odd.headers["X-Request-Id"]) == 16


def test_task_log_lines_carry_the_task_id(app: Flask, captured: Captured) -> None:
    celery_app = app.extensions["celery"]
    log = logging.getLogger("tests.metrics.task")

    @celery_app.task(name="tests.metrics.logs")
    def logs_something() -> None:
        log.info("task.says_hello")

    result = logs_something.apply()
    [line] = [line for line in captured.lines if line["event"] == "task.says_hello"]
    assert line["task_id"] == result.id
    log.info("after.the_task")
    assert "task_id" not in captured.lines[-1]
