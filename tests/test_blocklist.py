"""Block list export: every format parsed back, checked by the real tool where installed, deterministic output."""

from __future__ import annotations

import csv
import errno
import hashlib
import ipaddress
import json
import os
import random
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cybersentinel.cli.app import app
from cybersentinel.intel.feeds import IntelIndex
from cybersentinel.ops.blocklist import (
    FORMATS,
    MAX_DOMAIN_CHARS,
    Guard,
    build,
    entries_from_block_list,
    entries_from_feeds,
    entries_from_scored,
    export,
    read_scored,
    target_of,
)
from cybersentinel.scoring.policy import SiteList

ROWS = [
    ("http://evil.example.com/login", "malicious", "0.97", "brand name in subdomain"),
    ("http://EVIL.example.com./other", "malicious", "0.99", "second sighting"),  # same host: merged
    ("https://bücher-phish.de/x", "malicious", "0.91", ""),
    ("http://1.2.3.4/a", "malicious", "0.88", "host is an IP address"),
    ("http://1.2.3.5:8080/", "malicious", "0.8", ""),  # collapses with 1.2.3.4 into 1.2.3.4/31
    ("http://[2a00:1::5]/", "malicious", "0.7", ""),
    ("http://192.168.1.1/admin", "malicious", "0.9", ""),  # private: rejected
    ("https://www.google.com/", "benign", "0.01", ""),  # not selected
    ("http://maybe.example.net/", "suspicious", "0.6", ""),  # not selected by default
    ("http://co.uk/", "malicious", "0.9", ""),  # public suffix: rejected
    ("", "malicious", "0.9", ""),  # no host: rejected
    ("http://" + "a" * 64 + ".com/", "malicious", "0.9", ""),  # label too long: rejected
]
DOMAINS = ["evil.example.com", "xn--bcher-phish-thb.de"]
IPV4 = ["1.2.3.4/31"]
IPV6 = ["2a00:1::5/128"]


def scored_frame(rows=ROWS) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["url", "verdict", "score", "reasons"])


def blocklist_from_rows(rows=ROWS):
    entries, rejected, not_selected = entries_from_scored(scored_frame(rows), "scored.csv")
    return build(entries), entries, rejected, not_selected


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    bl, *_ = blocklist_from_rows()
    return export(bl, FORMATS, tmp_path_factory.mktemp("out"))


# ------------------------------------------------------------------------------------------------ selection


def test_rows_are_all_accounted_for():
    bl, entries, rejected, not_selected = blocklist_from_rows()
    assert len(entries) + len(rejected) + not_selected == len(ROWS)
    assert not_selected == 2
    assert {r.source: r.reason for r in rejected} == {
        "scored.csv:7": "private address is never blocked",
        "scored.csv:10": "public suffix co.uk, not a blockable domain",
        "scored.csv:11": "no host",
        "scored.csv:12": "invalid label '" + "a" * 64 + "'",
    }
    assert [e.value for e in bl.domains] == DOMAINS
    evil = bl.domains[0]
    assert (evil.score, evil.reasons) == (0.99, "second sighting")  # the highest-scoring row wins
    assert [str(n) for n in bl.ipv4] == IPV4 and [str(n) for n in bl.ipv6] == IPV6


def test_suspicious_can_be_selected():
    entries, _, not_selected = entries_from_scored(scored_frame(), "s", ("malicious", "suspicious"))
    assert "maybe.example.net" in {e.value for e in entries} and not_selected == 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_target_of_blocks_a_valid_name_or_says_why_not(url):
    try:
        kind, value = target_of(url)
    except ValueError as err:
        assert str(err)
        return
    if kind == "domain":
        assert value.isascii() and len(value) <= MAX_DOMAIN_CHARS and "." in value
    else:
        assert ipaddress.ip_network(value).is_global


def test_feed_entries_exclude_private_and_bogon_ranges():
    index = IntelIndex.build({"fh": [ipaddress.ip_network(n) for n in
                                     ("10.0.0.0/8", "224.0.0.0/3", "1.10.16.0/20", "1.10.16.0/24", "2a00:1::/32")]},
                             {"hosts": ["bad.example.net"]})
    entries, rejected = entries_from_feeds(index)
    assert sorted(e.value for e in entries) == ["1.10.16.0/20", "2a00:1::/32", "bad.example.net"]
    assert {r.value: r.reason for r in rejected} == {
        "10.0.0.0/8": "overlaps reserved range 10.0.0.0/8: never blocked",
        "224.0.0.0/3": "overlaps reserved range 224.0.0.0/4: never blocked"}


