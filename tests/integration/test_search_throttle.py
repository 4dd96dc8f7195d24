"""A viewer's searches by phone number are throttled per account (review finding 5).

Each exact hit reveals the whole number behind a masked row; names and other roles are free.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from signup.admin.access import Role
from signup.users.services import find_by_email
from tests.integration.admin_helpers import ALICE, as_user, new_request_globals

pytestmark = pytest.mark.usefixtures("db_session")
LIMIT = 3
ACCOUNTS = ["admin@x.org", "org@x.org", "org-b@x.org", "view@x.org", "view-kerala@x.org"]
# The same number as a person would type it, every way: each is a phone search.
SHAPES = [ALICE, ALICE[3:], "0" + ALICE[3:], f"{ALICE[3:8]} {ALICE[8:]}", ALICE + " "]


@pytest.fixture(autouse=True)
def small_limit(app: Flask) -> Iterator[None]:
    app.config["ADMIN_VIEWER_SEARCH_LIMIT"] = f"{LIMIT}/hour"
    yield
    app.config["ADMIN_VIEWER_SEARCH_LIMIT"] = "30/hour"


def search(client: FlaskClient, query: str, path: str = "/admin/volunteers") -> Any:
    new_request_globals()
    return client.get(path, query_string={"q": query})


@pytest.mark.parametrize("email", ACCOUNTS)
def test_phone_searches_are_throttled_exactly_for_roles_that_see_masked_numbers(
    client: FlaskClient, world: dict[str, Any], email: str
) -> None:
    as_user(client, email)
    user = find_by_email(email)
    assert user is not None
    masked = Role(user.role) is Role.VIEWER
    answers = [search(client, shape).status_code for shape in SHAPES]
    if masked:
        assert answers == [200] * LIMIT + [429] * (len(SHAPES) - LIMIT)
    else:
        assert set(answers) == {200}


def test_the_throttle_answers_in_the_admin_layout_and_spares_names_and_other_viewers(
    app: Flask, world: dict[str, Any]
) -> None:
    viewer, other = app.test_client(), app.test_client()
    as_user(viewer, "view@x.org")
    for _ in range(LIMIT):
        assert search(viewer, ALICE).status_code == 200
    refused = search(viewer, ALICE)
    assert refused.status_code == 429
    page = refused.get_data(as_text=True)
    assert "Too many requests" in page and 'href="/admin/volunteers"' in page
    assert search(viewer, "Asha").status_code in (200, 400)  # a name search is not throttled
    assert search(viewer, "").status_code == 200
    as_user(other, "view-kerala@x.org")
    assert search(other, ALICE).status_code == 200  # per account, not per address
