"""How familiar a site's name looks: the mean log-count of its registered name's character 3-grams among the names
of popular sites (a versioned popularity list, registered domains only).

Small legitimate sites are named with the words popular sites use (``bakery``, ``studio``, ``shop``); throwaway
phishing domains are random strings or brand compounds. The leave-one-collection-out folds showed it (README,
"Session 20"): most collections, and above all phishing that came later, rank better with it. A site on the list
does not count its own name (its rank is reputation, which the decision policy handles), a name holding a brand,
imitating one or holding a suspicious word earns nothing (look-alikes are made of familiar words:
``paypal-resolution-center``), and neither does an address.

Plain NumPy arrays (the 3-grams as sorted 63-bit keys with their counts, the listed sites' 64-bit hashes), so the
featurizer's skops file and the compiled scorer's ``.npz`` both hold them without pickle. A batch's names are scored in
one kernel call, 3-grams to mean (a Python set per name cost more than the rest of the feature, and a service request
of one URL paid more for a dozen NumPy calls than for the work)."""

from __future__ import annotations

import hashlib
import re
from array import array
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property

import numpy as np
from numba import njit

from cybersentinel.url.parsing import split_hosts

FEW_NAMES = 4  # up to this many names are scored one by one in Python (`NameFamiliarity._of_label`)
_MARK = 0x2E  # ".": a name's ends are marked, so ".ab" (a name beginning "ab") is its own 3-gram
# The characters of a plain label and the mark, in code-point order: as digits of this base, a 3-gram of them is a
# number that sorts as its text does (`_plain_grams`)
_PLAIN_CHARS = "-.0123456789_abcdefghijklmnopqrstuvwxyz"
_PLAIN_DIGITS = bytes.maketrans(_PLAIN_CHARS.encode(), bytes(range(len(_PLAIN_CHARS))))
_PLAIN_LABEL = re.compile(r"[a-z0-9_-]+")


