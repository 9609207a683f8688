"""The share of a host's registered name and subdomain made of words (`NameWords`): what is covered, the batch
kernel against the one-by-one path, and the two columns the featurizer and the compiled scorer end with."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybersentinel.features.featurizer import UrlFeaturizer
from cybersentinel.features.lexical import ParsedUrls, _host_cache, _host_table_and_names
from cybersentinel.features.words import NOTHING_TO_READ, NameWords, _coverages, _joined

LISTED = ["bright", "leaf", "candle", "candles", "shop", "happy", "cow", "mail", "login", "secure", "bank", "farm"]
WORDS = NameWords.fit([*LISTED, "ab", "Farm", "don't", "café", "x1y", "a" * 25])


def covered_share(name: str) -> float:
    """`NameWords.coverage` written out plainly over the words themselves: the reference the kernel must match."""
    covered = total = 0
    for label in name.split("."):
        if label.startswith("xn--") or not label.isascii():
            continue
        for part in label.split("-"):
            best = [0] * (len(part) + 1)
            for start in range(len(part)):
                best[start + 1] = max(best[start + 1], best[start])
                for end in range(start + 3, len(part) + 1):
                    if part[start:end] in LISTED:
                        best[end] = max(best[end], best[start] + end - start)
            covered, total = covered + best[-1], total + len(part)
    return covered / total if total else NOTHING_TO_READ


def test_fit_keeps_the_hashes_of_lower_case_words_of_three_to_24_letters_and_of_their_beginnings() -> None:
    texts = {word[:k] for word in LISTED for k in range(3, len(word) + 1)}  # "bri", "brig", ..., "bright"
    assert len(WORDS.keys) == len(texts) and bool(np.all(WORDS.keys[1:] > WORDS.keys[:-1]))
    flags = (WORDS.keys & np.uint64(3)).tolist()
    assert flags.count(1) == 11 and flags.count(3) == 1  # words only; "candle", also the beginning of "candles"
    assert flags.count(2) == len(texts) - 12  # beginnings only  ("bri", "candl", "logi", ...)
    assert NameWords.fit(reversed(LISTED)).keys.tobytes() == WORDS.keys.tobytes()  # order does not matter
    with pytest.raises(ValueError, match="no word"):
        NameWords.fit(["ab", "x's", "café", "b" * 25])


@pytest.mark.parametrize(("name", "share"), [
    ("brightleafcandles", 1.0), ("kyfrlbc8451736", 0.0), ("happy-cow", 1.0), ("happyx", 5 / 6),
    ("shop24", 4 / 6), ("cowshop.happy", 1.0), ("ab", 0.0), ("", NOTHING_TO_READ), ("--", NOTHING_TO_READ),
    ("candlesx", 7 / 8),  # the longest cover: "candles", not "candle"
    ("bankmailx", 8 / 9), ("secureloginbank", 1.0),
    # a label in another script, or its xn-- form, is not read: the lists hold no words of it
    ("héshop", NOTHING_TO_READ), ("президент", NOTHING_TO_READ), ("xn--d1abbgf6aiiy", NOTHING_TO_READ),
    ("xn--80ak6aa92e.shop", 1.0), ("shop.héshop", 1.0), ("xn-shop", 4 / 6),
])
def test_coverage_is_the_most_characters_words_cover_without_overlapping(name: str, share: float) -> None:
    assert WORDS.coverage(name) == pytest.approx(share)


@given(st.lists(st.text(alphabet="abcdefghiklmnoprsuwxy-.09é", max_size=24), max_size=12))
@settings(max_examples=300, deadline=None)
def test_the_kernel_covers_what_the_plain_reading_covers(names: list[str]) -> None:
    assert _coverages(*_joined(names), WORDS._table).tolist() == [covered_share(name) for name in names]


def test_a_hosts_name_and_subdomain_are_read_apart() -> None:
    hosts = [b"www.brightleafcandles.com", b"secure-login.happycow.co.uk", b"203.0.113.7", b"www.shop.kyfrlbc.top",
             b"mail.bank.example.com", b"[2001:db8::1]", b"localhost"]
    alone = [NameWords(WORDS.keys).of_hosts([host])[0].tolist() for host in hosts]
    nothing = NOTHING_TO_READ  # an address's name, no subdomain (www. does not count)
    assert alone[:4] == [[1.0, nothing], [1.0, 1.0], [nothing, nothing], [0.0, 1.0]]
    assert alone[4][0] == 0.0 and alone[4][1] == 1.0  # "example" is not a word here
    fresh = NameWords(WORDS.keys)
    assert fresh.of_hosts(hosts).tolist() == alone
    assert len(fresh.by_host) == len(hosts) and fresh.of_hosts(hosts[:2]).tolist() == alone[:2]  # remembered


def test_the_host_tables_split_gives_the_values_a_split_of_its_own_gives() -> None:
    """`url_features` hands `of_hosts` the names `_host_table_and_names` split (a batch's, and one host's alone):
    the same values as when it splits the hosts itself, ``www.`` set aside the same way."""
    hosts = [b"www.brightleafcandles.com", b"www.www.shop.kyfrlbc.top", b"www.happycow.co.uk", b"203.0.113.7",
             b"[2001:db8::1]", b"xn--d1abbgf6aiiy.xn--p1ai", b"mail.bank.example.com", b"localhost", b"www",
             *(f"shop{i}.bakery{i}.co.uk".encode() for i in range(80))]
    reference = NameWords(WORDS.keys).of_hosts(hosts)
    for batch in (hosts, hosts[:3]):  # split together (over `FEW_TEXTS`), and one by one (a request's few hosts)
        _host_cache.clear()
        names = _host_table_and_names(batch)[1]
        assert set(names) == set(batch)
        assert NameWords(WORDS.keys).of_hosts(batch, names).tolist() == reference[:len(batch)].tolist()


def test_the_featurizer_and_the_compiled_scorer_end_with_the_two_columns(tmp_path) -> None:
    from cybersentinel.model.compiled import UrlScorer

    urls = [f"http://{name}.com/{path}" for name in ("brightleaf", "happycow", "qzxv", "mailshop", "kyfrl")
            for path in ("", "login", "a/b.php", "shop?id=1")] * 4
    y = np.r_[np.zeros(40), np.ones(40)]
    featurizer = UrlFeaturizer(n_features=2**12, cv=2).fit(pd.DataFrame({"url": urls}), y, words=LISTED)
    assert list(featurizer.get_feature_names_out())[-2:] == ["name_words", "subdomain_words"]
    served = featurizer.transform(pd.DataFrame({"url": ["http://www.happycow.com/x", "http://qzxv.happy.net/"]}))
    assert served[:, -2:].tolist() == [[1.0, NOTHING_TO_READ], [1.0, 0.0]]  # the name "happy", the subdomain "qzxv"
    medians = np.zeros(len(featurizer.get_feature_names_out()), np.float32)
    scorer = UrlScorer((3, 5), 2**12, featurizer.ngram_weights(), medians, [], "raw", None, featurizer.name_words())
    sha256 = scorer.save(tmp_path / "scorer.npz")
    loaded = UrlScorer.load(tmp_path / "scorer.npz", sha256)
    assert loaded.words is not None and loaded.words.keys.tobytes() == WORDS.keys.tobytes()
    assert np.array_equal(loaded.features(ParsedUrls(urls)), featurizer.transform(pd.DataFrame({"url": urls})))
    refit = UrlFeaturizer(n_features=2**12, cv=2).fit(pd.DataFrame({"url": urls}), y)  # without: no columns
    assert "name_words" not in refit.get_feature_names_out() and refit.name_words() is None


def test_a_name_with_nothing_to_read_gets_no_words_reason() -> None:
    """`госуслуги.рф` or a host without a subdomain is valued `NOTHING_TO_READ`: a reason saying its name is "not
    made of dictionary words" would misread it; a name read and found without words gets that reason."""
    from cybersentinel.scoring.detector import reason_texts

    names = ["name_words", "subdomain_words"]
    X = np.array([[NOTHING_TO_READ, NOTHING_TO_READ], [0.0, 0.0], [NOTHING_TO_READ, 0.0]], dtype=np.float32)
    contrib = np.full((3, 3), 1.0, dtype=np.float32)
    medians = np.array([0.5, 0.5], dtype=np.float32)
    assert reason_texts(contrib, X, names, medians).tolist() == [
        "", "site name not made of dictionary words; subdomain not made of dictionary words",
        "subdomain not made of dictionary words"]
