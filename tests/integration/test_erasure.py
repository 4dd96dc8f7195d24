"""Erasure is total: every text column has a treatment, nothing of the person survives anywhere
(database, Redis, spool files), and no path but a new missed call brings them back."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import threading
import unicodedata
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
import redis
from flask import Flask
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    Interval,
    MetaData,
    Numeric,
    Table,
    Text,
    TypeDecorator,
    func,
    inspect,
    select,
)
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy import text as sql
from sqlalchemy.engine import make_url
from sqlalchemy.types import TypeEngine

from signup import clock
from signup.admin import imports
from signup.admin import services as admin
from signup.admin.access import Access
from signup.admin.models import AuditEntry, ImportBatch
from signup.admin.tasks import purge_import_previews
from signup.calls import services as calls
from signup.calls.providers import InboundCall
from signup.calls.spool import REDIS_KEY, Spool
from signup.errors import ValidationError
from signup.extensions import db
from signup.messaging.keywords import WORDS, Keyword, Reply, handle_reply
from signup.messaging.models import InboundMessage, Message
from signup.users import services as users
from signup.users.models import Role
from signup.volunteers import erasure, importer
from signup.volunteers.erasure import TREATMENTS, Kind, Traces
from signup.volunteers.models import Volunteer
from tests.helpers import DATABASE_URL, REDIS_URL
from tests.integration.admin_helpers import as_user, token
from tests.integration.factories import NUMBER, OPTOUT, campaign, inbound

MOBILE = "+919911278181"
# Every common way of writing the number: what must be gone after erasure.
FORMS = (
    "+919911278181",
    "919911278181",
    "09911278181",
    "9911278181",
    "99112 78181",
    "+91 99112 78181",
)
NAME = "Ramesh Kumar Yadav"
NOTES = "Met him at the Danapur rally; cousin of the ward member"
OTHER = "+919911278199"  # someone else, who must keep everything
PASSWORD = "correct horse battery"

NOT_TEXT_TYPES = (Integer, BigInteger, Boolean, DateTime, Date, Interval, Float, Numeric)
NOT_TEXT_SQL = {
    "integer",
    "bigint",
    "smallint",
    "boolean",
    "timestamp with time zone",
    "timestamp without time zone",
    "date",
    "interval",
    "numeric",
    "real",
    "double precision",
}


# --- the registry: every column that can hold text says how erasure treats it -----------------


def _holds_text(type_: TypeEngine[Any]) -> bool:
    """Anything not provably a number, flag or time may hold a number or free text."""
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    return not isinstance(type_, NOT_TEXT_TYPES)


def model_text_columns(metadata: MetaData) -> set[tuple[str, str]]:
    """(table, column) of every text-capable column the models declare."""
    return {
        (table.name, column.name)
        for table in metadata.tables.values()
        for column in table.columns
        if _holds_text(column.type)
    }


def database_columns(*, text_only: bool) -> set[tuple[str, str]]:
    """(table, column) of the migrated database, which also has columns the models leave out."""
    rows = db.session.execute(
        sql(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema()"
        )
    )
    return {(t, c) for t, c, kind in rows if not (text_only and kind in NOT_TEXT_SQL)}


def untreated(columns: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    return set(columns) - set(TREATMENTS)


def _read_upload(access: Any, name: str, data: bytes) -> ImportBatch:
    """Upload a list and read it as the import task does: a preview awaiting confirmation."""
    batch = imports.upload(access, name, data)
    claimed = imports.claim(batch.id)
    assert claimed is not None
    imports.read(claimed, db.session.flush)
    return claimed


@pytest.mark.usefixtures("db_session")
def test_every_text_column_of_the_schema_has_an_erasure_treatment() -> None:
    assert untreated(model_text_columns(db.metadata)) == set()
    assert untreated(database_columns(text_only=True)) == set()
    assert set(TREATMENTS) <= database_columns(text_only=False), "stale entries in TREATMENTS"
    for where, treatment in TREATMENTS.items():
        assert treatment.kind in Kind and len(treatment.why) > 8, where


@pytest.mark.usefixtures("db_session")
def test_a_new_text_column_without_a_treatment_fails_the_registry() -> None:
    extra = MetaData()
    Table("volunteer_tags", extra, Column("id", Integer, primary_key=True), Column("tag", Text))
    assert untreated(model_text_columns(extra)) == {("volunteer_tags", "tag")}
    db.session.execute(sql("ALTER TABLE volunteers ADD COLUMN nickname text"))  # rolled back
    db.session.execute(sql("ALTER TABLE calls ADD COLUMN raw jsonb"))
    found = untreated(database_columns(text_only=True))
    assert found == {("volunteers", "nickname"), ("calls", "raw")}


def test_the_volunteer_row_is_blanked_by_its_treatments() -> None:
    """Erasure blanks the volunteer columns the registry marks blanked: by construction."""
    columns = inspect(Volunteer).columns
    blanked = {
        c for (t, c), how in TREATMENTS.items() if t == "volunteers" and how.kind == "blanked"
    }
    assert {"name", "notes", "state", "district", "pincode", "language"} <= blanked
    assert all(columns[c].nullable for c in blanked)


# --- nothing left anywhere -----------------------------------------------------------------------


def dump_database() -> str:
    """pg_dump --data-only of the whole test database, and the generated columns it leaves out."""
    url = make_url(DATABASE_URL).set(drivername="postgresql")
    dumped = subprocess.run(
        ["pg_dump", "--data-only", "--dbname", url.render_as_string(hide_password=False)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    db.session.remove()
    generated = db.session.execute(
        sql(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND is_generated = 'ALWAYS'"
        )
    ).all()
    assert generated, "the stored export cells should be generated columns"
    cells = [
        str(value)
        for table, column in generated
        for value in db.session.scalars(select(sa_column(column)).select_from(sa_table(table)))
    ]
    # Byte columns come out of pg_dump as hex: read every one of them as text as well.
    binary = db.session.execute(
        sql(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND data_type = 'bytea'"
        )
    ).all()
    raw = [
        bytes(value).decode("utf-8", "replace")
        for table, column in binary
        for value in db.session.scalars(select(sa_column(column)).select_from(sa_table(table)))
        if value is not None
    ]
    db.session.remove()
    return dumped + "\n".join([*cells, *raw])


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return " ".join(f"{_text(k)} {_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return " ".join(_text(v) for v in value)
    return str(value)


def dump_redis(client: redis.Redis) -> str:
    """Every key and value of the test Redis database, whatever its type."""
    out: list[Any] = []
    readers: dict[bytes, Callable[[bytes], Any]] = {
        b"string": client.get,
        b"list": lambda k: client.lrange(k, 0, -1),
        b"hash": client.hgetall,
        b"set": client.smembers,
        b"zset": lambda k: client.zrange(k, 0, -1),
        b"stream": client.xrange,
    }
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        out += [key, readers.get(kind, lambda k: b"")(key)]  # type: ignore[arg-type]
    return _text(out)


def dump_folder(folder: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(folder.rglob("*")) if p.is_file())


def traces_of(haystack: str) -> list[str]:
    needles = [*FORMS, NAME, NOTES]
    return [n for n in needles if n in haystack or n.lower() in haystack.lower()]


def world_with_the_person_everywhere(app: Flask, spool: Spool, folder: Path) -> None:
    """The person in calls (every format, to and from), messages, inbound SMS, the row's every
    field, a confirmed and a pending import, audit details, and the Redis and file spools."""
    campaign()
    for form in FORMS:
        calls.process_call(inbound(form).id)
    calls.process_call(inbound(OTHER).id)
    inbound("+918047250001", to="99112 78181")  # a call to their number: unrouted
    admin_user = users.create_user(email="admin@x.org", role="admin", password=PASSWORD)
    access = Access(admin_user.id, Role.ADMIN)
    volunteer = db.session.scalars(select(Volunteer).where(Volunteer.phone == MOBILE)).one()
    admin.edit(volunteer.id, access, {"notes": NOTES, "pincode": "800001"})
    db.session.execute(
        Message.__table__.update()
        .where(Message.volunteer_id == volunteer.id)
        .values(
            status="undelivered",
            error_message=f"The 'To' number {MOBILE} is not a valid phone number.",
        )
    )
    handle_reply(Reply("twilio", "SMhelp", "099112 78181", "HELP"))
    handle_reply(Reply("twilio", "SMother", OTHER, "HELP"))
    listing = f"phone,name\n09911278181,{NAME}\n{OTHER},Sita\n".encode()
    confirmed = _read_upload(access, f"{NAME} 99112 78181.csv", listing)
    imports.confirm(access, confirmed.id)  # the audit entry names the file: names them
    _read_upload(access, "pending.csv", f"phone,name\n+91 99112 78181,{NAME}\n".encode())
    imports.upload(access, "unread.csv", f"phone,name\n+91 99112 78181,{NAME}\n".encode())
    db.session.commit()
    now = clock.now()
    assert spool.put(InboundCall("twilio", "CAspool1", "+91 99112 78181", NUMBER), now) == "redis"
    assert spool.put(InboundCall("twilio", "CAspool2", OTHER, NUMBER), now) == "redis"
    no_redis = Spool(folder, None)
    assert no_redis.put(InboundCall("twilio", "CAspool3", "09911278181", NUMBER), now) == "file"
    assert no_redis.put(InboundCall("twilio", "CAspool4", "+918047250001", FORMS[3]), now)
    assert no_redis.put(InboundCall("twilio", "CAspool5", OTHER, NUMBER), now) == "file"


def erase_by_cli(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["volunteer", "erase", "099112-78181"])
    assert result.exit_code == 0, result.output
    return result.output


def erase_in_the_admin(app: Flask) -> str:
    volunteer_id = db.session.scalar(select(Volunteer.id).where(Volunteer.phone == MOBILE))
    db.session.remove()
    client = as_user(app.test_client(), "admin@x.org")
    path = f"/admin/volunteers/{volunteer_id}/erase"
    response = client.post(path, data={"csrf_token": token(client, path)})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.get_data(as_text=True) + client.get("/admin/audit").get_data(as_text=True)


@pytest.mark.usefixtures("fresh_limits")
@pytest.mark.parametrize("erase", [erase_by_cli, erase_in_the_admin], ids=["cli", "admin"])
def test_an_erased_person_leaves_no_trace_in_the_database_redis_or_spool(
    erase: Callable[[Flask], str],
    committed: Flask,
    redis_client: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis_client.delete(REDIS_KEY)
    folder = tmp_path / "spool"
    spool = Spool(folder, REDIS_URL)
    monkeypatch.setitem(committed.extensions, "call_spool", spool)
    try:
        world_with_the_person_everywhere(committed, spool, folder)

        def everything() -> str:
            return "\n".join([dump_database(), dump_redis(redis_client), dump_folder(folder)])

        assert traces_of(everything()) == [*FORMS, NAME, NOTES]  # the test can see them
        caplog.set_level(logging.DEBUG)
        output = erase(committed)
        after = everything()
        assert traces_of(after) == []
        assert traces_of(caplog.text + output) == []  # nor in logs, output or the audit page
        assert OTHER in after and "Sita" in after  # only the person was erased
        assert [
            json.loads(x)["provider_call_id"] for x in redis_client.lrange(REDIS_KEY, 0, -1)
        ] == ["CAspool2"]
        assert [json.loads(x)["provider_call_id"] for x in dump_folder(folder).splitlines()] == [
            "CAspool5"
        ]
    finally:
        redis_client.delete(REDIS_KEY)
        db.session.remove()


# --- no way back but a new missed call -----------------------------------------------------------


def _organiser() -> Access:
    user = users.create_user(email="org@x.org", role="organiser", password=PASSWORD)
    return Access(user.id, Role.ORGANISER)


def _keyword(word: Keyword) -> Callable[[Any], Any]:
    return lambda _: handle_reply(Reply("twilio", f"SM{word}", "99112 78181", min(WORDS[word])))


COMEBACKS: dict[str, Callable[[Any], Any]] = {
    **{f"sms {word}": _keyword(word) for word in Keyword},
    "missed call to the opt-out number": lambda _: calls.process_call(inbound(MOBILE, OPTOUT).id),
    "confirming a preview made before the erasure": lambda ctx: imports.confirm(*ctx),
    "a new import": lambda ctx: importer.merge(importer.check(b"phone\n9911278181\n", "x.csv")),
}


@pytest.mark.usefixtures("db_session")
@pytest.mark.parametrize("path", sorted(COMEBACKS))
def test_an_erased_person_comes_back_by_no_path_but_a_missed_call(path: str) -> None:
    campaign()
    calls.process_call(inbound(MOBILE).id)
    access = _organiser()
    preview = _read_upload(access, "list.csv", f"phone,name\n09911278181,{NAME}\n".encode())
    erasure.erase(MOBILE, "test")
    COMEBACKS[path]((access, preview.id))
    db.session.flush()
    assert db.session.scalar(select(func.count()).where(Volunteer.phone == MOBILE)) == 0
    assert db.session.scalar(select(func.count()).where(Message.to_phone == MOBILE)) == 0
    assert db.session.scalar(select(func.count()).where(InboundMessage.sender == MOBILE)) == 0
    assert erasure.is_suppressed(MOBILE)


@pytest.mark.usefixtures("db_session")
def test_a_merge_skips_numbers_erased_after_the_rows_were_checked() -> None:
    campaign()
    calls.process_call(inbound(MOBILE).id)
    rows = importer.check(f"phone,name\n09911278181,{NAME}\n{OTHER},Sita\n".encode(), "x.csv")
    erasure.erase(MOBILE, "test")
    result = importer.merge(rows)
    assert (result.created, result.skipped) == (1, 1)
    assert db.session.scalars(select(Volunteer.phone).where(Volunteer.name.is_not(None))).all() == [
        OTHER
    ]


def test_a_merge_racing_an_erasure_does_not_bring_the_person_back(committed: Flask) -> None:
    """The merge waits for the erasure's lock on the row, then sees its suppression."""
    campaign()
    calls.process_call(inbound(MOBILE).id)
    db.session.commit()
    rows = importer.check(f"phone,name\n09911278181,{NAME}\n".encode(), "x.csv")
    erasure.erase(MOBILE, "test")  # flushed, holding the row, not yet committed
    merged: list[importer.MergeResult] = []

    def confirm() -> None:
        with committed.app_context():
            merged.append(importer.merge(rows))
            db.session.commit()

    racer = threading.Thread(target=confirm)
    racer.start()
    racer.join(0.5)
    assert racer.is_alive()  # waiting for the erasure
    db.session.commit()
    racer.join(10)
    assert merged and merged[0].created == 0
    assert db.session.scalar(select(func.count()).where(Volunteer.phone == MOBILE)) == 0


