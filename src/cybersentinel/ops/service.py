"""The scoring service: a FastAPI app over the verified model, and the `cybersentinel serve` command.

`POST /v1/score` scores URLs, domains and IPs as text only: nothing submitted is ever fetched or resolved.
The request body is bounded before it is parsed, the batch size after; every refusal is a 4xx with a JSON
body. `GET /` is a small page (assets served from ``cybersentinel/web``, no CDN), `GET /model` its model
card. API keys, if configured, guard everything under /v1; `/healthz` and the static page stay open. Feedback
keys, if configured, are the only keys that read or write analyst corrections (and they score too).

FastAPI and friends are imported inside functions so that `cybersentinel --help` stays fast; for the same
reason the routes are closures over the loaded model instead of module-level globals.
"""

import gc
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

log = logging.getLogger("cybersentinel.ops.service")


ENV = {  # settings a worker process reads from its environment (uvicorn starts workers by import string)
    "model_dir": "CYBERSENTINEL_MODEL_DIR",
    "model_sha256": "CYBERSENTINEL_MODEL_SHA256",  # the SHA-256 of model.json to refuse any other
    "feeds_dir": "CYBERSENTINEL_FEEDS_DIR",
    "metrics_path": "CYBERSENTINEL_METRICS",
    "max_batch": "CYBERSENTINEL_MAX_BATCH",
    "max_body_bytes": "CYBERSENTINEL_MAX_BODY_BYTES",
    "model_source": "CYBERSENTINEL_MODEL_SOURCE",
    "allow_files": "CYBERSENTINEL_ALLOW_FILES",  # os.pathsep-separated
    "block_files": "CYBERSENTINEL_BLOCK_FILES",
    "trusted_hosts": "CYBERSENTINEL_TRUSTED_HOSTS",  # comma-separated
    "prometheus": "CYBERSENTINEL_PROMETHEUS",  # 1/0: Prometheus metrics at /metrics
    "decision_log": "CYBERSENTINEL_DECISION_LOG",  # folder; unset: no decision log
    "log_rotate_rows": "CYBERSENTINEL_DECISION_LOG_ROTATE_ROWS",
    "log_rotate_seconds": "CYBERSENTINEL_DECISION_LOG_ROTATE_SECONDS",
    "log_retention_days": "CYBERSENTINEL_DECISION_LOG_RETENTION_DAYS",
    "feedback_db": "CYBERSENTINEL_FEEDBACK_DB",  # the SQLite feedback store (CYBERSENTINEL_FEEDBACK_DSN: PostgreSQL)
}


API_KEYS_ENV = "CYBERSENTINEL_API_KEYS"  # comma separated; only ever read from the environment
# Comma separated, as the API keys. Set: only these keys list, write or revoke corrections, which act for every user
# at once (a compromised scoring client could otherwise allowlist a phishing site); they score too (the page).
FEEDBACK_KEYS_ENV = "CYBERSENTINEL_FEEDBACK_KEYS"
KEY_ENV = {"api_keys": API_KEYS_ENV, "feedback_keys": FEEDBACK_KEYS_ENV}  # Settings field -> its setting


HTML_HEADERS = {  # the page loads nothing but its own assets and talks only to this origin
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}


SECURITY_HEADERS = [  # on every response; an HTML route sets its own, fuller policy
    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]


API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


GUARD_HEADERS = (*SECURITY_HEADERS, API_CSP)  # what `BrowserGuard` adds to a response that lacks them
GUARD_NAMES = frozenset(name for name, _ in GUARD_HEADERS)


BROWSER_HEADERS = (b"origin", b"sec-fetch-site")  # what `cross_origin` reads (ASGI header names are lower-case)


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
PREFIX = "cybersentinel"  # of every metric name


# metric labels (`route_of`; a ``{...}`` segment stands for any one segment); any other path is "other"
ROUTES = frozenset({"/healthz", "/v1/model", "/v1/score", "/v1/feedback", "/v1/feedback/{feedback_id}/revoke", "/",
                    "/model", "/docs", "/openapi.json", "/metrics"})


# Swagger UI sets inline styles and draws icons from data: URIs; scripts stay files from this origin.
DOCS_HEADERS = {**HTML_HEADERS, "Content-Security-Policy": HTML_HEADERS["Content-Security-Policy"].replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'").replace("img-src 'self'", "img-src 'self' data:")}


INLINE_BATCH = 64  # up to this many URLs are scored on the event loop: cheaper than a thread hop
INLINE_BODY_BYTES = 64 * 1024  # and only from a body this small: 60 URLs of 64 KB held the loop for 1.5 s


# FastAPI's native OpenTelemetry off: this service exports Prometheus metrics and configures no OpenTelemetry
# provider, yet with telemetry on FastAPI asks the global providers on every request whether one was set since
# (~5 us of a one-URL request's CPU). The floor of benchmarks/load_test.py is built the same way.
TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False}


# Scored once at start-up, before `gc.freeze`: each path's one-time costs (numba dispatch, lazy imports) are paid
# then, not by a client. The punycode name that renders as Cyrillic loads confusable_homoglyphs' tables (tens of
# milliseconds, and some 12,000 objects that a collection would otherwise walk for the life of the worker).
WARM_UP = ["https://en.wikipedia.org/wiki/Phishing", "http://192.0.2.1/paypal/login.php", "example.com",
           "http://xn--pple-43d.com/signin", "http://user@[2001:db8::1]/wp-login.php"]


