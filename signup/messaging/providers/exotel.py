"""Send SMS through Exotel's API with the DLT fields Indian operators require."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signup.messaging import segments
from signup.messaging.models import MessageStatus
from signup.messaging.providers.base import OutboundSms, SendError, SendResult, callback_url
from signup.messaging.providers.http import Client, Reply


def _error(reply: Reply) -> SendError:
    """Map an Exotel error answer to retry-or-not: 429 and 5xx are worth retrying."""
    code: int | None = None
    message = reply.text[:200]
    try:
        payload = reply.payload.get("RestException", {})
        message = str(payload.get("Message", message))
        raw_code = payload.get("Code")
        code = int(raw_code) if raw_code not in (None, "") else None
    except (ValueError, AttributeError, TypeError):
        pass
    transient = reply.status == 429 or reply.status >= 500
    return SendError(
        f"exotel {reply.status}: {message}"[:255],
        code=code,
        transient=transient,
        retry_after=reply.retry_after if transient else None,
    )


class ExotelSender:
    """An SmsSender for Exotel's `/v1/Accounts/<sid>/Sms/send`; the base URL is configurable."""

    name = "exotel"

    def __init__(
        self,
        *,
        account_sid: str,
        api_key: str,
        api_token: str,
        base_url: str = "https://api.exotel.com",
        sms_type: str = "transactional",
        timeout: float = 10.0,
        status_callback: str | None = None,
    ) -> None:
        self.account = account_sid
        self._url = f"{base_url.rstrip('/')}/v1/Accounts/{account_sid}/Sms/send.json"
        self._http = Client("exotel", (api_key, api_token))
        self._sms_type = sms_type
        self._timeout = timeout
        self._status_callback = status_callback

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ExotelSender:
        """Build from app config (EXOTEL_* variables)."""
        needed = ("EXOTEL_ACCOUNT_SID", "EXOTEL_API_KEY", "EXOTEL_API_TOKEN")
        missing = [name for name in needed if not config.get(name)]
        if missing:
            raise ValueError(f"SMS_PROVIDER=exotel needs {', '.join(missing)}")
        token = config.get("EXOTEL_WEBHOOK_TOKEN")
        return cls(
            account_sid=config["EXOTEL_ACCOUNT_SID"],
            api_key=config["EXOTEL_API_KEY"],
            api_token=config["EXOTEL_API_TOKEN"],
            base_url=config.get("EXOTEL_API_BASE_URL") or "https://api.exotel.com",
            sms_type=config.get("EXOTEL_SMS_TYPE") or "transactional",
            timeout=float(config.get("SMS_HTTP_TIMEOUT", 10.0)),
            status_callback=callback_url(config, f"/webhooks/exotel/{token}/sms-status")
            if token
            else None,
        )

    def send(self, sms: OutboundSms) -> SendResult:
        """Post the message with its DLT entity, header and template; raise SendError."""
        if sms.dlt is None:
            raise SendError(
                "no DLT registration for this message (set the campaign's DLT "
                "entity, header and template)",
                transient=False,
            )
        data = {
            "From": sms.dlt.header,
            "To": sms.to,
            "Body": sms.body,
            "DltEntityId": sms.dlt.entity_id,
            "DltTemplateId": sms.dlt.template_id,
            "SmsType": self._sms_type,
        }
        if segments.count(sms.body).encoding == "UCS-2":
            data["EncodingType"] = "unicode"
        if self._status_callback:
            data["StatusCallback"] = self._status_callback
        reply = self._http.post(self._url, data, self._timeout)
        if reply.status >= 400:  # as requests' `ok`: a 3xx that was not followed is read too
            raise _error(reply)
        try:
            message = reply.payload["SMSMessage"]
            return SendResult(
                provider_message_id=str(message["Sid"]),
                status=str(message.get("Status") or "queued"),
            )
        except (ValueError, KeyError, TypeError) as exc:  # accepted, but we cannot tell its id
            raise SendError(
                "exotel answered without an SMS id", transient=False, ambiguous=True
            ) from exc


_EXOTEL_STATUS = {
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "failed": MessageStatus.FAILED,
    "failed_dnd": MessageStatus.FAILED,
    "expired": MessageStatus.UNDELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
}


def exotel_status(raw: str) -> tuple[MessageStatus | None, bool]:
    """Map Exotel's Status to ours (None for in-flight ones), and whether it is a DND failure."""
    value = raw.strip().lower()
    return _EXOTEL_STATUS.get(value), value == "failed_dnd"
