"""CampaignSettings: a campaign's settings read back whole, and bad changes refused clearly."""

from __future__ import annotations

import pytest

from signup.campaigns import services as campaigns
from signup.errors import ValidationError
from tests.integration.factories import campaign

pytestmark = pytest.mark.usefixtures("db_session")


def test_settings_read_back_what_was_set() -> None:
    created = campaign(language="hi", quiet_hours="21:00-09:00")
    settings = campaigns.CampaignSettings.of(created)
    assert settings.language == "hi" and settings.quiet_hours == "21:00-09:00"
    assert settings.number == created.number and settings.name == created.name


@pytest.mark.parametrize("field", ["name", "number"])
def test_clearing_a_required_setting_is_a_validation_error(field: str) -> None:
    created = campaign()
    with pytest.raises(ValidationError):
        campaigns.update_campaign(created, **{field: None})


def test_an_unknown_setting_is_refused() -> None:
    with pytest.raises(ValidationError, match="cannot change"):
        campaigns.update_campaign(campaign(), slug="other")
