"""How much of a host's name is made of dictionary words: the share of the registered name's characters, and of
the subdomain's, that words of versioned word lists (Debian's lists of English, German, French, Spanish, Italian,
Portuguese and Dutch words; stage `software`) cover.

Small legitimate sites are named with words of their own language (``brightleafcandles``,
``contabilidade-ferreira``); names registered for phishing are often random (``kyfrlbc8451736``, ``xkq3jd``), and
a kit's subdomain is often a random or numbered label (``97046390068.``). Unlike the host n-gram score, which
learns letters from the training lists, this reads languages: the leave-one-collection-out folds rank better with
it (docs/experiments.md, "Session 59").

Each hyphen- or dot-separated part of a name is covered by words of three to `LONGEST` letters that do not overlap,
as many of its characters as possible (digits are never covered); the value is the covered share of all the
parts' characters. A label in another script (``президент``, or its ``xn--`` form) is not read: the lists hold no
such words, and calling it "not words" would call every such site random. With nothing left to read (an address,
a name in another script, no subdomain: ``www.`` does not count) the value is -1.

The fitted lists are kept as sorted 64-bit FNV-1a hashes of the words and of their beginnings (3.6 million keys:
28 MB, where a Python set of the words alone took over 100 MB), so the featurizer's skops file and the compiled
scorer's ``.npz`` hold them without pickle; every name, one or a batch, is covered by one kernel, which walks from
each letter only while what it has read begins a word (a trie's walk, over hashes) and looks each step up in an
open-addressing table of 32-bit fingerprints built once per process (32 MB; a binary search of the sorted keys cost
ten times as long, most of a batch's time)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from numba import njit

from cybersentinel.url.parsing import HostNames, split_host_columns, without_www

SHORTEST, LONGEST = 3, 24  # letters: two-letter entries (abbreviations) would cover random names by chance
NOTHING_TO_READ = -1.0
MAX_HOSTS = 200_000  # hosts remembered per word list (`NameWords.by_host`)
_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)
# a key's two low bits: what the text it hashes is (the hash's own two low bits are dropped)
_WORD, _BEGINS_A_WORD = np.uint64(1), np.uint64(2)
_FLAGS = np.uint64(3)


@dataclass(frozen=True)
class NameWords:
    keys: np.ndarray  # uint64, sorted: hashes of the words and their beginnings, low bits `_WORD`, `_BEGINS_A_WORD`
    # each host's (registered name's, subdomain's) value once computed (bounded): a service sees the same hosts again
    by_host: dict[bytes, tuple[float, float]] = field(init=False, repr=False, compare=False, default_factory=dict)

    @classmethod
    def fit(cls, words: Iterable[str]) -> NameWords:
        """From word lists: the lower-case words of `SHORTEST` to `LONGEST` letters a-z (others cannot match)."""
        keys = np.sort(_word_keys(*_joined([word.strip().lower() for word in words])))
        if not len(keys):
            raise ValueError(f"the word lists hold no word of {SHORTEST} to {LONGEST} letters a-z")
        # a text listed more than once, or as a word and as another word's beginning: one key, its flags joined
        hashes = keys & ~_FLAGS
        first = np.flatnonzero(np.r_[True, hashes[1:] != hashes[:-1]])
        return cls(hashes[first] | np.bitwise_or.reduceat(keys & _FLAGS, first))

    @cached_property
    def _table(self) -> np.ndarray:
        """The keys in an open-addressing table (linear probing, under half full) of 32-bit entries: the hash's
        high bits and the key's flags (never 0, which marks an empty slot)."""
        return _build_table(self.keys, max(4, int(2 * len(self.keys)).bit_length()))

    def coverage(self, name: str) -> float:
        """The covered share of ``name``'s characters (separators and labels in another script not counted),
        `NOTHING_TO_READ` when none is left."""
        return float(_coverages(*_joined([name]), self._table)[0])

    def of_hosts(self, hosts: Sequence[bytes], names: Mapping[bytes, HostNames] | None = None) -> np.ndarray:
        """(registered name's, subdomain's) value of each lower-cased host (float32, one row a host). ``names``: the
        `HostNames` of hosts split already (`lexical._host_table_and_names`); the others are split here."""
        known = self.by_host
        values = list(map(known.get, hosts))
        missing = [i for i, value in enumerate(values) if value is None]
        if missing:
            split = [names.get(hosts[i]) for i in missing] if names else [None]
            if all(split):
                labels, _, subs, is_ip = map(list, zip(*split, strict=True))
            else:
                splits = split_host_columns([hosts[i].decode("utf-8", "replace") for i in missing])
                labels, is_ip, subs = splits.domain, splits.is_ip, list(map(without_www, splits.subdomain))
            domains = ["" if ip else label for label, ip in zip(labels, is_ip, strict=True)]
            covered = _coverages(*_joined(domains + subs), self._table).tolist()
            found = list(zip(covered[:len(domains)], covered[len(domains):], strict=True))
            for i, value in zip(missing, found, strict=True):
                values[i] = value
            if len(known) + len(missing) > MAX_HOSTS:
                known.clear()
            known.update(zip([hosts[i] for i in missing], found, strict=True))
        return np.array(values, dtype=np.float32).reshape(len(hosts), 2)


