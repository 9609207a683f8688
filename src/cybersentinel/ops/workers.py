"""`serve --workers N`: N uvicorn worker processes, and the connections handed out to them in turn.

uvicorn's own ``--workers`` shares one listening socket: the worker whose event loop wakes first accepts every
connection waiting, so a client that opens its kept-alive connections at once (a load balancer, a proxy, wrk)
lands mostly on one worker, which then queues requests behind its own work while the other idles. Measured with
`benchmarks/load_test.py` (8 connections at 500 single-URL requests/s): one worker answered 85-93% of the requests.
A listening socket per worker with ``SO_REUSEPORT`` (the kernel hashes each connection to one) did better but not
evenly: with 8 connections the workers' shares ran 61/39 to 75/25 from one start to the next, and the busier
worker's queue set the p99. So the supervisor accepts every connection itself and hands it to the workers in turn
(its file descriptor over a Unix socket pair, `hand_out`): 8 connections are 4 and 4. Only opening a connection
passes through the supervisor; its requests go straight to the worker that holds it.

A worker that exits is started again (connections go to the others meanwhile); one that exits within
`STARTUP_SECONDS` of starting is taken for a start-up failure and stops the server, as uvicorn does. SIGINT or
SIGTERM stops every worker (each finishes its requests in progress).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import socket
import sys
import threading
import time
from typing import Any

log = logging.getLogger("cybersentinel.ops.workers")

APP = "cybersentinel.ops.service:app_from_env"  # each worker builds its app from the environment `serve` set


BACKLOG = 2048  # uvicorn's default


STARTUP_SECONDS = 30.0  # a worker that exits sooner than this after starting failed to start: stop, do not retry


def supported() -> bool:
    """Whether connections can be handed to worker processes here (descriptors over Unix SOCK_SEQPACKET pairs:
    Linux; not macOS or Windows, where `serve` runs uvicorn's own ``--workers``)."""
    return hasattr(socket, "send_fds") and sys.platform.startswith("linux")


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on the same address (port 0: the free port the first one got)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(BACKLOG)
            sock.set_inheritable(True)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def hand_out(listener: socket.socket, channels: list[socket.socket], stop: threading.Event) -> None:
    """Accept connections on ``listener`` until ``stop`` and send each to the next worker's channel in turn (one
    message with the descriptor), skipping a worker whose channel is gone or full; the supervisor's copy is closed
    once sent. ``channels`` may change meanwhile (a worker started again gets a new one)."""
    listener.settimeout(0.5)  # to see ``stop``
    turn = 0
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError as exc:  # a client that left before it was accepted, or no descriptor free for now
            if stop.is_set():
                return
            log.warning("accepting a connection failed: %s", exc)
            time.sleep(0.01)
            continue
        with conn:
            count = len(channels)
            for step in range(count):
                try:
                    socket.send_fds(channels[(turn + step) % count], [b"c"], [conn.fileno()])
                except OSError:  # that worker is gone, or has not read its last connections yet: the next one
                    continue
                turn = (turn + step + 1) % count
                break
            else:
                log.warning("no worker could take a connection: closed")


def handed_server(config: Any, channel: socket.socket) -> Any:  # pragma: no cover (runs in the child)
    """uvicorn's server over the connections the supervisor hands over on ``channel``, not a listening socket of
    its own: each one becomes a connection of uvicorn's HTTP protocol, as if uvicorn had accepted it."""
    import uvicorn

    class Server(uvicorn.Server):
        def __init__(self) -> None:
            super().__init__(config)
            self.opening: set[asyncio.Task] = set()

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=[])
            if self.started:
                channel.setblocking(False)
                asyncio.get_running_loop().add_reader(channel.fileno(), self.take)

        def take(self) -> None:
            loop = asyncio.get_running_loop()
            while True:
                try:
                    message, fds, _, _ = socket.recv_fds(channel, 1, 8)
                except BlockingIOError:
                    return
                if not message and not fds:  # the supervisor is gone: stop as on SIGTERM
                    loop.remove_reader(channel.fileno())
                    self.should_exit = True
                    return
                for fd in fds:
                    task = loop.create_task(loop.connect_accepted_socket(self.protocol, socket.socket(fileno=fd)))
                    self.opening.add(task)
                    task.add_done_callback(self.opening.discard)

        def protocol(self) -> asyncio.Protocol:  # what uvicorn's `startup` gives its listening sockets
            return config.http_protocol_class(config=config, server_state=self.server_state,
                                              app_state=self.lifespan.state)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            asyncio.get_running_loop().remove_reader(channel.fileno())
            channel.close()
            await super().shutdown(sockets=sockets)

    return Server()


def _worker(channel: socket.socket, options: dict[str, Any], app: str, factory: bool
            ) -> None:  # pragma: no cover (runs in the child)
    import uvicorn

    server = handed_server(uvicorn.Config(app, factory=factory, **options), channel)
    server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE


def serve(options: dict[str, Any], workers: int, app: str = APP, factory: bool = True) -> int:
    """Run ``workers`` uvicorn processes of ``app`` (an import string; ``options``: uvicorn.Config keywords, host
    and port included) until SIGINT or SIGTERM; return the exit code (non-zero when a worker failed to start)."""
    listener, = listening_sockets(options["host"], options["port"], 1)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker, as uvicorn's --workers
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    channels: list[socket.socket] = []

    def start(i: int) -> tuple[Any, float]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)  # a worker that does not read its connections makes `hand_out` try the next
        process = context.Process(target=_worker, args=(theirs, options, app, factory), name="cybersentinel-worker")
        process.start()
        theirs.close()  # the worker has its own copy
        if i < len(channels):
            channels[i].close()
            channels[i] = ours
        else:
            channels.append(ours)
        return process, time.monotonic()

    processes = [start(i) for i in range(workers)]
    dealer = threading.Thread(target=hand_out, args=(listener, channels, stop), name="hand-out", daemon=True)
    dealer.start()
    code = 0
    try:
        while not stop.wait(0.5):
            for i, (process, started) in enumerate(processes):
                if process.exitcode is None:
                    continue
                if time.monotonic() - started < STARTUP_SECONDS:
                    log.error("worker %s exited with code %s while starting: stopping", process.pid,
                              process.exitcode)
                    code = process.exitcode or 1
                    stop.set()
                    break
                log.warning("worker %s exited with code %s: starting another", process.pid, process.exitcode)
                processes[i] = start(i)
    finally:
        stop.set()
        dealer.join(timeout=5)
        listener.close()  # no new connections; those handed out are finished by their workers
        for process, _ in processes:
            if process.exitcode is None:
                process.terminate()  # SIGTERM: uvicorn finishes the requests in progress
        for process, _ in processes:
            process.join(timeout=30)
            if process.exitcode is None:
                process.kill()
                process.join()
        for channel in channels:
            channel.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
