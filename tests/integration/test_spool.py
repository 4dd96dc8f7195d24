"""PostgreSQL refusing connections: the webhook still rejects, the call waits in the spool,
and is recorded once the database is back, once, with its real time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import func, select

from signup import create_app
from signup.calls.models import Call
from signup.calls.spool import REDIS_KEY
from signup.extensions import db
from tests.helpers import base_config, call_params, post_signed, twilio_sid
from tests.integration.factories import NUMBER

DEAD_DB = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
PATH = "/webhooks/twilio/voice"


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIGNUP_INSTANCE_PATH", str(tmp_path / "instance"))
    return tmp_path / "instance"


def ring(app: Flask, sid: str, caller: str = "+919911278181") -> Any:
    started = time.monotonic()
    response = post_signed(app.test_client(), PATH, call_params(sid, caller, NUMBER))
    assert response.status_code == 200 and b'<Reject reason="busy"' in response.data
    assert time.monotonic() - started < 5  # far inside Twilio's 15 s
    return response


def calls_recorded() -> int:
    db.session.remove()
    return db.session.scalar(select(func.count()).select_from(Call)) or 0


def test_calls_wait_in_redis_while_postgres_is_down(
    committed: Flask, instance: Path, redis_client: redis.Redis
) -> None:
    redis_client.delete(REDIS_KEY)
    down = create_app(base_config(SQLALCHEMY_DATABASE_URI=DEAD_DB))
    for label in ("CA01", "CA02", "CA03", "CA01"):  # the last is Twilio retrying the first
        ring(down, twilio_sid(label))
    assert redis_client.llen(REDIS_KEY) == 4
    assert calls_recorded() == 0
    assert committed.extensions["call_spool"].replay_redis() == 4
    assert calls_recorded() == 3  # one call per CallSid
    assert redis_client.llen(REDIS_KEY) == 0
    ages = [time.time() - c.timestamp() for c in db.session.scalars(select(Call.received_at))]
    assert all(0 <= age < 60 for age in ages)  # the time it rang, not the replay's


def test_without_redis_too_calls_go_to_an_fsynced_file(committed: Flask, instance: Path) -> None:
    down = create_app(
        base_config(SQLALCHEMY_DATABASE_URI=DEAD_DB, REDIS_URL="redis://127.0.0.1:1/0")
    )
    for sid in (twilio_sid("CA11"), twilio_sid("CA12")):
        ring(down, sid)
    files = list((instance / "spool").glob("calls-*.jsonl"))
    assert len(files) == 1 and len(files[0].read_text().splitlines()) == 2
    assert "+919911278181" in files[0].read_text()
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"  # personal data: owner only
    back = create_app(base_config())  # same instance folder, the database is back
    with back.app_context():
        assert back.extensions["call_spool"].replay_files() == 2
        assert back.extensions["call_spool"].replay_files() == 0
    assert calls_recorded() == 2
    assert list((instance / "spool").iterdir()) == []


def test_the_web_process_replays_its_file_by_itself(committed: Flask, instance: Path) -> None:
    down = create_app(
        base_config(SQLALCHEMY_DATABASE_URI=DEAD_DB, REDIS_URL="redis://127.0.0.1:1/0")
    )
    ring(down, twilio_sid("CA21"))
    create_app(base_config())  # a restarted web process finds the file and replays it
    deadline = time.monotonic() + 15
    while calls_recorded() < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert calls_recorded() == 1


def test_a_replay_cut_off_midway_is_finished_next_time(committed: Flask, instance: Path) -> None:
    down = create_app(
        base_config(SQLALCHEMY_DATABASE_URI=DEAD_DB, REDIS_URL="redis://127.0.0.1:1/0")
    )
    ring(down, twilio_sid("CA31"))
    [spooled] = list((instance / "spool").glob("calls-*.jsonl"))
    spooled.rename(spooled.with_name(spooled.name + ".replaying"))  # a replayer died holding it
    back = create_app(base_config())
    with back.app_context():
        assert back.extensions["call_spool"].replay_files() == 1
    assert calls_recorded() == 1


def test_a_replay_into_a_database_still_down_loses_nothing(
    instance: Path, redis_client: redis.Redis
) -> None:
    redis_client.delete(REDIS_KEY)
    down = create_app(base_config(SQLALCHEMY_DATABASE_URI=DEAD_DB))
    ring(down, twilio_sid("CA41"))
    with down.app_context(), pytest.raises(Exception):  # noqa: B017
        down.extensions["call_spool"].replay_redis()
    assert redis_client.llen(REDIS_KEY) == 1
    redis_client.delete(REDIS_KEY)
