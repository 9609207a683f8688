"""Analyst feedback: the store (SQLite and a real PostgreSQL, one schema), its effect on the one decision policy
(service, predict, blocklist export), the `feedback` ingest source and what the pipeline does with it."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from fixtures_model import model_dir  # noqa: F401
from typer.testing import CliRunner

from cybersentinel.cli.app import app as cli_app
from cybersentinel.data.prepare import deduplicate
from cybersentinel.ingest.base import SourceError
from cybersentinel.ingest.feedback import feedback_snapshot, read_feedback, store_location
from cybersentinel.ingest.sources import ingest, snapshot
from cybersentinel.model.estimators import repeat_rows
from cybersentinel.ops.feedback import (
    KINDS,
    Feedback,
    FeedbackError,
    FeedbackStore,
    StoreUnavailableError,
    site_lists,
    target_of,
)
from cybersentinel.ops.service import FEEDBACK_PAGE, FEEDBACK_PAGE_MAX, Settings, create_app
from cybersentinel.scoring.detector import Detector
from cybersentinel.scoring.policy import SiteList

pytest_plugins = ["fixtures_db"]

PHISHING = "http://ads-social-network-info.hol.es/2017/recovery-chekpoint-login.html"  # Ebbu2017, test split
SOURCE = {"name": "feedback", "reader": "feedback"}
URLS_DATASET = {"name": "urls", "kind": "url", "group_by": "registered_domain"}
WITH_PASSWORD = "https://alice:s3cr3tP4ss@bank.example.org/login"
PASSWORD_MASKED = "https://alice:***@bank.example.org/login"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FeedbackStore:
    """A migrated, empty store of each kind; the environment points the ingest source at it."""
    monkeypatch.delenv("CYBERSENTINEL_FEEDBACK_DSN", raising=False)
    if request.param == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        monkeypatch.setenv("CYBERSENTINEL_FEEDBACK_DSN", dsn)
        store = FeedbackStore.from_env(dsn=dsn)
    else:
        monkeypatch.setenv("CYBERSENTINEL_FEEDBACK_DB", str(tmp_path / "feedback.sqlite"))
        store = FeedbackStore.from_env(path=tmp_path / "feedback.sqlite")
    assert store.migrate() == [1] and store.migrate() == []  # idempotent
    return store


def test_corrections_are_attributable_idempotent_and_reversible(store: FeedbackStore) -> None:
    first, created = store.add("http://Shop.example.org/login/", "false_positive", "url", "alice", "our shop")
    assert created and first.target == "shop.example.org/login" and first.label == 0 and first.active
    again, created = store.add("shop.example.org/login", "false_positive", "url", "bob")
    assert not created and again.id == first.id and again.analyst == "alice"  # recorded once
    host, _ = store.add("http://kit.evil-login.example.net/a", "confirmed_malicious", "host", "bob", "kit")
    assert host.target == "kit.evil-login.example.net" and host.label == 1
    flipped, created = store.add("http://shop.example.org/login", "confirmed_malicious", "url", "carol", "no: a kit")
    assert created
    history = {item.id: item for item in store.list()}
    assert len(history) == 3  # nothing deleted: the superseded row is still there, revoked, with who and why
    assert history[first.id].revoked_by == "carol"
    assert history[first.id].revoke_reason == f"superseded by #{flipped.id} (confirmed_malicious)"
    revoked = store.revoke(host.id, "dave", "the site was cleaned")
    assert not revoked.active and revoked.revoked_by == "dave" and revoked.revoked_at
    with pytest.raises(FeedbackError, match="already revoked by dave"):
        store.revoke(host.id, "erin", "again")
    with pytest.raises(FeedbackError, match="no feedback #999"):
        store.revoke(999, "erin", "x")
    for beyond in (0, -1, 2**63, 10**30):  # ids no 64-bit column holds: not found, not a driver's overflow
        with pytest.raises(FeedbackError, match=f"no feedback #{beyond}"):
            store.revoke(beyond, "erin", "x")
    for analyst, reason in (("er\x00in", "x"), ("erin", "x\x00")):  # refused as `add` refuses them
        with pytest.raises(FeedbackError, match="analyst|reason"):
            store.revoke(flipped.id, analyst, reason)
    assert [item.id for item in store.list(active_only=True)] == [flipped.id]
    allow, block = store.site_lists()
    assert not allow and block.match_url("https://www.shop.example.org/login") == (
        f"analyst feedback #{flipped.id} by carol: shop.example.org/login")


@pytest.mark.parametrize("url", ["http://co.uk/x", "https://github.io/", "http://10.1.2.3/login", "http:///x"])
def test_a_host_correction_never_covers_a_public_suffix_or_reserved_space(store: FeedbackStore, url: str) -> None:
    for kind in ("false_positive", "confirmed_malicious"):
        with pytest.raises(FeedbackError, match="use scope url"):
            store.add(url, kind, "host", "alice")
    assert store.list() == []


# Hosts whose rule would cover a whole platform: a public suffix beneath (``s3.amazonaws.com``, ``*.dweb.link``),
# a user-content host, a shortener, or a name above one (``weebly.com`` above ``*.weebly.com``).
PLATFORMS = ["https://amazonaws.com/", "https://windows.net/", "https://docs.google.com/x", "http://sites.google.com/",
             "https://storage.googleapis.com/b/o", "https://firebasestorage.googleapis.com/v0/b", "https://weebly.com/",
             "https://ipfs.io/ipfs/Qm", "https://dweb.link/", "https://bit.ly/3xYz", "https://t.co/a",
             "https://tinyurl.com/y", "https://forms.gle/x", "https://google.com/", "https://a.sites.google.com/"]


@pytest.mark.parametrize("url", PLATFORMS)
def test_a_host_correction_never_covers_a_whole_platform(store: FeedbackStore, url: str) -> None:
    for kind in ("false_positive", "confirmed_malicious"):
        with pytest.raises(FeedbackError, match=r"never a host rule; use scope url$"):
            store.add(url, kind, "host", "alice")
    assert store.list() == []
    page, _ = store.add(url, "false_positive", "url", "alice")  # the page itself can still be corrected
    assert page.scope == "url"


def test_a_stored_host_row_the_guard_now_refuses_acts_on_nothing() -> None:
    # a row written before a platform was known (or straight into the store) must not clear every kit on it
    def row(id_: int, target: str, kind: str) -> Feedback:
        return Feedback(id_, f"http://{target}/", "host", target, kind, 0 if kind == "false_positive" else 1, "",
                        "alice", None, None, None, "2026-01-01T00:00:00Z", None, None, None)

    allow, block = site_lists([row(1, "weebly.com", "false_positive"), row(2, "shop.example.net", "false_positive"),
                               row(3, "co.uk", "confirmed_malicious"),
                               row(4, "kit.example.org", "confirmed_malicious")])
    assert allow.entries == {"shop.example.net": "analyst feedback #2 by alice"}
    assert block.entries == {"kit.example.org": "analyst feedback #4 by alice"}


def test_one_users_site_on_a_platform_is_a_host_of_its_own(store: FeedbackStore) -> None:
    for url in ("https://paypal-secure-login.s3.amazonaws.com/index.html", "http://kit.weebly.com/login",
                "https://login.windows.net/common/oauth2/authorize", "http://evil.github.io/"):
        item, created = store.add(url, "confirmed_malicious", "host", "alice")
        assert created and item.target == url.split("/")[2]


def test_a_platform_host_correction_gets_a_422_and_changes_no_verdict(service) -> None:
    client, _ = service
    kit = "https://paypal-secure-login.s3.amazonaws.com/index.html"
    before = score(client, kit)["verdict"]
    for url, kind in (("https://amazonaws.com/", "false_positive"), ("https://windows.net/", "confirmed_malicious"),
                      ("https://bit.ly/", "confirmed_malicious")):
        response = client.post("/v1/feedback", json={"url": url, "kind": kind, "scope": "host", "analyst": "m"})
        assert response.status_code == 422 and "use scope url" in response.json()["detail"], response.text
    assert client.get("/v1/feedback").json()["count"] == 0
    assert score(client, kit)["verdict"] == before and "analyst feedback" not in score(client, kit)["reasons"]


@pytest.mark.parametrize("later", ["https://kit2.example.net/a.php", "https://kit2.example.net/a.php#frag",
                                   "kit2.example.net/a.php/", "https://user@kit2.example.net:443/a.php?"])
def test_a_later_correction_of_the_same_page_supersedes_the_earlier(store: FeedbackStore, later: str) -> None:
    first, _ = store.add("https://kit2.example.net:443/a.php", "confirmed_malicious", "url", "alice")
    again, created = store.add(later, "confirmed_malicious", "url", "bob")
    assert not created and again.id == first.id  # one page: recorded once
    second, created = store.add(later, "false_positive", "url", "carol")
    assert created and [item.id for item in store.list(active_only=True)] == [second.id]
    assert store.list()[0].revoke_reason == f"superseded by #{second.id} (false_positive)"
    allow, block = store.site_lists()
    assert allow.match_url("https://kit2.example.net/a.php") and not block.match_url("https://kit2.example.net/a.php")
    assert read_feedback(SOURCE).table["label"].tolist() == [0]  # one label trains, not both


@pytest.mark.parametrize("value", ["not a url at all", "javascript:alert(1)", "JavaScript://alert(1)",
                                   "mailto:a@kit.example.net", "data:text/html,<b>x</b>", "http://", "file:///etc/x"])
def test_a_value_that_names_no_host_is_no_correction(store: FeedbackStore, value: str) -> None:
    for scope in ("url", "host"):
        with pytest.raises(FeedbackError, match="no web address|names no host a browser would request"):
            store.add(value, "confirmed_malicious", scope, "alice")
    assert store.list() == []


def test_a_bare_domain_or_address_is_still_a_correction(store: FeedbackStore) -> None:
    for value in ("kit.example.net", "198.51.100.7", "hxxp://kit.example.org/x", "https:kit.example.com/a"):
        item, created = store.add(value, "confirmed_malicious", "url", "alice")
        assert created and item.target == value.split("//")[-1].removeprefix("https:")


def test_no_web_address_gets_a_422_and_the_cli_exits_2(service) -> None:
    client, db = service
    for value in ("not a url at all", "javascript:alert(1)"):
        response = client.post("/v1/feedback", json={"url": value, "kind": "false_positive", "analyst": "m"})
        assert response.status_code == 422 and "a URL, a domain or an IP address" in response.json()["detail"], \
            response.text
        result = CliRunner().invoke(cli_app, ["feedback", "add", value, "--kind", "confirmed_malicious", "--analyst",
                                              "m", "--feedback-db", str(db)], env={"COLUMNS": "400"})
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
        assert len(result.output.strip().splitlines()) == 1 and value in result.output, result.output
    assert client.get("/v1/feedback").json()["count"] == 0


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "benign"}, "kind 'benign'"), ({"scope": "site"}, "scope 'site'"), ({"analyst": " "}, "analyst"),
    ({"note": "x" * 2001}, "note"), ({"url": " "}, "url must be"), ({"url": "a\x00b"}, "url must be")])
def test_bad_corrections_are_refused_with_the_reason(store: FeedbackStore, fields: dict, message: str) -> None:
    given = {"url": "http://a.example.com/", "kind": "false_positive", "scope": "url", "analyst": "alice", **fields}
    with pytest.raises(FeedbackError, match=message):
        store.add(given["url"], given["kind"], given["scope"], given["analyst"], given.get("note", ""))
    assert store.list() == []


def test_the_feedback_source_reads_active_rows_with_a_fingerprint(store: FeedbackStore) -> None:
    empty = snapshot(SOURCE, {"kind": "files"})
    assert empty["rows"] == 0
    a, _ = store.add("http://shop.example.org/login", "false_positive", "url", "alice")
    b, _ = store.add("http://kit.example.net/pay", "confirmed_malicious", "url", "bob")
    got = ingest(SOURCE, {"kind": "postgres"})  # the origin does not matter: feedback comes from its store
    assert got.table.columns.tolist() == ["url", "date", "label", "source", "snapshot"]
    assert got.table["url"].tolist() == [a.url, b.url] and got.table["label"].tolist() == [0, 1]
    assert got.table["date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert got.snapshot == feedback_snapshot(SOURCE) and got.snapshot["rows"] == 2
    assert got.table["snapshot"].iloc[0] == got.snapshot["snapshot"]
    store.revoke(a.id, "carol", "wrong")
    after = feedback_snapshot(SOURCE)  # a revocation is a change of data: the pipeline retrains
    assert after["rows"] == 1 and after["fingerprint"] != got.snapshot["fingerprint"]
    assert read_feedback(SOURCE).table["url"].tolist() == [b.url]


@pytest.mark.parametrize("folder", ["team#2", "q?x", "50% off"])
def test_a_sqlite_store_in_a_folder_named_with_uri_characters_is_read(tmp_path: Path, folder: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``file:…/team#2/feedback.sqlite?mode=ro`` had opened ``…/team`` (created empty): no feedback, no error."""
    monkeypatch.delenv("CYBERSENTINEL_FEEDBACK_DSN", raising=False)
    path = tmp_path / folder / "feedback.sqlite"
    monkeypatch.setenv("CYBERSENTINEL_FEEDBACK_DB", str(path))
    path.parent.mkdir()
    store = FeedbackStore.from_env(path=path)
    store.migrate()
    store.add("http://kit.example.net/pay", "confirmed_malicious", "url", "bob")
    assert feedback_snapshot(SOURCE)["rows"] == 1 and read_feedback(SOURCE).table["label"].tolist() == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder]  # nothing opened beside it


