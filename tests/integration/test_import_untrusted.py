"""Untrusted uploaded lists never touch the request path; the task reads them within bounds.

Every test here runs with a guard that fails it if any file is parsed inside a web request.
"""

from __future__ import annotations

import io
import random
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask, has_request_context
from flask.testing import FlaskClient
from openpyxl import Workbook
from openpyxl.worksheet._read_only import ReadOnlyWorksheet
from sqlalchemy import func, select

from signup import clock
from signup.admin import imports
from signup.admin.models import ImportBatch, ImportStatus
from signup.admin.tasks import read_import
from signup.bodies import FORM_OVERHEAD
from signup.errors import ValidationError
from signup.extensions import db
from signup.volunteers import importer
from signup.volunteers.models import Volunteer
from tests.helpers import call_params, post_signed
from tests.integration.admin_helpers import as_user, token
from tests.integration.test_import import read_uploads, upload

pytestmark = pytest.mark.usefixtures("db_session", "fresh_limits")


@pytest.fixture(autouse=True)
def parsed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The files parsed; parsing one inside a web request fails the test."""
    seen: list[str] = []
    real = importer._lines

    def spy(data: bytes, filename: str) -> Any:
        assert not has_request_context(), f"{filename} was parsed in a web request"
        seen.append(filename)
        return real(data, filename)

    monkeypatch.setattr(importer, "_lines", spy)
    yield seen


def xlsx(fill: Callable[[Any], None]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    fill(sheet)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def rewrite_sheet(data: bytes, change: Callable[[bytes], bytes]) -> bytes:
    """The same workbook with its first sheet's XML changed."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                body = change(body)
            dst.writestr(info.filename, body)
    return out.getvalue()


def evil_sheet(sheet: Any) -> None:
    """A header, and one cell in the very last row and column (dimension A1:XFD1048576)."""
    sheet["A1"] = "phone"
    sheet["A2"] = "9911278190"
    sheet.cell(row=1_048_576, column=16_384, value="x")


EVIL = xlsx(evil_sheet)
NO_DIMENSION = rewrite_sheet(
    EVIL, lambda xml: xml.replace(b'<dimension ref="A1:XFD1048576"/>', b"")
)
LYING_DIMENSION = rewrite_sheet(EVIL, lambda xml: xml.replace(b"A1:XFD1048576", b"A1:A2"))


def numbers(count: int, start: int = 9_800_000_000) -> str:
    return "phone,name\n" + "".join(f"{start + i},Person {i}\n" for i in range(count))


def assert_one_line(message: str | None) -> None:
    assert message and "\n" not in message and len(message) <= 300, message


