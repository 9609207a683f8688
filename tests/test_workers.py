"""`serve --workers N` on Linux: the supervisor accepts the connections and hands them to the workers in turn
(ops/workers.py `hand_out`), so a client's few kept-alive connections are shared evenly, not as the kernel's
hash of them falls. The whole server is checked in tests/test_service_server.py."""

from __future__ import annotations

import socket
import threading

import pytest

from cybersentinel.ops import workers

pytestmark = [pytest.mark.skipif(not workers.supported(), reason="Linux only"), pytest.mark.timeout(60)]


def received(channel: socket.socket) -> list[socket.socket]:
    """The connections waiting on a worker's end of its channel."""
    channel.setblocking(False)
    found = []
    while True:
        try:
            _, fds, _, _ = socket.recv_fds(channel, 1, 8)
        except BlockingIOError:
            return found
        found += [socket.socket(fileno=fd) for fd in fds]


def dealing(count: int) -> tuple[socket.socket, list[tuple[socket.socket, socket.socket]], threading.Event,
                                 threading.Thread]:
    listener, = workers.listening_sockets("127.0.0.1", 0, 1)
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(count)]
    for ours, _ in pairs:
        ours.setblocking(False)
    stop = threading.Event()
    dealer = threading.Thread(target=workers.hand_out, args=(listener, [ours for ours, _ in pairs], stop))
    dealer.start()
    return listener, pairs, stop, dealer


def test_connections_are_handed_to_the_workers_in_turn() -> None:
    listener, pairs, stop, dealer = dealing(3)
    port = listener.getsockname()[1]
    try:
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(7)]
        for i, client in enumerate(clients):  # each handed-over socket is that very connection
            client.sendall(f"client {i}".encode())
        got: list[list[bytes]] = [[], [], []]
        while sum(map(len, got)) < 7:
            for worker, (_, theirs) in enumerate(pairs):
                for conn in received(theirs):
                    conn.settimeout(5)
                    got[worker].append(conn.recv(64))
                    conn.close()
    finally:
        stop.set()
        dealer.join(timeout=5)
        listener.close()
    assert not dealer.is_alive()
    assert got == [[b"client 0", b"client 3", b"client 6"], [b"client 1", b"client 4"], [b"client 2", b"client 5"]]
    for client in clients:
        client.close()


def test_a_worker_that_is_gone_is_skipped() -> None:
    listener, pairs, stop, dealer = dealing(2)
    port = listener.getsockname()[1]
    pairs[0][1].close()  # the first worker exited: its end of the channel is closed
    try:
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(4)]
        taken: list[socket.socket] = []
        while len(taken) < 4:
            taken += received(pairs[1][1])
    finally:
        stop.set()
        dealer.join(timeout=5)
        listener.close()
    assert len(taken) == 4
    for conn in [*taken, *clients]:
        conn.close()
