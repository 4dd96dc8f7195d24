"""Request and task ids for the logs: set per request and per Celery task, read by signup.logs.

A request keeps the caller's `X-Request-Id` when it is a short token of safe characters (so a
proxy's id follows the request through), else gets a fresh one; the id is echoed in the
response. A Celery task's lines carry its task id. Both cost a few microseconds.
"""

from __future__ import annotations

import random
import re
from contextvars import Token
from typing import Any

from celery import signals
from flask import Flask, Response, request

from signup import logs

HEADER = "X-Request-Id"
_ENVIRON_KEY = "HTTP_X_REQUEST_ID"  # WSGI name of the header: a dict lookup, no parsing
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_task_tokens: dict[str, Token[str | None]] = {}


def incoming_id(raw: str | None) -> str:
    """The caller's request id when it is a sane short token, else a new random one."""
    if raw and _SANE.fullmatch(raw):
        return raw
    # Not a secret, only unique: Python's generator is reseeded in every forked child and costs
    # a tenth of a microsecond, where os.urandom costs microseconds per request.
    return f"{random.getrandbits(64):016x}"


def _begin_request() -> None:
    logs.request_id.set(incoming_id(request.environ.get(_ENVIRON_KEY)))


def _echo_request_id(response: Response) -> Response:
    rid = logs.request_id.get()
    if rid is not None:
        response.headers[HEADER] = rid
    return response


def _end_request(_exc: BaseException | None) -> None:
    logs.request_id.set(None)


def _task_started(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _task_tokens[task_id] = logs.task_id.set(task_id)


def _task_finished(task_id: str | None = None, **_: Any) -> None:
    token = _task_tokens.pop(task_id, None) if task_id else None
    if token is None:
        return
    try:
        logs.task_id.reset(token)
    except ValueError:  # set in another context (a thread pool): just clear it
        logs.task_id.set(None)


def init_app(app: Flask) -> None:
    """Tag each request's log lines with its id, echo the id, and tag Celery task lines."""
    app.before_request(_begin_request)
    app.after_request(_echo_request_id)
    app.teardown_request(_end_request)
    signals.task_prerun.connect(_task_started, weak=False, dispatch_uid="signup.logcontext.pre")
    signals.task_postrun.connect(_task_finished, weak=False, dispatch_uid="signup.logcontext.post")
