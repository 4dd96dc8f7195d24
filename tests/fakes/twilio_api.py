"""A local fake of Twilio's Messages API: records every request, answers as scripted."""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    status: int | None = None  # what the fake answered (or began to); None: dropped unanswered


@dataclass
class Scripted:
    """One scripted answer: an HTTP status and a JSON body, or a broken connection.

    drop: close without answering; cut: send the status, headers and half the body, then close
    (the message was created, but the client never reads the whole answer).
    """

    status: int = 201
    body: dict[str, Any] | None = None
    delay: float = 0.0
    drop: bool = False
    cut: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    """A listen backlog like a real API's: a threads worker opens a hundred connections at
    once, and the standard 5 would reset some before the fake ever saw them."""

    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client killed mid-connection (the fault tests do it) is expected, not an error."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@dataclass
class FakeTwilio:
    """Serve on 127.0.0.1 in a thread; answers scripted for the recipient (`To`), then
    `script`, come first, then success."""

    requests: list[Recorded] = field(default_factory=list)
    script: deque[Scripted] = field(default_factory=deque)
    by_recipient: dict[str, deque[Scripted]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        """Start serving and return the base URL."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as the real API: a new connection per SMS would leave tens of
            # thousands of sockets in TIME_WAIT during a soak and run out of local ports.
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length).decode()
                form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                recorded = Recorded("POST", self.path, dict(self.headers.items()), form)
                with fake.lock:
                    fake.requests.append(recorded)
                    answer = fake.next_answer(form.get("To", ""))
                    if not answer.drop:
                        recorded.status = answer.status
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                body = answer.body if answer.body is not None else fake.message(form)
                payload = json.dumps(body).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if answer.cut:
                        self.wfile.write(payload[: len(payload) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.close()
                        return
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: exactly what a slow provider causes

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def next_answer(self, recipient: str) -> Scripted:
        """The answer for this request: the recipient's script, the shared one, else success."""
        own = self.by_recipient.get(recipient)
        if own:
            return own.popleft()
        return self.script.popleft() if self.script else Scripted()

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def message(form: dict[str, str]) -> dict[str, Any]:
        """A 201 body shaped like Twilio's Message resource."""
        return {
            "sid": "SM" + secrets.token_hex(16),
            "status": "queued",
            "to": form.get("To"),
            "from": form.get("From"),
            "body": form.get("Body"),
            "num_segments": "1",
            "error_code": None,
            "error_message": None,
        }

    @staticmethod
    def error(status: int, code: int, message: str = "error") -> Scripted:
        """A Twilio REST error answer."""
        return Scripted(
            status,
            {
                "code": code,
                "message": message,
                "status": status,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
            },
        )

    def sms_requests(self) -> list[Recorded]:
        """The Messages.json requests received so far."""
        with self.lock:
            return [r for r in self.requests if r.path.endswith("/Messages.json")]

    def accepted(self, recipient: str) -> int:
        """How many messages to `recipient` the fake accepted (2xx), read by the client or not."""
        return sum(
            1
            for r in self.sms_requests()
            if r.form.get("To") == recipient and r.status is not None and 200 <= r.status < 300
        )


class FakeExotel(FakeTwilio):
    """A local fake of Exotel's SMS API: the same recorder, Exotel's response shapes."""

    @staticmethod
    def message(form: dict[str, str]) -> dict[str, Any]:
        """A success body shaped like Exotel's SMSMessage."""
        return {
            "SMSMessage": {
                "Sid": secrets.token_hex(16),
                "Status": "queued",
                "To": form.get("To"),
                "From": form.get("From"),
                "Body": form.get("Body"),
                "DetailedStatus": "PENDING_TO_OPERATOR",
            }
        }

    @staticmethod
    def error(status: int, code: int, message: str = "error") -> Scripted:
        """An Exotel REST error answer."""
        return Scripted(
            status, {"RestException": {"Status": status, "Message": message, "Code": code}}
        )

    def sms_requests(self) -> list[Recorded]:
        """The Sms/send requests received so far."""
        with self.lock:
            return [r for r in self.requests if r.path.endswith("/Sms/send.json")]
