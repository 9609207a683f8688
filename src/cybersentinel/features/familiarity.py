"""How familiar a site's name looks: the mean log-count of its registered name's character 3-grams among the names
of popular sites (a versioned popularity list, registered domains only).

Small legitimate sites are named with the words popular sites use (``bakery``, ``studio``, ``shop``); throwaway
phishing domains are random strings or brand compounds. The leave-one-collection-out folds showed it (README,
"Session 20"): most collections, and above all phishing that came later, rank better with it. A site on the list
does not count its own name (its rank is reputation, which the decision policy handles), a name holding a brand,
imitating one or holding a suspicious word earns nothing (look-alikes are made of familiar words:
``paypal-resolution-center``), and neither does an address.

Plain NumPy arrays (sorted 3-grams with their counts, the listed sites' 64-bit hashes), so the featurizer's skops
file and the compiled scorer's ``.npz`` both hold them without pickle."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from cybersentinel.url.parsing import split_hosts


def name_grams(label: str) -> set[str]:
    """The character 3-grams of a registered name's label, its ends marked (``.ab``, ``ab.``)."""
    marked = f".{label}."
    return {marked[i:i + 3] for i in range(len(marked) - 2)}


def site_hashes(sites: Iterable[str]) -> np.ndarray:
    """64-bit BLAKE2b hashes of registered domains: set membership without keeping 100,000 strings."""
    return np.fromiter((int.from_bytes(hashlib.blake2b(site.encode("utf-8", "replace"), digest_size=8).digest(),
                                       "little") for site in sites), dtype=np.uint64)


@dataclass(frozen=True)
class NameFamiliarity:
    grams: np.ndarray  # sorted distinct 3-grams (unicode) of the listed sites' names
    counts: np.ndarray  # int64: how many listed sites' names hold each
    sites: np.ndarray  # sorted uint64 `site_hashes` of the listed sites

    @classmethod
    def fit(cls, popular: Iterable[str], judged: Collection[str] = frozenset()) -> NameFamiliarity:
        """From a popularity list's registered domains, less the ``judged`` ones (the sites the model will be
        evaluated on: no figure may rest on their being listed)."""
        sites = sorted(set(popular) - set(judged))
        labels = [split[1] for split in split_hosts(sites)]
        counts = Counter(gram for label in labels for gram in name_grams(label))
        grams = sorted(counts)
        return cls(np.asarray(grams, dtype=str) if grams else np.zeros(0, dtype="<U3"),
                   np.asarray([counts[g] for g in grams], dtype=np.int64), np.unique(site_hashes(sites)))

    def listed(self, sites: Sequence[str]) -> np.ndarray:
        """Whether each registered domain is on the list (a sorted search: ``np.isin`` sorts the whole list
        again on every call, some 17 ms)."""
        hashes = site_hashes(sites)
        if not len(self.sites):
            return np.zeros(len(hashes), dtype=bool)
        at = np.minimum(np.searchsorted(self.sites, hashes), len(self.sites) - 1)
        return self.sites[at] == hashes

    def of_hosts(self, hosts: Sequence[str], deceptive: np.ndarray, words: Sequence[str]) -> np.ndarray:
        """Each lower-cased host's familiarity (float32): 0 for an address, a ``deceptive`` host (a brand mixed
        into or imitated by its name) and a name holding one of ``words``."""
        out = np.zeros(len(hosts), dtype=np.float32)
        grams: list[str] = []
        owners: list[int] = []
        registered: list[str] = []
        chosen: list[int] = []
        for i, (host, (_, label, suffix, is_ip, _)) in enumerate(zip(hosts, split_hosts(list(hosts)), strict=True)):
            if not label or is_ip or deceptive[i] or any(word in label for word in words):
                continue
            found = name_grams(label)
            grams += found
            owners += [len(chosen)] * len(found)
            registered.append(f"{label}.{suffix}" if suffix else host)
            chosen.append(i)
        if not chosen:
            return out
        counts = np.zeros(len(grams), dtype=np.int64)
        if len(self.grams):
            at = np.minimum(np.searchsorted(self.grams, grams), len(self.grams) - 1)
            known = self.grams[at] == np.asarray(grams)
            counts[known] = self.counts[at[known]]
        listed = self.listed(registered).astype(np.int64)  # a listed site does not count its own name
        owners_array = np.asarray(owners)
        logs = np.log1p(counts - listed[owners_array])
        out[chosen] = np.bincount(owners_array, logs, len(chosen)) / np.bincount(owners_array, None, len(chosen))
        return out
