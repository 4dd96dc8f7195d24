"""Import organisers' existing lists (CSV or XLSX): check every row, preview, then merge.

Imported people get status `imported` and no SMS: they have not given consent here. A number
Excel has turned into `9.19911E+11` has lost digits and is refused, never guessed. Someone who
already asked us to leave (a STOP reply, a provider opt-out, a call to an opt-out number) before
being on any list is imported `opted_out`, their withdrawal in the consent ledger.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select

from signup import clock
from signup.calls.models import Call, CallOutcome
from signup.errors import ValidationError
from signup.extensions import db
from signup.messaging.keywords import Keyword
from signup.messaging.models import InboundMessage
from signup.phones import normalise
from signup.volunteers import erasure, places
from signup.volunteers import services as volunteers
from signup.volunteers.models import ConsentChannel, Volunteer, VolunteerStatus

# Bounds on an untrusted file, checked before and while it is read (off the request path).
MAX_ROWS = 50_000  # rows under the header, blank ones included
MAX_COLUMNS = 64
MAX_SECONDS = 120.0  # a parse that runs longer is stopped with a one-line error
MAX_EXPANDED_BYTES = 100 * 1024 * 1024  # an .xlsx (a zip) unpacked, all parts together
ERASED = "this person asked to be erased"
HIDDEN_DIGITS = re.compile(r"\d(?=(?:\D*\d){3})")
PROGRESS_EVERY = 1000  # rows between progress reports
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


Lines = Iterator[tuple[int, list[str]]]
Progress = Callable[[int, int | None], None]


def size_error(limit: int) -> str:
    """The one line shown for a file over IMPORT_MAX_BYTES, by the upload check and the 413 page."""
    return f"the file is larger than {limit / (1024 * 1024):.3g} MB; split it"


def check_upload(filename: str, size: int, max_bytes: int | None = None) -> None:
    """Refuse a file by its name and size alone, before it is stored or read."""
    if not filename.lower().endswith((".csv", ".xlsx")):
        raise ValidationError("upload a .csv or .xlsx file")
    if size == 0:
        raise ValidationError("the file is empty")
    if max_bytes is not None and size > max_bytes:
        raise ValidationError(size_error(max_bytes))


def _too_many_rows() -> ValidationError:
    return ValidationError(f"the file has more than {MAX_ROWS} rows under its header; split it")


def _csv_lines(data: bytes) -> tuple[int, Lines]:
    """An estimate of the lines, and each record with its line; malformed CSV is refused."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError("the CSV is not UTF-8 (save it as 'CSV UTF-8')") from exc
    if "\x00" in text:
        raise ValidationError("the file holds binary data (NUL bytes); it is not a CSV")
    estimate = text.rstrip("\r\n").count("\n") + 1
    if estimate > MAX_ROWS + 1:
        raise _too_many_rows()  # counted before reading a single record
    delimiter = ","
    with contextlib.suppress(csv.Error):  # a one-column file has nothing to sniff
        delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t").delimiter
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    return estimate, _csv_records(reader)


def _csv_records(reader: Any) -> Lines:
    """Each record with the line it starts on; a cell running over line ends is refused."""
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "end of data" in str(exc):
                raise ValidationError(
                    f"line {line}: a quote is not closed (the cell runs on to the end of the "
                    "file); remove or close it"
                ) from None
            raise ValidationError(f"line {line}: the CSV is malformed ({exc})") from None
        if reader.line_num != line:
            raise ValidationError(
                f"line {line}: a quote is not closed (the cell runs on to line "
                f"{reader.line_num}); remove or close it"
            )
        yield line, cells
        line = reader.line_num + 1


