"""Threat intelligence: feed parsing, refresh over HTTP on 127.0.0.1, and the interval index."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fixtures_http import Reply
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cybersentinel.cli.app import app
from cybersentinel.intel.feeds import (
    FEED_DEADLINE_S,
    FEEDS,
    MAX_FEED_BYTES,
    MIRROR_ENV,
    Feed,
    FeedError,
    IntelIndex,
    parse_domain_list,
    parse_networks,
    parse_ranked_domains,
    read_feed_file,
    refresh_feeds,
    to_domain,
)
from cybersentinel.url.parsing import PLAIN_NAME, host_registered_domain

pytest_plugins = ["fixtures_http"]

REAL_FEEDS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "feeds"


def net(text: str):
    return ipaddress.ip_network(text)


# ------------------------------------------------------------------------------------------------ parsers


def test_parse_networks_spamhaus_style_comments_and_single_addresses():
    lines = ["; Spamhaus DROP header", "", "1.10.16.0/20 ; SBL256894", "5.6.7.8", "2001:db8::/32 # v6", "; EOF"]
    parsed = parse_networks(lines, "drop.txt")
    assert parsed.entries == [net("1.10.16.0/20"), net("5.6.7.8/32"), net("2001:db8::/32")]
    assert parsed.skipped == 3


def test_parse_networks_names_file_and_line_of_a_malformed_entry():
    with pytest.raises(FeedError, match=r"drop\.txt:3: malformed network entry '1\.2\.3\.300/24'"):
        parse_networks(["1.2.3.0/24", "# c", "1.2.3.300/24"], "drop.txt")


@pytest.mark.parametrize("line", ["0.0.0.0/0", "::/0", "8.0.0.0/6", "2000::/3"])
def test_a_range_wider_than_any_feed_lists_is_refused(line):
    with pytest.raises(FeedError, match=r"drop.txt:2: .* holds public addresses beyond one /"):
        parse_networks(["1.2.3.0/24", line], "drop.txt")


def test_wide_ranges_of_addresses_that_are_not_public_stay():
    assert [str(n) for n in parse_networks(["224.0.0.0/3", "10.0.0.0/8", "fc00::/7", "42.0.0.0/8"],
                                            "firehol.txt").entries] == ["224.0.0.0/3", "10.0.0.0/8", "fc00::/7",
                                                                        "42.0.0.0/8"]


def test_parse_domain_list_reads_hosts_and_plain_formats_and_skips_boilerplate():
    lines = ["# hosts", "127.0.0.1 localhost", "::1 ip6-localhost ip6-loopback", "0.0.0.0 Evil.Example.COM.",
             "0.0.0.0 a.test b.test  # two names", "plain.example.org", "", "bücher.example"]
    parsed = parse_domain_list(lines, "hosts")
    assert parsed.entries == ["evil.example.com", "a.test", "b.test", "plain.example.org", "xn--bcher-kva.example"]
    assert parsed.skipped == 4


def test_parse_domain_list_rejects_bad_names_with_line_number():
    with pytest.raises(FeedError, match=r"hosts:2: malformed domain entry 'bad_-.-x\.com'"):
        parse_domain_list(["0.0.0.0 ok.example", "0.0.0.0 bad_-.-x.com"], "hosts")


def test_parse_ranked_domains_plain_and_tranco_csv():
    assert parse_ranked_domains(["google.com", "", "example.org"], "t").entries == [("google.com", 1),
                                                                                    ("example.org", 2)]
    assert parse_ranked_domains(["1,google.com", "7,example.org"], "t").entries == [("google.com", 1),
                                                                                    ("example.org", 7)]
    with pytest.raises(FeedError, match="t:1:"):
        parse_ranked_domains(["x,google.com"], "t")


@pytest.mark.parametrize(("name", "reason"), [
    ("", "empty"), ("localhost", "single-label"), ("10.0.0.1", "IP address"), ("a" * 64 + ".com", "invalid label"),
    ("x." * 127 + "com", "longer than 253"), ("-bad.com", "invalid label"), ("a..com", "invalid label"),
])
def test_to_domain_rejects_with_reason(name, reason):
    with pytest.raises(ValueError, match=reason):
        to_domain(name)


def test_to_domain_idna_and_case():
    assert to_domain("WWW.Bücher.DE.") == "www.xn--bcher-kva.de"
    assert to_domain("_dmarc.example.com") == "_dmarc.example.com"


def test_read_feed_file_rejects_non_utf8(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"1.2.3.0/24\n\xff\xfe\n")
    with pytest.raises(FeedError, match="not UTF-8"):
        read_feed_file(path, parse_networks)


# ------------------------------------------------------------------------------------------------ index


def small_index() -> IntelIndex:
    return IntelIndex.build(
        {"fh": [net("10.0.0.0/8"), net("1.10.16.0/20"), net("224.0.0.0/3"), net("2001:db8:1::/48")],
         "drop": [net("1.10.16.0/24"), net("5.5.5.5/32"), net("2a00:1::/32")],
         "et": [net("9.9.9.9/32"), net("2a00:1::1/128")]},
        {"hosts": ["evil.example", "phish.test"], "other": ["evil.example"]},
        [("google.com", 1), ("example.org", 2)],
    )


@pytest.mark.parametrize(("value", "status", "feeds"), [
    ("1.10.16.5", "listed", ["drop", "fh"]),
    ("1.10.17.5", "listed", ["fh"]),
    ("1.10.32.0", "unlisted", []),
    ("5.5.5.5", "listed", ["drop"]),
    ("5.5.5.6", "unlisted", []),
    ("9.9.9.9", "listed", ["et"]),
    ("0.0.0.1", "bogon", []),
    ("255.255.255.255", "bogon", []),
    ("10.1.2.3", "private", []),  # listed by "fh", but a private address is never reported as malicious
    ("224.0.0.251", "bogon", []),
    ("127.0.0.1", "private", []),
    ("169.254.1.1", "private", []),
    ("2a00:1::1", "listed", ["drop", "et"]),
    ("2a00:1::2", "listed", ["drop"]),
    ("2a00:2::", "unlisted", []),
    ("::1", "private", []),
    ("fe80::1", "private", []),
    ("::ffff:1.10.16.5", "listed", ["drop", "fh"]),  # IPv4-mapped: judged as the IPv4 address
])
def test_lookup_ip_status_and_feeds(value, status, feeds):
    index = small_index()
    assert index.lookup_ip(value)["ip_status"] == status
    assert index.lookup_ip(value)["feeds"] == feeds
    assert index.lookup_ips([value])[0] == index.lookup_ip(value)


def test_lookup_ip_rejects_non_ip():
    with pytest.raises(ValueError, match="not an IP"):
        small_index().lookup_ip("example.com")
    assert small_index().lookup_ips(["nope", "5.5.5.5"])[0]["ip_status"] == "invalid"


def global_networks(version: int):
    bits = 32 if version == 4 else 128
    return st.builds(lambda addr, prefix: ipaddress.ip_network((addr, prefix), strict=False),
                     st.integers(0, 2**bits - 1).map(lambda n: ipaddress.ip_address(n) if version == 4
                                                     else ipaddress.IPv6Address(n)),
                     st.integers(1 if version == 4 else 8, bits))


@settings(max_examples=60, deadline=None)
@given(feeds=st.lists(st.lists(st.one_of(global_networks(4), global_networks(6)), max_size=12), min_size=1, max_size=4),
       probes=st.lists(st.one_of(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
                                 st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)), max_size=20))
def test_interval_index_agrees_with_brute_force(feeds, probes):
    named = {f"f{i}": nets for i, nets in enumerate(feeds)}
    index = IntelIndex.build(named)
    # probe the edges of every network too, where off-by-one errors live
    edges = [a for nets in feeds for n in nets for a in (n.network_address, n.broadcast_address)]
    edges += [ipaddress.ip_address(int(a) + 1) for a in edges if int(a) + 1 < 2 ** a.max_prefixlen]
    addresses = probes + edges
    for address in addresses:
        expected = {name for name, nets in named.items() if any(address in n for n in nets)}
        version_intervals = index.v4 if address.version == 4 else index.v6
        assert set(index.feed_names(version_intervals.mask(int(address)))) == expected, address
    batch = index.lookup_ips([str(a) for a in addresses])
    assert [r["feeds"] for r in batch] == [index.lookup_ip(str(a))["feeds"] for a in addresses]


def test_domain_lookup_exact_parent_and_popularity():
    index = small_index()
    assert index.lookup_domain("evil.example")["feeds"] == ["hosts", "other"]
    deep = index.lookup_url("http://a.b.evil.example/login")
    assert deep["feeds"] == ["hosts", "other"] and deep["domain_match"] == "evil.example"
    assert index.lookup_url("notevil.example")["feeds"] == []  # a suffix match must be on a label boundary
    assert index.lookup_url("https://www.google.com/")["tranco_rank"] == 1
    assert index.lookup_url("https://mail.google.com/")["tranco_rank"] == 1  # rank of the registered domain
    government = IntelIndex.build({}, {}, [("service.gov.uk", 437)])
    assert government.lookup_url("https://www.tax.service.gov.uk/account")["tranco_rank"] == 437
    assert government.host_signals("www.access.service.gov.uk")[3] == 437
    assert index.lookup_url("http://5.5.5.5:8080/x")["feeds"] == ["drop"]
    assert index.lookup_url("http://[2a00:1::1]/")["feeds"] == ["drop", "et"]
    assert index.lookup_url("")["kind"] == "none"


@pytest.mark.parametrize("host", [
    "evil.example", "a.b.evil.example", "EVIL.example.", "notevil.example", "www.google.com", "mail.google.com",
    "google.com", "example.org", "www.example.org.", "phish.test", "localhost", "", "1.10.16.5", "10.1.2.3",
    "127.0.0.1", "[2a00:1::1]", "2a00:1::2", "::ffff:1.10.16.5", "3232235521", "0x7f000001", "xn--pypal-4ve.com",
])
def test_host_signals_are_what_lookup_host_says(host):
    index = small_index()
    found = index.lookup_host(host)
    expected = (tuple(found["feeds"]), found["ip_status"], found["ip_category"], found["tranco_rank"])
    assert index.host_signals(host) == expected
    if PLAIN_NAME.fullmatch(host):  # the decider's many new names: split already, known not to be addresses
        assert index.host_signals(host, host_registered_domain(host)) == expected


_LABELS = st.sampled_from(["a", "b", "ex", "co", "uk", "com", "1", "", "xn--p"])
_NAMES = st.lists(_LABELS, min_size=1, max_size=5).map(".".join)


@settings(max_examples=300, deadline=None)
@given(hosts=st.lists(_NAMES, min_size=1, max_size=6), listed=st.lists(_NAMES, max_size=6))
def test_host_signals_find_every_listed_parent(hosts, listed):
    """`host_signals` skips the hosts whose last two labels no listed name has: never one with a listed parent
    (labels drawn from a few, so names and listed parents often share them)."""
    index = IntelIndex.build({}, {"list": listed})
    for host in hosts:
        expected = tuple(index.lookup_host(host)["feeds"])
        assert index.host_signals(host)[0] == expected
        if PLAIN_NAME.fullmatch(host):  # as the decider asks of its names
            assert index.host_signals(host, host_registered_domain(host))[0] == expected


def test_from_dir_reads_known_files_and_extra_domain_lists(tmp_path):
    (tmp_path / "spamhaus_drop.txt").write_text("1.10.16.0/20 ; SBL1\n; EOF\n")
    (tmp_path / "tranco_top100k.csv").write_text("google.com\nexample.org\n")
    hosts = tmp_path / "adhosts.txt"
    hosts.write_text("0.0.0.0 bad.example\n")
    index = IntelIndex.from_dir(tmp_path, [hosts])
    assert index.ip_feeds == ("spamhaus_drop",)
    assert index.lookup_url("x.bad.example")["feeds"] == ["adhosts"]
    assert index.popularity["example.org"] == 2
    with pytest.raises(FeedError, match="no feed files"):
        IntelIndex.from_dir(tmp_path / "empty")


# ------------------------------------------------------------------------------------------------ intel lookup


def lookup_cli(tmp_path: Path, *args: str):
    """`cybersentinel intel lookup` over a one-file feed folder, on a terminal wide enough for one line a row."""
    (tmp_path / "spamhaus_drop.txt").write_text("1.10.16.0/20 ; SBL1\n")
    return CliRunner().invoke(app, ["intel", "lookup", "--feeds-dir", str(tmp_path), *args], env={"COLUMNS": "250"})


@pytest.mark.parametrize("value", ["0x1.0xa.0x10.0x5", "1.10.4101", "01.012.020.05", "1。10。16。5", "１.１０.１６.５",
                                   "http://0x1.0xa.0x10.0x5/login", "HTTP://1.10.4101:8080/"])
def test_lookup_url_reads_the_host_as_a_browser_and_the_decider_do(value):
    """Every spelling a browser reads as 1.10.16.5 is 1.10.16.5 to the feeds (README), as in `predict`."""
    found = small_index().lookup_url(value)
    assert (found["value"], found["host"], found["kind"], found["feeds"]) == (value, "1.10.16.5", "ip", ["drop", "fh"])
    assert found["error"] is None


def test_cli_lookup_shows_the_canonical_host_it_looked_up(tmp_path):
    table = lookup_cli(tmp_path, "1.10.4101", "0x1.0xa.0x10.0x5")
    assert table.exit_code == 0, table.output
    rows = [line for line in table.output.splitlines() if "1.10.4101" in line or "0x1.0xa" in line]
    assert len(rows) == 2 and all("1.10.16.5" in row and "spamhaus_drop" in row for row in rows), table.output
    found = json.loads(lookup_cli(tmp_path, "--json", "01.012.020.05").output)
    assert (found["value"], found["host"], found["feeds"]) == ("01.012.020.05", "1.10.16.5", ["spamhaus_drop"])


@pytest.mark.parametrize("value", ["a\x01b.example", "a\tb.example", "a\nb.example", "\x1fevil.example",
                                   "evil.example\x7f", "http://evil.example\x85/", "a\x1b[31mRED.example"])
def test_lookup_url_reports_control_characters_instead_of_dropping_them(value):
    found = small_index().lookup_url(value)
    assert found["kind"] == "invalid" and found["feeds"] == [] and found["value"] == value
    assert "not a valid host" in found["error"] and "control character" in found["error"]


def test_cli_lookup_reports_a_control_character_per_row(tmp_path):
    result = lookup_cli(tmp_path, "--json", "a\x01b.example", "1.10.16.5")
    assert result.exit_code == 0, result.output
    bad, good = map(json.loads, result.output.splitlines())
    assert bad["value"] == "a\x01b.example" and bad["kind"] == "invalid" and "control character" in bad["error"]
    assert good["feeds"] == ["spamhaus_drop"] and good["error"] is None
    table = lookup_cli(tmp_path, "a\x01b.example")
    assert "ab.example" not in table.output and "not a valid host" in table.output


def test_cli_lookup_table_escapes_what_a_terminal_would_obey(tmp_path):
    """Escape sequences and other non-printable characters are shown escaped, Rich markup as written; JSON lines
    keep the raw values (JSON-escaped)."""
    values = ["a\x1b[31mRED.example", "[red]x.example", "x.example\u202e", "http://x.example/[blink]y"]
    table = lookup_cli(tmp_path, *values)
    assert table.exit_code == 0, table.output
    assert "\x1b" not in table.output and "\u202e" not in table.output
    for shown in ("a\\x1b[31mRED.example", "[red]x.example", "x.example\\u202e", "http://x.example/[blink]y"):
        assert shown in table.output, table.output
    lines = lookup_cli(tmp_path, "--json", *values).output.splitlines()
    assert "\x1b" not in lines[0] and [json.loads(line)["value"] for line in lines] == values


# ------------------------------------------------------------------------------------------------ refresh


ENDLESS_LIMIT = 256 << 20  # an endless body stops here all the same, so a client without a cap cannot hang the tests


class FeedServer:
    """A real HTTP server on 127.0.0.1 that serves feed bodies with ETag / Last-Modified and honours them; a path
    in ``endless`` streams valid lines without a Content-Length until the client hangs up (`ENDLESS_LIMIT`)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.fail_next: dict[str, int] = {}
        self.endless: set[str] = set()
        self.trickle: set[str] = set()  # paths whose body comes a line every 0.2 s, without end
        self.requests: list[tuple[str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, dict(self.headers)))
                if server.fail_next.get(self.path, 0) > 0:
                    server.fail_next[self.path] -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                if self.path in server.endless:
                    self.stream_forever()
                    return
                if self.path in server.trickle:
                    self.send_response(200)
                    self.end_headers()
                    try:
                        for _ in range(100):  # 20 s at most: the client hangs up long before
                            self.wfile.write(b"5.5.5.0/24\n")
                            self.wfile.flush()
                            time.sleep(0.2)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                body = server.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", "Tue, 11 Nov 2025 16:20:03 GMT")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def stream_forever(self):
                self.send_response(200)  # no Content-Length: the body ends when the connection does
                self.end_headers()
                lines = b"5.5.5.0/24\n" * 6000
                try:
                    for _ in range(ENDLESS_LIMIT // len(lines)):
                        self.wfile.write(lines)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feed_server():
    server = FeedServer()
    yield server
    server.close()


def local_feeds(url: str) -> dict[str, Feed]:
    return {"drop": Feed("drop", f"{url}/drop.txt", "cidr", "spamhaus_drop.txt", FEEDS["spamhaus_drop"].parser),
            "tranco": Feed("tranco", f"{url}/top-1m.csv.zip", "domain-popularity", "tranco_top100k.csv",
                           FEEDS["tranco"].parser, FEEDS["tranco"].transform)}


def zipped(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("top-1m.csv", text)
    return buffer.getvalue()


def test_refresh_downloads_then_uses_conditional_get(tmp_path, feed_server):
    feed_server.files = {"/drop.txt": b"1.10.16.0/20 ; SBL1\n; EOF\n",
                         "/top-1m.csv.zip": zipped("1,google.com\n2,a.org\n")}
    feeds = local_feeds(feed_server.url)
    manifest, errors = refresh_feeds(tmp_path, feeds=feeds, retries=0)
    assert errors == {}
    drop = manifest["feeds"]["drop"]
    assert drop["entries"] == 1 and drop["skipped_lines"] == 1 and drop["etag"].startswith('"')
    assert drop["sha256"] == hashlib.sha256(b"1.10.16.0/20 ; SBL1\n; EOF\n").hexdigest()
    assert drop["last_modified"] == "Tue, 11 Nov 2025 16:20:03 GMT"
    assert (tmp_path / "tranco_top100k.csv").read_text() == "1,google.com\n2,a.org\n"  # unzipped
    assert json.loads((tmp_path / "feeds.json").read_text()) == manifest

    feed_server.requests.clear()
    manifest2, errors = refresh_feeds(tmp_path, feeds=feeds, retries=0)
    assert errors == {} and manifest2["feeds"]["drop"]["not_modified"] is True
    headers = dict(feed_server.requests)["/drop.txt"]
    assert headers["If-None-Match"] == drop["etag"]
    assert headers["If-Modified-Since"] == drop["last_modified"]
    assert manifest2["feeds"]["drop"]["sha256"] == drop["sha256"]


def test_refresh_retries_server_errors(tmp_path, feed_server):
    feed_server.files = {"/drop.txt": b"5.5.5.0/24\n"}
    feed_server.fail_next = {"/drop.txt": 2}
    manifest, errors = refresh_feeds(tmp_path, ["drop"], feeds=local_feeds(feed_server.url), retries=3, backoff=0)
    assert errors == {} and manifest["feeds"]["drop"]["entries"] == 1
    assert [path for path, _ in feed_server.requests] == ["/drop.txt"] * 3


def test_refresh_keeps_the_old_snapshot_when_the_new_one_is_malformed(tmp_path, feed_server):
    feeds = local_feeds(feed_server.url)
    feed_server.files = {"/drop.txt": b"5.5.5.0/24\n"}
    refresh_feeds(tmp_path, ["drop"], feeds=feeds, retries=0)
    feed_server.files = {"/drop.txt": b"5.5.5.0/24\n<html>oops</html>\n"}
    manifest, errors = refresh_feeds(tmp_path, ["drop"], feeds=feeds, retries=0)
    assert "drop.txt:2: malformed network entry" in errors["drop"]
    assert (tmp_path / "spamhaus_drop.txt").read_text() == "5.5.5.0/24\n"
    assert manifest["feeds"]["drop"]["entries"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("line", ["0,zero.example", "-3,minus.example", "99999999999,huge.example"])
def test_a_rank_that_is_no_position_is_a_malformed_line(line):
    with pytest.raises(FeedError, match=r"tranco.csv:2: malformed popularity entry .*is not between 1 and"):
        parse_ranked_domains(["1,google.com", line], "tranco.csv")


def test_a_feed_file_changed_after_the_refresh_is_refused(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "spamhaus_drop.txt").write_text("5.5.5.0/24 ; SBL1\n")
    (mirror / "tranco_top100k.csv").write_text("google.com\n")
    folder = tmp_path / "feeds"
    refresh_feeds(folder, mirror=mirror)
    assert IntelIndex.from_dir(folder).lookup_ip("5.5.5.5")["ip_status"] == "listed"
    with open(folder / "spamhaus_drop.txt", "a") as feed:  # a site's addresses appended by hand
        feed.write("140.82.112.0/20\n")
    with pytest.raises(FeedError, match="spamhaus_drop.txt does not hash to the SHA-256 feeds.json records"):
        IntelIndex.from_dir(folder)
    (folder / "spamhaus_drop.txt").write_text("5.5.5.0/24 ; SBL1\n")
    (folder / "et_compromised_ips.txt").write_text("9.9.9.9\n")  # a file the refresh did not write
    with pytest.raises(FeedError, match="et_compromised_ips.txt is not in feeds.json"):
        IntelIndex.from_dir(folder)


def test_a_feed_that_streams_forever_fails_at_its_byte_cap_and_keeps_the_old_snapshot(tmp_path, feed_server):
    feeds = local_feeds(feed_server.url)
    feed_server.files = {"/drop.txt": b"5.5.5.0/24\n"}
    manifest, _ = refresh_feeds(tmp_path, ["drop"], feeds=feeds, retries=0)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    feed_server.endless = {"/drop.txt"}
    feeds["drop"] = dataclasses.replace(feeds["drop"], max_bytes=1 << 20)
    after, errors = refresh_feeds(tmp_path, ["drop"], feeds=feeds, retries=0)
    assert errors == {"drop": f"{feed_server.url}/drop.txt: feed drop is larger than its cap of 1,048,576 bytes "
                              "(Feed.max_bytes); the previous snapshot is kept"}
    assert after == manifest and {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    assert FEEDS["tranco"].max_bytes == MAX_FEED_BYTES == 64 << 20  # the documented default


def test_a_feed_trickled_past_its_deadline_fails_and_keeps_the_previous_snapshot(tmp_path, feed_server):
    """The timeout bounds each socket read: a server sending a line every 0.2 s never hit a 2 s timeout (a review
    watched one still downloading after 12 s)."""
    feeds = local_feeds(feed_server.url)
    feed_server.files = {"/drop.txt": b"5.5.5.0/24\n"}
    manifest, _ = refresh_feeds(tmp_path, ["drop"], feeds=feeds, retries=0)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    feed_server.trickle = {"/drop.txt"}
    feeds["drop"] = dataclasses.replace(feeds["drop"], deadline_s=1.0)
    started = time.monotonic()
    after, errors = refresh_feeds(tmp_path, ["drop"], feeds=feeds, retries=0, timeout=2.0)
    assert time.monotonic() - started < 5
    assert errors["drop"].startswith(f"{feed_server.url}/drop.txt: feed drop still arriving after 1 s (")
    assert errors["drop"].endswith("Feed.deadline_s); the previous snapshot is kept")
    assert after == manifest and {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    assert FEEDS["tranco"].deadline_s == FEED_DEADLINE_S == 600.0  # the documented default


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_a_feed_whose_headers_trickle_fails_at_its_deadline_and_keeps_the_previous_snapshot(tmp_path, http_server):
    """The deadline started with the body: a server sending its headers a byte at a time (each read well within the
    timeout) held a refresh for as long as it liked."""
    url = http_server.script("/drop.txt", Reply(200, b"5.5.5.0/24\n"), Reply(header_trickle=0.05))
    feeds = {"drop": Feed("drop", url, "cidr", "spamhaus_drop.txt", FEEDS["spamhaus_drop"].parser, deadline_s=1.0)}
    manifest, errors = refresh_feeds(tmp_path, feeds=feeds, retries=0)
    assert errors == {}
    before = files_of(tmp_path)
    started = time.monotonic()
    after, errors = refresh_feeds(tmp_path, feeds=feeds, retries=3, backoff=0, timeout=2.0)
    assert time.monotonic() - started < 2.5  # the server takes 6.5 s to give up
    assert errors == {"drop": f"{url}: feed drop still arriving after 1 s (headers incomplete by then; "
                              "Feed.deadline_s); the previous snapshot is kept"}
    assert http_server.hits("/drop.txt") == 2  # the deadline spent: no retry
    assert after == manifest and files_of(tmp_path) == before


def test_a_feeds_retries_and_their_waits_end_at_its_deadline(tmp_path, http_server):
    """Retries and their waits (Retry-After) came on top of the deadline: five retries a second apart took 5 s of a
    2 s deadline."""
    url = http_server.script("/drop.txt", Reply(200, b"5.5.5.0/24\n"), Reply(503, b"", {"Retry-After": "1"}))
    feeds = {"drop": Feed("drop", url, "cidr", "spamhaus_drop.txt", FEEDS["spamhaus_drop"].parser, deadline_s=2.0)}
    manifest, _ = refresh_feeds(tmp_path, feeds=feeds, retries=0)
    before = files_of(tmp_path)
    started = time.monotonic()
    after, errors = refresh_feeds(tmp_path, feeds=feeds, retries=5, backoff=0, timeout=2.0)
    assert time.monotonic() - started < 2.5
    assert errors == {"drop": f"{url}: HTTP 503 (gave up after 2 of 6 attempts: the next would start past its "
                              "deadline)"}
    assert http_server.hits("/drop.txt") == 1 + 2
    assert after == manifest and files_of(tmp_path) == before


REFRESH_FROM = """
import dataclasses, sys
from cybersentinel.intel.feeds import FEEDS
FEEDS["spamhaus_drop"] = dataclasses.replace(FEEDS["spamhaus_drop"], url=sys.argv[1])  # the one dict the CLI reads
from cybersentinel.cli.app import app
app(["feeds", "refresh", "--feed", "spamhaus_drop", "--retries", "0", "--out", sys.argv[2]])
"""


def test_sigterm_mid_download_ends_the_refresh_as_ctrl_c_does(tmp_path, http_server):
    """SIGTERM (kill, timeout, a scheduler's stop) killed a refresh at once, its temporary download left behind.
    Now: status 143, no temporary file, the previous snapshot and feeds.json as they were."""
    url = http_server.script("/drop.txt", Reply(200, b"5.5.5.0/24\n"),
                             Reply(200, b"6.6.6.0/24\n" * 100, trickle=0.2))  # a body that takes minutes
    out = tmp_path / "feeds"
    command = [sys.executable, "-c", REFRESH_FROM, url, str(out)]
    env = {name: value for name, value in os.environ.items() if name != MIRROR_ENV}  # download, not copy (CI sets it)
    first = subprocess.run(command, capture_output=True, timeout=60, env=env)
    assert first.returncode == 0, first.stderr
    before = files_of(out)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob(".spamhaus_drop.txt.*.tmp")):
            assert process.poll() is None and time.monotonic() < deadline, "the refresh ended before downloading"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert b"Traceback" not in stderr
    assert files_of(out) == before


def test_refresh_reports_http_errors_and_unknown_feeds(tmp_path, feed_server):
    _, errors = refresh_feeds(tmp_path, ["drop"], feeds=local_feeds(feed_server.url), retries=0)
    assert errors == {"drop": f"{feed_server.url}/drop.txt: HTTP 404"}
    with pytest.raises(FeedError, match="unknown feed"):
        refresh_feeds(tmp_path, ["nope"], feeds=local_feeds(feed_server.url))


def test_cli_refresh_from_mirror_env_and_lookup(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "firehol_level1.txt").write_text("10.0.0.0/8\n1.10.16.0/20\n")
    (mirror / "spamhaus_drop.txt").write_text("1.10.16.0/20 ; SBL1\n")
    (mirror / "et_compromised_ips.txt").write_text("9.9.9.9\n")
    (mirror / "tranco_top100k.csv").write_text("google.com\n")
    monkeypatch.setenv("CYBERSENTINEL_FEEDS_MIRROR", str(mirror))
    out = tmp_path / "feeds"
    result = CliRunner().invoke(app, ["feeds", "refresh", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "feeds.json").read_text())
    assert set(manifest["feeds"]) == set(FEEDS)
    assert manifest["feeds"]["firehol_level1"]["url"] == "https://iplists.firehol.org/files/firehol_level1.netset"
    assert manifest["feeds"]["et_compromised"]["entries"] == 1

    result = CliRunner().invoke(app, ["intel", "lookup", "--feeds-dir", str(out), "--json", "1.10.16.1", "10.0.0.1"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert rows[0]["feeds"] == ["firehol_level1", "spamhaus_drop"] and rows[1]["ip_status"] == "private"
    table = CliRunner().invoke(app, ["intel", "lookup", "--feeds-dir", str(out), "9.9.9.9"])
    assert "et_compromised" in table.output

    (mirror / "spamhaus_drop.txt").write_text("garbage\n")
    result = CliRunner().invoke(app, ["feeds", "refresh", "--out", str(out), "--feed", "spamhaus_drop"])
    assert result.exit_code == 2 and "malformed network entry" in result.output  # an error: 2, as everywhere


@pytest.mark.skipif(not REAL_FEEDS.is_dir(), reason="shared feed snapshots not present")
def test_real_feeds_parse_and_match_the_data_readme():
    counts = {name: len(read_feed_file(REAL_FEEDS / feed.filename, feed.parser).entries)
              for name, feed in FEEDS.items()}
    assert counts == {"firehol_level1": 4459, "spamhaus_drop": 1469, "et_compromised": 539, "tranco": 100_000}
    index = IntelIndex.from_dir(REAL_FEEDS)
    for private in ("10.1.2.3", "192.168.1.1", "127.0.0.1", "169.254.3.4", "172.16.0.1"):
        assert index.lookup_ip(private)["ip_status"] == "private", private
    assert index.lookup_ip("224.0.0.1")["ip_status"] == "bogon"
    assert index.lookup_ip("1.10.16.1")["feeds"] == ["firehol_level1", "spamhaus_drop"]
    assert index.lookup_ip("101.100.216.61")["feeds"] == ["et_compromised"]
    assert index.lookup_url("https://www.google.com/")["tranco_rank"] == 1


def test_a_mirror_gives_the_same_snapshot_bytes_wherever_and_whenever_it_is_copied(tmp_path):
    """`make feeds` from the mirror is reproducible: no copy time, mirror path or file time in feeds.json, so
    data/feeds.dvc names the same snapshot on every machine (one made elsewhere can be regenerated here)."""
    first, second = tmp_path / "mirror", tmp_path / "elsewhere" / "copy"
    first.mkdir()
    (first / "firehol_level1.txt").write_text("10.0.0.0/8\n1.10.16.0/20\n")
    (first / "spamhaus_drop.txt").write_text("1.10.16.0/20 ; SBL1\n")
    (first / "et_compromised_ips.txt").write_text("9.9.9.9\n")
    (first / "tranco_top100k.csv").write_text("google.com\n")
    shutil.copytree(first, second, copy_function=shutil.copyfile)  # new files: other path, other mtimes
    for file in second.iterdir():
        os.utime(file, (1_000_000_000, 1_000_000_000))
    snapshots = []
    for mirror, out in ((first, tmp_path / "a"), (second, tmp_path / "b")):
        manifest, errors = refresh_feeds(out, mirror=mirror)
        assert not errors and manifest["feeds"]["et_compromised"]["entries"] == 1
        snapshots.append({f.name: f.read_bytes() for f in sorted(out.iterdir())})
    assert snapshots[0] == snapshots[1]
    assert set(snapshots[0]) == {"feeds.json", *(feed.filename for feed in FEEDS.values())}
    assert str(tmp_path).encode() not in snapshots[0]["feeds.json"]


def test_refresh_from_a_mirror_reports_an_undecodable_feed_by_line_and_refreshes_the_rest(tmp_path):
    mirror, out = tmp_path / "mirror", tmp_path / "feeds"
    mirror.mkdir()
    (mirror / "firehol_level1.txt").write_text("1.10.16.0/20\n", encoding="utf-16")  # a BOM, then NULs
    (mirror / "spamhaus_drop.txt").write_bytes(b"1.10.16.0/20 ; SBL1\n# caf\xed\n")  # Latin-1 in a comment
    (mirror / "et_compromised_ips.txt").write_text("9.9.9.9\n")
    (mirror / "tranco_top100k.csv").write_text("google.com\n")
    result = CliRunner().invoke(app, ["feeds", "refresh", "--out", str(out), "--mirror", str(mirror)],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    output = " ".join(result.output.split())
    assert f"{mirror / 'firehol_level1.txt'}:1: not UTF-8 text" in output
    assert f"{mirror / 'spamhaus_drop.txt'}:2: not UTF-8 text" in output
    assert "et_compromised: updated, 1 entries" in output and "tranco: updated, 1 entries" in output
    manifest = json.loads((out / "feeds.json").read_text())
    assert set(manifest["feeds"]) == {"et_compromised", "tranco"}
    assert sorted(p.name for p in out.iterdir()) == ["et_compromised_ips.txt", "feeds.json", "tranco_top100k.csv"]


def test_refresh_quotes_feed_lines_and_mirror_paths_as_they_are_never_as_markup(tmp_path):
    """Feed lines and paths are data: `[/bold]` must not crash Rich, `[link=...]` and `:skull:` not render."""
    mirror, out = tmp_path / "m[/x] :skull:", tmp_path / "feeds"  # the folder `x] :skull:` in `m[`
    mirror.mkdir(parents=True)
    (mirror / "firehol_level1.txt").write_text("[/bold]\n")
    (mirror / "spamhaus_drop.txt").write_text("[link=http://evil.example]a[/link] :skull:\n")
    (mirror / "et_compromised_ips.txt").write_text("9.9.9.9\n")
    (mirror / "tranco_top100k.csv").write_text("google.com\n")
    result = CliRunner().invoke(app, ["feeds", "refresh", "--out", str(out), "--mirror", str(mirror)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    lines = result.output.splitlines()
    assert f"firehol_level1: failed {mirror / 'firehol_level1.txt'}:1: malformed network entry '[/bold]'" in lines[0]
    assert "malformed network entry '[link=http://evil.example]a[/link] :skull:'" in lines[1]
    assert "\N{SKULL}" not in result.output and "et_compromised: updated, 1 entries" in lines[2]


def test_read_feed_file_names_the_undecodable_line(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"1.2.3.0/24\n5.6.7.0/24\n\xed\n")
    with pytest.raises(FeedError, match=re.escape(f"{path}:3: not UTF-8 text")):
        read_feed_file(path, parse_networks)


@pytest.mark.parametrize("manifest", ["{not json", "[]", '{"feeds": []}', '{"feeds": {"drop": "x"}}', "\xff\xfe"])
def test_refresh_reports_a_malformed_manifest_on_one_line(tmp_path, feed_server, manifest):
    feed_server.files = {"/drop.txt": b"5.5.5.0/24\n"}
    (tmp_path / "feeds.json").write_bytes(manifest.encode("latin-1"))
    with pytest.raises(FeedError, match=re.escape(f"{tmp_path / 'feeds.json'}: not a feeds manifest")) as caught:
        refresh_feeds(tmp_path, ["drop"], feeds=local_feeds(feed_server.url), retries=0)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "spamhaus_drop.txt").exists()  # nothing fetched before the manifest was read

    result = CliRunner().invoke(app, ["feeds", "refresh", "--out", str(tmp_path), "--mirror", str(tmp_path / "m")],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "not a feeds manifest" in result.output and len(result.output.strip().splitlines()) == 1


def on_disk_matches_manifest(folder: Path) -> bool:
    manifest = json.loads((folder / "feeds.json").read_text())
    return all(hashlib.sha256((folder / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
               for entry in manifest["feeds"].values())


def test_a_truncated_tranco_zip_is_a_feed_error_and_the_manifest_matches_the_files(tmp_path, feed_server):
    feeds = local_feeds(feed_server.url)
    feed_server.files = {"/drop.txt": b"5.5.5.0/24\n", "/top-1m.csv.zip": zipped("1,google.com\n2,a.org\n")}
    assert refresh_feeds(tmp_path, feeds=feeds, retries=0)[1] == {}
    feed_server.files = {"/drop.txt": b"6.6.6.0/24\n", "/top-1m.csv.zip": zipped("1,google.com\n" * 50)[:40]}
    manifest, errors = refresh_feeds(tmp_path, feeds=feeds, retries=0)
    assert set(errors) == {"tranco"} and "not a valid zip archive" in errors["tranco"], errors
    assert (tmp_path / "spamhaus_drop.txt").read_text() == "6.6.6.0/24\n"
    assert (tmp_path / "tranco_top100k.csv").read_text() == "1,google.com\n2,a.org\n"  # the old snapshot kept
    assert on_disk_matches_manifest(tmp_path)


def test_a_tranco_archive_that_inflates_to_one_huge_line_is_a_feed_error(tmp_path, feed_server):
    feeds = local_feeds(feed_server.url)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("top-1m.csv", "1,google.com\n" + "a" * 50_000_000 + "\n")
    bomb = buffer.getvalue()
    assert len(bomb) < 100_000  # inflates to 50 MB
    feed_server.files = {"/drop.txt": b"5.5.5.0/24\n", "/top-1m.csv.zip": bomb}
    _, errors = refresh_feeds(tmp_path, feeds=feeds, retries=0)
    assert "line 2 is longer than 300 bytes" in errors["tranco"], errors


def test_a_refresh_that_stops_half_way_leaves_a_manifest_that_matches_the_files(tmp_path, feed_server):
    feed_server.files = {"/drop.txt": b"5.5.5.0/24\n", "/top-1m.csv.zip": zipped("1,google.com\n")}
    feeds = local_feeds(feed_server.url)
    assert refresh_feeds(tmp_path, feeds=feeds, retries=0)[1] == {}
    feed_server.files = {"/drop.txt": b"6.6.6.0/24\n", "/top-1m.csv.zip": zipped("1,a.org\n")}

    def interrupted(body: bytes) -> bytes:
        raise KeyboardInterrupt  # Ctrl-C (or any unforeseen failure) after the first feed was replaced

    feeds["tranco"] = Feed("tranco", feeds["tranco"].url, "domain-popularity", "tranco_top100k.csv",
                           FEEDS["tranco"].parser, interrupted)
    with pytest.raises(KeyboardInterrupt):
        refresh_feeds(tmp_path, feeds=feeds, retries=0)
    assert (tmp_path / "spamhaus_drop.txt").read_text() == "6.6.6.0/24\n" and on_disk_matches_manifest(tmp_path)


def test_a_utf8_byte_order_mark_is_dropped_not_a_malformed_first_line(tmp_path):
    from cybersentinel.ops.etl import prepare_feed_entries

    mirror, out = tmp_path / "mirror", tmp_path / "feeds"
    mirror.mkdir()
    (mirror / "spamhaus_drop.txt").write_bytes(b"\xef\xbb\xbf1.10.16.0/20 ; SBL1\n")
    (mirror / "tranco_top100k.csv").write_bytes(b"\xef\xbb\xbf1,google.com\n")
    manifest, errors = refresh_feeds(out, ["spamhaus_drop", "tranco"], mirror=mirror)
    assert errors == {} and manifest["feeds"]["spamhaus_drop"]["entries"] == 1
    assert read_feed_file(out / "tranco_top100k.csv", parse_ranked_domains).entries == [("google.com", 1)]
    prepared = prepare_feed_entries(out)  # `etl load` reads the same files
    assert len(prepared.rejected) == 0 and sorted(prepared.accepted["entry"]) == ["1.10.16.0/20", "google.com"]
