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
from signup.campaigns.models import Campaign
from signup.extensions import db
from signup.messaging import segments, texts
from signup.messaging.models import MessageKind
from signup.messaging.segments import SegmentCount
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


# Every admin page, as the account that sees it; 403 and 404 are pages of the admin too.
PAGES = [
    ("dashboard", "admin", "/admin/"),
    ("volunteers", "admin", "/admin/volunteers"),
    ("volunteer", "admin", "/admin/volunteers/{volunteer}"),
    ("campaigns", "admin", "/admin/campaigns"),
    ("campaign", "admin", "/admin/campaigns/jan"),
    ("users", "admin", "/admin/users"),
    ("audit", "admin", "/admin/audit"),
    ("import", "admin", "/admin/import"),
    ("confirm", "admin", "/admin/volunteers/{volunteer}/erase"),
    ("login", None, "/admin/login"),
    ("403", "organiser", "/admin/users"),
    ("404", "admin", "/admin/no-such-page"),
]
WIDTHS = {"phone": 360, "desktop": 1280}
LOCALES = {"en": "en-IN", "hi": "hi-IN"}
# Pictures kept in docs/screenshots (README), beside the older ones.
SHOWCASE = {
    ("dashboard", "phone", "hi"),
    ("volunteers", "phone", "hi"),
    ("volunteer", "phone", "en"),
    ("campaign", "desktop", "hi"),
}
# What the eye checks, measured: text smaller than the body's (SVG text at its rendered size),
# sideways scrolling of the page, and labels, buttons, headings or cells whose text is cut off.
MEASURE = """() => {
  const body = parseFloat(getComputedStyle(document.body).fontSize);
  const small = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement;
    if (!node.textContent.trim() || !el || el.closest("title, script, style, option")) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const rect = range.getBoundingClientRect();
    if (rect.width === 0 && rect.height === 0) continue;
    let size = parseFloat(getComputedStyle(el).fontSize);
    if (el instanceof SVGElement) {
      const m = el.getScreenCTM();
      size *= Math.min(Math.hypot(m.a, m.b), Math.hypot(m.c, m.d));
    }
    if (size < body - 0.01) small.push(el.tagName + " " + size.toFixed(1) + "px: " +
      node.textContent.trim().slice(0, 30));
  }
  const boxes = "label, legend, button, .button, th, td, h1, h2, h3, nav a, .stat span, " +
    ".hbars .name, figcaption span, small.segments, p";
  const clipped = [...document.querySelectorAll(boxes)].filter((e) => {
    const style = getComputedStyle(e);
    if (style.display === "inline" || !e.getClientRects().length) return false;
    return e.scrollWidth > e.clientWidth + 1;
  }).map((e) => e.tagName + ": " + e.textContent.trim().slice(0, 30));
  return {
    body: body,
    small: small,
    clipped: clipped,
    width: document.documentElement.scrollWidth,
    lang: document.documentElement.lang,
  };
}"""


def _chromium_missing() -> bool:
    return not Path(CHROMIUM).exists() and not os.environ.get("CI")


def _log_in(context: object, live: str, email: str) -> None:
    page = context.new_page()  # type: ignore[attr-defined]
    page.goto(f"{live}/admin/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live}/admin/**")
    page.close()


