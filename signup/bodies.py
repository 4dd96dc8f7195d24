"""Request body limits: MAX_REQUEST_BYTES (webhooks' 64 KB) everywhere, unless a view names its own.

Flask checks the limit when the body is first read, which for a form is CSRF's check, before
any view or blueprint hook runs; so the limit is decided here, by the matched route's view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import flask
from flask import current_app, has_app_context

F = TypeVar("F", bound=Callable[..., object])
FORM_OVERHEAD = 64 * 1024  # multipart boundaries, headers and the CSRF field around the file


def body_limit(setting: str) -> Callable[[F], F]:
    """Let this view's requests carry up to the config `setting` bytes (plus form overhead)."""

    def decorate(view: F) -> F:
        view.body_limit_setting = setting  # type: ignore[attr-defined]
        return view

    return decorate


class Request(flask.Request):
    """A request whose body limit is the matched view's `body_limit`, else MAX_CONTENT_LENGTH."""

    @property
    def max_content_length(self) -> int | None:
        """The most bytes this request may send (413 beyond them)."""
        if self._max_content_length is None and self.url_rule is not None and has_app_context():
            view = current_app.view_functions.get(self.url_rule.endpoint)
            setting = getattr(view, "body_limit_setting", None)
            if setting is not None:
                return int(current_app.config[setting]) + FORM_OVERHEAD
        return super().max_content_length

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        self._max_content_length = value
