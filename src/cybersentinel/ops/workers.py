"""`serve --workers N`: N uvicorn worker processes, each accepting connections on a listening socket of its own,
all bound to the same address with ``SO_REUSEPORT``, so that the kernel spreads connections over the workers.

uvicorn's own ``--workers`` shares one listening socket: the worker whose event loop wakes first accepts every
connection waiting, so a client that opens its kept-alive connections at once (a load balancer, a proxy, wrk)
lands mostly on one worker, which then queues requests behind its own work while the other idles. Measured with
`benchmarks/load_test.py` (8 connections at 500 single-URL requests/s): one worker answered 85-93% of the requests.
With a socket each, the kernel hashes every new connection to one of them.

A worker that exits is started again on its socket (connections hashed to that socket wait in its backlog
meanwhile); one that exits within `STARTUP_SECONDS` of starting is taken for a start-up failure and stops the
server, as uvicorn does. SIGINT or SIGTERM stops every worker (each finishes its requests in progress).
"""

from __future__ import annotations

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
    """Whether the kernel balances connections over sockets sharing a port (Linux; not macOS or Windows)."""
    return hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux")


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


def _worker(sock: socket.socket, options: dict[str, Any], app: str, factory: bool
            ) -> None:  # pragma: no cover (runs in the child)
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, factory=factory, **options))
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE


def serve(options: dict[str, Any], workers: int, app: str = APP, factory: bool = True) -> int:
    """Run ``workers`` uvicorn processes of ``app`` (an import string; ``options``: uvicorn.Config keywords, host
    and port included) until SIGINT or SIGTERM; return the exit code (non-zero when a worker failed to start)."""
    sockets = listening_sockets(options["host"], options["port"], workers)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker, as uvicorn's --workers
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}

    def start(sock: socket.socket) -> tuple[Any, float]:
        process = context.Process(target=_worker, args=(sock, options, app, factory), name="cybersentinel-worker")
        process.start()
        return process, time.monotonic()

    processes = [start(sock) for sock in sockets]
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
                processes[i] = start(sockets[i])
    finally:
        for process, _ in processes:
            if process.exitcode is None:
                process.terminate()  # SIGTERM: uvicorn finishes the requests in progress
        for process, _ in processes:
            process.join(timeout=30)
            if process.exitcode is None:
                process.kill()
                process.join()
        for sock in sockets:
            sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