@pytest.mark.usefixtures("db_session")
def test_a_missed_call_after_erasure_is_new_consent() -> None:
    campaign()
    calls.process_call(inbound(MOBILE).id)
    erasure.erase(MOBILE, "test")
    calls.process_call(inbound(MOBILE).id)
    assert not erasure.is_suppressed(MOBILE)
    assert db.session.scalar(select(Volunteer.status).where(Volunteer.phone == MOBILE)) == "active"


# --- previews expire -----------------------------------------------------------------------------


@pytest.mark.usefixtures("db_session")
def test_unconfirmed_previews_expire_and_are_purged(app: Flask) -> None:
    access = _organiser()
    hours = app.config["IMPORT_PREVIEW_HOURS"]
    assert hours == 24
    old = _read_upload(access, "old.csv", f"phone,name\n{MOBILE},{NAME}\n".encode())
    _read_upload(access, "fresh.csv", f"phone\n{OTHER}\n".encode())
    merged = _read_upload(access, "merged.csv", f"phone\n{OTHER}\n".encode())
    imports.confirm(access, merged.id)
    for batch in (old, merged):
        batch.created_at = clock.now() - timedelta(hours=hours, minutes=1)
    db.session.flush()
    with pytest.raises(ValidationError, match="expired"):
        imports.confirm(access, old.id)
    beat = app.extensions["celery"].conf.beat_schedule.values()
    assert [e["schedule"] for e in beat if e["task"] == purge_import_previews.name] == [3600.0]
    assert purge_import_previews.run() == 1  # in this app: other tests made newer Celery apps
    left = db.session.scalars(select(ImportBatch.filename).order_by(ImportBatch.id)).all()
    assert left == ["fresh.csv", "merged.csv"]


