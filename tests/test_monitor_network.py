"""`monitor` on network monitors' logs: Suricata's EVE JSON and Zeek's http, dns and ssl logs (JSON, or
tab-separated after their header). Neither program is installable here, so the lines are written as their
documentation shows them (Suricata's "Eve JSON Format", Zeek's log headers and default columns)."""

from __future__ import annotations

import io
import ipaddress
import json
from pathlib import Path

import pytest
from fixtures_model import model_dir  # noqa: F401 (a pytest fixture)
from hypothesis import given, settings
from hypothesis import strategies as st
from test_monitor import Scorer, index
from typer.testing import CliRunner

from cybersentinel.cli.app import app
from cybersentinel.ops.monitor import MalformedLineError, parse_line, run_monitor, zeek_fields

HOME = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.168.0.0/16")]  # the tests' servers are
# documentation addresses, which are not global: the default home (every non-global address) would hold them too


def eve(event_type: str, body: dict | None = None, **common) -> str:
    event = {"timestamp": "2026-12-05T10:15:02.412345+0000", "flow_id": 1862305414120211, "in_iface": "eth0",
             "event_type": event_type, "src_ip": "192.168.1.20", "src_port": 51712, "dest_ip": "203.0.113.9",
             "dest_port": 80, "proto": "TCP", **common}
    if body is not None:
        event[event_type] = body
    return json.dumps(event, separators=(",", ":"))


def http(hostname: str | None, url: str, method: str = "GET", status: object = 200, **extra) -> dict:
    return {**({"hostname": hostname} if hostname is not None else {}), "url": url, "http_user_agent": "Mozilla/5.0",
            "http_method": method, "protocol": "HTTP/1.1", "status": status, "length": 310, **extra}


@pytest.mark.parametrize(("line", "method", "url", "server"), [
    (eve("http", http("kit.example.top", "/paypal/signin")), "GET", "http://kit.example.top/paypal/signin",
     "203.0.113.9"),
    (eve("http", http("shop.example.com", "/cart", http_port=8080), dest_port=8080), "GET",
     "http://shop.example.com:8080/cart", "203.0.113.9"),
    (eve("http", http("shop.example.com", "/cart"), dest_port=8080), "GET", "http://shop.example.com:8080/cart",
     "203.0.113.9"),
    (eve("http", http("shop.example.com:8081", "/cart"), dest_port=8080), "GET", "http://shop.example.com:8081/cart",
     "203.0.113.9"),
    (eve("http", http("proxy.corp", "http://kit.example.top/a?b=1"), dest_port=3128), "GET",
     "http://kit.example.top/a?b=1", "203.0.113.9"),  # a request to a forward proxy: the absolute URL
    (eve("http", http("kit.example.top", "kit.example.top:443", "CONNECT"), dest_port=3128), "CONNECT",
     "kit.example.top", "203.0.113.9"),
    (eve("http", http(None, "/index.html")), "GET", None, "203.0.113.9"),  # HTTP/1.0 without a Host header
    (eve("dns", {"type": "query", "id": 16000, "rrname": "Login.Example.top", "rrtype": "A", "tx_id": 0},
         dest_port=53, proto="UDP"), "QUERY", "login.example.top", "203.0.113.9"),
    (eve("dns", {"version": 3, "type": "request", "tx_id": 0, "id": 3017, "flags": "100", "rd": True,
                 "opcode": 0, "rcode": "NOERROR", "queries": [{"rrname": "login.example.top", "rrtype": "AAAA"}]},
         dest_port=53, proto="UDP"), "QUERY", "login.example.top", "203.0.113.9"),
    (eve("tls", {"subject": "CN=secure.example.top", "issuerdn": "CN=R11, O=Let's Encrypt, C=US",
                 "serial": "04:1B", "fingerprint": "8f:51:12", "sni": "secure.example.top", "version": "TLS 1.3"},
         dest_port=443), "TLS", "secure.example.top", "203.0.113.9"),
])
def test_suricata_events_name_the_sites_clients_asked_for(line, method, url, server):
    record = parse_line(line, "suricata")
    assert record == parse_line(line)  # found by `auto` too
    assert (record.format, record.method, record.url, record.client_ip, record.server_ip) == \
        ("suricata", method, url, "192.168.1.20", server)


