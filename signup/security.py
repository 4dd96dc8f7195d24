"""Security headers on every response; no session or rate-limit work on provider webhooks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, Request, Response, current_app, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def security_header_items(*, https: bool, admin: bool) -> list[tuple[str, str]]:
    """The security headers for a response: over https with HSTS, on admin pages uncacheable."""
    items = [
        ("Content-Security-Policy", CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
    ]
    if https:
        items.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
    if admin:
        items.append(("Cache-Control", "no-store"))  # personal data stays out of caches
    return items


def serves_https(request: Request, public_base_url: str | None) -> bool:
    """True when the request came over https or the app is published at an https URL."""
    return request.is_secure or (public_base_url or "").startswith("https://")


def security_headers(response: Response) -> Response:
    """A strict Content-Security-Policy, no framing, no sniffing; HSTS over https."""
    headers = response.headers
    https = serves_https(request, current_app.config.get("PUBLIC_BASE_URL"))
    for name, value in security_header_items(https=https, admin=request.path.startswith("/admin")):
        headers.setdefault(name, value)
    return response


WEBHOOK_PREFIX = "/webhooks/"


def is_provider_webhook() -> bool:
    """True for the telephony providers' webhooks: no cookies, no sessions, no rate limits."""
    return request.path.startswith(WEBHOOK_PREFIX)


def spare_webhooks(app: Flask, extension: object) -> None:
    """Wrap an extension's request hooks so that they skip provider webhooks.

    For extensions that do nothing on these routes (the rate limiter: no limits there) but
    still cost tens of microseconds a request. A hook is the extension's when it is one of its
    bound methods or a partial over it.
    """

    def owned(hook: Callable[..., Any]) -> bool:
        if getattr(hook, "__self__", None) is extension:
            return True
        return isinstance(hook, functools.partial) and extension in hook.args

    def before(hook: Callable[[], Any]) -> Callable[[], Any]:
        return functools.wraps(hook)(lambda: None if is_provider_webhook() else hook())

    def after(hook: Callable[[Response], Response]) -> Callable[[Response], Response]:
        return functools.wraps(hook)(lambda r: r if is_provider_webhook() else hook(r))

    def teardown(hook: Callable[[BaseException | None], None]) -> Callable[..., None]:
        return functools.wraps(hook)(lambda e: None if is_provider_webhook() else hook(e))

    hooks: tuple[tuple[dict[Any, list[Any]], Callable[[Any], Any]], ...] = (
        (app.before_request_funcs, before),
        (app.after_request_funcs, after),
        (app.teardown_request_funcs, teardown),
    )
    for registry, wrap in hooks:
        for key, funcs in registry.items():
            registry[key] = [wrap(f) if owned(f) else f for f in funcs]


class WebhookFreeSessions(SecureCookieSessionInterface):
    """Flask's cookie sessions, except that provider webhooks get none.

    Providers send no cookies, and these routes prove themselves by signature or token, so
    deriving the signing key and reading a cookie on each of their requests is wasted work.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """A null session (never saved) for a webhook, else the signed cookie's session."""
        if request.path.startswith(WEBHOOK_PREFIX):
            return self.make_null_session(app)
        return super().open_session(app, request)
