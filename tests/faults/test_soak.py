"""The soak's short form in CI: 2,000 calls from 600 callers through gunicorn and Celery."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from flask import Flask

from tests.e2e.conftest import ROOT
from tests.helpers import DATABASE_URL, REDIS_URL

pytestmark = pytest.mark.e2e


def load_soak() -> object:
    spec = importlib.util.spec_from_file_location("soak", ROOT / "bench" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_nothing_lost_nothing_doubled(committed: Flask, tmp_path: Path) -> None:
    soak = load_soak()
    result = soak.run(
        calls=2000,
        callers=600,
        rate=200,
        database_url=DATABASE_URL,  # type: ignore[attr-defined]
        redis_url=REDIS_URL,
        folder=tmp_path,
        timeout=240,
    )
    assert result.answered == result.call_rows == 2000
    assert result.volunteers == 600 and result.counts_match
    assert result.sms_sent == result.sms_requests == 600 and result.duplicate_sms == 0
    assert result.exact