# --- free text: every written form of the number ------------------------------------------------


@pytest.mark.usefixtures("db_session")
def test_every_form_of_the_number_and_the_name_are_found_and_scrubbed_in_free_text() -> None:
    traces = Traces(MOBILE, NAME)
    texts = [f"list of {form}.csv" for form in FORMS] + [
        "099112-78181",
        "(+91) 99112-78181",
        "9911 278 181",
        f"for {NAME.lower()}",
    ]
    others = ["+919911278199", "9911278180", "Rameshwar Singh", "Sita"]
    entries = [AuditEntry(action="import", detail=t) for t in texts + others]
    db.session.add_all(entries)
    db.session.flush()
    found = db.session.scalars(
        select(AuditEntry.detail).where(traces.found_in(AuditEntry.detail))
    ).all()
    assert set(texts) <= set(found)  # the preselection finds every one (a superset)
    by_regex = db.session.scalars(
        select(AuditEntry.detail).where(AuditEntry.detail.regexp_match(traces.pattern()))
    ).all()
    python = [t for t in texts + others if re.search(traces.pattern(), t)]
    assert sorted(by_regex) == sorted(python)  # PostgreSQL's regex agrees with Python's
    assert all(MOBILE[3:] not in traces.scrub(t).replace(" ", "") for t in texts)
    assert all(NAME.lower() not in traces.scrub(t).lower() for t in texts)
    assert [traces.scrub(t) for t in others] == others


