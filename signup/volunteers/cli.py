"""`signup export volunteers`."""

from __future__ import annotations

import getpass
import os
import sys
import tempfile
from pathlib import Path

import click
from flask import current_app

from signup.errors import ValidationError
from signup.extensions import db
from signup.volunteers import erasure
from signup.volunteers.export import CsvExport, VolunteerFilter


@click.group()
def export() -> None:
    """Export data as CSV."""


@export.command("volunteers")
@click.option("--output", required=True, help="A file path, or - for standard output.")
@click.option("--campaign", default=None, help="Only volunteers of this campaign (slug).")
@click.option("--status", default=None, help="Only volunteers with this status.")
def volunteers(output: str, campaign: str | None, status: str | None) -> None:
    """Write the volunteers CSV (the same file as the admin export), streamed."""
    filters = VolunteerFilter(campaign=campaign, status=status)
    timezone = current_app.config["SIGNUP_TIMEZONE"]
    try:
        filters.condition()  # refuse bad filters before touching the output
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from exc
    if output == "-":
        for chunk in CsvExport(filters, timezone):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    target = Path(output)
    if not target.parent.is_dir():
        raise click.ClickException(f"folder {target.parent} does not exist")
    stream = CsvExport(filters, timezone)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in stream:
                handle.write(chunk)
        os.replace(tmp, target)  # a failed export leaves no half-written file behind
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    click.echo(f"wrote {stream.rows} volunteers to {target}", err=True)


def _operator() -> str:
    """Who runs the CLI, for the audit log: the OS user, when the system knows one."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


@click.group()
def volunteer() -> None:
    """Manage individual volunteers."""


@volunteer.command("erase")
@click.argument("phone")
def erase(phone: str) -> None:
    """Erase a person's data; only a keyed hash stays, so they are never messaged again."""
    try:
        tombstone = erasure.erase(phone, f"cli:{_operator()}")
        db.session.commit()
    except ValidationError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    click.echo(f"erased volunteer {tombstone.id}: personal data removed, number suppressed")
