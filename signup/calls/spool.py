"""The webhook's fallback when PostgreSQL cannot take a call: keep it, replay it later.

A call that cannot be committed is put in Redis (a list, shared by every web machine) when
Redis answers within a few milliseconds, else appended to a local file and fsync'd before the
webhook answers. Replaying inserts with ON CONFLICT on the provider's call id, so a call that
was in fact committed, or is replayed twice, is still one call.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import redis
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from signup.calls import services
from signup.calls.providers.base import InboundCall
from signup.extensions import db
from signup.logs import event
from signup.phones import normalise

log = logging.getLogger(__name__)
REDIS_KEY = "signup:spool:calls"
BATCH = 500


def _encode(inbound: InboundCall, received_at: datetime) -> str:
    return json.dumps(
        {**asdict(inbound), "received_at": received_at.isoformat()}, ensure_ascii=False
    )


def _decode(line: str) -> tuple[InboundCall, datetime]:
    data = json.loads(line)
    received_at = datetime.fromisoformat(data.pop("received_at"))
    return InboundCall(**data), received_at


class Spool:
    """Where calls wait while the database is away."""

    def __init__(self, folder: Path, redis_url: str | None) -> None:
        self.folder = folder
        self._redis = (
            redis.Redis.from_url(redis_url, socket_connect_timeout=0.2, socket_timeout=0.2)
            if redis_url
            else None
        )
        self._lock = threading.Lock()

    def put(self, inbound: InboundCall, received_at: datetime) -> str:
        """Keep one call durably; returns where ('redis' or 'file'). Raises OSError if neither."""
        line = _encode(inbound, received_at)
        if self._redis is not None:
            try:
                self._redis.rpush(REDIS_KEY, line)
                return "redis"
            except redis.RedisError:
                pass
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"calls-{os.getpid()}.jsonl"
        with self._lock:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # against an erasure rewriting the file
                os.write(fd, (line + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        return "file"

    def forget(self, e164: str) -> int:
        """Erasure: drop every spooled call from or to this number; how many were dropped."""
        return self._forget_in_redis(e164) + self._forget_in_files(e164)

    def _forget_in_redis(self, e164: str) -> int:
        if self._redis is None:
            return 0
        lines: list[bytes] = self._redis.lrange(REDIS_KEY, 0, -1)  # type: ignore[assignment]
        dropped = 0
        for line in {line for line in lines if _concerns(line.decode(), e164)}:
            dropped += int(self._redis.lrem(REDIS_KEY, 0, line))  # type: ignore[arg-type]
        return dropped

    def _forget_in_files(self, e164: str) -> int:
        dropped = 0
        for path in self.pending_files():
            try:
                handle = path.open("r+")
            except FileNotFoundError:  # replayed meanwhile
                continue
            with handle:
                fcntl.flock(handle, fcntl.LOCK_EX)  # writers append under the same lock
                lines = [line for line in handle.read().splitlines() if line.strip()]
                kept = [line for line in lines if not _concerns(line, e164)]
                if len(kept) != len(lines):
                    dropped += len(lines) - len(kept)
                    handle.seek(0)
                    handle.write("".join(line + "\n" for line in kept))
                    handle.truncate()
                    handle.flush()
                    os.fsync(handle.fileno())
        return dropped

    def pending_files(self) -> list[Path]:
        """Local spool files waiting to be replayed (including a replay that was cut off)."""
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("calls-*.jsonl*"))

    def replay_files(self) -> int:
        """Insert every locally spooled call; a file is removed once all of it is committed."""
        done = 0
        for path in self.pending_files():
            claimed = (
                path if path.suffix == ".replaying" else path.with_name(path.name + ".replaying")
            )
            if claimed != path:
                try:
                    path.rename(claimed)  # atomic: one process replays a file
                except FileNotFoundError:
                    continue
            with claimed.open() as handle:
                fcntl.flock(handle, fcntl.LOCK_SH)  # not while an erasure rewrites it
                lines = [line for line in handle.read().splitlines() if line.strip()]
            done += _insert([_decode(line) for line in lines])
            claimed.unlink(missing_ok=True)  # another replayer may have finished it too
        return done

    def replay_redis(self) -> int:
        """Insert calls spooled in Redis, a batch at a time; put a batch back if that fails."""
        if self._redis is None:
            return 0
        done = 0
        while True:
            lines: list[bytes] = self._redis.lpop(REDIS_KEY, BATCH) or []  # type: ignore[assignment]
            if not lines:
                return done
            try:
                done += _insert([_decode(line.decode()) for line in lines])
            except Exception:
                self._redis.lpush(REDIS_KEY, *reversed(lines))
                raise


def _concerns(line: str, e164: str) -> bool:
    """True when a spooled call is from or to this number."""
    inbound, _ = _decode(line)
    return e164 in (normalise(inbound.from_raw).e164, normalise(inbound.to_raw).e164)


def _insert(calls: list[tuple[InboundCall, datetime]]) -> int:
    """Record spooled calls in one transaction; raises (and commits nothing) if the DB is away."""
    try:
        for inbound, received_at in calls:
            services.record_inbound(inbound, received_at)
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        raise
    if calls:
        event(log, logging.INFO, "spool.replayed", calls=len(calls))
    return len(calls)


class Replayer:
    """A background thread in the web process that replays its local spool once the DB is back."""

    def __init__(self, app: Flask, spool: Spool, interval: float = 2.0) -> None:
        self._app = app
        self._spool = spool
        self._interval = interval
        self._pid: int | None = None
        self._lock = threading.Lock()

    def wake(self) -> None:
        """Start the replay thread in this process if it is not running."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                threading.Thread(target=self._run, name="spool-replayer", daemon=True).start()
                self._pid = os.getpid()

    def _run(self) -> None:
        while True:
            time.sleep(self._interval)
            try:
                with self._app.app_context():
                    self._spool.replay_files()
                    if not self._spool.pending_files():
                        self._pid = None
                        return
            except Exception as exc:  # the database is still away: try again later
                event(log, logging.WARNING, "spool.replay_waiting", error=type(exc).__name__)
