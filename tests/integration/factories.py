"""Small builders for test data, going through the real services."""

from __future__ import annotations

import itertools

from signup.calls import services as calls
from signup.calls.models import Call
from signup.calls.providers import InboundCall
from signup.campaigns import services as campaigns
from signup.campaigns.models import Campaign
from signup.extensions import db

NUMBER = "+918047259725"
OPTOUT = "+918047259726"
_sids = itertools.count(1)


def campaign(
    slug: str = "jan", number: str = NUMBER, optout: str | None = OPTOUT, **kw: str
) -> Campaign:
    """A campaign created through the service."""
    settings = campaigns.CampaignSettings(
        name=kw.pop("name", "Jan Seva Abhiyan"), number=number, optout_number=optout, **kw
    )
    return campaigns.create_campaign(slug=slug, settings=settings)


def inbound(from_: str, to: str = NUMBER, sid: str | None = None) -> Call:
    """Record a call as the webhook would and return its row."""
    sid = sid or f"CA{next(_sids):032x}"
    calls.record_inbound(InboundCall("twilio", sid, from_, to))
    db.session.flush()
    call = db.session.query(Call).filter_by(provider_call_id=sid).one()
    return call