@pytest.mark.parametrize("line", [
    eve("dns", {"version": 2, "type": "answer", "id": 45444, "flags": "8180", "qr": True, "rcode": "NOERROR",
                "answers": [{"rrname": "www.example.top", "rrtype": "A", "ttl": 10, "rdata": "192.0.78.24"}]}),
    eve("dns", {"version": 3, "type": "response", "queries": [{"rrname": "www.example.top", "rrtype": "A"}]}),
    eve("flow", {"pkts_toserver": 27, "bytes_toserver": 2302, "state": "closed"}),
    eve("alert", {"action": "allowed", "signature_id": 2018358, "signature": "ET HUNTING GENERIC SUSPICIOUS POST"},
        http=http("kit.example.top", "/gate.php", "POST")),  # the http event of the same request names it once
    eve("stats", {"uptime": 3600}), eve("http", "not an object"), eve("http", http(["a"], ["/x"], status="OK")),
])
def test_suricatas_other_events_are_parsed_lines_that_name_nothing(line):
    record = parse_line(line, "suricata")
    assert record.format == "suricata" and record.url is None


ZEEK_HTTP = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "trans_depth", "method", "host", "uri",
             "referrer", "version", "user_agent", "origin", "request_body_len", "response_body_len", "status_code",
             "status_msg", "info_code", "info_msg", "tags", "username", "password", "proxied", "orig_fuids",
             "orig_filenames", "orig_mime_types", "resp_fuids", "resp_filenames", "resp_mime_types"]
ZEEK_DNS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "trans_id", "rtt", "query",
            "qclass", "qclass_name", "qtype", "qtype_name", "rcode", "rcode_name", "AA", "TC", "RD", "RA", "Z",
            "answers", "TTLs", "rejected"]
ZEEK_SSL = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "version", "cipher", "curve",
            "server_name", "resumed", "last_alert", "next_protocol", "established", "ssl_history", "cert_chain_fps",
            "client_cert_chain_fps", "sni_matches_cert"]


def zeek_header(path: str, fields: list[str]) -> list[str]:
    return ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-", f"#path\t{path}",
            "#open\t2026-12-05-10-00-00", "#fields\t" + "\t".join(fields),
            "#types\t" + "\t".join(["string"] * len(fields))]


def zeek_http(client: str, host: str, uri: str, status: str = "200", server: str = "203.0.113.9",
              port: str = "80") -> str:
    return "\t".join(["1733393702.412345", "CHhAvVGS1DHFjwGM9", client, "51712", server, port, "1", "GET", host, uri,
                      "-", "1.1", "Mozilla/5.0 (X11; Linux x86_64)", "-", "0", "1234", status, "OK", "-", "-",
                      "(empty)", "-", "-", "-", "-", "-", "-", "FakNcS1Jfe01uljb3", "-", "text/html"])


def zeek_dns(client: str, query: str) -> str:
    return "\t".join(["1733393702.5", "C4J4Th3PJpwUYZZ6gc", client, "53521", "192.168.1.1", "53", "udp", "8814",
                      "0.003", query, "1", "C_INTERNET", "1", "A", "0", "NOERROR", "F", "F", "T", "T", "0",
                      "192.0.2.7", "300.000000", "F"])


def zeek_ssl(client: str, server_name: str) -> str:
    return "\t".join(["1733393703.1", "CsWa8w4KJrZ9nd3Z5", client, "51744", "198.51.100.4", "443", "TLSv13",
                      "TLS_AES_128_GCM_SHA256", "x25519", server_name, "F", "-", "h2", "T", "CsiI", "-", "-", "-"])


