"""`monitor` on resolvers' query logs: the lines real dnsmasq, unbound and BIND write (each started on 127.0.0.1 and
asked with dnspython), parsed, scored as sites, alerted and blocked; names that are no site counted and skipped."""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.name
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


def logged(log: Path, name: str) -> None:
    """Wait until the resolver has written its line for ``name`` (it logs as it answers)."""
    deadline = time.monotonic() + 10
    while name not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{name} not in {log}"
        time.sleep(0.05)


def running(name: str, program: str, package: str, log_name: str,
            command: Callable[[int, Path], list[str]]) -> Callable[[Path], Iterator[tuple[Path, int]]]:
    """The fixture ``name``: ``program`` (from Debian's ``package``) started by ``command(port, log)`` on a free port
    of 127.0.0.1, writing its query log to ``log_name``; yields (log, port) once it has answered and logged a
    query. A free port can be taken between `free_port` and the program's bind (or be free for TCP and not for
    UDP): a program that exits before it is ready is started again on another port, up to three times."""
    def fixture(tmp_path: Path) -> Iterator[tuple[Path, int]]:
        if shutil.which(program) is None:
            pytest.skip(f"{program} not installed (Debian package {package})")
        log = tmp_path / log_name
        for attempt in range(3):
            port = free_port()
            log.unlink(missing_ok=True)
            process = subprocess.Popen(command(port, log), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 20
                while process.poll() is None and not (log.exists() and "ready.example.org" in log.read_text()):
                    assert time.monotonic() < deadline, f"{program} did not start"
                    ask(port, ["ready.example.org"])
                if process.poll() is None:
                    yield log, port
                    return
                assert attempt < 2, process.stderr.read().decode()
            finally:
                process.terminate()
                process.wait(timeout=10)
    return pytest.fixture(fixture, name=name)


def dnsmasq_command(port: int, log: Path) -> list[str]:
    return ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", f"--port={port}", "--listen-address=127.0.0.1",
            "--bind-interfaces", "--no-resolv", "--no-hosts", "--pid-file=", f"--user={getpass.getuser()}",
            "--log-queries=extra", f"--log-facility={log}", "--address=/#/192.0.2.1"]


def unbound_command(port: int, log: Path) -> list[str]:
    config = log.with_name("unbound.conf")
    config.write_text(f'server:\n  interface: 127.0.0.1\n  port: {port}\n  do-daemonize: no\n  chroot: ""\n'
                      f'  username: ""\n  directory: "{log.parent}"\n  pidfile: ""\n  use-syslog: no\n'
                      f'  logfile: "{log}"\n  log-queries: yes\n  log-replies: yes\n  verbosity: 1\n'
                      f'  local-zone: "." static\n')  # answers everything itself, from nothing
    return ["unbound", "-d", "-c", str(config)]


def named_command(port: int, log: Path) -> list[str]:
    config = log.with_name("named.conf")
    config.write_text(f'options {{ directory "{log.parent}"; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 '
                      f'{{ none; }}; pid-file none; recursion no; querylog yes; }};\ncontrols {{ }};\n'
                      f'logging {{ channel queries_file {{ file "{log}"; print-time yes; print-category yes; '
                      f'print-severity yes; }}; category queries {{ queries_file; }}; }};\n')
    user = ["-u", getpass.getuser()] if os.geteuid() == 0 else []  # named drops root's privileges to this user
    return ["named", "-f", "-c", str(config), *user]


dnsmasq_log = running("dnsmasq_log", "dnsmasq", "dnsmasq-base", "dnsmasq.log", dnsmasq_command)
unbound_log = running("unbound_log", "unbound", "unbound", "unbound.log", unbound_command)
bind_log = running("bind_log", "named", "bind9", "query.log", named_command)


