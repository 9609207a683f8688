"""The URL featurizer: byte kernels agree with `urls.split_url`, never crash on garbage, and score n-grams by
the same hashing in fit and transform."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cybersentinel.features.familiarity import NameFamiliarity, name_grams
from cybersentinel.features.featurizer import UrlFeaturizer
from cybersentinel.features.lexical import FEW_TEXTS, URL_FEATURES, ParsedUrls, url_features
from cybersentinel.model.estimators import load_model, save_model
from cybersentinel.url.parsing import split_url

REAL = [
    "http://paypal.com.secure-login.example.tk/webscr?cmd=_login", "https://www.google.com/", "example.org",
    "http://192.168.10.5:8080/admin/login.php", "HTTP://WWW.Example.COM./A/B?c=d#frag", "http://[2001:db8::1]:443/x",
    "http://user:pw@evil.example.com/http://www.bank.com/", "localhost:8080/path", "ftp://files.example.co.uk/a.exe",
    "https://xn--pypal-4ve.com/signin", "bit.ly/3abcDEF", "http://münchen.de/straße", "https://a.b.c.example.com",
]
HOSTISH = st.from_regex(r"\A(https?://)?([a-zA-Z0-9-]{1,12}\.){0,4}[a-zA-Z]{2,6}(:[0-9]{1,5})?(/[a-zA-Z0-9._~%-]*){0,4}"
                        r"(\?[a-z0-9=&]*)?(#[a-z]*)?\Z")
GARBAGE = st.one_of(
    st.text(),
    st.binary(max_size=300),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x20)),  # whitespace and control characters
    st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=8), st.integers(1, 10_000)),  # up to ~80 KB
    st.sampled_from(["", " ", "[", "[::1", "http://[::1", "::::", "@", "http://", "?#", "\\\\", "\x00", "\ud800x",
                     "0x7f000001", "3232235521", "[fe80::1%eth0]:80", "http://a@b@c:d:e/"]),
    st.none(), st.floats(allow_nan=True), st.integers(),
)


def _hosts(values) -> list[str]:
    return [h.decode("utf-8", "replace") for h in ParsedUrls(values).hosts().to_pylist()]


def test_kernel_splits_hosts_like_split_url_on_real_urls():
    assert _hosts(REAL) == [split_url(u).host for u in REAL]


@settings(max_examples=200, deadline=None)
@given(st.lists(HOSTISH, min_size=1, max_size=20))
def test_kernel_splits_hosts_like_split_url(urls):
    assert _hosts(urls) == [split_url(u).host for u in urls]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(GARBAGE, min_size=1, max_size=12))
def test_hand_features_never_crash_and_keep_rows(values):
    features = ParsedUrls(values).hand_features()
    assert features.shape == (len(values), len(URL_FEATURES))
    assert np.isfinite(features).all()


def test_features_of_known_urls():
    f = pd.DataFrame(ParsedUrls(["http://1.2.3.4:8080/a//b/login.php?x=1&y=2#f",
                                 "https://www.paypal.com.evil.tk/file.exe"]).hand_features(),
                     columns=list(URL_FEATURES))
    assert f.loc[0, ["host_is_ip", "has_port", "double_slash_in_path", "php_or_html_page", "has_fragment"]].all()
    assert f.loc[0, "query_params"] == 2 and f.loc[0, "suspicious_words"] == 1
    assert f.loc[1, ["abused_tld", "risky_extension", "brand_outside_domain", "tld_in_subdomain"]].all()
    assert f.loc[1, "subdomain_depth"] == 2  # paypal.com (www. dropped)


def test_a_brand_in_the_public_suffix_is_not_the_sites_own_brand():
    # "live" is a brand (Microsoft's) and a public suffix: `review.live` is not Microsoft's, so Facebook in its
    # path is a brand outside the domain; in the registered name itself it is the site's own
    urls = ["https://review.live/facebook/appeal/", "https://example.com/facebook/appeal/",
            "https://facebook-help.com/facebook/appeal/"]
    for copies in (1, FEW_TEXTS + 1):  # one host at a time, and the batch path
        f = pd.DataFrame(ParsedUrls(urls * copies).hand_features()[:3], columns=list(URL_FEATURES))
        assert f["brand_outside_domain"].tolist() == [1, 1, 0]


def test_the_look_alike_table_reads_every_character_as_confusable_homoglyphs_does():
    """The table built once gives each character the Latin letter the library, asked one character at a time,
    gives it (every character the library knows, and some it does not), so names are read as before."""
    from confusable_homoglyphs import confusables

    from cybersentinel.features.lexical import _latin_lookalike, _latin_lookalikes, imitated_brand

    table = _latin_lookalikes()
    known = [char for char in confusables.confusables_data if len(char) == 1]
    others = [chr(code) for code in range(0x20, 0x3000, 7)]
    assert all(table.get(char, char) == _latin_lookalike(char, confusables) for char in known + others)
    assert table["а"] == "a" and "a" not in table and "ü" not in table  # Cyrillic а; Latin letters stand for themselves
    assert imitated_brand("xn--pple-43d") == "apple" and imitated_brand("раypal") == "paypal"


def test_a_short_brand_counts_in_a_registered_name_only_where_a_word_begins():
    # ordinary words hold short brands ("groups" "ups", "delivery" "live", "purchase" "chase", "first" "irs"): such
    # a site's name is not brand-like, and a brand in its path is outside it; the brands' compound names keep theirs
    urls = ["https://groups-verify.com/ups/parcel/", "http://delivery-status.com/dhl/track/",
            "https://purchasepoint.com/chase/login/", "https://firstchoiceplumbing.com/contact/",
            "https://steamcommunity.com/steam/login/", "https://my-ups-tracking.com/ups/", "https://ebayimg.com/ebay/",
            "https://mypaypal-help.com/paypal/"]
    for copies in (1, FEW_TEXTS + 1):  # one host at a time, and the batch path
        f = pd.DataFrame(ParsedUrls(urls * copies).hand_features()[:len(urls)], columns=list(URL_FEATURES))
        assert f["brand_outside_domain"].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
        assert f["brand_in_domain_with_extra"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_brands_phished_outside_north_america_count_as_brands():
    # JPCERT/CC's and the collections' kits imitate Japanese banks, cards and carriers, Latin American and European
    # banks, shops and file-sharing services; their own sites keep their names
    urls = ["https://docomo.gcblul.shop/", "https://jp.bkfsvqk.cn/aeon", "https://www.eki-net.user-support.cc/login",
            "https://mufg-direct-login.icu/", "https://example.com/bancolombia/personas/",
            "https://www.rakuten.co.jp/", "https://www.docomo.ne.jp/", "https://www.eki-net.com/",
            "https://www.bancolombia.com/personas"]
    for copies in (1, FEW_TEXTS + 1):  # one host at a time, and the batch path
        f = pd.DataFrame(ParsedUrls(urls * copies).hand_features()[:len(urls)], columns=list(URL_FEATURES))
        assert f["brand_outside_domain"].tolist() == [1, 1, 1, 0, 1, 0, 0, 0, 0]
        assert f["brand_in_domain_with_extra"].tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0]


@pytest.fixture(scope="module")
def fitted() -> tuple[UrlFeaturizer, list[str]]:
    rng = np.random.default_rng(0)
    good = [f"https://www.site{i}.com/products/item{rng.integers(1000)}" for i in range(150)]
    bad = [f"http://secure-login{i}.example{i % 7}.tk/verify/account.php?id={rng.integers(10**6)}" for i in range(150)]
    featurizer = UrlFeaturizer(n_features=2**12, cv=3)
    featurizer.fit(pd.DataFrame({"url": good + bad}), np.r_[np.zeros(150), np.ones(150)])
    return featurizer, good + bad


def test_return_addresses_to_the_own_site_are_cut_out_before_featurizing():
    def b64(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode().replace("=", ",")  # Magento's padding

    own = f"https://shop.example.co.uk/customer/account/login/referer/{b64('https://www.example.co.uk/cart')}/"
    other = f"https://shop.example.co.uk/login?r={b64('https://evil.example/cart')}"  # an open redirect: kept
    garbled = "https://shop.example.co.uk/login?r=aHR0cHM6Ly9!!"
    query = f"https://shop.example.co.uk/login?r={b64('https://shop.example.co.uk/')}&x=1"
    cut = "https://shop.example.co.uk/customer/account/login/"
    last = f"https://shop.example.co.uk/login?x=1&r={b64('https://shop.example.co.uk/')}#top"
    for copies in (1, FEW_TEXTS + 1):  # Python's search for a few URLs, Arrow's for a batch
        parsed = ParsedUrls([own, other, garbled, cut, query, last] * copies)
        assert [u.decode() for u in parsed.array.to_pylist()[:6]] == [
            cut, other, garbled, cut, "https://shop.example.co.uk/login?x=1", "https://shop.example.co.uk/login?x=1#top"]
        features = parsed.hand_features()
        np.testing.assert_array_equal(features[0], features[3])
        assert not np.array_equal(features[1], features[3])


def test_html_escaped_ampersands_are_read_as_the_ampersands_a_browser_sends(fitted):
    featurizer, _ = fitted
    escaped = "http://www.example.org/events.php?region=3&amp;year=all&amp;k=5K"
    plain = "http://www.example.org/events.php?region=3&year=all&k=5K"
    for copies in (1, FEW_TEXTS + 1):  # Python's search for a few URLs, Arrow's kernel for a batch
        parsed = ParsedUrls([escaped, plain, "http://a.example/?q=amp;x"] * copies)
        assert [u.decode() for u in parsed.array.to_pylist()[:3]] == [plain, plain, "http://a.example/?q=amp;x"]
        x = featurizer.transform(pd.DataFrame({"url": [escaped, plain] * copies}))
        np.testing.assert_array_equal(x[0], x[1])


def test_ngram_scores_are_the_decision_function_of_the_training_matrix(fitted):
    featurizer, urls = fitted
    # the longest spans a batch takes (each span's n-gram buckets are hashed into one buffer sized by the longest)
    long_host = "http://" + ".".join(["a" * 60] * 30) + ".example/"
    long_path = "http://a.example/" + "pàth/" * 400
    urls = [*urls[:20], "", "x", "http://[::1]/", "ünï.cödé/ß", long_host, long_path]
    for batch in (urls, urls[-1:], urls[-2:-1]):
        parsed = ParsedUrls(batch)
        scores = url_features(parsed, featurizer.ngram_range, featurizer.n_features,
                              featurizer.ngram_weights())[:, -2:]
        for j, spans in enumerate((parsed.host_spans(), parsed.rest_spans())):
            expected = featurizer.scorers_[j].decision_function(featurizer.ngram_matrix(parsed, *spans))
            np.testing.assert_allclose(scores[:, j], expected, rtol=1e-5, atol=1e-5)


def test_featurizer_round_trips_through_skops_and_refuses_other_definitions(fitted, tmp_path):
    featurizer, urls = fitted
    sha = save_model(featurizer, tmp_path / "f.skops")
    loaded = load_model(tmp_path / "f.skops", sha)
    np.testing.assert_array_equal(loaded.transform(pd.DataFrame({"url": urls})), featurizer.transform(urls))
    loaded.version_ = "older"
    with pytest.raises(ValueError, match="retrain"):
        loaded.transform(urls)


def _sparse_problem(rows: int = 400, columns: int = 3000, seed: int = 0, density: float = 0.01):
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    X = sp.random(rows, columns, density=density, format="csr", random_state=seed)
    X.data = 1.0 / np.sqrt(np.repeat(np.diff(X.indptr), np.diff(X.indptr)))  # like the featurizer's scaling
    truth = rng.normal(size=columns)
    y = (X @ truth + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    return X, y


def test_fit_logistic_finds_liblinears_optimum():
    """The same objective and algorithm as scikit-learn's liblinear (bias penalised, same stopping rule): the
    coefficients and the scores of held-out rows agree to solver tolerance."""
    from sklearn.linear_model import LogisticRegression

    from cybersentinel.features.logistic import fit_logistic

    X, y = _sparse_problem()
    held, held_y = _sparse_problem(seed=1)
    for C in (0.1, 1.0, 10.0):
        reference = LogisticRegression(C=C, solver="liblinear", max_iter=1000, tol=1e-8).fit(X, y)
        coef, intercept, n_iter = fit_logistic(X, y, C=C, tol=1e-8)
        assert 0 < n_iter < 1000
        np.testing.assert_allclose(coef, reference.coef_[0], atol=1e-6)
        assert intercept == pytest.approx(reference.intercept_[0], abs=1e-6)
        np.testing.assert_allclose(held @ coef + intercept, reference.decision_function(held), atol=1e-5)
    with pytest.raises(ValueError, match="labels 0 and 1"):
        fit_logistic(X, np.zeros(X.shape[0], dtype=int))


@pytest.mark.parametrize(("problem", "C", "digest"), [
    ({}, 0.1, "460ffe89df98ca73c5d5fd99853e3f8f394548c06751606fc0ebdc8462d43c51"),
    ({}, 1.0, "c5ceff1df38128e4fdeea0bcd2d4c81c70475b9a2a6e38a3585a358cac785860"),
    ({}, 10.0, "f5890024f27a1bb0188f198055d3cb105164fc9e5cc0070d61265a6fd1274bce"),
    ({"columns": 2**16, "seed": 2, "density": 0.001}, 0.1,
     "a33da07f3248703b6e7814c797d0e4d37b0a74e623692bc1461371c82f70812e"),
    ({"columns": 2**16, "seed": 2, "density": 0.001}, 1.0,
     "bc6d66ca2d6c35485534ace09f05a6b255d78561a4db122872e4d2d48c7d0cb9"),
    ({"columns": 2**16, "seed": 2, "density": 0.001}, 10.0,
     "4202b1473800c2db793dfc688df4c1e16fcbfd8f160148128c5e86de5964798d"),
])
def test_fit_logistic_keeps_the_bits_of_the_row_by_row_solver(problem, C, digest):
    """The compact, column-major solver adds the same terms in the same order as session 14's solver, which ran
    over every bucket row by row: the SHA-256 of coefficients and intercept recorded from that solver, on a
    problem where nearly every bucket is used and on one where two thirds are not. A changed order of additions
    changes the served model's bits (and `dvc.lock`), so it must be a decision, not an accident."""
    import hashlib

    from cybersentinel.features.logistic import fit_logistic

    coef, intercept, _ = fit_logistic(*_sparse_problem(**problem), C=C)
    assert hashlib.sha256(coef.tobytes() + np.float64(intercept).tobytes()).hexdigest() == digest