def name_grams(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct 3-grams of each registered name's label, its ends marked (``.ab``, ``ab.``), as 63-bit keys
    (three 21-bit code points: the keys sort as the 3-grams' text does): (keys, the index of each key's label),
    each label's keys sorted."""
    return _name_grams(*_code_points(labels))


@njit(cache=True)
def _name_grams(points, offsets):
    total = 0
    for i in range(len(offsets) - 1):
        total += offsets[i + 1] - offsets[i]  # a label of n characters has n marked 3-grams
    keys = np.empty(total, dtype=np.uint64)
    owners = np.empty(total, dtype=np.int64)
    filled = 0
    for i in range(len(offsets) - 1):
        start, n = offsets[i], offsets[i + 1] - offsets[i]
        first = filled
        for j in range(n):
            a = _MARK if j == 0 else points[start + j - 1]
            c = _MARK if j == n - 1 else points[start + j + 1]
            keys[filled] = (np.uint64(a) << np.uint64(42)) | (np.uint64(points[start + j]) << np.uint64(21)) | \
                np.uint64(c)
            filled += 1
        if n:
            keys[first:filled] = np.sort(keys[first:filled])
            kept = first + 1
            for k in range(first + 1, filled):  # duplicates are neighbours once sorted
                if keys[k] != keys[kept - 1]:
                    keys[kept] = keys[k]
                    kept += 1
            owners[first:kept] = i
            filled = kept
    return keys[:filled].copy(), owners[:filled].copy()


def site_hash(site: str) -> int:
    """A registered domain's 64-bit BLAKE2b hash: set membership without keeping 100,000 strings."""
    return int.from_bytes(hashlib.blake2b(site.encode("utf-8", "replace"), digest_size=8).digest(), "little")


def site_hashes(sites: Iterable[str]) -> np.ndarray:
    """`site_hash` of each registered domain (uint64)."""
    return np.fromiter(map(site_hash, sites), dtype=np.uint64)


def _sorted_find(table: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(where each value is in the sorted ``table``, whether it is there at all)."""
    if not len(table):
        return np.zeros(len(values), dtype=np.int64), np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(table, values), len(table) - 1)
    return at, table[at] == values


@dataclass(frozen=True)
class NameFamiliarity:
    grams: np.ndarray  # uint64: sorted distinct 3-gram keys (`name_grams`) of the listed sites' names
    counts: np.ndarray  # int64: how many listed sites' names hold each
    sites: np.ndarray  # uint64: sorted `site_hashes` of the listed sites
    # log1p of the counts, and of the counts less one (a listed site's own name), by NumPy once: the kernel only
    # adds them, so its values are the ones NumPy's log1p gives, bit for bit
    log_counts: np.ndarray = field(init=False, repr=False, compare=False)
    log_counts_less_own: np.ndarray = field(init=False, repr=False, compare=False)
    # each host's value once computed (`lexical.host_familiarity`, bounded): a service sees the same hosts again;
    # read as float32 (a value `of_name` gave is kept before that cast, which rounds it as `of_names` does)
    by_host: dict[bytes, float] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "log_counts", np.log1p(self.counts))
        object.__setattr__(self, "log_counts_less_own", np.log1p(np.maximum(self.counts - 1, 0)))

    @classmethod
    def fit(cls, popular: Iterable[str], judged: Collection[str] = frozenset()) -> NameFamiliarity:
        """From a popularity list's registered domains, less the ``judged`` ones (the sites the model will be
        evaluated on: no figure may rest on their being listed)."""
        sites = sorted(set(popular) - set(judged))
        grams, counts = np.unique(name_grams([split[1] for split in split_hosts(sites)])[0], return_counts=True)
        return cls(grams, counts.astype(np.int64), np.unique(site_hashes(sites)))

    def listed(self, sites: Sequence[str]) -> np.ndarray:
        """Whether each registered domain is on the list (a sorted search: ``np.isin`` sorts the whole list
        again on every call, some 17 ms)."""
        return _sorted_find(self.sites, site_hashes(sites))[1]

    def of_names(self, labels: Sequence[str], registered: Sequence[str], earns_nothing: Sequence[bool]) -> np.ndarray:
        """Each site's familiarity (float32), from its registered name's label and its registered domain: 0 where
        ``earns_nothing`` (an address, a brand mixed in or imitated, a suspicious word) or the label is empty."""
        chosen = [i for i, (label, nothing) in enumerate(zip(labels, earns_nothing, strict=True))
                  if _earns(label, nothing)]
        out = np.zeros(len(labels), dtype=np.float32)
        if len(chosen) <= FEW_NAMES:
            for i in chosen:
                out[i] = self._of_label(labels[i], registered[i])
        elif len(chosen) == len(labels):
            out = self._of_labels(labels, registered)
        else:
            out[chosen] = self._of_labels([labels[i] for i in chosen], [registered[i] for i in chosen])
        return out

    def of_name(self, label: str, registered: str, earns_nothing: bool) -> float:
        """`of_names` of one site, as a Python float before the cast to float32 (the same C cast gives `of_names`'
        value): a service request's one new host without a NumPy call."""
        return self._of_label(label, registered) if _earns(label, earns_nothing) else 0.0

    def _of_label(self, label: str, registered: str) -> float:
        """`_of_labels` of one label in Python (a service request: the kernel's NumPy calls cost more than one
        name), the same value bit for bit: the same log tables, summed in the same order (3-gram texts sort as
        their keys do) in float64."""
        own = site_hash(registered) in self._listed
        marked = f".{label}."
        if _PLAIN_LABEL.fullmatch(label):  # most names: one read of a flat array per 3-gram (`_plain_logs`)
            numbers = sorted(_plain_grams(marked))
            total = 0.0
            for value in map(self._plain_logs[own].__getitem__, numbers):
                total += value  # 0.0 for a 3-gram not listed: the sum is the one of the listed ones
            return total / len(numbers)
        logs = self._logs_by_gram
        grams = sorted({marked[i:i + 3] for i in range(len(label))})
        total = 0.0
        for gram in grams:
            found = logs.get(gram)
            if found is not None:
                total += found[own]
        return total / len(grams)

    @cached_property
    def _listed(self) -> frozenset[int]:
        """The listed sites' hashes as a Python set, for `_of_label` (one probe, where a sorted search reads
        seventeen places of an array a request finds cold)."""
        return frozenset(self.sites.tolist())

    @cached_property
    def _logs_by_gram(self) -> dict[str, tuple[float, float]]:
        """Each listed 3-gram's text: (its log-count, its log-count less one), for `_of_label`."""
        texts = ["".join(chr((key >> shift) & 0x1FFFFF) for shift in (42, 21, 0)) for key in self.grams.tolist()]
        return dict(zip(texts, zip(self.log_counts.tolist(), self.log_counts_less_own.tolist(), strict=True),
                        strict=True))

    @cached_property
    def _plain_logs(self) -> tuple[array, array]:
        """`_logs_by_gram`'s log-counts, and its log-counts less one, of the 3-grams of plain characters as flat
        arrays indexed by `_plain_grams`' numbers (0.0 where not listed): after a request's idle gap, the dict's
        index, entry and key of each 3-gram were three reads from memory, most of `_of_label`'s time."""
        size = len(_PLAIN_CHARS) ** 3
        logs = array("d", bytes(8 * size)), array("d", bytes(8 * size))
        for gram, pair in self._logs_by_gram.items():
            if set(gram).issubset(_PLAIN_CHARS):
                (number,) = _plain_grams(gram)
                logs[0][number], logs[1][number] = pair
        return logs

    def _of_labels(self, labels: Sequence[str], registered: Sequence[str]) -> np.ndarray:
        """The mean log-count of each non-empty label's distinct 3-grams, a listed site's own name not counted."""
        points, offsets = _code_points(labels)
        return _mean_log_counts(points, offsets, self.grams, self.log_counts, self.log_counts_less_own,
                                self.listed(registered))


def _plain_grams(marked: str) -> set[int]:
    """The distinct 3-grams of a marked plain label (``.``, then `_PLAIN_LABEL`, then ``.``) as numbers in base
    ``len(_PLAIN_CHARS)``, which sort as the 3-grams' texts do."""
    digits, base = marked.encode().translate(_PLAIN_DIGITS), len(_PLAIN_CHARS)
    return {(digits[i] * base + digits[i + 1]) * base + digits[i + 2] for i in range(len(digits) - 2)}


def _earns(label: str, earns_nothing: bool) -> bool:
    """Whether a site's name can earn familiarity: a label, and nothing that earns none (`NameFamiliarity.of_names`)."""
    return bool(label) and not earns_nothing


# what a fitted familiarity is made of, and what its files hold (the log tables are derived on load)
FITTED_ARRAYS = tuple(f.name for f in fields(NameFamiliarity) if f.init)


def _code_points(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The labels' code points end to end (uint32), and where each label starts (with the end as a last entry)."""
    lengths = np.fromiter(map(len, labels), dtype=np.int64, count=len(labels))
    offsets = np.zeros(len(labels) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return np.frombuffer("".join(labels).encode("utf-32-le", "surrogatepass"), dtype=np.uint32), offsets


@njit(cache=True)
def _mean_log_counts(points, offsets, grams, log_counts, log_counts_less_own, listed):
    """`NameFamiliarity._of_labels` in one call: each label's 3-gram keys (`_name_grams`), looked up in the sorted
    ``grams``, their log-counts summed in key order and divided by how many (float64, as ``np.bincount`` sums
    them), then float32. A key not in the table counts log1p(0) = 0."""
    keys, owners = _name_grams(points, offsets)
    totals = np.zeros(len(offsets) - 1, dtype=np.float64)
    sizes = np.zeros(len(offsets) - 1, dtype=np.int64)
    at = np.searchsorted(grams, keys)
    for k in range(len(keys)):
        owner = owners[k]
        sizes[owner] += 1
        if at[k] < len(grams) and grams[at[k]] == keys[k]:
            totals[owner] += log_counts_less_own[at[k]] if listed[owner] else log_counts[at[k]]
    out = np.empty(len(totals), dtype=np.float32)
    for i in range(len(totals)):
        out[i] = totals[i] / sizes[i]
    return out