@pytest.mark.parametrize(("network", "reason"), [
    # whole ranges are checked: these have global first and last addresses but cover 10/8, 172.16/12, ...
    ("8.0.0.0/5", "overlaps reserved range 10.0.0.0/8"),
    ("64.0.0.0/3", "/3 is wider than the /12 limit"),
    ("2000::/3", "overlaps reserved range 2001::/23"),
    ("100.64.0.0/10", "overlaps reserved range 100.64.0.0/10"),
    ("4000::/16", "outside global unicast 2000::/3"),
    ("44.0.0.0/9", "/9 is wider than the /12 limit"),
])
def test_feed_ranges_are_checked_whole(network, reason):
    index = IntelIndex.build({"feed": [ipaddress.ip_network(network)]})
    entries, rejected = entries_from_feeds(index)
    assert entries == [] and rejected[0].reason.startswith(reason)


def test_global_unicast_space_is_defined_once_for_the_feed_parser_and_the_block_rules():
    # one place for the rule: the feeds' width check and this guard read the same 2000::/3 (they had a copy each)
    src = Path(__file__).resolve().parents[1] / "src" / "cybersentinel"
    defined = sorted(str(p.relative_to(src)) for p in src.rglob("*.py") if '"2000::/3"' in p.read_text())
    assert defined == ["intel/feeds.py"]


def test_public_suffixes_are_never_rules_even_from_domain_lists():
    index = IntelIndex.build({}, {"list": ["github.io", "co.uk", "com.au", "blogspot.com", "evil.github.io"]})
    entries, rejected = entries_from_feeds(index)
    assert [e.value for e in entries] == ["evil.github.io"]  # a site under a private-section suffix is its own
    assert {r.value for r in rejected} == {"github.io", "co.uk", "com.au", "blogspot.com"}
    assert all(r.reason.startswith("public suffix") for r in rejected)


SPECIAL_USE = ["http://foo.localhost/login", "http://example.local/", "a.test", "x.invalid", "www.example",
               "abcdefghijklmnop.onion", "nas.home.arpa", "svc.internal", "wallet.alt", "Printer.LOCAL."]


def test_special_use_names_are_refused_like_localhost(tmp_path, monkeypatch):
    """Names a machine or network answers itself, never delegated or not DNS at all (RFC 6761, 6762, 7686, 8375,
    9476, .internal): a rule would cut a local service or do nothing, so each goes to rejected.csv with a reason."""
    monkeypatch.chdir(tmp_path)  # no checkout's data/feeds or models/ to fall back on
    scored = tmp_path / "scored.csv"
    scored_frame([(url, "malicious", "0.99", "") for url in [*SPECIAL_USE, "http://kit.example.net/x"]]
                 ).to_csv(scored, index=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["blocklist", "export", str(scored), "-o", str(out), "-f", "hosts",
                                      "--allow-top", "0"])
    assert result.exit_code == 0, result.output
    assert (out / "hosts").read_text().splitlines()[-1] == "0.0.0.0 kit.example.net"
    with open(out / "rejected.csv", newline="") as handle:
        rejected = {row["value"]: row["reason"] for row in csv.DictReader(handle)}
    assert sorted(rejected) == sorted(SPECIAL_USE)
    assert rejected["http://foo.localhost/login"] == "special-use name .localhost (RFC 6761): never blocked"
    assert rejected["Printer.LOCAL."] == "special-use name .local (RFC 6762): never blocked"
    assert rejected["svc.internal"].startswith("special-use name .internal")
    entries, refused = entries_from_feeds(IntelIndex.build({}, {"list": ["kit.test", "evil.example.com"]}))
    assert [e.value for e in entries] == ["evil.example.com"] and refused[0].value == "kit.test"


@pytest.mark.parametrize("url", ["http://1.0.0.0.0.rpz-ip/secure/login.php", "32.5.0.0.10.rpz-client-ip",
                                 "http://printer.lan/login", "nas.home", "router.corp"])
