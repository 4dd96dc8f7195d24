"""Send SMS through Twilio's Messages API: one form POST on a pooled session, JSON read once.

twilio-python's resource layer cost about 1 ms of CPU per SMS (building the client request,
parsing the whole Message resource); a sending worker needs only the SID and status, and the
headers (Retry-After). Errors keep twilio-python's meaning: the JSON `code` (else the HTTP
status) and "Unable to create record: <message>".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signup.messaging.providers.base import OutboundSms, SendError, SendResult, callback_url
from signup.messaging.providers.http import Client, Reply

TRANSIENT_CODES = frozenset({20429})
OPTED_OUT_CODES = frozenset({21610})
API_VERSION = "2010-04-01"


def classify(status: int, code: int | None, message: str, wait: float | None = None) -> SendError:
    """Map a Twilio REST error to retry-or-not: 429, 20429 and 5xx are worth retrying."""
    transient = status == 429 or status >= 500 or code in TRANSIENT_CODES
    return SendError(
        f"twilio {status}: {message}"[:255],
        code=code,
        transient=transient,
        opted_out=code in OPTED_OUT_CODES,
        retry_after=wait if transient else None,
    )


def error(reply: Reply) -> SendError:
    """The SendError for a non-2xx answer, read as twilio-python reads it."""
    message = "Unable to create record"
    code: int | None = reply.status
    payload = reply.payload
    if isinstance(payload, dict):
        if "message" in payload:
            message = f"{message}: {payload['message']}"
        raw = payload.get("code", reply.status)
        try:
            code = int(raw) if raw is not None else None
        except (TypeError, ValueError):
            code = None
    return classify(reply.status, code, message, reply.retry_after)


class TwilioSender:
    """An SmsSender for Twilio's Messages.json; one session shared by every thread of a worker.

    The API base URL is configurable for fakes and staging.
    """

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
        self._url = f"{base_url.rstrip('/')}/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        self._http = Client("twilio", (account_sid, auth_token))
        self.timeout = timeout
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
        data = {"To": sms.to, "Body": sms.body}
        if self._service:
            data["MessagingServiceSid"] = self._service
        else:
            data["From"] = self._from or ""
        if self._status_callback:
            data["StatusCallback"] = self._status_callback
        reply = self._http.post(self._url, data, self.timeout)
        if not 200 <= reply.status < 300:
            raise error(reply)
        try:
            payload = reply.payload
            sid, status = payload["sid"], payload.get("status")
            if not isinstance(sid, str) or not sid:
                raise TypeError(sid)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # Accepted (2xx), but we cannot tell its SID: it may exist, so never send it again.
            raise SendError(
                "twilio answered without a message SID: it may have the message; review",
                transient=False,
                ambiguous=True,
            ) from exc
        return SendResult(provider_message_id=sid, status=str(status or "queued"))