# --- the review's findings: every form of the name and number, raw strings, previews, audit ----

PERSON = "+919811100035"
PERSON_NAME = "Wilhelmina Plonk"
NATIONAL = PERSON[3:]
DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")
SEPARATORS = (" ", "-", "_", ".", "/", "(", ")", "\u2009", "\u00a0", "\u202f", "%20", "%2D")


def _split(digits: str, separator: str) -> str:
    return digits[:5] + separator + digits[5:]


def number_forms() -> list[str]:
    """The number with every separator, in ASCII and Devanagari, raw and percent-encoded."""
    forms = [_split(NATIONAL, sep) for sep in SEPARATORS]
    forms += [f"0{form}" for form in forms[:3]] + [f"91{f}" for f in forms[:3]]
    forms += [
        f"(+91) {NATIONAL[:5]}-{NATIONAL[5:]}",
        f"+91%E2%80%89{_split(NATIONAL, '%E2%80%89')}",
    ]
    forms += [f.translate(DEVANAGARI) for f in forms[:6]]
    forms += [quote(NATIONAL, safe="").replace("9", "%39"), quote(NATIONAL.translate(DEVANAGARI))]
    return forms


def name_forms() -> list[str]:
    """The name in any case, order and separation, and its parts alone."""
    first, last = PERSON_NAME.split()
    return [
        "wilhelmina_plonk",
        "PLONK Wilhelmina",
        f"{first}.{last}",
        f"W {last}",
        f"{first}-{last.upper()}",
        f"{last},{first}",
    ]


