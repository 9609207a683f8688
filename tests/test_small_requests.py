"""The service's small requests take the cheap output (`Detector.score_records`, no Arrow columns) and each
request is a batch of one: both must give exactly what the batch path (`Detector.score_values`) gives for the
same URL inside a large varied batch, feeds, lists and rules included."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fixtures_model import REPO, model_dir  # noqa: F401

from cybersentinel.intel.feeds import IntelIndex
from cybersentinel.scoring.decider import Decider
from cybersentinel.scoring.detector import Detector
from cybersentinel.scoring.policy import SiteList

FEEDS = REPO.parent / "shared" / "data" / "feeds"

VARIED = [
    "http://ads-social-network-info.hol.es/2017/recovery-chekpoint-login.html",
    "http://paypal.com.account-verify.xyz/signin",
    "https://www.example.com/",  # popular
    "https://mail.google.com/mail/u/0/",  # popular registered domain, a subdomain
    "https://someone.github.io/pages/",  # a site on a hosting platform
    "http://1.10.16.5/index.php",  # in Spamhaus DROP
    "http://185.225.17.45/~admin/chase/index.html",
    "8.8.8.8", "10.0.0.1", "http://10.1.2.3/login", "http://[2001:db8::1]/x", "http://3232235521/",
    "http://1.10.4101/", "http://localhost:8080/admin", "127.0.0.1",
    "http://www.paypal.com@evil.top/login",  # a host name before '@'
    "http://xn--pple-43d.com/", "http://paypa1.com/signin",  # look-alikes
    "https://blog.example.org/wp-login.php", "https://blog.example.org/wp-content/x/login.php",
    "https://intranet.corp-example.com/login.php",  # allowlisted host
    "https://docs.corp-example.com/one/page",
    "http://bad.example.net/kit/index.html",  # on the block list
    "https://www.wikipedia.org/wiki/One_page",  # this very URL on the block list
    "", "   ", "http://[::1", "%%%", "x" * 70_000, "http://exa mple.com/", "http://a\x00b.com/", "ftp://",
    "HTTP://WWW.EXAMPLE.COM/UPPER", "www.example.com", "example.com.", "https://xn--80ak6aa92e.com/login",
    "https://secure-login.paypa1-account.com/webscr/verify.php?cmd=login&x=1#frag",
    "http://user:pass@203.0.113.9:8080/path?q=1",
    "https://blog.example.org/wp-content/themes/x/style.css?ver=1", "http://kit-secure-login.top/js/jquery.min.js",
    "http://paypal.com.account-verify.xyz/img/logo.PNG",  # an asset on a deceptive host
]


@pytest.fixture(scope="module")
def detector(model_dir: Path) -> Detector:  # noqa: F811
    return Detector.from_dir(model_dir)


def deciders(detector: Detector) -> list:
    allow = SiteList(["corp-example.com"], "allowlist", urls={"https://docs.corp-example.com/one/page": "analyst"})
    block = SiteList(["bad.example.net"], "local block list",
                     urls={"https://www.wikipedia.org/wiki/One_page": "analyst"})
    found = [detector.decider(None, allow, block)]
    if (FEEDS / "firehol_level1.txt").is_file():
        found.append(detector.decider(IntelIndex.from_dir(FEEDS), allow, block))
    return found


def test_one_url_at_a_time_equals_the_batch(detector: Detector) -> None:
    for decider in deciders(detector):
        batch = [{"url": u, **row} for u, row in zip(VARIED, detector.score_values(VARIED, decider=decider).to_pylist(),
                                                    strict=True)]
        assert detector.score_records(VARIED, decider=decider) == batch
        for url, expected in zip(VARIED, batch, strict=True):
            alone = detector.score_records([url], decider=decider)
            assert alone == [expected], url
            assert [{"url": url, **r} for r in detector.score_values([url], decider=decider).to_pylist()] == [expected]
    verdicts = {r["verdict"] for r in batch}
    assert {"malicious", "benign", ""} <= verdicts  # the set exercises decided, cleared and refused rows
    assert any(r["error"] for r in batch) and any(r["reasons"] for r in batch)


def test_page_assets_are_malicious_only_by_a_rule(detector: Detector) -> None:
    assets = [u for u in VARIED if u.lower().endswith((".css?ver=1", ".js", ".png"))]
    uncapped = Decider(replace(detector.policy, cap_page_assets=False), popularity=detector.popularity)
    model_says = detector.score_records(assets, decider=uncapped)
    served = detector.score_records(assets)
    assert any(r["verdict"] == "malicious" for r in model_says)  # the fixture model flags some of them
    for before, after in zip(model_says, served, strict=True):
        assert after["model_score"] == before["model_score"]
        assert after["verdict"] != "malicious" or "imitates" in after["reasons"] or "subdomain" in after["reasons"]
        if before["verdict"] == "malicious" and after["verdict"] == "suspicious":
            assert "a page asset" in after["reasons"]


def test_records_keep_the_input_values_and_order(detector: Detector) -> None:
    values = ["http://paypa1.com/signin", "", "8.8.8.8", "http://paypa1.com/signin"]
    records = detector.score_records(values)
    assert [r["url"] for r in records] == values
    assert records[0] == records[3]
    assert records[1]["score"] is None and records[1]["model_score"] is None and records[1]["error"] == "empty URL"
    assert list(records[0]) == ["url", "score", "verdict", "reasons", "model_score", "feeds", "error"]


def test_a_pandas_column_of_arrow_chunks_scores_like_a_list(detector: Detector) -> None:
    import pandas as pd
    import pyarrow as pa

    chunks = pa.chunked_array([pa.array(VARIED[:5], type=pa.large_string()),
                               pa.array(VARIED[5:12] + [None], type=pa.large_string())])
    column = pd.Series(pd.arrays.ArrowStringArray(chunks))  # what read_parquet gives for a multi-row-group file
    expected = detector.score_values(VARIED[:12] + [""]).to_pylist()
    assert detector.score_values(column).to_pylist() == expected


def test_cached_evidence_is_nothing_the_garbage_collector_walks(detector: Detector) -> None:
    # a service worker's full collection walked every cached Evidence object (pauses of 100+ ms at 200,000 hosts)
    import gc

    decider = detector.decider()
    first = detector.score_values(VARIED, decider=decider).to_pylist()
    gc.collect()
    cached = [item for cache in decider._evidence for item in cache.items()]
    assert len(cached) > 20
    assert not any(gc.is_tracked(key) or gc.is_tracked(value) for key, value in cached)
    assert detector.score_values(VARIED, decider=decider).to_pylist() == first  # answered from the cache


def test_host_memo_is_bounded_and_transparent() -> None:
    from cybersentinel.url.parsing import host_memo

    calls = []

    @host_memo(2)
    def parts(host: str) -> tuple[str, ...]:
        calls.append(host)
        return tuple(host.split("."))

    hosts = ("a.b", "a.b", "c.d", "e.f", "a.b", "g.h", "c.d")
    assert [parts(h) for h in hosts] == [tuple(h.split(".")) for h in hosts]
    # the newer generation fills at the third host and becomes the older: "a.b" is still answered from it;
    # at "g.h" the generation holding "c.d" is dropped, so "c.d" is computed again (bounded, never stale)
    assert calls == ["a.b", "c.d", "e.f", "g.h", "c.d"]
    parts.cache_clear()
    parts("a.b")
    assert calls[-1] == "a.b" and len(calls) == 6


def test_the_direct_suffix_lookup_splits_hosts_as_tldextract_does() -> None:
    # _psl_split reads tldextract's suffix trie without its URL clean-up: it must agree with tldextract itself
    # (wildcard and exception rules, private suffixes, punycode, names under no suffix, IPv4-like names)
    from cybersentinel.url.parsing import _extract, _psl_split, _split_host, parse_ip

    hosts = ["a.b.c.kawasaki.jp", "city.kawasaki.jp", "x.city.kawasaki.jp", "www.ck", "x.www.ck", "foo.bd", "a.foo.bd",
             "com", "github.io", "x.github.io", "a.b.x.github.io", "s3.amazonaws.com", "b.s3.amazonaws.com",
             "x.blogspot.com", "ab.co.uk", "co.uk", "a.xn--p1ai", "xn--80ak6aa92e.com", "xn--pple-43d.com",
             "localhost", "intranet", "1.2.3.04", "1.2.3.4.5", "999.1.1.1", "_dmarc.example.com", "-x.org",
             "www.example.com", "a_b.example.net", "x.y.z.example.museum", "example.notatld"]
    for host in hosts:
        parts = _extract(host)
        expected = ("", host, "", True, False) if parse_ip(host) is not None else \
            (parts.subdomain, parts.domain, parts.suffix, False, parts.is_private)
        assert _split_host(host) == expected, host
    assert _psl_split("example.notatld") is None and _psl_split("www.ck") is not None


def sanity_urls() -> list[str]:
    return [line.strip() for name in ("sanity_legitimate.txt", "sanity_phishing.txt")
            for line in (REPO / "tests" / "data" / name).read_text().splitlines() if line.strip()]


def test_few_texts_are_searched_as_arrow_searches_many() -> None:
    # `rows_matching` and `ParsedUrls.containing` use `re` for a few texts (Arrow recompiles its RE2 pattern on
    # every call) and Arrow for many: both must find the same rows
    from cybersentinel.features import lexical
    from cybersentinel.url.parsing import split_hosts

    urls = sanity_urls() + VARIED
    hosts = [h.decode("utf-8", "replace") for h in lexical.ParsedUrls(urls).hosts().dictionary.to_pylist()]
    labels = [part for split in split_hosts(hosts) for part in split[:3]] + ["", "\n", "é", "xn--pple-43d"]
    texts = hosts + labels + urls
    assert len(texts) > lexical.FEW_TEXTS
    for pattern in (lexical._ANY_BRAND, lexical._ANY_BRAND_SKELETON, lexical._ANY_TLD_MARKER):
        many = lexical.rows_matching(pattern, texts)
        assert many.any() and not many.all()
        assert [bool(lexical.rows_matching(pattern, [text])[0]) for text in texts] == many.tolist(), pattern
    many = set(lexical.ParsedUrls(urls).containing("wp-|xmlrpc").tolist())
    assert many and many == {i for i, url in enumerate(urls) if len(lexical.ParsedUrls([url]).containing("wp-|xmlrpc"))}


def test_each_sanity_url_alone_and_uncached_scores_as_in_the_batch(detector: Detector) -> None:
    # one URL per request, its host never seen (the cache emptied), as the service scores most requests
    from cybersentinel.features import lexical

    urls = sanity_urls()
    for decider in deciders(detector):
        lexical._host_cache.clear()
        batch = [{"url": u, **row} for u, row in zip(urls, detector.score_values(urls, decider=decider).to_pylist(),
                                                    strict=True)]
        for url, expected in zip(urls, batch, strict=True):
            lexical._host_cache.clear()
            assert detector.score_records([url], decider=detector.decider(decider.index, decider.allow,
                                                                          decider.block)) == [expected], url


def split_rows(step: int = 20) -> list[str]:
    """Every ``step``-th URL of the pipeline's test split (data/features/test.parquet), if it is there."""
    path = REPO / "data" / "features" / "test.parquet"
    if not path.is_file():
        pytest.skip(f"no {path} (`dvc pull featurize` or `dvc repro featurize`)")
    import pyarrow.parquet as pq

    return [str(u) for u in pq.read_table(path, columns=["url"])["url"].to_pylist()[::step]]


