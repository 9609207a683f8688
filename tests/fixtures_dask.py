"""One two-worker Dask `LocalCluster` on 127.0.0.1 for every test that needs a cluster (`dask_client`), and a
local S3 server (moto, as the remote tests start it) for the s3:// tests (`s3_server`).

Use them in a test module with ``from fixtures_dask import dask_client, s3_server  # noqa: F401``."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

# moto accepts any key pair; these are placeholders, not secrets
S3_KEYS = {"key": "cybersentinel-test", "secret": "cybersentinel-test"}


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    """A client of a LocalCluster of two single-threaded worker processes (a session's worth: starting one
    costs seconds). Tests that kill a worker leave it to the nanny to restart."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, memory_limit="2GiB")
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, Any]]:
    """fsspec storage options for a moto S3 server on 127.0.0.1 (objects in memory, gone when it stops)."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start (exit code {server.poll()})")
            time.sleep(0.2)
        yield {**S3_KEYS, "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"}}
    finally:
        server.terminate()
        server.wait(timeout=30)
