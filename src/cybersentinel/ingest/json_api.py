"""Paginated JSON HTTP APIs (threat-intel APIs of the URLhaus/ThreatFox kind) as an ingest source.

Page-number or cursor pagination bounded by ``max_pages`` (an API that keeps paginating is an error, not
an endless loop), a client-side rate limit, bounded retries with exponential backoff (honouring
``Retry-After``) for 429/5xx, timeouts, pages (their headers too) still arriving at ``page_deadline_s``
(``timeout_s`` bounds each socket read, not the page), cut-short, unparsable or checksum-failing bodies, and a
record of every request: what was fetched, when, its status and the sha256 of its body (URL credentials redacted).
Next-page links (absolute or relative) and redirects are followed only on the configured API's own origin,
so the token never leaves it; a looping API (a repeated link or cursor, a page repeating an earlier one) and
a response over ``max_response_bytes`` are errors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

import pandas as pd

from cybersentinel.core.redact import redact
from cybersentinel.core.retry import (
    RETRY_STATUSES,
    BodyLateError,
    BodyTooLargeError,
    bounded_body,
    http_session,
    retry_after_seconds,
    retry_call,
)
from cybersentinel.ingest.base import Ingested, SourceError, require_characters, tidy, utc_now
from cybersentinel.ingest.database import infer_types
from cybersentinel.ingest.fingerprint import Fingerprint

if TYPE_CHECKING:  # requests is imported where a request is made
    import requests

API_URL_ENV = "CYBERSENTINEL_API_URL"
API_TOKEN_ENV = "CYBERSENTINEL_API_TOKEN"  # noqa: S105 (the variable's name, not a token)
MAX_RESPONSE_BYTES = 64 << 20  # default source.max_response_bytes: one page never fills the memory
# default source.page_deadline_s: a page still arriving this long after its request is retried as a timeout is
# (timeout_s bounds each socket read, so a server sending a byte a second would never time out)
PAGE_DEADLINE_S = 300.0
MAX_REDIRECTS = 5
DEFAULT_PORTS = {"http": 80, "https": 443}
# A next-page value starting so is a link (resolved against the page's URL); anything else is a cursor token
# (`pagination.next_is` says which when the API's tokens may start so: standard base64 may begin with "/").
LINK_PREFIXES = ("http://", "https://", "/", "?", "./", "../")

log = logging.getLogger(__name__)


class PageDeadlineError(Exception):
    """A page still arriving at its deadline (``source.page_deadline_s``)."""


class _RetryableError(Exception):
    def __init__(self, problem: str, retry_after: float | None = None):
        super().__init__(problem)
        self.retry_after = retry_after


def api_url(source_name: str, spec: Mapping[str, Any]) -> str:
    """The first page's URL: ``$CYBERSENTINEL_API_URL`` (or ``url_env``) if set, else ``source.url``;
    ``{source}`` in it becomes the dataset source's name."""
    template = os.environ.get(spec.get("url_env") or API_URL_ENV) or spec.get("url")
    if not template:
        raise SourceError(f"json_api source {source_name}: set source.url or {spec.get('url_env') or API_URL_ENV}")
    url = template.replace("{source}", source_name)
    if urlsplit(url).scheme not in ("http", "https"):
        raise SourceError(f"json_api source {source_name}: {redact(url)!r} is not an http(s) URL")
    return url


def origin_of(url: str) -> tuple[str, str, int] | None:
    """Scheme, host and port (default filled in) that a link must share with the API; None if unparsable, or if
    it holds a backslash, white space or a control character: parsers disagree on where such a host ends
    (``http://127.0.0.1:9\\@api.example/`` is api.example to `urlsplit` but 127.0.0.1:9 to the HTTP client,
    which would carry the API's token there)."""
    if "\\" in url or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    except ValueError:  # a broken IPv6 host, a port that is not a number or out of range: on no origin
        return None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def join_link(base: str, link: str) -> str:
    """``link`` resolved against ``base``; an unparsable one as it is (`origin_of` then rejects it)."""
    try:
        return urljoin(base, link)
    except ValueError:
        return link


def shown(url: str, params: Mapping[str, Any]) -> str:
    """The page's URL with its query as sent, credentials redacted: how messages and the fetch log name it."""
    query = urlencode(dict(params))
    return redact(f"{url}{'&' if '?' in url else '?'}{query}" if query else url)


