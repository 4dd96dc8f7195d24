"""Import organisers' existing lists (CSV or XLSX): check every row, preview, then merge.

Imported people get status `imported` and no SMS: they have not given consent here. A number
Excel has turned into `9.19911E+11` has lost digits and is refused, never guessed.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select

from signup import clock
from signup.errors import ValidationError
from signup.extensions import db
from signup.phones import normalise
from signup.volunteers import erasure, places
from signup.volunteers.models import Volunteer, VolunteerStatus

MAX_ROWS = 50_000
MAX_BYTES = 10 * 1024 * 1024
SCIENTIFIC = re.compile(r"^\s*[+-]?\d+(?:\.\d+)?[eE][+-]?\d+\s*$")
COLUMNS = {
    "phone": {"phone", "mobile", "number", "phone number", "mobile number", "फ़ोन", "मोबाइल"},
    "name": {"name", "full name", "नाम"},
    "state": {"state", "राज्य"},
    "district": {"district", "ज़िला", "जिला"},
    "pincode": {"pincode", "pin code", "pin", "पिन कोड"},
    "language": {"language", "भाषा"},
}
LIMITS = {"name": 120, "state": 64, "district": 64}


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One checked row: what we would store, or why it is refused."""

    line: int
    phone: str | None
    name: str | None = None
    state: str | None = None
    district: str | None = None
    pincode: str | None = None
    language: str | None = None
    error: str | None = None


def _cell(value: Any) -> str:
    """A cell as text; whole numbers from XLSX keep every digit."""
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value).strip()


def _header(cells: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, cell in enumerate(cells):
        name = cell.strip().lower().lstrip("\ufeff")
        for key, aliases in COLUMNS.items():
            if name in aliases and key not in found:
                found[key] = index
    if "phone" not in found:
        raise ValidationError("the first row must name a phone column (phone, mobile or number)")
    return found


def _rows(data: bytes, filename: str) -> Iterator[list[str]]:
    if filename.lower().endswith(".xlsx"):
        from openpyxl import load_workbook

        try:
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a damaged file
            raise ValidationError("the file is not a readable .xlsx workbook") from exc
        for row in book.worksheets[0].iter_rows(values_only=True):
            yield [_cell(value) for value in row]
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError("the CSV is not UTF-8 (save it as 'CSV UTF-8')") from exc
    delimiter = ","
    with contextlib.suppress(csv.Error):  # a one-column file has nothing to sniff
        delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t").delimiter
    yield from csv.reader(io.StringIO(text), delimiter=delimiter)


def check(data: bytes, filename: str) -> list[ImportRow]:
    """Read and check every row; raises ValidationError when the file itself is unusable."""
    if len(data) > MAX_BYTES:
        raise ValidationError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    if not filename.lower().endswith((".csv", ".xlsx")):
        raise ValidationError("upload a .csv or .xlsx file")
    rows = _rows(data, filename)
    try:
        header = _header(next(rows))
    except StopIteration:
        raise ValidationError("the file is empty") from None
    checked: list[ImportRow] = []
    seen: set[str] = set()
    for line, cells in enumerate(rows, start=2):
        if any("\x00" in cell for cell in cells):  # PostgreSQL text cannot hold it
            raise ValidationError(f"row {line} contains a NUL character; is this a text file?")
        if not any(cell.strip() for cell in cells):
            continue
        if len(checked) >= MAX_ROWS:
            raise ValidationError(f"the file has more than {MAX_ROWS} rows; split it")
        values = {key: (cells[i].strip() if i < len(cells) else "") for key, i in header.items()}
        checked.append(_check_row(line, values, seen))
    if not checked:
        raise ValidationError("the file has no rows under its header")
    return checked


def _check_row(line: int, values: dict[str, str], seen: set[str]) -> ImportRow:
    raw = values.get("phone", "")
    if SCIENTIFIC.match(raw):
        return ImportRow(
            line,
            None,
            error=f"{raw!r} was damaged by Excel (digits lost); "
            "format the column as text and export again",
        )
    phone = normalise(raw)
    if phone.e164 is None:
        return ImportRow(line, None, error=f"{raw[:30]!r} is not a phone number")
    if phone.e164 in seen:
        return ImportRow(line, phone.e164, error="the same number is on an earlier row")
    seen.add(phone.e164)
    fields = {
        k: (values.get(k) or None) for k in ("name", "state", "district", "pincode", "language")
    }
    for key, limit in LIMITS.items():
        if fields[key] and len(fields[key] or "") > limit:
            return ImportRow(line, phone.e164, error=f"{key} is longer than {limit} characters")
    if fields["language"] and fields["language"] not in ("en", "hi"):
        return ImportRow(line, phone.e164, error="language must be en or hi")
    if fields["pincode"]:
        place = places.lookup(fields["pincode"] or "")
        if place is None:
            return ImportRow(line, phone.e164, error=f"PIN code {fields['pincode']} is unknown")
        fields["state"] = fields["state"] or place.state
        fields["district"] = fields["district"] or place.district
    if erasure.is_suppressed(phone.e164):
        return ImportRow(line, phone.e164, error="this person asked to be erased")
    return ImportRow(line, phone.e164, **fields)


@dataclass(frozen=True, slots=True)
class MergeResult:
    """What a confirmed import did."""

    created: int
    updated: int
    skipped: int


def merge(rows: list[ImportRow]) -> MergeResult:
    """Add new people as `imported` and fill blanks of existing ones; never a second row."""
    good = [row for row in rows if row.error is None and row.phone]
    existing = {
        v.phone: v
        for v in db.session.scalars(
            select(Volunteer)
            .where(Volunteer.phone.in_([r.phone for r in good]))
            .with_for_update(key_share=True)
        )
    }
    created = updated = 0
    now = clock.now()
    for row in good:
        volunteer = existing.get(row.phone or "")
        details = {
            k: v
            for k, v in asdict(row).items()
            if k in ("name", "state", "district", "pincode", "language") and v
        }
        if volunteer is None:
            db.session.add(
                Volunteer(
                    phone=row.phone,
                    status=VolunteerStatus.IMPORTED,
                    call_count=0,
                    created_at=now,
                    updated_at=now,
                    **details,
                )
            )
            created += 1
        else:
            blanks = {k: v for k, v in details.items() if not getattr(volunteer, k)}
            for key, value in blanks.items():
                setattr(volunteer, key, value)
            updated += bool(blanks)
    db.session.flush()
    return MergeResult(created, updated, len(rows) - created - updated)
