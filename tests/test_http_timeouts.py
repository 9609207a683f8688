"""The request deadlines of `serve`'s HTTP protocol, on a real uvicorn server on 127.0.0.1 with a tiny app that
reads the whole body (as `/v1/score` does) and answers with its length."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fixtures_model import free_port

from cybersentinel.ops.http_timeouts import BODY_TIMEOUT_ENV, HEADER_TIMEOUT_ENV, HeaderTimeoutProtocol

HEADER_TIMEOUT, BODY_TIMEOUT = 1.0, 1.5


async def body_length(scope, receive, send) -> None:  # noqa: ANN001 (ASGI)
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size, more = size + len(message.get("body", b"")), message.get("more_body", False)
    body = json.dumps({"size": size}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setenv(HEADER_TIMEOUT_ENV, str(HEADER_TIMEOUT))  # read by each connection's protocol
    monkeypatch.setenv(BODY_TIMEOUT_ENV, str(BODY_TIMEOUT))
    number = free_port()
    server = uvicorn.Server(uvicorn.Config(body_length, host="127.0.0.1", port=number, http=HeaderTimeoutProtocol,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    yield number
    server.should_exit = True
    thread.join(10)


def request_head(size: int) -> bytes:
    return (b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n" % size)


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and the seconds that took."""
    started, received = time.monotonic(), b""
    sock.settimeout(limit)
    while chunk := sock.recv(4096):
        received += chunk
    return received, time.monotonic() - started


def test_a_stalled_body_gets_408_and_its_connection_closed_at_the_body_deadline(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request_head(100) + b"x" * 10)  # headers complete, 90 bytes of the body never come
        answer, waited = read_until_closed(sock, limit=BODY_TIMEOUT + 5)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"connection: close" in answer.lower()
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["detail"].startswith("request body not received")
    assert BODY_TIMEOUT - 0.3 < waited < BODY_TIMEOUT + 2


def test_a_body_trickled_byte_by_byte_is_cut_off_at_the_deadline_not_kept_alive_by_each_byte(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request_head(1000))
        started = time.monotonic()
        try:
            while time.monotonic() - started < BODY_TIMEOUT + 3:
                sock.sendall(b"x")  # one byte every 0.2 s: each arrives well within any per-read timeout
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection
        answer, _ = read_until_closed(sock, limit=5)
        assert time.monotonic() - started < BODY_TIMEOUT + 5
    assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_a_body_that_arrives_in_parts_within_the_deadline_is_answered_and_the_connection_kept(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for _ in range(2):  # two requests on one kept-alive connection, each body in three parts
            sock.sendall(request_head(300) + b"a" * 100)
            for _ in range(2):
                time.sleep(BODY_TIMEOUT / 4)
                sock.sendall(b"b" * 100)
            answer = sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"size": 300}'), answer
        time.sleep(BODY_TIMEOUT + 0.5)  # no deadline left armed after a complete body: the keep-alive one decides
        sock.sendall(request_head(3) + b"abc")
        assert sock.recv(4096).endswith(b'{"size": 3}')


def test_stalled_headers_are_still_closed_at_the_header_deadline(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        answer, waited = read_until_closed(sock, limit=HEADER_TIMEOUT + 5)
    assert answer == b"" and HEADER_TIMEOUT - 0.3 < waited < HEADER_TIMEOUT + 2
