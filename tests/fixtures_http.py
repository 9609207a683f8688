"""A local HTTP server on 127.0.0.1 for the download and JSON API tests: each path answers from a script
of recorded replies (including slow, trickled, 429/5xx, cut-short and wrong-checksum ones) or from a handler such
as `paginated_api`. Test modules load it with ``pytest_plugins = ["fixtures_http"]``; the ingest benchmark
imports it too.

PYTEST_DONT_REWRITE: the test modules import helpers from here before pytest loads it as a plugin.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest


@dataclass
class Reply:
    status: int = 200
    body: Any = b""  # bytes, str, or JSON data
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before anything is sent (a slow server)
    truncate: bool = False  # announce the full Content-Length, send half the body, close
    trickle: float = 0.0  # seconds between the body's bytes, sent one at a time (a server that trickles it)
    # seconds between the bytes of a header line that never ends (a server that trickles its headers): the status
    # line, then `HEADER_TRICKLE_BYTES` bytes at this pace, then the connection closes with no header block ended
    header_trickle: float = 0.0

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return self.body.encode() if isinstance(self.body, str) else json.dumps(self.body).encode()


# a client without a deadline waits some 130 pauses (the status line's bytes too), then gets a cut-short response
HEADER_TRICKLE_BYTES = 100


Handler = Callable[[dict[str, str], dict[str, str]], Reply]  # (query, headers) -> reply


class LocalHTTPServer:
    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                headers = dict(self.headers.items())
                server.requests.append((parts.path, query, headers))
                handler = server.routes.get(parts.path)
                reply = handler(query, headers) if handler else Reply(404, b"not found")
                time.sleep(reply.delay)
                body = reply.payload()
                try:
                    if reply.header_trickle:
                        self.trickle(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * HEADER_TRICKLE_BYTES, reply.header_trickle)
                        return
                    self.send_response(reply.status)
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if reply.trickle:
                        self.trickle(body, reply.trickle)
                    else:
                        self.wfile.write(body[: len(body) // 2] if reply.truncate else body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to answer

            def trickle(self, body: bytes, pause: float) -> None:
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(pause)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def route(self, path: str, handler: Handler) -> str:
        self.routes[path] = handler
        return self.url(path)

    def script(self, path: str, *replies: Reply) -> str:
        """Answer ``path`` with these replies in turn; the last one repeats."""
        queue = list(replies)

        def next_reply(query: dict[str, str], headers: dict[str, str]) -> Reply:
            return queue.pop(0) if len(queue) > 1 else queue[0]

        return self.route(path, next_reply)

    def hits(self, path: str) -> int:
        return sum(1 for p, _, _ in self.requests if p == path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def paginated_api(records: Sequence[dict], records_field: str = "urls", default_size: int = 100,
                  faults: dict[int, list[Reply]] | None = None) -> Handler:
    """A URLhaus-style API: ``?page=N&limit=M`` (pages from 1) -> ``{"query_status": "ok", records_field:
    [...]}``. ``faults[page]`` replies are served first for that page (each once)."""
    faults = {page: list(replies) for page, replies in (faults or {}).items()}
    lock = threading.Lock()

    def handler(query: dict[str, str], headers: dict[str, str]) -> Reply:
        page, size = int(query.get("page", 1)), int(query.get("limit", default_size))
        with lock:
            if faults.get(page):
                return faults[page].pop(0)
        chunk = list(records[(page - 1) * size: page * size])
        body = json.dumps({"query_status": "ok", records_field: chunk}).encode()
        return Reply(200, body, {"Content-Type": "application/json",
                                 "X-Content-SHA256": hashlib.sha256(body).hexdigest()})

    return handler


@pytest.fixture
def http_server() -> Iterator[LocalHTTPServer]:
    server = LocalHTTPServer()
    try:
        yield server
    finally:
        server.close()
