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

# KEYS[1] bucket; ARGV rate/s, burst, longest wait worth reserving (s).
# Returns {reserved (1/0), wait seconds as a string}.
BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens < 1 then wait = (1 - tokens) / rate end
local reserved = 0
if wait <= max_wait then
  tokens = tokens - 1
  reserved = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return {reserved, tostring(wait)}
"""


@dataclass(frozen=True, slots=True)
class Grant:
    """A reservation: wait `wait` seconds then send; if not reserved, try again later."""

    reserved: bool
    wait: float


def _measured(key: str, grant: Grant) -> Grant:
    """Count the grant: its wait when reserved, a deferral when not (labelled by provider only)."""
    provider = key.partition(":")[0]
    if grant.reserved:
        WAIT_SECONDS.labels(provider=provider).observe(grant.wait)
    else:
        DEFERRED.labels(provider=provider).inc()
    return grant


class RateLimiter(Protocol):
    """Hands out send slots for one provider account."""

    def acquire(self, key: str) -> Grant:
        """Reserve a slot, or say how long until one is free."""
        ...


class RedisRateLimiter:
    """A token bucket per key in Redis, shared by all workers."""

    def __init__(self, client: redis.Redis, rate: float, burst: float, max_wait: float) -> None:
        self._script = client.register_script(BUCKET_SCRIPT)
        self.rate, self.burst, self.max_wait = rate, burst, max_wait

    def acquire(self, key: str) -> Grant:
        """Reserve a slot in the shared bucket."""
        reserved, wait = self._script(
            keys=[f"sms-rate:{key}"], args=[self.rate, self.burst, self.max_wait]
        )
        return _measured(key, Grant(bool(int(reserved)), float(wait)))


class LocalRateLimiter:
    """The same bucket held in this process (one worker, no Redis)."""

    def __init__(self, rate: float, burst: float, max_wait: float) -> None:
        self.rate, self.burst, self.max_wait = rate, burst, max_wait
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> Grant:
        """Reserve a slot in this process's bucket."""
        with self._lock:
            now = time.monotonic()
            tokens, ts = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + max(0.0, now - ts) * self.rate)
            wait = (1 - tokens) / self.rate if tokens < 1 else 0.0
            reserved = wait <= self.max_wait
            self._buckets[key] = (tokens - 1 if reserved else tokens, now)
        return _measured(key, Grant(reserved, wait))


def build(redis_url: str | None, rate: float, burst: float, max_wait: float = 1.0) -> RateLimiter:
    """A Redis bucket when REDIS_URL is set, else an in-process one."""
    if redis_url:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
        return RedisRateLimiter(client, rate, burst, max_wait)
    return LocalRateLimiter(rate, burst, max_wait)
