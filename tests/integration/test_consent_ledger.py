"""DLT templates checked on save, versioned notices, keywords, erasure and retention."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy import text as text_sql

from signup import clock
from signup.calls import services as calls
from signup.calls.models import Call, CallOutcome
from signup.campaigns import services as campaigns
from signup.campaigns.models import Campaign, CampaignNotice, DltTemplate
from signup.errors import ValidationError
from signup.extensions import db
from signup.messaging.keywords import WORDS, Keyword, keyword
from signup.messaging.models import InboundMessage, Message, MessageKind
from signup.volunteers.erasure import is_suppressed
from signup.volunteers.export import CsvExport, VolunteerFilter
from signup.volunteers.models import ConsentEvent, Suppression, Volunteer
from tests.helpers import post_signed, twilio_sid
from tests.integration.factories import OPTOUT, campaign, inbound

pytestmark = pytest.mark.usefixtures("db_session")
MOBILE = "+919911278181"
TEMPLATE = (
    "{#var#}: thank you for your missed call, you have joined as a volunteer. "
    "We keep only your number, for campaign updates. "
    "To leave, give a missed call to {#var#}."
)


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=list(args), catch_exceptions=False)


def join(phone: str = MOBILE, to: str = "+918047259725") -> Any:
    result = calls.process_call(inbound(phone, to).id)
    assert result is not None
    return result


def events() -> list[tuple[str, str, int]]:
    rows = db.session.execute(
        select(ConsentEvent.event, ConsentEvent.channel, ConsentEvent.notice_version).order_by(
            ConsentEvent.id
        )
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


# --- DLT templates ---------------------------------------------------------------------------


def test_matching_template_is_accepted_through_the_cli(app: Flask) -> None:
    campaign()
    assert (
        run(
            app, "campaign", "dlt", "jan", "--entity-id", "1234567890123", "--header", "jansev"
        ).exit_code
        == 0
    )
    result = run(
        app,
        "campaign",
        "template",
        "jan",
        "--kind",
        "onboarding",
        "--template-id",
        "1107160000000012345",
        "--text",
        TEMPLATE,
    )
    assert result.exit_code == 0, result.output
    jan = db.session.scalar(select(Campaign))
    assert jan is not None and (jan.dlt_entity_id, jan.dlt_header) == ("1234567890123", "JANSEV")
    assert db.session.scalar(select(DltTemplate.template_id)) == "1107160000000012345"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            TEMPLATE.replace("thank you", "thanks"),
            "does not match the DLT template after variable 1",
        ),
        (TEMPLATE + " -JANSEV", "after variable 2: expected '. -JANSEV'"),
        ("{#var#} {#var#}", "variables only"),
    ],
)
def test_mismatching_template_is_refused_with_a_clear_error(
    app: Flask, text: str, error: str
) -> None:
    campaign()
    db.session.commit()
    result = run(
        app,
        "campaign",
        "template",
        "jan",
        "--kind",
        "onboarding",
        "--template-id",
        "1107160000000012345",
        "--text",
        text,
    )
    assert result.exit_code != 0
    assert error in result.stderr
    assert db.session.scalar(select(func.count()).select_from(DltTemplate)) == 0


def test_a_variable_over_30_characters_is_refused() -> None:
    jan = campaign(name="Rashtriya Swayamsevak Jan Abhiyan 2026")  # 38 characters
    with pytest.raises(ValidationError, match=r"variable 1 .* 38 characters"):
        campaigns.set_template(
            jan, kind="onboarding", template_id="1107160000000012345", text=TEMPLATE
        )


def test_a_text_change_that_breaks_the_registered_template_is_refused(app: Flask) -> None:
    jan = campaign()
    campaigns.set_template(jan, kind="onboarding", template_id="1107160000000012345", text=TEMPLATE)
    db.session.commit()  # a savepoint: the failing command rolls back only itself
    result = run(
        app,
        "campaign",
        "update",
        "jan",
        "--sms-text",
        "{campaign}: welcome! To leave, give a missed call to {optout_number}.",
    )
    assert result.exit_code != 0
    assert "onboarding SMS vs DLT template 1107160000000012345" in result.stderr
    db.session.expire_all()
    assert db.session.execute(select(Campaign.slug, Campaign.sms_text)).all() == [("jan", None)]


@pytest.mark.parametrize(
    ("entity", "header", "error"),
    [("12ab", "JANSEV", "entity id"), ("1234567890123", "JAN", "sender header")],
)
def test_bad_dlt_registration_is_refused(app: Flask, entity: str, header: str, error: str) -> None:
    campaign()
    result = run(app, "campaign", "dlt", "jan", "--entity-id", entity, "--header", header)
    assert result.exit_code != 0 and error in result.stderr


# --- notices and the consent ledger ------------------------------------------------------------


def test_notice_is_versioned_and_consent_cites_the_version(app: Flask) -> None:
    jan = campaign()
    join()
    assert (
        run(
            app,
            "campaign",
            "update",
            "jan",
            "--sms-text",
            "{campaign}: welcome, volunteer! We keep your number only. "
            "Leave: missed call to {optout_number}.",
        ).exit_code
        == 0
    )
    assert run(app, "campaign", "update", "jan", "--name", jan.name).exit_code == 0  # same text
    join("+919911278182")
    versions = db.session.execute(
        select(CampaignNotice.version, CampaignNotice.text).order_by(CampaignNotice.version)
    ).all()
    assert [v for v, _ in versions] == [1, 2]
    assert "welcome, volunteer" in versions[1][1]
    assert [e[2] for e in events()] == [1, 2]


def test_ledger_records_given_withdrawn_re_given_erased(app: Flask) -> None:
    campaign()
    join()
    join(to=OPTOUT)
    join()
    assert run(app, "volunteer", "erase", "099112 78181").exit_code == 0
    assert [(e[0], e[1]) for e in events()] == [
        ("given", "missed_call"),
        ("withdrawn", "opt_out_number"),
        ("re_given", "missed_call"),
        ("erased", "organiser"),
    ]


# --- keywords ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", Keyword.STOP),
        (" stop. ", Keyword.STOP),
        ("Unsubscribe", Keyword.STOP),
        ("बंद", Keyword.STOP),
        ("band karo", Keyword.STOP),
        ("BANDH KARO", Keyword.STOP),
        ("Bandh Karen.", Keyword.STOP),
        ("बन्द करो", Keyword.STOP),
        ("Roko!", Keyword.STOP),
        ("START", Keyword.START),
        ("unstop", Keyword.START),
        ("शुरू", Keyword.START),
        ("HELP", Keyword.HELP),
        ("info", Keyword.HELP),
        ("मदद", Keyword.HELP),
        ("please STOP", None),
        ("STOP sending me this", None),
        ("", None),
        ("हेलो", None),
    ],
)
def test_keywords_count_only_as_the_whole_message(body: str, expected: Keyword | None) -> None:
    assert keyword(body) is expected


README_ROWS = {"leave": Keyword.STOP, "re-join": Keyword.START, "help": Keyword.HELP}


def readme_keywords() -> dict[Keyword, set[str]]:
    """The words of the README's Reply keywords table, by what they mean."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Reply keywords", 1)[1].split("\n## ", 1)[0]
    found: dict[Keyword, set[str]] = {}
    for meaning, kind in README_ROWS.items():
        [cell] = re.findall(rf"^\| {meaning}\b[^|]*\| ([^|]+) \|$", section, re.MULTILINE)
        found[kind] = {word.strip() for word in re.split(r"[,;]", cell)}
    return found


