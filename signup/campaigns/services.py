"""Create, change, list and route campaigns; every save re-checks texts and DLT templates."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select

from signup import clock
from signup.campaigns.models import Blackout, Campaign, CampaignNotice, DltTemplate
from signup.errors import ValidationError
from signup.extensions import db
from signup.messaging import dlt, schedule, texts
from signup.messaging.models import MessageKind
from signup.phones import parse_number_argument

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
UNSET = object()  # "leave as it is" for update_campaign
# The longest no-SMS period one entry may set: a silence period is 48 hours, a whole election
# phase a few weeks; anything longer is a typo (9999 for 2026), and it can be added in parts.
MAX_BLACKOUT = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class Route:
    """The campaign a dialled number belongs to, and whether it is the opt-out number."""

    campaign: Campaign
    is_optout: bool


def _number(raw: str, label: str | LazyString) -> str:
    try:
        return parse_number_argument(raw)
    except ValueError as exc:
        raise ValidationError(_l("%(field)s: %(problem)s", field=label, problem=exc)) from exc


def _ensure_number_free(
    number: str, label: str | LazyString, campaign_id: int | None = None
) -> None:
    """Refuse a number another campaign uses, without naming it: the caller may not see it."""
    query = select(Campaign.id).where(
        or_(Campaign.number == number, Campaign.optout_number == number)
    )
    if campaign_id is not None:
        query = query.where(Campaign.id != campaign_id)
    if db.session.scalar(query) is not None:
        raise ValidationError(
            _l(
                "%(field)s %(number)s already belongs to another campaign",
                field=label,
                number=number,
            )
        )


def _check_texts(campaign: Campaign) -> None:
    """Refuse texts that cannot be trusted or rendered, and bodies that break a DLT template."""
    has_optout = campaign.optout_number is not None
    if campaign.sms_text is not None:
        texts.validate_sms_text(campaign.sms_text, name=campaign.name, has_optout_number=has_optout)
    for label, custom in (
        ("opt-out text", campaign.optout_text),
        ("help text", campaign.help_text),
    ):
        if custom is not None:
            try:
                texts.validate_text(
                    custom,
                    name=campaign.name,
                    has_optout_number=has_optout,
                    must_say_how_to_leave=label == "help text",
                )
            except ValidationError as exc:
                raise ValidationError(
                    _l("%(field)s: %(problem)s", field=label, problem=exc)
                ) from exc
    if campaign.quiet_hours is not None:
        schedule.parse_window(campaign.quiet_hours)
    for template in templates(campaign):
        body = texts.render(template.kind, campaign)
        try:
            dlt.match(body, template.text)
        except ValidationError as exc:
            raise ValidationError(
                _l(
                    "%(kind)s SMS vs DLT template %(template)s: %(problem)s",
                    kind=template.kind,
                    template=template.template_id,
                    problem=exc,
                )
            ) from exc


def _record_notice(campaign: Campaign) -> None:
    """Keep the onboarding text as a numbered notice version; bump it when the text changes."""
    text = texts.render(MessageKind.ONBOARDING, campaign)
    latest = db.session.scalar(
        select(CampaignNotice)
        .where(CampaignNotice.campaign_id == campaign.id)
        .order_by(CampaignNotice.version.desc())
        .limit(1)
    )
    if latest is not None and latest.text == text:
        return
    campaign.notice_version = latest.version + 1 if latest is not None else 1
    db.session.add(
        CampaignNotice(
            campaign_id=campaign.id,
            version=campaign.notice_version,
            text=text,
            created_at=clock.now(),
        )
    )
    db.session.flush()


@dataclass(frozen=True, slots=True)
class CampaignSettings:
    """What an organiser sets on a campaign, everything but its slug (checked by _apply)."""

    name: str
    number: str
    optout_number: str | None = None
    language: str = "en"
    sms_text: str | None = None
    optout_text: str | None = None
    help_text: str | None = None
    quiet_hours: str | None = None

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignSettings:
        """A campaign's current settings."""
        return cls(**{name: getattr(campaign, name) for name in SETTINGS})


SETTINGS = tuple(f.name for f in fields(CampaignSettings))


def create_campaign(*, slug: str, settings: CampaignSettings) -> Campaign:
    """Validate and add a campaign; raises ValidationError with one clear line."""
    slug = slug.strip().lower()
    if not SLUG_RE.match(slug):
        raise ValidationError(_l("slug must be 1-63 lowercase letters, digits or '-'"))
    if db.session.scalar(select(Campaign.id).where(Campaign.slug == slug)) is not None:
        raise ValidationError(_l("a campaign with slug '%(slug)s' already exists", slug=slug))
    campaign = Campaign(slug=slug, notice_version=1)
    _apply(campaign, settings)
    db.session.add(campaign)
    db.session.flush()
    _record_notice(campaign)
    return campaign


def update_campaign(campaign: Campaign, **changes: object) -> Campaign:
    """Change some of a campaign's settings; the notice version moves when its text does."""
    unknown = set(changes) - set(SETTINGS)
    if unknown:
        raise ValidationError(_l("cannot change %(fields)s", fields=sorted(unknown)))
    given = {k: v for k, v in changes.items() if v is not UNSET}
    _apply(campaign, replace(CampaignSettings.of(campaign), **given))  # type: ignore[arg-type]
    db.session.flush()
    _record_notice(campaign)
    return campaign