def test_zeek_lines_are_read_by_the_columns_their_header_names():
    http_fields = zeek_fields(zeek_header("http", ZEEK_HTTP)[6])
    dns_fields = zeek_fields(zeek_header("dns", ZEEK_DNS)[6])
    assert http_fields == ZEEK_HTTP and zeek_fields("#path\thttp") is None
    record = parse_line(zeek_http("10.0.0.5", "kit.example.top", "/signin\\x09x?a=1"), "zeek", fields=http_fields)
    assert (record.method, record.url, record.status, record.client_ip, record.server_ip) == \
        ("GET", "http://kit.example.top/signin\tx?a=1", 200, "10.0.0.5", "203.0.113.9")
    assert parse_line(zeek_http("10.0.0.5", "kit.example.top", "/a", port="8080"), fields=http_fields).url == \
        "http://kit.example.top:8080/a"
    assert parse_line(zeek_http("10.0.0.5", "-", "/a"), "zeek", fields=http_fields).url is None  # no Host header
    query = parse_line(zeek_dns("10.0.0.7", "Login.Example.top"), "zeek", fields=dns_fields)
    assert (query.method, query.url, query.client_ip, query.server_ip) == ("QUERY", "login.example.top", "10.0.0.7",
                                                                             "192.168.1.1")  # the resolver
    for line in zeek_header("http", ZEEK_HTTP):
        assert parse_line(line, "zeek").url is None and parse_line(line).format == "zeek"
    with pytest.raises(MalformedLineError, match="fewer columns than its #fields header"):
        parse_line(zeek_dns("10.0.0.7", "a.example"), "zeek", fields=http_fields)
    with pytest.raises(MalformedLineError, match="before its #fields header"):
        parse_line(zeek_dns("10.0.0.7", "a.example"), "zeek")
    with pytest.raises(MalformedLineError, match="not a known log line"):
        parse_line(zeek_dns("10.0.0.7", "a.example"))  # `auto` without a header: not a line it knows


def test_zeek_json_lines_with_flat_or_nested_ids():
    flat = {"ts": 1733393702.41, "uid": "CHhAvVGS1DHFjwGM9", "id.orig_h": "10.0.0.5", "id.orig_p": 51712,
            "id.resp_h": "203.0.113.9", "id.resp_p": 8080, "trans_depth": 1, "method": "POST",
            "host": "kit.example.top", "uri": "/gate.php", "version": "1.1", "request_body_len": 120,
            "status_code": 200, "tags": []}
    nested = {"ts": "2026-12-05T10:15:03.1Z", "uid": "C4J4Th3PJpwUYZZ6gc",
              "id": {"orig_h": "10.0.0.7", "orig_p": 53521, "resp_h": "192.168.1.1", "resp_p": 53},
              "proto": "udp", "query": "_ldap._tcp.dc._msdcs.corp.example.com", "qtype_name": "SRV"}
    ssl = {"ts": 1733393703.1, "uid": "CsWa8w4KJrZ9nd3Z5", "id.orig_h": "10.0.0.5", "id.resp_h": "198.51.100.4",
           "id.resp_p": 443, "version": "TLSv13", "server_name": "secure.example.top", "established": True}
    post, service, tls = (parse_line(json.dumps(value), "zeek") for value in (flat, nested, ssl))
    assert (post.method, post.url, post.server_ip) == ("POST", "http://kit.example.top:8080/gate.php", "203.0.113.9")
    assert (service.method, service.url, service.client_ip) == ("QUERY", None, "10.0.0.7")  # a service record
    assert (tls.method, tls.url, tls.server_ip) == ("TLS", "secure.example.top", "198.51.100.4")
    assert parse_line(json.dumps(flat)) == post
    conn = parse_line(json.dumps({"ts": 1.0, "uid": "C1", "id.orig_h": "10.0.0.5", "proto": "tcp",
                                  "conn_state": "SF"}), "zeek")
    assert conn.url is None and conn.client_ip is None  # conn.log names no site
    for line, fmt in (('{"ts": 1.0}', "zeek"), ("[1, 2]", "zeek"), ('{"event_type": "http"', "suricata"),
                      ("{" * 50_000, "suricata"), ('{"a":' * 50_000, "suricata")):  # the last one nests
        with pytest.raises(MalformedLineError, match=f"not a {fmt} log line"):
            parse_line(line, fmt)


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["http", "dns", "tls", "flow"]), body=JSON_VALUES,
       common=st.dictionaries(st.sampled_from(["src_ip", "dest_ip", "dest_port", "timestamp"]), JSON_VALUES))
def test_any_eve_or_zeek_object_is_parsed_never_a_crash(kind, body, common):
    for line in (json.dumps({"event_type": kind, kind: body, **common}),
                 json.dumps({"ts": 1, "uid": "C", "_path": {"tls": "ssl"}.get(kind, kind), "host": body,
                             "query": body, "server_name": body, "uri": body, "id": body, **common})):
        record = parse_line(line)
        assert record.url is None or isinstance(record.url, str)


