"""Commands for demos and development: `signup serve` and `signup simulate-call`."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import click
from flask import current_app
from twilio.request_validator import RequestValidator
from werkzeug.serving import run_simple

from signup import clock
from signup.campaigns import services as campaigns
from signup.extensions import db
from signup.logs import event
from signup.messaging import schedule
from signup.phones import parse_number_argument
from signup.tasking import QUEUES

log = logging.getLogger(__name__)
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


def worker_command() -> list[str]:
    """One Celery worker with its own beat, consuming every queue (development only)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers",
        "worker",
        "-B",
        "--pool=solo",
        "--loglevel=INFO",
        f"--queues={','.join(QUEUES)}",
    ]


class Supervisor:
    """Keeps `signup serve`'s worker running: restarts it when it dies, gives up loudly.

    A worker that died silently would leave the web answering while no call is processed and
    no SMS sent; here each death is a CRITICAL line, and after `max_restarts` deaths within
    `window` seconds the whole server stops with a non-zero exit code.
    """

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        max_restarts: int = 5,
        window: float = 600.0,
        poll: float = 0.5,
    ) -> None:
        self.command, self.env = command, env
        self.max_restarts, self.window, self.poll = max_restarts, window, poll
        self.exit_code = 0
        self._deaths: list[float] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        """Start the worker and a thread that watches it."""
        self._spawn()
        threading.Thread(target=self._watch, name="worker-supervisor", daemon=True).start()

    def stop(self) -> None:
        """Stop watching and stop the worker."""
        self._stopping.set()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()

    def _spawn(self) -> None:
        self._process = subprocess.Popen(self.command, env=self.env)  # noqa: S603 - fixed argv

    def _watch(self) -> None:
        while not self._stopping.wait(self.poll):
            assert self._process is not None
            code = self._process.poll()
            if code is None or self._stopping.is_set():
                continue
            now = time.monotonic()
            self._deaths = [t for t in self._deaths if now - t < self.window] + [now]
            event(log, logging.CRITICAL, "serve.worker_died", exit_code=code)
            if len(self._deaths) > self.max_restarts:
                event(log, logging.CRITICAL, "serve.giving_up", deaths=len(self._deaths))
                self.exit_code = 1
                os.kill(os.getpid(), signal.SIGTERM)
                return
            self._spawn()
            event(log, logging.WARNING, "serve.worker_restarted", pid=self._process.pid)


def quiet_hours_note(now: datetime) -> str:
    """What the quiet hours mean for the demo's SMS right now, in the organisers' time."""
    config = current_app.config
    zone = ZoneInfo(config["SIGNUP_TIMEZONE"])
    window = schedule.parse_window(config["SMS_QUIET_HOURS"])
    if window is None:
        return "Quiet hours are off: SMS are printed at once."
    span = f"{window.start:%H:%M}-{window.end:%H:%M} {config['SIGNUP_TIMEZONE']}"
    if not window.contains(now.astimezone(zone).time()):
        return f"No SMS goes out during the quiet hours, {span}."
    until = schedule.next_send_time(now, quiet=window, zone=zone, blackouts=[])
    return (
        f"It is inside the quiet hours ({span}) now: SMS wait until "
        f"{until.astimezone(zone):%H:%M %Z}.\n  Start with SMS_QUIET_HOURS=off to see them at once."
    )


def banner(base: str) -> str:
    """What a newcomer needs next: where things are, how to try them, why an SMS may wait."""
    return f"""
  missed-call signup is running (database: {db.engine.url.render_as_string()})
    webhooks:  {base}/webhooks/twilio/voice
    admin:     {base}/admin/  (first create an account in another terminal:
               .venv/bin/signup user create --email you@example.org --role admin)

  SMS are printed here instead of sent.
  {quiet_hours_note(clock.now())}
  Each call's outcome is logged here as a `call.processed` line, the number masked.

  In another terminal:
    give a missed call:   .venv/bin/signup simulate-call "+91 99112 78181" --url {base}
    opt out:              .venv/bin/signup simulate-call 9911278181 \\
                            --to {DEMO_OPTOUT_NUMBER} --url {base}
    see the volunteers:   .venv/bin/signup export volunteers --output -
"""


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
    worker = Supervisor(worker_command(), os.environ.copy())
    worker.start()
    click.echo(banner(f"http://{host}:{port}"))
    # SIGTERM (from a supervisor, a test or our own watcher giving up) stops the worker too.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(worker.exit_code))
    try:
        run_simple(
            host,
            port,
            current_app._get_current_object(),  # type: ignore[attr-defined]
            threaded=True,
            use_reloader=False,
        )
    finally:
        worker.stop()