def dig(payload: Any, path: str | None) -> Any:
    """``payload["a"]["b"]`` for the dotted ``path`` "a.b" (``None``: the payload itself)."""
    for part in path.split(".") if path else ():
        payload = payload.get(part) if isinstance(payload, Mapping) else None
    return payload


class RateLimiter:
    """At most ``per_second`` request starts per second (``None``: no limit)."""

    def __init__(self, per_second: float | None):
        self.interval = 1.0 / per_second if per_second else 0.0
        self.next_at = 0.0

    def wait(self) -> None:
        now = time.monotonic()
        if now < self.next_at:
            time.sleep(self.next_at - now)
        self.next_at = max(now, self.next_at) + self.interval


def _get_on_origin(session, url: str, params: Mapping[str, Any], headers: Mapping[str, str],
                   timeout: float) -> requests.Response:
    """The streamed response to GET ``url``, following at most MAX_REDIRECTS redirects, all on ``url``'s origin:
    requests would follow any and strip only ``Authorization``, so the token header would reach another host."""
    origin = origin_of(url)
    for _ in range(MAX_REDIRECTS + 1):
        response = session.get(url, params=params, headers=headers, timeout=timeout, allow_redirects=False,
                               stream=True)
        if not response.is_redirect:
            return response
        response.close()
        target = join_link(response.url, response.headers["Location"])
        if origin is None or origin_of(target) != origin:
            raise SourceError(f"{redact(response.url)}: redirected to {redact(target)}, off the API's origin")
        url, params = target, {}  # the Location carries its own query
    raise SourceError(f"{redact(response.url)}: more than {MAX_REDIRECTS} redirects")


def _late(seconds: float, received: int | None = None) -> PageDeadlineError:
    got = f"{received:,} bytes by then" if received is not None else "headers incomplete by then"
    return PageDeadlineError(f"page still arriving after source.page_deadline_s={seconds:g} ({got})")


def _read_capped(response, limit: int, deadline: float, seconds: float) -> bytes:
    """The (decoded) body, failing as soon as it passes ``limit`` bytes rather than after reading it all, or when
    it is still arriving at ``deadline`` (`time.monotonic`; ``seconds`` after the request, for the message)."""
    try:
        return b"".join(bounded_body(response, limit, deadline))
    except BodyTooLargeError:
        raise SourceError(f"{redact(response.url)}: the response is larger than source.max_response_bytes={limit}"
                          ) from None
    except BodyLateError as late:
        raise _late(seconds, late.received) from late


def _get_once(session, url: str, params: Mapping[str, Any], headers: Mapping[str, str],
              spec: Mapping[str, Any], fetch: dict[str, Any]) -> Any:
    """One request; raises _RetryableError for what another try may fix, SourceError for what it cannot."""
    import requests

    from cybersentinel.core.http_deadline import http_deadline

    started = time.monotonic()
    seconds = float(spec.get("page_deadline_s", PAGE_DEADLINE_S))
    deadline = started + seconds
    try:
        # the deadline covers connecting and the headers too: a server trickling them never trips timeout_s
        with http_deadline(deadline), _get_on_origin(session, url, params, headers,
                                                     float(spec.get("timeout_s", 30))) as response:
            body = _read_capped(response, int(spec.get("max_response_bytes", MAX_RESPONSE_BYTES)), deadline, seconds)
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError, PageDeadlineError) as exc:  # cut short, garbled or slow: again
        if not isinstance(exc, PageDeadlineError) and time.monotonic() >= deadline:  # the headers' read timed out
            exc = _late(seconds)
        fetch.update(error=type(exc).__name__, elapsed_s=round(time.monotonic() - started, 3))
        raise _RetryableError(f"{type(exc).__name__}: {exc}") from exc
    fetch.update(url=redact(response.url), status=response.status_code, bytes=len(body),
                 sha256=hashlib.sha256(body).hexdigest(), elapsed_s=round(time.monotonic() - started, 3))
    if response.status_code in RETRY_STATUSES:
        raise _RetryableError(f"HTTP {response.status_code}", retry_after_seconds(response.headers.get("Retry-After")))
    if response.status_code != 200:
        raise SourceError(f"{redact(response.url)}: HTTP {response.status_code} {response.reason}: {body[:200]!r}")
    if header := spec.get("checksum_header"):
        expected = response.headers.get(header)
        if not expected:  # an unverifiable body is as untrustworthy as a wrong one (a proxy may drop it: retry)
            raise _RetryableError(f"no {header} header to check the body against")
        if expected.strip().lower() != fetch["sha256"]:
            raise _RetryableError(f"body does not match its {header} checksum")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # typically a body cut short
        raise _RetryableError(f"invalid JSON ({exc})") from exc