def test_a_name_without_a_public_suffix_is_never_a_rule(url):
    # in an RPZ zone `1.0.0.0.0.rpz-ip` is no name but a trigger on the addresses 0.0.0.0/1
    with pytest.raises(ValueError, match="has no public suffix"):
        target_of(url)


def test_an_ipv6_address_written_alone_is_a_rule_as_in_brackets():
    assert target_of("2a0b:4340::10") == target_of("[2a0b:4340::10]") == ("ipv6", "2a0b:4340::10/128")


def test_no_rule_covers_an_allowlisted_subdomain():
    guard = Guard(SiteList(["sub.shop.example.net"], "allowlist"))
    rows = [("http://shop.example.net/", "malicious", "0.99", ""), ("http://example.net/x", "malicious", "0.99", ""),
            ("http://other.shop.example.net/", "malicious", "0.99", "")]
    entries, rejected, _ = entries_from_scored(scored_frame(rows), "s", guard=guard)
    assert [e.value for e in entries] == ["other.shop.example.net"]
    why = "covers the allowlisted sub.shop.example.net (allowlist): never blocked"
    assert [r.reason for r in rejected] == [why, why]


def test_a_file_that_is_not_a_scored_file_is_not_echoed(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$SECRETHASH$abc:19000:0:99999:7:::\n")
    with pytest.raises(ValueError) as err:
        read_scored(secret)
    assert "SECRETHASH" not in str(err.value) and "first line holds" in str(err.value)
    named = tmp_path / "names.csv"
    named.write_text("address,when\nx,y\n")
    with pytest.raises(ValueError, match="has: address, when"):  # a header of names is shown, as a hint
        read_scored(named)


def test_allowlisted_and_popular_sites_are_never_blocked_but_an_explicit_block_list_beats_popularity():
    guard = Guard(SiteList(["intranet.example.org"], "allowlist"), {"google.com": 1, "rare.org": 50_000}, 10_000)
    rows = [("https://www.paypal.com/signin", "malicious", "0.99", ""),
            ("https://docs.google.com/forms/d/x/viewform", "malicious", "0.95", ""),
            ("http://a.intranet.example.org/login", "malicious", "0.9", ""),
            ("http://login.rare.org/", "malicious", "0.9", "")]
    entries, rejected, _ = entries_from_scored(scored_frame(rows), "s", guard=Guard(
        guard.allow, {**guard.popularity, "paypal.com": 5}, 10_000))
    assert [e.value for e in entries] == ["login.rare.org"]
    assert [r.reason.split(" (")[0] for r in rejected] == ["popular site paypal.com",
                                                           "docs.google.com is a host where anyone can publish: never "
                                                           "a host rule", "allowlisted"]
    blocked, refused = entries_from_block_list({"mail.google.com": "ours", "intranet.example.org": "ours"}, guard)
    assert [e.value for e in blocked] == ["mail.google.com"] and refused[0].value == "intranet.example.org"
    government = Guard(None, {"service.gov.uk": 437}, 10_000)
    entries, rejected, _ = entries_from_scored(scored_frame([
        ("https://www.access.service.gov.uk/login/signin/creds", "malicious", "0.99", ""),
        ("https://kit.example.uk/service.gov.uk/", "malicious", "0.99", "")]), "s", guard=government)
    assert [e.value for e in entries] == ["kit.example.uk"]
    assert rejected[0].reason == ("popular site access.service.gov.uk (service.gov.uk: Tranco rank 437): never "
                                  "blocked unless on the block list")


# A block rule on these covers a whole platform (DNS formats block the subdomains too), whatever asks for it.
PLATFORM_RULES = {
    "amazonaws.com": "amazonaws.com covers the public suffix s3.amazonaws.com and",
    "windows.net": "windows.net covers the public suffix servicebus.windows.net and",
    "compute-1.amazonaws.com": "compute-1.amazonaws.com covers the public suffix *.compute-1.amazonaws.com (",
    "docs.google.com": "docs.google.com is a host where anyone can publish",
    "a.sites.google.com": "a.sites.google.com is under sites.google.com, a host where anyone can publish",
    "ipfs.io": "ipfs.io is a host where anyone can publish",
    "weebly.com": "weebly.com covers *.weebly.com, a host where anyone can publish",
    "blogspot.it": "blogspot.it covers *.blogspot.it, a host where anyone can publish",
    "google.com": "google.com covers sites.google.com, a host where anyone can publish",
    "bit.ly": "bit.ly is a URL shortener", "t.co": "t.co is a URL shortener",
}


def test_no_rule_covers_a_whole_platform_from_any_input(tmp_path, monkeypatch):
    """A name with a public suffix beneath it, a user-content host, a shortener or a name above one is refused
    (`platform_problem`) for scored rows, feeds and an explicit block list alike; one user's site there is not."""
    guard = Guard(None, {}, 0)
    sites = ["paypal-secure-login.s3.amazonaws.com", "kit.weebly.com", "login.windows.net", "evil.github.io",
             "kit.blogspot.it"]
    rows = [(f"https://{name}/x", "malicious", "0.99", "") for name in [*PLATFORM_RULES, *sites]]
    entries, rejected, _ = entries_from_scored(scored_frame(rows), "s", guard=guard)
    assert [e.value for e in entries] == sites
    assert all(r.reason.startswith(PLATFORM_RULES[r.value.split("/")[2]]) for r in rejected), rejected
    assert len(rejected) == len(PLATFORM_RULES) and all(r.reason.endswith("never a host rule") for r in rejected)
    blocked, refused = entries_from_block_list({name: "ours" for name in [*PLATFORM_RULES, *sites]}, guard)
    assert [e.value for e in blocked] == sites and {r.value for r in refused} == set(PLATFORM_RULES)
    found, refused = entries_from_feeds(IntelIndex.build({}, {"list": [*PLATFORM_RULES, *sites]}), guard)
    assert sorted(e.value for e in found) == sorted(sites) and {r.value for r in refused} == set(PLATFORM_RULES)

    monkeypatch.chdir(tmp_path)  # the command: refusals go to rejected.csv with their reason
    scored = tmp_path / "scored.csv"
    scored_frame(rows).to_csv(scored, index=False)
    result = CliRunner().invoke(app, ["blocklist", "export", str(scored), "-o", str(tmp_path / "out"), "-f",
                                      "dnsmasq", "--allow-top", "0"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "dnsmasq-blocklist.conf").read_text().splitlines()[1:] == [
        f"local=/{name}/" for name in sorted(sites)]
    with open(tmp_path / "out" / "rejected.csv", newline="") as handle:
        reasons = {row["value"].split("/")[2]: row["reason"] for row in csv.DictReader(handle)}
    assert sorted(reasons) == sorted(PLATFORM_RULES)
    assert all(reasons[name].startswith(start) for name, start in PLATFORM_RULES.items())


def test_no_range_covers_an_allowlisted_address_or_a_pinned_resolver():
    guard = Guard(SiteList(["1.0.0.1", "intranet.example.org"], "allowlist"), {}, 0,
                  addresses={"8.8.8.8": "public DNS resolver dns.google in R", "[2001:4860:4860::8888]": "dns.google"})
    assert guard.network_problem(ipaddress.ip_network("8.8.8.0/24")) == \
        "covers allowlisted address 8.8.8.8 (public DNS resolver dns.google in R): never blocked"
    assert guard.network_problem(ipaddress.ip_network("2001:4860:4860::/48")).startswith(
        "covers allowlisted address 2001:4860:4860::8888")
    assert "1.0.0.1 (allowlist)" in guard.network_problem(ipaddress.ip_network("1.0.0.1/32"))
    assert guard.network_problem(ipaddress.ip_network("8.8.4.0/24")) == ""  # a neighbour is not protected
    index = IntelIndex.build({"drop": [ipaddress.ip_network("8.8.8.0/24"), ipaddress.ip_network("5.5.5.0/24")]}, {})
    entries, rejected = entries_from_feeds(index, guard)
    assert [e.value for e in entries] == ["5.5.5.0/24"] and [r.value for r in rejected] == ["8.8.8.0/24"]
    scored, refused, _ = entries_from_scored(scored_frame([("http://8.8.8.8/x", "malicious", "1", "")]), "s",
                                             guard=guard)
    assert scored == [] and "8.8.8.8" in refused[0].reason


def test_cli_export_never_covers_the_models_pinned_resolvers(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "resolvers.txt").write_text("8.8.8.8 dns.google\n")
    digest = hashlib.sha256(b"8.8.8.8 dns.google\n").hexdigest()
    (model / "model.json").write_text(json.dumps({"resolvers": {"file": "resolvers.txt", "sha256": digest,
                                                                "name": "systemd-resolved 252.39"}}))
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "firehol_level1.txt").write_text("8.8.8.0/24\n1.10.16.0/20\n")
    out = tmp_path / "out"
    args = ["blocklist", "export", "-o", str(out), "--feeds-dir", str(feeds), "-f", "nftables", "--model-dir"]
    result = CliRunner().invoke(app, [*args, str(model)])
    assert result.exit_code == 0, result.output
    rules = (out / "blocklist.nft").read_text()
    assert "8.8.8.0/24" not in rules and "1.10.16.0/20" in rules
    assert "public DNS resolver dns.google in systemd-resolved 252.39" in (out / "rejected.csv").read_text()
    (model / "resolvers.txt").write_text("8.8.4.4 dns.google\n")  # not what the manifest pinned
    result = CliRunner().invoke(app, [*args, str(model)], env={"COLUMNS": "400"})
    assert result.exit_code == 2 and "does not match" in result.output


def test_cli_export_without_a_tranco_list_protects_the_sites_pinned_with_the_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/feeds here
    model = tmp_path / "model"
    model.mkdir()
    (model / "popular.txt").write_text("google.com\nsteinberg.net\n")
    digest = hashlib.sha256(b"google.com\nsteinberg.net\n").hexdigest()
    (model / "model.json").write_text(json.dumps({"popularity": {"file": "popular.txt", "sha256": digest}}))
    scored = tmp_path / "scored.csv"
    scored_frame([("http://www.steinberg.net/wp-includes/js/x/y/", "malicious", "0.99", ""),
                  ("http://kit.example.net/login", "malicious", "0.99", "")]).to_csv(scored, index=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["blocklist", "export", str(scored), "-o", str(out), "-f", "hosts",
                                      "--model-dir", str(model)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "pinned with the model" in result.output
    assert (out / "hosts").read_text().split()[-2:] == ["0.0.0.0", "kit.example.net"]
    assert "popular site steinberg.net" in (out / "rejected.csv").read_text()


def test_min_score_selects_scored_rows():
    entries, _, not_selected = entries_from_scored(scored_frame(), "s", min_score=0.95)
    assert {e.value for e in entries} == {"evil.example.com"} and not_selected == 10


@pytest.mark.parametrize("host", ["1.10.4101", "0x1.0xa.0x10.0x5", "01.012.020.05", "１.１０.１６.５", "1。10。16。5"])
def test_host_forms_of_one_address_become_one_rule(host):
    assert target_of(f"http://{host}/x") == ("ipv4", "1.10.16.5/32")
    # a redirector's link was judged as the page it leads to: the rule names that page's host, not Google's
    assert target_of("https://www.google.com/url?q=https://kit.example.net/login") == ("domain", "kit.example.net")


def test_output_is_deterministic_whatever_the_row_order(tmp_path):
    shuffled = ROWS[:]
    random.Random(7).shuffle(shuffled)
    first = export(blocklist_from_rows()[0], FORMATS, tmp_path / "a")
    second = export(blocklist_from_rows(shuffled)[0], FORMATS, tmp_path / "b")
    for name in FORMATS:
        if name == "stix":  # a new indicator's id and times come from its first export (its own tests take them on)
            assert stix_without_times(first[name]) == stix_without_times(second[name])
            continue
        assert first[name].read_bytes() == second[name].read_bytes(), name


def stix_without_times(path: Path) -> list[dict]:
    return [{k: v for k, v in item.items() if k not in ("id", "created", "modified", "valid_from")}
            for item in json.loads(path.read_text())["objects"]]


def test_rpz_serial_increases_with_every_change_and_files_are_readable(tmp_path):
    serial = re.compile(r"SOA\s+\S+\s+\S+\s+\((\d+)")
    out = tmp_path / "zone"
    serials = []
    for rows in (ROWS, ROWS, [*ROWS, ("http://new.example.org/", "malicious", "1", "")], ROWS):
        zone = export(blocklist_from_rows(rows)[0], ["rpz"], out)["rpz"]
        serials.append(int(serial.search(zone.read_text()).group(1)))
        assert zone.stat().st_mode & 0o777 == 0o644  # a resolver running as another user must read it
    assert serials == [1, 1, 2, 3]  # unchanged: the same serial; any change, removals too: one more


# ------------------------------------------------------------------------------------------------ parse back


def lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith(("#", ";"))]


def test_hosts_parses_back(outputs):
    assert [line.split() for line in lines(outputs["hosts"])] == [["0.0.0.0", d] for d in DOMAINS]


def test_dnsmasq_parses_back(outputs):
    assert [re.fullmatch(r"local=/([^/]+)/", line).group(1) for line in lines(outputs["dnsmasq"])] == DOMAINS


def test_unbound_parses_back(outputs):
    body = lines(outputs["unbound"])
    assert body[0] == "server:"
    assert [re.fullmatch(r'\s+local-zone: "([^"]+)\." always_nxdomain', line).group(1) for line in body[1:]] == DOMAINS


def test_rpz_parses_back(outputs):
    records = [line.split("\t") for line in lines(outputs["rpz"]) if "CNAME" in line]
    assert records == [[name, "CNAME", "."] for d in DOMAINS for name in (d, f"*.{d}")]


def test_nginx_parses_back(outputs):
    text = outputs["nginx"].read_text()
    keys = re.findall(r"^\s+\.(\S+) 1;$", text, re.M)
    denied = re.findall(r"^deny (\S+);$", text, re.M)
    assert keys == DOMAINS
    assert denied == ["1.2.3.4/31", "2a00:1::5"]


def test_nftables_parses_back(outputs):
    text = outputs["nftables"].read_text()
    sets = dict(re.findall(r"add element inet cybersentinel (\S+) \{\n(.*?)\n\}", text, re.S))
    assert [e.strip() for e in sets["blocked_ipv4"].split(",")] == ["1.2.3.4/31"]
    assert [e.strip() for e in sets["blocked_ipv6"].split(",")] == ["2a00:1::5"]


def test_ipset_parses_back(outputs):
    adds = [line.split()[1:] for line in lines(outputs["ipset"]) if line.startswith("add ")]
    assert adds == [["cybersentinel_v4_new", "1.2.3.4/31"], ["cybersentinel_v6_new", "2a00:1::5"]]


def test_csv_parses_back(outputs):
    with open(outputs["csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["kind"], r["value"]) for r in rows] == [("domain", DOMAINS[0]), ("domain", DOMAINS[1]),
                                                      ("ipv4", "1.2.3.4/32"), ("ipv4", "1.2.3.5/32"),
                                                      ("ipv6", "2a00:1::5/128")]
    assert rows[0]["score"] == "0.99" and rows[0]["reasons"] == "second sighting" and rows[0]["sources"] == "scored"


def test_empty_list_renders_valid_files(tmp_path):
    written = export(build([]), FORMATS, tmp_path)
    assert "add element" not in written["nftables"].read_text()
    assert lines(written["hosts"]) == []


# ------------------------------------------------------------------------------------------------ real tools


def require(tool: str, package: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{tool} not installed (Debian package {package})")
    return path


def run(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kwargs)


def check_nft(path: Path) -> subprocess.CompletedProcess:
    return run([require("nft", "nftables"), "-c", "-f", str(path)])


def check_named(path: Path) -> subprocess.CompletedProcess:
    return run([require("named-checkzone", "bind9-utils"), "cybersentinel.rpz", str(path)])


def check_unbound(path: Path) -> subprocess.CompletedProcess:
    conf = path.parent / "unbound-test.conf"
    conf.write_text(f'server:\n    chroot: ""\n    username: ""\n    directory: "{path.parent}"\n    pidfile: ""\n'
                    f'    use-syslog: no\ninclude: "{path}"\n')
    return run([require("unbound-checkconf", "unbound"), str(conf)])


def check_nginx(path: Path) -> subprocess.CompletedProcess:
    conf = path.parent / "nginx-test.conf"
    conf.write_text(f"pid {path.parent}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n    access_log off;\n"
                    f"    include {path};\n    server {{\n        listen 127.0.0.1:18080;\n"
                    "        if ($cybersentinel_blocked_host) { return 403; }\n    }\n}\n")
    return run([require("nginx", "nginx"), "-t", "-q", "-c", str(conf), "-p", str(path.parent), "-e", "stderr"])


def check_dnsmasq(path: Path) -> subprocess.CompletedProcess:
    return run([require("dnsmasq", "dnsmasq-base"), "--test", f"--conf-file={path}"])


def check_ipset(path: Path) -> subprocess.CompletedProcess:
    # ipset has no dry run: restore into a throw-away network namespace, so the host's sets are untouched
    ipset = require("ipset", "ipset")
    unshare = require("unshare", "util-linux")
    if run([unshare, "--net", "true"]).returncode != 0:
        pytest.skip("cannot create a network namespace here (unshare --net needs CAP_SYS_ADMIN)")
    return run([unshare, "--net", ipset, "restore", "-f", str(path)])


CHECKERS = {"nftables": check_nft, "rpz": check_named, "unbound": check_unbound, "nginx": check_nginx,
            "dnsmasq": check_dnsmasq, "ipset": check_ipset}
BREAKAGE = {"nftables": ("1.2.3.4/31", "1.2.3.4/33"), "rpz": ("CNAME\t.", "CNAME\t.."),
            "unbound": ("always_nxdomain", "always_nothing"), "nginx": ("deny 1.2.3.4/31;", "deny 1.2.3.4/33;"),
            "dnsmasq": ("local=/evil", "locale=/evil"), "ipset": ("1.2.3.4/31", "1.2.3.4/33")}


@pytest.mark.parametrize("fmt", sorted(CHECKERS))
def test_real_tool_accepts_output_and_rejects_a_broken_copy(fmt, outputs, tmp_path):
    good = tmp_path / outputs[fmt].name
    good.write_text(outputs[fmt].read_text())
    result = CHECKERS[fmt](good)
    assert result.returncode == 0, result.stdout + result.stderr
    old, new = BREAKAGE[fmt]
    broken = tmp_path / f"broken-{outputs[fmt].name}"
    assert old in good.read_text()
    broken.write_text(good.read_text().replace(old, new))
    assert CHECKERS[fmt](broken).returncode != 0  # the check has teeth


@pytest.mark.parametrize("fmt", sorted(CHECKERS))
def test_real_tool_accepts_longest_names_and_feed_sized_lists(fmt, tmp_path):
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * (MAX_DOMAIN_CHARS - 3 * 64 - 4), "com"])
    assert len(longest) == MAX_DOMAIN_CHARS
    rows = [(f"http://{longest}/", "malicious", "1", "")]
    rows += [(f"http://host{i}.bad{i % 97}.example/", "malicious", "0.9", "") for i in range(3000)]
    rows += [(f"http://{ipaddress.IPv4Address(0x05000000 + i * 3)}/", "malicious", "0.9", "") for i in range(3000)]
    rows += [(f"http://[2a00:1::{i:x}]/", "malicious", "0.9", "") for i in range(500)]
    written = export(blocklist_from_rows(rows)[0], [fmt], tmp_path)
    result = CHECKERS[fmt](written[fmt])
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]


# ------------------------------------------------------------------------------------------------ inputs and CLI


def test_reads_csv_parquet_and_jsonl_alike(tmp_path):
    frame = scored_frame()
    frame.to_csv(tmp_path / "s.csv", index=False)
    frame.to_parquet(tmp_path / "s.parquet", index=False)
    frame.to_json(tmp_path / "s.jsonl", orient="records", lines=True)
    values = {suffix: [e.value for e in build(entries_from_scored(read_scored(tmp_path / f"s.{suffix}"), "s")[0])
                       .entries] for suffix in ("csv", "parquet", "jsonl")}
    assert values["csv"] == values["parquet"] == values["jsonl"] == DOMAINS + ["1.2.3.4/32", "1.2.3.5/32",
                                                                              "2a00:1::5/128"]


def test_list_reasons_from_jsonl(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"url": "bad.example.net", "verdict": "malicious", "score": 0.9,
                                "reasons": ["host is new", "brand name"]}) + "\n")
    entries, _, _ = entries_from_scored(read_scored(path), "s")
    assert entries[0].reasons == "host is new; brand name"


