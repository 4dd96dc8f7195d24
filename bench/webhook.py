"""Throughput of the signed Twilio voice webhook against a hello-world Flask route.

One run starts two gunicorn servers with the same flags, one after the other, both on
127.0.0.1 only: bench/hello.py (`hello:app`, answers the TwiML and does nothing else) and
the real app (`signup:create_app()`) on a fresh PostgreSQL database migrated with
`signup db upgrade`. Each gets a warm-up and then a measured phase of signed, form-encoded
Twilio voice webhooks from distinct callers (+9198XXXXXXXX) with distinct CallSids, sent
over persistent HTTP/1.1 connections with one request in flight each. At the deadline the
client stops sending and waits for every answer still in flight, so the `calls` rows can be
checked exactly against the 200 answers.

The load comes from wrk (`apt-get install -y wrk`) driven by a generated Lua script that
replays requests signed here, or, without wrk, from a raw-socket Python client (costlier
per request, so it understates the hello-world server most).

    .venv/bin/python bench/webhook.py              # 3 s warm-up + 12 s per server
    .venv/bin/python bench/webhook.py --quick      # 1 s warm-up + 3 s per server
    .venv/bin/python bench/webhook.py --rate 1000  # both paced: latency below saturation

Prints a markdown report, with what the p99 target asks of the throughput (Little's law) and
what the machine did in the measured phases (bench/sampler.py: steal, iowait, pressure, and
any tenth of a second that answered far fewer than the rest). Exit status: 0 when every check
passes, 1 when an answer or the row count is wrong, 3 when only the ratio webhook / hello is
below --min-ratio (0.6; not checked with --rate) or the webhook's p99 is not below --max-p99
(25 ms).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import re
import resource
import secrets
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import IO, Any, NoReturn
from urllib.parse import urlencode, urlsplit

import psycopg
from psycopg import sql
from sampler import Sampler, Stalls, stalls
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"
PATH = "/webhooks/twilio/voice"
EXPECTED_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy" /></Response>'
)
CALLED = "+918047259725"
ACCOUNT_SID = "AC" + "0" * 32
CALLERS = 10**8  # +9198 followed by 8 digits
MEASURED_CALLERS = CALLERS // 2  # measured phases number their callers from here
MAX_PREBUILT = 400_000
HELLO_PREBUILT = 20_000  # the hello server stores nothing, so its requests are replayed
DRAIN_TIMEOUT = 15.0  # seconds to wait for answers still in flight at the deadline
READY_TIMEOUT = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------- requests


def signed_calls(token: str, port: int, first: int, stride: int, count: int) -> list[str]:
    """`count` incoming calls as "signature body" lines, callers first, first+stride, ..."""
    validator = RequestValidator(token)
    url = f"http://{HOST}:{port}{PATH}"
    lines = []
    for n in range(first, first + count * stride, stride):
        if n >= CALLERS:
            raise RuntimeError("ran out of distinct caller numbers")
        caller = f"+9198{n:08d}"
        params = {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "CallSid": "CA" + secrets.token_hex(16),
            "CallStatus": "ringing",
            "Direction": "inbound",
            "From": caller,
            "Caller": caller,
            "To": CALLED,
            "Called": CALLED,
        }
        lines.append(f"{validator.compute_signature(url, params)} {urlencode(params)}")
    return lines


def http_request(port: int, call: str) -> bytes:
    """The raw HTTP/1.1 request for one "signature body" line."""
    signature, body = call.split(" ")
    return (
        f"POST {PATH} HTTP/1.1\r\n"
        f"Host: {HOST}:{port}\r\n"
        "User-Agent: TwilioProxy/1.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Twilio-Signature: {signature}\r\n"
        f"\r\n{body}"
    ).encode("ascii")


@dataclass(frozen=True, slots=True)
class Phase:
    """One load phase against one server."""

    port: int
    token: str
    connections: int
    clients: int  # wrk threads or Python client processes
    duration: float
    first_caller: int
    prebuilt: int  # requests signed before the phase starts
    replay: bool  # send the prebuilt requests again when they run out (hello only)
    rate: float = 0.0  # requests a second in all, paced (wrk only); 0 for as fast as answered


@dataclass(slots=True)
class Tally:
    """What a load phase saw."""

    answers: int = 0
    ok: int = 0  # 200 with the Reject TwiML as text/xml
    statuses: dict[int, int] = field(default_factory=dict)  # answers that were not 200
    wrong_body: int = 0
    errors: int = 0  # connection errors and answers never received
    elapsed: float = 0.0
    p50: float = math.nan  # seconds
    p99: float = math.nan
    mean: float = math.nan  # seconds
    client_cpu: float = 0.0  # CPU seconds the load generator used
    exhausted: bool = False  # prebuilt requests ran out before the deadline
    ticks: dict[int, int] = field(default_factory=dict)  # answers per tenth (wrk only)

    @property
    def rate(self) -> float:
        """Answers per second over the phase."""
        return self.answers / self.elapsed if self.elapsed else 0.0

    @property
    def non_200(self) -> int:
        """Answers whose status was not 200."""
        return sum(self.statuses.values())

    @property
    def clean(self) -> bool:
        """True when every request got a 200 with the expected TwiML."""
        return not (self.non_200 or self.wrong_body or self.errors)


# ------------------------------------------------------------------------------- wrk

WRK_SCRIPT = r"""
-- Written by bench/webhook.py. Each thread replays the signed requests in its own file,
-- one per connection at a time; after the deadline each connection idles once answered,
-- and when all have, the thread says "bench-drained" on stderr and stops.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end

