"""The `signup` commands: exact contract behaviour, one-line errors, nothing changed on failure."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.cli import ScriptInfo
from sqlalchemy import func, select
from werkzeug.serving import make_server

from signup.calls.models import Call
from signup.campaigns.models import Blackout, Campaign
from signup.cli import cli
from signup.config import ConfigError
from signup.errors import ValidationError
from signup.extensions import db
from signup.users.models import User
from signup.users.services import check_password

pytestmark = pytest.mark.usefixtures("db_session")


def run(app: Flask, *args: str, env: dict[str, str] | None = None) -> Result:
    """Invoke a `signup` command in the test's transaction (stderr kept apart)."""
    return app.test_cli_runner().invoke(args=list(args), env=env, catch_exceptions=False)


def count(model: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def assert_one_line_error(result: Result, text: str) -> None:
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert text in lines[0]


def test_campaign_create_accepts_any_common_number_format(app: Flask) -> None:
    result = run(
        app,
        "campaign",
        "create",
        "--slug",
        "jan",
        "--name",
        "Jan Seva",
        "--number",
        "080 4725 9725",
        "--optout-number",
        "(+91) 80472-59726",
        "--language",
        "hi",
    )
    assert result.exit_code == 0, result.output
    assert "created campaign jan: number +918047259725" in result.output
    assert "UCS-2" in result.output and "2 segments" in result.output
    campaign = db.session.scalar(select(Campaign))
    assert campaign is not None
    assert (campaign.number, campaign.optout_number, campaign.language) == (
        "+918047259725",
        "+918047259726",
        "hi",
    )
    listing = run(app, "campaign", "list")
    assert listing.output.splitlines() == ["jan\t+918047259725\t+918047259726\thi\tJan Seva"]


def test_campaign_sms_text_is_checked_and_used(app: Flask) -> None:
    result = run(
        app,
        "campaign",
        "create",
        "--slug",
        "jan",
        "--name",
        "Jan Seva",
        "--number",
        "08047259725",
        "--optout-number",
        "08047259726",
        "--sms-text",
        "{campaign}: welcome! Leave: missed call {optout_number}",
    )
    assert result.exit_code == 0, result.output
    assert "Jan Seva: welcome! Leave: missed call +918047259726" in result.output


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--slug", "Bad Slug!", "--name", "x", "--number", "08047259725"], "slug"),
        (["--slug", "jan", "--name", "x", "--number", "12"], "not a valid phone number"),
        (
            [
                "--slug",
                "jan",
                "--name",
                "x",
                "--number",
                "08047259725",
                "--optout-number",
                "080 4725 9725",
            ],
            "must differ",
        ),
        (
            [
                "--slug",
                "jan",
                "--name",
                "x",
                "--number",
                "08047259725",
                "--sms-text",
                "{campaign} {oops}",
            ],
            "unknown placeholder",
        ),
        (
            [
                "--slug",
                "jan",
                "--name",
                "x",
                "--number",
                "08047259725",
                "--sms-text",
                "Welcome {campaign}!",
            ],
            "how to leave",
        ),
        (["--slug", "jan", "--name", "   ", "--number", "08047259725"], "name"),
        (
            [
                "--slug",
                "jan",
                "--name",
                "x",
                "--number",
                "08047259725",
                "--sms-text",
                "{campaign:>20000} reply STOP",
            ],
            "may not carry a format",
        ),
    ],
)
def test_campaign_create_refuses_bad_input_and_changes_nothing(
    app: Flask, args: list[str], error: str
) -> None:
    result = run(app, "campaign", "create", *args)
    assert_one_line_error(result, error)
    assert count(Campaign) == 0


def test_a_number_belongs_to_one_campaign(app: Flask) -> None:
    run(
        app,
        "campaign",
        "create",
        "--slug",
        "a",
        "--name",
        "A",
        "--number",
        "08047259725",
        "--optout-number",
        "08047259726",
    )
    result = run(
        app, "campaign", "create", "--slug", "b", "--name", "B", "--number", "+918047259726"
    )
    assert_one_line_error(result, "already belongs to another campaign")
    dup = run(app, "campaign", "create", "--slug", "a", "--name", "A2", "--number", "08047250000")
    assert_one_line_error(dup, "already exists")
    assert count(Campaign) == 1


def test_bad_language_is_a_usage_error(app: Flask) -> None:
    result = run(
        app,
        "campaign",
        "create",
        "--slug",
        "a",
        "--name",
        "A",
        "--number",
        "08047259725",
        "--language",
        "fr",
    )
    assert result.exit_code == 2
    assert count(Campaign) == 0


