"""The embedded broker: readers in other processes only ever see whole messages."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

from kombu import Connection
from kombu.transport import filesystem

from signup.devbroker import TRANSPORT

BIG = "x" * 200_000  # a payload whose write is not one system call's worth of time


def _connection(folder: Path, transport: Any) -> Connection:
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    return Connection("filesystem://localhost/", transport=transport, transport_options=options)


def _publish(folder: str, transport: Any, count: int) -> None:
    with _connection(Path(folder), transport) as conn:
        channel = conn.default_channel
        for n in range(count):
            channel._put("intake", {"n": n, "body": BIG})


def _read_all(folder: Path, transport: Any, expected: int) -> tuple[int, int]:
    """Read until `expected` whole messages arrived; count the torn ones on the way."""
    whole = torn = 0
    with _connection(folder, transport) as conn:
        channel = conn.default_channel
        while whole < expected:
            try:
                message = channel._get("intake")
            except filesystem.Empty:
                continue
            except ValueError:  # JSONDecodeError: a file taken while still being written
                torn += 1
                continue
            assert message["body"] == BIG
            whole += 1
    return whole, torn


def _race(folder: Path, transport: Any, publishers: int, each: int) -> tuple[int, int]:
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(target=_publish, args=(str(folder), transport, each))
        for _ in range(publishers)
    ]
    for writer in writers:
        writer.start()
    try:
        whole, torn = _read_all(folder, transport, publishers * each)
    finally:
        for writer in writers:
            writer.join(timeout=60)
    return whole, torn


def test_messages_from_several_publishing_processes_arrive_whole(tmp_path: Path) -> None:
    whole, torn = _race(tmp_path, TRANSPORT, publishers=3, each=150)
    assert (whole, torn) == (450, 0)
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]
