"""Pages of the admin around its views: error pages in its layout, and the language switch."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import lazy_gettext
from flask_login import current_user
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from signup.admin import auth
from signup.admin.access import Access
from signup.errors import ValidationError
from signup.extensions import db
from signup.messaging import texts
from signup.messaging.models import MessageKind
from signup.users import services as user_services

bp = Blueprint("admin_pages", __name__, url_prefix="/admin")
ADMIN_PREFIX = "/admin"
# What an organiser is told for each error the admin answers with its own page.
ERRORS = {
    400: (
        lazy_gettext("Something in the request was wrong"),
        lazy_gettext("The form may have expired. Go back, reload the page and try again."),
    ),
    403: (
        lazy_gettext("Not allowed"),
        lazy_gettext("Your account may not open this page. Ask an admin if you need it."),
    ),
    404: (
        lazy_gettext("Not found"),
        lazy_gettext("There is no such page, or it is outside what your account may see."),
    ),
    429: (lazy_gettext("Too many requests"), lazy_gettext("Wait a while and try again.")),
}


@bp.before_request
def idle_timeout() -> BaseResponse | None:
    """The same idle timeout as every other admin page."""
    return auth.enforce_idle_timeout()


@bp.app_context_processor
def navigation() -> dict[str, Access | None]:
    """Every admin page gets the account's access, so the navigation is always there."""
    if request.path.startswith(ADMIN_PREFIX) and current_user.is_authenticated:
        return {"access": auth.current_access()}
    return {"access": None}


@bp.app_template_global()
def sms_defaults(kind: str) -> dict[str, dict[str, str]]:
    """The default texts of a kind, for the live counter to render as the server will."""
    return texts.DEFAULTS[MessageKind(kind)]


def error_page(error: HTTPException) -> HTTPException | tuple[str, int]:
    """Admin errors in the admin's layout and language; elsewhere the plain answer, unchanged."""
    code = error.code or 500
    if not request.path.startswith(ADMIN_PREFIX) or code not in ERRORS:
        return error
    title, advice = ERRORS[code]
    return render_template("admin/error.html", code=code, title=title, advice=advice), code


for _code in ERRORS:  # app-wide: a 404 under /admin matches no blueprint's route
    bp.app_errorhandler(_code)(error_page)


@bp.post("/language")
@auth.login_required
def language() -> BaseResponse:
    """Store the account's language ('' follows the browser), then show the same page again."""
    try:
        user_services.set_language(current_user, request.form.get("language") or None)
    except ValidationError:
        abort(400)
    db.session.commit()
    return redirect(_same_page())


def _same_page() -> str:
    """The admin page the switch was pressed on (from the same-origin Referer), else the home.

    Never a `next` field: a page would then echo its own URL, searches (numbers) included.
    """
    came_from = urlsplit(request.referrer or "")
    same_site = came_from.netloc == request.host and came_from.scheme in ("http", "https")
    if same_site and came_from.path.startswith(ADMIN_PREFIX + "/"):
        return came_from.path + (f"?{came_from.query}" if came_from.query else "")
    return url_for("admin.index")
