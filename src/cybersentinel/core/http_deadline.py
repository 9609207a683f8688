"""A deadline for a whole HTTP request: connecting, the response's headers and its body.

requests' ``timeout`` bounds each connect and each socket read, so a server that sends its headers (or its body) a
byte a second never trips it and holds the caller for as long as it likes. Inside `http_deadline`, a request made
with a `DeadlineAdapter` (every `core.retry.http_session` has one) gives each connect and each read of its response
only the time left to the deadline: past it, the read times out (requests' ``ConnectionError`` or ``Timeout``), and
the caller, which knows its deadline was spent, says so. Name resolution is the system's and is not bounded here.

Imported where a request is made: requests and urllib3 stay out of the command line's start-up.
"""

from __future__ import annotations

import http.client
import io
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# The deadline (`time.monotonic`) of the requests this thread or task makes now: a context variable, so two threads'
# downloads (or a download and a page of an API) never see each other's
_DEADLINE: ContextVar[float | None] = ContextVar("cybersentinel_http_deadline", default=None)


@contextmanager
def http_deadline(deadline: float) -> Iterator[None]:
    """Requests made (and responses read) in the block through a `DeadlineAdapter` end at ``deadline``
    (`time.monotonic`)."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the request's deadline has passed")  # socket.timeout: urllib3 reports it as one
    return left


class _DeadlineReader(io.RawIOBase):
    """A socket's reads, each allowed the time left to the deadline at most; the socket's own timeout is put back
    after each, for the next request on a kept-alive connection."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock, self._deadline = sock, deadline
        self._raw = sock.makefile("rb", buffering=0)  # counted by the socket, as http.client's own reader is

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        timeout = self._sock.gettimeout()
        left = _time_left(self._deadline)
        self._sock.settimeout(left if timeout is None else min(timeout, left))
        try:
            return self._raw.readinto(buffer)
        finally:
            self._sock.settimeout(timeout)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """What `http.client.HTTPResponse` reads its status line, headers and body from: the socket, through
    `_DeadlineReader` (it calls only ``makefile``)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


def _response(sock: socket.socket, *args: Any, **kwargs: Any) -> http.client.HTTPResponse:
    deadline = _DEADLINE.get()
    return http.client.HTTPResponse(sock if deadline is None else _DeadlineSocket(sock, deadline), *args, **kwargs)


class _DeadlineConnect:
    """Connects (and a TLS handshake) in `http_deadline` get the time left at most; the response reads it too."""

    response_class = staticmethod(_response)

    def connect(self) -> None:
        deadline = _DEADLINE.get()
        if deadline is not None:
            left = _time_left(deadline)
            timeout = self.timeout  # type: ignore[has-type]
            self.timeout = min(timeout, left) if isinstance(timeout, int | float) else left
        super().connect()  # type: ignore[misc]


class _HTTPConnection(_DeadlineConnect, HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineConnect, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter, its connections keeping `http_deadline`: direct ones and those through an HTTP proxy (a
    SOCKS proxy's connections are urllib3's own, bounded per read only)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOLS
        return manager