def test_user_create_takes_password_from_environment(app: Flask) -> None:
    result = run(
        app,
        "user",
        "create",
        "--email",
        "Asha@Example.org",
        "--role",
        "organiser",
        env={"SIGNUP_PASSWORD": "correct horse battery"},
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User))
    assert user is not None
    assert (user.email, user.role) == ("asha@example.org", "organiser")
    assert user.password_hash.startswith("$argon2id$")
    assert "correct horse" not in user.password_hash
    assert check_password(user, "correct horse battery")
    assert not check_password(user, "wrong password!!")


def test_user_create_prompts_when_no_password_is_set(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["user", "create", "--email", "a@b.org", "--role", "viewer"],
        input="long enough pw\nlong enough pw\n",
        env={"SIGNUP_PASSWORD": ""},
    )
    assert result.exit_code == 0, result.output
    assert count(User) == 1


@pytest.mark.parametrize(
    ("email", "role", "password", "error"),
    [
        ("not-an-email", "admin", "long enough pw", "not an email"),
        ("a@b.org", "admin", "short", "at least 12"),
    ],
)
def test_user_create_refuses_bad_input(
    app: Flask, email: str, role: str, password: str, error: str
) -> None:
    result = run(
        app, "user", "create", "--email", email, "--role", role, env={"SIGNUP_PASSWORD": password}
    )
    assert_one_line_error(result, error)
    assert count(User) == 0


def test_user_create_refuses_a_duplicate(app: Flask) -> None:
    env = {"SIGNUP_PASSWORD": "long enough pw"}
    run(app, "user", "create", "--email", "a@b.org", "--role", "admin", env=env)
    result = run(app, "user", "create", "--email", "A@B.org", "--role", "viewer", env=env)
    assert_one_line_error(result, "already exists")
    assert count(User) == 1


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app served on a local port, sharing the test's transaction."""
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_simulate_call_posts_a_correctly_signed_webhook(app: Flask, live_server: str) -> None:
    run(app, "campaign", "create", "--slug", "jan", "--name", "Jan", "--number", "08047259725")
    result = run(app, "simulate-call", "+91 99112 78181", "--url", live_server)
    assert result.exit_code == 0, result.output
    assert '<Reject reason="busy"' in result.output
    call = db.session.scalar(select(Call))
    assert call is not None
    assert (call.caller, call.called) == ("+919911278181", "+918047259725")
    assert call.provider_call_id.startswith("CA") and len(call.provider_call_id) == 34


def test_simulate_call_needs_a_campaign_or_to(app: Flask, live_server: str) -> None:
    result = run(app, "simulate-call", "9911278181", "--url", live_server)
    assert_one_line_error(result, "no campaign")
    result = run(app, "simulate-call", "9911278181", "--to", "nope", "--url", live_server)
    assert_one_line_error(result, "--to")


def test_simulate_call_reports_an_unreachable_server(app: Flask) -> None:
    result = run(
        app, "simulate-call", "9911278181", "--to", "08047259725", "--url", "http://127.0.0.1:9"
    )
    assert_one_line_error(result, "could not reach")


def test_export_writes_the_contract_csv(app: Flask, tmp_path: Path) -> None:
    from signup.calls import services as calls
    from tests.integration.factories import campaign, inbound

    campaign()
    for sender in ("+919911278181", "+919911278182"):
        calls.process_call(inbound(sender).id)
    target = tmp_path / "volunteers.csv"
    result = run(app, "export", "volunteers", "--output", str(target))
    assert result.exit_code == 0, result.output
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["phone"] for r in rows] == ["+919911278181", "+919911278182"]
    assert rows[0]["campaigns"] == "jan" and rows[0]["status"] == "active"
    assert rows[0]["first_call_at"].endswith("+05:30")
    assert list(rows[0])[:13] == [
        "phone",
        "name",
        "status",
        "campaigns",
        "call_count",
        "first_call_at",
        "last_call_at",
        "consent_at",
        "opted_out_at",
        "state",
        "district",
        "pincode",
        "language",
    ]


