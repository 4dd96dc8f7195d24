"""The `signup` console script: a Flask CLI group bound to create_app."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
from flask.cli import FlaskGroup
from sqlalchemy.exc import DBAPIError, OperationalError

from signup import create_app
from signup.config import ConfigError
from signup.errors import ValidationError

# Flask's own options and commands that would mislead here: `--env-file` needs python-dotenv,
# `--app` would load another app, `--debug` is refused outside development, and `run` serves
# the web alone, so calls would never be processed (`signup serve` runs web and worker).
HIDDEN_OPTIONS = {"env_file", "app", "debug"}


def _create_app() -> object:
    # Alembic announces each of its plugins at INFO on import: noise on every command.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        return create_app({"SCHEMA_MIGRATIONS": True})
    except (ConfigError, ValueError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


def database_problem(exc: DBAPIError) -> str:
    """One line saying what is wrong with the database, and what to do about it."""
    text = str(exc.orig).lower()
    if "no such table" in text or ("does not exist" in text and "relation" in text):
        return "the database has no tables yet: run `signup db upgrade` first"
    if isinstance(exc, OperationalError):
        return f"cannot use the database: {str(exc.orig).splitlines()[0]}"
    return f"database error: {type(exc.orig).__name__}"


def file_problem(exc: OSError) -> str:
    """One line for a file the command could not use: what went wrong, and which file."""
    reason = exc.strerror or type(exc).__name__
    return f"{reason}: {exc.filename!r}" if exc.filename is not None else one_line(str(exc))


def one_line(message: str) -> str:
    """The message's first line (an error line never spans several)."""
    return (message.strip().splitlines() or [""])[0]


class SignupGroup(FlaskGroup):
    """Flask's CLI group with only this product's commands and options."""

    def __init__(self, **extra: Any) -> None:
        super().__init__(add_default_commands=False, **extra)
        self.params = [p for p in self.params if p.name not in HIDDEN_OPTIONS]

    def invoke(self, ctx: click.Context) -> Any:
        """Run a command; what the operator can fix (a file, a value, the database) is one line.

        Every command passes here, so none prints a traceback for a path that is a folder or
        unwritable (OSError), a refused value (ValidationError) or a bad setting (ConfigError).
        """
        try:
            return super().invoke(ctx)
        except DBAPIError as exc:
            raise click.ClickException(database_problem(exc)) from exc
        except OSError as exc:
            raise click.ClickException(file_problem(exc)) from exc
        except (ValidationError, ConfigError) as exc:
            raise click.ClickException(one_line(str(exc))) from exc

    def _load_plugin_commands(self) -> None:
        """No commands from other packages' entry points (Flask-Limiter's `limiter`)."""
        self._loaded_plugin_commands = True


cli = SignupGroup(
    name="signup",
    create_app=_create_app,
    add_version_option=False,
    load_dotenv=False,
    help="Missed-call signup: campaigns, users, exports and demos.",
)


def main() -> None:
    """Entry point of the `signup` console script."""
    cli.main(prog_name="signup")


if __name__ == "__main__":
    main()