def get_json(session, url: str, params: Mapping[str, Any], headers: Mapping[str, str], spec: Mapping[str, Any],
             limiter: RateLimiter, fetches: list[dict[str, Any]]) -> Any:
    """GET one page, retrying with exponential backoff (or Retry-After) up to ``retries`` more times."""
    def attempt() -> Any:
        limiter.wait()
        fetch: dict[str, Any] = {"url": redact(url), "params": dict(params), "attempt": len(fetches) + 1 - first,
                                 "fetched_at": utc_now()}
        fetches.append(fetch)
        try:
            return _get_once(session, url, params, headers, spec, fetch)
        except _RetryableError as exc:
            fetch["error"] = redact(str(exc))
            raise

    first = len(fetches)
    return retry_call(attempt, what=shown(url, params), attempts=int(spec.get("retries", 4)) + 1,
                      backoff=float(spec.get("backoff_s", 0.5)), max_delay=float(spec.get("max_backoff_s", 30)),
                      transient=(_RetryableError,), error=SourceError,
                      wait_hint=lambda exc: getattr(exc, "retry_after", None))


def iter_pages(source_name: str, spec: Mapping[str, Any], session=None,
               fetches: list[dict[str, Any]] | None = None) -> Iterator[list[dict[str, Any]]]:
    """The records of each page in order, until the API says there are no more (or max_pages is passed).

    Page style stops at an empty page, or at a short one once a full page showed the API serves ``page_size``
    records a page: an API that caps the size lower never sends a full page, so it is read to an empty one.
    A page whose ``end_when.field`` equals ``end_when.equals`` ends the read too: some APIs answer past the last
    page with a status and no records field (URLhaus: ``{"query_status": "no_results"}``), which is otherwise an
    error, since a page without its records could as well be an error page sent with HTTP 200.
    A request repeating an earlier one (a looping link or cursor), or a non-empty page holding the same
    records as an earlier page (an API ignoring ``page_param``), is an error at once."""
    first = api_url(source_name, spec)
    origin = origin_of(first)
    session = session or http_session(retries=0)  # retried here (`get_json`); its requests keep page_deadline_s
    fetches = fetches if fetches is not None else []
    headers = {"Accept": "application/json", "User-Agent": "cybersentinel-ingest/1"}
    token = os.environ.get(spec.get("token_env") or API_TOKEN_ENV)
    if token:
        headers[spec.get("auth_header") or "Auth-Key"] = token
    paging = spec.get("pagination") or {}
    style, size = paging.get("style", "page"), paging.get("page_size")
    size_params = {paging.get("size_param", "limit"): size} if size else {}
    max_pages = int(spec.get("max_pages", 1000))
    limiter = RateLimiter(spec.get("rate_limit_per_s"))
    url, params = first, dict(size_params)
    if style == "page":
        params[paging.get("page_param", "page")] = int(paging.get("first_page", 1))
    elif style != "cursor":
        raise SourceError(f"json_api source {source_name}: pagination.style must be 'page' or 'cursor', not {style!r}")
    next_is = paging.get("next_is", "auto")
    if next_is not in ("auto", "link", "cursor"):
        raise SourceError(f"json_api source {source_name}: pagination.next_is must be 'auto', 'link' or 'cursor', "
                          f"not {next_is!r}")
    end = spec.get("end_when")
    if end is not None and not (isinstance(end, Mapping) and isinstance(end.get("field"), str) and end["field"]
                                and "equals" in end):
        raise SourceError(f"json_api source {source_name}: end_when must be {{field: <dotted path>, equals: <value>}}, "
                          f"not {end!r}")
    requested: dict[str, int] = {}  # each page's request (as sent, unredacted) -> its page number
    contents: dict[bytes, int] = {}  # digest of each non-empty page's records -> its page number
    full_page_seen = False
    for pages in range(1, max_pages + 2):
        page, sent = shown(url, params), f"{url}\0{urlencode(dict(params))}"
        if pages > max_pages:
            raise SourceError(f"json_api source {source_name}: {redact(first)} still has more pages after max_pages="
                              f"{max_pages}; raise source.max_pages if the data really are that large")
        # compared as sent: shown, a `pageToken` or `startkey` is redacted, and every page would look the same
        if sent in requested:
            raise SourceError(f"json_api source {source_name}: {page} page {pages}: the API's next link or cursor "
                              f"repeats page {requested[sent]}'s, so it would loop")
        requested[sent] = pages
        payload = get_json(session, url, params, headers, spec, limiter, fetches)
        if end is not None and dig(payload, end["field"]) == end["equals"]:
            fetches[-1]["records"] = 0  # the API's own word for "no more" (URLhaus: query_status no_results)
            return
        records = dig(payload, spec.get("records_field"))
        if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
            raise SourceError(f"json_api source {source_name}: {page} page {pages}: expected a list of "
                              f"objects at {spec.get('records_field') or 'the top level'}, "
                              f"got {type(records).__name__}")
        require_characters(records, f"json_api source {source_name}: {page} page {pages}")
        if records:
            digest = hashlib.sha256(json.dumps(records).encode()).digest()  # one server, one key order
            if digest in contents:
                raise SourceError(f"json_api source {source_name}: {page} page {pages}: the same records as page "
                                  f"{contents[digest]} (does the API ignore the page or cursor it is sent?)")
            contents[digest] = pages
        fetches[-1]["records"] = len(records)
        yield records
        if style == "page":
            full_page_seen = full_page_seen or bool(size and len(records) >= int(size))
            if not records or (size and len(records) < int(size) and full_page_seen):
                return
            params = {**params, paging.get("page_param", "page"): params[paging.get("page_param", "page")] + 1}
            continue
        cursor = dig(payload, paging.get("next_field", "next"))
        if not cursor:
            return
        if isinstance(cursor, str) and (next_is == "link" or next_is == "auto" and cursor.startswith(LINK_PREFIXES)):
            url, params = join_link(url, cursor), {}  # `?cursor=2` too: a link, not a token
            if origin is None or origin_of(url) != origin:
                raise SourceError(f"json_api source {source_name}: next-page link {redact(url)} leaves "
                                  f"{redact(first)}'s origin")
        else:
            url, params = first, {**size_params, paging.get("cursor_param", "cursor"): cursor}


