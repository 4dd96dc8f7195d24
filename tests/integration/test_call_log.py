"""Each processed call says in the log what happened to it, with the caller masked."""

from __future__ import annotations

import json
import logging

import pytest

from signup.calls.tasks import process_calls
from signup.extensions import db
from tests.integration.factories import NUMBER, OPTOUT, campaign, inbound

CALLS = [  # caller, dialled, the outcome the log must name
    ("+919911278181", NUMBER, "joined"),
    ("09911278181", NUMBER, "repeat"),
    ("anonymous", NUMBER, "no_caller"),
    ("+919911278182", "+918000000000", "unrouted"),
    ("+919911278181", OPTOUT, "opted_out"),
]


@pytest.mark.usefixtures("db_session")
def test_every_processed_call_has_one_line_with_its_outcome_and_no_number(
    caplog: pytest.LogCaptureFixture,
) -> None:
    campaign()
    ids = [inbound(caller, to).id for caller, to, _ in CALLS]
    db.session.flush()
    caplog.set_level(logging.INFO, logger="signup.calls.services")
    process_calls.run(ids)
    lines = [r for r in caplog.records if r.getMessage() == "call.processed"]
    assert [(r.call_id, r.outcome) for r in lines] == [  # type: ignore[attr-defined]
        (call_id, outcome) for call_id, (_, _, outcome) in zip(ids, CALLS, strict=True)
    ]
    shown = json.dumps([r.__dict__ for r in lines], default=str)
    assert "9911278181" not in shown and "9911278182" not in shown
    assert "+91 99XXX XX181" in shown