@pytest.mark.parametrize("resolver", ["dnsmasq_log", "unbound_log", "bind_log"])
def test_a_resolvers_query_log_is_scored_name_by_name_and_what_is_no_site_skipped(
        resolver: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    log, port = request.getfixturevalue(resolver)
    ask(port, SITES + NO_SITES)
    ask(port, ["shop.example.com", "last.example.org"], "AAAA")  # asked again: scored once
    logged(log, "last.example.org")
    scorer, alerts, blocklist = Scorer(), io.StringIO(), tmp_path / "blocked.csv"
    report = run_monitor(log, scorer, fmt=resolver.removesuffix("_log"), once=True, alerts=alerts, blocklist=blocklist)
    assert report["malformed"] == 0 and report["lines"] == report["parsed"]
    asked = sorted({url for call in scorer.calls for url in call})
    assert asked == sorted(["ready.example.org", "last.example.org", *(site.lower() for site in SITES)])
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
    logged(log, "wpad")
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
    # journald's syslog and journalctl's other time forms; unbound's log-tag-queryreply; OpenWrt's logread
    ("Dec  5 11:47:05 host unbound[1225]: [1225:0] info: 10.0.0.7 shop.example.xyz. A IN", "unbound", "10.0.0.7",
     "shop.example.xyz"),
    ("Dec 05 11:47:05.123456 host unbound[1225]: [1225:0] query: 10.0.0.7 shop.example.xyz. A IN", "unbound",
     "10.0.0.7", "shop.example.xyz"),
    ("[1796471215] unbound[1194:0] reply: 127.0.0.1 shop.example.xyz. A IN NOERROR 0.000000 0 45", "unbound",
     "127.0.0.1", "shop.example.xyz"),
    ("1733398896.123456 host dnsmasq[1172]: query[A] shop.example.xyz from 192.168.1.20", "dnsmasq", "192.168.1.20",
     "shop.example.xyz"),
    ("Thu 2026-12-05 11:47:05 UTC host dnsmasq[1172]: query[A] shop.example.xyz from 192.168.1.20", "dnsmasq",
     "192.168.1.20", "shop.example.xyz"),
    ("Thu Dec  5 11:47:05 2026 daemon.info dnsmasq[1172]: query[A] shop.example.xyz from 192.168.1.20", "dnsmasq",
     "192.168.1.20", "shop.example.xyz"),
    ("Dec  5 11:47:05 gateway dnsmasq-script[1172]: lease added", "dnsmasq", None, None),
    # unbound named otherwise by its log-identity
    ("[1796471215] resolver-1[1194:0] info: 127.0.0.1 shop.example.xyz. A IN", "unbound", "127.0.0.1",
     "shop.example.xyz"),
    ("Dec  5 11:47:05 host resolver-1[1225]: [1225:0] info: 10.0.0.7 shop.example.xyz. A IN", "unbound", "10.0.0.7",
     "shop.example.xyz"),
    # any type or class; and a query is a query even for a name that is no site (counted, not scored)
    ("Dec  5 11:55:20 dnsmasq[5839]: query[type=65280] evil-login.example.top from 127.0.0.1", "dnsmasq",
     "127.0.0.1", "evil-login.example.top"),
    ("[1796471215] unbound[1194:0] info: 127.0.0.1 example.top. A NONE", "unbound", "127.0.0.1", "example.top"),
    ("Dec  5 11:46:49 dnsmasq[1172]: query[A] a b.example.com from 127.0.0.1", "dnsmasq", "127.0.0.1", None),
    ("Dec  5 11:46:49 dnsmasq[1172]: query[A] smallbakery-shop.de/paypal.com/signin/webscr.top from 192.168.1.20",
     "dnsmasq", "192.168.1.20", None),  # as a URL, it would judge (and block) smallbakery-shop.de
    ("Dec  5 11:46:49 dnsmasq[1172]: query[A] 203.0.113.9 from 192.168.1.20", "dnsmasq", "192.168.1.20", None),
    ("Dec  5 11:46:49 dnsmasq[1172]: query[A] github.io from 192.168.1.20", "dnsmasq", "192.168.1.20", None),
    ("Dec  5 11:46:49 dnsmasq[1172]: query[A] *.example.com from 192.168.1.20", "dnsmasq", "192.168.1.20", None),
    # BIND: a view, syslog's named[pid], its own start-up lines, a name with an escaped space
    ("05-Dec-2026 12:05:19.872 client @0x7f4b928ed098 10.1.2.3#47017 (x.example.com): view internal: query: "
     "x.example.com IN A +E(0)K (10.0.0.1)", "bind", "10.1.2.3", "x.example.com"),
    ("Dec  5 12:05:19 ns1 named[812]: client @0x7f4b928ed098 2001:db8::5#47017 (Login.Example.top): query: "
     "Login.Example.top IN A +E(0) (2001:db8::1)", "bind", "2001:db8::5", "login.example.top"),
    ("05-Dec-2026 12:05:10.304 starting BIND 9.18.49-1~deb12u3-Debian (Extended Support Version) <id:>", "bind",
     None, None),
    ("05-Dec-2026 12:05:19.872 queries: info: client @0x7f 127.0.0.1#1 (a b.example.com): query: a\\032b.example.com "
     "IN A + (127.0.0.1)", "bind", "127.0.0.1", None),
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


def test_a_name_crafted_as_a_url_blocks_nothing(dnsmasq_log: tuple[Path, int], tmp_path: Path) -> None:
    # dnsmasq logs a label's slashes as they were asked; read as a URL this names smallbakery-shop.de and a kit
    log, port = dnsmasq_log
    crafted = dns.name.Name([b"smallbakery-shop", b"de/phish/paypal/signin/webscr", b"top", b""])
    with contextlib.suppress(dns.exception.Timeout):
        dns.query.udp(dns.message.make_query(crafted, "A"), "127.0.0.1", port=port, timeout=2)
    logged(log, "smallbakery-shop.de/phish")
    scorer, blocklist = Scorer(), tmp_path / "blocked.csv"
    report = run_monitor(log, scorer, fmt="dnsmasq", once=True, alerts=io.StringIO(), blocklist=blocklist)
    assert report["dns_names_skipped"] == 1 and not blocklist.exists()
    assert all("smallbakery" not in url for call in scorer.calls for url in call)
