"""A web process carries no HTTP client library: it never sends SMS (about 5 MB each)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SENDING_ONLY = ("requests", "urllib3", "charset_normalizer", "idna", "certifi")


def test_create_app_builds_the_sender_without_importing_requests() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from signup import create_app
        app = create_app({{
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "SECRET_KEY": "x" * 40,
            "SMS_PROVIDER": "twilio",
            "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
            "TWILIO_AUTH_TOKEN": "token",
            "TWILIO_FROM_NUMBER": "+15005550006",
        }})
        assert app.extensions["sms_sender"].name == "twilio"
        app.test_client().get("/healthz")
        print(sorted(m for m in sys.modules if m.split(".")[0] in {SENDING_ONLY!r}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
