"""A WSGI fast path for the incoming-call webhooks: Flask's rules without its request machinery.

During a drive the webhooks are nearly all the traffic, and Flask's request context (routing,
session, before/after hooks, its form parser) cost several times the work of recording a call.
This middleware sits in front of the Flask app and answers the two webhook routes itself: it
builds the same Request object, asks the same provider to verify it, and records the call with
the same rules as the Flask view (signup.calls.webhooks), with the same request id and security
headers on the answer.

Anything unusual goes to Flask untouched: another route or method, a body that is not a
well-formed form of a sane size, a URL carrying `bodySHA256`, and every request that fails
verification or carries no well-formed call id (so refusals are logged, counted and answered
403 or 400 in one place).
"""

from __future__ import annotations

import functools
import io
import logging
import re
import time
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import unquote

from flask import Flask, Request, current_app, has_app_context
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import InternalServerError, SecurityError

from signup import logcontext, logs
from signup.calls import webhooks
from signup.calls.providers import PROVIDERS, CallProvider
from signup.security import security_header_items, serves_https

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

PREFIX = "/webhooks/"
FORM = "application/x-www-form-urlencoded"
# (method, path) -> provider; one pattern with a token segment, like the Flask routes'.
EXACT_ROUTES = {("POST", "/webhooks/twilio/voice"): "twilio"}
TOKEN_ROUTES = (("GET", re.compile(r"/webhooks/exotel/([^/]+)/call"), "exotel"),)


