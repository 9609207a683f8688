"""Literal words found in texts by one Aho-Corasick automaton, built once: a batch of texts is joined and scanned
in one pass, and Python pays only for the matches, which most texts do not have.

A regular expression of a hundred alternatives (the brand names) does the same one text at a time (``re``), or
rebuilds its automaton on every call (RE2 through Arrow's ``match_substring_regex``: most of a millisecond per
1,000 host names, several times the scan below)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import ahocorasick
import numpy as np

_SEPARATOR = "\n"  # between joined texts; no word holds it, so no match spans two texts
FEW_TEXTS = 16  # up to this many, `Literals.found` asks `Literals.holds` of each (no NumPy call)

# A word's bounds: one-character patterns the characters around it must match where it does not begin (end) the text
_Bounds = tuple[re.Pattern | None, re.Pattern | None]


class Literals:
    """Words, each found anywhere or only between bounds. ``before`` and ``after`` are one-character patterns the
    character before (after) a word must match unless the word begins (ends) the text, as ``(?:^|[.-])`` and
    ``(?:[.-]|$)`` around a regular expression's alternatives do (``$`` as RE2 reads it: the very end); None:
    no bound. Sets of words with different bounds combine with ``|``."""

    def __init__(self, words: Iterable[str], *, before: str | None = None, after: str | None = None) -> None:
        words = tuple(dict.fromkeys(words))
        if not words or any(not word or _SEPARATOR in word for word in words):
            raise ValueError("Literals needs words, none empty or holding a line break")
        self._groups = ((frozenset(words), (None if before is None else re.compile(before),
                                            None if after is None else re.compile(after))),)
        self._automaton = self._build()

    def __or__(self, other: Literals) -> Literals:
        combined = object.__new__(Literals)
        combined._groups = self._groups + other._groups
        combined._automaton = combined._build()
        return combined

    def _build(self) -> ahocorasick.Automaton:
        automaton = ahocorasick.Automaton()
        for word in dict.fromkeys(w for words, _ in self._groups for w in sorted(words)):
            # a word in several groups matches within the bounds of any of them
            bounds = tuple(bound for words, bound in self._groups if word in words)
            automaton.add_word(word, (word, bounds, (None, None) in bounds))
        automaton.make_automaton()
        return automaton

    def words(self, text: str) -> list[str]:
        """The words ``text`` holds within their bounds, in the order they begin (a longer one first)."""
        found = [(end - len(word) + 1, -len(word), word) for end, (word, bounds, anywhere) in self._automaton.iter(text)
                 if anywhere or _within(bounds, text, end - len(word) + 1, end, 0, len(text) - 1)]
        return [word for _, _, word in sorted(found)]

    def holds(self, text: str) -> bool:
        """Whether ``text`` holds a word within its bounds."""
        # a loop, not `any` of a generator: most texts match nothing, and the generator cost more than the scan
        for end, (word, bounds, anywhere) in self._automaton.iter(text):
            if anywhere or _within(bounds, text, end - len(word) + 1, end, 0, len(text) - 1):
                return True
        return False

    def found(self, texts: Sequence[str]) -> np.ndarray:
        """`holds` of each text, as a boolean array: one scan of the texts joined."""
        if len(texts) <= FEW_TEXTS:
            return np.fromiter(map(self.holds, texts), dtype=bool, count=len(texts))
        hit = np.zeros(len(texts), dtype=bool)
        joined = _SEPARATOR.join(texts)
        matches = list(self._automaton.iter(joined))
        if not matches:
            return hit
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        starts = np.concatenate(([0], np.cumsum(lengths[:-1] + 1)))
        ends = np.fromiter((end for end, _ in matches), dtype=np.int64, count=len(matches))
        rows = np.searchsorted(starts, ends, side="right") - 1
        anywhere = np.fromiter((value[2] for _, value in matches), dtype=bool, count=len(matches))
        hit[rows[anywhere]] = True
        for k in np.flatnonzero(~anywhere & ~hit[rows]).tolist():  # bounded words, in rows not yet found
            row, end = int(rows[k]), int(ends[k])
            if not hit[row]:
                word, bounds, _ = matches[k][1]
                first = int(starts[row])
                hit[row] = _within(bounds, joined, end - len(word) + 1, end, first, first + int(lengths[row]) - 1)
        return hit


def _within(bounds: tuple[_Bounds, ...], text: str, start: int, end: int, first: int, last: int) -> bool:
    """Whether ``text[start:end + 1]`` stands within one of ``bounds``, ``first`` and ``last`` being the indices of
    the first and last characters of the text it belongs to."""
    return any((before is None or start == first or before.match(text, start - 1) is not None)
               and (after is None or end == last or after.match(text, end + 1) is not None)
               for before, after in bounds)