def test_fit_logistic_gives_the_same_bits_for_the_same_input():
    from cybersentinel.features.logistic import fit_logistic

    X, y = _sparse_problem()
    first, again = fit_logistic(X, y), fit_logistic(X.copy(), y.copy())
    assert first[0].tobytes() == again[0].tobytes() and first[1:] == again[1:]


POPULAR = ["happycow.net", "happyfarm.com", "cowshed.org", "bankofamerica.com"]


def _familiarity(popular_fit: UrlFeaturizer, urls: list[str]) -> dict[str, float]:
    return dict(zip(urls, popular_fit.transform(pd.DataFrame({"url": urls}))[:, -1].tolist(), strict=True))


@pytest.fixture(scope="module")
def popular_fit(fitted) -> UrlFeaturizer:
    _, urls = fitted
    featurizer = UrlFeaturizer(n_features=2**12, cv=3)
    featurizer.fit(pd.DataFrame({"url": urls}), np.r_[np.zeros(150), np.ones(150)], popular_sites=POPULAR,
                   judged_sites={"cowshed.org"})
    return featurizer


@given(st.lists(st.text(max_size=30), max_size=8))
@settings(max_examples=200, deadline=None)
def test_name_grams_are_each_labels_distinct_marked_3_grams_in_text_order(labels: list[str]) -> None:
    keys, owners = name_grams(labels)
    found: list[list[str]] = [[] for _ in labels]
    for key, owner in zip(keys.tolist(), owners.tolist(), strict=True):
        found[owner].append("".join(chr((key >> shift) & 0x1FFFFF) for shift in (42, 21, 0)))
    for label, grams in zip(labels, found, strict=True):
        marked = f".{label}."
        assert grams == sorted({marked[i:i + 3] for i in range(len(label))})


