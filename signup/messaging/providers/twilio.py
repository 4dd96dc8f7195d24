"""Send SMS through Twilio's Messages API with twilio-python."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from signup.messaging.providers.base import (
    OutboundSms,
    SendError,
    SendResult,
    callback_url,
    http_session,
    network_error,
)

TRANSIENT_CODES = frozenset({20429})
OPTED_OUT_CODES = frozenset({21610})
JSON_TYPES = ("application/json", "application/scim+json")


def classify(exc: TwilioRestException) -> SendError:
    """Map a Twilio REST error to retry-or-not: 429, 20429 and 5xx are worth retrying."""
    code = int(exc.code) if exc.code is not None else None
    transient = exc.status == 429 or exc.status >= 500 or code in TRANSIENT_CODES
    return SendError(
        f"twilio {exc.status}: {exc.msg}"[:255],
        code=code,
        transient=transient,
        opted_out=code in OPTED_OUT_CODES,
    )


class ThreadSafeHttpClient(HttpClient):
    """twilio-python's HTTP client interface over one pooled session, callable from many threads.

    twilio's own TwilioHttpClient stores each answer on the shared client and returns that
    attribute, so two threads sending at once can get each other's answer (and Message SID);
    its https pool also keeps only min(32, cpus + 4) connections. This one returns its own answer.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__(logging.getLogger("twilio.http_client"), False, timeout)
        self.session = http_session()

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Send one request and return its answer (no state kept between calls)."""
        as_json = (headers or {}).get("Content-Type") in JSON_TYPES
        response = self.session.request(
            method.upper(),
            url,
            params=params,  # type: ignore[arg-type]  # twilio passes plain string values
            data=None if as_json else data,
            json=data if as_json else None,
            headers=headers,
            auth=auth,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=allow_redirects,
        )
        return Response(int(response.status_code), response.text, response.headers)


class TwilioSender:
    """An SmsSender over twilio-python's Client; its API base URL is configurable for fakes."""

    name = "twilio"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None,
        messaging_service_sid: str | None,
        base_url: str = "https://api.twilio.com",
        timeout: float = 10.0,
        status_callback: str | None = None,
    ) -> None:
        if not (from_number or messaging_service_sid):
            raise ValueError("set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
        self._client = Client(account_sid, auth_token, http_client=ThreadSafeHttpClient(timeout))
        self._client.api.base_url = base_url.rstrip("/")
        self.account = account_sid
        self._from = from_number
        self._service = messaging_service_sid
        self._status_callback = status_callback

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TwilioSender:
        """Build from app config (TWILIO_* variables)."""
        if not (config.get("TWILIO_ACCOUNT_SID") and config.get("TWILIO_AUTH_TOKEN")):
            raise ValueError("SMS_PROVIDER=twilio needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
        return cls(
            account_sid=config["TWILIO_ACCOUNT_SID"],
            auth_token=config["TWILIO_AUTH_TOKEN"],
            from_number=config.get("TWILIO_FROM_NUMBER"),
            messaging_service_sid=config.get("TWILIO_MESSAGING_SERVICE_SID"),
            base_url=config.get("TWILIO_API_BASE_URL") or "https://api.twilio.com",
            timeout=float(config.get("SMS_HTTP_TIMEOUT", 10.0)),
            status_callback=callback_url(config, "/webhooks/twilio/message-status"),
        )

    def send(self, sms: OutboundSms) -> SendResult:
        """Create the message at Twilio; raise SendError saying whether to retry."""
        kwargs: dict[str, Any] = {"to": sms.to, "body": sms.body}
        if self._service:
            kwargs["messaging_service_sid"] = self._service
        else:
            kwargs["from_"] = self._from
        if self._status_callback:
            kwargs["status_callback"] = self._status_callback
        try:
            message = self._client.messages.create(**kwargs)
        except TwilioRestException as exc:
            raise classify(exc) from exc
        except requests.RequestException as exc:
            raise network_error(exc, "twilio") from exc
        except TwilioException as exc:  # an answer we could not read: it may have been created
            raise SendError(f"twilio error: {exc}"[:255], transient=False, ambiguous=True) from exc
        return SendResult(provider_message_id=message.sid, status=message.status or "queued")