def test_the_readme_lists_exactly_the_keywords_the_code_knows() -> None:
    assert readme_keywords() == {kind: set(words) for kind, words in WORDS.items()}


@pytest.mark.parametrize("kind", list(Keyword))
def test_every_keyword_counts_however_it_is_typed(kind: Keyword) -> None:
    """Each word of each kind, in any case, padded, with a closing mark, is that keyword."""
    for word in WORDS[kind]:
        for typed in (word, word.lower(), word.title(), f"  {word}. ", f"{word}!", f"{word}।"):
            assert keyword(typed) is kind, typed
        for disguised in _disguises(word):  # looks the same on a phone: counts the same
            assert keyword(disguised) is kind, ascii(disguised)
        assert keyword(f"{word} {word}") is None  # a keyword is the whole message
        assert keyword(f"please {word}") is None


def _disguises(word: str) -> list[str]:
    """The word as a phone may send it: full-width letters, invisible (format) characters."""
    full_width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in word)
    invisible = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e"]
    return [
        full_width,
        f"{full_width}\u200b",
        *(f"{mark}{word}{mark}" for mark in invisible),
        *(f"{word[:1]}{mark}{word[1:]}" for mark in invisible),
    ]


def sms(client: FlaskClient, sid: str, body: str, **extra: str) -> Any:
    return post_signed(
        client,
        "/webhooks/twilio/sms",
        {"MessageSid": sid, "From": MOBILE, "To": "+15005550006", "Body": body, **extra},
    )


