"""No message names a campaign beyond the account's scope (review finding 7)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from signup.extensions import db
from signup.users import services as users
from signup.users.models import UserCampaign
from tests.integration.admin_helpers import A_NUMBER, PASSWORD, as_user, token
from tests.integration.factories import campaign

pytestmark = pytest.mark.usefixtures("db_session")
HIDDEN_SLUG, HIDDEN_NAME = "zeta-hidden", "Zeta Hidden Campaign"
HIDDEN_NUMBER, HIDDEN_OPTOUT = "+918047250077", "+918047250078"
SETTINGS = {
    "name": "Alpha",
    "number": A_NUMBER,
    "optout_number": "+918047259726",
    "language": "en",
    "quiet_hours": "",
    "sms_text": "",
    "optout_text": "",
    "help_text": "",
}


@pytest.fixture
def scoped_admin(client: FlaskClient, world: dict[str, Any]) -> FlaskClient:
    """An admin limited to campaign `a`, with a campaign it may not see."""
    campaign(HIDDEN_SLUG, HIDDEN_NUMBER, HIDDEN_OPTOUT, name=HIDDEN_NAME)
    account = users.create_user(email="admin-a@x.org", role="admin", password=PASSWORD)
    db.session.add(UserCampaign(user_id=account.id, campaign_id=world["a"].id))
    db.session.commit()
    return as_user(client, "admin-a@x.org")


def shown(response: Any) -> str:
    return response.get_data(as_text=True)


@pytest.mark.parametrize("field", ["number", "optout_number"])
@pytest.mark.parametrize("taken", [HIDDEN_NUMBER, HIDDEN_OPTOUT])
def test_a_number_of_a_hidden_campaign_is_refused_without_naming_it(
    scoped_admin: FlaskClient, field: str, taken: str
) -> None:
    """Every number field of the campaign form, set to either number of the hidden campaign."""
    form = {**SETTINGS, field: taken, "action": "settings"}
    form["csrf_token"] = token(scoped_admin, "/admin/campaigns/a")
    page = shown(scoped_admin.post("/admin/campaigns/a", data=form, follow_redirects=True))
    assert "already belongs to another campaign" in page
    assert HIDDEN_SLUG not in page and HIDDEN_NAME not in page


@pytest.mark.parametrize(
    "action", ["settings", "dlt", "template", "blackout"]
)  # every action of the campaign page
def test_no_campaign_page_answer_names_a_hidden_campaign(
    scoped_admin: FlaskClient, action: str
) -> None:
    """Every field filled with the hidden campaign's numbers, slug and name."""
    values = [HIDDEN_NUMBER, HIDDEN_OPTOUT, HIDDEN_SLUG, HIDDEN_NAME]
    for value in values:
        form = {name: value for name in [*SETTINGS, "entity_id", "header", "kind", "text"]}
        form |= {"action": action, "csrf_token": token(scoped_admin, "/admin/campaigns/a")}
        page = shown(scoped_admin.post("/admin/campaigns/a", data=form, follow_redirects=True))
        page = page.replace(value, "")  # the value typed may be echoed back; nothing else
        assert HIDDEN_SLUG not in page and HIDDEN_NAME not in page
