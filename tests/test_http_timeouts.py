"""The request deadlines of `serve`'s HTTP protocol, on a real uvicorn server on 127.0.0.1 with a tiny app: `/score`
reads the whole body at once (as `/v1/score` does) and answers with its length, `/slow` and `/late` first wait
(busy elsewhere) and `/early` answers without reading the body."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fixtures_model import free_port

from cybersentinel.ops.http_timeouts import BODY_TIMEOUT_ENV, HEADER_TIMEOUT_ENV, RequestDeadlineProtocol

HEADER_TIMEOUT, BODY_TIMEOUT = 1.0, 1.5


async def body_length(scope, receive, send) -> None:  # noqa: ANN001 (ASGI)
    if scope["type"] != "http":
        return
    if scope["path"] == "/early":  # an answer before the body (as a 401 or a 413 on its declared length is)
        await send({"type": "http.response.start", "status": 401, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] in ("/slow", "/late"):
        await asyncio.sleep(BODY_TIMEOUT + 0.5)
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
    server = uvicorn.Server(uvicorn.Config(body_length, host="127.0.0.1", port=number, http=RequestDeadlineProtocol,
                                           log_config=None, log_level="info", lifespan="off"))  # logs reach caplog
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    yield number
    server.should_exit = True
    thread.join(10)


def request_head(size: int, path: bytes = b"/score", extra: bytes = b"") -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n%s"
            b"Content-Length: %d\r\n\r\n" % (path, extra, size))


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and the seconds that took."""
    started, received = time.monotonic(), b""
    sock.settimeout(limit)
    while chunk := sock.recv(4096):
        received += chunk
    return received, time.monotonic() - started


def test_a_stalled_body_gets_408_and_its_connection_closed_at_the_body_deadline(
        port: int, caplog: pytest.LogCaptureFixture) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request_head(100) + b"x" * 10)  # headers complete, 90 bytes of the body never come
        answer, waited = read_until_closed(sock, limit=BODY_TIMEOUT + 5)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert [r.getMessage().endswith('"POST /score HTTP/1.1" 408') for r in caplog.records if r.name == "uvicorn.access"
            ] == [True]  # in the access log as uvicorn logs the answers it sends
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
        time.sleep(BODY_TIMEOUT + 0.5)  # a complete body's deadline does not cut the connection
        sock.sendall(request_head(3) + b"abc")
        assert sock.recv(4096).endswith(b'{"size": 3}')


def test_stalled_headers_are_still_closed_at_the_header_deadline(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        answer, waited = read_until_closed(sock, limit=HEADER_TIMEOUT + 5)
    assert answer == b"" and HEADER_TIMEOUT - 0.3 < waited < HEADER_TIMEOUT + 2


def test_a_pipelined_request_is_given_its_time_from_when_it_starts_not_from_when_its_headers_came(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        # the first request (answered after BODY_TIMEOUT + 0.5 s) and the next one's headers and part of its body
        # at once: the server reads no more until the first is answered, so the rest cannot arrive before then
        sock.sendall(request_head(3, b"/slow") + b"abc" + request_head(100) + b"x" * 10)
        answer, waited = read_until_closed(sock, limit=2 * BODY_TIMEOUT + 5)
    first, _, rest = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 "), answer  # the first answer is not lost to the second's deadline
    assert rest.startswith(b'{"size": 3}HTTP/1.1 408 '), answer
    assert waited > 2 * BODY_TIMEOUT


def test_after_an_early_answer_a_stalled_body_closes_the_connection_without_a_second_answer(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request_head(100, b"/early") + b"x" * 10)
        answer, waited = read_until_closed(sock, limit=BODY_TIMEOUT + 5)
    assert answer.startswith(b"HTTP/1.1 401 ") and answer.count(b"HTTP/1.1") == 1, answer
    assert waited < BODY_TIMEOUT + 2


def test_time_the_server_holds_the_body_back_is_not_counted_against_the_client(port: int) -> None:
    # `Expect: 100-continue`: the client sends the body only once told to, which the application does when it reads
    with socket.create_connection(("127.0.0.1", port), timeout=2 * BODY_TIMEOUT + 5) as sock:
        sock.sendall(request_head(3, b"/late", b"Expect: 100-continue\r\n"))
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"abc")
        assert sock.recv(4096).endswith(b'{"size": 3}')
    # a body over uvicorn's read buffer (64 KiB), sent at once: reading pauses until the application reads
    size = 1 << 20
    with socket.create_connection(("127.0.0.1", port), timeout=2 * BODY_TIMEOUT + 5) as sock:
        sock.sendall(request_head(size, b"/late") + b"x" * size)
        assert sock.recv(4096).endswith(b'{"size": %d}' % size)