def test_name_familiarity_counts_the_listed_names_grams_less_the_judged_sites() -> None:
    familiarity = NameFamiliarity.fit(POPULAR, judged={"cowshed.org"})
    counts = {"".join(chr((key >> shift) & 0x1FFFFF) for shift in (42, 21, 0)): count
              for key, count in zip(familiarity.grams.tolist(), familiarity.counts.tolist(), strict=True)}
    assert counts[".ha"] == 2 and counts["hap"] == 2 and "hed" not in counts  # each name once; judged not counted
    assert counts["ow."] == 1 and counts[".ba"] == 1 and len(counts) == len(familiarity.grams)
    assert familiarity.listed(["happycow.net", "cowshed.org", "zzz.com", "bankofamerica.com"]).tolist() == \
        [True, False, False, True]


@given(st.lists(st.tuples(st.text(alphabet="abcehnopwy", max_size=10), st.booleans(), st.booleans()), max_size=6))
@settings(max_examples=200, deadline=None)
def test_name_familiarity_is_the_mean_log_count_of_each_names_distinct_grams(names) -> None:
    familiarity = NameFamiliarity.fit(POPULAR, judged={"cowshed.org"})
    counts = {"".join(chr((key >> shift) & 0x1FFFFF) for shift in (42, 21, 0)): count
              for key, count in zip(familiarity.grams.tolist(), familiarity.counts.tolist(), strict=True)}
    labels = [label for label, _, _ in names]
    registered = ["happycow.net" if listed else f"{label}.com" for label, listed, _ in names]
    earns_nothing = np.array([nothing for _, _, nothing in names], dtype=bool)
    found = familiarity.of_names(labels, registered, earns_nothing)
    for label, site, nothing, value in zip(labels, registered, earns_nothing, found.tolist(), strict=True):
        grams = {f".{label}."[i:i + 3] for i in range(len(label))}
        own = site in POPULAR  # a listed site's own name is not counted
        logs = [np.log1p(max(counts.get(gram, 0) - own, 0)) for gram in grams]
        assert value == (0 if nothing or not label else np.float32(np.mean(logs)))


