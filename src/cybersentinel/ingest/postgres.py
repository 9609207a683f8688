"""PostgreSQL as an ingest source: rows streamed in key order through a server-side cursor."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from cybersentinel.core.retry import one_line, retry_call
from cybersentinel.ingest.base import Ingested, SourceError, utc_now
from cybersentinel.ingest.database import (
    Collected,
    finish_read,
    setting_from_env,
    unique_ordered,
    versioned_columns,
)

PG_DSN_ENV = "CYBERSENTINEL_PG_DSN"


# libpq's messages for failures that retrying cannot fix
_PERMANENT_CONNECT_ERRORS = ("authentication failed", "no pg_hba.conf entry", "does not exist", "permission denied",
                             "invalid dsn", "invalid connection option")


def describe_dsn(dsn: str) -> str:
    """user@host:port/dbname of a libpq DSN or URI, never its password."""
    from psycopg2.extensions import parse_dsn

    try:
        parts = parse_dsn(dsn)
    except Exception as exc:  # noqa: BLE001 - psycopg2 raises ProgrammingError; the DSN itself must not be echoed
        raise SourceError(f"the PostgreSQL connection string is not valid ({type(exc).__name__})") from None
    # libpq ends user-info at the first "@", and the host at the first "/": a password holding either became the
    # host (``p@ss``) or the port and database name (``1234/secret@db``), which messages would quote
    if "@" in parts.get("host", "") or "@" in parts.get("dbname", ""):
        raise SourceError("the PostgreSQL connection string is not valid: percent-encode '@' in the password (%40) "
                          "and '/' (%2F)")
    if not all(p.strip().isdigit() for p in parts.get("port", "5432").split(",")):
        raise SourceError("the PostgreSQL connection string is not valid: the port is not a number")
    return (f"{parts.get('user', os.environ.get('PGUSER', '?'))}@{parts.get('host', 'localhost')}:"
            f"{parts.get('port', 5432)}/{parts.get('dbname', '?')}")


def pg_connect(dsn: str, spec: Mapping[str, Any], application_name: str = "cybersentinel"):
    """One connection attempt. Refused credentials and the like become a SourceError (no point retrying);
    an unreachable server stays an OperationalError for the caller's retry loop."""
    import psycopg2

    describe_dsn(dsn)  # a malformed DSN is a clear SourceError here, before libpq quotes pieces of it
    try:
        return psycopg2.connect(dsn, connect_timeout=int(spec.get("connect_timeout_s", 10)),
                                application_name=application_name)
    except psycopg2.OperationalError as exc:
        if any(marker in str(exc).lower() for marker in _PERMANENT_CONNECT_ERRORS):
            raise SourceError(f"PostgreSQL {describe_dsn(dsn)} refused the connection: {one_line(exc)}") from None
        raise


# what psycopg2 reads as a placeholder once parameters are bound: %%, %(name)s, or % with anything else
_PLACEHOLDER = re.compile(r"%(?:\((?P<name>[^)]*)\))?(?P<conversion>.?)", re.DOTALL)


def check_placeholders(query: str) -> None:
    """A SourceError for what psycopg2 would fail on with a bare TypeError or KeyError once the query is bound to
    ``{"source": ...}``: a literal ``%`` not written ``%%``, or a parameter other than ``%(source)s``."""
    for match in _PLACEHOLDER.finditer(query):
        name, conversion = match["name"], match["conversion"]
        if name is None and conversion == "%":
            continue
        if name is not None and conversion == "s":
            if name != "source":
                raise SourceError(f"the query names an unknown parameter %({name})s; the only one is %(source)s")
            continue
        fix = "write the parameter %(source)s" if name is not None else "write %% for a literal %"
        raise SourceError(f"the query holds {match[0]!r} at character {match.start() + 1}: {fix} "
                          "(the only parameter is %(source)s)")


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
    if spec.get("query"):
        try:  # before connecting: psycopg2 would say only "dict is not a sequence" or KeyError
            check_placeholders(spec["query"])
        except SourceError as exc:
            raise SourceError(f"{what}: {exc}") from None
    query, params = pg_query(source_name, spec, columns)

    def attempt() -> None:
        reset()
        try:
            _pg_stream(dsn, query, params, spec, on_rows)
        except SourceError as exc:
            raise SourceError(f"{what}: {exc}") from None

    retry_call(attempt, what=what, attempts=int(spec.get("retries", 3)) + 1, backoff=float(spec.get("backoff_s", 1.0)),
               transient=(psycopg2.OperationalError, psycopg2.InterfaceError), error=SourceError)
    return what


def read_postgres(source_name: str, spec: Mapping[str, Any],
                  on_chunk: Callable[[int], None] | None = None) -> Ingested:
    """The rows of one dataset source from PostgreSQL, in key order, as its tidy table."""
    versioned = versioned_columns(spec)
    columns = unique_ordered([*spec["columns"], *versioned]) if spec.get("columns") else None
    collected = Collected(f"postgres source {source_name}", len(spec["key"]), on_chunk)

    def on_rows(names: list[str], rows: list[tuple]) -> None:
        where = [names.index(c) for c in versioned]
        collected.add(([row[i] for i in where] for row in rows), pd.DataFrame(rows, columns=names, dtype=object))

    started = utc_now()
    what = _pg_read(source_name, spec, columns, on_rows, collected.reset)
    return finish_read(what, source_name, spec, collected, started, drop=[spec.get("source_column") or ""])


def postgres_snapshot(source_name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Row count + hash of the ordered keys (and versions): reads only those columns."""
    collected = Collected(f"postgres source {source_name}", len(spec["key"]))
    _pg_read(source_name, spec, versioned_columns(spec), lambda _, rows: collected.add(list(r) for r in rows),
             collected.reset)
    return collected.snapshot()
