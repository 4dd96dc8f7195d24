"""Request and task ids in log lines, the /metrics access decision, and rate-limit metrics."""

from __future__ import annotations

import json
import logging

from prometheus_client import REGISTRY

from signup import logs
from signup.logcontext import incoming_id
from signup.messaging.ratelimit import LocalRateLimiter
from signup.metrics import access

TOKEN = "0123456789abcdef0123"


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("signup.test", logging.INFO, __file__, 1, "thing.happened", (), None)
    rec.__dict__.update(extra)
    return rec


def test_json_lines_carry_the_ids_in_context_and_nothing_outside() -> None:
    formatter = logs.JsonFormatter()
    assert "request_id" not in json.loads(formatter.format(record()))
    rid, tid = logs.request_id.set("req-1"), logs.task_id.set("task-1")
    try:
        line = json.loads(formatter.format(record(caller="+91 99XXX XX181")))
    finally:
        logs.request_id.reset(rid)
        logs.task_id.reset(tid)
    assert (line["request_id"], line["task_id"]) == ("req-1", "task-1")
    assert line["caller"] == "+91 99XXX XX181"


def test_text_lines_carry_the_request_id() -> None:
    token = logs.request_id.set("req-2")
    try:
        assert "request_id=req-2" in logs.TextFormatter().format(record())
    finally:
        logs.request_id.reset(token)


def test_a_record_own_id_wins() -> None:
    token = logs.task_id.set("outer")
    try:
        line = json.loads(logs.JsonFormatter().format(record(task_id="explicit")))
    finally:
        logs.task_id.reset(token)
    assert line["task_id"] == "explicit"


def test_incoming_request_ids_are_kept_only_when_sane() -> None:
    for sane in ("abc", "7f3a-01.b:c_d", "A" * 64):
        assert incoming_id(sane) == sane
    for odd in (None, "", "a b", "x" * 65, "id\nforged: 1", "ü", '"><script>'):
        fresh = incoming_id(odd)
        assert fresh != odd and len(fresh) == 16
    assert incoming_id(None) != incoming_id(None)


def test_decide_covers_every_combination() -> None:
    off = access.policy({"SIGNUP_ENV": "production"})
    dev = access.policy({"SIGNUP_ENV": "development"})
    token = access.policy({"SIGNUP_ENV": "production", "METRICS_TOKEN": TOKEN})
    both = access.policy(
        {"SIGNUP_ENV": "development", "METRICS_TOKEN": TOKEN, "METRICS_ALLOW": "::1,10.0.0.0/8"}
    )
    bearer = "Bearer " + TOKEN
    assert access.decide(off, bearer, "127.0.0.1") == 404
    assert access.decide(dev, None, "127.0.0.1") == 200
    assert access.decide(token, None, "127.0.0.1") == 401
    assert access.decide(token, "bearer " + TOKEN, None) == 200
    assert access.decide(token, "Bearer " + TOKEN + "x", None) == 401
    assert access.decide(both, bearer, "::1") == 200
    assert access.decide(both, bearer, "10.2.3.4") == 200
    assert access.decide(both, None, "10.2.3.4") == 401  # configured: development is not open
    assert access.decide(both, bearer, "11.0.0.1") == 403
    assert access.decide(both, bearer, "not-an-address") == 403


def _waits(provider: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "signup_sms_rate_limit_wait_seconds_count", {"provider": provider}
        )
        or 0.0
    )


def _deferred(provider: str) -> float:
    return (
        REGISTRY.get_sample_value("signup_sms_rate_limit_deferred_total", {"provider": provider})
        or 0.0
    )


def test_rate_limit_waits_and_deferrals_are_counted_by_provider() -> None:
    limiter = LocalRateLimiter(rate=1, burst=1, max_wait=1.5)
    key = "unit-test:AC123"
    waits, deferred = _waits("unit-test"), _deferred("unit-test")
    grants = [limiter.acquire(key) for _ in range(3)]
    assert [g.reserved for g in grants] == [True, True, False]
    assert _waits("unit-test") == waits + 2
    assert _deferred("unit-test") == deferred + 1
    zero_waits = REGISTRY.get_sample_value(
        "signup_sms_rate_limit_wait_seconds_bucket", {"provider": "unit-test", "le": "0.0"}
    )
    assert zero_waits is not None and zero_waits >= 1
