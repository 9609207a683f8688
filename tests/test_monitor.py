"""The access-log monitor: parsing, following across rotation, alerts and the block list it keeps."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybersentinel.intel.feeds import IntelIndex
from cybersentinel.ops.blocklist import Guard
from cybersentinel.ops.monitor import (
    MAX_LINE_BYTES,
    TOO_LONG,
    LogRecord,
    MalformedLineError,
    SiteHostNeededError,
    follow,
    parse_line,
    run_monitor,
)
from cybersentinel.scoring.decider import Decider
from cybersentinel.scoring.policy import Policy
from cybersentinel.url.parsing import split_url

TIME = "24/Nov/2026:03:00:00 +0000"


def combined(client: str, request: str, status: int = 200) -> str:
    return f'{client} - - [{TIME}] "{request}" {status} 512 "-" "Mozilla/5.0 (X11; Linux)"'


def squid(client: str, method: str, url: str, peer: str = "-") -> str:
    return f"1700000000.123    150 {client} TCP_MISS/200 1234 {method} {url} - HIER_DIRECT/{peer} text/html"


class Scorer:
    """A deterministic stand-in for the model (our own API) whose scores go through the real decision policy,
    with the feeds index when given: records what it was asked."""

    def __init__(self, index=None):
        self.calls: list[list[str]] = []
        self.decider = Decider(Policy(threshold=0.7, suspicious_band=0.2), index)

    def __call__(self, urls: list[str]) -> list[dict]:
        self.calls.append(list(urls))
        model = np.array([0.95 if "phish" in url or "malware" in url else 0.6 if "maybe" in url else 0.05
                          for url in urls])
        hosts = [split_url(url).host for url in urls]
        scores, verdicts, reasons, feeds = self.decider.apply(model, np.ones(len(urls), bool), hosts,
                                                              np.arange(len(urls)), np.zeros(len(urls), bool))
        return [{"score": s, "verdict": v, "reasons": r or ("phishing words in path" if m > 0.9 else ""),
                 "model_score": m, "feeds": f} for s, v, r, m, f in zip(scores, verdicts, reasons, model, feeds,
                                                                          strict=True)]


def index() -> IntelIndex:
    return IntelIndex.build({"drop": [ipaddress.ip_network("1.10.16.0/20"), ipaddress.ip_network("5.5.5.0/24")],
                             "fh": [ipaddress.ip_network("10.0.0.0/8")]},
                            {"hosts": ["blocked.top"]}, [("example.org", 5)])


# ------------------------------------------------------------------------------------------------ parsing


def test_parse_combined_proxy_and_origin_form():
    proxy = parse_line(combined("203.0.113.9", "GET http://evil.example/x?a=1 HTTP/1.1"))
    assert (proxy.format, proxy.client_ip, proxy.method, proxy.url) == ("combined", "203.0.113.9", "GET",
                                                                        "http://evil.example/x?a=1")
    origin = parse_line(combined("203.0.113.9", "GET /login.php HTTP/1.1"))
    assert origin.url is None and origin.target == "/login.php"  # a path alone is not a URL
    assert parse_line(combined("203.0.113.9", "GET /login.php HTTP/1.1"),
                      site_host="shop.example.org").url == "http://shop.example.org/login.php"
    connect = parse_line(combined("203.0.113.9", "CONNECT Login.Phish.top:443 HTTP/1.1"))
    assert connect.url == "login.phish.top"


def test_parse_common_vhost_and_escaped_quotes():
    common = parse_line(f'host.example - frank [{TIME}] "GET /a HTTP/1.0" 404 -')
    assert (common.client, common.client_ip, common.status) == ("host.example", None, 404)
    vhost = parse_line(f'shop.example.org:443 198.51.100.7 - - [{TIME}] "POST /pay HTTP/2.0" 302 0 '
                       r'"https://ref.example/" "UA \"quoted\""')
    assert (vhost.format, vhost.url, vhost.client_ip) == ("vhost_combined", "https://shop.example.org/pay",
                                                          "198.51.100.7")


def test_parse_squid_native():
    record = parse_line(squid("192.168.1.10", "GET", "http://malware.top/p.exe", "1.10.16.9"))
    assert record == LogRecord("squid", "192.168.1.10", "192.168.1.10", "1700000000.123", "GET",
                               "http://malware.top/p.exe", 200, "http://malware.top/p.exe", "1.10.16.9")
    tunnel = parse_line(squid("192.168.1.10", "CONNECT", "login.phish.top:443", "5.5.5.5"))
    assert (tunnel.url, tunnel.server_ip) == ("login.phish.top", "5.5.5.5")
    error = parse_line("1700000001.000      0 192.168.1.11 NONE_NONE/400 0 NONE error:invalid-request - HIER_NONE/- -")
    assert error.url is None and error.server_ip is None


def test_a_non_http_request_is_a_parsed_line_without_url():
    record = parse_line(combined("203.0.113.9", r"\x16\x03\x01\x00", 400))
    assert record.url is None and record.method == ""


@pytest.mark.parametrize(("line", "reason"), [
    ("", "empty line"), ("garbage", "not a known log line"), (TOO_LONG, f"longer than {MAX_LINE_BYTES} bytes"),
    (f'1.2.3.4 - - [{TIME}] "GET / HTTP/1.1" 2000 1', "not a known log line"),
    (f'1.2.3.4 - - [{TIME}] "GET / HTTP/1.1 200 1', "not a known log line"),  # unterminated quote
])
def test_malformed_lines_have_a_fixed_reason(line, reason):
    with pytest.raises(MalformedLineError, match=reason):
        parse_line(line)


def test_explicit_format_rejects_other_formats():
    with pytest.raises(MalformedLineError, match="not a squid log line"):
        parse_line(combined("1.2.3.4", "GET / HTTP/1.1"), "squid")
    with pytest.raises(ValueError, match="unknown log format"):
        parse_line("x", "json")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="\n"), max_size=400)
       | st.builds(combined, st.text(max_size=20), st.text(max_size=80)))
def test_any_line_is_parsed_or_malformed_never_a_crash(line):
    try:
        record = parse_line(line)
    except MalformedLineError as err:
        assert str(err) in ("empty line", "not a known log line")
        return
    assert isinstance(record, LogRecord) and 100 <= record.status <= 999


@settings(max_examples=100, deadline=None)
@given(client=st.ip_addresses().map(str), path=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/._-?=&%",
                                                      max_size=60).map(lambda p: "/" + p),
       status=st.integers(100, 599), method=st.sampled_from(["GET", "POST", "HEAD", "PUT"]))
def test_generated_combined_lines_round_trip(client, path, status, method):
    record = parse_line(combined(client, f"{method} {path} HTTP/1.1", status), site_host="site.example")
    assert (record.client_ip, record.method, record.target, record.status) == (client, method, path, status)
    assert record.url == f"http://site.example{path}"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=120).filter(lambda b: b"\n" not in b) | st.sampled_from([
    combined("5.5.5.5", "GET http://phish.top/a HTTP/1.1").encode(), squid("10.0.0.1", "GET", "http://ok.test/").encode(),
]), max_size=30))
def test_every_line_of_a_file_is_counted_parsed_or_malformed(lines):
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "access.log"
        log.write_bytes(b"".join(line + b"\n" for line in lines))
        report = run_monitor(log, Scorer(), index=index(), once=True, alerts=io.StringIO())
    assert report.get("lines", 0) == len(lines)
    assert report.get("parsed", 0) + report["malformed"] == len(lines)


# ------------------------------------------------------------------------------------------------ following


def test_follow_survives_rename_rotation_truncation_partial_and_overlong_lines(tmp_path):
    log = tmp_path / "access.log"
    log.write_text("old line, skipped\n")
    stats: Counter = Counter()
    lines = follow(log, stats, poll=0.01)
    assert next(lines) is None  # starts at the end: existing content is not replayed
    with open(log, "a") as handle:
        handle.write("one\ntw")
    assert [next(lines), next(lines)] == ["one", None]  # "tw" waits for its newline
    with open(log, "a") as handle:
        handle.write("o\n" + "x" * (MAX_LINE_BYTES + 10) + "\nthree\n")
    assert [next(lines), next(lines), next(lines)] == ["two", TOO_LONG, "three"]
    with open(log, "a") as handle:
        handle.write("last of old file, no newline")
    os.rename(log, tmp_path / "access.log.1")
    log.write_text("first of new file\n")
    got = [line for line in (next(lines) for _ in range(6)) if line is not None]
    assert got[:2] == ["last of old file, no newline", "first of new file"] and stats["rotations"] == 1
    log.write_text("")  # copytruncate
    assert next(lines) is None
    assert stats["truncations"] == 1
    with open(log, "a") as handle:
        handle.write("after truncation\n")
    assert [line for line in (next(lines) for _ in range(3)) if line is not None] == ["after truncation"]
    lines.close()


def test_follow_waits_for_a_missing_file(tmp_path):
    log = tmp_path / "later.log"
    lines = follow(log, Counter(), poll=0.01)
    assert next(lines) is None
    log.write_text("hello\n")
    assert [line for line in (next(lines) for _ in range(3)) if line is not None] == ["hello"]
    lines.close()


# ------------------------------------------------------------------------------------------------ monitoring


def read_alerts(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_monitor_follows_a_live_log_across_rotation(tmp_path):
    log = tmp_path / "access.log"
    log.write_text(combined("5.5.5.5", "GET http://phish.top/old HTTP/1.1") + "\n")
    alerts_path, blocklist, hosts = tmp_path / "alerts.jsonl", tmp_path / "blocklist.csv", tmp_path / "hosts"
    scorer, stop, result = Scorer(), threading.Event(), {}

    def run():
        with open(alerts_path, "a") as alerts:
            result["report"] = run_monitor(log, scorer, index=index(), alerts=alerts, blocklist=blocklist,
                                           render={"hosts": hosts}, from_start=True, stop=stop, poll=0.02,
                                           duration=30)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.2)

    def append(path: Path, *lines: str) -> None:
        with open(path, "a") as handle:
            handle.write("".join(line + "\n" for line in lines))

    append(log, combined("203.0.113.9", "GET http://login.phish.top/a HTTP/1.1"),
           combined("203.0.113.9", "GET http://login.phish.top/a HTTP/1.1"),  # repeated: scored once
           "this is not a log line", "",
           combined("1.10.16.7", "GET http://www.example.org/ HTTP/1.1"),  # listed client address
           combined("10.1.2.3", "GET http://maybe.example.net/ HTTP/1.1"))  # private client; suspicious URL
    wait_for(lambda: len(read_alerts(alerts_path)) >= 5)
    os.rename(log, tmp_path / "access.log.1")  # rotation: rename, then a new file
    append(log, squid("192.168.1.5", "GET", "http://malware.top/x.exe", "5.5.5.9"), "\x00\xff garbage")
    wait_for(lambda: len(read_alerts(alerts_path)) >= 7)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()

    report = result["report"]
    assert report["lines"] == 9 and report["parsed"] == 6 and report["malformed"] == 3
    assert report["malformed_reasons"] == {"not a known log line": 2, "empty line": 1}
    assert report["rotations"] == 1
    alerts = {(a["type"], a.get("url") if a["type"] == "url" else a["ip"]): a for a in read_alerts(alerts_path)}
    assert set(alerts) == {("url", "http://phish.top/old"), ("ip", "5.5.5.5"),
                           ("url", "http://login.phish.top/a"), ("ip", "1.10.16.7"),
                           ("url", "http://maybe.example.net/"), ("url", "http://malware.top/x.exe"),
                           ("ip", "5.5.5.9")}
    assert alerts[("ip", "1.10.16.7")]["feeds"] == ["drop"] and alerts[("ip", "1.10.16.7")]["role"] == "client"
    assert alerts[("ip", "5.5.5.9")]["role"] == "server"
    assert alerts[("url", "http://maybe.example.net/")]["verdict"] == "suspicious"
    assert alerts[("url", "http://login.phish.top/a")]["reasons"] == "phishing words in path"
    assert sum(call.count("http://login.phish.top/a") for call in scorer.calls) == 1

    with open(blocklist, newline="") as handle:
        blocked = {row["url"]: row for row in csv.DictReader(handle)}
    # the suspicious URL and the listed client are alerted, not blocked
    assert sorted(blocked) == ["5.5.5.9", "login.phish.top", "malware.top", "phish.top"]
    assert hosts.read_text().splitlines()[1:] == ["0.0.0.0 login.phish.top", "0.0.0.0 malware.top",
                                                  "0.0.0.0 phish.top"]


def test_monitor_once_reloads_the_block_list_and_combines_intel(tmp_path):
    log = tmp_path / "access.log"
    log.write_text("\n".join([
        combined("8.8.8.8", "GET http://a.blocked.top/ HTTP/1.1"),  # benign to the model, on a block list
        combined("8.8.8.8", "GET http://phish.top/ HTTP/1.1"),
    ]) + "\n")
    blocklist = tmp_path / "blocklist.csv"
    blocklist.write_text("url,verdict,score,reasons,first_seen\nearlier.example,malicious,0.99,from before,t0\n")
    alerts = io.StringIO()
    report = run_monitor(log, Scorer(index()), index=index(), once=True, alerts=alerts, blocklist=blocklist)
    assert report["lines"] == 2 and report["alerts"] == 2 and report["blocked"] == 3
    listed = json.loads(alerts.getvalue().splitlines()[0])
    assert (listed["verdict"], listed["score"], listed["model_score"]) == ("malicious", 0.9, 0.05)
    assert listed["feeds"] == ["hosts"]
    assert "earlier.example" in blocklist.read_text()  # a restart loses nothing


def test_only_a_page_the_site_served_gets_its_host_blocked(tmp_path):
    # anyone whose requests the log holds chooses what they name (an image tag makes browsers ask): a request the
    # site did not serve, or a host named before '@', says nothing of the site
    log = tmp_path / "access.log"
    log.write_text("\n".join([
        combined("10.0.0.5", "GET http://login.phish.top/a HTTP/1.1"),
        combined("10.0.0.5", "GET http://redirected-phish.top/b HTTP/1.1", 301),
        combined("10.0.0.5", "GET http://kit-phish.top/c HTTP/1.1", 503),
        combined("10.0.0.5", "GET http://phish.top@shop.example.net/ HTTP/1.1"),  # shop.example.net's own page
        combined("10.0.0.5", "GET http://www.github.com@malware.top/ HTTP/1.1"),  # malware.top's page
        combined("10.0.0.5", "GET http://shop.example.org/?s=phish-login HTTP/1.1"),  # a home page ignores ?s=
        combined("10.0.0.5", "GET http://later-phish.top/x HTTP/1.1", 302),  # redirected first...
        combined("10.0.0.5", "GET http://later-phish.top/x HTTP/1.1"),  # ...then served: blocked after all
    ]) + "\n")
    for batch_size in (256, 1):  # the later request in the same batch, and in a later one
        blocklist, alerts = tmp_path / f"blocklist{batch_size}.csv", io.StringIO()
        report = run_monitor(log, Scorer(), once=True, alerts=alerts, blocklist=blocklist, batch_size=batch_size)
        assert report["alerts"] == 7
        assert sorted(row["url"] for row in csv.DictReader(blocklist.open())) == [
            "later-phish.top", "login.phish.top", "malware.top"]


def test_the_rules_a_restart_renders_pass_the_guard(tmp_path):
    from cybersentinel.ops.blocklist import Guard
    from cybersentinel.scoring.policy import SiteList

    blocklist, hosts = tmp_path / "blocklist.csv", tmp_path / "hosts"
    blocklist.write_text("url,verdict,score,reasons,first_seen\nfriend.example.net,malicious,0.99,before,t0\n")
    log = tmp_path / "access.log"
    log.write_text(combined("10.0.0.5", "GET http://login.phish.top/a HTTP/1.1") + "\n")
    run_monitor(log, Scorer(), once=True, alerts=io.StringIO(), blocklist=blocklist, render={"hosts": hosts},
                guard=Guard(SiteList(["friend.example.net"], "allowlist")))
    assert "friend.example.net" in blocklist.read_text()  # the state keeps what was decided before
    assert hosts.read_text().splitlines()[1:] == ["0.0.0.0 login.phish.top"]  # but no rule blocks it now


def test_monitor_memory_is_bounded_by_the_lru(tmp_path):
    log = tmp_path / "access.log"
    urls = [f"http://site{i % 50}.test/" for i in range(400)]
    log.write_text("".join(combined("8.8.8.8", f"GET {u} HTTP/1.1") + "\n" for u in urls))
    scorer = Scorer()
    report = run_monitor(log, scorer, once=True, alerts=io.StringIO(), seen_size=10, batch_size=7)
    assert report["lines"] == 400
    assert report["urls_scored"] > 50  # with room for 10, evicted URLs are scored again
    assert max(len(call) for call in scorer.calls) <= 7
    report = run_monitor(log, scorer, once=True, alerts=io.StringIO(), seen_size=100)
    assert report["urls_scored"] == 50


def test_monitor_max_lines_stops(tmp_path):
    log = tmp_path / "access.log"
    log.write_text("".join(combined("8.8.8.8", f"GET http://s{i}.test/ HTTP/1.1") + "\n" for i in range(20)))
    report = run_monitor(log, Scorer(), from_start=True, max_lines=5, alerts=io.StringIO(), poll=0.01)
    assert report["lines"] == 5


def test_cli_monitor_validates_options(tmp_path):
    from typer.testing import CliRunner

    from cybersentinel.cli.app import app

    log = tmp_path / "access.log"
    log.write_text("")
    result = CliRunner().invoke(app, ["monitor", str(log), "--render", "hosts=/tmp/x"])
    assert result.exit_code == 2 and "--render needs --blocklist" in result.output
    result = CliRunner().invoke(app, ["monitor", str(log), "--format", "json"])
    assert result.exit_code == 2 and "choose from auto" in result.output


def test_a_web_server_log_without_site_host_is_refused(tmp_path):
    log = tmp_path / "access.log"
    log.write_text(combined("8.8.8.8", "GET /wp-login.php HTTP/1.1") + "\n")
    with pytest.raises(SiteHostNeededError, match="--site-host"):
        run_monitor(log, Scorer(), once=True, alerts=io.StringIO())
    report = run_monitor(log, Scorer(), once=True, alerts=io.StringIO(), site_host="shop.example")
    assert report["urls_scored"] == 1


def test_a_path_alone_in_a_followed_proxy_log_is_skipped_not_fatal(tmp_path):
    """Anyone can send a forward proxy `GET /`, which it logs as a bare path: once the log named hosts that line is
    counted and skipped, and the proxy lines read with it in the same batch are still scored."""
    log, alerts_path = tmp_path / "access.log", tmp_path / "alerts.jsonl"
    log.write_text("")
    stop, result = threading.Event(), {}

    def run():
        with open(alerts_path, "a") as alerts:
            result["report"] = run_monitor(log, Scorer(), alerts=alerts, from_start=True, stop=stop, poll=0.02,
                                           duration=30)

    thread = threading.Thread(target=run)
    thread.start()
    with open(log, "a") as handle:  # one write: the three lines arrive in one batch
        handle.write(combined("203.0.113.9", "GET http://phish.top/a HTTP/1.1") + "\n"
                     + f'9.9.9.9 - - [{TIME}] "GET / HTTP/1.1" 400 0 "-" "-"\n'
                     + combined("203.0.113.9", "GET http://malware.top/b HTTP/1.1") + "\n")
    wait_for(lambda: len(read_alerts(alerts_path)) >= 2)
    stop.set()
    thread.join(10)
    assert not thread.is_alive() and "report" in result  # it did not stop with an error
    assert {a["url"] for a in read_alerts(alerts_path)} == {"http://phish.top/a", "http://malware.top/b"}
    assert result["report"]["hostless_skipped"] == 1 and result["report"]["urls_scored"] == 2


def test_a_web_server_log_is_refused_only_before_any_line_named_a_host(tmp_path):
    log = tmp_path / "access.log"
    bare = combined("8.8.8.8", "GET / HTTP/1.1")
    log.write_text(f"{bare}\n{combined('8.8.8.8', 'CONNECT phish.top:443 HTTP/1.1')}\n{bare}\n")
    report = run_monitor(log, Scorer(), once=True, alerts=io.StringIO())  # one batch: a proxy's log
    assert report["hostless_skipped"] == 2 and report["urls_scored"] == 1
    log.write_text(f"{combined('8.8.8.8', 'GET - HTTP/1.1', 400)}\n{bare}\n")
    scorer = Scorer()
    with pytest.raises(SiteHostNeededError, match="line 2 .*--site-host"):
        run_monitor(log, scorer, once=True, alerts=io.StringIO(), batch_size=1)
    assert scorer.calls == []


def test_special_use_names_are_alerted_never_blocked(tmp_path):
    log, blocklist, alerts = tmp_path / "access.log", tmp_path / "blocklist.csv", io.StringIO()
    log.write_text(combined("8.8.8.8", "GET http://phish.local/a HTTP/1.1") + "\n"
                   + combined("8.8.8.8", "CONNECT phish.internal:443 HTTP/1.1") + "\n")
    report = run_monitor(log, Scorer(), once=True, alerts=alerts, blocklist=blocklist)
    assert report["alerts"] == 2 and report["not_blockable"] == 2 and report["blocked"] == 0


def test_not_found_requests_are_no_evidence_and_popular_hosts_are_not_blocked(tmp_path):
    log = tmp_path / "access.log"
    log.write_text("\n".join([
        combined("8.8.8.8", "GET http://phish.top/a HTTP/1.1", status=404),  # no such page: not scored
        combined("8.8.8.8", "GET http://docs.popular-site.com/phish HTTP/1.1"),  # path-level verdict, popular host
        combined("8.8.8.8", "GET http://phish.top/b HTTP/1.1"),
    ]) + "\n")
    blocklist, alerts = tmp_path / "blocklist.csv", io.StringIO()
    guard = Guard(popularity={"popular-site.com": 10}, allow_top=1000)
    report = run_monitor(log, Scorer(), once=True, alerts=alerts, blocklist=blocklist, guard=guard)
    assert report["not_found_skipped"] == 1 and report["urls_scored"] == 2 and report["alerts"] == 2
    assert report["not_blockable"] == 1
    assert "phish.top" in blocklist.read_text() and "popular-site.com" not in blocklist.read_text()
