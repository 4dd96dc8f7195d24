"""The SMS texts: defaults in English and Hindi, a campaign's own texts, and their checks."""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

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
        raise ValidationError(f"SMS text has unbalanced braces: {exc}") from exc
    pieces: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in parsed:
        if field is not None and (spec or conversion):
            raise ValidationError(
                f"SMS text placeholder {{{field}}} may not carry a format or conversion; "
                "write it bare, e.g. {campaign}"
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
        raise ValidationError("SMS text is empty")
    if len(template) > MAX_TEXT:
        raise ValidationError(f"SMS text is longer than {MAX_TEXT} characters")
    fields = placeholders(template)
    unknown = fields - PLACEHOLDERS
    if unknown:
        allowed = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
        raise ValidationError(
            f"SMS text uses unknown placeholder(s) {sorted(unknown)}; allowed: {allowed}"
        )
    if "campaign" not in fields and name.lower() not in template.lower():
        raise ValidationError("SMS text must name the campaign (use {campaign})")
    if "optout_number" in fields and not has_optout_number:
        raise ValidationError(
            "SMS text uses {optout_number} but the campaign has no opt-out number"
        )
    if must_say_how_to_leave and "optout_number" not in fields and "STOP" not in template.upper():
        raise ValidationError("SMS text must say how to leave: use {optout_number} or mention STOP")


def validate_sms_text(template: str, *, name: str, has_optout_number: bool) -> None:
    """Refuse an onboarding text that does not name the campaign and say how to leave."""
    validate_text(template, name=name, has_optout_number=has_optout_number)


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


def _way_out(campaign: Campaign) -> str:
    return "optout" if campaign.optout_number else "stop"


def onboarding_text(campaign: Campaign) -> str:
    """The onboarding SMS body for a campaign, rendered."""
    default = ONBOARDING.get(campaign.language, ONBOARDING["en"])[_way_out(campaign)]
    return _fill(campaign.sms_text or default, campaign)


def optout_confirmation_text(campaign: Campaign) -> str:
    """The SMS that confirms an opt-out and says how to come back."""
    default = OPTOUT_CONFIRMATION.get(campaign.language, OPTOUT_CONFIRMATION["en"])
    return _fill(campaign.optout_text or default, campaign)


def help_text(campaign: Campaign) -> str:
    """The answer to HELP or INFO: how to join and how to leave."""
    default = HELP.get(campaign.language, HELP["en"])[_way_out(campaign)]
    return _fill(campaign.help_text or default, campaign)


RENDERERS = {
    MessageKind.ONBOARDING: onboarding_text,
    MessageKind.OPTOUT_CONFIRMATION: optout_confirmation_text,
    MessageKind.HELP: help_text,
}


def render(kind: MessageKind | str, campaign: Campaign) -> str:
    """Render the body of a message of this kind for this campaign."""
    return RENDERERS[MessageKind(kind)](campaign)
