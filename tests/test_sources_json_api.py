"""The `json_api` source against a local HTTP server on 127.0.0.1: pagination, rate limiting, bounded
retries (429 with Retry-After, 5xx, slow, cut-short, wrong-checksum and unparsable replies), the max-pages
bound, same-origin next links and redirects, repeated pages, size caps, and the record of what was fetched
when (credentials redacted)."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fixtures_http import LocalHTTPServer, Reply, paginated_api

from cybersentinel.core.files import UMASK
from cybersentinel.ingest.base import SourceError
from cybersentinel.ingest.json_api import iter_pages, json_api_snapshot, read_json_api

REPO = Path(__file__).resolve().parents[1]
RECORDS = [{"id": i, "url": f"http://bad{i}.example/login", "label": i % 2, "threat": "phishing"} for i in range(250)]

pytest_plugins = ["fixtures_http"]


def api_spec(**overrides) -> dict:
    """The shipped json_api config with test-sized pages and quick retries."""
    spec = yaml.safe_load((REPO / "conf" / "source" / "json_api.yaml").read_text())
    spec["pagination"]["page_size"] = 100
    spec.update(rate_limit_per_s=None, retries=2, backoff_s=0.01, timeout_s=2, columns=["url", "label"])
    spec.update(overrides)
    return spec


@pytest.fixture(autouse=True)
def no_api_env(monkeypatch):
    monkeypatch.delenv("CYBERSENTINEL_API_URL", raising=False)
    monkeypatch.delenv("CYBERSENTINEL_API_TOKEN", raising=False)


def test_pages_are_followed_until_a_short_page(http_server):
    url = http_server.route("/v1/alpha/urls", paginated_api(RECORDS))
    got = read_json_api("alpha", api_spec(url=http_server.base + "/v1/{source}/urls"))
    assert got.table["url"].tolist() == [r["url"] for r in RECORDS]
    assert list(got.table.columns) == ["url", "label", "source", "snapshot"] and got.table["label"].dtype == "int8"
    assert [q["page"] for p, q, _ in http_server.requests] == ["1", "2", "3"]
    pages = [f for f in got.fetches if "status" in f]
    assert [(f["status"], f["records"]) for f in pages] == [(200, 100), (200, 100), (200, 50)]
    assert all(f["fetched_at"] and len(f["sha256"]) == 64 for f in pages) and got.fetches[0]["from"] == url
    assert got.snapshot == json_api_snapshot("alpha", api_spec(url=url))


def test_cursor_pagination_follows_same_origin_links_and_tokens(http_server):
    pages = {None: {"data": RECORDS[:2], "meta": {"next": "/feed?after=2"}},
             "2": {"data": RECORDS[2:4], "meta": {"next": "tok-4"}},
             "tok-4": {"data": RECORDS[4:5], "meta": {"next": None}}}
    http_server.route("/feed", lambda q, h: Reply(200, pages[q.get("after") or q.get("cursor")]))
    spec = api_spec(url=http_server.url("/feed"), records_field="data",
                    pagination={"style": "cursor", "next_field": "meta.next", "cursor_param": "cursor"})
    assert read_json_api("s", spec).table["url"].tolist() == [r["url"] for r in RECORDS[:5]]
    pages["2"]["meta"]["next"] = "http://127.0.0.2:1/elsewhere"
    with pytest.raises(SourceError, match="leaves"):
        read_json_api("s", spec)


def test_the_token_goes_in_a_header_and_never_into_the_fetch_record(http_server, monkeypatch):
    monkeypatch.setenv("CYBERSENTINEL_API_TOKEN", "s3cret-token")
    monkeypatch.setenv("CYBERSENTINEL_API_URL", http_server.url("/{source}"))
    http_server.route("/beta", paginated_api(RECORDS[:5]))
    got = read_json_api("beta", api_spec())
    assert http_server.requests[0][2]["Auth-Key"] == "s3cret-token"
    assert "s3cret-token" not in json.dumps(got.fetches)


@pytest.mark.parametrize("fault", [
    Reply(429, b"slow down", {"Retry-After": "0"}),
    Reply(503, b"maintenance"),
    Reply(200, b"", delay=3.0),  # slower than timeout_s
    Reply(200, json.dumps({"urls": RECORDS[:100]}).encode(), truncate=True),
    Reply(200, b'{"urls": [{"url": "cut'),  # no Content-Length promise broken, just bad JSON
    Reply(200, json.dumps({"urls": RECORDS[:100]}).encode(), {"X-Content-SHA256": "0" * 64}),
], ids=["429", "503", "slow", "truncated", "bad-json", "wrong-checksum"])
def test_a_transient_fault_is_retried_and_the_result_is_complete(http_server, fault):
    url = http_server.route("/api", paginated_api(RECORDS, faults={2: [fault]}))
    got = read_json_api("s", api_spec(url=url, checksum_header="X-Content-SHA256"))
    assert got.table["url"].tolist() == [r["url"] for r in RECORDS]
    assert [f["attempt"] for f in got.fetches[1:] if f["params"]["page"] == 2] == [1, 2]
    assert "error" in next(f for f in got.fetches[1:] if f["params"]["page"] == 2)


def test_a_fault_that_persists_is_a_clear_error_after_bounded_retries(http_server):
    url = http_server.route("/api", paginated_api(RECORDS, faults={2: [Reply(500, b"boom")] * 10}))
    with pytest.raises(SourceError, match=r"HTTP 500 \(gave up after 3 attempts\)"):
        read_json_api("s", api_spec(url=url))
    assert http_server.hits("/api") == 1 + 3


def test_retry_after_is_honoured(http_server):
    url = http_server.route("/api", paginated_api(RECORDS[:5], faults={1: [Reply(429, b"", {"Retry-After": "1"})]}))
    started = time.monotonic()
    read_json_api("s", api_spec(url=url))
    assert time.monotonic() - started >= 1.0


def test_a_client_error_is_not_retried(http_server):
    url = http_server.script("/api", Reply(403, b"bad key"))
    with pytest.raises(SourceError, match="HTTP 403"):
        read_json_api("s", api_spec(url=url))
    assert http_server.hits("/api") == 1


def test_an_api_that_paginates_forever_is_an_error_after_max_pages(http_server):
    def endless(query: dict[str, str], headers: dict[str, str]) -> Reply:  # every page is full and new
        return Reply(200, {"urls": [{**r, "id": f"{query['page']}-{r['id']}"} for r in RECORDS[:100]]})

    url = http_server.route("/api", endless)
    with pytest.raises(SourceError, match="still has more pages after max_pages=7"):
        read_json_api("s", api_spec(url=url, max_pages=7))
    assert http_server.hits("/api") == 7


def test_the_rate_limit_spaces_requests(http_server):
    url = http_server.route("/api", paginated_api(RECORDS, default_size=100))
    started = time.monotonic()
    list(iter_pages("s", api_spec(url=url, rate_limit_per_s=10)))
    assert time.monotonic() - started >= 0.2  # 3 requests, 0.1 s apart


def test_records_that_break_the_schema_are_named(http_server):
    bad = [*RECORDS[:3], {"url": "http://x.example", "label": "unknown"}]
    url = http_server.route("/api", paginated_api(bad))
    with pytest.raises(SourceError, match="not 0 or 1.*'unknown'"):
        read_json_api("s", api_spec(url=url))
    http_server.route("/list", lambda q, h: Reply(200, {"urls": "not a list"}))
    with pytest.raises(SourceError, match="expected a list of objects"):
        read_json_api("s", api_spec(url=http_server.url("/list")))


def test_a_constant_label_for_a_block_list(http_server):
    url = http_server.route("/api", paginated_api([{"url": r["url"]} for r in RECORDS[:3]]))
    table = read_json_api("s", api_spec(url=url, label=1, columns=None)).table
    assert table["label"].tolist() == [1, 1, 1]


def test_redirects_are_followed_only_on_the_api_origin_and_the_token_never_leaves_it(http_server, monkeypatch):
    monkeypatch.setenv("CYBERSENTINEL_API_TOKEN", "s3cret-token")
    http_server.route("/api", paginated_api(RECORDS[:5]))
    moved = http_server.route("/old", lambda q, h: Reply(301, b"", {"Location": "/api?" + "&".join(
        f"{k}={v}" for k, v in q.items())}))
    assert read_json_api("s", api_spec(url=moved)).table["url"].tolist() == [r["url"] for r in RECORDS[:5]]
    other = LocalHTTPServer()  # another port: another origin
    try:
        other.route("/steal", paginated_api([{"url": "http://evil.example/", "label": 0}]))
        url = http_server.script("/hop", Reply(302, b"", {"Location": other.url("/steal")}))
        with pytest.raises(SourceError, match=r"/hop.*redirected to .*/steal, off the API's origin"):
            read_json_api("s", api_spec(url=url))
        # a backslash: `urlsplit` reads the API's host after the '@', the HTTP client the other one before it
        sneaky = other.base + "\\@" + http_server.base.split("//", 1)[1] + "/steal"
        url = http_server.script("/hop2", Reply(302, b"", {"Location": sneaky}))
        with pytest.raises(SourceError, match=r"off the API's origin"):
            read_json_api("s", api_spec(url=url))
        pages = {None: {"urls": RECORDS[:1], "next": sneaky}}
        url = http_server.route("/next", lambda q, h: Reply(200, pages[None]))
        with pytest.raises(SourceError, match="leaves"):
            read_json_api("s", api_spec(url=url, pagination={"style": "cursor"}))
        assert other.requests == []
    finally:
        other.close()


def test_a_server_that_caps_the_page_size_loses_no_records(http_server):
    def capped(query: dict[str, str], headers: dict[str, str]) -> Reply:  # 100 a page, whatever limit asks
        page, size = int(query["page"]), min(int(query["limit"]), 100)
        return Reply(200, {"urls": RECORDS[(page - 1) * size: page * size]})

    url = http_server.route("/api", capped)
    spec = api_spec(url=url)
    spec["pagination"]["page_size"] = 1000
    assert read_json_api("s", spec).table["url"].tolist() == [r["url"] for r in RECORDS]
    assert [q["page"] for _, q, _ in http_server.requests] == ["1", "2", "3", "4"]  # on to the empty page


def test_credentials_in_the_url_never_reach_the_fetch_record_or_an_error(http_server):
    http_server.route("/api", paginated_api(RECORDS[:5]))
    url = http_server.base.replace("//", "//analyst:pa55word@") + "/api"
    got = read_json_api("s", api_spec(url=url))
    assert "pa55word" not in json.dumps(got.fetches) and "***@127.0.0.1" in got.fetches[0]["from"]
    assert "***@127.0.0.1" in got.fetches[1]["url"]
    http_server.route("/api", lambda q, h: Reply(200, {"urls": [{"url": f"http://p{q['page']}.example"}]}))
    with pytest.raises(SourceError, match="max_pages=2") as raised:
        read_json_api("s", api_spec(url=url, max_pages=2, label=1, columns=None))
    assert "pa55word" not in str(raised.value)


def test_a_repeated_cursor_or_page_is_an_error_at_once(http_server):
    fresh = itertools.count()  # new records each time: only the cursor repeats
    url = http_server.route("/loop", lambda q, h: Reply(200, {"urls": [{"url": f"http://x{next(fresh)}.example"}],
                                                              "next": "same"}))
    with pytest.raises(SourceError, match=r"loop\?cursor=same page 3: .* repeats page 2's"):
        read_json_api("s", api_spec(url=url, pagination={"style": "cursor"}, label=1, columns=None))
    assert http_server.hits("/loop") == 2
    url = http_server.route("/deaf", lambda q, h: Reply(200, {"urls": RECORDS[:100]}))  # ignores ?page
    with pytest.raises(SourceError, match=r"page=2 page 2: the same records as page 1"):
        read_json_api("s", api_spec(url=url))
    assert http_server.hits("/deaf") == 2


def test_a_cursor_parameter_that_messages_redact_still_pages_through(http_server):
    """``pageToken`` (a name ending in "token") is redacted in messages: compared as shown, pages 2 and 3 had
    looked the same, and the read failed as a loop."""
    pages = {None: ("a", RECORDS[:2]), "a": ("b", RECORDS[2:4]), "b": (None, RECORDS[4:5])}
    http_server.route("/tok", lambda q, h: Reply(200, {"urls": pages[q.get("pageToken")][1],
                                                       "next": pages[q.get("pageToken")][0]}))
    spec = api_spec(url=http_server.url("/tok"), pagination={"style": "cursor", "cursor_param": "pageToken"})
    assert read_json_api("s", spec).table["url"].tolist() == [r["url"] for r in RECORDS[:5]]


def test_a_base64_cursor_starting_with_a_slash_is_a_token_when_next_is_says_so(http_server):
    """"/w8=" had been read as a link (the API's path replaced, HTTP 404): `next_is: cursor` sends it as a token."""
    pages = {None: ("/w8=", RECORDS[:2]), "/w8=": ("+a/=", RECORDS[2:4]), "+a/=": (None, RECORDS[4:5])}
    http_server.route("/b64", lambda q, h: Reply(200, {"urls": pages[q.get("cursor")][1],
                                                       "next": pages[q.get("cursor")][0]}))
    spec = api_spec(url=http_server.url("/b64"), pagination={"style": "cursor", "next_is": "cursor"})
    assert read_json_api("s", spec).table["url"].tolist() == [r["url"] for r in RECORDS[:5]]
    with pytest.raises(SourceError, match="pagination.next_is must be 'auto', 'link' or 'cursor', not 'token'"):
        read_json_api("s", api_spec(url=http_server.url("/b64"), pagination={"style": "cursor", "next_is": "token"}))


def test_a_page_the_api_marks_as_the_end_ends_the_read_and_nothing_else_does(http_server):
    """URLhaus answers past its last page ``{"query_status": "no_results"}``, without the records field."""
    pages = {"1": {"query_status": "ok", "urls": RECORDS[:100]}, "2": {"query_status": "ok", "urls": RECORDS[100:150]},
             "3": {"query_status": "no_results"}}
    http_server.route("/feed", lambda q, h: Reply(200, pages[q["page"]]))
    spec = api_spec(url=http_server.url("/feed"), pagination={"style": "page", "page_param": "page", "first_page": 1})
    with pytest.raises(SourceError, match="expected a list of objects at urls"):  # without the marker: an error
        read_json_api("s", spec)
    got = read_json_api("s", {**spec, "end_when": {"field": "query_status", "equals": "no_results"}})
    assert got.table["url"].tolist() == [r["url"] for r in RECORDS[:150]]
    assert [f["records"] for f in got.fetches if "status" in f] == [100, 50, 0]
    pages["2"] = {"query_status": "error", "message": "internal"}  # any other page without records: still an error
    with pytest.raises(SourceError, match="page 2: expected a list"):
        read_json_api("s", {**spec, "end_when": {"field": "query_status", "equals": "no_results"}})
    for bad in ("no_results", {"field": "query_status"}, {"field": "", "equals": 1}):
        with pytest.raises(SourceError, match="end_when must be"):
            list(iter_pages("s", {**spec, "end_when": bad}))


def test_whole_numbers_stay_exact_whether_a_gap_is_null_or_left_out(http_server):
    """A field left out reads as NaN: the column had still become float64 (9007199254740993 as ...992); a number
    past int64 had raised OverflowError, a traceback."""
    body = {"urls": [{"url": "http://a.example/", "label": 1, "asn": 9007199254740993, "big": 2 ** 64},
                     {"url": "http://b.example/", "label": 0, "asn": None},
                     {"url": "http://c.example/", "label": 1, "big": None}]}
    url = http_server.route("/ints", lambda q, h: Reply(200, body if q.get("page") == "1" else {"urls": []}))
    table = read_json_api("s", api_spec(url=url, columns=["url", "label", "asn", "big"])).table
    assert table["asn"].dtype == "Int64" and table["asn"].tolist()[0] == 9007199254740993
    assert table["asn"].isna().tolist() == [False, True, True] and table["big"].tolist()[0] == 2 ** 64


def test_a_lone_surrogate_in_a_page_is_a_clear_error(http_server):
    body = b'{"urls": [{"url": "http://ok.example/", "label": 1}, {"url": "http://bad.example/\\ud83d", "label": 1}]}'
    url = http_server.route("/sur", lambda q, h: Reply(200, body))
    with pytest.raises(SourceError, match=r"sur\?limit=100&page=1 page 1: a text holds a lone surrogate escape "
                                          r"\(\\ud83d\)"):
        read_json_api("s", api_spec(url=url))


def test_a_missing_checksum_header_is_an_error(http_server):
    url = http_server.route("/api", lambda q, h: Reply(200, {"urls": RECORDS[:5]}))
    with pytest.raises(SourceError, match=r"page=1.*no X-Content-SHA256 header to check the body against"):
        read_json_api("s", api_spec(url=url, checksum_header="X-Content-SHA256"))


def test_a_response_over_the_size_cap_is_an_error(http_server):
    url = http_server.route("/api", paginated_api(RECORDS))
    with pytest.raises(SourceError, match=r"page=1.*larger than source.max_response_bytes=5000"):
        read_json_api("s", api_spec(url=url, max_response_bytes=5000))  # a page is ~8.5 kB
    assert http_server.hits("/api") == 1
    assert len(read_json_api("s", api_spec(url=url, max_response_bytes=1_000_000)).table) == len(RECORDS)


def test_a_page_trickled_byte_by_byte_fails_at_its_deadline_naming_the_page_without_credentials(http_server):
    body = json.dumps({"urls": RECORDS[:1]}).encode()  # ~90 bytes: 4.5 s at a byte per 0.05 s, far within timeout_s
    url = http_server.route("/slow", lambda q, h: Reply(200, body, trickle=0.05))
    spec = api_spec(url=url.replace("//", "//analyst:pa55word@"), page_deadline_s=0.5, retries=1, backoff_s=0)
    started = time.monotonic()
    with pytest.raises(SourceError) as raised:
        read_json_api("s", spec)
    assert time.monotonic() - started < 2 * 0.5 + 1  # two attempts (one retry), each cut at its deadline
    assert re.fullmatch(r"http://\*\*\*@127\.0\.0\.1:\d+/slow\?limit=100&page=1: PageDeadlineError: page "
                        r"still arriving after source\.page_deadline_s=0\.5 \(\d+ bytes by then\) \(gave up after 2 "
                        r"attempts\)", str(raised.value)), str(raised.value)
    assert http_server.hits("/slow") == 2
    http_server.route("/slow", lambda q, h: Reply(200, body, trickle=0.005))  # the whole page within its deadline
    assert len(read_json_api("s", api_spec(url=url, page_deadline_s=30, pagination={"style": "cursor"})).table) == 1


def test_a_page_whose_headers_trickle_fails_at_its_deadline_too(http_server):
    """page_deadline_s started with the body: a server sending its headers a byte every 0.05 s (each read far within
    timeout_s) held the page for as long as it liked (6.5 s here, then a cut-short answer)."""
    url = http_server.script("/slow", Reply(header_trickle=0.05))
    started = time.monotonic()
    with pytest.raises(SourceError) as raised:
        read_json_api("s", api_spec(url=url, page_deadline_s=0.5, retries=1, backoff_s=0))
    assert time.monotonic() - started < 2 * 0.5 + 1  # two attempts (one retry), each cut at its deadline
    assert str(raised.value).endswith("/slow?limit=100&page=1: PageDeadlineError: page still arriving after "
                                      "source.page_deadline_s=0.5 (headers incomplete by then) (gave up after 2 "
                                      "attempts)"), str(raised.value)
    assert http_server.hits("/slow") == 2


def test_a_relative_next_link_is_resolved_against_the_page(http_server):
    pages = {None: {"urls": RECORDS[:1], "next": "?cursor=2"}, "2": {"urls": RECORDS[1:2], "next": None}}
    url = http_server.route("/rel", lambda q, h: Reply(200, pages[q.get("cursor")]) if q.get("cursor") in pages
                            else Reply(400, b"bad cursor"))
    got = read_json_api("s", api_spec(url=url, pagination={"style": "cursor"}))
    assert got.table["url"].tolist() == [r["url"] for r in RECORDS[:2]]
    assert [q for _, q, _ in http_server.requests] == [{}, {"cursor": "2"}]
    pages["2"]["next"] = "//127.0.0.2:1/rel?cursor=3"  # protocol-relative: another host
    with pytest.raises(SourceError, match="leaves"):
        read_json_api("s", api_spec(url=url, pagination={"style": "cursor"}))


def run_stage(script: str, cwd: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "stages" / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_ingest_stage_from_an_api_writes_all_or_nothing(http_server, tmp_path):
    """The snapshot and ingest stages on a dataset with two sources; a failing API leaves the old output."""
    import os

    http_server.route("/v1/first", paginated_api(RECORDS))
    http_server.route("/v1/second", paginated_api(RECORDS[:30]))
    params = {"dataset": {"name": "api", "sources": [{"name": "first"}, {"name": "second"}]},
              "source": api_spec(url=http_server.base + "/v1/{source}"), "mlflow": {"experiment": "test"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}  # no tracking store: stages carry on
    assert run_stage("snapshot.py", tmp_path, env, "--out", "snapshot.json").returncode == 0
    assert (tmp_path / "snapshot.json").stat().st_mode & 0o777 == 0o666 & ~UMASK  # not mkstemp's 0600
    done = run_stage("ingest.py", tmp_path, env, "--snapshot", "snapshot.json", "--out", "raw")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["first.parquet", "second.parquet"]
    before = {p.name: p.read_bytes() for p in (tmp_path / "raw").iterdir()}
    log = [json.loads(line) for line in (tmp_path / "data" / "fetch_log.jsonl").read_text().splitlines()]
    assert {entry.get("source") for entry in log} >= {"first", "second"} and all("fetched_at" in e or "started_at"
                                                                                 in e for e in log)

    http_server.route("/v1/second", lambda q, h: Reply(502, b"bad gateway"))
    failed = run_stage("ingest.py", tmp_path, env, "--out", "raw")
    assert failed.returncode != 0 and "HTTP 502 (gave up after 3 attempts)" in failed.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "raw").iterdir()} == before  # untouched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".raw")]  # no temporary folder left

    http_server.route("/v1/second", paginated_api(RECORDS[:31]))  # the API changed after the snapshot
    changed = run_stage("ingest.py", tmp_path, env, "--snapshot", "snapshot.json", "--out", "raw")
    assert changed.returncode != 0 and "changed since the snapshot stage ran" in changed.stderr
