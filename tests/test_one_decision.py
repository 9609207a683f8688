"""One decision everywhere: the same inputs through `predict`, the service's /v1/score (what the web page
shows), `monitor` and `blocklist export` get the same verdicts and scores, because every door calls the one
decision policy. Feeds from the offline mirror, a popularity list and an allowlist are in play, so the rules
that used to differ by door (popularity discount, listed floor, bare addresses) are exercised."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from fixtures_model import REPO, model_dir  # noqa: F401
from typer.testing import CliRunner

from cybersentinel.cli.app import app
from cybersentinel.cli.monitor import _model_scorer
from cybersentinel.intel.feeds import IntelIndex
from cybersentinel.ops.blocklist import Guard, build, entries_from_scored
from cybersentinel.ops.monitor import run_monitor
from cybersentinel.ops.service import Settings, create_app
from cybersentinel.scoring.policy import SiteList

FEEDS = REPO.parent / "shared" / "data" / "feeds"
URLS = [
    "http://ads-social-network-info.hol.es/2017/recovery-chekpoint-login.html",  # phishing shape
    "http://paypal.com.account-verify.xyz/signin",
    "https://www.example.com/",  # popular: the discount must apply at every door
    "https://mail.google.com/mail/u/0/",  # popular registered domain, a subdomain
    "http://1.10.16.5/index.php",  # in Spamhaus DROP: the listed floor
    "8.8.8.8",  # a bare public address: judged by feeds only
    "http://185.225.17.45/",  # the root page of an address: the model's word alone at most suspicious
    "http://10.1.2.3/login",  # unreachable from the internet
    "https://intranet.corp-example.com/login.php",  # allowlisted
    "http://185.225.17.45/~admin/chase/index.html",
    "http://185.225.17.45:2095/webmail/?_task=login",  # a sign-in page on a public address: corroborates the model
    "http://www.paypal.com@evil.top/login",  # a host name before '@': deceptive by construction
    "http://kit.example-shop.top/o365/index.html#jane.doe@corp.example",  # a victim's address: corroborates
    "http://185.225.17.45/bins/sora.mips",  # a program for download on a public address: corroborates
    "https://files.example-share.top/docs/Invoice_0042.pdf.exe",  # a program named as a document: deceptive
    "https://blog.example.org/wp-login.php",  # a stock WordPress file
    "https://blog.example.org/wp-content/themes/x/style.css",  # a page asset
]


@pytest.fixture(scope="module")
def feeds() -> Path:
    if not (FEEDS / "firehol_level1.txt").is_file():
        pytest.skip(f"no feeds mirror at {FEEDS}")
    return FEEDS


def test_every_door_gives_the_same_verdicts_and_scores(model_dir: Path, feeds: Path, tmp_path: Path):  # noqa: F811
    allow = tmp_path / "allow.txt"
    allow.write_text("corp-example.com\n")
    source = tmp_path / "in.csv"
    pd.DataFrame({"url": URLS}).to_csv(source, index=False)

    # predict
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["predict", "-i", str(source), "-o", str(out), "--model-dir", str(model_dir),
                                      "--feeds-dir", str(feeds), "--allow-file", str(allow), "--no-progress"])
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(out, keep_default_na=False)
    by_predict = {u: (v, round(float(s), 6)) for u, v, s in zip(predicted["url"], predicted["verdict"],
                                                                 predicted["score"], strict=True)}
    # predict on a text file (read as Arrow binary): the same rows, rules and reasons as from the CSV
    text_in, text_out = tmp_path / "in.txt", tmp_path / "out_text.csv"
    text_in.write_text("\n".join(URLS) + "\n")
    result = CliRunner().invoke(app, ["predict", "-i", str(text_in), "-o", str(text_out), "--model-dir",
                                      str(model_dir), "--feeds-dir", str(feeds), "--allow-file", str(allow),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    from_text = pd.read_csv(text_out, keep_default_na=False)
    assert from_text.equals(predicted), "predict gives other results for the same URLs in a text file"

    # the service (the web page renders exactly this response)
    settings = Settings(model_dir=model_dir, feeds_dir=feeds, allow_files=(allow,))
    response = TestClient(create_app(settings), base_url="http://127.0.0.1").post("/v1/score", json={"urls": URLS})
    assert response.status_code == 200
    by_service = {r["url"]: (r["verdict"], round(r["score"], 6)) for r in response.json()["results"]}

    # monitor: the same URLs in a proxy log
    log = tmp_path / "access.log"
    # (an address alone reaches a proxy's log as CONNECT's target: a GET names a URL, a web page on the address)
    requests = [f"GET {u}" if "://" in u else f"CONNECT {u}:443" for u in URLS]
    log.write_text("".join(f'10.0.0.9 - - [30/Nov/2026:10:00:00 +0000] "{request} HTTP/1.1" 200 512 "-" "curl"\n'
                           for request in requests))
    index = IntelIndex.from_dir(feeds)
    alerts = io.StringIO()
    blocklist = tmp_path / "monitor.csv"
    run_monitor(log, _model_scorer(model_dir, index, SiteList(["corp-example.com"], "allowlist"))[0], index=index,
                once=True, alerts=alerts, blocklist=blocklist, guard=Guard(popularity=index.popularity),
                alert_verdicts=("malicious", "suspicious", "benign"))
    url_alerts = [json.loads(line) for line in alerts.getvalue().splitlines() if '"type": "url"' in line]
    by_monitor = {a["url"].removeprefix("http://") if a["url"].removeprefix("http://") in URLS else a["url"]:
                  (a["verdict"], a["score"]) for a in url_alerts}

    assert by_predict == by_service, "predict and the service disagree"
    assert by_monitor == by_predict, "monitor and predict disagree"
    assert by_predict["8.8.8.8"][0] == "benign" and by_predict["http://1.10.16.5/index.php"][0] == "malicious"
    assert by_predict["https://intranet.corp-example.com/login.php"] == ("benign", 0.0)

    # blocklist export blocks what was judged malicious, never a popular or allowlisted site
    entries, rejected, _ = entries_from_scored(predicted, "out.csv", guard=Guard(SiteList(["corp-example.com"]),
                                                                                  index.popularity))
    rules = {e.value for e in build(entries).entries}
    malicious = {u for u, (v, _) in by_predict.items() if v == "malicious"}
    assert len(entries) + len(rejected) == len(malicious)
    assert "1.10.16.5/32" in rules and not any("google.com" in r or r == "example.com" for r in rules)
    monitored = {row["url"] for row in csv.DictReader(io.StringIO(blocklist.read_text()))}
    assert monitored == {e.value.removesuffix("/32") for e in entries}
