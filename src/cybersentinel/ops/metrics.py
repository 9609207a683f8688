"""Prometheus metrics of the scoring service and the monitor, one registry per app or run (never the client
library's global default registry), so two apps in one process (the tests) never share counters.

With several uvicorn workers, a scrape reaches one worker at random; `serve` then points every worker at one
folder (``PROMETHEUS_MULTIPROC_DIR``, set before the workers start) and ``/metrics`` adds up all workers' files
(prometheus-client's multiprocess mode). With one process the values live in memory.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


SCORE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0)


SMALL_BATCH = 16


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class ScoringMetrics:
    """What every door that scores counts: URLs scored, verdicts, the score histogram, feed matches, and the
    model it scores with (``<prefix>_model_info{name, version} 1``)."""

    def __init__(self, registry: Any, prefix: str, model_name: str, model_version: str) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.urls = Counter(f"{prefix}_urls_scored", "URLs, domains and IPs scored", registry=registry)
        self.verdicts = Counter(f"{prefix}_verdicts", "Verdicts given, by verdict", ["verdict"], registry=registry)
        self.errors = Counter(f"{prefix}_unscorable", "Inputs that could not be scored (no model score)",
                              registry=registry)
        self.scores = Histogram(f"{prefix}_score", "Served scores", buckets=SCORE_BUCKETS, registry=registry)
        self.feeds = Counter(f"{prefix}_feed_matches", "Scored inputs listed in a threat-intel feed, by feed",
                             ["feed"], registry=registry)
        info = Gauge(f"{prefix}_model_info", "The model scoring (always 1; its identity in the labels)",
                     ["name", "version"], registry=registry, multiprocess_mode="max")
        info.labels(model_name, model_version).set(1)
        self.children = Children()

    def observe(self, results: Sequence[Mapping[str, Any]]) -> None:
        """Count one batch of results (dicts with ``score``, ``verdict``, ``error`` and ``feeds``). Counted per
        distinct value, so a 1,000-URL batch costs a few dozen metric updates, not thousands."""
        if not results:
            return
        add(self.urls, len(results))
        verdicts: dict[str, int] = {}
        listed: dict[Any, int] = {}
        unscorable = 0
        for r in results:  # one pass (a request of one URL paid more for three `Counter`s than for the counting)
            verdict = r.get("verdict") or "none"
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
            if r.get("error"):
                unscorable += 1
            if feeds := r.get("feeds"):
                listed[feeds] = listed.get(feeds, 0) + 1
        for verdict, count in verdicts.items():
            add(self.children.get(self.verdicts, verdict), count)
        if unscorable:
            add(self.errors, unscorable)
        for feeds, count in listed.items():
            for feed in str(feeds).split(", "):
                add(self.children.get(self.feeds, feed), count)
        if len(results) <= SMALL_BATCH:  # numpy's fixed cost is more than a few plain observes
            for r in results:
                score = r.get("score")
                if score is not None and score == score:
                    observe(self.scores, score)
            return
        scores = np.array([r.get("score") for r in results], dtype=float)
        observe_many(self.scores, scores[np.isfinite(scores)])


class Children:
    """``metric.labels(*values)``, kept: `labels` takes a lock and rebuilds its key on every call, a few
    microseconds of each request (children are never removed here, so a kept one stays the metric's own)."""

    def __init__(self) -> None:
        self.kept: dict[tuple, Any] = {}

    def get(self, metric: Any, *values: str) -> Any:
        key = (metric, *values)
        found = self.kept.get(key)
        if found is None:
            found = self.kept[key] = metric.labels(*values)
        return found


# A request's metric updates go straight to the values a metric keeps (`_value`; a histogram's `_sum` and
# `_buckets`, as `observe_many` writes them): the same writes as ``counter.inc(n)`` and ``histogram.observe(v)``
# without their checks, which cannot fail here (amounts are never negative, every metric written has its labels),
# two frames fewer per update on the path of every request (seven updates for a one-URL request).


def add(counter: Any, amount: float) -> None:
    """``counter.inc(amount)`` of a counter (or a labelled child of one), ``amount`` >= 0."""
    counter._value.inc(amount)


def observe(histogram: Any, value: float) -> None:
    """``histogram.observe(value)`` of a histogram (or a labelled child of one), ``value`` not NaN: the sum, and
    the first bucket whose upper bound is at least ``value`` (the last bound is +Inf)."""
    histogram._sum.inc(value)
    histogram._buckets[bisect_left(histogram._upper_bounds, value)].inc(1)


def observe_many(histogram: Any, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every value, in one pass per bucket. prometheus-client has no bulk observe;
    its per-call cost (a lock and a bucket search, ~2 us) would add milliseconds to a 1,000-URL batch."""
    if not len(values):
        return
    bounds = np.asarray(histogram._upper_bounds)  # the buckets as configured, +Inf last
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(int(count))
    histogram._sum.inc(float(values.sum()))


def exposition(registry: Any) -> bytes:
    """The registry in Prometheus' text format; in multiprocess mode, every worker's values added up."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    folder = multiprocess_dir()
    if folder is None:
        return generate_latest(registry)
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=folder)
    return generate_latest(merged)


def route_of(path: str, routes: frozenset[str]) -> str:
    """A bounded label for a request path: the route itself, ``/static`` for assets, else ``other`` (a scanner
    probing random paths must not create a time series per path)."""
    if path in routes:
        return path
    if path.startswith("/static/"):
        return "/static"
    parts = path.split("/")
    for route in routes:  # a route with a parameter: `/v1/feedback/{feedback_id}/revoke`
        if "{" in route and _fills(route.split("/"), parts):
            return route
    return "other"


def _fills(pattern: list[str], parts: list[str]) -> bool:
    """Whether a path's segments fill a route's: equal, or any non-empty one where the route has ``{...}``."""
    return len(pattern) == len(parts) and all(p == q or (p.startswith("{") and q != "")
                                              for p, q in zip(pattern, parts, strict=True))


class HttpMetrics:
    """Requests by route, method and status; errors (status >= 400) by route and status; latency by route. Paths
    are labelled by ``routes`` (`route_of`). Counted by the service's `BrowserGuard`, which sees every answer."""

    def __init__(self, registry: Any, prefix: str, routes: frozenset[str] = frozenset()) -> None:
        from prometheus_client import Counter, Histogram

        self.requests = Counter(f"{prefix}_http_requests", "HTTP requests answered, by route, method and status",
                                ["route", "method", "status"], registry=registry)
        self.errors = Counter(f"{prefix}_http_errors", "HTTP requests answered with status >= 400",
                              ["route", "status"], registry=registry)
        self.latency = Histogram(f"{prefix}_http_request_duration_seconds", "Time to answer, by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=registry)
        self.routes = routes
        # (route, method, status): the children a request updates, found with one lookup instead of three
        self.series: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def answered(self, path: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request to ``path``."""
        self.record(route_of(path, self.routes), method, status, seconds)

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        series = self.series.get((route, method, status))
        if series is None:
            code = str(status)
            series = self.series[route, method, status] = (
                self.requests.labels(route, method, code),
                self.errors.labels(route, code) if status >= 400 else None, self.latency.labels(route))
        requests, errors, latency = series
        add(requests, 1)
        if errors is not None:
            add(errors, 1)
        observe(latency, seconds)


MONITOR_COUNTERS = {  # the monitor's run counters (`Monitor.stats` keys), exposed as they are
    "lines": "Log lines read",
    "parsed": "Log lines parsed",
    "rotations": "Log rotations followed (renamed and re-created)",
    "truncations": "Log truncations followed",
    "not_found_skipped": "Requests answered 400/404/410/421, not scored",
    "hostless_skipped": "Paths without a host, after a line that named one (a proxy's log), not scored",
    "dns_names_skipped": "Resolver log lines querying a name that is no site (local, special-use, reverse, "
                         "service, a public suffix, an address, characters no host name holds), not scored",
    "tls_names_skipped": "TLS server names (SNI) in a network monitor's log that are no site, not scored",
    "not_from_home_skipped": "A network monitor's requests not from a home client to an outside server (their "
                             "names are set by others, or are the network's own), not scored",
    "alerts": "Alerts written",
    "ips_checked": "Client and server addresses looked up in the feeds",
    "not_blockable": "Malicious verdicts not blocked (public suffix, reserved or allowlisted)",
    "not_served_not_blocked": "Malicious URLs the site answered without serving them (3xx, 4xx, 5xx) or whose "
                              "verdict rests on a host named before '@': alerted, not blocked",
    "blocklist_writes": "Block list rewrites",
}


class MonitorCollector:
    """Reads a running monitor's counters at scrape time (nothing to update on the hot path)."""

    def __init__(self, prefix: str, stats: Mapping[str, int], malformed: Mapping[str, int],
                 blocked: Mapping[str, Any]) -> None:
        self.prefix, self.stats, self.malformed, self.blocked = prefix, stats, malformed, blocked

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for name, text in MONITOR_COUNTERS.items():
            yield CounterMetricFamily(f"{self.prefix}_{name}", text, value=self.stats.get(name, 0))
        malformed = CounterMetricFamily(f"{self.prefix}_malformed_lines", "Malformed log lines, by reason",
                                        labels=["reason"])
        for reason, count in dict(self.malformed).items():  # a copy: the monitor thread may add a reason
            malformed.add_metric([reason], count)
        yield malformed
        yield GaugeMetricFamily(f"{self.prefix}_blocked_entries", "Entries on the block list",
                                value=len(self.blocked))
