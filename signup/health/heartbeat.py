"""A worker's sign of life: the beat schedules it, a worker records it, `/readyz` reads its age.

Kept in Redis when there is one (every web machine sees it), else in a file in the instance
folder (the embedded development setup, where one machine runs everything).
"""

from __future__ import annotations

import time
from pathlib import Path

import redis
from flask import current_app

KEY = "signup:worker-heartbeat"
INTERVAL = 10.0  # seconds between beats (the beat schedule's entry)
STALE_AFTER = 60.0  # a worker silent this long is reported stale


def _file() -> Path:
    return Path(current_app.instance_path) / "worker-heartbeat"


def _redis() -> redis.Redis | None:
    """A client of REDIS_URL, or None in the embedded setup (the file is used then)."""
    url = current_app.config.get("REDIS_URL")
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) if url else None


def record(now: float | None = None) -> None:
    """Note that a worker ran a task just now."""
    moment = repr(time.time() if now is None else now)
    client = _redis()
    if client is not None:
        client.set(KEY, moment, ex=int(STALE_AFTER * 10))
        return
    target = _file()
    partial = target.with_suffix(".partial")
    partial.write_text(moment)
    partial.replace(target)


def age(now: float | None = None) -> float | None:
    """Seconds since a worker last beat; None when none ever did (or it cannot be read)."""
    client = _redis()
    try:
        if client is not None:
            raw = client.get(KEY)
            value = raw.decode() if isinstance(raw, bytes) else raw
        else:
            value = _file().read_text() if _file().exists() else None
        last = float(value) if value else None
    except (redis.RedisError, OSError, ValueError):
        return None
    return None if last is None else max(0.0, (time.time() if now is None else now) - last)


def status(now: float | None = None) -> str:
    """`ok`, `stale` (silent for STALE_AFTER seconds) or `never` (no worker has run yet)."""
    seconds = age(now)
    if seconds is None:
        return "never"
    return "ok" if seconds < STALE_AFTER else "stale"
