"""What `signup serve` tells a newcomer, and the bare address leading to the admin."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from signup import clock
from signup.dev import banner, quiet_hours_note


@pytest.fixture
def clocked() -> Iterator[None]:
    yield
    clock.set_clock(None)


def test_the_bare_address_leads_to_the_admin(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302 and response.location.endswith("/admin/")


@pytest.mark.parametrize(
    ("utc_hour", "window", "says"),
    [
        (18, "22:00-06:00", "SMS wait until 06:00 IST"),  # 23:30 in India
        (0, "22:00-06:00", "SMS wait until 06:00 IST"),  # 05:30 in India
        (10, "22:00-06:00", "No SMS goes out during the quiet hours, 22:00-06:00"),
        (18, "off", "Quiet hours are off"),
    ],
)
def test_the_banner_says_when_the_sms_will_come_in_indian_time(
    app: Flask, clocked: None, utc_hour: int, window: str, says: str
) -> None:
    app.config["SMS_QUIET_HOURS"] = window
    try:
        with app.app_context():
            note = quiet_hours_note(datetime(2026, 12, 4, utc_hour, 0, tzinfo=UTC))
    finally:
        app.config["SMS_QUIET_HOURS"] = "off"
    assert says in note
    if "wait" in says:
        assert "SMS_QUIET_HOURS=off" in note


def test_the_banner_names_the_admin_and_how_to_get_an_account(app: Flask) -> None:
    with app.app_context():
        text = banner("http://127.0.0.1:5000")
    assert "http://127.0.0.1:5000/admin/" in text
    assert "signup user create --email" in text and "--role admin" in text
    assert "call.processed" in text
