"""The production webhook path: one autocommit INSERT, and a dead pooled connection retried."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from signup import create_app
from signup.calls.models import Call
from signup.extensions import db
from tests.helpers import base_config, call_params, post_signed, twilio_sid
from tests.integration.factories import NUMBER

PATH = "/webhooks/twilio/voice"


@pytest.fixture
def production(committed: Flask) -> Flask:
    """An app configured like production (autocommit on) against the committed test database."""
    return create_app(base_config(WEBHOOK_AUTOCOMMIT=True))


def rows() -> int:
    db.session.remove()
    return db.session.scalar(select(func.count()).select_from(Call)) or 0


def test_the_call_is_committed_before_the_answer(production: Flask) -> None:
    client = production.test_client()
    for label, expected in (("CA1", 1), ("CA2", 2), ("CA1", 2)):  # the last is Twilio retrying
        sid = twilio_sid(label)
        response = post_signed(client, PATH, call_params(sid, "+919911278181", NUMBER))
        assert response.status_code == 200 and b"Reject" in response.data
        assert rows() == expected  # seen from another connection: committed before the answer


def test_a_dead_pooled_connection_is_replaced_and_the_call_kept(production: Flask) -> None:
    client = production.test_client()
    post_signed(client, PATH, call_params(twilio_sid("CA10"), "+919911278181", NUMBER))
    # Kill every connection the app's pool holds, as a PostgreSQL restart would.
    with production.app_context(), db.engine.connect() as admin:
        admin.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name = 'missed-call-signup'"
            )
        )
        admin.commit()
    response = post_signed(client, PATH, call_params(twilio_sid("CA11"), "+919911278182", NUMBER))
    assert response.status_code == 200
    assert rows() == 2