def test_a_scorers_familiarity_is_the_same_computed_alone_in_a_batch_or_remembered(popular_fit, fitted) -> None:
    from cybersentinel.model.compiled import UrlScorer

    _, urls = fitted
    weights, medians = popular_fit.ngram_weights(), np.zeros(len(popular_fit.get_feature_names_out()), np.float32)
    remembering = UrlScorer((3, 5), 2**12, weights, medians, [], "raw", popular_fit.familiarity())
    batch = remembering.features(ParsedUrls(urls))[:, -1]
    assert len(remembering.familiarity.by_host) > 0
    for i in (0, 7, 151, 299):
        fresh = UrlScorer((3, 5), 2**12, weights, medians, [], "raw", popular_fit.familiarity())
        assert fresh.features(ParsedUrls(urls[i:i + 1]))[0, -1] == batch[i] == \
            remembering.features(ParsedUrls(urls[i:i + 1]))[0, -1]


def test_name_familiarity_is_zero_for_addresses_brands_look_alikes_and_suspicious_words(popular_fit) -> None:
    found = _familiarity(popular_fit, ["http://happyshed.de/", "http://www.qzxvbk.com/", "http://paypal-happy.com/",
                                       "http://happy-login.com/", "http://203.0.113.7/", "http://happyc0w.net/",
                                       "http://paypa1happy.com/", "not a url at all", ""])
    # ".ha", "hap", "app", "ppy" in two listed names; "pys", "ysh", "she", "hed", "ed." in none (cowshed is judged)
    assert found["http://happyshed.de/"] == pytest.approx(4 * np.log(3) / 9)
    assert found["http://happyc0w.net/"] > 0 == found["http://www.qzxvbk.com/"]
    assert found["http://paypal-happy.com/"] == found["http://happy-login.com/"] == 0  # brand, suspicious word
    assert found["http://203.0.113.7/"] == found["http://paypa1happy.com/"] == 0  # address, look-alike
    assert found["not a url at all"] == found[""] == 0
    # one host's value whatever the rest of the URL, and the same in a batch as alone
    assert _familiarity(popular_fit, ["https://happyshed.de/a/b?c=d"])["https://happyshed.de/a/b?c=d"] == \
        found["http://happyshed.de/"]


