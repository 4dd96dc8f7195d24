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