def match(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The provider and route arguments the Flask url_map would give a webhook, else None."""
    name = EXACT_ROUTES.get((method, path))
    if name is not None:
        return name, {}
    for route_method, pattern, provider in TOKEN_ROUTES:
        found = pattern.fullmatch(path) if method == route_method else None
        if found:
            return provider, {"token": found.group(1)}
    return None


def read_form(environ: WSGIEnvironment, limit: int | None) -> ImmutableMultiDict[str, str] | None:
    """The body's fields, parsed as werkzeug would; None when Flask should see it.

    Only a form-encoded body with a Content-Length within `limit` that arrives whole and is
    UTF-8 is parsed here. The body read is put back for Flask either way.
    """
    if environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != FORM:
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    if length < 0 or (limit is not None and length > limit):
        return None
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    if len(body) != length:
        return None
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    return form_dict(parse_form(text).items())


def form_dict(fields: Iterable[tuple[str, list[str]]]) -> ImmutableMultiDict[str, str]:
    """An ImmutableMultiDict holding these (name, values) lists as they are.

    A MultiDict is a dict of each field's list of values; its own constructor checks and
    copies every list, which costs as much as parsing this small form.
    tests/unit/test_form_parser.py checks the result equals werkzeug's.
    """
    form: ImmutableMultiDict[str, str] = ImmutableMultiDict()
    dict.update(form, fields)
    return form


def parse_form(text: str) -> dict[str, list[str]]:
    """Each field's values, as werkzeug's form parser gives them, in a third of the time.

    werkzeug runs `parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote")`;
    this does the same steps (split on "&", skip empty fields, "+" to space, then
    percent-decoding with the same error handler), but only where a "+" or "%" is present.
    tests/unit/test_form_parser.py checks it against parse_qsl.
    """
    fields: dict[str, list[str]] = {}
    for field in text.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "%" in name or "+" in name:
            name = _unquote(name)
        if "%" in value or "+" in value:
            value = _unquote(value)
        fields.setdefault(name, []).append(value)
    return fields


@functools.lru_cache(maxsize=1024)
def _unquote(part: str) -> str:
    """parse_qsl's decoding of one escaped name or value, remembered.

    A drive's webhooks repeat most escaped values (the dialled number in To and Called, the
    caller's in From and Caller); the cache is bounded, so odd bodies only evict. A number
    in E.164 ("%2B" and digits, new with each caller) is decoded without unquote's machinery.
    """
    if part.startswith("%2B") and part[3:].isdigit() and part[3:].isascii():
        return "+" + part[3:]
    return unquote(part.replace("+", " "), errors="werkzeug.url_quote")


class WebhookFastPath:
    """Answers genuine incoming-call webhooks before Flask; hands everything else to Flask."""

    def __init__(self, app: Flask, wsgi_app: WSGIApplication) -> None:
        self._app = app
        self._next = wsgi_app
        self._limit: int | None = app.config.get("MAX_CONTENT_LENGTH")
        self._public: str | None = app.config.get("PUBLIC_BASE_URL")
        self._answers: dict[tuple[str, bool], tuple[str, list[tuple[str, str]], bytes]] = {}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer a genuine webhook here; pass anything else on to Flask."""
        if not environ.get("PATH_INFO", "").startswith(PREFIX):
            return self._next(environ, start_response)
        started = time.perf_counter()
        request: Request = self._app.request_class(environ)
        route = match(request.method, request.path)
        if route is None or not self._host_trusted(request):
            return self._next(environ, start_response)
        if "bodySHA256" in environ.get("QUERY_STRING", ""):  # a hashed body: Flask checks it
            return self._next(environ, start_response)
        if request.method == "POST":
            form = read_form(environ, self._limit)
            if form is None:
                return self._next(environ, start_response)
            request.form = form
        provider = PROVIDERS[route[0]]
        request.view_args = route[1]
        rid = logcontext.incoming_id(environ.get("HTTP_X_REQUEST_ID"))
        token = logs.request_id.set(rid)
        try:
            return self._answer(provider, request, started, environ, start_response, rid)
        finally:
            logs.request_id.reset(token)

    def _host_trusted(self, request: Request) -> bool:
        """Apply TRUSTED_HOSTS as Flask does; an untrusted Host goes to Flask for its 400."""
        trusted = self._app.config.get("TRUSTED_HOSTS")
        if trusted is None:
            return True
        request.trusted_hosts = trusted
        try:
            request.host  # noqa: B018 - werkzeug checks the Host header when it is read
        except SecurityError:
            return False
        return True

    def _answer(
        self,
        provider: CallProvider,
        request: Request,
        started: float,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        rid: str,
    ) -> Iterable[bytes]:
        """Verify, parse and record; a refusal goes to Flask to be answered.

        With the group-commit writer nothing needs an app context, so none is pushed (its
        push and teardown cost about a tenth of the request). Without it the call goes
        through the session, which lives in an app context.
        """
        app = self._app
        context = None
        if app.extensions.get("call_writer") is None:
            ours = has_app_context() and current_app._get_current_object() is app  # type: ignore[attr-defined]
            context = None if ours else app.app_context()
        if context is not None:
            context.push()
        try:
            inbound = provider.parse(request) if provider.verify(request, app.config) else None
            if inbound is not None:
                webhooks.accept(provider, inbound, started, app)
        except Exception:
            propagate = app.config.get("PROPAGATE_EXCEPTIONS")
            if app.testing if propagate is None else propagate:  # as Flask decides
                raise
            log.exception("webhook.error", extra={"provider": provider.name})
            return InternalServerError()(environ, start_response)
        finally:
            if context is not None:
                context.pop()
        if inbound is None:
            return self._next(environ, start_response)
        https = serves_https(request, self._public)
        status, headers, body = self._prepared(provider, https)
        start_response(status, [*headers, ("X-Request-Id", rid)])
        return [body]

    def _prepared(
        self, provider: CallProvider, https: bool
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        """A provider's answer as a status line, headers and body, built once per scheme."""
        key = (provider.name, https)
        prepared = self._answers.get(key)
        if prepared is None:
            answer = provider.answer()
            headers = [
                ("Content-Type", answer.content_type),
                ("Content-Length", str(len(answer.body))),
                *security_header_items(https=https, admin=False),
            ]
            status = f"{answer.status} {HTTPStatus(answer.status).phrase}"
            prepared = self._answers[key] = (status, headers, answer.body)
        return prepared