def test_hindi_stop_withdraws_and_is_kept_as_evidence(client: FlaskClient) -> None:
    campaign()
    join()
    assert sms(client, twilio_sid("SMh1"), "बंद करो").status_code == 200
    assert db.session.scalar(select(Volunteer.status)) == "opted_out"
    event = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id.desc())).first()
    assert event is not None and (event.event, event.channel) == ("withdrawn", "sms_keyword")
    inbound_row = db.session.get(InboundMessage, event.inbound_message_id)
    assert inbound_row is not None
    assert (inbound_row.keyword, inbound_row.provider_message_id) == ("stop", twilio_sid("SMh1"))


def test_help_answers_once_a_day_and_not_when_twilio_answered(client: FlaskClient) -> None:
    campaign()
    join()
    sms(client, twilio_sid("SMa"), "HELP", OptOutType="HELP")  # Twilio already answered it
    assert _help_messages() == []
    sms(client, twilio_sid("SMb"), "मदद")
    sms(client, twilio_sid("SMc"), "INFO")  # same day: no second answer
    [help_message] = _help_messages()
    assert "+918047259725" in help_message.body and OPTOUT in help_message.body


def _help_messages() -> list[Message]:
    return list(db.session.scalars(select(Message).where(Message.kind == MessageKind.HELP)))


def test_stop_when_twilio_handled_it_still_records_withdrawal(client: FlaskClient) -> None:
    campaign()
    join()
    sms(client, twilio_sid("SMs"), "STOP", OptOutType="STOP")
    assert db.session.scalar(select(Volunteer.status)) == "opted_out"
    assert db.session.scalar(select(func.count()).select_from(Message)) == 1  # onboarding only


@pytest.mark.parametrize("body", ["ARRET", "please no more", "START", "HELP", ""])
@pytest.mark.parametrize("opt_out_type", list(Keyword))
def test_twilio_opt_out_type_decides_whatever_the_body(
    client: FlaskClient, opt_out_type: Keyword, body: str
) -> None:
    """Twilio's Advanced Opt-Out matched (OptOutType): the consent change it names is applied
    and recorded (channel `provider`, the keyword kept, never the text); nothing is sent back."""
    campaign()
    join()
    if opt_out_type is Keyword.START:  # a re-join needs someone who left
        sms(client, twilio_sid("SM0"), "STOP")
    before = db.session.scalar(select(func.count()).select_from(Message))
    assert sms(client, twilio_sid("SMt"), body, OptOutType=opt_out_type.upper()).status_code == 200
    db.session.expire_all()
    inbound_row = db.session.scalar(
        select(InboundMessage).where(InboundMessage.provider_message_id == twilio_sid("SMt"))
    )
    assert inbound_row is not None and inbound_row.keyword == opt_out_type
    expected = {Keyword.STOP: "opted_out", Keyword.START: "active", Keyword.HELP: "active"}
    assert db.session.scalar(select(Volunteer.status)) == expected[opt_out_type]
    last = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id.desc())).first()
    assert last is not None
    if opt_out_type is Keyword.HELP:
        assert last.inbound_message_id is None  # no consent change
    else:
        assert (last.event, last.channel) == (
            "withdrawn" if opt_out_type is Keyword.STOP else "re_given",
            "provider",
        )
        assert last.inbound_message_id == inbound_row.id
    assert db.session.scalar(select(func.count()).select_from(Message)) == before


