"""uvicorn's HTTP protocol (httptools) with deadlines for a request's headers and for its body.

uvicorn times out idle keep-alive connections but not a client that sends half a request and stalls (slowloris):
such a connection stays open for as long as the client likes, and enough of them exhaust the server's file
descriptors. Here every request's headers must arrive within ``CYBERSENTINEL_HEADER_TIMEOUT`` seconds of the
connection opening (or of the previous response, for the next request on a kept-alive connection), and its body
within ``CYBERSENTINEL_BODY_TIMEOUT`` seconds of the request starting (a pipelined request starts when the one
before it is answered); otherwise the connection is closed, a stalled body first answered with a 408. Time the
server itself holds the body back (reading paused while the application is busy, ``Expect: 100-continue`` not yet
answered) is not the client's: the deadline waits for it. Imported only by `serve` (uvicorn loads the class in
each worker by name) and, for the key below, by the service on a client's disconnect.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

HEADER_TIMEOUT_ENV = "CYBERSENTINEL_HEADER_TIMEOUT"
BODY_TIMEOUT_ENV = "CYBERSENTINEL_BODY_TIMEOUT"
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0

# set in the request's ASGI scope when the body deadline closed the connection: the disconnect the application then
# reads was the deadline's, which it counts as a 408 (its answer goes nowhere, the protocol sent that 408 itself)
BODY_TIMED_OUT = "cybersentinel.body_timed_out"


def _timeout_answer(seconds: float) -> bytes:
    body = b'{"detail":"request body not received within %g s; send it at once"}' % seconds
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nx-content-type-options: nosniff\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))


class RequestDeadlineProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = float(os.environ.get(HEADER_TIMEOUT_ENV) or DEFAULT_HEADER_TIMEOUT)
        self.body_timeout = float(os.environ.get(BODY_TIMEOUT_ENV) or DEFAULT_BODY_TIMEOUT)
        self.header_deadline: asyncio.TimerHandle | None = None
        self.body_deadline: asyncio.TimerHandle | None = None
        self.body_cycle: Any = None  # the request whose body the deadline waits for

    def _in_request(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm(self) -> None:
        if self.header_deadline is None:
            self.header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def _arm_body(self, cycle: Any) -> None:
        self._disarm_body()
        self.body_cycle = cycle
        self.body_deadline = self.loop.call_later(self.body_timeout, self._body_too_slow, cycle)

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
        if not cycle.more_body or self.transport.is_closing():
            return
        if not cycle.response_complete and (self.flow.read_paused or cycle.waiting_for_100_continue):
            self._arm_body(cycle)  # the server holds the body back: the client cannot send it yet
            return
        cycle.scope[BODY_TIMED_OUT] = True
        if not cycle.response_started:  # the application is still waiting for the body: answer for it
            self.transport.write(_timeout_answer(self.body_timeout))
            if cycle.access_log:  # as uvicorn logs the answers it sends
                self.access_logger.info('%s - "%s %s HTTP/%s" %d', get_client_addr(cycle.scope), cycle.scope["method"],
                                        get_path_with_query_string(cycle.scope), cycle.scope["http_version"], 408)
        self.transport.close()  # the application then reads a disconnect

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        super()._start_asgi_task(cycle, app)
        if cycle.more_body:  # usually the body follows in the same read, which disarms this at once
            self._arm_body(cycle)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        idle = not self._in_request()
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle and self._in_request():
            self._disarm()  # a new request's headers are complete
        elif idle and not self._in_request():
            self._arm()  # the start of a next request on a kept-alive connection
        if self.body_deadline is not None and not self.body_cycle.more_body:
            self._disarm_body()  # the body is complete

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_body()
        super().connection_lost(exc)