def test_an_absent_or_unmigrated_sqlite_store_is_no_feedback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CYBERSENTINEL_FEEDBACK_DSN", raising=False)
    monkeypatch.setenv("CYBERSENTINEL_FEEDBACK_DB", str(tmp_path / "absent.sqlite"))
    assert feedback_snapshot(SOURCE)["rows"] == 0 and not (tmp_path / "absent.sqlite").exists()
    sqlite3.connect(tmp_path / "absent.sqlite").close()  # a file without the schema
    assert feedback_snapshot(SOURCE)["rows"] == 0
    with pytest.raises(SourceError, match="no rows"):
        read_feedback(SOURCE)
    (tmp_path / "absent.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(SourceError, match="feedback store SQLite"):
        feedback_snapshot(SOURCE)


def test_the_dsn_wins_over_a_sqlite_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYBERSENTINEL_FEEDBACK_DSN", "postgresql://u:secret@db.example:5432/fb")
    location = store_location(path="data/x.sqlite")
    assert location.dialect == "postgres" and "secret" not in location.describe()
    monkeypatch.delenv("CYBERSENTINEL_FEEDBACK_DSN")
    assert store_location(path="data/x.sqlite").path == Path("data/x.sqlite")


def test_an_unreachable_postgres_store_is_reported_not_crashed(postgres_server) -> None:
    store = FeedbackStore.from_env(dsn=postgres_server.dsn("no_such_database"))
    with pytest.raises(StoreUnavailableError):
        store.add("http://a.example.com/", "false_positive", "url", "alice")


def test_a_correction_replaces_the_collections_rows_of_its_url() -> None:
    frame = pd.DataFrame({"url": ["http://a.example.com/x", "https://www.A.example.com/x/", "http://b.example/",
                                  "http://a.example.com/x"],
                          "label": [1, 1, 0, 0], "source": ["phishtank", "ebbu", "ebbu", "feedback"],
                          "snapshot": ["0" * 16] * 4})
    out, counts = deduplicate(frame, URLS_DATASET, {"feedback"})
    assert out["source"].tolist() == ["ebbu", "feedback"] and out["label"].tolist() == [0, 0]
    assert counts["corrected_by_feedback"] == 2 and counts["conflicting_labels_removed"] == 0
    plain, plain_counts = deduplicate(frame[frame["source"] != "feedback"], URLS_DATASET, {"feedback"})
    assert "corrected_by_feedback" not in plain_counts  # without feedback: exactly the old accounting
    assert plain_counts == deduplicate(frame[frame["source"] != "feedback"], URLS_DATASET)[1]


def test_feedback_rows_are_repeated_by_their_weight_and_nothing_else_changes() -> None:
    frame = pd.DataFrame({"url": ["a", "b", "c"], "source": ["x", "feedback", "y"]})
    mask = (frame["source"] == "feedback").to_numpy()
    weighted = repeat_rows(frame, mask, 3)
    assert weighted["url"].tolist() == ["a", "b", "c", "b", "b"]
    assert repeat_rows(frame, np.zeros(3, dtype=bool), 3) is frame and repeat_rows(frame, mask, 1) is frame
    with pytest.raises(ValueError, match="whole number"):
        repeat_rows(frame, mask, 0)


def test_url_entries_decide_single_urls_through_the_policy(model_dir: Path) -> None:  # noqa: F811
    detector = Detector.from_dir(model_dir)
    other = "http://ads-social-network-info.hol.es/2017/another-page.html"
    allow = SiteList(urls={PHISHING: "analyst feedback #1 by alice"})
    block = SiteList(urls={"https://en.wikipedia.org/wiki/Phishing/": "analyst feedback #2 by bob"})
    table = detector.score_values([PHISHING, other, "https://en.wikipedia.org/wiki/Phishing"],
                                  decider=detector.decider(None, allow, block)).to_pydict()
    assert table["verdict"][0] == "benign" and table["score"][0] == 0.0
    assert table["reasons"][0].startswith("allowlisted (analyst feedback #1 by alice")
    assert table["verdict"][1] != "benign" or table["model_score"][1] < detector.threshold  # the host is not allowed
    assert table["verdict"][2] == "malicious" and "local block list (analyst feedback #2" in table["reasons"][2]


@pytest.fixture
def service(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    monkeypatch.delenv("CYBERSENTINEL_FEEDBACK_DSN", raising=False)
    db = tmp_path / "feedback.sqlite"
    settings = Settings(model_dir=model_dir, feeds_dir=None, feedback_db=db, feedback_check_s=0.0)
    return TestClient(create_app(settings, Detector.from_dir(model_dir)), base_url="http://127.0.0.1"), db


def score(client: TestClient, url: str) -> dict:
    response = client.post("/v1/score", json={"urls": [url]})
    assert response.status_code == 200
    return response.json()["results"][0]


def test_post_feedback_takes_effect_at_once_and_is_reversible(service) -> None:
    client, db = service
    assert score(client, PHISHING)["verdict"] == "malicious"
    body = {"url": PHISHING, "kind": "false_positive", "scope": "host", "note": "our partner", "analyst": "alice"}
    response = client.post("/v1/feedback", json=body)
    assert response.status_code == 201, response.text
    recorded = response.json()
    assert recorded["created"] and recorded["feedback"]["verdict"] == "malicious"  # what was being corrected
    assert recorded["feedback"]["target"] == "ads-social-network-info.hol.es" and recorded["effect"].startswith(
        "now benign: allowlisted")
    assert score(client, PHISHING)["verdict"] == "benign"
    assert score(client, "http://ads-social-network-info.hol.es/other")["verdict"] == "benign"  # the whole host
    again = client.post("/v1/feedback", json=body)
    assert again.status_code == 200 and not again.json()["created"]
    revoked = client.post(f"/v1/feedback/{recorded['feedback']['id']}/revoke",
                          json={"analyst": "bob", "reason": "partner was compromised"})
    assert revoked.status_code == 200 and revoked.json()["feedback"]["revoked_by"] == "bob"
    assert score(client, PHISHING)["verdict"] == "malicious"
    assert client.post(f"/v1/feedback/{recorded['feedback']['id']}/revoke",
                       json={"analyst": "bob", "reason": "twice"}).status_code == 409
    assert client.post("/v1/feedback/4242/revoke", json={"analyst": "bob", "reason": "x"}).status_code == 404
    beyond = client.post(f"/v1/feedback/{2**63}/revoke", json={"analyst": "bob", "reason": "x"})  # was a 500
    assert beyond.status_code == 404 and beyond.json()["detail"] == f"no feedback #{2**63}"
    assert client.post("/v1/feedback/1/revoke", json={"analyst": "bob\u0000", "reason": "x"}).status_code == 422
    listed = client.get("/v1/feedback").json()
    assert listed["count"] == 1 and not listed["feedback"][0]["active"]
    assert client.get("/v1/feedback?active=true").json()["count"] == 0

    # a correction written by another process (the CLI) is seen once the lists are read again: a request starts
    # that read in a thread of its own (feedback_check_s is 0 here) and is answered with the lists it has
    result = CliRunner().invoke(cli_app, ["feedback", "add", "https://en.wikipedia.org/wiki/Phishing", "--kind",
                                          "confirmed_malicious", "--analyst", "carol", "--feedback-db", str(db)])
    assert result.exit_code == 0, result.output
    deadline = time.monotonic() + 10
    while (verdict := score(client, "https://en.wikipedia.org/wiki/Phishing")["verdict"]) != "malicious" \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert verdict == "malicious"


@pytest.mark.parametrize(("payload", "status"), [
    ({"url": "http://co.uk/", "kind": "confirmed_malicious", "scope": "host", "analyst": "a"}, 422),
    ({"url": "http://x.example/", "kind": "benign", "analyst": "a"}, 422),
    ({"url": "http://x.example/", "kind": "false_positive"}, 422),
    ({"url": "http://x.example/", "kind": "false_positive", "analyst": "a", "extra": 1}, 422),
    ({"url": "", "kind": "false_positive", "analyst": "a"}, 422),
])
def test_bad_feedback_gets_a_clear_4xx(service, payload: dict, status: int) -> None:
    client, _ = service
    response = client.post("/v1/feedback", json=payload)
    assert response.status_code == status and response.json()["detail"]
    assert client.post("/v1/feedback", content=b"{not json", headers={"content-type": "application/json"}
                       ).status_code == 400
    assert client.get("/v1/feedback").json()["count"] == 0


def test_feedback_needs_the_api_key_when_keys_are_set(model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    settings = Settings(model_dir=model_dir, feeds_dir=None, feedback_db=tmp_path / "fb.sqlite", api_keys=("k1",))
    client = TestClient(create_app(settings, Detector.from_dir(model_dir)), base_url="http://127.0.0.1")
    body = {"url": PHISHING, "kind": "false_positive", "analyst": "alice"}
    assert client.post("/v1/feedback", json=body).status_code == 401
    assert client.get("/v1/feedback").status_code == 401
    assert client.post("/v1/feedback", json=body, headers={"X-API-Key": "k1"}).status_code == 201


def keyed_service(model_dir: Path, db: Path, api_keys: tuple[str, ...], feedback_keys: tuple[str, ...]  # noqa: F811
                  ) -> TestClient:
    settings = Settings(model_dir=model_dir, feeds_dir=None, feedback_db=db, api_keys=api_keys,
                        feedback_keys=feedback_keys)
    return TestClient(create_app(settings, Detector.from_dir(model_dir)), base_url="http://127.0.0.1")


def test_with_feedback_keys_a_scoring_key_scores_but_never_touches_corrections(model_dir: Path,  # noqa: F811
                                                                               tmp_path: Path) -> None:
    """A scoring client that is compromised cannot allowlist a phishing site for every user: with feedback keys set,
    only they list, write or revoke corrections; a scoring key gets 403 saying which key is needed."""
    client = keyed_service(model_dir, tmp_path / "fb.sqlite", ("score-key",), ("analyst-key", "other-analyst"))
    body = {"url": PHISHING, "kind": "false_positive", "analyst": "mallory"}
    scoring, analyst = {"X-API-Key": "score-key"}, {"Authorization": "Bearer analyst-key"}
    for attempt in (lambda h: client.post("/v1/feedback", json=body, headers=h),
                    lambda h: client.get("/v1/feedback", headers=h),
                    lambda h: client.post("/v1/feedback/1/revoke", json={"analyst": "m", "reason": "x"}, headers=h)):
        refused = attempt(scoring)
        assert refused.status_code == 403, refused.text
        assert "CYBERSENTINEL_FEEDBACK_KEYS" in refused.json()["detail"] and "www-authenticate" not in refused.headers
        for anonymous in ({}, {"X-API-Key": "wrong"}):
            assert attempt(anonymous).status_code == 401
    assert client.post("/v1/feedback", json={**body, "analyst": "alice"}, headers=analyst).status_code == 201
    listed = client.get("/v1/feedback", headers={"X-API-Key": "other-analyst"}).json()
    assert [item["analyst"] for item in listed["feedback"]] == ["alice"]  # nothing of the refused attempts
    revoked = client.post("/v1/feedback/1/revoke", json={"analyst": "bob", "reason": "x"}, headers=analyst)
    assert revoked.status_code == 200, revoked.text
    for key in (scoring, analyst):  # both keys score: analysts use the page with theirs
        assert client.post("/v1/score", json={"urls": [PHISHING]}, headers=key).status_code == 200
        assert client.get("/v1/model", headers=key).status_code == 200
    assert client.post("/v1/score", json={"urls": [PHISHING]}).status_code == 401


def test_feedback_keys_without_api_keys_guard_only_the_corrections(model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    client = keyed_service(model_dir, tmp_path / "fb.sqlite", (), ("analyst-key",))
    assert client.post("/v1/score", json={"urls": [PHISHING]}).status_code == 200  # scoring stays open
    body = {"url": PHISHING, "kind": "false_positive", "analyst": "alice"}
    assert client.post("/v1/feedback", json=body).status_code == 401
    assert client.get("/v1/feedback").status_code == 401
    assert client.post("/v1/feedback", json=body, headers={"X-API-Key": "analyst-key"}).status_code == 201


def test_the_openapi_schema_names_the_feedback_key_on_the_feedback_routes(model_dir: Path,  # noqa: F811
                                                                          tmp_path: Path) -> None:
    def security(client: TestClient) -> tuple[dict, dict[str, set[str]]]:
        schema = client.get("/openapi.json").json()
        return schema.get("components", {}).get("securitySchemes", {}), {
            f"{method} {path}": {name for choice in operation.get("security", []) for name in choice}
            for path, operations in schema["paths"].items() for method, operation in operations.items()}

    feedback_routes = ("post /v1/feedback", "get /v1/feedback", "post /v1/feedback/{feedback_id}/revoke")
    schemes, required = security(keyed_service(model_dir, tmp_path / "a.sqlite", ("s",), ("f",)))
    assert set(schemes) == {"APIKeyHeader", "HTTPBearer", "FeedbackKeyHeader", "FeedbackBearer"}
    assert schemes["FeedbackKeyHeader"]["name"] == "X-API-Key" and schemes["FeedbackBearer"]["scheme"] == "bearer"
    assert "CYBERSENTINEL_FEEDBACK_KEYS" in schemes["FeedbackKeyHeader"]["description"]
    for route in feedback_routes:
        assert required[route] == {"FeedbackKeyHeader", "FeedbackBearer"}, route
    assert required["post /v1/score"] == required["get /v1/model"] == {"APIKeyHeader", "HTTPBearer"}
    assert required["get /healthz"] == set()
    _, required = security(keyed_service(model_dir, tmp_path / "b.sqlite", ("s",), ()))  # as before: one key
    assert all(required[route] == {"APIKeyHeader", "HTTPBearer"} for route in (*feedback_routes, "post /v1/score"))
    schemes, required = security(keyed_service(model_dir, tmp_path / "c.sqlite", (), ("f",)))  # scoring open
    assert set(schemes) == {"FeedbackKeyHeader", "FeedbackBearer"} and required["post /v1/score"] == set()
    assert required["get /v1/feedback"] == {"FeedbackKeyHeader", "FeedbackBearer"}


def add_corrections(store: FeedbackStore, count: int) -> list[Feedback]:
    return [store.add(f"http://kit-{i}.example.net/login", "confirmed_malicious", "url", "alice")[0]
            for i in range(count)]


def test_the_store_lists_a_page_after_a_cursor(store: FeedbackStore) -> None:
    ids = [item.id for item in add_corrections(store, 5)]
    store.revoke(ids[1], "bob", "cleaned")
    assert [i.id for i in store.list()] == ids  # no page asked: every row, as the CLI and the lists read them
    assert [i.id for i in store.list(after=ids[0], limit=2)] == ids[1:3]
    assert [i.id for i in store.list(after=ids[-1], limit=2)] == []
    assert [i.id for i in store.list(active_only=True, after=ids[0], limit=2)] == [ids[2], ids[3]]


def test_get_feedback_is_paged_with_a_cursor(service) -> None:
    client, db = service
    store = FeedbackStore.from_env(path=db)
    store.migrate()
    ids = [item.id for item in add_corrections(store, 105)]
    first = client.get("/v1/feedback").json()  # the default page
    assert first["count"] == 100 and [i["id"] for i in first["feedback"]] == ids[:100]
    assert first["next_after"] == ids[99]
    last = client.get(f"/v1/feedback?after={first['next_after']}").json()
    assert [i["id"] for i in last["feedback"]] == ids[100:] and last["next_after"] is None
    seen, after = [], 0
    while after is not None:  # a client follows the cursor to the end
        page = client.get("/v1/feedback", params={"after": after, "limit": 40}).json()
        assert page["count"] == len(page["feedback"]) <= 40
        seen += [i["id"] for i in page["feedback"]]
        after = page["next_after"]
    assert seen == ids
    exact = client.get(f"/v1/feedback?after={ids[94]}&limit=10").json()  # the last page exactly full
    assert exact["count"] == 10 and exact["next_after"] is None
    store.revoke(ids[0], "bob", "cleaned")
    active = client.get("/v1/feedback?active=true&limit=2").json()
    assert [i["id"] for i in active["feedback"]] == ids[1:3] and active["next_after"] == ids[2]
    assert client.get(f"/v1/feedback?limit={FEEDBACK_PAGE_MAX}").json()["count"] == 105


@pytest.mark.parametrize(("query", "name"), [
    ("limit=0", "limit"), (f"limit={FEEDBACK_PAGE_MAX + 1}", "limit"), ("limit=-1", "limit"), ("limit=ten", "limit"),
    ("limit=1.0", "limit"), ("limit=%2B5", "limit"), ("limit=05", "limit"), ("limit=", "limit"),
    ("after=-1", "after"), ("after=01", "after"), ("after=1_0", "after"), ("after=%201", "after"),
    (f"after={2**63}", "after"), (f"after={10**30}", "after")])
def test_a_bad_page_gets_422(service, query: str, name: str) -> None:
    client, _ = service
    refused = client.get(f"/v1/feedback?{query}")
    assert refused.status_code == 422, (query, refused.text)
    assert refused.json()["detail"][0]["loc"] == ["query", name] and refused.content.isascii()


def test_the_openapi_schema_documents_the_page(service) -> None:
    client, _ = service
    schema = client.get("/openapi.json").json()
    parameters = {p["name"]: p["schema"] for p in schema["paths"]["/v1/feedback"]["get"]["parameters"]}
    assert parameters["limit"]["default"] == FEEDBACK_PAGE and parameters["limit"]["maximum"] == FEEDBACK_PAGE_MAX
    assert parameters["limit"]["minimum"] == 1 and parameters["after"]["minimum"] == 0
    page = schema["components"]["schemas"]["FeedbackList"]["properties"]
    assert "next_after" in page and "cursor" in page["next_after"]["description"]


def test_a_password_in_a_corrected_url_is_never_stored(store: FeedbackStore) -> None:
    item, created = store.add(WITH_PASSWORD, "false_positive", "url", "bob")
    assert created and item.url == PASSWORD_MASKED and item.target == "bank.example.org/login"  # as lists match it
    again, created = store.add("https://alice:other@bank.example.org/login", "false_positive", "url", "carol")
    assert not created and again.id == item.id  # the same correction, whatever the password
    deceptive, _ = store.add("http://www.paypal.com@evil.top/", "confirmed_malicious", "url", "bob")
    assert deceptive.url == "http://www.paypal.com@evil.top/"  # a user name alone is evidence: kept
    assert "s3cr3t" not in json.dumps([i.as_dict() for i in store.list()]).lower()
    assert target_of(WITH_PASSWORD, "url") == "bank.example.org/login"


WITH_TOKEN = "https://kit.example.net/cb?access_token=s3cr3tTok&code=s3cr3tCode&lang=en"


def test_a_token_in_a_corrected_url_is_never_stored_and_the_page_still_matches(store: FeedbackStore) -> None:
    item, created = store.add(WITH_TOKEN, "confirmed_malicious", "url", "bob")
    assert created and item.url == "https://kit.example.net/cb?access_token=***&code=***&lang=en"
    assert item.target == "kit.example.net/cb?access_token=***&code=***&lang=en"
    again, created = store.add(WITH_TOKEN.replace("s3cr3tTok", "other"), "confirmed_malicious", "url", "carol")
    assert not created and again.id == item.id  # the same page, whatever the token
    assert "s3cr3t" not in json.dumps([i.as_dict() for i in store.list()]).lower()
    _, block = store.site_lists()
    for scored in (WITH_TOKEN, WITH_TOKEN.replace("s3cr3tCode", "another") + "#f"):  # as the scorer gets them
        assert block.match_url(scored) == (
            f"analyst feedback #{item.id} by bob: kit.example.net/cb?access_token=***&code=***&lang=en"), scored
    assert not block.match_url(WITH_TOKEN.replace("lang=en", "lang=de"))  # another parameter: another page


def test_a_correction_stored_before_tokens_were_masked_is_the_same_pages(store: FeedbackStore) -> None:
    """A store's rows from before session 42 hold the token in their target: a new correction of the page must find
    them as duplicates and supersede them, or an old allowlisting and a new block stay active together."""
    old_target = "kit.example.net/cb?access_token=s3cr3tTok&code=s3cr3tCode&lang=en"
    with store._transaction() as cur:  # as an older release wrote it
        cur.execute(store._sql("INSERT INTO feedback (url, scope, target, kind, label, note, analyst, content_sha256, "
                               "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"),
                    (WITH_TOKEN, "url", old_target, "false_positive", 0, "", "ann", "x" * 64, "2026-11-01T00:00:00Z"))
    again, created = store.add(WITH_TOKEN, "false_positive", "url", "bob")
    assert not created and again.id == 1  # the same correction, already active: shown masked (below)
    blocked, created = store.add(WITH_TOKEN.replace("s3cr3tTok", "other"), "confirmed_malicious", "url", "bob")
    assert created and [item.id for item in store.list(active_only=True)] == [blocked.id]  # the old one superseded
    other_page = "https://kit.example.net/cb?access_token=t&code=c&lang=de"  # another parameter: another page
    assert store.add(other_page, "false_positive", "url", "bob")[1] and len(store.list(active_only=True)) == 2


def insert_as_an_older_release(store: FeedbackStore, url: str, target: str, kind: str = "false_positive") -> None:
    """A row as a release before session 42 wrote it: its URL and target hold the token."""
    with store._transaction() as cur:
        cur.execute(store._sql("INSERT INTO feedback (url, scope, target, kind, label, note, analyst, content_sha256, "
                               "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"),
                    (url, "url", target, kind, KINDS[kind], "", "ann", "x" * 64, "2026-11-01T00:00:00Z"))


def test_an_older_rows_token_never_reaches_the_training_data(store: FeedbackStore) -> None:
    insert_as_an_older_release(store, WITH_TOKEN, "kit.example.net/cb?access_token=s3cr3tTok&code=s3cr3tCode&lang=en")
    store.add("https://shop.example/cart;jsessionid=s3cr3tSid?item=1", "confirmed_malicious", "url", "bob")
    assert read_feedback(SOURCE).table["url"].tolist() == [
        "https://kit.example.net/cb?access_token=***&code=***&lang=en", "https://shop.example/cart;jsessionid=***?item=1"]


def test_a_user_name_hiding_the_real_host_blocks_the_real_host(store: FeedbackStore) -> None:
    """``http://www.paypal.com;sid=1@evil.top/signin`` opens evil.top: masking its user-info as a path parameter had
    stored the page as ``paypal.com;sid=***/signin``, so the block matched no kit, and an older release's row of
    it, read masked, stopped blocking."""
    kit = "http://www.paypal.com;sid=1@evil.top/signin"
    insert_as_an_older_release(store, kit, "evil.top/signin", "confirmed_malicious")
    _, block = store.site_lists()
    assert block.match_url(kit) == "analyst feedback #1 by ann: evil.top/signin"
    item, created = store.add(kit.replace("sid=1", "sid=2"), "confirmed_malicious", "url", "bob")
    assert not created and item.id == 1 and item.url == kit and item.target == "evil.top/signin"


def test_an_older_rows_token_is_never_shown_and_stays_in_its_history(store: FeedbackStore) -> None:
    """A duplicate of a correction stored before tokens were masked returns that row, masked as a new row would be
    (API and CLI); the store's row itself is history, and keeps what was written."""
    insert_as_an_older_release(store, WITH_TOKEN, "kit.example.net/cb?access_token=s3cr3tTok&code=s3cr3tCode&lang=en")
    insert_as_an_older_release(store, "https://shop.example/cart;jsessionid=s3cr3tSid?item=1",
                               "shop.example/cart;jsessionid=s3cr3tSid?item=1")
    again, created = store.add(WITH_TOKEN, "false_positive", "url", "bob")
    assert not created and again.id == 1 and again.analyst == "ann"
    assert again.url == "https://kit.example.net/cb?access_token=***&code=***&lang=en"
    assert again.target == "kit.example.net/cb?access_token=***&code=***&lang=en"
    sid, created = store.add("https://shop.example/cart;jsessionid=other?item=1", "false_positive", "url", "bob")
    assert not created and sid.id == 2 and sid.target == "shop.example/cart;jsessionid=***?item=1"  # a path's too
    added = CliRunner().invoke(cli_app, ["feedback", "add", WITH_TOKEN, "--kind", "false_positive", "--analyst", "c"])
    assert added.exit_code == 0 and "already recorded by ann" in added.output, added.output
    revoked = store.revoke(2, "dave", "cleaned")
    for text in (json.dumps([again.as_dict(), sid.as_dict(), revoked.as_dict(), *(i.as_dict() for i in store.list())]),
                 added.output):
        assert "s3cr3t" not in text.lower(), text
    with store._transaction(write=False) as cur:  # history: the rows as written, never rewritten
        cur.execute("SELECT url FROM feedback ORDER BY id")
        assert [row[0] for row in cur.fetchall()] == [WITH_TOKEN, "https://shop.example/cart;jsessionid=s3cr3tSid?item=1"]


def test_feedback_on_a_url_with_a_token_changes_the_verdict_and_never_shows_the_token(service) -> None:
    client, db = service
    before = score(client, WITH_TOKEN)
    posted = client.post("/v1/feedback", json={"url": WITH_TOKEN, "kind": "confirmed_malicious", "analyst": "a"})
    assert posted.status_code == 201, posted.text
    after = score(client, WITH_TOKEN)
    assert after["verdict"] == "malicious" and "analyst feedback #1 by a" in after["reasons"], (before, after)
    assert after["url"] == WITH_TOKEN  # the client's own input, echoed
    for text in (posted.text, client.get("/v1/feedback").text, after["reasons"]):
        assert "s3cr3t" not in text.lower(), text
    with sqlite3.connect(db) as conn:
        assert "s3cr3t" not in json.dumps(conn.execute("SELECT * FROM feedback").fetchall()).lower()


def test_feedback_on_a_url_with_a_password_never_lists_it(service) -> None:
    client, db = service
    posted = client.post("/v1/feedback", json={"url": WITH_PASSWORD, "kind": "confirmed_malicious", "analyst": "a"})
    assert posted.status_code == 201, posted.text
    assert posted.json()["feedback"]["url"] == PASSWORD_MASKED
    listed = client.get("/v1/feedback")
    assert listed.json()["feedback"][0]["url"] == PASSWORD_MASKED
    for text in (posted.text, listed.text, score(client, WITH_PASSWORD)["reasons"],
                 score(client, "https://bank.example.org/login")["reasons"]):
        assert "s3cr3t" not in text.lower(), text
    with sqlite3.connect(db) as conn:
        assert "s3cr3t" not in json.dumps(conn.execute("SELECT * FROM feedback").fetchall()).lower()


@pytest.mark.parametrize("given", ["%201", "1%20", "1.0", "01", "00001", "+1", "1_0", "1e0", "0", "-1", "%D9%A1",
                                   "0x1"])
def test_revoke_takes_only_a_plain_decimal_id(service, given: str) -> None:
    client, _ = service
    body = {"url": PHISHING, "kind": "false_positive", "analyst": "alice"}
    assert client.post("/v1/feedback", json=body).status_code == 201
    loose = client.post(f"/v1/feedback/{given}/revoke", json={"analyst": "bob", "reason": "x"})
    assert loose.status_code == 422, (given, loose.text)
    assert loose.json()["detail"][0]["loc"] == ["path", "feedback_id"] and loose.content.isascii()
    assert client.get("/v1/feedback?active=true").json()["count"] == 1  # nothing revoked
    assert client.post("/v1/feedback/1/revoke", json={"analyst": "bob", "reason": "x"}).status_code == 200


def test_the_openapi_schema_documents_feedback(service) -> None:
    client, _ = service
    paths = client.get("/openapi.json").json()["paths"]
    post = paths["/v1/feedback"]["post"]
    assert {"200", "201", "400", "401", "413", "422", "503"} <= set(post["responses"])
    assert post["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("FeedbackResponse")
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["kind"]["enum"] == ["false_positive", "confirmed_malicious"]
    revoke = paths["/v1/feedback/{feedback_id}/revoke"]["post"]
    assert {"404", "409", "422"} <= set(revoke["responses"])
    (feedback_id,) = revoke["parameters"]
    assert feedback_id["in"] == "path" and feedback_id["schema"]["type"] == "integer"
    assert feedback_id["schema"]["minimum"] == 1


def test_the_cli_records_lists_revokes_exports_and_blocklist_export_obeys(tmp_path: Path) -> None:
    db, runner = str(tmp_path / "fb.sqlite"), CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli_app, [*args])
        assert result.exit_code == 0, result.output
        return result.output

    run("feedback", "add", "http://good.example.com/page", "--kind", "false_positive", "--scope", "host",
        "--analyst", "alice", "--note", "ours", "--feedback-db", db)
    run("feedback", "add", "http://bad.example.net/kit", "--kind", "confirmed_malicious", "--scope", "host",
        "--analyst", "bob", "--feedback-db", db)
    assert "already recorded by alice" in run("feedback", "add", "http://good.example.com/", "--kind",
                                              "false_positive", "--scope", "host", "--analyst", "x",
                                              "--feedback-db", db)
    refused = runner.invoke(cli_app, ["feedback", "add", "http://co.uk/", "--kind", "confirmed_malicious",
                                      "--scope", "host", "--analyst", "x", "--feedback-db", db])
    assert refused.exit_code == 2 and "public suffix" in refused.output
    run("feedback", "export", "-o", str(tmp_path / "out"), "--feedback-db", db)
    assert (tmp_path / "out" / "allow.txt").read_text() == "good.example.com\n"
    assert (tmp_path / "out" / "block.txt").read_text() == "bad.example.net\n"
    assert len((tmp_path / "out" / "feedback.jsonl").read_text().splitlines()) == 2

    scored = tmp_path / "scored.csv"
    pd.DataFrame({"url": ["http://x.good.example.com/a", "http://other.example.org/b"],
                  "verdict": ["malicious", "malicious"], "score": [0.99, 0.99]}).to_csv(scored, index=False)
    run("blocklist", "export", str(scored), "-o", str(tmp_path / "rules"), "-f", "hosts", "--allow-top", "0",
        "--feedback-db", db)
    hosts = (tmp_path / "rules" / "hosts").read_text()
    assert "bad.example.net" in hosts and "other.example.org" in hosts and "good.example.com" not in hosts
    assert "allowlisted (analyst feedback #1 by alice" in (tmp_path / "rules" / "rejected.csv").read_text()

    listed = [json.loads(line) for line in run("feedback", "list", "--json", "--feedback-db", db).splitlines()]
    assert [item["analyst"] for item in listed] == ["alice", "bob"]
    run("feedback", "revoke", "1", "--analyst", "carol", "--reason", "sold the domain", "--feedback-db", db)
    assert "revoked by carol: sold the domain" in run("feedback", "list", "--feedback-db", db)
    run("blocklist", "export", str(scored), "-o", str(tmp_path / "rules2"), "-f", "hosts", "--allow-top", "0",
        "--feedback-db", db)
    assert "x.good.example.com" in (tmp_path / "rules2" / "hosts").read_text()  # revoked: blockable again


def test_blocklist_export_never_blocks_for_a_url_an_analyst_cleared() -> None:
    from cybersentinel.ops.blocklist import Guard, entries_from_scored

    frame = pd.DataFrame({"url": ["http://shop.example.org/promo", "http://shop.example.org/kit/"],
                          "verdict": ["malicious", "malicious"], "score": [0.99, 0.99]})
    guard = Guard(SiteList(urls={"https://www.shop.example.org/promo/": "analyst feedback #1 by alice"}), {}, 0)
    entries, rejected, _ = entries_from_scored(frame, "scored.csv", guard=guard)
    assert [e.value for e in entries] == ["shop.example.org"]  # the other page's verdict still blocks the host
    assert [r.source for r in rejected] == ["scored.csv:1"]
    assert rejected[0].reason == "allowlisted URL (analyst feedback #1 by alice: shop.example.org/promo): never blocked"


def test_a_file_that_is_not_a_sqlite_database_is_named_not_crashed(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CYBERSENTINEL_FEEDBACK_DSN", raising=False)
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "x.sqlite"
    db.write_text("garbage\n")
    with pytest.raises(StoreUnavailableError, match=f"{db}: not a feedback database"):
        FeedbackStore.from_env(path=db).list()
    scored = tmp_path / "scored.csv"
    scored.write_text("url,verdict\nhttp://bad.example.net/kit,malicious\n")
    for args in (["feedback", "list"], ["feedback", "migrate"], ["feedback", "export", "-o", "out"],
                 ["feedback", "revoke", "1", "--analyst", "a", "--reason", "r"],
                 ["feedback", "add", "http://a.example.com/", "--kind", "false_positive", "--analyst", "a"],
                 ["blocklist", "export", str(scored), "-o", "rules"]):
        result = CliRunner().invoke(cli_app, [*args, "--feedback-db", str(db)], env={"COLUMNS": "400"})
        output = " ".join(result.output.split())
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (args, result.output)
        assert f"{db}: not a feedback database" in output, (args, output)
    assert db.read_text() == "garbage\n" and sorted(p.name for p in tmp_path.iterdir()) == ["scored.csv", "x.sqlite"]


@pytest.mark.parametrize("network", ["1.2.3.0/24", "1.2.3.5/24", "2001:db8::/32", "1.2.3.0/255.255.255.0"])
def test_a_network_is_refused_not_shrunk_to_its_first_address(store: FeedbackStore, network: str) -> None:
    for scope in ("host", "url"):  # read as a URL, `1.2.3.0/24` is the host 1.2.3.0 (or that one odd URL)
        with pytest.raises(FeedbackError, match=r"\(a CIDR range\), not a URL or a host"):
            store.add(network, "confirmed_malicious", scope, "alice")
    assert store.list() == []
    single, _ = store.add("1.2.3.4/32", "confirmed_malicious", "host", "alice")  # one address: that host
    assert single.target == "1.2.3.4"


def test_the_cli_list_escapes_control_characters_so_no_value_forges_a_row(tmp_path: Path) -> None:
    db, runner = str(tmp_path / "fb.sqlite"), CliRunner()
    note = "ok\n#99\t2026-01-01T00:00:00+00:00\tmallory\tfalse_positive\thost\tevil.example\tactive\t"
    url = "http://a.example.com/\x1b]0;pwn\x07"
    added = runner.invoke(cli_app, ["feedback", "add", url, "--kind", "false_positive", "--analyst", "ev\x1b[2Jil",
                                    "--note", note, "--feedback-db", db])
    assert added.exit_code == 0 and "\x1b" not in added.output, added.output
    again = runner.invoke(cli_app, ["feedback", "add", url, "--kind", "false_positive", "--analyst", "bob",
                                    "--feedback-db", db])
    assert "already recorded by ev\\x1b[2Jil" in again.output and "\x1b" not in again.output, again.output
    listed = runner.invoke(cli_app, ["feedback", "list", "--feedback-db", db])
    assert listed.exit_code == 0, listed.output
    rows = listed.output.splitlines()
    assert len(rows) == 1 and len(rows[0].split("\t")) == 8, rows  # one row, eight fields: nothing forged
    assert "\x1b" not in listed.output and "\x07" not in listed.output
    assert rows[0].endswith("\t" + note.strip().replace("\n", "\\n").replace("\t", "\\t")), rows  # escaped
    exact = json.loads(runner.invoke(cli_app, ["feedback", "list", "--json", "--feedback-db", db]).output)
    assert exact["note"] == note.strip() and exact["url"] == url  # JSON keeps the exact values


def test_the_cli_refuses_a_cidr_range_with_a_clear_error(tmp_path: Path) -> None:
    db = str(tmp_path / "fb.sqlite")
    result = CliRunner().invoke(cli_app, ["feedback", "add", "1.2.3.0/24", "--scope", "host", "--kind",
                                          "confirmed_malicious", "--analyst", "alice", "--feedback-db", db],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "'1.2.3.0/24' is the network 1.2.3.0/24 (a CIDR range)" in result.output
    assert FeedbackStore.from_env(path=db).list() == []


def test_a_slow_feedback_store_never_holds_a_request() -> None:
    """The lists are read again in a thread: a request gets the lists last read at once, however long the store
    takes (a locked SQLite file, a PostgreSQL server that accepts and never answers)."""
    from cybersentinel.ops.service import LiveDecider
    from cybersentinel.scoring.policy import SiteList

    class SlowStore:
        def __init__(self) -> None:
            self.calls = 0

        def version(self) -> tuple[int, int, int]:
            self.calls += 1
            if self.calls > 1:
                time.sleep(1.0)
            return self.calls, self.calls, 0

        def site_lists(self) -> tuple[SiteList, SiteList]:
            return SiteList(), SiteList()

    store = SlowStore()
    live = LiveDecider(lambda allow, block: ("lists", store.calls), store, every_s=0.0)
    first = live.decider
    started = time.monotonic()
    assert [live.current() for _ in range(50)] == [first] * 50  # the read in flight is not waited for
    assert time.monotonic() - started < 0.5 and store.calls == 2  # one read at a time
    deadline = time.monotonic() + 10
    while live.current() == first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live.current() == ("lists", 2)  # then its lists are served


def test_a_host_wide_correction_may_not_block_what_block_rules_never_cover_nor_allow_a_whole_ranked_host() -> None:
    from cybersentinel.ops.blocklist import Guard
    from cybersentinel.ops.feedback import host_correction_problem

    guard = Guard(SiteList({"partner-bank.com": "our partner"}), {"microsoft.com": 4, "000webhostapp.com": 17_652},
                  addresses={"8.8.8.8": "public DNS resolver dns.google"})
    for target in ("microsoft.com", "login.microsoft.com", "partner-bank.com", "shop.partner-bank.com", "8.8.8.8"):
        assert host_correction_problem(target, "confirmed_malicious", guard).startswith("a block on all of"), target
    assert host_correction_problem("bank.com", "confirmed_malicious", guard) == ""  # another site
    assert host_correction_problem("kit.000webhostapp.com", "confirmed_malicious", guard) == ""
    assert host_correction_problem("203.0.113.9", "confirmed_malicious", guard).startswith("a block on all of")
    assert host_correction_problem("45.67.89.13", "confirmed_malicious", guard) == ""
    assert "covers every site under it" in host_correction_problem("000webhostapp.com", "false_positive", guard)
    for fine in ("x.000webhostapp.com", "www.microsoft.com", "small-shop.example", "45.67.89.13"):
        assert host_correction_problem(fine, "false_positive", guard) == "", fine
    # a service under its owner's suffix carries the suffix's rank, and nothing under it is anyone else's
    owners = Guard(SiteList(), {"googleapis.com": 5, "service.gov.uk": 437})
    for fine in ("update.googleapis.com", "access.service.gov.uk"):
        assert host_correction_problem(fine, "false_positive", owners) == "", fine


def test_the_service_refuses_a_host_block_on_an_allowlisted_site(model_dir: Path, tmp_path: Path,  # noqa: F811
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CYBERSENTINEL_FEEDBACK_DSN", raising=False)
    allow = tmp_path / "allow.txt"
    allow.write_text("partner-bank.com\n")
    settings = Settings(model_dir=model_dir, feeds_dir=None, feedback_db=tmp_path / "fb.sqlite", allow_files=[allow])
    client = TestClient(create_app(settings, Detector.from_dir(model_dir)), base_url="http://127.0.0.1")
    body = {"url": "https://partner-bank.com/login", "kind": "confirmed_malicious", "scope": "host", "analyst": "a"}
    response = client.post("/v1/feedback", json=body)
    assert response.status_code == 422 and "allowlisted" in response.json()["detail"]
    assert client.post("/v1/feedback", json={**body, "scope": "url"}).status_code == 201  # one page: as before
    assert score(client, "https://partner-bank.com/other")["verdict"] == "benign"
