"""`Literals` finds what the regular expressions it replaced found: the brand names anywhere, a short brand only
where a word of a name begins, a brand as a whole word of a subdomain, the brands' look-alike skeletons."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybersentinel.features.lexical import BRANDS
from cybersentinel.features.literals import FEW_TEXTS, Literals

SHORT = [b for b in BRANDS if len(b) <= 5]
LONG = [b for b in BRANDS if len(b) > 5]
# Each matcher and the regular expression it replaced (RE2's reading: ``$`` is the very end, so ``\Z`` here)
MATCHERS = {
    "anywhere": (Literals(BRANDS), re.compile("|".join(map(re.escape, BRANDS)))),
    "short ones where a word begins": (
        Literals(LONG) | Literals(SHORT, before="[^a-z]"),
        re.compile("|".join(map(re.escape, LONG)) + "|(?:^|[^a-z])(?:" + "|".join(map(re.escape, SHORT)) + ")")),
    "whole words": (Literals(BRANDS, before="[.-]", after="[.-]"),
                    re.compile(r"(?:^|[.-])(?:" + "|".join(map(re.escape, BRANDS)) + r")(?:[.-]|\Z)")),
}
# texts built from brands, pieces of them and the characters their bounds read
PIECES = st.sampled_from([*BRANDS, "pay", "app", "le", "ups", "x", "a", "1", ".", "-", "_", "é", "\n", "www"])
TEXTS = st.lists(st.lists(PIECES, max_size=6).map("".join), min_size=1, max_size=80)


@settings(max_examples=300, deadline=None)
@given(texts=TEXTS)
def test_literals_find_the_rows_their_regular_expressions_find(texts: list[str]) -> None:
    for name, (literals, pattern) in MATCHERS.items():
        expected = [pattern.search(text) is not None for text in texts]
        assert literals.found(texts).tolist() == expected, name
        assert [literals.holds(text) for text in texts] == expected, name


def test_a_batch_and_its_texts_one_by_one_agree_past_the_few_texts_path() -> None:
    texts = ["paypal-login.example", "happier", "my-ups", "groups", "a.apple.b", "xapple", "", "é.paypal"] * 5
    assert len(texts) > FEW_TEXTS
    for name, (literals, _) in MATCHERS.items():
        assert literals.found(texts).tolist() == [literals.holds(t) for t in texts], name
        assert literals.found(texts[:FEW_TEXTS]).tolist() == literals.found(texts)[:FEW_TEXTS].tolist(), name


def test_words_gives_each_bounded_word_in_order() -> None:
    words = Literals(["paypal", "apple", "pal"], before="[.-]", after="[.-]")
    assert words.words("apple.x-paypal.pal") == ["apple", "paypal", "pal"]
    assert words.words("xpaypal.applex") == []
    assert Literals(["paypal", "pal"]).words("paypal") == ["paypal", "pal"]  # the longer first where both begin


def test_a_word_in_two_sets_matches_within_either_bounds() -> None:
    literals = Literals(["ups"], before="[.-]") | Literals(["ups", "chase"], after="[.]")
    assert literals.found(["ups.example", "x-ups", "groups", "groupsx", "purchase."] * 4).tolist() == \
        [True, True, True, False, True] * 4


def test_a_text_that_holds_the_separator_is_read_as_one_text() -> None:
    literals = Literals(["apple"], before="[.-]", after="[.-]")
    texts = ["x\napple", "apple\n", "apple"] * 10
    assert literals.found(texts).tolist() == [False, False, True] * 10


@pytest.mark.parametrize("words", [[], [""], ["a\nb"]])
def test_words_must_be_non_empty_and_on_one_line(words: list[str]) -> None:
    with pytest.raises(ValueError, match="Literals needs words"):
        Literals(words)


def test_no_texts_no_rows() -> None:
    assert Literals(BRANDS).found([]).shape == (0,)
    assert np.asarray(Literals(BRANDS).found(["x"] * (FEW_TEXTS + 1))).sum() == 0
