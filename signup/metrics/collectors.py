"""Gauges computed from the database when /metrics is scraped, so the hot paths do no extra work.

Each query is cheap and indexed: unprocessed calls through the partial index
ix_calls_unprocessed, messages by status through the status index, the oldest due message
through ix_messages_due. On PostgreSQL the queries give up after two seconds; a failing
database turns `signup_metrics_database_up` to 0 instead of failing the whole scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from signup import clock
from signup.calls.models import Call, CallState
from signup.extensions import db
from signup.logs import event
from signup.messaging.models import Message, MessageStatus

log = logging.getLogger(__name__)

UNPROCESSED = (CallState.PENDING, CallState.QUEUED)
# Literal copies of the partial indexes' predicates: with bound parameters a generic plan could
# not prove that the index covers the query.
UNPROCESSED_SQL = text("calls.state IN ('pending', 'queued')")
DUE_SQL = text("messages.status IN ('pending', 'queued')")
# Statuses whose error codes are worth a series; delivered and sent rows carry none.
ERROR_STATUSES = (
    MessageStatus.PENDING,
    MessageStatus.FAILED,
    MessageStatus.UNDELIVERED,
    MessageStatus.UNKNOWN,
)
STATEMENT_TIMEOUT_MS = 2000


def _age(since: datetime | None, now: datetime) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


class DatabaseCollector(Collector):
    """Outbox depth, oldest unprocessed call, and SMS by status and error code."""

    def collect(self) -> Iterator[Metric]:
        """Run the queries (inside the scrape's app context) and yield the gauges."""
        up = GaugeMetricFamily(
            "signup_metrics_database_up", "1 when the database gauges below could be read."
        )
        try:
            metrics = list(self._read())
        except SQLAlchemyError as exc:
            db.session.rollback()
            event(log, logging.WARNING, "metrics.database_failed", error=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _read(self) -> Iterator[Metric]:
        session = db.session
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
        now = clock.now()

        depth = GaugeMetricFamily(
            "signup_calls_unprocessed",
            "Calls recorded but not yet processed (the call outbox), by state.",
            labels=["state"],
        )
        counts = dict(
            session.execute(
                select(Call.state, func.count()).where(UNPROCESSED_SQL).group_by(Call.state)
            ).all()
        )
        for state in UNPROCESSED:
            depth.add_metric([str(state)], counts.get(state, 0))
        yield depth

        # Ids grow with arrival, so the lowest unprocessed id is the oldest call (a call replayed
        # from the spool keeps its original, earlier time and may be a little older).
        oldest = session.execute(
            select(Call.received_at).where(UNPROCESSED_SQL).order_by(Call.id).limit(1)
        ).scalar()
        yield GaugeMetricFamily(
            "signup_calls_oldest_unprocessed_age_seconds",
            "Seconds since the oldest unprocessed call arrived; 0 when none waits.",
            value=_age(oldest, now),
        )

        by_status = GaugeMetricFamily(
            "signup_sms_messages", "SMS rows by status.", labels=["status"]
        )
        messages: dict[str, int] = dict(
            session.execute(select(Message.status, func.count()).group_by(Message.status)).all()
        )
        for known in MessageStatus:
            by_status.add_metric([str(known)], messages.pop(known, 0))
        for other, count in messages.items():  # a status this code does not know yet
            by_status.add_metric([other], count)
        yield by_status

        errors = GaugeMetricFamily(
            "signup_sms_errors",
            "SMS rows with a provider error code, by status and code.",
            labels=["status", "error_code"],
        )
        rows = session.execute(
            select(Message.status, Message.error_code, func.count())
            .where(Message.status.in_(ERROR_STATUSES), Message.error_code.is_not(None))
            .group_by(Message.status, Message.error_code)
        ).all()
        for failed, code, count in rows:
            errors.add_metric([str(failed), str(code)], count)
        yield errors

        due = session.execute(
            select(Message.next_attempt_at)
            .where(DUE_SQL, Message.next_attempt_at <= now)
            .order_by(Message.next_attempt_at)
            .limit(1)
        ).scalar()
        yield GaugeMetricFamily(
            "signup_sms_oldest_due_age_seconds",
            "Seconds the longest-waiting due SMS has been due; 0 when none is.",
            value=_age(due, now),
        )
