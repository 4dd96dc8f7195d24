"""The `signup` console script: a Flask CLI group bound to create_app."""

from __future__ import annotations

import sys

import click
from flask.cli import FlaskGroup

from signup import create_app
from signup.config import ConfigError


def _create_app() -> object:
    try:
        return create_app({"SCHEMA_MIGRATIONS": True})
    except (ConfigError, ValueError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


cli = FlaskGroup(
    name="signup",
    create_app=_create_app,  # type: ignore[arg-type]
    add_version_option=False,
    load_dotenv=False,
    help="Missed-call signup: campaigns, users, exports and demos.",
)


def main() -> None:
    """Entry point of the `signup` console script."""
    cli.main(prog_name="signup")


if __name__ == "__main__":
    main()
