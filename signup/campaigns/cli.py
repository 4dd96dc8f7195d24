"""`signup campaign create|list`."""

from __future__ import annotations

import click

from signup.campaigns import services
from signup.errors import ValidationError
from signup.extensions import db
from signup.messaging import segments, texts
from signup.messaging.models import MessageKind


@click.group()
def campaign() -> None:
    """Create and list campaigns."""


@campaign.command("create")
@click.option("--slug", required=True, help="Short id used in exports and URLs.")
@click.option("--name", required=True, help="The name volunteers see in SMS.")
@click.option("--number", required=True, help="The published missed-call number.")
@click.option("--optout-number", default=None, help="A second number that opts callers out.")
@click.option("--language", type=click.Choice(texts.LANGUAGES), default="en", show_default=True)
@click.option(
    "--sms-text", default=None, help="Onboarding SMS; may use {campaign} and {optout_number}."
)
def create(
    slug: str,
    name: str,
    number: str,
    optout_number: str | None,
    language: str,
    sms_text: str | None,
) -> None:
    """Create a campaign that owns a published number."""
    try:
        created = services.create_campaign(
            slug=slug,
            name=name,
            number=number,
            optout_number=optout_number,
            language=language,
            sms_text=sms_text,
        )
        body = texts.render(MessageKind.ONBOARDING, created)
        db.session.commit()
    except ValidationError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    count = segments.count(body)
    click.echo(
        f"created campaign {created.slug}: number {created.number}"
        + (f", opt-out number {created.optout_number}" if created.optout_number else "")
    )
    click.echo(
        f"onboarding SMS ({count.encoding}, {count.units} characters, "
        f"{count.segments} segment{'s' if count.segments != 1 else ''}):"
    )
    click.echo(f"  {body}")
    if count.segments > 2:
        click.echo(
            f"warning: the onboarding SMS takes {count.segments} segments; "
            "each is billed separately",
            err=True,
        )


@campaign.command("list")
def list_() -> None:
    """One line per campaign: slug, number, opt-out number, language, name."""
    for item in services.list_campaigns():
        click.echo(
            "\t".join([item.slug, item.number, item.optout_number or "-", item.language, item.name])
        )
