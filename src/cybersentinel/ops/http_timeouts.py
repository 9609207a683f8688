"""uvicorn's HTTP protocol with deadlines for a request's headers and for its body.

uvicorn times out idle keep-alive connections but not a client that sends half a request and stalls (slowloris):
such a connection stays open for as long as the client likes, and enough of them exhaust the server's file
descriptors. Here every request's headers must arrive within ``CYBERSENTINEL_HEADER_TIMEOUT`` seconds of the
connection opening (or of the previous response, for the next request on a kept-alive connection), and its body
within ``CYBERSENTINEL_BODY_TIMEOUT`` seconds of the headers; otherwise the connection is closed (a stalled body
first gets a 408 answer). A request whose body arrives with its headers, as small ones do, arms no body deadline.
Imported only by `serve` (uvicorn loads the class in each worker by name).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - httptools is pinned in requirements.txt; h11 works the same way
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]

HEADER_TIMEOUT_ENV = "CYBERSENTINEL_HEADER_TIMEOUT"
BODY_TIMEOUT_ENV = "CYBERSENTINEL_BODY_TIMEOUT"


DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0


def _timeout_answer(seconds: float) -> bytes:
    body = b'{"detail":"request body not received within %g s; send it at once"}' % seconds
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nx-content-type-options: nosniff\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))


class HeaderTimeoutProtocol(_Base):  # type: ignore[misc, valid-type]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = float(os.environ.get(HEADER_TIMEOUT_ENV) or DEFAULT_HEADER_TIMEOUT)
        self.body_timeout = float(os.environ.get(BODY_TIMEOUT_ENV) or DEFAULT_BODY_TIMEOUT)
        self.header_deadline: asyncio.TimerHandle | None = None
        self.body_deadline: asyncio.TimerHandle | None = None

    def _in_request(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm(self) -> None:
        if self.header_deadline is None:
            self.header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def _disarm_body(self) -> None:
        if self.body_deadline is not None:
            self.body_deadline.cancel()
            self.body_deadline = None

    def _headers_too_slow(self) -> None:
        self.header_deadline = None
        if not self._in_request() and not self.transport.is_closing():
            self.transport.close()

    def _body_too_slow(self, cycle: Any) -> None:
        self.body_deadline = None
        if cycle is not self.cycle or not cycle.more_body or self.transport.is_closing():
            return
        if not cycle.response_started:  # the application is still waiting for the body: answer for it
            self.transport.write(_timeout_answer(self.body_timeout))
        self.transport.close()  # the application then reads a disconnect, and its answer goes nowhere

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        idle = not self._in_request()
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle and self._in_request():
            self._disarm()  # a new request's headers are complete
            if self.cycle.more_body:  # and its body is not
                self._disarm_body()
                self.body_deadline = self.loop.call_later(self.body_timeout, self._body_too_slow, self.cycle)
        elif idle and not self._in_request():
            self._arm()  # the start of a next request on a kept-alive connection
        if self.body_deadline is not None and not self.cycle.more_body:
            self._disarm_body()  # the body is complete

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_body()
        super().connection_lost(exc)