def read_words(path: Path) -> list[str]:
    """The words of the word lists stage `software` wrote (one a line)."""
    return path.read_text(encoding="utf-8").split()


def _joined(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The texts' UTF-8 bytes end to end, and where each starts (with the end as a last entry)."""
    encoded = [text.encode("utf-8", "surrogatepass") for text in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


@njit(cache=True)
def _word_keys(data, offsets):
    """For each text of ``data`` (`_joined`) that is a word of `SHORTEST` to `LONGEST` letters a-z: the FNV-1a 64 hash
    of the word (flag `_WORD`) and of each of its beginnings of `SHORTEST` letters or more (flag `_BEGINS_A_WORD`),
    the hash's two low bits replaced by the flag; a text may come more than once."""
    texts = len(offsets) - 1
    is_word = np.zeros(texts, dtype=np.bool_)
    count = 0
    for t in range(texts):
        n = offsets[t + 1] - offsets[t]
        if SHORTEST <= n <= LONGEST:
            is_word[t] = True
            for i in range(offsets[t], offsets[t + 1]):
                if data[i] < 97 or data[i] > 122:  # a-z
                    is_word[t] = False
                    break
            if is_word[t]:
                count += n - SHORTEST + 1
    out = np.empty(count, dtype=np.uint64)
    k = 0
    for t in range(texts):
        if not is_word[t]:
            continue
        h = _FNV_OFFSET
        for i in range(offsets[t], offsets[t + 1]):
            h = (h ^ np.uint64(data[i])) * _FNV_PRIME
            if i + 1 - offsets[t] >= SHORTEST:  # what was read so far begins this word, or is it
                out[k] = (h & ~_FLAGS) | (_WORD if i + 1 == offsets[t + 1] else _BEGINS_A_WORD)
                k += 1
    return out


@njit(cache=True)
def _build_table(keys, bits):
    """`NameWords._table`: ``2**bits`` slots; a key goes to the slot its hash's low bits name, or the next free."""
    mask = np.uint64((1 << bits) - 1)
    table = np.zeros(1 << bits, dtype=np.uint32)
    for key in keys:
        slot = (key >> np.uint64(2)) & mask
        while table[slot] != 0:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = np.uint32(((key >> np.uint64(32)) & ~_FLAGS) | (key & _FLAGS))
    return table


@njit(cache=True)
def _flags(table, h):
    """The flags `_WORD`, `_BEGINS_A_WORD` of the text whose hash is ``h`` (0: neither)."""
    mask = np.uint64(len(table) - 1)
    slot = ((h & ~_FLAGS) >> np.uint64(2)) & mask
    fingerprint = np.uint32((h >> np.uint64(32)) & ~_FLAGS)
    while table[slot] != 0:
        if table[slot] & np.uint32(~np.uint32(3)) == fingerprint:
            return table[slot] & np.uint32(3)
        slot = (slot + np.uint64(1)) & mask
    return np.uint32(0)


@njit(cache=True)
def _coverages(data, offsets, table):
    """`NameWords.coverage` of each text: per part (between "-" and "." of a label in ASCII that does not start
    "xn--"), the most characters non-overlapping words cover, by dynamic programming over where words start; from
    each letter the run of a-z is read while it begins a word (`_flags` in ``table``), and each word it meets
    counts."""
    out = np.zeros(len(offsets) - 1, dtype=np.float64)
    best = np.zeros(256, dtype=np.int64)
    for t in range(len(offsets) - 1):
        covered = total = 0
        i, end = offsets[t], offsets[t + 1]
        label_end = i - 1  # where the label being read ends (the "." after it, or the text's end)
        skip = False
        while i < end:
            if i > label_end:  # a label begins: read it only if it is ASCII and no "xn--" form
                label_end = i
                while label_end < end and data[label_end] != 46:  # "."
                    label_end += 1
                skip = label_end - i >= 4 and data[i] == 120 and data[i + 1] == 110 and data[i + 2] == 45 \
                    and data[i + 3] == 45  # "xn--"
                for k in range(i, label_end):
                    skip = skip or data[k] >= 128
            j = i
            while j < end and data[j] != 45 and data[j] != 46:  # "-", "."
                j += 1
            n = j - i
            if n > 0 and not skip:
                if n + 1 > len(best):
                    best = np.zeros(n + 1, dtype=np.int64)
                best[:n + 1] = 0
                for start in range(n):
                    best[start + 1] = max(best[start + 1], best[start])
                    h = _FNV_OFFSET
                    for stop in range(start, min(n, start + LONGEST)):
                        c = data[i + stop]
                        if c < 97 or c > 122:  # a-z only: no word holds anything else
                            break
                        h = (h ^ np.uint64(c)) * _FNV_PRIME
                        length = stop - start + 1
                        if length >= SHORTEST:
                            found = _flags(table, h)
                            if found & np.uint32(1):  # `_WORD`
                                best[stop + 1] = max(best[stop + 1], best[start] + length)
                            if not found & np.uint32(2):  # `_BEGINS_A_WORD`: no longer word begins so
                                break
                covered += best[n]
                total += n
            i = j + 1
        out[t] = covered / total if total else -1.0  # `NOTHING_TO_READ`
    return out