@pytest.mark.skipif(_chromium_missing(), reason="Debian's chromium is not installed")
def test_every_admin_page_reads_well_on_a_phone_and_a_desktop_in_both_languages(
    live: str, shots: Path
) -> None:
    from playwright.sync_api import sync_playwright

    users.create_user(email="admin@example.org", role="admin", password=PASSWORD)
    db.session.commit()
    volunteer = db.session.query(Volunteer).filter_by(phone=PEOPLE[0][0]).one().id
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        for language, locale in LOCALES.items():
            for width_name, width in WIDTHS.items():
                contexts = {}
                for account in ("admin", "organiser", None):
                    context = browser.new_context(
                        viewport={"width": width, "height": 800}, locale=locale
                    )
                    if account:
                        _log_in(context, live, f"{account}@example.org")
                    contexts[account] = context
                for name, account, path in PAGES:
                    page = contexts[account].new_page()
                    page.goto(live + path.format(volunteer=volunteer))
                    seen = page.evaluate(MEASURE)
                    where = f"{name} at {width}px in {language}"
                    if seen["lang"] != language:
                        problems.append(f"{where}: <html lang={seen['lang']}>")
                    if seen["width"] > width:
                        problems.append(f"{where}: scrolls sideways ({seen['width']}px)")
                    body = seen["body"]
                    problems += [f"{where}: text below {body}px: {s}" for s in seen["small"]]
                    problems += [f"{where}: cut off: {c}" for c in seen["clipped"]]
                    if (name, width_name, language) in SHOWCASE:
                        target = shots / f"{name}-{width_name}-{language}.png"
                        page.screenshot(path=str(target), full_page=True)
                    page.close()
                for context in contexts.values():
                    context.close()
        browser.close()
    assert not problems, "\n".join(problems)


CUSTOM = {
    "en": "  {campaign}: meetings near you [{{news}}]; to leave, call {optout_number} or say STOP ",
    "hi": "{campaign}: आपके पास की बैठकों की ख़बर। छोड़ने हेतु {number} पर कॉल करें या STOP भेजें।",
}
SMS_FIELDS = {
    MessageKind.ONBOARDING: "sms_text",
    MessageKind.OPTOUT_CONFIRMATION: "optout_text",
    MessageKind.HELP: "help_text",
}


def _server_count(form: dict[str, str], kind: MessageKind, text: str) -> SegmentCount:
    """What the server sends for these settings, counted by signup.messaging.segments."""
    transient = Campaign(
        name=form["name"],
        number=form["number"],
        optout_number=form["optout_number"] or None,
        language=form["language"],
        **{SMS_FIELDS[kind]: text.strip() or None},
    )
    return segments.count(texts.render(kind, transient))


@pytest.mark.skipif(_chromium_missing(), reason="Debian's chromium is not installed")
def test_the_live_counter_agrees_with_the_server_for_every_text_that_will_be_sent(
    live: str,
) -> None:
    """Every kind, default and custom, English and Hindi, with and without an opt-out number."""
    from playwright.sync_api import sync_playwright

    users.create_user(email="admin@example.org", role="admin", password=PASSWORD)
    db.session.commit()
    checked = 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        _log_in(context, live, "admin@example.org")
        page = context.new_page()
        page.goto(f"{live}/admin/campaigns/jan")
        settings = page.locator("form:has(input[name=quiet_hours])")
        for optout_number in ("+918047259726", ""):
            settings.locator("input[name=optout_number]").fill(optout_number)
            for language in texts.LANGUAGES:
                settings.locator("select[name=language]").select_option(language)
                for kind, field in SMS_FIELDS.items():
                    for text in ("", CUSTOM["en"], CUSTOM["hi"]):
                        area = settings.locator(f"textarea[name={field}]")
                        area.fill(text)
                        shown = area.locator("xpath=following-sibling::small[1]")
                        form = {
                            name: settings.locator(f"[name={name}]").input_value()
                            for name in ("name", "number", "optout_number", "language")
                        }
                        expected = _server_count(form, kind, text)
                        browser_count = (
                            shown.get_attribute("data-encoding"),
                            int(shown.get_attribute("data-units") or -1),
                            int(shown.get_attribute("data-segments") or -1),
                        )
                        assert browser_count == (
                            expected.encoding,
                            expected.units,
                            expected.segments,
                        ), (kind, language, optout_number, text[:20], shown.inner_text())
                        said = "This text is sent" if text.strip() else "Empty: the default"
                        assert shown.inner_text().startswith(said)
                        checked += 1
                    settings.locator(f"textarea[name={field}]").fill("")
        default = page.locator("[data-kind=onboarding] .server-count").inner_text()
        assert "0 characters" not in default
        browser.close()
    assert checked == 2 * len(texts.LANGUAGES) * len(SMS_FIELDS) * 3
