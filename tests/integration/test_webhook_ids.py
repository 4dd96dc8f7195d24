"""Provider webhooks are checked exactly: a request's id is well-formed, a JSON body is hashed.

Twilio signs `url + name + value + …` without separators, so a captured body re-split as
`CallSidC=A0123…` still verifies; it must not lose its id and become a new call or reply. Every
webhook route of the app is enumerated, each with its id field missing, renamed, malformed and
repeated, through the WSGI fast path and through Flask alone; nothing may be stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator
from werkzeug.test import Client
from werkzeug.wrappers import Response as Answered

from signup.calls.providers.twilio import verify_twilio_request
from signup.extensions import db
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_BASE_URL, call_params, sign
from tests.integration.factories import NUMBER, campaign

pytestmark = pytest.mark.usefixtures("db_session")
EXOTEL_TOKEN = "exotel-webhook-secret-0123456789"
MOBILE = "+919911278181"
HEX = "0123456789abcdef" * 2

# Every signed Twilio route: its id field, a well-formed id, and the rest of a genuine body.
TWILIO: dict[str, tuple[str, str, dict[str, str]]] = {
    "/webhooks/twilio/voice": ("CallSid", "CA" + HEX, call_params("", MOBILE, NUMBER)),
    "/webhooks/twilio/sms": (
        "MessageSid",
        "SM" + HEX,
        {"AccountSid": ACCOUNT_SID, "From": MOBILE, "To": NUMBER, "Body": "START"},
    ),
    "/webhooks/twilio/message-status": (
        "MessageSid",
        "SM" + HEX,
        {"AccountSid": ACCOUNT_SID, "MessageStatus": "delivered", "ErrorCode": "30003"},
    ),
}
# Every Exotel route (a token in the path, no signature): its method, id field and fields.
EXOTEL: dict[str, tuple[str, str, dict[str, str]]] = {
    "/webhooks/exotel/<token>/call": (
        "GET",
        "CallSid",
        {"CallFrom": "09911278181", "CallTo": "08047259725"},
    ),
    "/webhooks/exotel/<token>/sms": ("GET", "SmsSid", {"From": "09911278181", "Body": "START"}),
    "/webhooks/exotel/<token>/sms-status": ("POST", "SmsSid", {"Status": "sent"}),
}


def shifted(params: dict[str, str], name: str) -> dict[str, str]:
    """The id's name swallows the first character of its value: the same signed text."""
    fields = {k: v for k, v in params.items() if k != name}
    value = params[name]
    return {**fields, name + value[0]: value[1:]}


TWILIO_BAD_IDS: dict[str, Callable[[dict[str, str], str], Any]] = {
    "missing": lambda p, n: {k: v for k, v in p.items() if k != n},
    "re-split": shifted,
    "empty": lambda p, n: {**p, n: ""},
    "short": lambda p, n: {**p, n: p[n][:-1]},
    "long": lambda p, n: {**p, n: p[n] + "0"},
    "other type": lambda p, n: {**p, n: "XX" + p[n][2:]},
    "not hex": lambda p, n: {**p, n: p[n][:-1] + "g"},
    "newline": lambda p, n: {**p, n: p[n] + "\n"},
    "unicode digits": lambda p, n: {**p, n: p[n][:2] + "٠" * 32},
    "NUL": lambda p, n: {**p, n: p[n][:-1] + "\x00"},
    "twice": lambda p, n: [*p.items(), (n, p[n][:-1] + "f")],
}
EXOTEL_BAD_IDS: dict[str, Callable[[dict[str, str], str], Any]] = {
    "missing": lambda p, n: {k: v for k, v in p.items() if k != n},
    "empty": lambda p, n: {**p, n: ""},
    "oversized": lambda p, n: {**p, n: "a" * 65},
    "space": lambda p, n: {**p, n: "abc def"},
    "unicode": lambda p, n: {**p, n: "कख"},
    "NUL": lambda p, n: {**p, n: "abc\x00"},
    "twice": lambda p, n: [*p.items(), (n, "other")],
}


