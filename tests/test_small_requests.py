"""The service's small requests take the cheap output (`Detector.score_records`, no Arrow columns) and each
request is a batch of one: both must give exactly what the batch path (`Detector.score_values`) gives for the
same URL inside a large varied batch, feeds, lists and rules included."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest
from fixtures_model import REPO, model_dir  # noqa: F401

from cybersentinel.intel.feeds import IntelIndex
from cybersentinel.scoring.decider import Decider
from cybersentinel.scoring.detector import Detector
from cybersentinel.scoring.policy import ALONE, IN_PAGE, ROOT_PAGE, SiteList
from cybersentinel.url.parsing import split_url

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


def test_a_text_files_binary_column_scores_like_a_list(detector: Detector) -> None:
    """`predict` reads a text file as Arrow binary: the row rules (a host before '@', stock files, assets, the
    allow and block lists' URLs) read its values as text too (they had read ``str()`` of a binary scalar)."""
    import io

    from cybersentinel.scoring.batch import read_text

    values = [v for v in VARIED if v.strip() and "\x00" not in v]
    batch = next(read_text(io.BytesIO("\n".join(values).encode() + b"\n"), 1000))
    assert isinstance(batch.urls, pa.Array) and pa.types.is_large_binary(batch.urls.type)
    for decider in deciders(detector):
        expected = detector.score_values(values, decider=decider).to_pylist()
        found = detector.score_values(batch.urls, decider=decider).to_pylist()
        assert [(r["score"], r["verdict"], r["reasons"]) for r in found] == \
            [(r["score"], r["verdict"], r["reasons"]) for r in expected]
        assert found[values.index("http://www.paypal.com@evil.top/login")]["verdict"] == "malicious"


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


HOSTILE_HOSTS = ["example.com", "www.example.com", "mail.google.com", "paypal.com.account-verify.xyz",
                 "xn--pple-43d.com", "paypa1.com", "1.10.16.5", "1.10.4101", "3232235521", "0x1.0xa.0x10.0x5",
                 "[2001:db8::1]", "[::1]", "localhost", "a.localhost", "8.8.8.8", "10.0.0.1", "", "EXAMPLE.COM",
                 "example.com.", "exa mple.com", "a\x00b.com", "\ufffd.com", "intranet.corp-example.com",
                 "bad.example.net", "someone.github.io", "xn--80ak6aa92e.com", "com", "-x-.com", "1.2.3", "xyz",
                 "kit.sites.google.com", "x.weebly.com", "www.weebly.com", "www.rakuten.co.jp.akddojx.cn",
                 "gov.uk-refund.co", "usps.com-trackhelp.top", "go.tp-link.com", "go.th-koeln.de",
                 "www.com-magazin.de"]


def test_one_new_host_gets_the_entry_the_batch_of_hosts_gives(detector: Detector) -> None:
    # a request's one new host takes `_new_entry`; many take `_new_entries`: the same cache entries
    hosts = HOSTILE_HOSTS + [f"{u.split('//')[-1].split('/')[0]}" for u in VARIED]
    platforms = Decider(detector.policy, popularity={**detector.popularity, "google.com": 1, "weebly.com": 300})
    assert platforms._new_entry("kit.sites.google.com", False)[13] == "sites.google.com"  # Evidence.user_content
    for decider in [*deciders(detector), platforms]:
        for standing in (IN_PAGE, ROOT_PAGE, ALONE):
            batch = decider._new_entries(hosts, standing)
            assert [decider._new_entry(host, standing) for host in hosts] == batch
            fresh = Decider(decider.policy, decider.index, decider.allow, decider.block, decider.popularity,
                            decider.resolvers)
            assert [fresh._entries([host], standing)[0] for host in hosts] == batch  # one at a time, via the cache
            assert [fresh._entries([host], standing)[0] for host in hosts] == batch  # and from it


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
    for pattern in (lexical.ANY_BRAND, lexical._ANY_BRAND_SKELETON, lexical._ANY_TLD_MARKER):
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


def reference_reason_keys(contrib, X, names, medians, k):
    """The sort `reason_texts` replaced with one kernel call: the same top-k picks, as code lists."""
    import numpy as np

    from cybersentinel.features.lexical import UNREAD_VALUES
    from cybersentinel.features.words import NOTHING_TO_READ
    from cybersentinel.scoring.detector import SPELLING_FEATURES, _reason_words

    n, m = X.shape
    contrib = contrib[:, :m].astype(np.float32, copy=True)
    high = np.greater(X, medians) if medians is not None else np.ones_like(X, dtype=bool)
    _, low_words, binary, name_features = _reason_words(tuple(names))
    readable = np.where(binary, X > 0.5, high | (low_words[:m] != ""))
    if name_features is not None:
        readable &= ~((X[:, [names.index("host_is_ip")]] > 0.5) & name_features)
    readable &= ~np.isin(names, list(UNREAD_VALUES)) | (X != NOTHING_TO_READ)
    readable &= ~((X[:, [names.index("punycode_or_idn")]] > 0.5) & np.isin(names, list(SPELLING_FEATURES)))
    contrib[~readable | (contrib < 0.1)] = -np.inf
    top = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(contrib, top, axis=1) > -np.inf
    use_low = ~np.take_along_axis(high, top, axis=1) & ~binary[top]
    return np.where(picked, top * 2 + use_low, 2 * m).tolist()


def test_reasons_pick_as_a_stable_sort_does() -> None:
    # `reason_texts` picks each row's top features in one kernel (`_reason_keys`): ties go to the earlier feature,
    # NaN, -inf and contributions under the minimum never count, flags must be set, an address gets no host-name
    # reason, nor an internationalised host a reason of its spelling, a value that says nothing was read is no reason;
    # checked against the NumPy sort it replaced, on values made to tie
    import numpy as np

    from cybersentinel.features.lexical import FEATURES
    from cybersentinel.scoring.detector import _reason_words, reason_texts

    names = [f.name for f in FEATURES] + ["host_ngram_score", "path_ngram_score", "name_words", "subdomain_words"]
    words, low_words, _, _ = _reason_words(tuple(names))
    rng = np.random.default_rng(7)
    ip, idn = names.index("host_is_ip"), names.index("punycode_or_idn")
    for trial in range(300):
        n, m = int(rng.integers(0, 12)), len(names)
        X = rng.choice([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan], size=(n, m)).astype(np.float32)
        X[:, ip] = rng.choice([0.0, 1.0], size=n)
        X[:, idn] = rng.choice([0.0, 1.0], size=n)
        contrib = rng.choice([0.0, 0.0999, 0.1, 0.3, 0.3, 1.0, -2.0, np.nan, np.inf],
                             size=(n, m + 1)).astype(np.float32)
        medians = rng.choice([0.0, 0.5, 1.0], size=m).astype(np.float32)
        for k in (1, 3, 5):
            for reference in (medians, None):
                got = reason_texts(contrib, X, names, reference, k=k).tolist()
                expected = ["; ".join(low_words[c // 2] if c % 2 else words[c // 2] for c in row if c < 2 * m)
                            for row in reference_reason_keys(contrib, X, names, reference, k)]
                assert got == expected, (trial, k)


def test_url_errors_name_the_first_problem() -> None:
    from cybersentinel.features.lexical import URL_ERRORS, ParsedUrls
    from cybersentinel.scoring.detector import MAX_URL_CHARS, url_errors

    long, forbidden = f"URL longer than {MAX_URL_CHARS} bytes", "host name has spaces, control or forbidden characters"
    cases = {"http://example.com/": "", "": "empty URL", " \t\n\r\x0b\x0c": "empty URL",
             " " * (MAX_URL_CHARS + 1): "empty URL", "http://" + "x" * MAX_URL_CHARS: long,
             "/" * (MAX_URL_CHARS + 1): long, "ftp://": "no host name in URL",
             "\x1c": "no host name in URL", "http://a\x1cb.com/": forbidden,
             "http://exa mple.com/": forbidden, "http://a\x00b.com/": forbidden, "http://a%41.com/": forbidden,
             b"http://a\xffb.com/": forbidden,  # U+FFFD once decoded
             "http://xn--pple-43d.com/": "", "8.8.8.8": ""}
    # links that name no web site, in any case, after blanks, before digits; web URLs holding such words are scored
    non_web = URL_ERRORS[5]
    cases |= {"mailto:bob@bank.example": non_web, " JavaScript:void(0)": non_web, "tel:5551234": non_web,
              "data:text/html;base64,PHNjcmlwdD4=": non_web, "about:blank": non_web, "file:///etc/passwd": non_web,
              "ms-msdt:/id PCWDiagnostic": non_web, "http://example.com/mailto:x": "", "mailto.example.com/": "",
              "hxxp://evil.example/login": "", "example.com:8080/data:x": "", "localhost:8080/": "",
              "news:8080/login": "", "chrome:9222/json": "", "data:443": "", "geo:48.2,16.4": non_web,
              "mailto:" + "x" * MAX_URL_CHARS: long,
              # a Windows file's path (a drive's letter before ':'); before a digit, a one-letter host and its port
              "C:\\Users\\a\\Downloads\\Form.pdf.lnk": non_web, "c:/temp/x.html": non_web, " D:\\x.exe": non_web,
              "c:8080/login": ""}
    # an IPv4 network range, as block lists write them, is no page "/24" on its first address
    network = URL_ERRORS[6]
    cases |= {"185.225.17.0/24": network, " 10.0.0.0/8\n": network, "45.9.20.0/32": network, "1.2.3.4/33": "",
              "http://1.2.3.4/24": "", "1.2.3.4:80/24": "", "1.2.3/24": "", "1.2.3.4/2x": "", "1.2.3.4/": ""}
    # a file's hash, as threat reports list them beside addresses, is no host with no dot
    file_hash = URL_ERRORS[7]
    cases |= {"d41d8cd98f00b204e9800998ecf8427e": file_hash, " DA39A3EE5E6B4B0D3255BFEF95601890AFD80709\n": file_hash,
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855": file_hash,
              "d41d8cd98f00b204e9800998ecf8427e.com": "", "http://d41d8cd98f00b204e9800998ecf8427e/": "",
              "d41d8cd98f00b204e9800998ecf8427e/x": "", "g41d8cd98f00b204e9800998ecf8427e": "",
              "d41d8cd98f00b204e9800998ecf8427": ""}
    assert url_errors(ParsedUrls(list(cases))).tolist() == list(cases.values())
    assert [url_errors(ParsedUrls([url])).tolist()[0] for url in cases] == list(cases.values())


def test_few_rows_index_their_hosts_as_arrow_does() -> None:
    # up to FEW_TEXTS rows encode their hosts with a dict (`ParsedUrls.host_index`), more with Arrow's dictionary
    # encoding: the same distinct hosts in the same order, the same row indices
    from cybersentinel.features.lexical import FEW_TEXTS, ParsedUrls

    urls = ["http://WWW.Example.com/a", "example.com", "http://www.example.com/b", "", "http://[::1]/", "ÄBC.de",
            "http://user@Paypal.com@evil.top/", "8.8.8.8", "example.com"]
    assert len(urls) <= FEW_TEXTS
    few = ParsedUrls(urls).host_index()
    hosts = ParsedUrls(urls).hosts()
    assert few[0] == hosts.dictionary.to_pylist() and few[1].tolist() == hosts.indices.to_pylist()
    assert few[0][0] == b"www.example.com" and few[1].tolist()[:3] == [0, 1, 0]
    # 2: written alone (no scheme or user before it, nothing but '/' after it), 1: a URL's root page, 0: a page
    assert ParsedUrls(urls).host_standing().tolist() == [0, 2, 0, 2, 1, 2, 1, 2, 2]
    assert ParsedUrls([" 8.8.4.4/ ", "//1.2.3.4/", "http://1.2.3.4", "1.2.3.4:8080", "1.2.3.4/x"]).host_standing(
        ).tolist() == [2, 1, 1, 2, 0]
    # a fragment after '/' makes it a page's root, not an address written alone; right after the address it is a
    # list's comment (``185.199.108.153#github-pages``)
    assert ParsedUrls(["45.67.89.13/#/office365/login", "45.67.89.13#x", "8.8.8.8#", "8.8.8.8/#"]).host_standing(
        ).tolist() == [1, 2, 2, 2]


def test_few_str_values_are_parsed_as_arrow_parses_them() -> None:
    # up to FEW_TEXTS str values are encoded and cut of their own addresses without Arrow (`_few_texts`); other
    # inputs go through `url_array` and `without_own_addresses`: the same bytes, offsets, scan and spans
    import numpy as np
    import pandas as pd

    from cybersentinel.features.lexical import FEW_TEXTS, ParsedUrls

    own = "https://shop.example.com/customer/account/login/referer/aHR0cHM6Ly9zaG9wLmV4YW1wbGUuY29tLw,,/"
    urls = [*VARIED[:40], own, "http://other.example/?r=aHR0cHM6Ly9ldmlsLmV4YW1wbGUv", "", "\u2028x.com"]
    assert len(urls) <= FEW_TEXTS
    few, arrow = ParsedUrls(urls), ParsedUrls(pd.Series(urls, dtype=object))
    assert few._array is None and arrow._texts is None  # each took its own path
    assert few.data.tobytes() == arrow.data.tobytes() and few.offsets.tolist() == arrow.offsets.tolist()
    assert np.array_equal(few.scan, arrow.scan) and np.array_equal(few.spans, arrow.spans)
    assert few.texts() == arrow.array.to_pylist() and few.array.equals(arrow.array)
    assert b"aHR0c" not in few.texts()[40] and b"aHR0c" in few.texts()[41]  # only the own site's address is cut
    surrogate = ParsedUrls(["http://a\ud800b.com/"])  # no UTF-8 for it: `url_array` replaces it
    assert surrogate._texts is None and surrogate.texts() == [b"http://a?b.com/"]


def test_request_cpu_benchmark_alternates_two_versions(tmp_path: Path) -> None:
    # benchmarks/request_cpu.py loads two source trees side by side in one process: here this one twice, through
    # the whole app, a few requests of two URLs each (the script, not the figures)
    import subprocess
    import sys

    if not (REPO / "data" / "validated.parquet").is_file():
        pytest.skip("no data/validated.parquet (`dvc pull prepare`)")
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "request_cpu.py"), "--against",
                             str(REPO / "src"), "--block", "15", "--rounds", "2", "--hosts", "fresh", "--gap-ms", "1",
                             "--urls-per-request", "2"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "CPU per request" in line]
    assert len(lines) == 2 and all("30 requests" in line for line in lines), result.stdout
    assert "2 URL(s) per request" in result.stdout and "1 ms idle before each" in result.stdout
    spun = subprocess.run([sys.executable, str(REPO / "benchmarks" / "request_cpu.py"), "--kind", "score", "--block",
                           "10", "--rounds", "1", "--gap-ms", "1", "--spin", "--slowest", "3"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert spun.returncode == 0, spun.stderr
    assert "1 ms spinning before each" in spun.stdout and "10 requests" in spun.stdout, spun.stdout
    slowest = [float(found[1]) for line in spun.stdout.splitlines() if (found := re.match(r" +([0-9.]+) us  \S", line))]
    assert len(slowest) == 3 and slowest == sorted(slowest, reverse=True), spun.stdout  # slowest first, with a URL


def test_request_cpu_idn_hosts_are_new_cyrillic_names_with_the_path_kept() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("request_cpu", REPO / "benchmarks" / "request_cpu.py")
    request_cpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(request_cpu)
    urls = ["http://a.com/login?x=1", "b.org", "https://user@c.net:8080/p#f", "http://a.com/login?x=1"]
    sent = request_cpu.idn(urls, "this0x")
    hosts = [split_url(url).host for url in sent]
    assert len(set(hosts)) == 4 and all(not host.isascii() and host.endswith(".рф") for host in hosts)
    assert [split_url(url).path for url in sent] == ["/login", "", "/p", "/login"]
    assert sent[0].startswith("http://") and "?x=1" in sent[0]
    assert request_cpu.idn(urls, "this1x") != sent


def test_request_cpu_spin_keeps_the_core_busy() -> None:
    # --spin's wait is busy: it takes CPU time while it waits (time.sleep takes almost none; the bound leaves room
    # for a loaded machine taking the core away)
    import importlib.util
    import time

    spec = importlib.util.spec_from_file_location("request_cpu", REPO / "benchmarks" / "request_cpu.py")
    request_cpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(request_cpu)
    started = time.process_time()
    request_cpu.spin(0.05)
    assert time.process_time() - started >= 0.01


def test_tree_walk_benchmark_compares_two_versions(tmp_path: Path) -> None:
    # benchmarks/tree_walk.py walks the same rows with this tree's kernel and another's (here this one twice) and
    # fails unless their outputs agree (the script, not the figures)
    import subprocess
    import sys

    if not (REPO / "data" / "validated.parquet").is_file() or not (REPO / "models" / "scorer.npz").is_file():
        pytest.skip("no data/validated.parquet or models/ (`dvc pull`)")
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "tree_walk.py"), "--against", str(REPO / "src"),
                             "--rows", "3001", "--singles", "50", "--repeats", "2"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3,001 rows" in result.stdout and "50 one-row walks" in result.stdout, result.stdout
    assert result.stdout.count(" us a row; one row with contributions ") == 2
    assert "outputs (raw scores, leaves, a row's contributions) identical" in result.stdout
