"""PostgreSQL and MongoDB as ingest sources: connections from the environment (or a git-ignored ``.env``),
rows streamed in key order (a server-side cursor; a batched MongoDB cursor) into the tidy table, and the
snapshot fingerprint (row count + hash of the ordered keys and versions) that tells DVC whether the data
changed. Transient failures (server down, connection dropped) are retried a bounded number of times,
always from the start, so a result is never stitched together from two different snapshots.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from cybersentinel.fingerprint import Fingerprint
from cybersentinel.sources import Ingested, SourceError, tidy, utc_now

PG_DSN_ENV = "CYBERSENTINEL_PG_DSN"
MONGODB_URI_ENV = "CYBERSENTINEL_MONGODB_URI"
# libpq's messages for failures that retrying cannot fix
_PERMANENT_CONNECT_ERRORS = ("authentication failed", "no pg_hba.conf entry", "does not exist", "permission denied",
                             "invalid dsn", "invalid connection option")

log = logging.getLogger(__name__)
T = TypeVar("T")


def setting_from_env(name: str, what: str) -> str:
    """A connection string from the environment, else from ``.env`` in the working directory."""
    from dotenv import load_dotenv

    load_dotenv(Path.cwd() / ".env", override=False)
    value = os.environ.get(name, "").strip()
    if not value:
        raise SourceError(f"{what}: set {name} in the environment or in .env (never in git)")
    return value


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def with_retries(action: Callable[[], T], *, what: str, retries: int, backoff: float,
                 transient: tuple[type[BaseException], ...]) -> T:
    """Run ``action``; on a transient error wait (exponential backoff) and run it again from the start."""
    for attempt in range(retries + 1):
        try:
            return action()
        except transient as exc:
            if attempt == retries:
                tries = f"{retries + 1} attempts" if retries else "1 attempt, no retries"
                raise SourceError(f"{what}: {one_line(exc)} (gave up after {tries})") from exc
            delay = backoff * 2**attempt
            log.warning("%s: %s; retrying in %.1fs (attempt %d of %d)", what, one_line(exc), delay, attempt + 2,
                        retries + 1)
            time.sleep(delay)
    raise AssertionError("unreachable")


def unique_ordered(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


class DuplicateKeyCheck:
    """Rows arrive sorted by key; a key seen twice in a row means the order (and fingerprint) is arbitrary."""

    def __init__(self, what: str):
        self.what, self.previous = what, None

    def __call__(self, key: tuple) -> None:
        if key == self.previous:
            raise SourceError(f"{self.what}: key {list(key)} occurs twice; source.key must identify rows uniquely")
        self.previous = key


class Collected:
    """What a database read keeps as its chunks arrive: each row's key (and version) values go into the
    snapshot fingerprint and the duplicate-key check, and the chunks themselves, when the data is wanted, into
    frames. A retried read calls ``reset`` and starts over."""

    def __init__(self, what: str, key_columns: int, on_chunk: Callable[[int], None] | None = None):
        self.what, self.key_columns, self.on_chunk = what, key_columns, on_chunk
        self.reset()

    def reset(self) -> None:
        self.frames: list[pd.DataFrame] = []
        self.fingerprint, self.check = Fingerprint(), DuplicateKeyCheck(self.what)

    def add(self, versioned_rows: Iterable[list], frame: pd.DataFrame | None = None) -> None:
        for values in versioned_rows:
            self.check(tuple(values[:self.key_columns]))
            self.fingerprint.add(values)
        if frame is not None:
            self.frames.append(frame)
        if self.on_chunk:
            self.on_chunk(self.fingerprint.rows)

    def snapshot(self) -> dict[str, Any]:
        return _non_empty(self.fingerprint, self.what).as_dict()


# ---------------------------------------------------------------------------------------------------- PostgreSQL


def describe_dsn(dsn: str) -> str:
    """user@host:port/dbname of a libpq DSN or URI, never its password."""
    from psycopg2.extensions import parse_dsn

    try:
        parts = parse_dsn(dsn)
    except Exception as exc:  # noqa: BLE001 - psycopg2 raises ProgrammingError; the DSN itself must not be echoed
        raise SourceError(f"the PostgreSQL connection string is not valid ({type(exc).__name__})") from None
    return (f"{parts.get('user', os.environ.get('PGUSER', '?'))}@{parts.get('host', 'localhost')}:"
            f"{parts.get('port', 5432)}/{parts.get('dbname', '?')}")


def pg_connect(dsn: str, spec: Mapping[str, Any], application_name: str = "cybersentinel"):
    """One connection attempt. Refused credentials and the like become a SourceError (no point retrying);
    an unreachable server stays an OperationalError for the caller's retry loop."""
    import psycopg2

    try:
        return psycopg2.connect(dsn, connect_timeout=int(spec.get("connect_timeout_s", 10)),
                                application_name=application_name)
    except psycopg2.OperationalError as exc:
        if any(marker in str(exc).lower() for marker in _PERMANENT_CONNECT_ERRORS):
            raise SourceError(f"PostgreSQL {describe_dsn(dsn)} refused the connection: {one_line(exc)}") from None
        raise