def test_a_listed_site_does_not_count_its_own_name(popular_fit, fitted) -> None:
    _, urls = fitted
    unlisted = UrlFeaturizer(n_features=2**12, cv=3).fit(
        pd.DataFrame({"url": urls}), np.r_[np.zeros(150), np.ones(150)], popular_sites=POPULAR,
        judged_sites={"cowshed.org", "happycow.net"})
    listed = _familiarity(popular_fit, ["http://happycow.net/"])["http://happycow.net/"]
    assert listed == _familiarity(unlisted, ["http://happycow.net/"])["http://happycow.net/"] > 0


def test_familiarity_is_the_last_feature_in_fit_transform_and_serving(popular_fit, fitted, tmp_path) -> None:
    from cybersentinel.model.compiled import UrlScorer

    _, urls = fitted
    assert popular_fit.get_feature_names_out()[-3:].tolist() == ["host_ngram_score", "path_ngram_score",
                                                                  "name_familiarity"]
    frame = pd.DataFrame({"url": urls})
    x = popular_fit.transform(frame)
    again = UrlFeaturizer(n_features=2**12, cv=3).fit_transform(frame, np.r_[np.zeros(150), np.ones(150)],
                                                                 popular_sites=POPULAR, judged_sites={"cowshed.org"})
    np.testing.assert_array_equal(again[:, -1], x[:, -1])  # training rows get the value serving computes
    sha = save_model(popular_fit, tmp_path / "f.skops")
    np.testing.assert_array_equal(load_model(tmp_path / "f.skops", sha).transform(frame), x)
    scorer = UrlScorer((3, 5), 2**12, popular_fit.ngram_weights(), np.zeros(x.shape[1], np.float32), [], "raw",
                       popular_fit.familiarity())
    np.testing.assert_array_equal(scorer.features(ParsedUrls(urls)), x)
    loaded = UrlScorer.load(tmp_path / "scorer.npz", scorer.save(tmp_path / "scorer.npz"))
    np.testing.assert_array_equal(loaded.features(ParsedUrls(urls)), x)
    refit = UrlFeaturizer(n_features=2**12, cv=3).fit(frame, np.r_[np.zeros(150), np.ones(150)], popular_sites=POPULAR)
    refit.fit(frame, np.r_[np.zeros(150), np.ones(150)])  # again without a list: no familiarity left over
    assert refit.familiarity() is None and refit.transform(frame).shape[1] == x.shape[1] - 1