def test_export_to_stdout_with_filters(app: Flask) -> None:
    result = run(app, "export", "volunteers", "--output", "-", "--status", "opted_out")
    assert result.exit_code == 0
    assert result.stdout.lstrip("\ufeff").startswith("phone,name,status")
    assert len(result.stdout.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "error"),
    [(["--campaign", "nope"], "no campaign"), (["--status", "sleeping"], "status must be")],
)
def test_export_refuses_bad_filters_and_writes_nothing(
    app: Flask, tmp_path: Path, args: list[str], error: str
) -> None:
    target = tmp_path / "out.csv"
    result = run(app, "export", "volunteers", "--output", str(target), *args)
    assert_one_line_error(result, error)
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_a_missing_folder(app: Flask, tmp_path: Path) -> None:
    result = run(app, "export", "volunteers", "--output", str(tmp_path / "no" / "x.csv"))
    assert_one_line_error(result, "does not exist")


@pytest.mark.parametrize(
    ("start", "end", "error"),
    [
        ("0001-01-01T00:00+05:30", "2026-01-01T00:00+05:30", "from 1900 to 2999"),
        ("2026-01-01T00:00+05:30", "9999-12-31T23:59+05:30", "from 1900 to 2999"),
        ("2026-01-01T00:00+05:30", "2999-12-31T23:59+05:30", "at most 90 days"),
        ("2026-01-01T00:00+05:30", "2025-01-01T00:00+05:30", "end after it starts"),
        ("2026-01-01T00:00", "2026-01-02T00:00", "time zone"),
        ("yesterday", "2026-01-02T00:00+05:30", "like 2026-05-01T18:00"),
    ],
)
def test_campaign_blackout_refuses_odd_times_in_one_line(
    app: Flask, start: str, end: str, error: str
) -> None:
    run(app, "campaign", "create", "--slug", "a", "--name", "A", "--number", "08047259725")
    result = run(app, "campaign", "blackout", "a", "--start", start, "--end", end)
    assert result.exit_code != 0
    assert error in result.stderr and "Traceback" not in result.stderr
    assert count(Blackout) == 0


def test_campaign_blackout_of_90_days_is_kept(app: Flask) -> None:
    run(app, "campaign", "create", "--slug", "a", "--name", "A", "--number", "08047259725")
    args = ["--start", "2026-01-01T00:00+05:30", "--end", "2026-04-01T00:00+05:30"]
    assert run(app, "campaign", "blackout", "a", *args).exit_code == 0
    assert count(Blackout) == 1


# --- every command: what the operator can fix is one line, never a traceback (review 3) -------


def leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of every command under the group (`export volunteers`, `campaign list`, …)."""
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += leaf_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def run_signup(app: Flask, *args: str) -> Result:
    """Run the `signup` console script's own group (SignupGroup), on the test's app."""
    return CliRunner().invoke(cli, list(args), obj=ScriptInfo(create_app=lambda: app))


FIXABLE = [
    IsADirectoryError(21, "Is a directory", "/tmp"),
    PermissionError(13, "Permission denied", "/proc/version"),
    OSError(28, "No space left on device"),
    ValidationError("a value was refused\nsecond line"),
    ConfigError("RELAY_NUDGE must be true or false"),
]


@pytest.mark.parametrize("error", FIXABLE, ids=lambda e: type(e).__name__)
def test_every_command_turns_a_fixable_error_into_one_line(
    app: Flask, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    """Each command of `signup`, failing with a file, value or setting error: one `Error:` line."""
    commands = leaf_commands(app.cli)
    assert ("export", "volunteers") in commands and len(commands) > 8

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    for path in commands:
        command: Any = app.cli
        for name in path:
            command = command.commands[name]
        monkeypatch.setattr(command, "callback", fail)
        result = run_signup(app, *path, "--help")
        assert result.exit_code == 0, path  # the command is reachable as written
        result = run_signup(app, *path, *required_arguments(command))
        assert result.exit_code == 1, (path, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: "), (path, result.output)


def required_arguments(command: click.Command) -> list[str]:
    """Values for the command's required arguments and options, so that its callback runs."""
    values: list[str] = []
    for param in command.params:
        if not param.required:
            continue
        choices = getattr(param.type, "choices", None)
        value = str(next(iter(choices))) if choices else "x"
        if isinstance(param, click.Option):
            values += [param.opts[0], value]
        else:
            values.append(value)
    return values


@pytest.mark.parametrize("output", ["/tmp", "", "/proc/version", "/proc/x.csv", "/dev/null/x"])
def test_export_to_an_unusable_path_is_one_line(app: Flask, output: str) -> None:
    result = run_signup(app, "export", "volunteers", "--output", output)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
