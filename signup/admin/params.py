"""The admin's request input, parsed in one place: bad input is a 400 with one line, never a 500.

Every admin request passes `refuse_bad_input` first: a NUL byte (which PostgreSQL text refuses)
in any query or form field, or an oversized query value, is answered before a view runs. The
views read dates, ids and redirect targets only through the helpers here, and path ids through
`RowIdConverter`, so an impossible date, an id beyond the database's range or a header-splitting
`next` is a clear refusal instead of an exception.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import date
from urllib.parse import urlparse

from flask import Response, request, url_for
from werkzeug.routing import IntegerConverter

from signup import moments

MAX_ROW_ID = 2**31 - 1  # PostgreSQL `integer`, the narrowest id column an admin URL names
MAX_QUERY_VALUE = 2000  # characters; no filter or cursor comes near it


class RowIdConverter(IntegerConverter):
    """`<int:…>` in every route: a positive id the database can hold, else a 404."""

    def __init__(self, map: object, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(map, *args, **kwargs)  # type: ignore[arg-type]


def refuse_bad_input() -> Response | None:
    """A one-line 400 for a NUL byte in any field, or an odd or huge query or path value.

    Query values are one-line filters, ids and cursors: a control character or line break
    there (CRLF, U+2028) has no meaning and would split an error line that echoes it. Form
    values may hold line breaks (SMS texts, notes), never NUL.
    """
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and not one_line(value):
            return bad_request(f"the path part {_shown(name)} contains a control character")
    for name, value in request.args.items(multi=True):
        if len(value) > MAX_QUERY_VALUE:
            return bad_request(f"the query field {_shown(name)} is too long")
        if not one_line(name) or not one_line(value):
            return bad_request(f"the query field {_shown(name)} contains a control character")
    fields = [*request.form.items(multi=True)]
    fields += [(name, upload.filename or "") for name, upload in request.files.items(multi=True)]
    for name, value in fields:
        if name is None:  # a multipart part whose header names nothing
            return bad_request("a form field has no name")
        if "\x00" in name or "\x00" in value:
            return bad_request(f"the form field {_shown(name)} contains a NUL character")
    return None


def guard_admin_input() -> Response | None:
    """`refuse_bad_input` for the admin's paths: installed before CSRF, which reads the form."""
    return refuse_bad_input() if request.path.startswith("/admin") else None


LINE_BREAKING = frozenset({"Cc", "Zl", "Zp", "Cs"})  # controls, line/paragraph separators


def one_line(text: str) -> bool:
    """True when the text has no control character, line break or lone surrogate."""
    return text.isprintable() or not any(
        unicodedata.category(char) in LINE_BREAKING for char in text
    )


def bad_request(message: str) -> Response:
    """The one-line plain-text 400 every refused admin input gets."""
    return Response(message + "\n", status=400, mimetype="text/plain")


def _shown(name: str) -> str:
    """A field name fit to echo in an error: printable, short, never a value."""
    cleaned = "".join(c for c in name if c.isprintable())[:40]
    return repr(cleaned)


def text_arg(name: str) -> str | None:
    """A query value with its spaces trimmed; None when absent or blank."""
    return request.args.get(name, "").strip() or None


def date_arg(name: str) -> date | None:
    """A query value as a date (YYYY-MM-DD, 1900 to 2999); ValidationError otherwise."""
    raw = request.args.get(name, "").strip()
    return moments.parse_day(raw, name) if raw else None


def row_ids(values: Iterable[str]) -> list[int]:
    """Form values that are row ids (digits, within the database's range); others are ignored."""
    return [
        int(value)
        for value in values
        if value.isascii() and value.isdigit() and len(value) <= 10 and 0 < int(value) <= MAX_ROW_ID
    ]


def safe_next(target: str | None) -> str:
    """Only ever redirect back into the admin, never to another site or with a split header."""
    if (
        target
        and target.startswith("/admin")
        and target.isprintable()
        and target.isascii()
        and not urlparse(target).netloc
        and "\\" not in target
    ):
        return target
    return url_for("admin.volunteers")