def _xlsx_lines(data: bytes) -> tuple[int | None, Lines]:
    """The first sheet's rows, streamed; its declared size is checked before any row is read."""
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ValidationError("the file is not a readable .xlsx workbook") from exc
    if expanded > MAX_EXPANDED_BYTES:
        raise ValidationError("the workbook unpacks to more than 100 MB; save it as CSV")
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = book.worksheets[0]
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise ValidationError("the file is not a readable .xlsx workbook") from exc
    rows, columns = sheet.max_row, sheet.max_column  # from its <dimension>, when it has one
    if rows is not None and rows > MAX_ROWS + 1:
        raise _too_many_rows()
    if columns is not None and columns > MAX_COLUMNS:
        raise ValidationError(f"the sheet has more than {MAX_COLUMNS} columns")
    # Bounded even when the dimension is missing or lies: openpyxl pads missing rows and cells
    # up to these bounds only, never to the sheet's last row or column.
    cells = sheet.iter_rows(max_row=MAX_ROWS + 2, max_col=MAX_COLUMNS + 1, values_only=True)
    return rows, _xlsx_records(cells)


def _xlsx_records(cells: Iterator[tuple[Any, ...]]) -> Lines:
    """Each row with its number; a sheet damaged past its first rows is refused at that row."""
    line = 1
    while True:
        try:
            row = next(cells)
        except StopIteration:
            return
        except Exception as exc:  # the sheet's XML is read lazily, row by row
            raise ValidationError(f"line {line}: the workbook is damaged here") from exc
        yield line, _xlsx_row(line, row)
        line += 1


def _xlsx_row(line: int, row: tuple[Any, ...]) -> list[str]:
    if len(row) > MAX_COLUMNS and row[MAX_COLUMNS] is not None:
        raise ValidationError(f"line {line}: more than {MAX_COLUMNS} columns")
    values = list(row[:MAX_COLUMNS])
    while values and values[-1] is None:
        values.pop()
    return [_cell(value) for value in values]


def _lines(data: bytes, filename: str) -> tuple[int | None, Lines]:
    if filename.lower().endswith(".xlsx"):
        return _xlsx_lines(data)
    return _csv_lines(data)


def _bounded(line: int, cells: list[str]) -> list[str]:
    """The cells of a line within the row and column bounds; ValidationError beyond them."""
    if line > MAX_ROWS + 1:
        raise _too_many_rows()
    if len(cells) > MAX_COLUMNS:
        raise ValidationError(f"line {line}: more than {MAX_COLUMNS} columns")
    return cells


def check(
    data: bytes,
    filename: str,
    *,
    max_seconds: float = MAX_SECONDS,
    progress: Progress | None = None,
) -> list[ImportRow]:
    """Read and check every row within the bounds; ValidationError when the file is unusable.

    Runs in the import task, never in a web request: the file is untrusted and may be slow.
    `progress` is told the rows read so far and the estimated total, every few rows.
    """
    check_upload(filename, len(data))
    deadline = time.monotonic() + max_seconds
    estimate, lines = _lines(data, filename)
    try:
        _, first = next(lines)
    except StopIteration:
        raise ValidationError("the file is empty") from None
    header = _header(_bounded(1, first))
    checked: list[ImportRow] = []
    seen: set[str] = set()
    for line, cells in lines:
        _bounded(line, cells)
        if any("\x00" in cell for cell in cells):  # PostgreSQL text cannot hold it
            raise ValidationError(f"row {line} contains a NUL character; is this a text file?")
        if line % PROGRESS_EVERY == 0:
            if time.monotonic() > deadline:
                raise ValidationError(f"reading the file took over {max_seconds:g} s; split it")
            if progress is not None:
                progress(line - 1, estimate and estimate - 1)
        if not any(cell.strip() for cell in cells):
            continue
        values = {key: (cells[i].strip() if i < len(cells) else "") for key, i in header.items()}
        checked.append(_check_row(line, values, seen))
    if not checked:
        raise ValidationError("the file has no rows under its header")
    return _refuse_erased(checked)


