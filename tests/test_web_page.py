"""The web page in a real headless browser (Debian's chromium driven by Playwright): paste a known phishing and a
known legitimate URL, upload a CSV, follow the model card link; check what a person would see, that nothing is
loaded from anywhere but the app, and that a submitted string cannot become markup. Saves screenshots."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures_model import REPO, model_dir, running_server  # noqa: F401

CHROMIUM = os.environ.get("CYBERSENTINEL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PHISHING = "http://ads-social-network-info.hol.es/2017/recovery-chekpoint-login.html"  # Ebbu2017, test split
LEGITIMATE = "https://en.wikipedia.org/wiki/Phishing"
MARKUP = '<img src=x onerror="document.title=\'owned\'">'
LISTED_IP_URL = "http://1.10.16.5/index.php"  # inside FireHOL level 1 and Spamhaus DROP
FEEDS = REPO.parent / "shared" / "data" / "feeds"


def browser_missing() -> str | None:
    if shutil.which(CHROMIUM) is None:
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; never `playwright install`)"
    return None


MISSING = browser_missing()  # the reason is listed by `pytest -rs`
pytestmark = [pytest.mark.slow, pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811
    feeds = ["--feeds-dir", str(FEEDS)] if FEEDS.is_dir() else []
    store = tmp_path_factory.mktemp("feedback") / "feedback.sqlite"  # never the repository's data/ folder
    with running_server(model_dir, *feeds, "--no-access-log", "--feedback-db", str(store)) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def test_page_shows_verdicts_scores_and_reasons(browser, server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    elsewhere: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("request", lambda request: None if request.url.startswith(server) else elsewhere.append(request.url))

    page.goto(f"{server}/")
    assert page.title().startswith("CyberSentinel")
    page.fill("#urls", f"{PHISHING}\n{LEGITIMATE}\n{MARKUP}\n{LISTED_IP_URL}\n")
    page.click("#check")
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(4)  # expect() polls without eval, which the page's CSP forbids
    expect(page.locator("#status")).to_have_text("Done.")

    phishing, legitimate, markup, listed = rows.nth(0), rows.nth(1), rows.nth(2), rows.nth(3)
    assert phishing.locator("td.input").inner_text() == PHISHING
    assert phishing.get_attribute("data-verdict") == "malicious"
    assert phishing.locator(".badge").inner_text() == "malicious"
    assert legitimate.get_attribute("data-verdict") == "benign"
    assert legitimate.locator(".badge").inner_text() == "benign"
    phishing_score = float(phishing.locator("td.score").inner_text())
    assert phishing_score >= 0.5 > float(legitimate.locator("td.score").inner_text())
    assert phishing.locator("td.reasons li").count() >= 1  # plain-words reasons for a malicious verdict
    # colour-coded: the rows' backgrounds differ, red-ish for malicious, green-ish for benign
    red = phishing.evaluate("row => getComputedStyle(row).backgroundColor")
    green = legitimate.evaluate("row => getComputedStyle(row).backgroundColor")
    assert red == "rgb(253, 231, 229)" and green == "rgb(227, 244, 231)"
    # a submitted string is shown as text, never run as markup
    assert markup.locator("td.input").inner_text() == MARKUP
    assert page.locator("#results img").count() == 0 and page.title() != "owned"
    assert page.locator("#summary").inner_text().startswith("4 checked")
    if FEEDS.is_dir():  # feed matches are shown, and raise the verdict
        assert "firehol_level1" in listed.locator("td.intel").inner_text()
        assert listed.get_attribute("data-verdict") == "malicious"
        assert legitimate.locator("td.intel").inner_text() == "no feed match"
    page.screenshot(path=str(tmp_path / "page-pasted.png"), full_page=True)

    upload = tmp_path / "urls.csv"
    upload.write_text(f'url,note\n"{LEGITIMATE}","a, quoted note"\n{PHISHING},x\n')
    page.set_input_files("#file", str(upload))
    expect(page.locator("#summary")).to_have_text(re.compile(r"^2 checked"))
    expect(page.locator("#status")).to_have_text("Done.")
    assert [rows.nth(i).get_attribute("data-verdict") for i in range(2)] == ["benign", "malicious"]
    page.screenshot(path=str(tmp_path / "page-uploaded.png"), full_page=True)

    page.click("#model-card-link")
    page.wait_for_selector("#card:not([hidden])")
    health = page.evaluate("fetch('/healthz').then(r => r.json())")
    assert health["version"] in page.locator("#title").inner_text()
    metrics = REPO / "reports" / "metrics.json"  # the server's default --metrics, relative to the repo
    if metrics.is_file():  # shown only when they are the served model's (the model hash in them says so)
        served = page.evaluate("fetch('/v1/model').then(r => r.json())")["hashes"]["sha256"]
        belongs = json.loads(metrics.read_text()).get("model_sha256") == served
        assert (page.locator("#test-metrics dt").count() >= 1) == belongs
    page.screenshot(path=str(tmp_path / "model-card.png"), full_page=True)
    print(f"screenshots in {tmp_path}")

    assert elsewhere == [], f"the page loaded from elsewhere: {elsewhere}"
    assert problems == [], problems


def test_page_asks_for_an_api_key_when_the_server_needs_one(browser, model_dir: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect

    with running_server(model_dir, "--no-access-log", "--feeds-dir", "absent",
                        env={"CYBERSENTINEL_API_KEYS": "page-key"}) as base:
        page = browser.new_page()
        page.goto(f"{base}/")
        page.fill("#urls", PHISHING)
        page.click("#check")
        page.wait_for_selector("#key-row:not([hidden])")
        assert "API key" in page.locator("#status").inner_text()
        page.fill("#api-key", "page-key")
        page.click("#check")
        expect(page.locator("#status")).to_have_text("Done.")
        assert page.locator("#results tbody tr").first.get_attribute("data-verdict") == "malicious"
        # the model card, refused before the key was given, is read now: this server has no feeds to check
        assert page.locator("#results tbody tr td.intel").first.inner_text() == "feeds not loaded"

        # the tab keeps the key over a reload, in the field that says what is sent; emptying the field forgets it
        page.reload()
        page.wait_for_selector("#key-row:not([hidden])")
        assert page.input_value("#api-key") == "page-key"
        page.fill("#urls", PHISHING)
        page.fill("#api-key", "")
        page.click("#check")
        expect(page.locator("#status")).to_have_text(re.compile("needs an API key"))
        assert page.evaluate("sessionStorage.length") == 0


def test_an_analyst_marks_a_false_positive_and_confirms_a_miss(browser, model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect

    store = tmp_path / "feedback.sqlite"
    with running_server(model_dir, "--no-access-log", "--feeds-dir", "absent", "--feedback-db", str(store)) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{base}/")
        page.fill("#urls", f"{PHISHING}\n{LEGITIMATE}\n")
        page.click("#check")
        rows = page.locator("#results tbody tr")
        expect(page.locator("#status")).to_have_text("Done.")
        phishing, legitimate = rows.nth(0), rows.nth(1)
        assert phishing.get_attribute("data-verdict") == "malicious"
        assert legitimate.locator("td.intel").inner_text() == "feeds not loaded"  # not "no feed match"

        phishing.locator("button.false_positive").click()  # no name yet: refused on the page, nothing sent
        expect(phishing.locator(".feedback-status")).to_have_text(re.compile("Enter your name"))
        page.fill("#analyst", "alice")
        phishing.locator("select.scope").select_option("host")
        phishing.locator("input.note").fill("our partner's campaign page")
        phishing.locator("button.false_positive").click()
        expect(phishing.locator(".feedback-status")).to_have_text(re.compile(r"^Recorded #1 by alice: now benign"))
        assert phishing.get_attribute("data-feedback") == "false_positive"
        legitimate.locator("button.confirmed_malicious").click()
        expect(legitimate.locator(".feedback-status")).to_have_text(re.compile(r"^Recorded #2 by alice: now malicious"))
        page.screenshot(path=str(tmp_path / "page-feedback.png"), full_page=True)

        page.click("#check")  # the corrections took effect at once
        expect(page.locator("#status")).to_have_text("Done.")
        assert rows.nth(0).get_attribute("data-verdict") == "benign"
        assert "allowlisted (analyst feedback #1 by alice" in rows.nth(0).locator("td.reasons").inner_text()
        assert rows.nth(1).get_attribute("data-verdict") == "malicious"
        stored = page.evaluate("fetch('/v1/feedback').then(r => r.json())")["feedback"]
        assert [(f["kind"], f["scope"], f["note"], f["analyst"]) for f in stored] == [
            ("false_positive", "host", "our partner's campaign page", "alice"),
            ("confirmed_malicious", "url", "", "alice")]
        assert problems == [], problems


def test_an_analyst_with_a_scoring_key_is_asked_for_a_feedback_key(browser, model_dir: Path, tmp_path: Path  # noqa: F811
                                                                   ) -> None:
    """With feedback keys set the page scores with a scoring key, says a correction needs a feedback key, and sends
    the one the analyst then enters (pressing the button again, without checking the URLs again)."""
    from playwright.sync_api import expect

    store = tmp_path / "feedback.sqlite"
    with running_server(model_dir, "--no-access-log", "--feeds-dir", "absent", "--feedback-db", str(store),
                        env={"CYBERSENTINEL_API_KEYS": "score-key", "CYBERSENTINEL_FEEDBACK_KEYS": "analyst-key"}
                        ) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{base}/")
        page.fill("#urls", PHISHING)
        page.click("#check")
        page.wait_for_selector("#key-row:not([hidden])")
        page.fill("#api-key", "score-key")
        page.click("#check")
        expect(page.locator("#status")).to_have_text("Done.")
        row = page.locator("#results tbody tr").first
        page.fill("#analyst", "alice")
        row.locator("button.false_positive").click()
        expect(row.locator(".feedback-status")).to_have_text("Feedback key needed.")
        assert "feedback key" in page.locator("#status").inner_text()
        page.fill("#api-key", "analyst-key")
        row.locator("button.false_positive").click()
        expect(row.locator(".feedback-status")).to_have_text(re.compile(r"^Recorded #1 by alice: now benign"))
        page.click("#check")  # the feedback key scores too
        expect(page.locator("#status")).to_have_text("Done.")
        assert row.get_attribute("data-verdict") == "benign"
        assert problems == [], problems
