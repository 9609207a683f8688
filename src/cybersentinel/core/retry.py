"""The package's one retry rule: run an action again from the start after a transient failure, waiting
exponentially longer (or as long as the failure asks, e.g. HTTP Retry-After), a bounded number of times and, when
the caller has a deadline, never past it, then raise the caller's error naming what failed. HTTP status retries
inside one request are urllib3's (:func:`http_session`) where the caller has no deadline to keep."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from cybersentinel.core.redact import redact

if TYPE_CHECKING:  # tenacity (which loads asyncio and tornado's shim) is imported where a call retries
    import requests
    import tenacity

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_STATUSES = (429, 500, 502, 503, 504)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, credentials in any URI or DSN it quotes redacted."""
    return redact(" ".join(str(exc).split())) or type(exc).__name__


def retry_call(action: Callable[[], T], *, what: str, attempts: int, backoff: float,
               transient: tuple[type[BaseException], ...], error: type[Exception], max_delay: float = 30.0,
               wait_hint: Callable[[BaseException], float | None] | None = None, deadline: float | None = None) -> T:
    """``action()``; after a ``transient`` exception wait ``backoff * 2**n`` seconds (at most ``max_delay``, or
    what ``wait_hint(exc)`` says) and call it again, ``attempts`` calls in all; then raise ``error``. With a
    ``deadline`` (`time.monotonic`), no call starts at or after it: the retries stop early rather than wait past
    it (the action bounds its own call, e.g. with `core.http_deadline.http_deadline`)."""
    import tenacity

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = wait_hint(exc) if wait_hint and exc is not None else None
        return min(max_delay, hinted if hinted is not None else backoff * 2 ** (state.attempt_number - 1))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s: %s; retrying in %.2fs (attempt %d of %d)", what, one_line(exc) if exc else "?",
                    state.upcoming_sleep, state.attempt_number + 1, attempts)

    def out_of_time(state: tenacity.RetryCallState) -> bool:  # the next call would start at or past the deadline
        return deadline is not None and time.monotonic() + state.upcoming_sleep >= deadline

    retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(max(1, attempts)) | out_of_time, wait=wait,
                                 retry=tenacity.retry_if_exception_type(transient), before_sleep=before_sleep,
                                 reraise=True)
    try:
        for attempt in retrying:
            with attempt:
                return action()
    except transient as exc:
        made = retrying.statistics.get("attempt_number", attempts)
        tries = f"{attempts} attempts" if attempts > 1 else "1 attempt, no retries"
        if made < attempts:  # stopped by the deadline: spent, or the next wait (a server's Retry-After) ends past it
            tries = f"{made} of {attempts} attempts: the next would start past its deadline"
        raise error(f"{what}: {one_line(exc)} (gave up after {tries})") from exc
    raise AssertionError("unreachable")  # tenacity either returns, raises, or retries


def retry_after_seconds(value: str | None) -> float | None:
    """An HTTP Retry-After header's seconds (None when absent)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None


MAX_RETRY_AFTER_S = 30.0  # the longest wait a server's Retry-After buys: `86400` five times would be five days


def http_session(retries: int = 5, backoff: float = 1.0, user_agent: str | None = None) -> requests.Session:
    """A requests session whose GETs retry connection errors, 429 and 5xx with exponential backoff, honouring
    Retry-After up to `MAX_RETRY_AFTER_S`; the final response is returned (not raised) so the caller can report
    its status. Its requests keep the deadline of an enclosing `core.http_deadline.http_deadline` block (headers
    and body alike), but its retries do not: a caller with a deadline passes ``retries=0`` and retries with
    `retry_call` and its ``deadline``."""
    import requests
    from urllib3.util.retry import Retry

    from cybersentinel.core.http_deadline import DeadlineAdapter

    class CappedRetry(Retry):
        def get_retry_after(self, response):
            after = super().get_retry_after(response)
            return None if after is None else min(after, MAX_RETRY_AFTER_S)

    retry = CappedRetry(total=retries, backoff_factor=backoff, status_forcelist=RETRY_STATUSES,
                        allowed_methods=frozenset({"GET", "HEAD"}), raise_on_status=False,
                        respect_retry_after_header=True)
    session = requests.Session()
    if user_agent:
        session.headers["User-Agent"] = user_agent
    for prefix in ("http://", "https://"):
        session.mount(prefix, DeadlineAdapter(max_retries=retry))
    return session


def body_chunks(response: requests.Response) -> Iterator[bytes]:
    """A streamed response's (decoded) body in pieces as they arrive, for a caller that checks a size cap or a
    deadline between them: `iter_content` waits until each chunk is full, so a body trickled a byte at a time would
    never get back to such a check. urllib3's errors are raised as requests' (as `iter_content` raises them), so
    they are retried alike."""
    import requests
    from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

    try:
        while chunk := response.raw.read1(1 << 16, decode_content=True):
            yield chunk
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except ReadTimeoutError as exc:
        raise requests.ConnectionError(exc) from exc
    except SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc


class BodyTooLargeError(Exception):
    """A body still arriving past its byte cap (`bounded_body`); ``received``: the bytes read by then."""

    def __init__(self, received: int) -> None:
        super().__init__(f"{received:,} bytes")
        self.received = received


class BodyLateError(Exception):
    """A body still arriving at its deadline (`bounded_body`); ``received``: the bytes read by then."""

    def __init__(self, received: int) -> None:
        super().__init__(f"{received:,} bytes by then")
        self.received = received


def bounded_body(response: requests.Response, max_bytes: int, deadline: float) -> Iterator[bytes]:
    """`body_chunks`, ended by `BodyTooLargeError` as soon as more than ``max_bytes`` arrived, and by
    `BodyLateError` once ``deadline`` (`time.monotonic`) has passed, a read that `http_deadline` timed out included;
    other network errors are raised as they come, to be retried."""
    import requests

    received = 0
    try:
        for chunk in body_chunks(response):
            received += len(chunk)
            if received > max_bytes:
                raise BodyTooLargeError(received)
            if time.monotonic() > deadline:
                raise BodyLateError(received)
            yield chunk
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        if time.monotonic() >= deadline:
            raise BodyLateError(received) from exc
        raise