def _shown(cell: str) -> str:
    """A cell quoted in an error, digits masked but the last three: it may be someone's number
    that did not parse (`98111_00035`), and erased people's numbers are not stored again."""
    return HIDDEN_DIGITS.sub("X", cell)


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
        return ImportRow(line, None, error=f"{_shown(raw[:30])!r} is not a phone number")
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
    return ImportRow(line, phone.e164, **fields)


def _refuse_erased(rows: list[ImportRow]) -> list[ImportRow]:
    """Refuse the rows of people who asked to be erased (one query per few thousand rows).

    Such a row keeps only its line and the reason: no number, no name, nothing else of theirs
    is stored again in the preview (every stored preview comes from check()).
    """
    erased = erasure.suppressed([row.phone for row in rows if row.phone])
    return [ImportRow(row.line, None, error=ERASED) if row.phone in erased else row for row in rows]


@dataclass(frozen=True, slots=True)
class MergeResult:
    """What a confirmed import did."""

    created: int
    updated: int
    skipped: int


def merge(rows: list[ImportRow]) -> MergeResult:
    """Add new people as `imported` and fill blanks of existing ones; never a second row.

    Suppressions are checked again here, after the rows are locked (an erasure in progress
    holds them), so that a person erased after the preview stays erased.
    """
    good = [row for row in rows if row.error is None and row.phone]
    existing = {
        v.phone: v
        for v in db.session.scalars(
            select(Volunteer)
            .where(Volunteer.phone.in_([r.phone for r in good]))
            .with_for_update(key_share=True)
        )
    }
    erased = erasure.suppressed(row.phone for row in good if row.phone)
    good = [row for row in good if row.phone not in erased]
    created = updated = 0
    now = clock.now()
    withdrawn = earlier_withdrawals([row.phone for row in good if row.phone not in existing])
    for row in good:
        volunteer = existing.get(row.phone or "")
        details = {
            k: v
            for k, v in asdict(row).items()
            if k in ("name", "state", "district", "pincode", "language") and v
        }
        if volunteer is None:
            volunteer = Volunteer(
                phone=row.phone,
                status=VolunteerStatus.IMPORTED,
                call_count=0,
                created_at=now,
                updated_at=now,
                **details,
            )
            db.session.add(volunteer)
            if row.phone in withdrawn:
                db.session.flush()  # the ledger row needs the volunteer's id
                volunteers.withdraw_imported(volunteer, withdrawn[row.phone or ""])
            created += 1
        else:
            blanks = {k: v for k, v in details.items() if not getattr(volunteer, k)}
            for key, value in blanks.items():
                setattr(volunteer, key, value)
            updated += bool(blanks)
    db.session.flush()
    return MergeResult(created, updated, len(rows) - created - updated)


def earlier_withdrawals(phones: list[str | None]) -> dict[str, volunteers.Evidence]:
    """The recorded withdrawal of each number not yet a volunteer: a STOP or an opt-out call.

    Both are kept by number when the sender is nobody's volunteer (inbound_messages.sender, the
    call's caller with outcome `not_a_volunteer`), so an import cannot make them reachable.
    """
    numbers = sorted({phone for phone in phones if phone})
    if not numbers:
        return {}
    found: dict[str, volunteers.Evidence] = {}
    calls = db.session.execute(
        select(Call.caller, func.max(Call.id))
        .where(Call.caller.in_(numbers), Call.outcome == CallOutcome.NOT_A_VOLUNTEER)
        .group_by(Call.caller)
    )
    for caller, call_id in calls:
        assert caller is not None
        found[caller] = volunteers.Evidence(ConsentChannel.OPTOUT_CALL, call_id=call_id)
    stops = db.session.execute(
        select(InboundMessage.sender, func.max(InboundMessage.id))
        .where(InboundMessage.sender.in_(numbers), InboundMessage.keyword == Keyword.STOP)
        .group_by(InboundMessage.sender)
    )
    for sender, inbound_id in stops:
        assert sender is not None
        found[sender] = volunteers.Evidence(
            ConsentChannel.SMS_KEYWORD, inbound_message_id=inbound_id
        )
    return found
