"""Real database servers for the tests: a throwaway PostgreSQL cluster (Debian's `postgresql` package,
initdb + pg_ctl on a free port on 127.0.0.1 under a temporary folder, run as the `postgres` user when the
tests run as root), one fresh database per test, and mongomock standing in for MongoDB.

Test modules load it with ``pytest_plugins = ["fixtures_db"]`` (one session-wide server however many
modules ask). Also used by benchmarks/ingest_throughput.py (`ThrowawayPostgres`).

PYTEST_DONT_REWRITE: the test modules import helpers from here before pytest loads it as a plugin.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_DSN_ENV = "CYBERSENTINEL_PG_DSN"
MONGODB_URI_ENV = "CYBERSENTINEL_MONGODB_URI"
TEST_MONGODB_URI_ENV = "CYBERSENTINEL_TEST_MONGODB_URI"


def postgres_bindir() -> Path | None:
    """The newest installed PostgreSQL server's bin folder (Debian keeps it out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary folder, listening on 127.0.0.1 only, password-protected
    (scram-sha-256) over TCP; `close()` stops it and deletes everything."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="cybersentinel-pg-"))  # not under pytest's 0700 tmp folders
        self.password = secrets.token_hex(12)
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0  # the server refuses to run as root
        if self.as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        (self.root / "pw").write_text(self.password)
        if self.as_postgres:
            os.chown(self.root / "pw", user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.root / "data"), "-U", "postgres", f"--pwfile={self.root / 'pw'}",
                  "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bindir / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if result.returncode:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed: {result.stderr[-2000:]}\n{tail}")
        return result

    def start(self) -> None:
        # fsync off: only the server ever "crashes" in these tests, never the machine
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
                   "-c full_page_writes=off -c max_connections=40")
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "server.log"), "-o", options,
                  "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", mode, "-w", "stop")

    def dsn(self, dbname: str = "postgres", password: str | None = None) -> str:
        return f"postgresql://postgres:{password or self.password}@127.0.0.1:{self.port}/{dbname}"

    def execute(self, statement: str, dbname: str = "postgres", params: tuple = ()) -> list[tuple]:
        import psycopg2

        conn = psycopg2.connect(self.dsn(dbname))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params or None)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def create_database(self) -> str:
        name = f"test_{secrets.token_hex(6)}"
        self.execute(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[ThrowawayPostgres]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found: apt-get install postgresql")
    server = ThrowawayPostgres(bindir)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_dsn(postgres_server: ThrowawayPostgres, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh empty database, its DSN also in CYBERSENTINEL_PG_DSN; dropped afterwards."""
    name = postgres_server.create_database()
    dsn = postgres_server.dsn(name)
    monkeypatch.setenv(PG_DSN_ENV, dsn)
    try:
        yield dsn
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def mongo(monkeypatch: pytest.MonkeyPatch):
    """A mongomock client that the MongoDB source and the ETL get instead of a real connection."""
    import mongomock
    from mongomock.collection import BulkOperationBuilder

    original = BulkOperationBuilder.add_update

    def add_update(self, *args, sort=None, **kwargs):  # pymongo >= 4.10 passes sort=; mongomock 4.3 predates it
        assert sort is None
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BulkOperationBuilder, "add_update", add_update)
    client = mongomock.MongoClient()
    monkeypatch.setattr("cybersentinel.ingest.mongodb.mongo_client", lambda uri, spec: client)
    monkeypatch.setenv(MONGODB_URI_ENV, "mongodb://mongomock.invalid:27017")
    return client


@pytest.fixture
def real_mongodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database on the MongoDB server named by CYBERSENTINEL_TEST_MONGODB_URI (skipped without one)."""
    uri = os.environ.get(TEST_MONGODB_URI_ENV)
    if not uri:
        pytest.skip(f"no MongoDB server: set {TEST_MONGODB_URI_ENV} (e.g. mongodb://127.0.0.1:27017) to run this")
    import pymongo

    name = f"cybersentinel_test_{secrets.token_hex(4)}"
    monkeypatch.setenv(MONGODB_URI_ENV, uri)
    try:
        yield name
    finally:
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
        client.drop_database(name)
        client.close()