def test_monitor_follows_zeek_logs_across_headers_and_counts_names_that_are_no_site(tmp_path):
    log = tmp_path / "current.log"  # as Zeek's logs are read in a pipeline: files one after another
    log.write_text("\n".join([
        zeek_http("10.0.0.5", "late.example.com", "/read-before-any-header"),
        *zeek_header("http", ZEEK_HTTP),
        zeek_http("10.0.0.5", "kit.phish-bank.top", "/signin"), zeek_http("10.0.0.6", "shop.example.com", "/cart"),
        zeek_http("10.0.0.6", "kit.phish-bank.top", "/gone", status="404"),
        zeek_http("10.0.0.8", "cdn.example.com", "/app.js", server="5.5.5.5"),
        *zeek_header("dns", ZEEK_DNS),  # another log's columns from here on
        zeek_dns("10.0.0.7", "wpad"), zeek_dns("10.0.0.7", "mail.phish-again.top"),
        zeek_dns("1.10.16.7", "example.org"),
        *zeek_header("ssl", ZEEK_SSL),
        zeek_ssl("10.0.0.9", "secure.phish-third.top"), zeek_ssl("10.0.0.9", "printer.local"),
    ]) + "\n")
    alerts, blocklist = io.StringIO(), tmp_path / "blocked.csv"
    report = run_monitor(log, Scorer(), index=index(), fmt="zeek", once=True, alerts=alerts, blocklist=blocklist,
                         home_net=HOME)
    assert report["malformed_reasons"] == {"a zeek line before its #fields header (follow the log from its start, "
                                           "or log JSON)": 1}
    assert report["lines"] == 1 + 8 + 4 + 8 + 3 + 8 + 2 and report["parsed"] == report["lines"] - 1
    assert (report["dns_names_skipped"], report["tls_names_skipped"], report["not_found_skipped"]) == (1, 1, 1)
    assert report["not_from_home_skipped"] == 1  # 1.10.16.7 is no client of ours: its query names nothing
    found = [json.loads(line) for line in alerts.getvalue().splitlines()]
    urls = {a.get("url") for a in found if a["type"] == "url"}
    assert urls == {"http://kit.phish-bank.top/signin", "mail.phish-again.top", "secure.phish-third.top"}
    listed = {(a["ip"], a["role"]) for a in found if a["type"] == "ip"}
    assert listed == {("5.5.5.5", "server"), ("1.10.16.7", "client")}  # the server a client reached, a client
    blocked = blocklist.read_text()
    assert "kit.phish-bank.top" in blocked and "mail.phish-again.top" in blocked and "5.5.5.5" in blocked