def identifies(text: str) -> list[str]:
    """What of the person a text still holds: their national digits in any form, or a name part."""
    plain = unicodedata.normalize("NFKC", unquote(text))
    digits = "".join(str(unicodedata.digit(ch)) for ch in plain if ch.isdigit())
    found = [NATIONAL] if NATIONAL in digits else []
    words = PERSON_NAME.lower().split()
    return found + [w for w in words if re.search(rf"(?<![^\W\d_]){w}(?![^\W\d_])", plain.lower())]


@pytest.mark.usefixtures("db_session")
def test_erasure_scrubs_every_form_of_the_name_and_number_from_file_names_and_details() -> None:
    campaign()
    calls.process_call(inbound(PERSON).id)
    volunteer = db.session.scalars(select(Volunteer).where(Volunteer.phone == PERSON)).one()
    volunteer.name = PERSON_NAME
    access = _organiser()
    texts = [f"{form}.csv" for form in number_forms() + name_forms()]
    texts += [f"{n} {f}.csv" for n, f in zip(name_forms(), number_forms(), strict=False)]
    assert all(identifies(t) for t in texts)  # the check can see every one
    for text in texts:
        batch = imports.upload(access, text, b"phone\n+919911278199\n")
        batch.error = f"row 2: {text}"
        admin.audit(access, "import", {"file": text})
    kept = ["Sita.csv", "+919811100036.csv", "Wilhelminas.csv"]  # someone else; another word
    for text in kept:
        admin.audit(access, "import", {"file": text})
    db.session.flush()
    erasure.erase(PERSON, "test")
    stored = db.session.scalars(select(ImportBatch.filename)).all()
    stored += db.session.scalars(select(ImportBatch.error)).all()
    details = db.session.scalars(select(AuditEntry.detail)).all()
    assert [t for t in [*stored, *details] if t and identifies(t)] == []
    assert all(json.loads(d) for d in details)  # JSON details stay JSON
    assert {json.loads(d).get("file") for d in details} >= set(kept)