def test_few_url_requests_equal_the_batch_on_test_split_rows(detector: Detector) -> None:
    # The service's requests of up to FEW_ROWS URLs take `_few_records` (the policy row by row, `Decider.decide_rows`)
    # and their few new hosts the one-host functions (`host_row`, `deceptive_host`): features, scores, verdicts,
    # reasons and feeds must be exactly the batch path's, each URL alone with its host never seen, and in groups.
    from cybersentinel.features import lexical
    from cybersentinel.scoring.detector import FEW_ROWS

    urls = split_rows() + sanity_urls() + VARIED
    lexical._host_cache.clear()
    features = detector._features(lexical.ParsedUrls(urls))
    for decider in deciders(detector):
        batch = [{"url": u, **row} for u, row in zip(urls, detector.score_values(urls, decider=decider).to_pylist(),
                                                    strict=True)]
        assert {r["verdict"] for r in batch} >= {"malicious", "benign"} and any(r["reasons"] for r in batch)
        for i, url in enumerate(urls):
            lexical._host_cache.clear()
            alone = detector.decider(decider.index, decider.allow, decider.block)  # no cached evidence either
            assert detector.score_records([url], decider=alone) == [batch[i]], url
            if i % 50 == 0:
                lexical._host_cache.clear()
                assert detector._features(lexical.ParsedUrls([url])).tobytes() == features[i].tobytes(), url
        fresh = detector.decider(decider.index, decider.allow, decider.block)
        for size in (2, 3, 5, FEW_ROWS):
            for start in range(0, len(urls) - size, 97):
                lexical._host_cache.clear()
                assert detector.score_records(urls[start:start + size], decider=fresh) == batch[start:start + size]
