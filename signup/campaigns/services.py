"""Create, list and route campaigns."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import or_, select

from signup.campaigns.models import Campaign
from signup.errors import ValidationError
from signup.extensions import db
from signup.messaging import texts
from signup.phones import parse_number_argument

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True, slots=True)
class Route:
    """The campaign a dialled number belongs to, and whether it is the opt-out number."""

    campaign: Campaign
    is_optout: bool


def _number(raw: str, label: str) -> str:
    try:
        return parse_number_argument(raw)
    except ValueError as exc:
        raise ValidationError(f"{label}: {exc}") from exc


def _ensure_number_free(number: str, label: str) -> None:
    taken = db.session.scalar(
        select(Campaign.slug).where(
            or_(Campaign.number == number, Campaign.optout_number == number)
        )
    )
    if taken is not None:
        raise ValidationError(f"{label} {number} already belongs to campaign '{taken}'")


def create_campaign(
    *,
    slug: str,
    name: str,
    number: str,
    optout_number: str | None = None,
    language: str = "en",
    sms_text: str | None = None,
) -> Campaign:
    """Validate and add a campaign; raises ValidationError with one clear line."""
    slug = slug.strip().lower()
    name = name.strip()
    if not SLUG_RE.match(slug):
        raise ValidationError("slug must be 1-63 lowercase letters, digits or '-'")
    if not name or len(name) > 120:
        raise ValidationError("name must be 1-120 characters")
    if language not in texts.LANGUAGES:
        raise ValidationError(f"language must be one of {', '.join(texts.LANGUAGES)}")
    if db.session.scalar(select(Campaign.id).where(Campaign.slug == slug)) is not None:
        raise ValidationError(f"a campaign with slug '{slug}' already exists")
    main = _number(number, "number")
    optout = _number(optout_number, "opt-out number") if optout_number else None
    if optout == main:
        raise ValidationError("the opt-out number must differ from the campaign number")
    _ensure_number_free(main, "number")
    if optout:
        _ensure_number_free(optout, "opt-out number")
    if sms_text is not None:
        texts.validate_sms_text(sms_text, name=name, has_optout_number=optout is not None)
    campaign = Campaign(
        slug=slug,
        name=name,
        number=main,
        optout_number=optout,
        language=language,
        sms_text=sms_text or None,
    )
    db.session.add(campaign)
    db.session.flush()
    return campaign


def list_campaigns() -> list[Campaign]:
    """All campaigns, oldest first."""
    return list(db.session.scalars(select(Campaign).order_by(Campaign.id)))


def get_by_slug(slug: str) -> Campaign | None:
    """The campaign with this slug, if any."""
    return db.session.scalar(select(Campaign).where(Campaign.slug == slug))


def route(called: str | None) -> Route | None:
    """Find the campaign whose number or opt-out number was dialled."""
    if not called:
        return None
    campaign = db.session.scalar(
        select(Campaign).where(or_(Campaign.number == called, Campaign.optout_number == called))
    )
    if campaign is None:
        return None
    return Route(campaign, is_optout=campaign.optout_number == called)