def front(app: Flask) -> Client:
    """The app as gunicorn calls it: the WSGI fast path first."""
    return Client(app, Answered)


def flask_only(app: Flask) -> Client:
    """The Flask app itself, past the fast path."""
    return Client(lambda environ, start: Flask.wsgi_app(app, environ, start), Answered)


CLIENTS = {"fast path": front, "flask": flask_only}


def row_counts() -> dict[str, int]:
    """Rows in every table of the schema."""
    return {
        name: db.session.scalar(select(func.count()).select_from(table)) or 0
        for name, table in db.metadata.tables.items()
    }


def post_twilio(client: Client, path: str, fields: Any) -> Answered:
    """POST these fields (a dict or pairs) with the signature Twilio would give them."""
    pairs = list(fields.items()) if isinstance(fields, dict) else list(fields)
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        PUBLIC_BASE_URL + path, _Multi(grouped)
    )
    return client.post(
        path,
        data=urlencode(pairs),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )


class _Multi(dict[str, list[str]]):
    """A form with repeated fields, as compute_signature reads Flask's MultiDict."""

    def getall(self, name: str) -> list[str]:
        return self[name]


@pytest.fixture(autouse=True)
def exotel_token(app: Flask) -> Any:
    app.config["EXOTEL_WEBHOOK_TOKEN"] = EXOTEL_TOKEN
    yield
    app.config["EXOTEL_WEBHOOK_TOKEN"] = None