def _apply(campaign: Campaign, settings: CampaignSettings) -> None:
    name = (settings.name or "").strip()
    if not name or len(name) > 120:
        raise ValidationError(_l("name must be 1-120 characters"))
    if settings.language not in texts.LANGUAGES:
        raise ValidationError(
            _l("language must be one of %(codes)s", codes=", ".join(texts.LANGUAGES))
        )
    main = _number(settings.number or "", _l("number"))
    optout = (
        _number(settings.optout_number, _l("opt-out number")) if settings.optout_number else None
    )
    if optout == main:
        raise ValidationError(_l("the opt-out number must differ from the campaign number"))
    _ensure_number_free(main, _l("number"), campaign.id)
    if optout:
        _ensure_number_free(optout, _l("opt-out number"), campaign.id)
    campaign.name, campaign.number, campaign.optout_number = name, main, optout
    campaign.language = settings.language
    campaign.sms_text = settings.sms_text or None
    campaign.optout_text = settings.optout_text or None
    campaign.help_text = settings.help_text or None
    campaign.quiet_hours = settings.quiet_hours or None
    _check_texts(campaign)


def set_dlt(campaign: Campaign, *, entity_id: str, header: str) -> None:
    """Record the campaign's DLT principal entity and sender header."""
    dlt.validate_registration(entity_id.strip(), header.strip())
    campaign.dlt_entity_id = entity_id.strip()
    campaign.dlt_header = header.strip().upper()
    db.session.flush()


def set_template(campaign: Campaign, *, kind: str, template_id: str, text: str) -> DltTemplate:
    """Register the DLT template for one kind of message; refused if our text would not match."""
    try:
        message_kind = MessageKind(kind)
    except ValueError:
        kinds = ", ".join(k.value for k in MessageKind)
        raise ValidationError(_l("kind must be one of %(kinds)s", kinds=kinds)) from None
    dlt.validate_template(template_id.strip(), text)
    body = texts.render(message_kind, campaign)
    try:
        dlt.match(body, text)
    except ValidationError as exc:
        raise ValidationError(
            _l(
                "%(kind)s SMS would not match: %(problem)s. Our text is: %(body)s",
                kind=message_kind,
                problem=exc,
                body=body,
            )
        ) from exc
    template = db.session.scalar(
        select(DltTemplate).where(
            DltTemplate.campaign_id == campaign.id, DltTemplate.kind == message_kind
        )
    )
    if template is None:
        template = DltTemplate(campaign_id=campaign.id, kind=message_kind)
        db.session.add(template)
    template.template_id = template_id.strip()
    template.text = text
    template.created_at = clock.now()
    db.session.flush()
    return template


def templates(campaign: Campaign) -> list[DltTemplate]:
    """The campaign's registered DLT templates."""
    if campaign.id is None:
        return []
    return list(
        db.session.scalars(
            select(DltTemplate)
            .where(DltTemplate.campaign_id == campaign.id)
            .order_by(DltTemplate.kind)
        )
    )


def template_for(campaign_id: int, kind: str) -> DltTemplate | None:
    """The DLT template registered for this campaign and kind of message, if any."""
    return db.session.scalar(
        select(DltTemplate).where(DltTemplate.campaign_id == campaign_id, DltTemplate.kind == kind)
    )


def add_blackout(
    campaign: Campaign, *, starts_at: datetime, ends_at: datetime, reason: str | None = None
) -> Blackout:
    """Add a period with no SMS (e.g. the Election Commission's 48-hour silence)."""
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise ValidationError(_l("blackout times need a time zone (e.g. 2026-05-01T18:00+05:30)"))
    if ends_at <= starts_at:
        raise ValidationError(_l("a blackout must end after it starts"))
    if ends_at - starts_at > MAX_BLACKOUT:
        raise ValidationError(
            _l("a blackout can last at most %(days)d days", days=MAX_BLACKOUT.days)
        )
    blackout = Blackout(
        campaign_id=campaign.id,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=(reason or "")[:200] or None,
    )
    db.session.add(blackout)
    db.session.flush()
    return blackout


def blackouts(campaign_id: int, after: datetime) -> list[tuple[datetime, datetime]]:
    """The campaign's blackout periods that have not ended by `after`, earliest first."""
    rows = db.session.execute(
        select(Blackout.starts_at, Blackout.ends_at)
        .where(Blackout.campaign_id == campaign_id, Blackout.ends_at > after)
        .order_by(Blackout.starts_at)
    )
    return [(start, end) for start, end in rows]


def list_campaigns() -> list[Campaign]:
    """All campaigns, oldest first."""
    return list(db.session.scalars(select(Campaign).order_by(Campaign.id)))


def get_by_slug(slug: str) -> Campaign | None:
    """The campaign with this slug, if any."""
    return db.session.scalar(select(Campaign).where(Campaign.slug == slug))


def notice_count(campaign: Campaign) -> int:
    """How many notice versions the campaign has had."""
    return (
        db.session.scalar(
            select(func.count())
            .select_from(CampaignNotice)
            .where(CampaignNotice.campaign_id == campaign.id)
        )
        or 0
    )


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
