"""The admin in a real browser: Playwright drives Debian's Chromium against a live server.

Screenshots go to $SCREENSHOTS_DIR when set (docs/screenshots is made that way), else to a
temporary folder.
"""

from __future__ import annotations

import csv
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from signup.calls import services as calls
from signup.extensions import db
from signup.users import services as users
from signup.volunteers.models import Volunteer
from tests.integration.factories import campaign, inbound

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"
PEOPLE = [
    ("+919911278181", "आशा देवी", "Bihar", "Patna"),
    ("+919911278182", "Ravi Kumar", "Bihar", "Gaya"),
    ("+919911278183", "Meena", "Kerala", "Kochi"),
    ("+919911278184", '=HYPERLINK("http://x","y")', "Uttar Pradesh", "Lucknow"),
]


@pytest.fixture
def live(committed: Flask) -> Iterator[str]:
    """Seeded data and the app served on a local port."""
    jan = campaign("jan", "+918047259725", "+918047259726", name="Jan Seva Abhiyan")
    campaign("yuva", "+918047250000", None, name="Yuva Shakti")
    for phone, name, state, district in PEOPLE:
        calls.process_call(inbound(phone, jan.number).id)
        db.session.query(Volunteer).filter_by(phone=phone).update(
            {"name": name, "state": state, "district": district}
        )
    calls.process_call(inbound(PEOPLE[0][0], "+918047250000").id)
    users.create_user(email="organiser@example.org", role="organiser", password=PASSWORD)
    db.session.commit()
    server = make_server("127.0.0.1", 0, committed, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (make test installs it)",
)
def test_organiser_logs_in_searches_filters_and_exports(
    live: str, shots: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        page.goto(f"{live}/admin/volunteers")
        assert "/admin/login" in page.url
        page.screenshot(path=str(shots / "login-desktop.png"))
        page.fill("#email", "organiser@example.org")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live}/admin/volunteers")
        assert page.locator("tbody tr").count() == 4
        page.screenshot(path=str(shots / "volunteers-desktop.png"), full_page=True)

        page.fill("input[name=q]", "099112 78183")  # a number in another format
        page.click("form.filters button[type=submit]")
        assert page.locator("tbody tr").count() == 1
        assert "Meena" in page.inner_text("tbody")

        page.fill("input[name=q]", "")
        page.select_option("select[name=campaign]", "yuva")
        page.click("form.filters button[type=submit]")
        assert page.locator("tbody tr").count() == 1
        assert "आशा देवी" in page.inner_text("tbody")

        page.fill("input[name=state]", "Bihar")
        page.select_option("select[name=campaign]", "")
        page.click("form.filters button[type=submit]")
        assert page.locator("tbody tr").count() == 2
        with page.expect_download() as download_info:
            page.click("text=Export CSV")
        target = tmp_path / "export.csv"
        download_info.value.save_as(target)
        raw = target.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
        assert sorted(r["phone"] for r in rows) == ["+919911278181", "+919911278182"]
        assert {r["name"] for r in rows} == {"आशा देवी", "Ravi Kumar"}

        page.goto(f"{live}/admin/volunteers")
        page.click("text=+919911278181")
        assert "Consent history" in page.content()
        page.screenshot(path=str(shots / "volunteer-desktop.png"), full_page=True)
        page.goto(f"{live}/admin/")
        page.screenshot(path=str(shots / "dashboard-desktop.png"), full_page=True)

        phone = browser.new_page(viewport={"width": 360, "height": 740})
        phone.context.add_cookies(page.context.cookies())
        for name, path in (("dashboard", "/admin/"), ("volunteers", "/admin/volunteers")):
            phone.goto(f"{live}{path}")
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"{name} scrolls sideways on a phone ({width}px)"
            phone.screenshot(path=str(shots / f"{name}-phone.png"), full_page=True)
        browser.close()
