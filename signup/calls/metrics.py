"""The voice webhooks' metrics, in prometheus-client's default registry (served at /metrics).

Children are bound once per provider and outcome at import, so recording one request costs
two dictionary look-ups, one histogram observation and one counter increment.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PROVIDERS = ("twilio", "exotel")
OUTCOMES = ("recorded", "duplicate", "spooled", "forbidden", "malformed", "lost")

WEBHOOK_SECONDS = Histogram(
    "signup_webhook_seconds",
    "Time to answer an incoming-call webhook, from the view's start to its answer.",
    ["provider"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WEBHOOK_CALLS = Counter(
    "signup_webhook_calls_total",
    "Incoming-call webhooks by provider and outcome: recorded (a new call committed), "
    "duplicate (its call id was already committed), spooled (the database could not take it), "
    "forbidden (signature or token refused), malformed (verified, but no well-formed call id), "
    "lost (neither the database nor the spool took it).",
    ["provider", "outcome"],
)

_seconds = {provider: WEBHOOK_SECONDS.labels(provider) for provider in PROVIDERS}
_calls = {
    (provider, outcome): WEBHOOK_CALLS.labels(provider, outcome)
    for provider in PROVIDERS
    for outcome in OUTCOMES
}


def observe(provider: str, outcome: str, seconds: float) -> None:
    """Count one webhook by outcome and record how long it took to answer."""
    _calls[provider, outcome].inc()
    _seconds[provider].observe(seconds)