def test_the_command_follows_an_eve_log_with_the_model(tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    log, alerts = tmp_path / "eve.json", tmp_path / "alerts.jsonl"
    log.write_text("\n".join([
        eve("http", http("paypal.com.verify-account.top", "/signin")), eve("flow", {"state": "closed"}),
        eve("dns", {"type": "query", "rrname": "wpad", "rrtype": "A"}), eve("tls", {"sni": "www.wikipedia.org"}),
        "{not json",
    ]) + "\n")
    result = CliRunner().invoke(app, ["monitor", str(log), "--format", "suricata", "--once", "--no-feeds",
                                      "--model-dir", str(model_dir), "--alerts", str(alerts),
                                      "--home-net", "192.168.0.0/16"], terminal_width=400)
    assert result.exit_code == 0, result.output
    found = {a["url"]: a["verdict"] for a in map(json.loads, alerts.read_text().splitlines())}
    assert found == {"http://paypal.com.verify-account.top/signin": "malicious"}  # a brand's name in another's
    assert '"malformed": 1' in result.output and '"dns_names_skipped": 1' in result.output


def test_only_a_home_clients_requests_to_servers_outside_name_sites(tmp_path):
    """An outside client sets the Host header, SNI or query name it sends one of our servers to anything (a review
    blocked bakery-smith.co.uk with one request answered 400); a home server's names are the network's own."""
    log = tmp_path / "eve.json"
    log.write_text("\n".join([
        eve("http", http("bakery-smith.co.uk", "/signin", status=200), src_ip="45.33.32.156", dest_ip="10.0.0.10"),
        eve("tls", {"sni": "phish-in.example.top"}, src_ip="45.33.32.156", dest_ip="10.0.0.10", dest_port=443),
        eve("dns", {"type": "query", "rrname": "phish-spoofed.example.top"}, src_ip="45.33.32.156",
            dest_ip="10.0.0.53"),
        eve("http", http("wiki.corp.example", "/phish/login"), src_ip="10.0.0.5", dest_ip="10.0.0.10"),
        eve("http", http("kit.phish-out.top", "/signin"), src_ip="10.0.0.5", dest_ip="93.184.215.14"),
        eve("http", http("kit.phish-bad.top", "/signin", status=400), src_ip="10.0.0.5", dest_ip="93.184.215.14"),
    ]) + "\n")
    scorer = Scorer()
    report = run_monitor(log, scorer, index=index(), once=True, alerts=io.StringIO(), home_net=HOME)
    assert [url for call in scorer.calls for url in call] == ["http://kit.phish-out.top/signin"]
    assert (report["not_from_home_skipped"], report["not_found_skipped"]) == (4, 1)
    assert report["ips_checked"] >= 3  # the outside client is still looked up in the feeds
    default = run_monitor(log, Scorer(), once=True, alerts=io.StringIO())  # home: the non-global addresses
    assert default["urls_scored"] == 1 and default["not_from_home_skipped"] == 4


def test_odd_digits_a_decoded_absolute_target_and_tabs_in_other_logs():
    weird = parse_line(eve("http", http("a.example", "/", status="\u00b2\u00b2\u00b2", http_port="\u00b2")))
    assert (weird.status, weird.url) == (0, "http://a.example/")  # Unicode digits are no status and no port
    assert parse_line(eve("http", http("a.example", "/", status="\u0663\u0663\u0663"))).status == 0
    decoded = {"ts": 1.0, "uid": "C1", "id.orig_h": "10.0.0.5", "id.resp_h": "93.184.215.14", "id.resp_p": 3128,
               "method": "GET", "host": "evil.top", "uri": "http://www.google.com/@evil.top/signin", "status_code": 200}
    assert parse_line(json.dumps(decoded), "zeek").url == "evil.top"  # Zeek decoded %2F: the Host header decides
    agreed = {**decoded, "host": "kit.example.top", "uri": "http://kit.example.top/signin"}
    assert parse_line(json.dumps(agreed), "zeek").url == "http://kit.example.top/signin"
    dnsmasq = "Dec  5 11:46:49 dnsmasq[1172]: query[A] a\tb.example.com from 192.168.1.20"
    squid = "1700000000.123    150 10.0.0.1 TCP_MISS/200 1234 GET http://ok.test/ - HIER_DIRECT/- text/html\tx"
    for line, fmt in ((dnsmasq, "dnsmasq"), (squid, "squid")):  # a #fields line seen earlier does not make them Zeek's
        assert parse_line(line, "auto", fields=["ts", "uid"]).format == fmt


def test_a_proxy_inside_mapped_addresses_and_public_home_networks(tmp_path):
    log = tmp_path / "eve.json"
    log.write_text("\n".join([
        # a home client asking the proxy next to it: the absolute target and CONNECT go out through it
        eve("http", http("proxy.corp", "http://kit.phish-proxied.top/a"), src_ip="10.0.0.5", dest_ip="10.0.0.3"),
        eve("http", http("kit.phish-tunnel.top", "kit.phish-tunnel.top:443", "CONNECT"), src_ip="10.0.0.5",
            dest_ip="10.0.0.3"),
        eve("http", http("kit.phish-mapped.top", "/a"), src_ip="::ffff:10.0.0.6", dest_ip="93.184.215.14"),
        eve("http", http("kit.phish-v6.top", "/a"), src_ip="2a01:4f8::5", dest_ip="2606:4700::1"),
    ]) + "\n")
    scorer = Scorer()
    run_monitor(log, scorer, once=True, alerts=io.StringIO(), home_net=[*HOME, ipaddress.ip_network("2a01:4f8::/32")])
    assert [url for call in scorer.calls for url in call] == [
        "http://kit.phish-proxied.top/a", "kit.phish-tunnel.top", "http://kit.phish-mapped.top/a",
        "http://kit.phish-v6.top/a"]
    report = run_monitor(log, Scorer(), once=True, alerts=io.StringIO())  # the default home: no global client
    assert report["not_from_home_skipped"] == 1 and report["urls_scored"] == 3
    odd = {"ts": 1.0, "uid": "C1", "id.orig_h": "10.0.0.5", "id.resp_h": "93.184.215.14", "method": "GET",
           "uri": "http://www.google.com/@evil.top/signin", "status_code": 200}
    for host in ("a b", "[::1", ""):
        assert parse_line(json.dumps({**odd, "host": host}), "zeek").url is None
