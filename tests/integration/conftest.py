"""Fixtures for the admin tests: login limits reset, and a small world of data and accounts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from signup.calls import services as calls
from signup.extensions import db, limiter
from signup.users import services as users
from signup.users.models import UserCampaign, UserState
from signup.volunteers.models import Volunteer
from tests.integration.admin_helpers import A_NUMBER, ALICE, B_NUMBER, BOB, CHITRA, PASSWORD
from tests.integration.factories import campaign, inbound


@pytest.fixture
def fresh_limits(app: Flask) -> Iterator[None]:
    with app.app_context():
        limiter.reset()
    yield
    with app.app_context():
        limiter.reset()


@pytest.fixture
def world(fresh_limits: None) -> dict[str, Any]:
    """Two campaigns, three volunteers, and an account of every kind."""
    a = campaign("a", A_NUMBER, "+918047259726", name="Alpha")
    b = campaign("b", B_NUMBER, None, name="Beta")
    for phone, to in ((ALICE, A_NUMBER), (BOB, B_NUMBER), (CHITRA, A_NUMBER), (CHITRA, B_NUMBER)):
        calls.process_call(inbound(phone, to).id)
    states = {ALICE: "Bihar", BOB: "Kerala", CHITRA: "Bihar"}
    for phone, state in states.items():
        db.session.query(Volunteer).filter_by(phone=phone).update({"state": state})
    accounts = {}
    for email, role in (
        ("admin@x.org", "admin"),
        ("org@x.org", "organiser"),
        ("view@x.org", "viewer"),
        ("org-b@x.org", "organiser"),
        ("view-kerala@x.org", "viewer"),
    ):
        accounts[email] = users.create_user(email=email, role=role, password=PASSWORD)
    db.session.add(UserCampaign(user_id=accounts["org-b@x.org"].id, campaign_id=b.id))
    db.session.add(UserState(user_id=accounts["view-kerala@x.org"].id, state="Kerala"))
    db.session.commit()
    return {"a": a, "b": b, "ids": {v.phone: v.id for v in db.session.scalars(select(Volunteer))}}
