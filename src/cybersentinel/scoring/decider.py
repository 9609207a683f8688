"""The decision policy with what it consults for one set of feeds and lists (the feeds index, the allowlist,
the local block list), applied to a batch of rows: the one function every door calls to turn model scores
into verdicts."""

from __future__ import annotations

from typing import Any

import numpy as np

from cybersentinel.scoring.policy import Evidence, Policy, SiteList, decide


class Decider:
    """The policy with what it consults, for one set of feeds and lists: the feeds index (optional), the
    allowlist and the local block list. It keeps each host's `Evidence` (a host's evidence depends on nothing
    else); a reloaded feed or list makes a new Decider, so no answer outlives the data it came from."""

    def __init__(self, policy: Policy, index: Any = None, allow: SiteList | None = None,
                 block: SiteList | None = None, cache_size: int = 200_000):
        self.policy, self.index = policy, index
        self.allow, self.block = allow or SiteList(), block or SiteList()
        self.cache_size = cache_size
        self._evidence: dict[tuple[str, bool], Evidence] = {}

    def evidence(self, host: str, bare: bool) -> Evidence:
        key = (host, bare)
        found = self._evidence.get(key)
        if found is None:
            if len(self._evidence) >= self.cache_size:
                self._evidence.clear()
            found = self._evidence[key] = self._evidence_of(host, bare)
        return found

    def _evidence_of(self, host: str, bare: bool) -> Evidence:
        from cybersentinel.intel.feeds import ip_category, ip_status
        from cybersentinel.url.parsing import canonical_host, host_registered_domain, parse_ip

        host = canonical_host(host) or host  # as a browser resolves it: 1.10.4101 is 1.10.16.5
        address = parse_ip(host) if host else None
        allowed, blocked = self.allow.match(host), self.block.match(host)
        if address is not None:
            if self.index is not None:
                found = self.index.lookup_host(host)
                status, category, feeds = found["ip_status"], found["ip_category"], tuple(found["feeds"])
            else:
                category = ip_category(address)
                status, feeds = (ip_status(category, 0) if category else None), ()
            return Evidence(True, bare, feeds, status, category, None, host, allowed, blocked)
        if self.index is None or not host:
            return Evidence(False, False, (), None, None, None, "", allowed, blocked)
        feeds, _, _, rank = self.index.host_signals(host)
        return Evidence(False, False, tuple(feeds), None, None, rank, host_registered_domain(host), allowed,
                        blocked)

    def apply(self, model_scores: np.ndarray, ok: np.ndarray, hosts: list[str], host_of_row: np.ndarray,
              bare_row: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Scores, verdicts, rule reasons and matched feeds of a batch: ``hosts`` are its distinct hosts,
        ``host_of_row`` each row's index into them, ``bare_row`` whether a row is a bare host (no path/query).
        Rows that are not ``ok`` (unusable input) get NaN and empty strings."""
        n = len(model_scores)
        scores = np.where(ok, model_scores, np.nan)
        reasons = np.full(n, "", dtype=object)
        feeds = np.full(n, "", dtype=object)
        plain = [self.evidence(host, False) for host in hosts]
        is_ip = np.asarray([ev.is_ip for ev in plain] + [False])
        changes = np.asarray([ev.changes_anything(self.policy) for ev in plain] + [False])
        host_of_row = np.where(host_of_row < 0, len(plain), host_of_row)  # -1: a row without a host
        bare_ip = is_ip[host_of_row] & bare_row
        for i in np.flatnonzero(ok & (changes[host_of_row] | bare_ip)):
            ev = self.evidence(hosts[host_of_row[i]], True) if bare_ip[i] else plain[host_of_row[i]]
            scores[i], _, reasons[i] = decide(self.policy, float(model_scores[i]), ev)
            feeds[i] = ", ".join(ev.feeds)
        verdicts = np.where(ok, self.policy.verdicts(np.nan_to_num(scores)), "")
        return scores, verdicts, reasons, feeds
