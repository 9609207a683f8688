"""`monitor` on resolvers' query logs: the lines real dnsmasq and unbound write (each started on 127.0.0.1 and asked
with dnspython), parsed, scored as sites, alerted and blocked; names that are no site counted and skipped."""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest
from fixtures_model import free_port, model_dir  # noqa: F401 (a pytest fixture)
from test_monitor import Scorer
from typer.testing import CliRunner

from cybersentinel.cli.app import app
from cybersentinel.ops.monitor import parse_line, run_monitor

SITES = ["login.phish-bank.top", "shop.example.com", "Phish-Again.example.net"]  # the last as clients type it
NO_SITES = ["wpad", "printer.lan", "4.3.2.1.in-addr.arpa", "_ldap._tcp.dc._msdcs.corp.example.com", "printer.local"]


def ask(port: int, names: list[str], qtype: str = "A") -> None:
    for name in names:
        with contextlib.suppress(dns.exception.Timeout):  # an unanswered query is logged all the same
            dns.query.udp(dns.message.make_query(name, qtype), "127.0.0.1", port=port, timeout=2)


def started(command: list[str], port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:  # ready once it answers (and so logs) a query
        assert process.poll() is None, process.stderr.read().decode()
        ask(port, ["ready.example.org"])
        if log.exists() and "ready.example.org" in log.read_text():
            return process
        assert time.monotonic() < deadline, "the resolver did not start"


def stopped(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def dnsmasq_log(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    if shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq not installed (Debian package dnsmasq-base)")
    port, log = free_port(), tmp_path / "dnsmasq.log"
    process = started(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", f"--port={port}",
                       "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts", "--pid-file=",
                       f"--user={getpass.getuser()}", "--log-queries=extra", f"--log-facility={log}",
                       "--address=/#/192.0.2.1"], port, log)
    yield log, port
    stopped(process)


@pytest.fixture
def unbound_log(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    if shutil.which("unbound") is None:
        pytest.skip("unbound not installed (Debian package unbound)")
    port, log = free_port(), tmp_path / "unbound.log"
    config = tmp_path / "unbound.conf"
    config.write_text(f'server:\n  interface: 127.0.0.1\n  port: {port}\n  do-daemonize: no\n  chroot: ""\n'
                      f'  username: ""\n  directory: "{tmp_path}"\n  pidfile: ""\n  use-syslog: no\n'
                      f'  logfile: "{log}"\n  log-queries: yes\n  log-replies: yes\n  verbosity: 1\n'
                      f'  local-zone: "." static\n')  # answers everything itself, from nothing
    process = started(["unbound", "-d", "-c", str(config)], port, log)
    yield log, port
    stopped(process)


@pytest.mark.parametrize("resolver", ["dnsmasq_log", "unbound_log"])
def test_a_resolvers_query_log_is_scored_name_by_name_and_what_is_no_site_skipped(
        resolver: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    log, port = request.getfixturevalue(resolver)
    ask(port, SITES + NO_SITES)
    ask(port, ["shop.example.com"], "AAAA")  # asked again: scored once
    time.sleep(0.3)  # the resolver writes its log lines as it answers
    scorer, alerts, blocklist = Scorer(), io.StringIO(), tmp_path / "blocked.csv"
    report = run_monitor(log, scorer, fmt=resolver.removesuffix("_log"), once=True, alerts=alerts, blocklist=blocklist)
    assert report["malformed"] == 0 and report["lines"] == report["parsed"]
    asked = sorted({url for call in scorer.calls for url in call})
    assert asked == sorted(["ready.example.org", *(site.lower() for site in SITES)])
    queries_per_name = 2 if resolver == "unbound_log" else 1  # unbound logs the query and its reply
    assert report["dns_names_skipped"] == queries_per_name * len(NO_SITES)
    found = [json.loads(line) for line in alerts.getvalue().splitlines()]
    assert {(a["url"], a["verdict"], a["client_ip"]) for a in found} == {
        ("login.phish-bank.top", "malicious", "127.0.0.1"), ("phish-again.example.net", "malicious", "127.0.0.1")}
    assert "login.phish-bank.top" in blocklist.read_text() and "phish-again.example.net" in blocklist.read_text()


def test_the_command_follows_a_dnsmasq_log_with_the_model(dnsmasq_log: tuple[Path, int], tmp_path: Path,
                                                          model_dir: Path) -> None:  # noqa: F811
    log, port = dnsmasq_log
    ask(port, ["paypal.com.verify-account.top", "wpad"])  # a brand's domain in an unrelated name: rule 3
    time.sleep(0.3)
    for alert_on in ("suspicious", "malicious"):
        alerts = tmp_path / f"alerts-{alert_on}.jsonl"
        result = CliRunner().invoke(app, ["monitor", str(log), "--format", "dnsmasq", "--once", "--no-feeds",
                                          "--model-dir", str(model_dir), "--alerts", str(alerts),
                                          "--alert-on", alert_on], terminal_width=400)
        assert result.exit_code == 0, result.output
        found = {a["url"]: a["verdict"] for a in map(json.loads, alerts.read_text().splitlines())}
        assert found.get("paypal.com.verify-account.top") == "malicious"
        assert alert_on == "suspicious" or set(found.values()) == {"malicious"}
    refused = CliRunner().invoke(app, ["monitor", str(log), "--alert-on", "benign"], terminal_width=400)
    assert refused.exit_code == 2 and "--alert-on" in refused.output


@pytest.mark.parametrize(("line", "fmt", "client", "url"), [
    # syslog's lines: a host name after the time, RFC 3339 times, unbound's pid after a colon
    ("Dec  5 11:46:49 gateway dnsmasq[1172]: query[A] Login.Example.top from 192.168.1.20", "dnsmasq",
     "192.168.1.20", "login.example.top"),
    ("2026-12-05T11:46:49.123456+00:00 gateway dnsmasq[1172]: query[AAAA] example.org from 192.168.1.20",
     "dnsmasq", "192.168.1.20", "example.org"),
    ("Dec  5 11:47:05 resolver unbound: [1225:0] info: 10.0.0.7 shop.example.xyz. A IN", "unbound", "10.0.0.7",
     "shop.example.xyz"),
    ("Dec 05 11:47:05 unbound[1225:0] info: ::1 example.net. A IN NXDOMAIN 0.000000 1 29", "unbound", "::1",
     "example.net"),
    # the resolver's other lines name nothing (a query for the root neither)
    ("Dec  5 11:47:05 gateway dnsmasq-dhcp[1172]: DHCPACK(eth0) 192.168.1.20 aa:bb:cc:dd:ee:ff laptop", "dnsmasq",
     None, None),
    ("Dec  5 11:46:49 dnsmasq[1172]: 1 127.0.0.1/53922 config example.top is 192.0.2.1", "dnsmasq", None, None),
    ("[1796471215] unbound[1194:0] info: server stats for thread 0: 4 queries, 4 answers from cache", "unbound",
     None, None),
    ("[1796471215] unbound[1194:0] info: 127.0.0.1 . NS IN", "unbound", "127.0.0.1", None),
])
def test_resolver_lines_are_read_in_each_of_their_forms(line: str, fmt: str, client: str | None,
                                                        url: str | None) -> None:
    for given in (fmt, "auto"):
        record = parse_line(line, given)
        assert (record.format, record.client_ip, record.url) == (fmt, client, url)


def test_alerts_can_be_kept_to_malicious_verdicts(tmp_path: Path) -> None:
    log = tmp_path / "dnsmasq.log"
    log.write_text("".join(f"Dec  5 11:46:49 dnsmasq[1172]: query[A] {name} from 192.168.1.20\n"
                           for name in ("maybe.example.com", "phish.example.top", "quiet.example.org")))
    for verdicts, expected in ((("malicious", "suspicious"), {"maybe.example.com", "phish.example.top"}),
                               (("malicious",), {"phish.example.top"})):
        alerts = io.StringIO()
        run_monitor(log, Scorer(), once=True, alerts=alerts, alert_verdicts=verdicts)
        assert {json.loads(line)["url"] for line in alerts.getvalue().splitlines()} == expected
