"""A fake of Twilio's Messages API that takes a while to answer and notes when each request came.

For throughput and rate-limit checks (bench/sending.py, tests/e2e/test_sending_threads.py):
HTTP/1.1 persistent connections as the real API has, a thread per connection, every request
answered 201 after `latency` seconds, and only (arrival time, recipient) kept per request.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


class _Server(ThreadingHTTPServer):
    """A thread per connection, with a listen backlog for many clients connecting at once."""

    request_queue_size = 1024
    daemon_threads = True


class SlowTwilio:
    """Serve on 127.0.0.1 in a thread; call start() for the base URL and stop() when done."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.arrivals: list[tuple[float, str]] = []  # (time.monotonic(), To) per request
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections = 0  # client connections opened (persistent ones are reused)
        self._lock = threading.Lock()

    def start(self) -> str:
        """Start serving and return the base URL."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, as a real server's

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake.connections += 1

            def do_POST(self) -> None:
                arrived = time.monotonic()
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                to = form.get("To", [""])[0]
                with fake._lock:
                    fake.arrivals.append((arrived, to))
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                time.sleep(fake.latency)
                payload = json.dumps(
                    {"sid": "SM" + secrets.token_hex(16), "status": "queued", "to": to}
                ).encode()
                try:
                    self.send_response(201)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self) -> list[tuple[float, str]]:
        """The requests received so far, in arrival order."""
        with self._lock:
            return sorted(self.arrivals)


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The largest number of the (sorted) times inside any half-open interval of `window` s."""
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
