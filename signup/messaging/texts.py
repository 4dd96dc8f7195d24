"""The SMS texts: defaults in English and Hindi, a campaign's own texts, and their checks."""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

from flask_babel import lazy_gettext as _l

from signup.errors import ValidationError
from signup.messaging.models import MessageKind

if TYPE_CHECKING:
    from signup.campaigns.models import Campaign

LANGUAGES = ("en", "hi")
PLACEHOLDERS = frozenset({"campaign", "optout_number", "number"})
MAX_TEXT = 600

# Each onboarding text says what was joined, what is kept and how to leave.
ONBOARDING = {
    "en": {
        "optout": "{campaign}: thank you for your missed call, you have joined as a volunteer. "
        "We keep only your number, for campaign updates. "
        "To leave, give a missed call to {optout_number}.",
        "stop": "{campaign}: thank you for your missed call, you have joined as a volunteer. "
        "We keep only your number, for campaign updates. To leave, reply STOP.",
    },
    "hi": {
        "optout": "{campaign} से जुड़ने का धन्यवाद। हम केवल आपका नंबर रखेंगे। "
        "छोड़ने हेतु {optout_number} पर मिस्ड कॉल दें।",
        "stop": "{campaign} से जुड़ने का धन्यवाद। हम केवल आपका नंबर रखेंगे। छोड़ने हेतु STOP लिखकर भेजें।",
    },
}

OPTOUT_CONFIRMATION = {
    "en": "{campaign}: you have left and will get no more messages from us. "
    "To join again, give a missed call to {number}.",
    "hi": "{campaign}: आपने अभियान छोड़ दिया है, अब कोई संदेश नहीं आएगा। "
    "दोबारा जुड़ने हेतु {number} पर मिस्ड कॉल दें।",
}

HELP = {
    "en": {
        "optout": "{campaign}: to join, give a missed call to {number}; "
        "to leave, give a missed call to {optout_number} or reply STOP.",
        "stop": "{campaign}: to join, give a missed call to {number}; to leave, reply STOP.",
    },
    "hi": {
        "optout": "{campaign}: जुड़ने हेतु {number} पर, छोड़ने हेतु {optout_number} पर "
        "मिस्ड कॉल दें या STOP भेजें।",
        "stop": "{campaign}: जुड़ने हेतु {number} पर मिस्ड कॉल दें, छोड़ने हेतु STOP भेजें।",
    },
}


def _pieces(template: str) -> list[tuple[str, str | None]]:
    """The template as (literal text, placeholder name or None) pairs; refuses anything else.

    Only a bare `{name}` is a placeholder: a format spec (`{campaign:>20000}`, a width that
    would bypass the length limit or allocate without bound), a conversion (`{campaign!r}`)
    or attribute and index access (`{campaign.x}`, `{campaign[0]}`) is refused here, so
    neither validation nor rendering ever hands them to str.format.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValidationError(
            _l("SMS text has unbalanced braces: %(problem)s", problem=exc)
        ) from exc
    pieces: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in parsed:
        if field is not None and (spec or conversion):
            raise ValidationError(
                _l(
                    "SMS text placeholder {%(field)s} may not carry a format or conversion; "
                    "write it bare, e.g. {campaign}",
                    field=field,
                )
            )
        pieces.append((literal, field))
    return pieces


def placeholders(template: str) -> set[str]:
    """The {names} a template uses; raises ValidationError on malformed or formatted ones."""
    return {field for _, field in _pieces(template) if field is not None}


def validate_text(
    template: str, *, name: str, has_optout_number: bool, must_say_how_to_leave: bool = True
) -> None:
    """Refuse a campaign SMS text that a volunteer could not trust or we could not render."""
    if not template.strip():
        raise ValidationError(_l("SMS text is empty"))
    if len(template) > MAX_TEXT:
        raise ValidationError(_l("SMS text is longer than %(n)s characters", n=MAX_TEXT))
    fields = placeholders(template)
    unknown = fields - PLACEHOLDERS
    if unknown:
        allowed = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
        raise ValidationError(
            _l(
                "SMS text uses unknown placeholder(s) %(unknown)s; allowed: %(allowed)s",
                unknown=sorted(unknown),
                allowed=allowed,
            )
        )
    if "campaign" not in fields and name.lower() not in template.lower():
        raise ValidationError(_l("SMS text must name the campaign (use {campaign})"))
    if "optout_number" in fields and not has_optout_number:
        raise ValidationError(
            _l("SMS text uses {optout_number} but the campaign has no opt-out number")
        )
    if must_say_how_to_leave and "optout_number" not in fields and "STOP" not in template.upper():
        raise ValidationError(
            _l("SMS text must say how to leave: use {optout_number} or mention STOP")
        )


def validate_sms_text(template: str, *, name: str, has_optout_number: bool) -> None:
    """Refuse an onboarding text that does not name the campaign and say how to leave."""
    validate_text(template, name=name, has_optout_number=has_optout_number)


# Every default as {language: {way out: template}}; the way out is "optout" when the campaign has
# an opt-out number, else "stop". The renderers below and the admin's live counter read this.
DEFAULTS: dict[MessageKind, dict[str, dict[str, str]]] = {
    MessageKind.ONBOARDING: ONBOARDING,
    MessageKind.OPTOUT_CONFIRMATION: {
        language: {"optout": text, "stop": text} for language, text in OPTOUT_CONFIRMATION.items()
    },
    MessageKind.HELP: HELP,
}
CUSTOM_FIELDS = {
    MessageKind.ONBOARDING: "sms_text",
    MessageKind.OPTOUT_CONFIRMATION: "optout_text",
    MessageKind.HELP: "help_text",
}


def _fill(template: str, campaign: Campaign) -> str:
    """Put the campaign's values into a template's bare placeholders (never str.format)."""
    values = {
        "campaign": campaign.name,
        "optout_number": campaign.optout_number or "",
        "number": campaign.number,
    }
    return "".join(
        literal + ("" if field is None else values[field]) for literal, field in _pieces(template)
    )


def way_out(campaign: Campaign) -> str:
    """How the defaults tell a volunteer to leave: "optout" (a number to call) or "stop"."""
    return "optout" if campaign.optout_number else "stop"


def template_for(kind: MessageKind | str, campaign: Campaign) -> str:
    """The template a campaign sends for this kind: its own text, else the default."""
    kind = MessageKind(kind)
    custom = getattr(campaign, CUSTOM_FIELDS[kind])
    if custom:
        return str(custom)
    defaults = DEFAULTS[kind]
    return defaults.get(campaign.language, defaults["en"])[way_out(campaign)]


def onboarding_text(campaign: Campaign) -> str:
    """The onboarding SMS body for a campaign, rendered."""
    return _fill(template_for(MessageKind.ONBOARDING, campaign), campaign)


def optout_confirmation_text(campaign: Campaign) -> str:
    """The SMS that confirms an opt-out and says how to come back."""
    return _fill(template_for(MessageKind.OPTOUT_CONFIRMATION, campaign), campaign)


def help_text(campaign: Campaign) -> str:
    """The answer to HELP or INFO: how to join and how to leave."""
    return _fill(template_for(MessageKind.HELP, campaign), campaign)


RENDERERS = {
    MessageKind.ONBOARDING: onboarding_text,
    MessageKind.OPTOUT_CONFIRMATION: optout_confirmation_text,
    MessageKind.HELP: help_text,
}


def render(kind: MessageKind | str, campaign: Campaign) -> str:
    """Render the body of a message of this kind for this campaign."""
    return RENDERERS[MessageKind(kind)](campaign)
