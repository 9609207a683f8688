"""How familiar a site's name looks: the mean log-count of its registered name's character 3-grams among the names
of popular sites (a versioned popularity list, registered domains only).

Small legitimate sites are named with the words popular sites use (``bakery``, ``studio``, ``shop``); throwaway
phishing domains are random strings or brand compounds. The leave-one-collection-out folds showed it (README,
"Session 20"): most collections, and above all phishing that came later, rank better with it. A site on the list
does not count its own name (its rank is reputation, which the decision policy handles), a name holding a brand,
imitating one or holding a suspicious word earns nothing (look-alikes are made of familiar words:
``paypal-resolution-center``), and neither does an address.

Plain NumPy arrays (the 3-grams as sorted 63-bit keys with their counts, the listed sites' 64-bit hashes), so the
featurizer's skops file and the compiled scorer's ``.npz`` both hold them without pickle. The 3-grams of a batch's
names are taken in one kernel call (a Python set per name cost more than the rest of the feature)."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from cybersentinel.url.parsing import split_hosts

_MARK = 0x2E  # ".": a name's ends are marked, so ".ab" (a name beginning "ab") is its own 3-gram


def name_grams(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct 3-grams of each registered name's label, its ends marked (``.ab``, ``ab.``), as 63-bit keys
    (three 21-bit code points: the keys sort as the 3-grams' text does): (keys, the index of each key's label),
    each label's keys sorted."""
    lengths = np.fromiter(map(len, labels), dtype=np.int64, count=len(labels))
    points = np.frombuffer("".join(labels).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return _name_grams(points, np.concatenate([[0], np.cumsum(lengths)]))


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


def site_hashes(sites: Iterable[str]) -> np.ndarray:
    """64-bit BLAKE2b hashes of registered domains: set membership without keeping 100,000 strings."""
    return np.fromiter((int.from_bytes(hashlib.blake2b(site.encode("utf-8", "replace"), digest_size=8).digest(),
                                       "little") for site in sites), dtype=np.uint64)


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

    def of_names(self, labels: Sequence[str], registered: Sequence[str], earns_nothing: np.ndarray) -> np.ndarray:
        """Each site's familiarity (float32), from its registered name's label and its registered domain: 0 where
        ``earns_nothing`` (an address, a brand mixed in or imitated, a suspicious word) or the label is empty."""
        out = np.zeros(len(labels), dtype=np.float32)
        chosen = [i for i, (label, nothing) in enumerate(zip(labels, earns_nothing.tolist(), strict=True))
                  if label and not nothing]
        if not chosen:
            return out
        keys, owners = name_grams([labels[i] for i in chosen])
        at, found = _sorted_find(self.grams, keys)
        counts = np.where(found, self.counts[at], 0) if len(self.counts) else np.zeros(len(keys), dtype=np.int64)
        listed = self.listed([registered[i] for i in chosen]).astype(np.int64)  # not counting its own name
        logs = np.log1p(counts - listed[owners])
        out[chosen] = np.bincount(owners, logs, len(chosen)) / np.bincount(owners, None, len(chosen))
        return out