UNPARSED_RAW = ("sip:+919811100035@pbx.example", "919811100035#", "0+919811100035", "98111_00035")


@pytest.mark.usefixtures("db_session")
def test_erasure_blanks_every_raw_call_string_that_holds_the_number_parsed_or_not() -> None:
    campaign()
    calls.process_call(inbound(PERSON).id)
    for raw in UNPARSED_RAW:
        inbound(raw)
        inbound("+918047250001", to=raw)
    inbound("+919811100036")  # someone else
    raw_columns = [c for (t, c) in TREATMENTS if c.endswith("_raw")]
    assert sorted(raw_columns) == sorted(erasure.RAW_CALL_COLUMNS)  # every raw column treated
    erasure.erase(PERSON, "test")
    left = db.session.execute(
        select(*(sa_column(c) for c in raw_columns)).select_from(sa_table("calls"))
    ).all()
    assert [v for row in left for v in row if v and identifies(v)] == []
    assert [v for row in left for v in row if v and "0036" in v] == ["+919811100036"]


@pytest.mark.usefixtures("db_session")
def test_a_preview_keeps_nothing_of_an_erased_person_but_the_line_and_the_reason() -> None:
    campaign()
    calls.process_call(inbound(PERSON).id)
    erasure.erase(PERSON, "test")
    access = _organiser()
    lines = [f"{form},{PERSON_NAME},Bihar,Patna,800001,hi" for form in number_forms()[:6]]
    lines += ["(+91) 98111-00035,Zorblax Again,,,,", "+919911278199,Sita,,,,"]
    listing = "phone,name,state,district,pincode,language\n" + "\n".join(lines) + "\n"
    batch = _read_upload(access, "list.csv", listing.encode())
    rows = json.loads(batch.rows)
    erased = [row for row in rows if row["error"] == importer.ERASED]
    assert len(erased) == len(rows) - 2  # all but Sita and "98111_00035" (not a number)
    assert all(
        set(k for k, v in row.items() if v is not None) == {"line", "error"} for row in erased
    )
    assert identifies(batch.rows) == [] and "Zorblax" not in batch.rows


def _erase_with_the_cli(app: Flask, volunteer_id: int) -> None:
    result = app.test_cli_runner().invoke(args=["volunteer", "erase", PERSON])
    assert result.exit_code == 0, result.output


def _erase_in_the_admin(app: Flask, volunteer_id: int) -> None:
    user = users.create_user(email="admin@x.org", role="admin", password=PASSWORD)
    admin.erase(volunteer_id, Access(user.id, Role.ADMIN))


@pytest.mark.usefixtures("db_session")
@pytest.mark.parametrize("erase", [_erase_with_the_cli, _erase_in_the_admin], ids=["cli", "admin"])
def test_every_erasure_is_audited_whoever_asked(
    app: Flask, erase: Callable[[Flask, int], None]
) -> None:
    campaign()
    calls.process_call(inbound(PERSON).id)
    volunteer_id = db.session.scalar(select(Volunteer.id).where(Volunteer.phone == PERSON))
    assert volunteer_id is not None
    erase(app, volunteer_id)
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "erase")).all()
    assert [json.loads(e.detail)["volunteer"] for e in entries] == [volunteer_id]
    [entry] = entries
    assert entry.user_id is not None or json.loads(entry.detail)["by"].startswith("cli:")