def test_every_webhook_route_is_covered_here(app: Flask) -> None:
    """A new provider route must be added above, so its id is checked too."""
    routes = {rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/webhooks/")}
    assert routes == set(TWILIO) | set(EXOTEL)


@pytest.mark.parametrize("way", list(CLIENTS))
@pytest.mark.parametrize("path", list(TWILIO))
def test_a_signed_body_with_a_well_formed_id_is_taken(app: Flask, path: str, way: str) -> None:
    """The control for the refusals below: the same bodies with their ids are answered."""
    campaign()
    name, good, params = TWILIO[path]
    response = post_twilio(CLIENTS[way](app), path, {**params, name: good})
    assert response.status_code in (200, 204)


@pytest.mark.parametrize("way", list(CLIENTS))
@pytest.mark.parametrize("bad", list(TWILIO_BAD_IDS))
@pytest.mark.parametrize("path", list(TWILIO))
def test_a_signed_body_without_a_well_formed_id_is_refused_and_stores_nothing(
    app: Flask, path: str, bad: str, way: str
) -> None:
    campaign()
    name, good, params = TWILIO[path]
    fields = TWILIO_BAD_IDS[bad]({**params, name: good}, name)
    before = row_counts()
    response = post_twilio(CLIENTS[way](app), path, fields)
    assert response.status_code in (400, 403), (path, bad, response.status_code)
    assert row_counts() == before


def test_a_replayed_start_re_split_does_not_rejoin(app: Flask) -> None:
    """The finding as reported: someone who left is not re-joined by a re-split old START."""
    campaign()
    client = front(app)
    path = "/webhooks/twilio/sms"
    name, good, params = TWILIO[path]
    start = {**params, name: good}
    post_twilio(client, "/webhooks/twilio/voice", call_params("CA" + HEX, MOBILE, NUMBER))
    assert post_twilio(client, path, start).status_code == 200
    assert post_twilio(client, path, {**start, name: "SM" + HEX[::-1], "Body": "STOP"}).status_code
    before = row_counts()
    assert post_twilio(client, path, start).status_code == 200  # the same id: applied once
    assert post_twilio(client, path, shifted(start, name)).status_code == 400
    assert row_counts() == before


@pytest.mark.parametrize("way", list(CLIENTS))
@pytest.mark.parametrize("bad", list(EXOTEL_BAD_IDS))
@pytest.mark.parametrize("route", list(EXOTEL))
def test_an_exotel_request_without_a_sane_id_is_refused_and_stores_nothing(
    app: Flask, route: str, bad: str, way: str
) -> None:
    campaign()
    method, name, params = EXOTEL[route]
    fields = EXOTEL_BAD_IDS[bad]({**params, name: "b6cfa7bb0b3a1e4d1d2b3c4d5e6f7a8b"}, name)
    pairs = list(fields.items()) if isinstance(fields, dict) else list(fields)
    path = route.replace("<token>", EXOTEL_TOKEN)
    before = row_counts()
    client = CLIENTS[way](app)
    if method == "GET":
        response = client.get(path, query_string=pairs)
    else:
        response = client.post(
            path, data=urlencode(pairs), content_type="application/x-www-form-urlencoded"
        )
    assert response.status_code == 400, (route, bad, response.status_code)
    assert row_counts() == before


# --- bodySHA256 ----------------------------------------------------------------------------------


def post_json(client: Client, path: str, body: bytes, hashed: bytes) -> Answered:
    """A JSON body signed as Twilio signs one: the URL with bodySHA256 of `hashed`."""
    query = "?bodySHA256=" + hashlib.sha256(hashed).hexdigest()
    signature = sign(path + query, {})
    return client.post(
        path + query,
        data=body,
        content_type="application/json",
        headers={"X-Twilio-Signature": signature},
    )


@pytest.mark.parametrize("way", list(CLIENTS))
@pytest.mark.parametrize("path", list(TWILIO))
def test_a_json_body_that_does_not_match_its_body_sha256_is_refused(
    app: Flask, path: str, way: str
) -> None:
    name, good, params = TWILIO[path]
    genuine = json.dumps({**params, name: good}).encode()
    forged = json.dumps({**params, name: "CA" + HEX[::-1]}).encode()
    before = row_counts()
    response = post_json(CLIENTS[way](app), path, forged, hashed=genuine)
    assert response.status_code == 403
    assert row_counts() == before


@pytest.mark.parametrize("way", list(CLIENTS))
@pytest.mark.parametrize("path", list(TWILIO))
def test_a_signed_form_under_another_bodys_sha256_is_refused(
    app: Flask, path: str, way: str
) -> None:
    """Stricter than the validator, which checks the hash of JSON bodies only: never looser."""
    name, good, params = TWILIO[path]
    fields = {**params, name: good}
    query = "?bodySHA256=" + hashlib.sha256(b"another body").hexdigest()
    before = row_counts()
    response = CLIENTS[way](app).post(
        path + query,
        data=urlencode(fields),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": sign(path + query, fields)},
    )
    assert response.status_code == 403
    assert row_counts() == before


JSON_BODIES = st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=4).map(
    lambda d: json.dumps(d)
)
BASES = st.sampled_from(["https://signup.example.org", "https://signup.example.org:443"])


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    base=BASES,
    body=JSON_BODIES,
    hashed=st.one_of(st.none(), JSON_BODIES),
    form=st.dictionaries(st.sampled_from(["CallSid", "From", "To", "a"]), st.text(max_size=10)),
    json_body=st.booleans(),
    good_signature=st.booleans(),
)
def test_verification_agrees_with_twilios_validator(
    app: Flask,
    base: str,
    body: str,
    hashed: str | None,
    form: dict[str, str],
    json_body: bool,
    good_signature: bool,
) -> None:
    """Over JSON bodies with bodySHA256 and form bodies without: the same yes or no."""
    validator = RequestValidator(AUTH_TOKEN)
    path = "/webhooks/twilio/voice"
    params: Any = form
    data, content_type = urlencode(form).encode(), "application/x-www-form-urlencoded"
    if json_body:
        digest = hashlib.sha256((body if hashed is None else hashed).encode()).hexdigest()
        path += "?bodySHA256=" + digest
        params, data, content_type = body, body.encode(), "application/json"
    signature = validator.compute_signature(base + path, {} if json_body else form)
    if not good_signature:
        signature = signature[::-1]
    with app.test_request_context(
        path,
        base_url=base,
        method="POST",
        data=data,
        content_type=content_type,
        headers={"X-Twilio-Signature": signature},
    ) as context:
        config = {**app.config, "PUBLIC_BASE_URL": None}
        ours = verify_twilio_request(context.request, config)
    assert ours == validator.validate(base + path, params, signature)