local EXPECTED = '__EXPECTED__'
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

local requests, next_request, duration, replay, connections, idle = {}, 0, 0, false, 0, 0
local deadline, interval, slot = nil, 0, 0
answered, ok, wrong_body, started, finished, exhausted, statuses = 0, 0, 0, 0, 0, false, {}
ticks = {} -- answers per tenth of a second of CLOCK_MONOTONIC (bench/sampler.py's buckets)

function init(args)
  duration, replay = tonumber(args[2]), args[3] == "replay"
  connections = tonumber(args[5])
  interval = tonumber(args[6]) -- seconds between this thread's requests; 0 sends at once
  local headers = {
    ["Host"] = args[4],
    ["User-Agent"] = "TwilioProxy/1.1",
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }
  for line in io.lines(args[1] .. "/calls-" .. id .. ".txt") do
    local signature, body = line:match("^(%S+) (%S+)$")
    headers["X-Twilio-Signature"] = signature
    requests[#requests + 1] = wrk.format("POST", "__PATH__", headers, body)
  end
end

function delay()
  local t = now()
  if deadline == nil then
    started, deadline = t, t + duration
  end
  if t < deadline and (replay or next_request < #requests) then
    if interval == 0 then
      return 0
    end
    slot = math.max(slot + interval, t) -- each request takes the next free slot
    return math.floor((slot - t) * 1000) -- wrk waits whole milliseconds: early by under 1 ms
  end
  exhausted = exhausted or t < deadline
  idle = idle + 1
  if idle == connections then
    io.stderr:write("bench-drained\n")
    wrk.thread:stop()
  end
  return 3600000
end

function request()
  next_request = next_request + 1
  if next_request > #requests then
    next_request = 1
  end
  return requests[next_request]
end

function response(status, headers, body)
  answered = answered + 1
  finished = now()
  local tick = math.floor(finished * 10)
  ticks[tick] = (ticks[tick] or 0) + 1
  if status ~= 200 then
    statuses[status] = (statuses[status] or 0) + 1
  elseif body ~= EXPECTED
      or not string.find(headers["Content-Type"] or headers["content-type"] or "", "^text/xml") then
    wrong_body = wrong_body + 1
  else
    ok = ok + 1
  end
end

function done(summary, latency, requests)
  local total = { answered = 0, ok = 0, wrong_body = 0, exhausted = false }
  local first, last, codes, timeline = math.huge, 0, {}, {}
  for _, thread in ipairs(threads) do
    for key, _ in pairs(total) do
      local value = thread:get(key)
      if type(value) == "boolean" then
        total[key] = total[key] or value
      else
        total[key] = total[key] + value
      end
    end
    first = math.min(first, thread:get("started"))
    last = math.max(last, thread:get("finished"))
    for status, count in pairs(thread:get("statuses")) do
      codes[status] = (codes[status] or 0) + count
    end
    for tick, count in pairs(thread:get("ticks")) do
      timeline[tick] = (timeline[tick] or 0) + count
    end
  end
  local ticked = {}
  for tick, count in pairs(timeline) do
    ticked[#ticked + 1] = string.format('"%d": %d', tick, count)
  end
  local parts = {}
  for status, count in pairs(codes) do
    parts[#parts + 1] = string.format('"%d": %d', status, count)
  end
  local e = summary.errors
  io.write(string.format(
    'bench-result {"answers": %d, "ok": %d, "wrong_body": %d, "statuses": {%s}, '
      .. '"elapsed": %.6f, "exhausted": %s, "errors": %d, "p50_us": %d, "p99_us": %d, '
      .. '"mean_us": %d, "ticks": {%s}}\n',
    total.answered, total.ok, total.wrong_body, table.concat(parts, ", "),
    math.max(0, last - first), tostring(total.exhausted),
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, table.concat(ticked, ", ")))
end
"""


def run_wrk(wrk: str, phase: Phase, workdir: Path) -> Tally:
    """Run one phase with wrk and the generated Lua script."""
    threads = phase.clients
    per_thread = phase.connections // threads
    script = workdir / "calls.lua"
    script.write_text(WRK_SCRIPT.replace("__EXPECTED__", EXPECTED_BODY).replace("__PATH__", PATH))
    share = math.ceil(phase.prebuilt / threads)
    for index in range(threads):
        lines = signed_calls(phase.token, phase.port, phase.first_caller + index, threads, share)
        (workdir / f"calls-{index + 1}.txt").write_text("\n".join(lines) + "\n")
    command = [
        wrk,
        f"--threads={threads}",
        f"--connections={per_thread * threads}",
        f"--duration={math.ceil(phase.duration + DRAIN_TIMEOUT)}s",
        "--timeout=30s",
        f"--script={script}",
        f"http://{HOST}:{phase.port}{PATH}",
        "--",
        str(workdir),
        repr(phase.duration),
        "replay" if phase.replay else "once",
        f"{HOST}:{phase.port}",
        str(per_thread),
        repr(threads / phase.rate if phase.rate else 0.0),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        stderr = _await_drained(proc, threads, phase.duration + DRAIN_TIMEOUT + 60)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # wrk sleeps for --duration unless interrupted
        stdout, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stderr += rest
    found = re.search(rb"^bench-result (.*)$", stdout, re.MULTILINE)
    if not found:
        output = (stdout + stderr).decode(errors="replace")
        raise RuntimeError(f"wrk printed no result:\n{output[-3000:]}")
    raw = json.loads(found.group(1))
    drained = stderr.count(b"bench-drained")
    return Tally(
        answers=raw["answers"],
        ok=raw["ok"],
        statuses={int(k): v for k, v in raw["statuses"].items()},
        wrong_body=raw["wrong_body"],
        errors=raw["errors"] + (0 if drained == threads else 1),
        elapsed=raw["elapsed"],
        p50=raw["p50_us"] / 1e6,
        p99=raw["p99_us"] / 1e6,
        mean=raw["mean_us"] / 1e6,
        client_cpu=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        exhausted=raw["exhausted"],
        ticks={int(k): v for k, v in raw["ticks"].items()},
    )


def _await_drained(proc: subprocess.Popen[bytes], threads: int, timeout: float) -> bytes:
    """Read wrk's stderr until every thread has said "bench-drained", or wrk ends."""
    assert proc.stderr is not None
    fd, seen, until = proc.stderr.fileno(), b"", time.monotonic() + timeout
    while seen.count(b"bench-drained") < threads:
        left = until - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        seen += chunk
    return seen


# ----------------------------------------------------------------------- Python client


class Connection:
    """A persistent HTTP/1.1 connection with at most one request in flight."""

    __slots__ = ("buf", "sent_at", "sock")

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.sent_at = 0.0

    def send(self, request: bytes) -> None:
        """Write a whole request and note when."""
        self.sent_at = time.perf_counter()
        self.sock.sendall(request)


@dataclass(frozen=True, slots=True)
class Answer:
    """One parsed HTTP response."""

    status: int
    xml: bool
    body: bytes
    close: bool
    size: int


def parse_answer(buf: bytearray) -> Answer | None:
    """Parse the response at the start of `buf`, or None until all of it has arrived."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    status_line, *headers = bytes(buf[:end]).split(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length, close, xml = 0, status_line.startswith(b"HTTP/1.0"), False
    for line in headers:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value == b"close"
        elif name == b"content-type":
            xml = value.startswith(b"text/xml")
    size = end + 4 + length
    if len(buf) < size:
        return None
    return Answer(status, xml, bytes(buf[end + 4 : size]), close, size)


def drive(
    phase: Phase, index: int, connections: int, barrier: Barrier
) -> tuple[Tally, list[float]]:
    """One client process: keep its connections busy until the deadline, then drain."""
    calls = signed_calls(
        phase.token, phase.port, phase.first_caller + index, phase.clients, phase.prebuilt
    )
    requests = [http_request(phase.port, call) for call in calls]
    expected = EXPECTED_BODY.encode()
    tally, latencies = Tally(), []
    selector = selectors.DefaultSelector()
    live: list[Connection] = []
    cursor = 0

    def start(conn: Connection | None) -> int:
        """Send the next request on `conn` (a new connection when None): 1 if sent."""
        nonlocal cursor
        if cursor == len(requests):
            if not phase.replay:
                tally.exhausted = True
                return 0
            cursor = 0
        try:
            if conn is None:
                conn = Connection(phase.port)
                selector.register(conn.sock, selectors.EVENT_READ, conn)
                live.append(conn)
            conn.send(requests[cursor])
        except OSError:
            tally.errors += 1
            if conn is not None:
                drop(conn)
            return 0
        cursor += 1
        return 1

    def drop(conn: Connection) -> None:
        if conn in live:
            selector.unregister(conn.sock)
            live.remove(conn)
        conn.sock.close()

    for _ in range(connections):
        conn = Connection(phase.port)
        selector.register(conn.sock, selectors.EVENT_READ, conn)
        live.append(conn)
    barrier.wait(timeout=READY_TIMEOUT)
    cpu0 = time.process_time()
    t0 = last = time.perf_counter()
    deadline, give_up = t0 + phase.duration, t0 + phase.duration + DRAIN_TIMEOUT
    in_flight = sum(start(conn) for conn in list(live))
    while in_flight:
        now = time.perf_counter()
        if now >= give_up:
            tally.errors += in_flight  # never answered
            break
        for key, _ in selector.select(timeout=give_up - now):
            conn = key.data
            try:
                chunk = conn.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:  # closed or reset with a request in flight
                tally.errors += 1
                in_flight -= 1
                drop(conn)
                if time.perf_counter() < deadline:
                    in_flight += start(None)
                continue
            conn.buf += chunk
            answer = parse_answer(conn.buf)
            if answer is None:
                continue
            last = time.perf_counter()
            in_flight -= 1
            latencies.append(last - conn.sent_at)
            del conn.buf[: answer.size]
            if answer.status != 200:
                tally.statuses[answer.status] = tally.statuses.get(answer.status, 0) + 1
            elif answer.body != expected or not answer.xml:
                tally.wrong_body += 1
            else:
                tally.ok += 1
            if answer.close:
                drop(conn)
                if last < deadline:
                    in_flight += start(None)
            elif last < deadline:
                in_flight += start(conn)
    tally.answers = len(latencies)
    tally.elapsed = last - t0
    tally.client_cpu = time.process_time() - cpu0
    for conn in list(live):
        drop(conn)
    return tally, latencies


def _client(phase: Phase, index: int, connections: int, barrier: Barrier, results: Any) -> None:
    """Client process body: drive the load and hand back the tally (or the error)."""
    try:
        results.put((index, drive(phase, index, connections, barrier)))
    except BaseException as exc:
        barrier.abort()
        results.put((index, f"{type(exc).__name__}: {exc}"))


def run_python(phase: Phase) -> Tally:
    """Run one phase from `phase.clients` Python processes sharing the connections."""
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(phase.clients), ctx.Queue()
    procs = phase.clients
    share = math.ceil(phase.prebuilt / procs)
    phase = replace(phase, prebuilt=share)
    workers = [
        ctx.Process(
            target=_client,
            args=(
                phase,
                i,
                phase.connections // procs + (i < phase.connections % procs),
                barrier,
                results,
            ),
        )
        for i in range(procs)
    ]
    tally, latencies = Tally(), []
    try:
        for worker in workers:
            worker.start()
        for _ in workers:
            _, outcome = results.get(timeout=READY_TIMEOUT + phase.duration + DRAIN_TIMEOUT + 60)
            if isinstance(outcome, str):
                raise RuntimeError(f"client process failed: {outcome}")
            part, part_latencies = outcome
            tally.answers += part.answers
            tally.ok += part.ok
            for status, count in part.statuses.items():
                tally.statuses[status] = tally.statuses.get(status, 0) + count
            tally.wrong_body += part.wrong_body
            tally.errors += part.errors
            tally.elapsed = max(tally.elapsed, part.elapsed)
            tally.client_cpu += part.client_cpu
            tally.exhausted |= part.exhausted
            latencies.extend(part_latencies)
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
                worker.join()
    if latencies:
        latencies.sort()
        tally.p50, tally.p99 = (latencies[math.ceil(q * len(latencies)) - 1] for q in (0.5, 0.99))
        tally.mean = sum(latencies) / len(latencies)
    return tally


# ----------------------------------------------------------------------------- servers


def proc_cpu() -> dict[int, tuple[str, int, float]]:
    """Every process's (command name, parent pid, CPU seconds so far), read from /proc."""
    found: dict[int, tuple[str, int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        found[int(entry.name)] = (
            comm,
            int(fields[1]),
            (int(fields[11]) + int(fields[12])) / CLK_TCK,
        )
    return found


def postgres_cpu() -> float:
    """CPU seconds used so far by the PostgreSQL processes alive now (all databases)."""
    return sum(cpu for comm, _, cpu in proc_cpu().values() if comm.startswith("postgres"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Gunicorn:
    """A gunicorn master serving one app on 127.0.0.1, its output going to `log`."""

    def __init__(
        self, app: str, port: int, flags: Sequence[str], env: dict[str, str], log: IO[bytes]
    ) -> None:
        self.app, self.port, self.log = app, port, log
        command = [sys.executable, "-m", "gunicorn", *flags]
        command += ["--bind", f"{HOST}:{port}", "--pythonpath", str(BENCH), app]
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            process_group=0,  # killable as a group, yet in our session (and autogroup)
        )

    def wait_ready(self) -> None:
        """Wait until a worker answers an HTTP request (a GET on the POST-only route)."""
        probe = f"GET {PATH} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
        until = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < until:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn for {self.app} exited:\n{self.output()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=2) as sock:
                    sock.sendall(probe)
                    if sock.recv(16).startswith(b"HTTP/1."):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn for {self.app} never answered:\n{self.output()}")

    def cpu(self) -> float:
        """CPU seconds used so far by the master and its workers."""
        pid = self.proc.pid
        return sum(c for p, (_, ppid, c) in proc_cpu().items() if pid in (p, ppid))

    def output(self, chars: int = 4000) -> str:
        """The end of what the server printed."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), then kill its whole session if it lingers."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@contextmanager
def serving(app: str, port: int, flags: Sequence[str], env: dict[str, str]) -> Iterator[Gunicorn]:
    """Run a gunicorn server for the duration of the block."""
    with tempfile.TemporaryFile() as log:
        server = Gunicorn(app, port, flags, env, log)
        try:
            server.wait_ready()
            yield server
        finally:
            server.stop()


# ---------------------------------------------------------------------------- database


@dataclass(frozen=True, slots=True)
class Database:
    """The dedicated benchmark database and how to reach it."""

    server: str  # postgresql://user@host:port, no database name
    name: str

    @property
    def url(self) -> str:
        """The app's DATABASE_URL (SQLAlchemy with psycopg 3)."""
        return f"postgresql+psycopg://{self.server.removeprefix('postgresql://')}/{self.name}"

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(f"{self.server}/postgres", autocommit=True)

    def recreate(self) -> None:
        """Drop the benchmark database (closing its sessions) and create it empty."""
        self.drop()
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))

    def drop(self) -> None:
        """Drop the benchmark database if it exists."""
        with self._admin() as conn:
            name = sql.Identifier(self.name)
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))

    def count_calls(self) -> int:
        """Rows in the `calls` table."""
        with psycopg.connect(f"{self.server}/{self.name}") as conn:
            row = conn.execute("SELECT count(*) FROM calls").fetchone()
        return int(row[0]) if row else 0

    def version(self) -> str:
        """The server's version, e.g. 15.20."""
        with self._admin() as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]).split()[0] if row else "?"


def migrate(env: dict[str, str]) -> None:
    """Apply the project's migrations with `signup db upgrade`, the console script."""
    cli = Path(sys.executable).with_name("signup")
    if not cli.exists():
        raise RuntimeError(f"{cli} not found: install the project into this interpreter's venv")
    done = subprocess.run(
        [str(cli), "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"signup db upgrade failed:\n{done.stdout}{done.stderr}")


# ------------------------------------------------------------------------------- bench


@dataclass(frozen=True, slots=True)
class Options:
    """The command line, resolved."""

    duration: float
    warmup: float
    connections: int
    workers: int
    threads: int
    worker_class: str
    clients: int
    wrk: str | None  # wrk's path, or None for the Python client
    min_ratio: float
    max_p99: float
    database: Database
    keep_database: bool
    json_path: Path | None = None
    rate: float = 0.0  # paced load in requests a second; 0 for as fast as the server answers

    @property
    def gunicorn_flags(self) -> list[str]:
        """The flags both servers get."""
        flags = ["--workers", str(self.workers), "--worker-class", self.worker_class]
        if self.worker_class in ("gthread", "gevent"):
            # Keep-alive connections stay with the worker that accepted them: without a cap
            # one worker often takes nearly all of them and the other core idles. The cap
            # leaves room for `threads` more, so no answer is forced to close the connection.
            share = math.ceil(self.connections / self.workers) + self.threads
            if self.worker_class == "gthread":
                flags += ["--threads", str(self.threads)]
            flags += ["--worker-connections", str(share)]
        return [*flags, "--log-level", "warning"]

    @property
    def client_name(self) -> str:
        """The load generator, as the report names it."""
        if self.wrk:
            return f"wrk ({self.clients} thread{'s' * (self.clients > 1)})"
        return f"Python client ({self.clients} process{'es' * (self.clients > 1)})"


@dataclass(slots=True)
class Result:
    """Both phases against one server, with the CPU the measured phase cost."""

    label: str
    app: str
    warmup: Tally
    measured: Tally
    server_cpu: float
    postgres_cpu: float
    stalls: Stalls | None  # slow tenths of the measured phase and what the machine did then


def bench(label: str, app: str, options: Options, env: dict[str, str], workdir: Path) -> Result:
    """Warm one server up, then measure it."""
    port = free_port()
    env = {**env, "PUBLIC_BASE_URL": f"http://{HOST}:{port}"}
    replay = app == "hello:app"
    token = env["TWILIO_AUTH_TOKEN"]

    def load(duration: float, first: int, prebuilt: int) -> Tally:
        phase = Phase(
            port,
            token,
            options.connections,
            options.clients,
            duration,
            first,
            prebuilt,
            replay,
            options.rate,
        )
        return run_wrk(options.wrk, phase, workdir) if options.wrk else run_python(phase)

    with serving(app, port, options.gunicorn_flags, env) as server:
        note(f"{label}: gunicorn {app} on port {port}; warming up for {options.warmup:g} s")
        warm = load(
            options.warmup, 0, HELLO_PREBUILT if replay else math.ceil(5000 * options.warmup)
        )
        # Sign enough requests that signing stays out of the measured phase.
        needed = math.ceil(max(warm.rate * 2.5, 1000.0) * options.duration) + options.connections
        prebuilt = HELLO_PREBUILT if replay else min(MAX_PREBUILT, needed)
        note(f"{label}: {warm.rate:,.0f} req/s warming up; measuring for {options.duration:g} s")
        cpu, pg = server.cpu(), postgres_cpu()
        with Sampler() as sampler:
            measured = load(options.duration, MEASURED_CALLERS, prebuilt)
        cpu, pg = server.cpu() - cpu, postgres_cpu() - pg
    return Result(
        label, app, warm, measured, cpu, max(pg, 0.0), stalls(measured.ticks, sampler.deltas)
    )


def note(message: str) -> None:
    """Progress on stderr, so stdout holds only the report."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def per_answer_us(seconds: float, tally: Tally) -> str:
    """CPU seconds spread over the phase's answers, in microseconds."""
    return f"{seconds / tally.answers * 1e6:,.0f}" if tally.answers else "-"


def revision() -> str:
    """The checkout's commit (with -dirty for local changes), or "?" outside git."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "?"
    return done.stdout.strip() or "?"


def report(options: Options, hello: Result, webhook: Result, rows: int, load: str) -> int:
    """Print the markdown report; return the exit status the checks call for."""
    ratio = webhook.measured.rate / hello.measured.rate if hello.measured.rate else 0.0
    answered = webhook.warmup.ok + webhook.measured.ok
    rows_ok = rows == answered
    clean = all(t.clean for r in (hello, webhook) for t in (r.warmup, r.measured))
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    print(f"## Twilio voice webhook vs hello-world Flask ({time.strftime('%Y-%m-%d %H:%M')})\n")
    print(
        f"- machine: {os.cpu_count()} CPUs ({model.group(1) if model else '?'}), "
        f"load average before the run {load}; Python {sys.version.split()[0]}, "
        f"PostgreSQL {options.database.version()}"
    )
    print(
        f"- code: {revision()}; gunicorn flags, both servers: `{' '.join(options.gunicorn_flags)}`"
    )
    paced = f", paced at {options.rate:,.0f} requests a second in all" if options.rate else ""
    print(
        f"- load: {options.client_name}, {options.connections} persistent connections, one "
        f"request in flight each{paced}; {options.warmup:g} s warm-up, then "
        f"{options.duration:g} s measured per server, answers in flight at the deadline awaited\n"
    )
    print(
        "| server | answers | req/s | p50 ms | p99 ms | non-200 | wrong body | errors "
        "| server CPU µs/req | PostgreSQL CPU µs/req | client CPU µs/req |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in (hello, webhook):
        t = r.measured
        print(
            f"| {r.label} `{r.app}` | {t.answers:,} | {t.rate:,.0f} | {t.p50 * 1e3:.1f} "
            f"| {t.p99 * 1e3:.1f} | {t.non_200} | {t.wrong_body} | {t.errors} "
            f"| {per_answer_us(r.server_cpu, t)} | {per_answer_us(r.postgres_cpu, t)} "
            f"| {per_answer_us(t.client_cpu, t)} |"
        )
    ratio_ok = ratio >= options.min_ratio or bool(options.rate)
    if options.rate:
        print(f"\n- ratio webhook / hello: {ratio:.2f} (both paced: no target)")
    else:
        verdict = "met" if ratio_ok else "**not met**"
        target = f"target ≥ {options.min_ratio:g}: {verdict}"
        print(f"\n- ratio webhook / hello: **{ratio:.2f}** ({target})")
    p99_ms = webhook.measured.p99 * 1e3
    p99_ok = p99_ms < options.max_p99
    print(
        f"- webhook p99: {p99_ms:.1f} ms (target < {options.max_p99:g} ms: "
        + ("met" if p99_ok else "**not met**")
        + ")"
    )
    if not options.rate:
        print(f"- {bound(options, hello.measured, webhook.measured)}")
    hello_cpu, webhook_cpu = total_cpu_us(hello), total_cpu_us(webhook)
    print(
        f"- CPU per answer, server + PostgreSQL + client: hello {hello_cpu:,.0f} µs, webhook "
        f"{webhook_cpu:,.0f} µs; hello / webhook **{hello_cpu / webhook_cpu:.2f}**, the ratio "
        "both servers tend to when the machine is CPU-bound (it moves less with other load)"
    )
    print(f"- load average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for r in (hello, webhook):
        if r.stalls:
            print(f"- {r.label}, measured phase: {r.stalls.describe()}")
    print(
        f"- `calls` rows committed: {rows:,}; 200 answers from the webhook: {answered:,} "
        f"(warm-up {webhook.warmup.ok:,} + measured {webhook.measured.ok:,}): "
        + ("equal" if rows_ok else "**MISMATCH**")
    )
    for r in (hello, webhook):
        for phase, t in (("warm-up", r.warmup), ("measured", r.measured)):
            if not t.clean:
                print(
                    f"- {r.label} {phase}: non-200 statuses {t.statuses or '-'}, wrong body "
                    f"{t.wrong_body}, connection errors or unanswered requests {t.errors}"
                )
            if t.exhausted and phase == "measured":
                print(f"- {r.label}: the prebuilt requests ran out before the deadline")
    if not (clean and rows_ok):
        return 1
    return 0 if ratio_ok and p99_ok else 3


def bound(options: Options, hello: Tally, webhook: Tally) -> str:
    """What the p99 target asks of the throughput, by Little's law, against hello-world's.

    With every connection keeping one request in flight, the mean latency is connections /
    throughput. Keeping the run's shape (p99 / mean), a p99 under the target needs the rate
    worked out here; put beside hello-world's own rate on this machine, it shows whether the
    target can be met here at all.
    """
    if not (webhook.mean > 0 and webhook.rate and hello.rate):
        return "latency bound: not measured"
    shape = webhook.p99 / webhook.mean
    needed = options.connections * shape / (options.max_p99 / 1e3)
    return (
        f"latency bound: {options.connections} connections / {webhook.rate:,.0f} req/s = "
        f"{options.connections / webhook.rate * 1e3:.1f} ms mean (measured "
        f"{webhook.mean * 1e3:.1f}); p99 = {shape:.2f} × mean, so p99 < {options.max_p99:g} ms "
        f"needs ≥ {needed:,.0f} req/s, **{needed / hello.rate:.2f} of hello-world's rate** "
        f"in this run (hello's own p99 {hello.p99 * 1e3:.1f} ms)"
    )


def total_cpu_us(result: Result) -> float:
    """Server, PostgreSQL and load-generator CPU per measured answer, in microseconds."""
    t = result.measured
    seconds = result.server_cpu + result.postgres_cpu + t.client_cpu
    return seconds / t.answers * 1e6 if t.answers else math.nan


def parse_args(argv: Sequence[str] | None) -> Options:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        description="Benchmark the Twilio voice webhook against a hello-world Flask route."
    )
    parser.add_argument("--duration", type=float, help="measured seconds per server (12)")
    parser.add_argument("--json", type=Path, help="also write the figures here (for charts)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per server (3)")
    parser.add_argument("--quick", action="store_true", help="1 s warm-up and 3 s measured")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker (4)")
    parser.add_argument(
        "--worker-class",
        choices=("gevent", "gthread", "sync"),
        default="gevent",
        help="gunicorn worker class for both servers: gevent, as deployed (docker-compose.yml)",
    )
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk when installed (auto), else the Python client",
    )
    parser.add_argument(
        "--clients", type=int, default=1, help="wrk threads or Python client processes (1)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="pace both servers at this many requests a second in all (wrk only): the latency "
        "below saturation, where the ratio means nothing; 0 (default) sends as fast as answered",
    )
    parser.add_argument("--min-ratio", type=float, default=0.6, help="target webhook / hello")
    parser.add_argument(
        "--max-p99", type=float, default=25.0, help="target webhook p99 latency, ms (25)"
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432",
        help="PostgreSQL server URL without a database name (127.0.0.1 only)",
    )
    parser.add_argument(
        "--database", default="signup_bench", help="dropped and created afresh for the run"
    )
    parser.add_argument(
        "--keep-database", action="store_true", help="leave the database for inspection"
    )
    args = parser.parse_args(argv)
    server = args.postgres.rstrip("/")
    if not server.startswith("postgresql://") or urlsplit(server).hostname not in (
        "127.0.0.1",
        "localhost",
    ):
        parser.error("--postgres must be a postgresql:// URL on 127.0.0.1")
    if "bench" not in args.database or not re.fullmatch(r"\w+", args.database):
        parser.error("--database must be a plain name containing 'bench': the run drops it")
    if not 1 <= args.clients <= args.connections or args.workers < 1 or args.threads < 1:
        parser.error("need 1 <= --clients <= --connections, --workers >= 1, --threads >= 1")
    wrk = shutil.which("wrk") if args.client != "python" else None
    if args.client == "wrk" and not wrk:
        parser.error("wrk is not installed (apt-get install -y wrk)")
    if args.rate and not wrk:
        parser.error("--rate needs wrk (apt-get install -y wrk)")
    if args.rate < 0:
        parser.error("--rate must be 0 or more")
    if args.client == "auto" and not wrk:
        note("wrk not found: using the Python client, which understates the hello server")
    duration = args.duration or (3.0 if args.quick else 12.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    return Options(
        duration=duration,
        warmup=max(warmup, 0.5),
        connections=args.connections - args.connections % args.clients if wrk else args.connections,
        workers=args.workers,
        threads=args.threads,
        worker_class=args.worker_class,
        clients=args.clients,
        wrk=wrk,
        min_ratio=args.min_ratio,
        max_p99=args.max_p99,
        database=Database(server, args.database),
        keep_database=args.keep_database,
        json_path=args.json,
        rate=args.rate,
    )


def _interrupted(signum: int, _frame: object) -> None:
    """Turn SIGTERM into KeyboardInterrupt so that servers and database are cleaned up."""
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def prepared(options: Options) -> Iterator[tuple[dict[str, str], Path]]:
    """The servers' environment and a work folder, on a fresh migrated benchmark database.

    The database is dropped afterwards unless --keep-database; SIGTERM cleans up as Ctrl-C does.
    """
    signal.signal(signal.SIGTERM, _interrupted)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="signup-bench-")))
        env = {
            **os.environ,
            "DATABASE_URL": options.database.url,
            "SIGNUP_ENV": "production",
            "SECRET_KEY": "bench",
            "TWILIO_AUTH_TOKEN": secrets.token_hex(16),
            "RELAY_NUDGE": "false",
            "LOG_LEVEL": "WARNING",
            "SIGNUP_INSTANCE_PATH": str(workdir / "instance"),
        }
        note(f"database {options.database.name}: recreating and migrating")
        options.database.recreate()
        if not options.keep_database:
            stack.callback(options.database.drop)
        migrate(env)
        yield env, workdir


def main(argv: Sequence[str] | None = None) -> int:
    """Set up the database, benchmark both servers, check the rows, print the report."""
    options = parse_args(argv)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with prepared(options) as (env, workdir):
        hello = bench("hello", "hello:app", options, env, workdir)
        webhook = bench("webhook", "signup:create_app()", options, env, workdir)
        rows = options.database.count_calls()
        status = report(options, hello, webhook, rows, load)
        if options.json_path:
            write_json(options.json_path, hello, webhook, rows)
    return status


def figures(r: Result) -> dict[str, float | None]:
    """One server's measured figures, for the JSON files bench/charts.py reads."""
    t = r.measured
    return {
        "req_s": t.rate,
        "p50_ms": t.p50 * 1e3,
        "p99_ms": t.p99 * 1e3,
        "server_cpu_us": r.server_cpu / t.answers * 1e6 if t.answers else math.nan,
        "postgres_cpu_us": r.postgres_cpu / t.answers * 1e6 if t.answers else math.nan,
        "slow_tenths": r.stalls.slow if r.stalls else None,  # None: not measured
        "slow_steal_pct": r.stalls.slow_share.get("steal") if r.stalls else None,
        "rest_steal_pct": r.stalls.rest_share.get("steal") if r.stalls else None,
    }


def write_json(path: Path, hello: Result, webhook: Result, rows: int) -> None:
    """The measured figures of both servers, for bench/charts.py."""
    data = {
        "hello": figures(hello),
        "webhook": figures(webhook),
        "ratio": webhook.measured.rate / hello.measured.rate if hello.measured.rate else 0.0,
        "rows_match": rows == webhook.warmup.ok + webhook.measured.ok,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def run(entry: Callable[[], int]) -> NoReturn:
    """Exit with what `entry` returns; Ctrl-C (or SIGTERM) exits 130 once all is cleaned up."""
    try:
        sys.exit(entry())
    except KeyboardInterrupt:
        note("interrupted: servers stopped, database dropped")
        sys.exit(130)


if __name__ == "__main__":
    run(main)