# And one batch of new hosts, for the batch path's kernels (Arrow columns, the host and look-alike kernels): with a
# cold numba cache the first large request of a worker compiled them for seconds (a 1,000-URL batch timed out).
WARM_UP_BATCH = [f"http://warm-up-{i}.example.com/index.html" for i in range(INLINE_BATCH + 1)]


@dataclass(frozen=True)
class Settings:
    model_dir: Path = Path("models")
    feeds_dir: Path | None = Path("data/feeds")
    metrics_path: Path = Path("reports/metrics.json")  # core.files.EVALUATION_RECORD (not imported: pandas)
    max_batch: int = 10_000
    max_body_bytes: int = 4 * 1024 * 1024
    model_source: str = ""  # where model_dir came from, if not from `dvc pull` (an MLflow registry alias)
    model_sha256: str = ""  # the operator's pin of model.json ("": the hash `evaluate` recorded in metrics_path)
    api_keys: tuple[str, ...] = ()
    feedback_keys: tuple[str, ...] = ()  # empty: corrections need a scoring key (or none, without API keys)
    allow_files: tuple[Path, ...] = ()  # allowlists (host names, with their subdomains)
    block_files: tuple[Path, ...] = ()  # local block lists (analyst-confirmed hosts)
    trusted_hosts: tuple[str, ...] = LOCAL_HOSTS  # Host header values answered; `serve` adds the bound address
    prometheus: bool = True  # Prometheus metrics at /metrics
    decision_log: Path | None = None  # folder of the decision log (Parquet); None: off
    log_rotate_rows: int = 1_000_000
    log_rotate_seconds: float = 3600.0
    log_retention_days: float = 30.0
    feedback_db: Path | None = None  # SQLite feedback store (None: CYBERSENTINEL_FEEDBACK_DSN, else the default)
    feedback_check_s: float = 1.0  # how often a process looks for feedback other processes recorded

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        given = {name: env[var] for name, var in ENV.items() if env.get(var)}
        for name in ("max_batch", "max_body_bytes", "log_rotate_rows"):
            if name in given:
                given[name] = int(given[name])
        for name in ("log_rotate_seconds", "log_retention_days"):
            if name in given:
                given[name] = float(given[name])
        if "prometheus" in given:
            given["prometheus"] = given["prometheus"] not in ("0", "false", "False")
        for name in ("model_dir", "feeds_dir", "metrics_path", "decision_log", "feedback_db"):
            if name in given:
                given[name] = Path(given[name])
        for name in ("allow_files", "block_files"):
            if name in given:
                given[name] = tuple(Path(p) for p in given[name].split(os.pathsep) if p)
        if "trusted_hosts" in given:
            given["trusted_hosts"] = tuple(h.strip() for h in given["trusted_hosts"].split(",") if h.strip())
        return cls(**given, **{name: parse_api_keys(env.get(var, ""), var) for name, var in KEY_ENV.items()})

    def to_env(self) -> dict[str, str]:
        """The settings as environment variables, keys excepted (workers inherit those unchanged)."""
        def text(name: str, value: Any) -> str:
            if isinstance(value, bool):
                return "1" if value else "0"
            if isinstance(value, tuple):  # host names (IPv6 included) hold colons: commas separate them
                return ",".join(map(str, value)) if name == "trusted_hosts" else os.pathsep.join(map(str, value))
            return str(value)

        return {var: text(name, getattr(self, name)) for name, var in ENV.items() if getattr(self, name) is not None}


def parse_api_keys(text: str, setting: str = API_KEYS_ENV) -> tuple[str, ...]:
    """Comma-separated keys of ``setting`` (API or feedback keys); unset or empty means no keys. A setting that
    holds only commas and blanks is an error, not an open API."""
    keys = tuple(key.strip() for key in text.split(",") if key.strip())
    if text and not keys:
        raise ValueError(f"{setting} is set but holds no keys; give comma-separated keys, or unset it to "
                         "serve without them")
    return keys


def key_matches(given: str, keys: tuple[str, ...]) -> bool:
    """Constant-time check against every key: digests make the lengths equal, and no early exit."""
    given_digest = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given_digest, hashlib.sha256(key.encode()).digest())
    return matched