def test_cli_export_writes_formats_rejects_and_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/feeds/tranco_top100k.csv of a checkout to fall back on: it ranks example.com
    scored = tmp_path / "scored.csv"
    scored_frame().to_csv(scored, index=False)
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "firehol_level1.txt").write_text("10.0.0.0/8\n1.10.16.0/20\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["blocklist", "export", str(scored), "-o", str(out), "--feeds-dir", str(feeds),
                                      "-f", "hosts", "-f", "nftables"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["blocklist.nft", "hosts", "rejected.csv", "report.json"]
    report = json.loads((out / "report.json").read_text())
    counts = report["inputs"][str(scored)]
    assert counts == {"rows": 12, "blockable": 6, "not_selected": 2, "rejected": 4}
    assert report["rejected"] == 5  # four rows and the feed's 10.0.0.0/8
    assert "1.10.16.0/20" in (out / "blocklist.nft").read_text()
    assert "10.0.0.0/8" not in (out / "blocklist.nft").read_text()
    assert len((out / "rejected.csv").read_text().splitlines()) == 1 + 5


def test_cli_export_clear_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("link,label\nx,y\n")
    result = CliRunner().invoke(app, ["blocklist", "export", str(bad), "-o", str(tmp_path / "o")],
                                 env={"COLUMNS": "400"})  # rich wraps the error box at the width
    assert result.exit_code == 2 and "missing column(s) url, verdict" in result.output
    assert not (tmp_path / "o").exists()
    result = CliRunner().invoke(app, ["blocklist", "export", str(bad), "-f", "iptables"])
    assert result.exit_code == 2 and "unknown format" in result.output


def files_in(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.mark.parametrize(("failure", "at"), [(OSError(errno.EBUSY, "Device or resource busy"), "last"),
                                             (KeyboardInterrupt(), "last"),  # or SIGTERM's SystemExit
                                             (OSError(errno.EBUSY, "Device or resource busy"), "first")])
def test_an_export_that_fails_renaming_a_file_leaves_the_previous_set_whole(tmp_path, monkeypatch, failure, at):
    out = tmp_path / "rules"
    export(build(entries_from_block_list({"old.example.net": "list"})[0]), ["hosts", "rpz", "csv"], out,
           {"rejected.csv": "old\n", "report.json": "{}\n"})
    (out / "hosts").chmod(0o640)
    previous = files_in(out)
    count = len(FORMATS) + 2
    replace, renamed = os.replace, []

    def rename(source, target):  # `atomic_path`'s rename of the new set's file number `at` fails (EBUSY: a file
        if str(source).endswith(".tmp"):  # bind-mounted into a container) or is interrupted
            renamed.append(Path(target).name)
            if len(renamed) == (count if at == "last" else 1):
                raise failure
        replace(source, target)

    monkeypatch.setattr(os, "replace", rename)
    with pytest.raises(type(failure)):
        export(build(entries_from_block_list({"new.example.net": "list"})[0]), FORMATS, out,
               {"rejected.csv": "new\n", "report.json": '{"new": 1}\n'})
    assert len(renamed) == (count if at == "last" else 1)
    assert files_in(out) == previous  # no new file, none left behind (temporary or kept)
    assert stat.S_IMODE((out / "hosts").stat().st_mode) == 0o640  # the very file put back
    if at == "last":
        assert renamed[-1] == "report.json"  # renamed after the rules it reports on


@pytest.mark.parametrize("blocker", ["unbound-blocklist.conf", "report.json"])
def test_cli_export_writes_no_file_when_one_target_cannot_be_written(tmp_path, monkeypatch, blocker):
    monkeypatch.chdir(tmp_path)
    scored = tmp_path / "scored.csv"
    scored_frame().to_csv(scored, index=False)
    out = tmp_path / "out"
    (out / blocker).mkdir(parents=True)  # a folder where one output goes: the set cannot be written whole
    result = CliRunner().invoke(app, ["blocklist", "export", str(scored), "-o", str(out)], env={"COLUMNS": "400"})
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert f"{out / blocker}: is a directory, not a file to write" in result.output
    assert [p.name for p in out.iterdir()] == [blocker]  # nothing written, no temporary file left behind
