"""Turn any caller string into E.164 and a kind, with phonenumbers and region IN.

Only phonenumbers' core is imported: its geocoder and carrier modules cost about 100 MB each
and must stay out of web and worker processes.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

DEFAULT_REGION = "IN"
MAX_INPUT = 64  # longer strings are not phone numbers; phonenumbers itself stops at 250

WITHHELD_WORDS = frozenset(
    {
        "",
        "anonymous",
        "restricted",
        "unknown",
        "private",
        "withheld",
        "unavailable",
        "blocked",
        "client:anonymous",
    }
)


class PhoneKind(enum.StrEnum):
    """What a caller string turned out to be."""

    MOBILE = "mobile"
    FIXED_LINE = "fixed_line"
    TOLL_FREE = "toll_free"
    FOREIGN = "foreign"
    INVALID = "invalid"
    WITHHELD = "withheld"


@dataclass(frozen=True, slots=True)
class Phone:
    """A normalised phone number; e164 is None for withheld and invalid callers."""

    e164: str | None
    kind: PhoneKind

    @property
    def is_person(self) -> bool:
        """True when the number identifies a reachable caller we may record as a volunteer."""
        return self.e164 is not None

    @property
    def is_indian_mobile(self) -> bool:
        """True when the number can receive our onboarding SMS."""
        return self.kind is PhoneKind.MOBILE


_INDIAN_KINDS = {
    PhoneNumberType.MOBILE: PhoneKind.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: PhoneKind.MOBILE,
    PhoneNumberType.FIXED_LINE: PhoneKind.FIXED_LINE,
    PhoneNumberType.TOLL_FREE: PhoneKind.TOLL_FREE,
}


# An Indian number already in E.164, as Twilio and most carriers send it.
_INDIAN_E164 = re.compile(r"\+91([1-9][0-9]{9})")


def normalise(raw: str | None) -> Phone:
    """Normalise a caller string (any common Indian format, Devanagari digits) to E.164."""
    text = unicodedata.normalize("NFKC", raw or "").strip()
    indian = _INDIAN_E164.fullmatch(text)
    if indian:
        return _indian_e164(indian.group(1))
    return _by_parsing(text)


def _by_parsing(text: str) -> Phone:
    """normalise() for any stripped NFKC text, through phonenumbers' parser."""
    if text.lower() in WITHHELD_WORDS:
        return Phone(None, PhoneKind.WITHHELD)
    if len(text) > MAX_INPUT:
        return Phone(None, PhoneKind.INVALID)
    if not any(ch.isdigit() for ch in text):
        # Carriers pass withheld caller IDs through as words (ANONYMOUS, RESTRICTED, ...).
        return Phone(None, PhoneKind.WITHHELD)
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except NumberParseException:
        return Phone(None, PhoneKind.INVALID)
    if not phonenumbers.is_valid_number(number):
        return Phone(None, PhoneKind.INVALID)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if phonenumbers.region_code_for_number(number) != DEFAULT_REGION:
        return Phone(e164, PhoneKind.FOREIGN)
    kind = _INDIAN_KINDS.get(phonenumbers.number_type(number), PhoneKind.INVALID)
    if kind is PhoneKind.INVALID:
        return Phone(None, PhoneKind.INVALID)
    return Phone(e164, kind)


def _indian_e164(national: str) -> Phone:
    """normalise() of "+91" and ten digits, without phonenumbers' parser (a fifth of the cost).

    For such a string parse() gives country code 91 and these digits, with no national prefix
    to strip ("0" only) and no extension; +91 belongs to India alone, so the number is valid
    exactly when its type is known. tests/unit/test_phones.py checks this against the full
    path over every four-digit prefix.
    """
    number = phonenumbers.PhoneNumber(country_code=91, national_number=int(national))
    kind = _INDIAN_KINDS.get(phonenumbers.number_type(number), PhoneKind.INVALID)
    if kind is PhoneKind.INVALID:
        return Phone(None, PhoneKind.INVALID)
    return Phone("+91" + national, kind)


def parse_number_argument(raw: str) -> str:
    """Normalise a number given by an operator (campaign numbers), or raise ValueError."""
    phone = normalise(raw)
    if phone.e164 is None:
        raise ValueError(f"{raw!r} is not a valid phone number")
    return phone.e164


def mask(e164: str | None) -> str:
    """Mask a number for logs and viewers: +91 99XXX XX181 keeps country, two and three digits."""
    if not e164:
        return "-"
    if e164.startswith("+91") and len(e164) == 13:
        local = e164[3:]
        return f"+91 {local[:2]}XXX XX{local[-3:]}"
    if len(e164) <= 6:
        return "X" * len(e164)
    return e164[:3] + "X" * (len(e164) - 6) + e164[-3:]


# --- how a number may be written in free text: the same fragments in Python and PostgreSQL ----
# Used by erasure (signup.volunteers.erasure.Traces) to find one person's number and by the log
# mask (signup.logs.PHONE) to find any; plain alternations and bracket expressions, no escapes
# that the two regex dialects read differently.


def percent_encoded(text: str) -> str:
    """The percent-encoded UTF-8 of text, each hex letter matched in either case."""
    encoded = "".join(f"%{byte:02X}" for byte in text.encode())
    return "".join(f"[{ch}{ch.lower()}]" if ch.isalpha() else ch for ch in encoded)


def _digits_by_value() -> dict[int, str]:
    """Every decimal digit of the Basic Multilingual Plane (Devanagari, Bengali, ...) by value."""
    found: dict[int, list[str]] = {value: [] for value in range(10)}
    for code in range(0x10000):
        value = unicodedata.decimal(chr(code), None)
        if value is not None:
            found[value].append(chr(code))
    return {value: "".join(chars) for value, chars in found.items()}


_DIGITS_BY_VALUE = _digits_by_value()


def digit_pattern(value: int) -> str:
    """A digit in any script, raw or percent-encoded (ASCII and Devanagari)."""
    forms = [
        f"[{_DIGITS_BY_VALUE[value]}]",
        percent_encoded(str(value)),
        percent_encoded(chr(0x966 + value)),
    ]
    return "(?:" + "|".join(forms) + ")"


ANY_DIGIT = "(?:[" + "".join(_DIGITS_BY_VALUE.values()) + "]|%3[0-9]|%[Ee]0%[Aa]5%[Aa][6-9A-Fa-f])"
# Between two digits: space (any Unicode space), dash, underscore, dot, slash, brackets, "+"
# (a URL's space), raw or percent-encoded.
_SPACES = "\u00a0\u2000-\u200b\u202f\u205f\u3000"
_ENCODED_SEPARATORS = [percent_encoded(ch) for ch in " -_./()+\u00a0\u2009\u202f"]
PLAIN_SEPARATOR = "[ \t._/()+" + _SPACES + "-]"
SEPARATOR = "(?:" + PLAIN_SEPARATOR + "|" + "|".join(_ENCODED_SEPARATORS) + ")"
# A digit as a log line may hold it: also UTF-8 Devanagari read as Latin-1 (gunicorn's headers).
LOG_DIGIT = ANY_DIGIT[:-1] + "|\u00e0\u00a5[\u00a6-\u00af])"