def pg_query(source_name: str, spec: Mapping[str, Any], columns: Sequence[str] | None):
    """``SELECT columns FROM (table rows of this source | the configured query) ORDER BY key`` with the
    source's name as the ``%(source)s`` parameter: identifiers quoted by psycopg2.sql, values bound."""
    from psycopg2 import sql

    if spec.get("query"):
        base = sql.SQL(spec["query"])  # trusted config text; values only through %(source)s
    elif spec.get("table"):
        base = sql.SQL("SELECT * FROM {}").format(sql.Identifier(*spec["table"].split(".")))
        if spec.get("source_column"):
            base = sql.SQL("{} WHERE {} = %(source)s").format(base, sql.Identifier(spec["source_column"]))
    else:
        raise SourceError("postgres source: set source.table or source.query")
    select = sql.SQL("*") if columns is None else sql.SQL(", ").join(map(sql.Identifier, columns))
    order = sql.SQL(", ").join(map(sql.Identifier, spec["key"]))
    return sql.SQL("SELECT {} FROM ({}) AS q ORDER BY {}").format(select, base, order), {"source": source_name}


def _pg_stream(dsn: str, query, params: Mapping[str, Any], spec: Mapping[str, Any],
               on_rows: Callable[[list[str], list[tuple]], None]) -> None:
    """One read in a read-only REPEATABLE READ transaction, ``chunk_size`` rows per server round trip."""
    import psycopg2
    from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ

    conn = pg_connect(dsn, spec)
    try:
        conn.set_session(isolation_level=ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        with conn.cursor() as setup:
            setup.execute("SET LOCAL statement_timeout = %s", (int(spec.get("statement_timeout_ms") or 0),))
        with conn.cursor(name="cybersentinel_read") as cursor:
            cursor.execute(query, params)
            while rows := cursor.fetchmany(int(spec.get("chunk_size", 10_000))):
                on_rows([d.name for d in cursor.description], rows)
        conn.rollback()
    except psycopg2.errors.QueryCanceled as exc:
        raise SourceError(f"query exceeded statement_timeout_ms={spec.get('statement_timeout_ms')} "
                          f"({one_line(exc)}); raise source.statement_timeout_ms or index source.key") from None
    except (psycopg2.ProgrammingError, psycopg2.DataError, psycopg2.IntegrityError, psycopg2.NotSupportedError) as exc:
        raise SourceError(f"query failed: {one_line(exc)}") from None
    finally:
        conn.close()


def _pg_read(source_name: str, spec: Mapping[str, Any], columns: Sequence[str] | None,
             on_rows: Callable[[list[str], list[tuple]], None], reset: Callable[[], None]) -> str:
    import psycopg2

    dsn = setting_from_env(spec.get("dsn_env", PG_DSN_ENV), f"postgres source {source_name}")
    what = f"postgres source {source_name} ({describe_dsn(dsn)}, {spec.get('table') or 'query'})"
    query, params = pg_query(source_name, spec, columns)

    def attempt() -> None:
        reset()
        try:
            _pg_stream(dsn, query, params, spec, on_rows)
        except SourceError as exc:
            raise SourceError(f"{what}: {exc}") from None

    with_retries(attempt, what=what, retries=int(spec.get("retries", 3)), backoff=float(spec.get("backoff_s", 1.0)),
                 transient=(psycopg2.OperationalError, psycopg2.InterfaceError))
    return what


def _versioned(spec: Mapping[str, Any]) -> list[str]:
    return unique_ordered([*spec["key"], *([spec["version_column"]] if spec.get("version_column") else [])])


def read_postgres(source_name: str, spec: Mapping[str, Any],
                  on_chunk: Callable[[int], None] | None = None) -> Ingested:
    """The rows of one dataset source from PostgreSQL, in key order, as its tidy table."""
    versioned = _versioned(spec)
    columns = unique_ordered([*spec["columns"], *versioned]) if spec.get("columns") else None
    collected = Collected(f"postgres source {source_name}", len(spec["key"]), on_chunk)

    def on_rows(names: list[str], rows: list[tuple]) -> None:
        where = [names.index(c) for c in versioned]
        collected.add(([row[i] for i in where] for row in rows), pd.DataFrame.from_records(rows, columns=names))

    started = utc_now()
    what = _pg_read(source_name, spec, columns, on_rows, collected.reset)
    return _finish(what, source_name, spec, collected, started, drop=[spec.get("source_column") or ""])


def postgres_snapshot(source_name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Row count + hash of the ordered keys (and versions): reads only those columns."""
    collected = Collected(f"postgres source {source_name}", len(spec["key"]))
    _pg_read(source_name, spec, _versioned(spec), lambda _, rows: collected.add(list(r) for r in rows),
             collected.reset)
    return collected.snapshot()


def _non_empty(fingerprint: Fingerprint, what: str) -> Fingerprint:
    if not fingerprint.rows:  # an empty result is a wrong filter or an unloaded database, not an empty dataset
        raise SourceError(f"{what}: the query returned no rows")
    return fingerprint


def _finish(what: str, source_name: str, spec: Mapping[str, Any], collected: Collected, started: str,
            drop: Sequence[str]) -> Ingested:
    fingerprint = _non_empty(collected.fingerprint, what)
    frames = collected.frames
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    try:
        table = tidy(frame, spec, source_name, fingerprint.sha256[:16], drop=[c for c in drop if c])
    except SourceError as exc:
        raise SourceError(f"{what}: {exc}") from None
    fetch = {"source": source_name, "kind": spec["kind"], "from": what, "rows": fingerprint.rows,
             "fingerprint": fingerprint.sha256, "started_at": started, "finished_at": utc_now()}
    return Ingested(table, fingerprint.as_dict(), [fetch])


# ---------------------------------------------------------------------------------------------------- MongoDB


def describe_mongodb_uri(uri: str) -> str:
    """The hosts of a MongoDB URI, never its credentials."""
    from urllib.parse import urlsplit

    return urlsplit(uri).netloc.rpartition("@")[2] or "?"


def mongo_client(uri: str, spec: Mapping[str, Any]):
    """A client that fails fast when the server is down (the caller retries a bounded number of times)."""
    import pymongo

    timeout_ms = int(float(spec.get("connect_timeout_s", 10)) * 1000)
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
                               appname="cybersentinel")


def mongo_collection(client, spec: Mapping[str, Any], name: str | None = None):
    return client.get_database(spec.get("database") or None)[name or spec["collection"]]


def _mongo_read(source_name: str, spec: Mapping[str, Any], fields: Sequence[str] | None,
                on_docs: Callable[[list[dict]], None], reset: Callable[[], None]) -> str:
    from pymongo import errors

    uri = setting_from_env(spec.get("uri_env", MONGODB_URI_ENV), f"mongodb source {source_name}")
    what = f"mongodb source {source_name} ({describe_mongodb_uri(uri)}, collection {spec['collection']})"
    query = dict(spec.get("filter") or {})
    if spec.get("source_field"):
        query[spec["source_field"]] = source_name
    projection = None
    if fields is not None:
        projection = {name: 1 for name in fields} | ({} if "_id" in fields else {"_id": 0})
    batch = int(spec.get("batch_size", 10_000))

    def attempt() -> None:
        reset()
        client = mongo_client(uri, spec)
        try:
            cursor = mongo_collection(client, spec).find(query, projection)
            cursor = cursor.sort([(k, 1) for k in spec["key"]]).batch_size(batch)
            if spec.get("max_time_ms"):
                cursor = cursor.max_time_ms(int(spec["max_time_ms"]))
            docs: list[dict] = []
            for doc in cursor:
                docs.append(doc)
                if len(docs) == batch:
                    on_docs(docs)
                    docs = []
            if docs:
                on_docs(docs)
        except errors.ExecutionTimeout as exc:
            raise SourceError(f"{what}: query exceeded max_time_ms={spec.get('max_time_ms')} "
                              f"({one_line(exc)})") from None
        except errors.OperationFailure as exc:  # refused credentials, bad filter: retrying cannot help
            raise SourceError(f"{what}: {one_line(exc)}") from None
        except errors.ConfigurationError as exc:
            raise SourceError(f"{what}: {one_line(exc)}") from None
        finally:
            client.close()

    with_retries(attempt, what=what, retries=int(spec.get("retries", 3)), backoff=float(spec.get("backoff_s", 1.0)),
                 transient=(errors.ConnectionFailure,))
    return what


def read_mongodb(source_name: str, spec: Mapping[str, Any],
                 on_chunk: Callable[[int], None] | None = None) -> Ingested:
    """The documents of one dataset source from MongoDB, in key order, as its tidy table."""
    versioned = _versioned(spec)
    fields = unique_ordered([*spec["columns"], *versioned]) if spec.get("columns") else None
    collected = Collected(f"mongodb source {source_name}", len(spec["key"]), on_chunk)

    def on_docs(docs: list[dict]) -> None:
        collected.add(([doc.get(name) for name in versioned] for doc in docs), pd.DataFrame.from_records(docs))

    started = utc_now()
    what = _mongo_read(source_name, spec, fields, on_docs, collected.reset)
    return _finish(what, source_name, spec, collected, started, drop=[spec.get("source_field") or "", "_id"])


def mongodb_snapshot(source_name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    versioned = _versioned(spec)
    collected = Collected(f"mongodb source {source_name}", len(spec["key"]))
    _mongo_read(source_name, spec, versioned,
                lambda docs: collected.add([doc.get(name) for name in versioned] for doc in docs), collected.reset)
    return collected.snapshot()