def presented_key(headers: Any) -> str | None:
    """The key sent as ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``, blanks around it trimmed alike."""
    if key := (headers.get("x-api-key") or "").strip():
        return key
    scheme, _, token = (headers.get("authorization") or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


WHOLE_NUMBER = re.compile(r"0|[1-9][0-9]*")
FEEDBACK_PAGE = 100  # corrections `GET /v1/feedback` returns when no limit is given
FEEDBACK_PAGE_MAX = 1000  # and at most: the whole store in one answer grew without bound


def whole_number(value: Any) -> Any:
    """A number (a feedback id, a page's cursor or size) as a path or query writes it: ASCII digits, no sign, no
    leading zero; its bounds are the parameter's. Pydantic's lax integers also take `` 1``, ``+1``, ``1.0``,
    ``1_0`` and ``00002``: one row under many names."""
    if not isinstance(value, str) or not WHOLE_NUMBER.fullmatch(value):
        raise ValueError("a whole number written with digits only, without a sign or a leading zero")
    return value


def key_refusal(given: str | None, accepted: tuple[str, ...], scoring_only: tuple[str, ...] = ()
                ) -> tuple[int, str] | None:
    """None when ``given`` is one of the ``accepted`` keys; else 403 when it is one of ``scoring_only`` (a scoring
    key where a feedback key is needed), and 401 when it is no key at all. Both checks are `key_matches`."""
    if given is not None and key_matches(given, accepted):
        return None
    if given is not None and scoring_only and key_matches(given, scoring_only):
        return 403, (f"this key may score but not read or write analyst corrections: send a feedback key "
                     f"({FEEDBACK_KEYS_ENV})")
    return 401, "missing or invalid API key (send X-API-Key or Authorization: Bearer)"


def cross_origin(headers: Any) -> bool:
    """Whether a browser sent this request from another origin: ``Sec-Fetch-Site`` says so, or ``Origin``
    names another host (or ``null``, or nothing that parses) than the ``Host`` it was sent to. Scripts and curl
    send neither."""
    if (headers.get("sec-fetch-site") or "").lower() in ("cross-site", "same-site"):
        return True
    origin = headers.get("origin")
    return origin is not None and origin_host(origin) != (headers.get("host") or "").lower()


def origin_host(origin: str) -> str | None:
    """The ``host[:port]`` an Origin header names, lower-cased; None when it does not parse (``http://[::1``:
    `urlsplit` raises on a malformed IPv6 address), which no Host header equals."""
    from urllib.parse import urlsplit

    try:
        return urlsplit(origin).netloc.lower()
    except ValueError:
        return None


class BrowserGuard:
    """ASGI middleware: security headers on every response, HEAD answered without a body, and any request that
    changes state refused (403) when a browser sends it from another origin without an API key: a page
    elsewhere cannot use a keyless local server (a simple text/plain POST needs no CORS preflight). Then, with
    ``allowed_hosts``, a request whose Host header names none of them is refused (400) as Starlette's
    `TrustedHostMiddleware` refuses it (DNS rebinding: a page on a name that resolves to 127.0.0.1): checked here
    for HTTP, by that middleware itself for other scopes. With ``metrics``, every HTTP request is counted and timed
    there, by the status it was answered with (500 if the app raised before answering). One middleware reading
    the headers once, and wrapping ``send`` once, costs a request less than several."""

    HOSTS_KEPT = 64  # Host header values whose check is remembered (a client choosing new ones is checked anew)

    def __init__(self, app: Any, allowed_hosts: list[str] | None = None, metrics: Any = None):
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        self.app, self.metrics = app, metrics  # metrics: an `HttpMetrics`, or None
        self.trusted = None  # None: every host is answered
        if allowed_hosts is not None:
            # a Host header writes an IPv6 address in brackets (`[::1]:8000`), and Starlette compares it so
            allowed_hosts = [f"[{h}]" if ":" in h and not h.startswith("[") else h for h in allowed_hosts]
            self.trusted = TrustedHostMiddleware(app, allowed_hosts=allowed_hosts, www_redirect=False)
            if self.trusted.allow_any:
                self.trusted = None
        # the few Host values clients send, each checked once (parsing one cost every request a few us)
        self.hosts: dict[bytes | None, bool] = {}

    def host_allowed(self, header: bytes | None) -> bool:
        allowed = self.hosts.get(header)
        if allowed is None:
            allowed = trusted_host(header, self.trusted.allowed_hosts)
            if len(self.hosts) < self.HOSTS_KEPT:  # bounded: a client can send any number of values
                self.hosts[header] = allowed
        return allowed

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await (self.trusted or self.app)(scope, receive, send)
            return
        started, status = time.perf_counter(), 500
        method = scope["method"]
        host, browser = None, False
        for name, value in scope["headers"]:
            if name == b"host":
                if host is None:
                    host = value
            elif name in BROWSER_HEADERS:
                browser = True

        async def guarded_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", [])
                names = {name.lower() for name, _ in headers}
                missing = GUARD_HEADERS if GUARD_NAMES.isdisjoint(names) else [  # most responses set none of them
                    h for h in GUARD_HEADERS if h[0] not in names]
                message = {**message, "headers": [*headers, *missing]}
            elif message["type"] == "http.response.body" and method == "HEAD" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        try:
            # only a request with Origin or Sec-Fetch-Site can be cross-origin: most (scripts, curl) skip the parsing
            if method not in ("GET", "HEAD", "OPTIONS") and browser:
                from starlette.datastructures import Headers

                headers = Headers(scope=scope)
                if cross_origin(headers) and presented_key(headers) is None:
                    body = json.dumps({"detail": "cross-origin request without an API key refused: send X-API-Key "
                                       "or Authorization: Bearer"}).encode()
                    await guarded_send({"type": "http.response.start", "status": 403, "headers": [
                        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                    await guarded_send({"type": "http.response.body", "body": body})
                    return
            if self.trusted is not None and not self.host_allowed(host):
                from starlette.responses import PlainTextResponse

                await PlainTextResponse("Invalid host header", status_code=400)(scope, receive, guarded_send)
                return
            await self.app(scope, receive, guarded_send)
        finally:
            if self.metrics is not None:
                self.metrics.answered(scope["path"], method, status, time.perf_counter() - started)


def trusted_host(header: bytes | None, patterns: list[str]) -> bool:
    """Whether a Host header (its first value, as sent) names an allowed host: `TrustedHostMiddleware`'s test
    (its parse of the header, lower-cased, equal to a pattern or under a ``*.`` one); ``patterns`` lower-case."""
    from starlette._utils import parse_host_header

    parsed = parse_host_header(header.decode("latin-1") if header is not None else None)
    if parsed is None:
        return False
    host = parsed.host.lower()
    return any(host == pattern or (pattern.startswith("*") and host.endswith(pattern[1:])) for pattern in patterns)


def parse_lines(text: str) -> list[str]:
    """A text/plain body: one value per line, lines ending in ``\n``, ``\r\n`` or a bare ``\r``, as `predict` reads
    a text file (`scoring.batch.read_text`; not the other breaks `str.splitlines` knows, such as U+2028 or \x1c,
    which stay part of the value); a final line end does not add an empty row."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if "\r" in text else text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def read_json_file(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text())


def metrics_of_model(metrics: dict[str, Any] | None, model_sha256: str) -> dict[str, Any] | None:
    """The test metrics if `evaluate` wrote them for this very model (its ``model_sha256``), else None: metrics
    of another model, or that name none, are refused (and logged) rather than shown beside this one."""
    if metrics is None:
        return None
    named = metrics.get("model_sha256")
    if named != model_sha256:
        log.warning("test metrics refused: they are of model %s, the served model is %s (rerun `dvc repro "
                    "evaluate` or point --metrics at its reports/metrics.json)", named and named[:12] or "(none named)",
                    model_sha256[:12])
        return None
    return metrics


def model_card(detector: Any, settings: Settings, metrics: dict | None, feeds: dict[str, Any] | None
               ) -> dict[str, Any]:
    """What `GET /v1/model` reports: identity, decision rule, metrics of this model, and the hashes that pin it."""
    from importlib.metadata import version

    manifest = detector.manifest
    metrics = metrics_of_model(metrics, manifest["sha256"])
    hashes = {k: v for k, v in manifest.items() if k.endswith("sha256") or k in ("git_commit", "code_version")}
    return {
        "name": manifest["name"], "version": manifest["sha256"][:12], "model": manifest["model"],
        "dataset": manifest["dataset"], "kind": manifest["kind"], "inputs": manifest["inputs"],
        "features": len(manifest["features"]),
        "threshold": detector.threshold, "suspicious_from": detector.suspicious_from,
        "policy": detector.policy.as_dict(),
        "validation_metrics": manifest.get("validation"), "test_metrics": metrics, "hashes": hashes,
        # where the model came from, never the server's own paths
        "source": settings.model_source or "dvc", "package_version": version("cybersentinel"),
        "feeds": feeds,
        "limits": {"max_batch": settings.max_batch, "max_body_bytes": settings.max_body_bytes},
    }


def feeds_summary(folder: Path) -> dict[str, Any]:
    """The feed files the index was built from, with what feeds.json (`feeds refresh`) recorded about them."""
    from cybersentinel.intel.feeds import FEEDS, MANIFEST

    recorded = (read_json_file(folder / MANIFEST) or {}).get("feeds", {})
    return {name: {k: recorded.get(name, {}).get(k) for k in ("entries", "sha256", "fetched_at", "last_modified")}
            for name, feed in FEEDS.items() if (folder / feed.filename).is_file()}


class LiveDecider:
    """The decision policy with the allow/block list files plus the active analyst feedback. Rebuilt when the
    feedback store changes: at once after this process writes, and otherwise checked at most every
    ``every_s`` seconds (other worker processes, the `cybersentinel feedback` command) in a thread of its own,
    so a slow, locked or unreachable store never holds a request (or the event loop it is scored on): requests
    get the lists last read. An unreachable store keeps the last lists and is logged, never a failed score."""

    def __init__(self, build: Any, store: Any, every_s: float = 1.0):
        self.build, self.store, self.every_s = build, store, every_s
        self.version: tuple[int, int, int] | None = None
        self.checked = float("-inf")
        self.decider = None
        self.reading = threading.Lock()  # one read of the store at a time: a later one never loses to an earlier
        self.pending = False  # a read started by `current` has not ended
        self.refresh()

    def current(self) -> Any:
        if not self.pending and time.monotonic() - self.checked >= self.every_s:
            self.pending = True
            threading.Thread(target=self._refresh_started, name="feedback-lists", daemon=True).start()
        return self.decider

    def _refresh_started(self) -> None:
        try:
            self.refresh()
        finally:
            self.pending = False

    def refresh(self) -> None:
        from cybersentinel.ops.feedback import FeedbackError
        from cybersentinel.scoring.policy import SiteList

        with self.reading:
            self.checked = time.monotonic()
            try:
                version = self.store.version()
                if version != self.version or self.decider is None:
                    allow, block = self.store.site_lists() if version[0] else (SiteList(), SiteList())
                    self.decider, self.version = self.build(allow, block), version
            except FeedbackError as exc:
                log.warning("feedback store unavailable, serving the lists last read: %s", exc)
                if self.decider is None:
                    self.decider = self.build(SiteList(), SiteList())


def create_app(settings: Settings | None = None, detector: Any = None) -> Any:
    """The FastAPI app. Loads and verifies the model (unless given one), indexes the feeds if present, and
    warms both up, so the first request is as fast as the rest."""
    from typing import Literal

    from fastapi import Depends, FastAPI, HTTPException, Query, Request
    from fastapi import Path as PathParam
    from fastapi.concurrency import run_in_threadpool
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from fastapi.utils import is_body_allowed_for_status_code
    from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
    from starlette.background import BackgroundTask
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.routing import Route

    from cybersentinel.ops.api_models import (
        FeedbackList,
        FeedbackResponse,
        Health,
        ModelCard,
        ScoreResponse,
        errors,
    )
    from cybersentinel.ops.blocklist import Guard
    from cybersentinel.ops.feedback import MAX_ID, FeedbackError, FeedbackStore, StoreUnavailableError
    from cybersentinel.scoring.detector import Detector
    from cybersentinel.scoring.policy import read_site_list

    settings = settings or Settings.from_env()
    detector = detector or Detector.from_dir(settings.model_dir, settings.model_sha256, settings.metrics_path)
    index = None
    from cybersentinel.intel.feeds import FEEDS, IntelIndex

    # An empty folder (the image's mount point when nothing is mounted) is the same as none.
    if settings.feeds_dir is not None and any((settings.feeds_dir / f.filename).is_file() for f in FEEDS.values()):
        index = IntelIndex.from_dir(settings.feeds_dir)
    else:
        log.warning("no feed files in %s: scores are the model's alone (run `cybersentinel feeds refresh`)",
                    settings.feeds_dir)
    file_allow = read_site_list(settings.allow_files, [], "allowlist")
    file_block = read_site_list(settings.block_files, [], "local block list")
    # what a client's host-wide correction may not touch, as `blocklist export` guards its rules
    guard = Guard(file_allow, detector.popularity, addresses=detector.resolvers)
    store = FeedbackStore.from_env(path=settings.feedback_db)
    live = LiveDecider(lambda allow, block: detector.decider(index, file_allow.merged(allow), file_block.merged(block)),
                       store, settings.feedback_check_s)
    card = model_card(detector, settings, read_json_file(settings.metrics_path),
                      feeds_summary(settings.feeds_dir) if index is not None else None)
    model_ref = {"name": card["name"], "version": card["version"]}
    web = Path(__file__).with_name("web")
    registry = scoring_metrics = http_metrics = decision_log = None
    if settings.prometheus:
        from prometheus_client import CollectorRegistry

        from cybersentinel.ops.metrics import HttpMetrics, ScoringMetrics

        registry = CollectorRegistry()  # this app's own: never the library's process-wide default
        scoring_metrics = ScoringMetrics(registry, PREFIX, card["name"], card["version"])
        http_metrics = HttpMetrics(registry, PREFIX, ROUTES)
    if settings.decision_log is not None:
        from cybersentinel.ops.decisions import DecisionLog, LogSettings

        decision_log = DecisionLog(LogSettings(settings.decision_log, settings.log_rotate_rows,
                                               settings.log_rotate_seconds, settings.log_retention_days),
                                   detector.manifest["sha256"])

    def score_values(values: list[str], observe: bool = True) -> list[dict[str, Any]]:
        """One result per value, in order: the detector's columns (score, verdict, reasons, error, and with
        feeds model_score and feeds), passed through as they are, after the value itself."""
        results = detector.score_records(values, decider=live.current())
        if observe:
            observe_results(results)
        return results

    def observe_results(results: list[dict[str, Any]]) -> None:
        """Count the results in the metrics and write them to the decision log."""
        if scoring_metrics is not None:
            scoring_metrics.observe(results)
        if decision_log is not None:
            decision_log.record(results)

    score_values(WARM_UP, observe=False)
    score_values(WARM_UP_BATCH, observe=False)

    class ScoreRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        urls: list[str] = Field(min_length=1, max_length=settings.max_batch,
                                description="URLs, domains or IP addresses, as text; none is fetched")

    class FeedbackRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        url: str = Field(min_length=1, max_length=65_536, description="the URL, domain or IP the verdict was about")
        kind: Literal["false_positive", "confirmed_malicious"]
        scope: Literal["url", "host"] = Field("url", description="this URL only, or its host with its subdomains")
        note: str = Field("", max_length=2000, description="why (optional)")
        analyst: str = Field(min_length=1, max_length=200, description="who says so")

    class RevokeRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        analyst: str = Field(min_length=1, max_length=200)
        reason: str = Field(min_length=1, max_length=2000)

    any_json = TypeAdapter(Any)

    class AsciiJSONResponse(JSONResponse):
        # pydantic-core's encoder: cheaper than json.dumps (`benchmarks/request_cpu.py --kind app`, session 18: 34-39
        # against 36-44 ms CPU per 1,000-URL request). No lone surrogate reaches it: the request parser refuses one
        # as invalid JSON (400).
        def render(self, content: Any) -> bytes:
            return any_json.dump_json(content, ensure_ascii=True)

    # FastAPI's own error handlers (HTTPException, 404/405, request validation), answering in ASCII JSON as the
    # routes do: FastAPI's would echo a client's non-ASCII input (``?active=é``) as raw UTF-8.
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        if not is_body_allowed_for_status_code(exc.status_code):
            return Response(status_code=exc.status_code, headers=exc.headers)
        return AsciiJSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    async def validation_error(_: Request, exc: RequestValidationError) -> AsciiJSONResponse:
        return AsciiJSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)

    # A feedback key also scores (analysts use the page); without API keys scoring is open whatever it is. Without
    # feedback keys, corrections take a scoring key, as before they existed.
    scoring_keys = (*settings.api_keys, *settings.feedback_keys) if settings.api_keys else ()
    correcting_keys = settings.feedback_keys or settings.api_keys
    score_only_keys = settings.api_keys if settings.feedback_keys else ()  # 403 on the feedback routes

    def check_key(request: Request, accepted: tuple[str, ...], scoring_only: tuple[str, ...] = ()) -> None:
        if refused := key_refusal(presented_key(request.headers), accepted, scoring_only):
            status, text = refused
            raise HTTPException(status, text, headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)

    async def require_key(request: Request) -> None:  # async: a sync dependency would cost a thread hop
        if scoring_keys:
            check_key(request, scoring_keys)

    async def require_feedback_key(request: Request) -> None:
        if correcting_keys:
            check_key(request, correcting_keys, score_only_keys)

    async def read_body(request: Request) -> bytes:
        """The body, refused with 413 as soon as it is known to exceed the limit (before any parsing)."""
        limit = settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, f"request body larger than {limit} bytes; send fewer URLs per request")
        # ASGI messages read as `Request.stream` reads them, without its async generator (a few us a request)
        chunks, size, more = [], 0, True
        while more:
            message = await request.receive()
            if message["type"] == "http.disconnect":  # the client left mid-body: nothing to score, nobody to answer
                from cybersentinel.ops.http_timeouts import BODY_TIMED_OUT

                if request.scope.get(BODY_TIMED_OUT):  # `serve`'s protocol answered 408 and closed: count it so
                    raise HTTPException(408, "request body not received within the body timeout")
                raise HTTPException(400, "client disconnected before the request body was complete")
            if message["type"] != "http.request":
                continue
            chunk, more = message.get("body", b""), message.get("more_body", False)
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"request body larger than {limit} bytes; send fewer URLs per request")
            chunks.append(chunk)
        return b"".join(chunks)

    def parse_request(body: bytes, content_type: str) -> list[str]:
        media_type = content_type.partition(";")[0].strip().lower()
        if media_type == "text/plain":
            try:
                values = parse_lines(body.decode("utf-8-sig"))  # a leading BOM is no part of the first URL
            except UnicodeDecodeError as exc:
                raise HTTPException(400, f"text/plain body is not UTF-8: {exc}") from None
            if not values:
                raise HTTPException(422, "empty body: send one URL, domain or IP address per line")
            if len(values) > settings.max_batch:
                raise HTTPException(422, f"{len(values)} lines; at most {settings.max_batch} per request")
            return values
        if media_type not in ("application/json", ""):
            raise HTTPException(415, "send application/json ({\"urls\": [...]}) or text/plain (one per line)")
        try:
            return ScoreRequest.model_validate_json(body).urls
        except ValidationError as exc:
            problems = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()[:20]]
            status = 400 if any(e["type"] == "json_invalid" for e in problems) else 422
            raise HTTPException(status, problems) from None

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        if decision_log is not None:  # the open file is finished and renamed into place
            decision_log.close()

    # redirect_slashes off: Starlette builds that redirect from the Host header the client sent.
    app = FastAPI(title="CyberSentinel", version=card["package_version"], docs_url=None, redoc_url=None,
                  default_response_class=AsciiJSONResponse, redirect_slashes=False, lifespan=lifespan,
                  telemetry=TELEMETRY_OFF,
                  exception_handlers={StarletteHTTPException: http_error, RequestValidationError: validation_error},
                  description="Scores URLs, domains and IP addresses as text. Nothing submitted is fetched.")
    app.state.decision_log = decision_log
    # Without keys the check is a no-op: leaving the dependency out saves FastAPI's per-request solving of it.
    # The /v1 routes are the app's own, not an included APIRouter: matching through one cost ~10 us a request.
    keyed = [Depends(require_key)] if scoring_keys else []
    feedback_keyed = [Depends(require_feedback_key)] if correcting_keys else []
    # A Host header we do not serve is refused (DNS rebinding: a page on a name that resolves to 127.0.0.1), and so
    # is a browser's cross-origin request without a key; every answer gets the security headers (`BrowserGuard`).
    # It also counts every request in the HTTP metrics: one middleware, not two, on the path of each request.
    app.add_middleware(BrowserGuard, allowed_hosts=list(settings.trusted_hosts), metrics=http_metrics)
    declare_key_schemes(app, {require_key: KEY_SCHEMES,
                              require_feedback_key: FEEDBACK_KEY_SCHEMES if settings.feedback_keys else KEY_SCHEMES})

    # Response schemas document the routes without validating each answer (see ops/api_models.py).
    @app.get("/healthz", response_model=None, responses={200: {"model": Health}, **errors()})
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", **model_ref, "intel": index is not None}

    app.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)  # as GET, without a body

    @app.get("/v1/model", dependencies=keyed, response_model=None, responses={200: {"model": ModelCard}, **errors(401)})
    async def model_info() -> dict[str, Any]:
        return card

    @app.post("/v1/score", dependencies=keyed, response_model=None,
              responses={200: {"model": ScoreResponse}, **errors(400, 401, 403, 408, 413, 415, 422)},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": ScoreRequest.model_json_schema()},
                  "text/plain": {"schema": {"type": "string"}}}}})
    async def score(request: Request) -> AsciiJSONResponse:
        body = await read_body(request)
        values = parse_request(body, request.headers.get("content-type", ""))
        if len(values) <= INLINE_BATCH and len(body) <= INLINE_BODY_BYTES:  # observed once the answer is sent
            results = score_values(values, observe=False)
            return AsciiJSONResponse({"model": model_ref, "count": len(results), "results": results},
                                     background=ObserveLater(results))
        # a large batch scores in a thread, so health checks and small requests are not held up behind it
        results = await run_in_threadpool(score_values, values)
        return AsciiJSONResponse({"model": model_ref, "count": len(results), "results": results})

    class ObserveLater(BackgroundTask):
        # The response awaits it once sent. Not `BackgroundTask(func, ...)`: that asks `inspect` on every request
        # whether func is async, and awaits it through a second coroutine.
        def __init__(self, results: list[dict[str, Any]]) -> None:
            self.results = results

        async def __call__(self) -> None:
            observe_results(self.results)

    async def score_route(request: Request) -> AsciiJSONResponse:
        if scoring_keys:
            await require_key(request)
        return await score(request)

    # POST /v1/score is answered by a plain Starlette route placed before FastAPI's: the same function, the same
    # key check and the same exception handlers (the app's), without FastAPI's per-request dependency solving and
    # response handling (~15-25 us of a one-URL request's CPU). The FastAPI route stays for the OpenAPI schema.
    app.router.routes.insert(0, Route("/v1/score", score_route, methods=["POST"], include_in_schema=False))

    def parse_json(body: bytes, content_type: str, model: Any) -> Any:
        if content_type.partition(";")[0].strip().lower() not in ("application/json", ""):
            raise HTTPException(415, "send application/json")
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            problems = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()[:20]]
            raise HTTPException(400 if any(e["type"] == "json_invalid" for e in problems) else 422, problems) from None

    def store_call(action: Any) -> Any:
        try:
            return action()
        except StoreUnavailableError as exc:  # where the store is and why it failed is the operator's, not a client's
            log.warning("%s", exc)
            raise HTTPException(503, "the feedback store is unavailable; try again later") from None
        except FeedbackError as exc:
            text = str(exc)
            status = 404 if text.startswith("no feedback #") else 409 if "already revoked" in text else 422
            raise HTTPException(status, text) from None

    migrated: list[bool] = []  # the schema is created (or checked) once per process, on the first write

    def record_feedback(request: FeedbackRequest) -> tuple[Any, bool, str]:
        if not migrated:
            store.migrate()
            migrated.append(True)
        # the verdict the analyst is correcting, as this model gave it (not traffic: no metrics, no decision log)
        seen = score_values([request.url], observe=False)[0]
        item, created = store.add(request.url, request.kind, request.scope, request.analyst, request.note,
                                  seen.get("verdict") or None, seen.get("score"), model_ref["version"], guard)
        live.refresh()  # this process applies it at once; the others within feedback_check_s
        now = score_values([request.url], observe=False)[0]
        return item, created, f"now {now.get('verdict') or 'not scorable'}: {now.get('reasons') or 'model score'}"

    feedback_body = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": FeedbackRequest.model_json_schema()}}}}

    @app.post("/v1/feedback", dependencies=feedback_keyed, status_code=201, response_model=None,
              openapi_extra=feedback_body,
              responses={201: {"model": FeedbackResponse, "description": "recorded"},
                         200: {"model": FeedbackResponse, "description": "already recorded: nothing written"},
                         **errors(400, 401, 403, 408, 413, 415, 422, 503)})
    async def feedback(request: Request) -> AsciiJSONResponse:
        """Mark a verdict as a false positive or confirm it as malicious. Takes effect at once: a false positive
        allowlists the URL (or host), a confirmation puts it on the local block list; it also trains the next
        model. Attributable (analyst, time, note) and reversible (revoke)."""
        given = parse_json(await read_body(request), request.headers.get("content-type", ""), FeedbackRequest)
        item, created, effect = await run_in_threadpool(store_call, lambda: record_feedback(given))
        return AsciiJSONResponse({"feedback": item.as_dict(), "created": created, "effect": effect},
                                 status_code=201 if created else 200)

    # a number as written is checked first (`whole_number`); Path or Query before it, or the schema says "ge", not
    # "minimum"; the cursor at most the highest id either store holds (beyond it a driver overflows, not "no rows")
    @app.get("/v1/feedback", dependencies=feedback_keyed, response_model=None,
             responses={200: {"model": FeedbackList}, **errors(401, 403, 422, 503)})
    async def feedback_list(
        active: bool = False,
        after: Annotated[int, Query(ge=0, le=MAX_ID, description="list the corrections after this id (the "
                                    "previous page's `next_after`); 0: from the first"), BeforeValidator(whole_number)
                         ] = 0,
        limit: Annotated[int, Query(ge=1, le=FEEDBACK_PAGE_MAX, description="at most this many corrections"),
                         BeforeValidator(whole_number)] = FEEDBACK_PAGE,
    ) -> AsciiJSONResponse:
        """The corrections in id order, revoked ones included (``active=true``: only those in effect), a page at a
        time: ``next_after`` is the cursor of the next page, null on the last."""
        # one row beyond the page says whether another page follows
        items = await run_in_threadpool(store_call, lambda: store.list(active_only=active, after=after,
                                                                       limit=limit + 1))
        page = items[:limit]
        return AsciiJSONResponse({"count": len(page), "feedback": [i.as_dict() for i in page],
                                  "next_after": page[-1].id if len(items) > limit else None})

    @app.post("/v1/feedback/{feedback_id}/revoke", dependencies=feedback_keyed, response_model=None,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": RevokeRequest.model_json_schema()}}}},
              responses={200: {"model": FeedbackResponse}, **errors(400, 401, 403, 404, 408, 409, 413, 415, 422, 503)})
    async def feedback_revoke(feedback_id: Annotated[int, PathParam(ge=1), BeforeValidator(whole_number)],
                              request: Request) -> AsciiJSONResponse:
        """Retract a correction: the row stays, marked with who revoked it, when and why."""
        given = parse_json(await read_body(request), request.headers.get("content-type", ""), RevokeRequest)

        def revoke() -> Any:
            item = store.revoke(feedback_id, given.analyst, given.reason)
            live.refresh()
            return item

        item = await run_in_threadpool(store_call, revoke)
        return AsciiJSONResponse({"feedback": item.as_dict(), "created": False, "effect": "revoked"})

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(web / "index.html", headers=HTML_HEADERS)

    @app.get("/model", include_in_schema=False)
    async def model_page() -> FileResponse:
        return FileResponse(web / "model.html", headers=HTML_HEADERS)

    @app.get("/docs", include_in_schema=False)
    async def docs_page() -> FileResponse:  # Swagger UI from web/swagger/, never a CDN
        return FileResponse(web / "docs.html", headers=DOCS_HEADERS)

    app.mount("/static", StaticFiles(directory=web), name="static")
    if registry is not None:
        from cybersentinel.ops.metrics import CONTENT_TYPE, exposition

        @app.get("/metrics", include_in_schema=False)
        def metrics() -> Response:  # sync: a multiprocess scrape reads files, off the event loop
            return Response(exposition(registry), media_type=CONTENT_TYPE)

    # Everything built so far (modules, model, feeds) lives as long as the process: moved out of the
    # collector's reach, a full collection no longer walks it (it took over 100 ms in a worker).
    gc.freeze()
    return app


KEY_SCHEMES = {"APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
               "HTTPBearer": {"type": "http", "scheme": "bearer"}}
# The same two headers carrying a feedback key: the routes that read or write corrections take no other key.
FEEDBACK_KEY_SCHEMES = {
    "FeedbackKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                          "description": f"a feedback key ({FEEDBACK_KEYS_ENV}); a scoring key gets 403"},
    "FeedbackBearer": {"type": "http", "scheme": "bearer",
                       "description": f"a feedback key ({FEEDBACK_KEYS_ENV}); a scoring key gets 403"}}


def declare_key_schemes(app: Any, schemes_of: dict[Any, dict[str, Any]]) -> None:
    """Name the key headers in the OpenAPI document: an operation whose route depends on one of ``schemes_of``'s
    key checks requires one of that check's schemes (either header), so the document follows the routes' own
    dependencies; a route without a check (no keys configured) requires none. Declared here rather than as
    FastAPI security dependencies, which would run per request."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema, declared = build(), {}
            for route in app.routes:
                checks = [d.dependency for d in getattr(route, "dependencies", ()) if d.dependency in schemes_of]
                if not checks or not route.include_in_schema:
                    continue
                schemes = schemes_of[checks[0]]
                declared.update(schemes)
                for method, operation in schema["paths"][route.path_format].items():
                    if method.upper() in route.methods:
                        operation["security"] = [{name: []} for name in schemes]
            if declared:
                schema.setdefault("components", {})["securitySchemes"] = declared
        return app.openapi_schema

    app.openapi = openapi


def column_values(column: Any) -> list[Any]:
    """An Arrow column as a Python list; a dictionary column by indexing its few distinct values, which is
    much cheaper than ``to_pylist`` turning every row into a new string."""
    import pyarrow as pa

    if pa.types.is_dictionary(column.type) and column.null_count == 0:
        words = column.dictionary.to_pylist()
        return [words[i] for i in column.indices.to_pylist()]
    return column.to_pylist()


def app_from_env() -> Any:
    """Factory for uvicorn worker processes: settings come from the environment `serve` prepared."""
    return create_app(Settings.from_env())


@dataclass(frozen=True)
class ServerLimits:
    """What a slow or numerous crowd of clients can hold: seconds to send a request's headers, then its body,
    seconds an idle kept-alive connection stays open, and connections (or requests in progress) before new
    requests get 503."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0  # a full 4 MiB body at ~140 KB/s
    keep_alive: int = 5
    max_connections: int = 900  # below the usual 1,024 open files a process may have


def server_options(host: str, port: int, *, access_log: bool, log_level: str, limits: ServerLimits) -> dict[str, Any]:
    """uvicorn's settings for `serve` (and for the floor of `benchmarks/load_test.py`, the same stack): the
    protocol with header and body deadlines (it reads ``CYBERSENTINEL_HEADER_TIMEOUT`` and
    ``CYBERSENTINEL_BODY_TIMEOUT``), keep-alive and concurrency limits."""
    from cybersentinel.ops.http_timeouts import RequestDeadlineProtocol

    return {"host": host, "port": port, "access_log": access_log, "log_level": log_level, "server_header": False,
            "timeout_keep_alive": limits.keep_alive, "limit_concurrency": limits.max_connections,
            "http": RequestDeadlineProtocol}


def run(application: Any, settings: Settings, *, host: str, port: int, workers: int, access_log: bool,
        log_level: str, limits: ServerLimits = ServerLimits()) -> None:  # noqa: B008 (frozen, so shared safely)
    """Run uvicorn: one process serves ``application``; with more workers each builds its own from the
    environment (one model copy per process; the GIL would serialise threads anyway)."""
    import uvicorn

    from cybersentinel.ops.http_timeouts import BODY_TIMEOUT_ENV, HEADER_TIMEOUT_ENV

    if not settings.api_keys and host not in LOCAL_HOSTS:
        log.warning("serving on %s without API keys: set %s to require them", host, API_KEYS_ENV)
    if settings.api_keys and not settings.feedback_keys:
        log.warning("%s is not set: any client with a scoring key can write and revoke analyst corrections, which "
                    "allow or block URLs for every user at once; set it to require a separate feedback key",
                    FEEDBACK_KEYS_ENV)
    os.environ[HEADER_TIMEOUT_ENV] = str(limits.header_timeout)  # read by the protocol, in every worker
    os.environ[BODY_TIMEOUT_ENV] = str(limits.body_timeout)
    options = server_options(host, port, access_log=access_log, log_level=log_level, limits=limits)
    if application is not None:
        uvicorn.run(application, **options)
        return
    import tempfile

    from cybersentinel.ops import workers as balanced
    from cybersentinel.ops.metrics import MULTIPROC_ENV

    os.environ.update(settings.to_env())  # worker processes rebuild the app from these
    with tempfile.TemporaryDirectory(prefix="cybersentinel-metrics-") as shared:
        if settings.prometheus:  # workers write their metrics to files here; /metrics adds them up
            os.environ.setdefault(MULTIPROC_ENV, shared)
        if workers > 1 and balanced.supported():  # connections handed to the workers in turn
            code = balanced.serve(options, workers)
            if code:
                raise SystemExit(code)
            return
        uvicorn.run(balanced.APP, factory=True, workers=workers, **options)
