"""The admin's languages: Flask-Babel catalogs, the account's choice, labels for stored values.

Adding a language is a catalog away: `pybabel init -l <code>` under signup/translations, then
add its code to LANGUAGES (see README, Languages).
"""

from __future__ import annotations

import enum
from pathlib import Path

from flask import Flask, has_request_context, request
from flask_babel import Babel, LazyString, get_locale, gettext, lazy_gettext
from flask_login import current_user

from signup.calls.models import CallOutcome, CallState
from signup.messaging.models import MessageKind, MessageStatus
from signup.users.models import Role
from signup.volunteers.models import ConsentChannel, ConsentEventType, VolunteerStatus

LANGUAGES = {"en": "English", "hi": "हिन्दी"}
DEFAULT_LANGUAGE = "en"
TRANSLATIONS = Path(__file__).parent / "translations"
babel = Babel()

# Stored values shown to organisers: translated labels, never raw enum values. Every member of
# every enum in SHOWN has one (tests/unit/test_i18n.py); a new member without a label fails.
SHOWN: tuple[type[enum.StrEnum], ...] = (
    VolunteerStatus,
    ConsentEventType,
    ConsentChannel,
    MessageKind,
    MessageStatus,
    CallState,
    CallOutcome,
    Role,
)
LABELS: dict[str, LazyString] = {
    "active": lazy_gettext("active"),
    "opted_out": lazy_gettext("opted out"),
    "imported": lazy_gettext("imported"),
    "erased": lazy_gettext("erased"),
    "given": lazy_gettext("consent given"),
    "withdrawn": lazy_gettext("consent withdrawn"),
    "re_given": lazy_gettext("consent given again"),
    "missed_call": lazy_gettext("missed call"),
    "opt_out_number": lazy_gettext("call to the opt-out number"),
    "sms_keyword": lazy_gettext("SMS reply"),
    "provider": lazy_gettext("SMS provider"),
    "organiser": lazy_gettext("organiser"),
    "onboarding": lazy_gettext("welcome SMS"),
    "optout_confirmation": lazy_gettext("opt-out confirmation"),
    "help": lazy_gettext("help reply"),
    "pending": lazy_gettext("waiting"),
    "queued": lazy_gettext("queued"),
    "sending": lazy_gettext("sending"),
    "sent": lazy_gettext("sent"),
    "delivered": lazy_gettext("delivered"),
    "undelivered": lazy_gettext("not delivered"),
    "failed": lazy_gettext("failed"),
    "unknown": lazy_gettext("unclear, to review"),
    "done": lazy_gettext("done"),
    "joined": lazy_gettext("joined"),
    "rejoined": lazy_gettext("joined again"),
    "repeat": lazy_gettext("repeat call"),
    "already_opted_out": lazy_gettext("already opted out"),
    "not_a_volunteer": lazy_gettext("not a volunteer"),
    "unrouted": lazy_gettext("to no campaign"),
    "no_caller": lazy_gettext("number withheld"),
    "flooding": lazy_gettext("too many calls"),
    "superseded": lazy_gettext("came before they left"),
    "admin": lazy_gettext("admin"),
    "viewer": lazy_gettext("viewer"),
}
# The audit log's actions (signup.admin.services.audit callers).
ACTIONS: dict[str, LazyString] = {
    "export": lazy_gettext("export"),
    "edit": lazy_gettext("edit"),
    "opt_out": lazy_gettext("opt-out"),
    "erase": lazy_gettext("erasure"),
    "import": lazy_gettext("import"),
    "user_create": lazy_gettext("account created"),
    "user_update": lazy_gettext("account changed"),
    "campaign_create": lazy_gettext("campaign created"),
    "campaign_settings": lazy_gettext("campaign settings changed"),
    "campaign_dlt": lazy_gettext("DLT registration changed"),
    "campaign_template": lazy_gettext("DLT template registered"),
    "campaign_blackout": lazy_gettext("blackout added"),
}


def label(value: object) -> str:
    """The organiser-facing label of a stored value; an unknown one is shown as stored."""
    raw = str(getattr(value, "value", value) or "")
    found = LABELS.get(raw)
    return str(found) if found is not None else raw


def action_label(action: str) -> str:
    """The audit log's name for an action."""
    found = ACTIONS.get(action)
    return str(found) if found is not None else action


def select_locale() -> str:
    """The account's language when chosen, else the browser's best match, else English."""
    if not has_request_context():  # the CLI and workers speak English
        return DEFAULT_LANGUAGE
    chosen = getattr(current_user, "language", None)
    if chosen in LANGUAGES:
        return str(chosen)
    return request.accept_languages.best_match(list(LANGUAGES), DEFAULT_LANGUAGE)


def init_app(app: Flask) -> None:
    """Bind Flask-Babel to the app, with the catalogs shipped inside the package."""
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.filters["label"] = label
    app.jinja_env.filters["action_label"] = action_label
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
    app.jinja_env.globals["current_language"] = current_language


def current_language() -> str:
    """The language this request is shown in: the <html lang> and the switch's choices."""
    locale = get_locale()
    return locale.language if locale is not None else DEFAULT_LANGUAGE


__all__ = ["LANGUAGES", "gettext", "init_app", "label", "lazy_gettext"]