@pytest.mark.parametrize(
    "data", [EVIL, NO_DIMENSION, LYING_DIMENSION], ids=["dimension", "no-dimension", "lying"]
)
def test_a_sheet_reaching_row_a_million_is_refused_without_allocating_its_rows(
    data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(data) < 10_000
    tracemalloc.start()
    try:
        with pytest.raises(ValidationError, match="more than 50000 rows"):
            importer.check(data, "evil.xlsx")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024  # padding the sheet to its last row would take gigabytes


def test_a_declared_size_beyond_the_bounds_is_refused_before_any_row_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read: list[object] = []
    real = ReadOnlyWorksheet._cells_by_row
    monkeypatch.setattr(
        ReadOnlyWorksheet, "_cells_by_row", lambda *a, **k: read.append(a) or real(*a, **k)
    )
    wide = xlsx(lambda sheet: sheet.cell(row=2, column=importer.MAX_COLUMNS + 1, value="x"))
    for data, error in ((EVIL, "more than 50000 rows"), (wide, "more than 64 columns")):
        with pytest.raises(ValidationError, match=error):
            importer.check(data, "list.xlsx")
    assert read == []


def test_the_evil_workbook_is_refused_by_the_task(
    client: FlaskClient, world: dict[str, Any], parsed: list[str]
) -> None:
    as_user(client, "org@x.org")
    response = upload(client, EVIL, "evil.xlsx")
    assert response.status_code == 302 and parsed == []  # the request only stored it
    assert read_uploads() == ["failed"]
    batch = db.session.scalars(select(ImportBatch)).one()
    assert batch.rows == "[]" and batch.upload is None
    assert batch.error == "the file has more than 50000 rows under its header; split it"
    assert parsed == ["evil.xlsx"]


def test_a_50000_row_csv_is_imported_end_to_end_through_the_route(
    client: FlaskClient, world: dict[str, Any], parsed: list[str]
) -> None:
    as_user(client, "org@x.org")
    data = numbers(importer.MAX_ROWS).encode()
    assert len(data) > 64 * 1024 * 10  # far beyond the webhooks' body limit
    response = upload(client, data, "big.csv")
    assert response.status_code == 302
    page = response.headers["Location"]
    batch = db.session.scalars(select(ImportBatch)).one()
    assert (batch.status, batch.rows, batch.size_bytes, parsed) == ("waiting", "[]", len(data), [])
    # A webhook meanwhile: the web process holds a stored upload and parses nothing.
    call = post_signed(
        client,
        "/webhooks/twilio/voice",
        call_params("CA" + "b" * 32, "+919911278199", "+918047259725"),
    )
    assert call.status_code == 200 and b'<Reject reason="busy"' in call.data
    assert read_uploads() == ["ready"]
    assert "50000 rows are ready; 0 will be skipped" in client.get(page).get_data(as_text=True)
    confirmed = client.post(page, data={"csrf_token": token(client, page)})
    assert confirmed.status_code == 302
    imported = select(func.count()).select_from(Volunteer).where(Volunteer.status == "imported")
    assert db.session.scalar(imported) == importer.MAX_ROWS


def test_one_row_more_than_the_bound_is_refused() -> None:
    with pytest.raises(ValidationError, match="more than 50000 rows"):
        importer.check(numbers(importer.MAX_ROWS + 1).encode(), "big.csv")


@pytest.mark.parametrize(
    ("csv", "error"),
    [
        ('phone,name\n9911278190,"Asha\n9911278191,Ravi\n', "line 2: a quote is not closed"),
        (
            'phone,name\n9911278190,"Asha\n9911278191,Ravi\n9911278192,Meena"\n',
            "line 2: a quote is not closed (the cell runs on to line 4)",
        ),
        ('phone,name\n9911278190,Asha\n9911278191,"Ra"vi\n', "line 3: the CSV is malformed"),
        ('phone;name\n9911278190;Asha\n9911278191;"Ravi\n', "line 3: a quote is not closed"),
    ],
)
def test_malformed_csv_is_refused_naming_the_line(csv: str, error: str) -> None:
    with pytest.raises(ValidationError) as refused:
        importer.check(csv.encode(), "list.csv")
    assert str(refused.value).startswith(error)
    assert_one_line(str(refused.value))


def formula_sheet(sheet: Any) -> None:
    sheet.append(["phone", "name"])
    sheet.append(["=9911278190", '=HYPERLINK("http://x","y")'])


def damaged_rows(xml: bytes) -> bytes:
    return xml.replace(
        b"<sheetData>", b"<sheetData><row r='2'><c r='A2' t='n'><v>junk</v></c></row>"
    )


def zip_bomb() -> bytes:
    """A small zip whose one part unpacks to 200 MB of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", bytes(200 * 1024 * 1024))
    return buffer.getvalue()


SHAPES: dict[str, tuple[bytes, str]] = {
    "empty csv": (b"\n\n", "list.csv"),
    "no header": (b"9911278190,Asha\n9911278191,Ravi\n", "list.csv"),
    "only a header": (b"phone,name\n", "list.csv"),
    "binary junk": (bytes(random.Random(1).randrange(256) for _ in range(4096)), "list.csv"),
    "NUL bytes": (b"phone\n99112\x0078190\n", "list.csv"),
    "huge cell": (b"phone,name\n9911278190," + b"x" * 200_000 + b"\n", "list.csv"),
    "huge quoted cell": (b'phone,name\n9911278190,"' + b"x" * 200_000 + b'"\n', "list.csv"),
    "many columns": (b"phone," + b",".join(b"c%d" % i for i in range(1000)) + b"\n1\n", "list.csv"),
    "csv formula cells": (b"phone,name\n9911278190,\"=cmd|' /C calc'!A0\"\n=1+2,x\n", "list.csv"),
    "empty xlsx": (xlsx(lambda sheet: None), "list.xlsx"),
    "xlsx without header": (xlsx(lambda s: s.append(["9911278190", "Asha"])), "list.xlsx"),
    "xlsx formula cells": (xlsx(formula_sheet), "list.xlsx"),
    "xlsx many columns": (
        xlsx(lambda s: s.append(["phone", *(f"c{i}" for i in range(100))])),
        "list.xlsx",
    ),
    "xlsx huge cell": (xlsx(lambda s: s.append(["phone", "y" * 32_000])), "list.xlsx"),
    "xlsx damaged rows": (
        rewrite_sheet(xlsx(lambda s: s.append(["phone"])), damaged_rows),
        "list.xlsx",
    ),
    "not a zip": (b"PK\x03\x04 not really", "list.xlsx"),
    "a zip that unpacks to 200 MB": (zip_bomb(), "list.xlsx"),
    "evil xlsx": (EVIL, "list.xlsx"),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_malformed_shape_gets_one_line_through_the_route_and_no_500(
    client: FlaskClient, world: dict[str, Any], shape: str
) -> None:
    as_user(client, "org@x.org")
    data, name = SHAPES[shape]
    response = upload(client, data, name)
    assert response.status_code == 302, response.get_data(as_text=True)
    [status] = read_uploads()
    batch = db.session.scalars(select(ImportBatch)).one()
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    if status == "failed":
        assert_one_line(batch.error)
        assert batch.error in page.get_data(as_text=True)
    else:
        assert status == "ready"
        for row in imports.rows_of(batch):
            assert row.error is None or "\n" not in row.error


def test_random_damage_to_good_files_gets_one_line_or_rows() -> None:
    """Flipped, cut and repeated bytes of a good CSV and XLSX: never anything but one line."""
    good = {
        "list.csv": numbers(30).encode(),
        "list.xlsx": xlsx(
            lambda s: [s.append(row) for row in (["phone", "name"], ["9911278190", "A"])]
        ),
    }
    chance = random.Random(16)
    for _ in range(150):
        name = chance.choice(list(good))
        data = bytearray(good[name])
        for _ in range(chance.randint(1, 8)):
            at = chance.randrange(len(data))
            match chance.randrange(3):
                case 0:
                    data[at] = chance.randrange(256)
                case 1:
                    del data[at:]
                case _:
                    data[at:at] = data[at : at + chance.randint(1, 50)] * chance.randint(1, 20)
            if not data:
                data = bytearray(b"x")
        try:
            rows = importer.check(bytes(data), name)
        except ValidationError as exc:
            assert_one_line(str(exc))
        else:
            assert all(row.error is None or "\n" not in row.error for row in rows)


def test_the_parse_is_time_boxed() -> None:
    with pytest.raises(ValidationError, match="took over 0 s; split it"):
        importer.check(numbers(2000).encode(), "list.csv", max_seconds=0)


def test_progress_is_committed_while_reading(
    client: FlaskClient, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    as_user(client, "org@x.org")
    page = upload(client, numbers(3500).encode(), "list.csv").headers["Location"]
    batch = db.session.scalars(select(ImportBatch)).one()
    shown: list[str] = []

    def committed() -> None:
        db.session.commit()
        shown.append(client.get(page).get_data(as_text=True))

    batch = imports.claim(batch.id)
    assert batch is not None
    imports.read(batch, committed)
    assert len(shown) == 3
    assert "Reading: 2999 of about 3500 rows" in shown[2]
    for html in shown:
        assert '<meta http-equiv="refresh" content="2">' in html
        assert '<progress aria-label="rows read" max="3500"' in html
        assert "<script>" not in html and "<script " not in html  # the CSP forbids inline script


def test_a_batch_left_reading_by_a_dead_worker_is_refused_not_read_again(
    client: FlaskClient, world: dict[str, Any], parsed: list[str]
) -> None:
    as_user(client, "org@x.org")
    upload(client, numbers(5).encode(), "list.csv")
    batch = db.session.scalars(select(ImportBatch)).one()
    batch.status = ImportStatus.READING  # another worker is reading it: a duplicate task
    batch.reading_since = clock.now() - timedelta(seconds=importer.MAX_SECONDS)
    db.session.commit()
    assert imports.stalled() == []
    assert read_import.run(batch.id) is None
    assert (batch.status, parsed) == ("reading", [])
    batch.reading_since -= timedelta(minutes=1)  # now its worker was killed at its time limit
    db.session.commit()
    assert imports.stalled() == [batch.id]
    assert read_import.run(batch.id) is None
    assert (batch.status, batch.upload, parsed) == ("failed", None, [])
    assert_one_line(batch.error)
    assert read_import.run(batch.id) is None  # a finished batch is never read twice


def test_a_list_cannot_be_confirmed_before_it_is_read(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    as_user(client, "org@x.org")
    page = upload(client, numbers(5).encode(), "list.csv").headers["Location"]
    client.post(page, data={"csrf_token": token(client, "/admin/import")})
    assert db.session.scalar(select(ImportBatch.merged_at)) is None


def test_an_upload_over_import_max_bytes_gets_the_import_page_with_one_line(
    app: Flask, client: FlaskClient, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "IMPORT_MAX_BYTES", 1024 * 1024)
    as_user(client, "org@x.org")
    over_the_request_limit = upload(client, numbers(60_000).encode(), "big.csv")
    assert over_the_request_limit.status_code == 413
    html = over_the_request_limit.get_data(as_text=True)
    assert "the file is larger than 1 MB; split it" in html and "Import a list" in html
    just_over = upload(client, numbers(60_000).encode()[: 1024 * 1024 + 10], "big.csv")
    assert just_over.status_code == 400
    assert "the file is larger than 1 MB; split it" in just_over.get_data(as_text=True)
    assert upload(client, numbers(5_000).encode(), "big.csv").status_code == 302  # > 64 KB


def test_every_other_route_keeps_the_webhook_body_limit(app: Flask) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 64 * 1024 and app.config["IMPORT_MAX_BYTES"] == 10 * 1024 * 1024
    for rule in app.url_map.iter_rules():
        path = rule.build({name: 1 for name in rule.arguments}, append_unknown=False)
        assert path is not None
        with app.test_request_context(path[1], method="POST" if "POST" in rule.methods else "GET"):
            from flask import request

            expected = limit
            if rule.endpoint == "admin.import_upload":
                expected = app.config["IMPORT_MAX_BYTES"] + FORM_OVERHEAD
            assert request.max_content_length == expected, rule.endpoint


def test_a_webhook_over_the_body_limit_is_still_refused(client: FlaskClient) -> None:
    params = call_params("CA" + "c" * 32, "+919911278199", "+918047259725", Pad="x" * 70_000)
    assert post_signed(client, "/webhooks/twilio/voice", params).status_code == 413


def test_uploads_whose_task_was_lost_are_found_again(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    as_user(client, "org@x.org")
    for name in ("lost.csv", "fresh.csv", "read.csv"):
        upload(client, numbers(5).encode(), name)
    batches = {b.filename: b for b in db.session.scalars(select(ImportBatch))}
    for name in ("lost.csv", "read.csv"):
        batches[name].created_at -= timedelta(minutes=1)
    batches["read.csv"].status = ImportStatus.READY
    db.session.commit()
    assert imports.stalled() == [batches["lost.csv"].id]
