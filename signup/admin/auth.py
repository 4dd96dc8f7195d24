"""Logging in: Argon2id passwords, throttled failures, idle timeout, role checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, current_app, g, redirect, request, session, url_for
from flask_login import current_user, logout_user
from werkzeug.wrappers import Response

from signup import clock
from signup.admin.access import Access, access_for
from signup.extensions import db, login_manager
from signup.users.models import User
from signup.users.services import HASHER, check_password, find_by_email

F = TypeVar("F", bound=Callable[..., Any])
DUMMY_HASH = HASHER.hash("not a real password, only spends the same time")


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """Flask-Login: the account behind a session, if it is active and the session not ended.

    The session holds "<user id>:<session epoch>" (User.get_id); logout, deactivation and a
    change of password, role or scope bump the epoch, so every older copy of the cookie fails.
    """
    user_id, _, epoch = session_id.partition(":")
    if not (user_id.isdigit() and epoch.isdigit()):
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.active or user.session_epoch != int(epoch):
        return None
    return user


def authenticate(email: str, password: str) -> User | None:
    """The account for these credentials, or None; unknown and wrong take the same time."""
    user = find_by_email(email)
    if user is None or not user.active:
        check_password(User(password_hash=DUMMY_HASH), password)
        return None
    if not check_password(user, password):
        return None
    user.last_login_at = clock.now()
    return user


def account_key() -> str:
    """The login throttle's key: the account being tried, whoever tries it."""
    return "login-account:" + (request.form.get("email") or "").strip().lower()[:254]


def searcher_key() -> str:
    """The phone-search throttle's key: the account searching, from any address."""
    return f"phone-search:{current_user.get_id()}"


def unthrottled_search() -> bool:
    """True unless this is a viewer searching by phone number, which reveals whole numbers.

    Each exact hit tells a viewer the full number behind a masked row, so such searches are
    throttled per account (ADMIN_VIEWER_SEARCH_LIMIT); names and other roles are not.
    """
    from signup.phones import normalise

    query = request.args.get("q", "").strip()
    if not query or not current_user.is_authenticated:
        return True
    return not (current_access().masks_phones and normalise(query).e164)


def login_failed(response: Response) -> bool:
    """Only failed attempts count against the throttles (a success redirects)."""
    return response.status_code != 302


def current_access() -> Access:
    """The logged-in account's role and scope, read once per request."""
    cached = g.get("access")
    if cached is None or cached.user_id != current_user.id:
        g.access = cached = access_for(current_user)
    access: Access = cached
    return access


def enforce_idle_timeout() -> Response | None:
    """End a session that has been idle too long, on the server, whatever the cookie says."""
    if not current_user.is_authenticated:
        return None
    idle = current_app.config["ADMIN_IDLE_MINUTES"] * 60
    now = time.time()
    last = session.get("seen")
    if isinstance(last, int | float) and now - last > idle:
        logout_user()
        session.clear()
        return redirect(url_for("admin.login", next=request.path, expired=1))
    session["seen"] = now
    return None


def log_out() -> None:
    """End this session and every copy of it: the account's epoch moves on (flushes)."""
    account = db.session.get(User, current_user.id)
    if account is not None:
        account.end_sessions()
        db.session.flush()
    logout_user()


def login_required(func: F) -> F:
    """Send anyone without a session to the login page."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def require(check: Callable[[Access], bool]) -> Callable[[F], F]:
    """403 unless the account's access passes `check` (login is required too)."""

    def decorate(func: F) -> F:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not check(current_access()):
                abort(403)
            return func(*args, **kwargs)

        return login_required(wrapper)  # type: ignore[return-value]

    return decorate