def _fetch_all(source_name: str, spec: Mapping[str, Any], keep: bool,
               on_chunk: Callable[[int], None] | None = None) -> tuple[list[dict], Fingerprint, list[dict], str]:
    fingerprint, records, fetches = Fingerprint(), [], []
    started = utc_now()
    for page in iter_pages(source_name, spec, fetches=fetches):
        for record in page:
            fingerprint.add([json.dumps(record, sort_keys=True, default=str)])
        if keep:
            records.extend(page)
        if on_chunk:
            on_chunk(fingerprint.rows)
    if not fingerprint.rows:
        raise SourceError(f"json_api source {source_name}: the API returned no records")
    return records, fingerprint, fetches, started


def read_json_api(source_name: str, spec: Mapping[str, Any],
                  on_chunk: Callable[[int], None] | None = None) -> Ingested:
    """Every record of one dataset source from the API, as its tidy table."""
    records, fingerprint, fetches, started = _fetch_all(source_name, spec, True, on_chunk)
    try:
        table = tidy(infer_types(pd.DataFrame(records, dtype=object)), spec, source_name, fingerprint.sha256[:16])
    except SourceError as exc:
        raise SourceError(f"json_api source {source_name}: {exc}") from None
    summary = {"source": source_name, "kind": "json_api", "from": redact(api_url(source_name, spec)),
               "rows": fingerprint.rows, "fingerprint": fingerprint.sha256, "started_at": started,
               "finished_at": utc_now()}
    return Ingested(table, fingerprint.as_dict(), [summary, *fetches])


def json_api_snapshot(source_name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """An API offers no cheaper identity than its content: fetch every page and hash the records."""
    _, fingerprint, _, _ = _fetch_all(source_name, spec, False)
    return fingerprint.as_dict()
