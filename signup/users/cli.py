"""`signup user create` and `signup user set-password`."""

from __future__ import annotations

import os

import click

from signup.errors import ValidationError
from signup.extensions import db
from signup.users import services
from signup.users.models import Role


@click.group()
def user() -> None:
    """Manage organiser accounts."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
def create(email: str, role: str) -> None:
    """Create an account; the password comes from SIGNUP_PASSWORD, else a prompt."""
    password = os.environ.get("SIGNUP_PASSWORD") or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    try:
        created = services.create_user(email=email, role=role, password=password)
        db.session.commit()
    except ValidationError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created {created.role} {created.email}")


@user.command("set-password")
@click.option("--email", required=True)
def set_password(email: str) -> None:
    """Replace an account's password (SIGNUP_PASSWORD, else a prompt); its sessions all end."""
    account = services.find_by_email(email)
    if account is None:
        raise click.ClickException(f"no account with email {email.strip().lower()}")
    password = os.environ.get("SIGNUP_PASSWORD") or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    try:
        services.set_password(account, password)
        db.session.commit()
    except ValidationError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    click.echo(f"password changed for {account.email}; its sessions have ended")