# --- erasure and retention ---------------------------------------------------------------------


def test_erase_removes_personal_data_and_keeps_a_keyed_hash(app: Flask) -> None:
    campaign()
    join()
    db.session.query(Volunteer).update({"name": "Asha", "state": "Bihar", "pincode": "800001"})
    result = run(app, "volunteer", "erase", "+91 99112 78181")
    assert result.exit_code == 0, result.output
    volunteer = db.session.scalar(select(Volunteer))
    assert volunteer is not None
    assert volunteer.phone == f"erased:{volunteer.id}" and volunteer.status == "erased"
    assert (volunteer.name, volunteer.state, volunteer.pincode) == (None, None, None)
    assert all(m.body == "" and m.to_phone == "" for m in db.session.scalars(select(Message)))
    assert db.session.scalar(select(Call.from_raw)) is None
    assert db.session.scalar(select(Call.caller)) is None
    [suppression] = db.session.scalars(select(Suppression)).all()
    assert MOBILE not in suppression.phone_hash and len(suppression.phone_hash) == 64
    assert is_suppressed(MOBILE)
    text = b"".join(CsvExport(VolunteerFilter(), "UTC")).decode()
    assert "erased" not in text and MOBILE not in text
    # The export's stored cells (generated columns) are rewritten with the row: nothing is left.
    cells = db.session.execute(text_sql("SELECT csv_head || csv_tail FROM volunteers")).scalar()
    assert cells is not None
    assert MOBILE not in cells and "Asha" not in cells and "Bihar" not in cells


def test_an_erased_person_who_calls_again_rejoins_afresh(app: Flask) -> None:
    campaign()
    join()
    run(app, "volunteer", "erase", MOBILE)
    result = join()
    assert result.outcome is CallOutcome.JOINED and len(result.message_ids) == 1
    assert not is_suppressed(MOBILE)
    assert db.session.scalar(select(func.count()).select_from(Volunteer)) == 2


def test_an_erased_number_is_not_rejoined_by_a_keyword(client: FlaskClient, app: Flask) -> None:
    campaign()
    join()
    run(app, "volunteer", "erase", MOBILE)
    sms(client, twilio_sid("SMx"), "START")
    assert db.session.scalar(select(func.count()).select_from(Message)) == 1


@pytest.mark.parametrize(
    ("phone", "error"), [("nope", "not a valid phone number"), ("+919911278100", "no volunteer")]
)
def test_erase_refuses_bad_input(app: Flask, phone: str, error: str) -> None:
    result = run(app, "volunteer", "erase", phone)
    assert result.exit_code != 0 and error in result.stderr


def test_raw_caller_strings_are_purged_after_the_retention_age() -> None:
    old = inbound("099112 78181")
    new = inbound("099112 78182")
    old.received_at = clock.now() - timedelta(days=31)
    db.session.flush()
    assert calls.purge_raw_strings(30) == 1
    db.session.refresh(old)
    db.session.refresh(new)
    assert (old.from_raw, old.to_raw) == (None, None) and old.caller == MOBILE
    assert new.from_raw == "099112 78182"


# --- flooding ----------------------------------------------------------------------------------


def test_a_flooding_number_is_logged_but_costs_no_further_work(app: Flask) -> None:
    campaign()
    app.config["FLOOD_CALLS_PER_HOUR"] = 3
    try:
        outcomes = [join().outcome for _ in range(5)]
    finally:
        app.config["FLOOD_CALLS_PER_HOUR"] = 10
    assert outcomes == [
        CallOutcome.JOINED,
        CallOutcome.REPEAT,
        CallOutcome.REPEAT,
        CallOutcome.FLOODING,
        CallOutcome.FLOODING,
    ]
    assert db.session.scalar(select(Volunteer.call_count)) == 3
    assert db.session.scalar(select(func.count()).select_from(Call)) == 5
