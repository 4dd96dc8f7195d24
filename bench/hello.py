"""The hello-world baseline for bench/webhook.py: Flask answering the webhook's TwiML, no work."""

from __future__ import annotations

from flask import Flask, Response

# The exact body signup's Twilio webhook answers with (bench/webhook.py checks both servers).
REJECT_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy" /></Response>'

app = Flask(__name__)


@app.post("/webhooks/twilio/voice")
def voice() -> Response:
    """Answer like the real webhook without verifying, parsing or recording anything."""
    return Response(REJECT_TWIML, status=200, mimetype="text/xml")
