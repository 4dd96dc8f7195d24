"""Under gevent, a login's Argon2 runs on a real thread: the webhooks of the process go on."""

from __future__ import annotations

import json
import subprocess
import sys

from signup.greenlets import cooperative, off_loop

SCRIPT = """
from gevent import monkey

monkey.patch_all()

import json
import time

import gevent

from signup.greenlets import cooperative, off_loop
from signup.users.services import HASHER

stored = HASHER.hash("correct horse battery")
ticks = []


def ticker():
    while True:
        ticks.append(time.monotonic())
        gevent.sleep(0.002)


gevent.spawn(ticker)
gevent.sleep(0.01)
before = len(ticks)
direct = HASHER.verify(stored, "correct horse battery")
during_direct = len(ticks) - before
before = len(ticks)
pooled = off_loop(HASHER.verify, stored, "correct horse battery")
during_pooled = len(ticks) - before
print(json.dumps([cooperative(), direct, pooled, during_direct, during_pooled]))
"""


def test_off_loop_keeps_the_event_loop_running() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    patched, direct, pooled, during_direct, during_pooled = json.loads(done.stdout)
    assert patched and direct and pooled
    assert during_direct == 0  # the plain call held the loop for the whole hash
    assert during_pooled >= 3  # other greenlets ran while the pool's thread hashed


def test_without_gevent_it_is_a_plain_call() -> None:
    assert not cooperative()
    assert off_loop(sum, [1, 2, 3]) == 6


FAILING = """
from gevent import monkey

monkey.patch_all()

import gevent

from signup.greenlets import off_loop
from signup.users.services import HASHER

stored = HASHER.hash("correct horse battery")
try:
    off_loop(HASHER.verify, stored, "a wrong guess")
except Exception as exc:
    print(type(exc).__name__)
"""

UNCAUGHT = """
from gevent import monkey

monkey.patch_all()

import gevent

from signup import logs

logs.configure("json", "INFO")


def caller_error():
    raise ValueError("no campaign for caller +91 98765 43210")


gevent.spawn(caller_error).join()  # a greenlet's
try:
    gevent.get_hub().threadpool.spawn(caller_error).get()  # a pool thread's
except ValueError:
    pass
"""


def test_an_exception_in_the_pool_is_raised_here_and_printed_nowhere() -> None:
    """gevent's hub would print it to stderr, past the logs' redaction."""
    done = subprocess.run(
        [sys.executable, "-c", FAILING], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "VerifyMismatchError"
    assert done.stderr == ""


def test_uncaught_greenlet_errors_are_logged_masked() -> None:
    """Whatever the hub would print goes to the logs as one masked JSON line per report."""
    done = subprocess.run(
        [sys.executable, "-c", UNCAUGHT], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stderr.splitlines()
    records = [json.loads(line) for line in lines]  # every line is a record, no raw traceback
    assert [r["event"] for r in records] == ["greenlet.error", "greenlet.error"]
    for record in records:
        assert "ValueError: no campaign for caller +XX XXXXX XXXXX" in record["report"]
    assert "98765" not in done.stderr
