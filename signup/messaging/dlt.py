"""India's DLT content templates: a sent body must match its registered template exactly.

A template is literal text with `{#var#}` slots; each slot may carry at most 30 characters.
Operators drop a message that does not match, so we check when a campaign is saved.
"""

from __future__ import annotations

import re

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

from signup.errors import ValidationError

VAR = "{#var#}"
MAX_VAR_LENGTH = 30
ENTITY_RE = re.compile(r"^\d{10,20}$")
TEMPLATE_ID_RE = re.compile(r"^\d{10,25}$")
HEADER_RE = re.compile(r"^[A-Za-z0-9]{6}$")


def validate_registration(entity_id: str, header: str) -> None:
    """Refuse an entity id or sender header that DLT would not accept."""
    if not ENTITY_RE.match(entity_id):
        raise ValidationError(_l("DLT entity id must be 10-20 digits"))
    if not HEADER_RE.match(header):
        raise ValidationError(_l("DLT sender header must be 6 letters or digits"))


def validate_template(template_id: str, text: str) -> None:
    """Refuse a template that cannot be a registered DLT template."""
    if not TEMPLATE_ID_RE.match(template_id):
        raise ValidationError(_l("DLT template id must be 10-25 digits"))
    if not text.strip():
        raise ValidationError(_l("DLT template text is empty"))
    if not text.replace(VAR, "").strip():
        raise ValidationError(_l("a DLT template cannot consist of variables only"))


def _literals(template: str) -> list[str]:
    return template.split(VAR)


def match(body: str, template: str) -> list[str]:
    """The values in the template's slots, or ValidationError saying where the body differs."""
    literals = _literals(template)
    pattern = "(.*?)".join(re.escape(part) for part in literals)
    found = re.fullmatch(pattern, body, flags=re.DOTALL)
    if found is None:
        raise ValidationError(_where_it_differs(body, literals))
    values = list(found.groups())
    for number, value in enumerate(values, start=1):
        if len(value) > MAX_VAR_LENGTH:
            raise ValidationError(
                _l(
                    "variable %(number)s of the DLT template would be %(length)s characters "
                    "(%(start)s); DLT allows %(most)s",
                    number=number,
                    length=len(value),
                    start=repr(value[:40]),
                    most=MAX_VAR_LENGTH,
                )
            )
    return values


def _where_it_differs(body: str, literals: list[str]) -> str | LazyString:
    position = 0
    for index, part in enumerate(literals):
        if not part:
            continue
        found = body.startswith(part, position) if index == 0 else body.find(part, position)
        if found is False or found == -1:
            seen = body[position : position + len(part) + 10]
            if index == 0:
                return _l(
                    "the text does not match the DLT template at the start: expected "
                    "%(expected)s, found %(found)s",
                    expected=repr(part[:60]),
                    found=repr(seen[:60]),
                )
            return _l(
                "the text does not match the DLT template after variable %(index)s: expected "
                "%(expected)s, found %(found)s",
                index=index,
                expected=repr(part[:60]),
                found=repr(seen[:60]),
            )
        position = len(part) if index == 0 else int(found) + len(part)
    return _l("the text does not match the DLT template: it has extra text at the end")
