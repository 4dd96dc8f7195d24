"""Outgoing SMS at most N a second per provider account, shared by every worker.

A token bucket in Redis, updated atomically by a Lua script on Redis's own clock; callers
reserve a token and wait out its time, so together they never exceed the rate. Without Redis
(the embedded default) the bucket lives in the process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

import redis
from prometheus_client import Counter, Histogram

WAIT_SECONDS = Histogram(
    "signup_sms_rate_limit_wait_seconds",
    "Time a sender was told to wait for its slot in the SMS rate limit, by provider.",
    ["provider"],
    buckets=(0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DEFERRED = Counter(
    "signup_sms_rate_limit_deferred",
    "SMS put back as pending because the rate-limit wait was too long, by provider.",
    ["provider"],
)

# KEYS[1] bucket; ARGV rate/s, burst, longest wait worth reserving (s), slots wanted (n).
# Reserves the first k <= n slots whose wait is within max_wait, in one round trip.
# Returns {k, tokens before reserving as a string}: slot i (0-based) waits
# max(0, (i + 1 - tokens) / rate) seconds; slot k, the first not reserved, says how long
# until one is free.
BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4] or '1')
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local reserved = 0
while reserved < wanted do
  local need = reserved + 1
  if need > tokens and (need - tokens) / rate > max_wait then break end
  reserved = need
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - reserved), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return {reserved, tostring(tokens)}
"""


def _grants(wanted: int, reserved: int, tokens: float, rate: float, asked: float) -> list[Grant]:
    """The grants of one reservation made at `asked`: `reserved` slots 1/rate apart, refusals."""
    grants = []
    for index in range(wanted):
        wait = max(0.0, (index + 1 - tokens) / rate)
        grants.append(Grant(index < reserved, wait, asked + wait))
    return grants


# A sender that starts more than this long after its slot gives the slot up and asks again, so
# no send starts later than this after its slot.
LATE_TOLERANCE = 0.02
# The bucket paces slots at rate / (1 + this): sends that start up to LATE_TOLERANCE late, and
# reach the provider later still on a busy machine (up to ~0.2 s measured with the CPU loaded),
# stay within the configured rate in every second instead of bunching above it. At 4 % the
# busiest second reached 252-259 of 250 on loaded machines; at 8 % at most 238 (bench/sending.py,
# docs/benchmarks.md).
PACING_HEADROOM = 0.08


@dataclass(frozen=True, slots=True)
class Grant:
    """A reservation: send at `not_before` (time.monotonic()); if not reserved, retry later.

    `wait` is the slot's distance from the moment the bucket was asked, and `not_before` is
    that moment plus `wait`, measured before the request left: a reply read late (a busy
    process) then shows as a late slot, which the sender gives up, instead of moving every
    slot of the batch later, where they would overlap the next reservation's slots.
    """

    reserved: bool
    wait: float
    not_before: float


def _measured(key: str, grants: list[Grant]) -> list[Grant]:
    """Count grants: each wait when reserved, a deferral when not (labelled by provider only)."""
    provider = key.partition(":")[0]
    waits = WAIT_SECONDS.labels(provider=provider)
    refused = 0
    for grant in grants:
        if grant.reserved:
            waits.observe(grant.wait)
        else:
            refused += 1
    if refused:
        DEFERRED.labels(provider=provider).inc(refused)
    return grants


class RateLimiter(Protocol):
    """Hands out send slots for one provider account."""

    def acquire(self, key: str) -> Grant:
        """Reserve a slot, or say how long until one is free."""
        ...


def acquire_many(limiter: RateLimiter, key: str, count: int) -> list[Grant]:
    """Reserve `count` slots: in one call when the limiter can (Redis: one round trip)."""
    many = getattr(limiter, "acquire_many", None)
    if many is not None:
        grants: list[Grant] = many(key, count)
        return grants
    return [limiter.acquire(key) for _ in range(count)]


class RedisRateLimiter:
    """A token bucket per key in Redis, shared by all workers."""

    def __init__(self, client: redis.Redis, rate: float, burst: float, max_wait: float) -> None:
        self._script = client.register_script(BUCKET_SCRIPT)
        self.rate, self.burst, self.max_wait = rate, burst, max_wait

    def acquire(self, key: str) -> Grant:
        """Reserve a slot in the shared bucket."""
        return self.acquire_many(key, 1)[0]

    def acquire_many(self, key: str, count: int) -> list[Grant]:
        """Reserve up to `count` slots in one round trip; the rest are refused with their wait."""
        if count <= 0:
            return []
        asked = time.monotonic()
        reserved, tokens = self._script(
            keys=[f"sms-rate:{key}"], args=[self.rate, self.burst, self.max_wait, count]
        )
        return _measured(key, _grants(count, int(reserved), float(tokens), self.rate, asked))


class LocalRateLimiter:
    """The same bucket held in this process (one worker, no Redis)."""

    def __init__(self, rate: float, burst: float, max_wait: float) -> None:
        self.rate, self.burst, self.max_wait = rate, burst, max_wait
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> Grant:
        """Reserve a slot in this process's bucket."""
        return self.acquire_many(key, 1)[0]

    def acquire_many(self, key: str, count: int) -> list[Grant]:
        """Reserve up to `count` slots; the rest are refused with their wait."""
        if count <= 0:
            return []
        with self._lock:
            now = time.monotonic()
            tokens, ts = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + max(0.0, now - ts) * self.rate)
            reserved = 0
            while reserved < count:
                need = reserved + 1
                if need > tokens and (need - tokens) / self.rate > self.max_wait:
                    break
                reserved = need
            self._buckets[key] = (tokens - reserved, now)
        return _measured(key, _grants(count, reserved, tokens, self.rate, now))


def build(redis_url: str | None, rate: float, burst: float, max_wait: float = 1.0) -> RateLimiter:
    """A Redis bucket when REDIS_URL is set, else an in-process one; paced a little below rate."""
    rate = rate / (1 + PACING_HEADROOM)
    if redis_url:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
        return RedisRateLimiter(client, rate, burst, max_wait)
    return LocalRateLimiter(rate, burst, max_wait)
