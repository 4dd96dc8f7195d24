"""Commands for demos and development: `signup serve` and `signup simulate-call`."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys

import click
from flask import current_app
from twilio.request_validator import RequestValidator
from werkzeug.serving import run_simple

from signup.campaigns import services as campaigns
from signup.extensions import db
from signup.phones import parse_number_argument
from signup.tasking import QUEUES

DEMO_NUMBER = "+918047259725"
DEMO_OPTOUT_NUMBER = "+918047259726"


def twilio_call_params(from_raw: str, to: str, account_sid: str) -> dict[str, str]:
    """The form fields Twilio posts for an incoming call."""
    return {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": "CA" + secrets.token_hex(16),
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": from_raw,
        "Caller": from_raw,
        "To": to,
        "Called": to,
    }


@click.command("simulate-call")
@click.argument("from_number", metavar="FROM")
@click.option(
    "--to",
    "to_number",
    default=None,
    help="The number dialled; defaults to the only campaign's number.",
)
@click.option(
    "--url",
    "base_url",
    default="http://127.0.0.1:5000",
    show_default=True,
    help="Base URL of the running server.",
)
def simulate_call(from_number: str, to_number: str | None, base_url: str) -> None:
    """Post a correctly signed Twilio incoming-call webhook to a running server."""
    if to_number is None:
        found = campaigns.list_campaigns()
        if len(found) != 1:
            raise click.ClickException(
                "no campaign yet: create one with `signup campaign create`"
                if not found
                else "several campaigns: say which number with --to"
            )
        to = found[0].number
    else:
        try:
            to = parse_number_argument(to_number)
        except ValueError as exc:
            raise click.ClickException(f"--to: {exc}") from exc
    config = current_app.config
    token = config.get("TWILIO_AUTH_TOKEN")
    if not token:
        raise click.ClickException("TWILIO_AUTH_TOKEN is not set: cannot sign the request")
    path = "/webhooks/twilio/voice"
    signed_base = (config.get("PUBLIC_BASE_URL") or base_url).rstrip("/")
    params = twilio_call_params(
        from_number, to, config.get("TWILIO_ACCOUNT_SID") or "AC" + "0" * 32
    )
    signature = RequestValidator(token).compute_signature(signed_base + path, params)
    import requests  # here: every process registers this command, few run it (~5 MB)

    try:
        response = requests.post(
            base_url.rstrip("/") + path,
            data=params,
            headers={"X-Twilio-Signature": signature},
            timeout=10,
        )
    except requests.RequestException as exc:
        raise click.ClickException(f"could not reach {base_url}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise click.ClickException(f"server answered {response.status_code}: {response.text[:200]}")
    click.echo(f"call {params['CallSid']} from {from_number} to {to}: {response.status_code}")
    click.echo(response.text)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--demo/--no-demo", default=False, help="Create a demo campaign when there is none.")
def serve(host: str, port: int, demo: bool) -> None:
    """Run web, worker and scheduler together on this machine (development only)."""
    from flask_migrate import upgrade  # CLI only: web and worker processes never load Alembic

    upgrade()
    if demo and not campaigns.list_campaigns():
        settings = campaigns.CampaignSettings(
            name="Demo Abhiyan", number=DEMO_NUMBER, optout_number=DEMO_OPTOUT_NUMBER
        )
        campaigns.create_campaign(slug="demo", settings=settings)
        db.session.commit()
    worker = subprocess.Popen(  # noqa: S603 - our own fixed command line
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers",
            "worker",
            "-B",
            "--pool=solo",
            "--loglevel=INFO",
            f"--queues={','.join(QUEUES)}",  # one worker does everything here
        ],
        env=os.environ.copy(),
    )
    base = f"http://{host}:{port}"
    click.echo(f"""
  missed-call signup is running at {base} (database: {db.engine.url.render_as_string()})
  SMS are printed here instead of sent.

  In another terminal:
    give a missed call:   .venv/bin/signup simulate-call "+91 99112 78181" --url {base}
    opt out:              .venv/bin/signup simulate-call 9911278181 \\
                            --to {DEMO_OPTOUT_NUMBER} --url {base}
    see the volunteers:   .venv/bin/signup export volunteers --output -
""")
    # SIGTERM (from a supervisor or a test) must stop the worker too, not leave it running.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    try:
        run_simple(
            host,
            port,
            current_app._get_current_object(),  # type: ignore[attr-defined]
            threaded=True,
            use_reloader=False,
        )
    finally:
        worker.terminate()
        worker.wait(timeout=10)
