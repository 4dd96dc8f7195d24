"""Missed-call signup: the Flask application factory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, redirect, url_for
from sqlalchemy import event as sa_event

from signup import bodies, logcontext, logs
from signup import config as settings
from signup.extensions import csrf, db, limiter, login_manager
from signup.metrics import registry as metrics_registry

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")

__all__ = ["create_app"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment, with `config` overriding it (tests, tools)."""
    app = Flask(
        __name__,
        instance_path=os.environ.get("SIGNUP_INSTANCE_PATH"),
        instance_relative_config=True,
    )
    app.request_class = bodies.Request  # per-route body limits (the import upload's own)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(settings.from_environment(app.instance_path))
    if config:
        app.config.update(config)
    settings.finalise(app.config)
    logs.configure(
        app.config["LOG_FORMAT"], app.config["LOG_LEVEL"], logs.configured_secrets(app.config)
    )
    logcontext.init_app(app)  # first, so every other hook's log lines carry the request id
    metrics_registry.prepare()  # before any module binds a metric to a file there

    db.init_app(app)
    if app.config.get("SCHEMA_MIGRATIONS"):
        _init_migrations(app)
    login_manager.init_app(app)
    from signup.admin.params import guard_admin_input

    app.before_request(guard_admin_input)  # before CSRF, which reads the form it checks
    csrf.init_app(app)
    limiter.init_app(app)
    _register_models()
    from signup import i18n

    i18n.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            sa_event.listen(db.engine, "connect", _sqlite_pragmas)

    from signup.calls.spool import Replayer, Spool
    from signup.messaging import ratelimit
    from signup.messaging.providers import build_sender
    from signup.tasking import Nudger, celery_init_app, publish

    celery_app = celery_init_app(app)
    _register_tasks()
    app.extensions["sms_sender"] = build_sender(app.config)
    app.extensions["sms_rate_limiter"] = ratelimit.build(
        app.config.get("REDIS_URL"), app.config["SMS_RATE_PER_SECOND"], app.config["SMS_RATE_BURST"]
    )

    relay = celery_app.tasks["signup.calls.tasks.relay_calls"]  # bound to this app's broker
    app.extensions["relay_nudger"] = Nudger(lambda: publish(relay))
    spool = Spool(Path(app.instance_path) / "spool", app.config.get("REDIS_URL"))
    app.extensions["call_spool"] = spool
    app.extensions["spool_replayer"] = Replayer(app, spool)
    if spool.pending_files():  # calls kept while the database was away, before a restart
        app.extensions["spool_replayer"].wake()
    app.extensions["call_writer"] = _call_writer(app)

    _register_blueprints(app)
    _register_cli(app)
    _install_fast_path(app)
    _install_trusted_proxies(app)  # outermost: the fast path sees the client too
    return app


def _install_trusted_proxies(app: Flask) -> None:
    """Take the client's address and scheme from trusted proxies only (signup.proxies)."""
    from signup.proxies import TrustedProxies

    app.wsgi_app = TrustedProxies(  # type: ignore[method-assign]
        app.wsgi_app, app.config["TRUSTED_PROXY_NETWORKS"]
    )


def _install_fast_path(app: Flask) -> None:
    """Answer genuine webhooks before Flask's request machinery (signup.calls.fastpath)."""
    from signup.calls.fastpath import WebhookFastPath

    app.wsgi_app = WebhookFastPath(app, app.wsgi_app)  # type: ignore[method-assign]


def _call_writer(app: Flask) -> Any:
    """The webhooks' group-commit writer: PostgreSQL with WEBHOOK_AUTOCOMMIT on, else None."""
    from functools import partial

    from signup.calls.services import INSERT_COLUMNS
    from signup.calls.writer import CallWriter, connect

    with app.app_context():
        url = db.engine.url
    if url.get_backend_name() != "postgresql" or not app.config["WEBHOOK_AUTOCOMMIT"]:
        return None
    connect_args = app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("connect_args", {})
    return CallWriter(partial(connect, url, connect_args), INSERT_COLUMNS)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets the embedded web and worker processes read while the other writes."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _init_migrations(app: Flask) -> None:
    """Bind Flask-Migrate. Only the CLI, the demo and the tests run migrations, so web and
    worker processes never import Alembic (about 12 MB resident each)."""
    from flask_migrate import Migrate

    Migrate(app, db, directory=MIGRATIONS)


def _register_models() -> None:
    from signup.admin import models as _admin  # noqa: F401
    from signup.calls import models as _calls  # noqa: F401
    from signup.campaigns import models as _campaigns  # noqa: F401
    from signup.messaging import models as _messaging  # noqa: F401
    from signup.users import models as _users  # noqa: F401
    from signup.volunteers import models as _volunteers  # noqa: F401


def _register_tasks() -> None:
    from signup.admin import tasks as _admin  # noqa: F401
    from signup.calls import tasks as _calls  # noqa: F401
    from signup.health import tasks as _health  # noqa: F401
    from signup.messaging import tasks as _messaging  # noqa: F401


def _register_blueprints(app: Flask) -> None:
    from signup import metrics
    from signup.admin.pages import bp as admin_pages_bp
    from signup.admin.params import RowIdConverter
    from signup.admin.views import bp as admin_bp
    from signup.calls.views import bp as calls_bp
    from signup.health.views import bp as health_bp
    from signup.messaging.views import bp as messaging_bp
    from signup.security import WebhookFreeSessions, security_headers, spare_webhooks

    app.url_map.converters["int"] = RowIdConverter  # an id out of the database's range: 404
    app.register_blueprint(calls_bp)
    app.register_blueprint(messaging_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(admin_pages_bp)
    # A person who opens the bare address wants the admin, not a 404.
    app.add_url_rule("/", "root", lambda: redirect(url_for("admin.index")))
    metrics.init_app(app)
    for webhooks in (calls_bp, messaging_bp):  # providers prove themselves by signature or token
        csrf.exempt(webhooks)
    app.after_request(security_headers)
    app.session_interface = WebhookFreeSessions()
    spare_webhooks(app, limiter)  # they have no rate limits; its hooks cost ~50 µs a request


def _register_cli(app: Flask) -> None:
    from signup.campaigns.cli import campaign
    from signup.dev import serve, simulate_call
    from signup.users.cli import user
    from signup.volunteers.cli import export, volunteer

    for command in (campaign, user, export, volunteer, simulate_call, serve):
        app.cli.add_command(command)
