"""`signup campaign create|update|list|dlt|template|blackout`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from signup import moments
from signup.campaigns import services
from signup.campaigns.models import Campaign
from signup.errors import ValidationError
from signup.extensions import db
from signup.messaging import segments, texts
from signup.messaging.models import MessageKind

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _text_options(func: F) -> F:
    """Options shared by create and update (all optional)."""
    for option in reversed(
        [
            click.option(
                "--sms-text",
                default=None,
                help="Onboarding SMS; may use {campaign}, {optout_number}, {number}.",
            ),
            click.option("--optout-text", default=None, help="Opt-out confirmation SMS."),
            click.option("--help-text", default=None, help="Answer to HELP/INFO replies."),
            click.option(
                "--quiet-hours",
                default=None,
                help="No SMS in this local window, e.g. 21:00-09:00, or 'off'; "
                "default SMS_QUIET_HOURS.",
            ),
        ]
    ):
        func = option(func)
    return func


def _save(action: Callable[[], T]) -> T:
    """Run a change and commit it, or roll back and exit with one line."""
    try:
        result = action()
        db.session.commit()
    except ValidationError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    return result


def _campaign(slug: str) -> Campaign:
    campaign = services.get_by_slug(slug)
    if campaign is None:
        raise click.ClickException(f"no campaign with slug '{slug}'")
    return campaign


def _show_texts(campaign: Campaign) -> None:
    """Print each SMS the campaign sends with its encoding and segments; warn above two."""
    kinds = [MessageKind.ONBOARDING, MessageKind.HELP]
    if campaign.optout_number:
        kinds.insert(1, MessageKind.OPTOUT_CONFIRMATION)
    for kind in kinds:
        body = texts.render(kind, campaign)
        count = segments.count(body)
        label = kind.value.replace("_", " ")
        plural = "s" if count.segments != 1 else ""
        click.echo(
            f"{label} SMS ({count.encoding}, {count.units} characters, "
            f"{count.segments} segment{plural}):"
        )
        click.echo(f"  {body}")
        if count.segments > 2:
            click.echo(
                f"warning: the {label} SMS takes {count.segments} segments; "
                "each is billed separately",
                err=True,
            )


@click.group()
def campaign() -> None:
    """Create, change and list campaigns."""


@campaign.command("create")
@click.option("--slug", required=True, help="Short id used in exports and URLs.")
@click.option("--name", required=True, help="The name volunteers see in SMS.")
@click.option("--number", required=True, help="The published missed-call number.")
@click.option("--optout-number", default=None, help="A second number that opts callers out.")
@click.option("--language", type=click.Choice(texts.LANGUAGES), default="en", show_default=True)
@_text_options
def create(slug: str, **settings: Any) -> None:
    """Create a campaign that owns a published number."""
    created = _save(
        lambda: services.create_campaign(slug=slug, settings=services.CampaignSettings(**settings))
    )
    click.echo(
        f"created campaign {created.slug}: number {created.number}"
        + (f", opt-out number {created.optout_number}" if created.optout_number else "")
    )
    _show_texts(created)


@campaign.command("update")
@click.argument("slug")
@click.option("--name", default=None)
@click.option("--number", default=None)
@click.option("--optout-number", default=None)
@click.option("--language", type=click.Choice(texts.LANGUAGES), default=None)
@_text_options
def update(slug: str, **changes: str | None) -> None:
    """Change a campaign; a new onboarding text becomes a new notice version."""
    campaign_ = _campaign(slug)
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        raise click.UsageError("nothing to change")
    before = campaign_.notice_version
    updated = _save(lambda: services.update_campaign(campaign_, **given))
    click.echo(
        f"updated campaign {updated.slug}"
        + (
            f"; notice is now version {updated.notice_version}"
            if updated.notice_version != before
            else ""
        )
    )
    _show_texts(updated)


@campaign.command("list")
def list_() -> None:
    """One line per campaign: slug, number, opt-out number, language, name."""
    for item in services.list_campaigns():
        click.echo(
            "\t".join([item.slug, item.number, item.optout_number or "-", item.language, item.name])
        )


@campaign.command("dlt")
@click.argument("slug")
@click.option("--entity-id", required=True, help="DLT principal entity id (digits).")
@click.option("--header", required=True, help="DLT sender header (6 characters).")
def dlt_(slug: str, entity_id: str, header: str) -> None:
    """Record the campaign's DLT entity and sender header."""
    campaign_ = _campaign(slug)
    _save(lambda: services.set_dlt(campaign_, entity_id=entity_id, header=header))
    click.echo(f"{slug}: DLT entity {campaign_.dlt_entity_id}, header {campaign_.dlt_header}")
    missing = [
        k
        for k in (MessageKind.ONBOARDING, MessageKind.OPTOUT_CONFIRMATION)
        if services.template_for(campaign_.id, k) is None
    ]
    if missing:
        click.echo(
            "warning: no DLT template yet for "
            + ", ".join(missing)
            + " (signup campaign template)",
            err=True,
        )


@campaign.command("template")
@click.argument("slug")
@click.option("--kind", required=True, type=click.Choice([k.value for k in MessageKind]))
@click.option("--template-id", required=True, help="The DLT content template id.")
@click.option("--text", required=True, help="The registered text, with {#var#} slots.")
def template(slug: str, kind: str, template_id: str, text: str) -> None:
    """Register a DLT template; refused unless our SMS matches it exactly."""
    campaign_ = _campaign(slug)
    _save(
        lambda: (
            services.set_template(campaign_, kind=kind, template_id=template_id, text=text),
            campaign_,
        )[1]
    )
    click.echo(f"{slug}: {kind} SMS matches DLT template {template_id}")


def _moment(raw: str, label: str) -> datetime:
    try:
        return moments.parse_moment(raw, label)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint=label) from exc


@campaign.command("blackout")
@click.argument("slug")
@click.option(
    "--start", "start", required=True, help="ISO 8601 with offset, e.g. 2026-05-01T18:00+05:30."
)
@click.option("--end", "end", required=True, help="ISO 8601 with offset.")
@click.option("--reason", default=None, help="e.g. 'ECI silence period, phase 2'.")
def blackout(slug: str, start: str, end: str, reason: str | None) -> None:
    """Add a period with no SMS for this campaign; sending resumes after it."""
    campaign_ = _campaign(slug)
    starts, ends = _moment(start, "--start"), _moment(end, "--end")
    _save(
        lambda: (
            services.add_blackout(campaign_, starts_at=starts, ends_at=ends, reason=reason),
            campaign_,
        )[1]
    )
    click.echo(f"{slug}: no SMS from {starts.isoformat()} to {ends.isoformat()}")
