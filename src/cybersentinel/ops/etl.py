"""ETL: load validated, labelled URLs and threat-intel feed entries into PostgreSQL or MongoDB.

Rows are checked first; a row that breaks the schema goes to the ``quarantine`` table/collection with
the reason (never silently dropped). The rest are upserted on their natural key, so loading the same data
twice adds nothing: PostgreSQL in one transaction (COPY into a temporary table, then one
``INSERT ... ON CONFLICT DO UPDATE ... WHERE content changed``), MongoDB in ordered bulk writes. A labelled
URL's key is its position in its source, so the rows of a loaded source that the new table no longer holds
(it shrank, or a row is now rejected) are deleted, in the same transaction on PostgreSQL; sources the table
does not hold are left alone, and so are feed entries (``feed_sha256`` says which snapshot last listed one).
Each load reports inserted, updated, unchanged, rejected and deleted rows per table. The schema (DDL below, MongoDB
indexes) is created by ``cybersentinel etl migrate``; see the README for the tables and their keys.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

# pandas, psycopg2, pymongo and cybersentinel.ingest.sources/db are imported inside the functions that use them,
# so that `cybersentinel --help` starts fast.
if TYPE_CHECKING:
    import pandas as pd


MAX_URL_LENGTH = 65_536  # as the validation schema


URL_COLUMNS = ("url", "label", "source", "snapshot")  # the tidy-table contract; every other column is an attribute


SCHEMA_VERSION = 1


_MIGRATION_LOCK = 0x6379_6265_7273  # pg_advisory_xact_lock key: one migrator at a time


MIGRATIONS: list[tuple[int, str, str]] = [(1, "labelled URLs, feed entries, quarantine", """
CREATE TABLE labelled_urls (
    source          text        NOT NULL CHECK (source <> ''),
    source_row      integer     NOT NULL CHECK (source_row >= 0),   -- position within the source's table
    url             text        NOT NULL CHECK (url <> '' AND length(url) <= 65536),
    label           smallint    NOT NULL CHECK (label IN (0, 1)),   -- 1 = phishing/malicious
    origin_snapshot text        NOT NULL CHECK (origin_snapshot ~ '^[0-9a-f]{16}$'),
    attributes      json        NOT NULL DEFAULT '{}',  -- json, not jsonb: keeps the source's column order
    content_sha256  text        NOT NULL CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    loaded_at       timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, source_row)
);
CREATE INDEX labelled_urls_url ON labelled_urls USING hash (url);  -- URLs can pass btree's 2.7 kB limit
CREATE INDEX labelled_urls_source_label ON labelled_urls (source, label);

CREATE TABLE feed_entries (
    feed            text        NOT NULL CHECK (feed <> ''),
    entry           text        NOT NULL CHECK (entry <> ''),       -- address, CIDR or domain
    kind            text        NOT NULL CHECK (kind IN ('cidr', 'ip', 'domain', 'domain-popularity')),
    network         cidr        CHECK ((network IS NOT NULL) = (kind IN ('cidr', 'ip'))),
    rank            integer     CHECK (rank > 0),
    feed_sha256     text        NOT NULL CHECK (feed_sha256 ~ '^[0-9a-f]{64}$'),  -- snapshot last seen in
    content_sha256  text        NOT NULL CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    loaded_at       timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (feed, entry)
);
CREATE INDEX feed_entries_network ON feed_entries USING gist (network inet_ops);  -- network >>= '1.2.3.4'
CREATE INDEX feed_entries_entry ON feed_entries (entry);

CREATE TABLE quarantine (
    id              bigserial   PRIMARY KEY,
    target          text        NOT NULL,                       -- the table the row was meant for
    reason          text        NOT NULL,
    record          json        NOT NULL,                       -- the row as given (json keeps \\u0000)
    record_sha256   text        NOT NULL,
    rejected_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (target, record_sha256, reason)
);
""")]


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]  # as loaded; content_sha256 covers the non-key ones


TABLES = {
    "labelled_urls": Table("labelled_urls", ("source", "source_row"),
                           ("source", "source_row", "url", "label", "origin_snapshot", "attributes", "content_sha256")),
    "feed_entries": Table("feed_entries", ("feed", "entry"),
                          ("feed", "entry", "kind", "network", "rank", "feed_sha256", "content_sha256")),
}


MONGO_INDEXES: dict[str, list[tuple[list[tuple[str, int]], dict[str, Any]]]] = {
    "labelled_urls": [([("source", 1), ("source_row", 1)], {"unique": True}), ([("url", 1)], {}),
                      ([("source", 1), ("label", 1)], {})],
    "feed_entries": [([("feed", 1), ("entry", 1)], {"unique": True}), ([("entry", 1)], {})],
    "quarantine": [([("target", 1), ("record_sha256", 1), ("reason", 1)], {"unique": True})],
}


class LoadError(RuntimeError):
    """The load could not run or complete; nothing was committed (PostgreSQL) and a rerun is safe."""


@dataclass(frozen=True)
class Prepared:
    """Rows ready to load and rows rejected (``target``, ``reason``, ``record``, ``record_sha256``); ``sources``:
    for labelled URLs, each source's row count in the loaded table (rejected rows included): its positions
    ``0..n-1`` are all it now holds, so its rows in the database beyond them, or at a rejected one, are stale."""

    table: Table
    accepted: pd.DataFrame
    rejected: pd.DataFrame
    sources: Mapping[str, int] = field(default_factory=dict)


@dataclass
class Counts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    deleted: int = 0  # rows of a loaded source that the new table no longer holds


def _native(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON data")


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def record_json(row: Mapping[str, Any]) -> str:
    """A rejected row as JSON, whatever it holds (missing values as null, odd types and infinities as text: the
    quarantine's ``record`` is a JSON column, whose parser refuses ``Infinity``, and one such row made a whole
    load roll back)."""
    return json.dumps({k: None if _missing(v) else _finite(v) for k, v in row.items()}, default=str, allow_nan=False)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float in it, however nested, as its text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "tolist"):  # a NumPy array or scalar
        return _finite(value.tolist())
    return value


def _rejections(target: str, records: Sequence[str], reasons: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({"target": target, "reason": list(reasons), "record": list(records),
                         "record_sha256": [hashlib.sha256(r.encode()).hexdigest() for r in records]},
                        columns=["target", "reason", "record", "record_sha256"])


def prepare_labelled_urls(frame: pd.DataFrame) -> Prepared:
    """Validated URL rows -> ``labelled_urls`` rows keyed by (source, position within the source); every
    column beyond the tidy contract goes into ``attributes`` (missing values left out)."""
    import pandas as pd

    missing = [c for c in URL_COLUMNS if c not in frame.columns]
    if missing:
        raise LoadError(f"the URL table lacks the columns {missing} (expected the validated table: {URL_COLUMNS})")
    frame = frame.reset_index(drop=True)
    reasons = pd.Series("", index=frame.index, dtype=object)

    def flag(mask: pd.Series, reason: str) -> None:
        reasons[mask & (reasons == "")] = reason

    def text(column: str) -> tuple[pd.Series, pd.Series]:
        is_text = frame[column].map(lambda v: isinstance(v, str)).astype(bool)
        return frame[column].where(is_text, "").astype(str), is_text

    url, url_is_text = text("url")
    flag(~url_is_text, "url is missing")
    flag(url.str.strip() == "", "url is blank")
    flag(url.str.len() > MAX_URL_LENGTH, f"url is longer than {MAX_URL_LENGTH} characters")
    flag(url.str.contains("\x00", regex=False), "url contains a NUL character")
    label = pd.to_numeric(frame["label"], errors="coerce")
    flag(~label.isin([0, 1]), "label is not 0 or 1")
    source, _ = text("source")
    flag(source.str.strip() == "", "source is missing")
    snapshot, _ = text("snapshot")
    flag(~snapshot.str.fullmatch(r"[0-9a-f]{16}"), "snapshot is not 16 hex characters")

    attribute_columns = [c for c in frame.columns if c not in URL_COLUMNS]
    attributes = pd.Series("{}", index=frame.index, dtype=object)
    if attribute_columns:
        present = frame[attribute_columns].notna().any(axis=1)
        texts, problems = {}, {}
        for index, record in zip(frame.index[present], frame.loc[present, attribute_columns].to_dict("records"),
                                 strict=True):
            kept = {str(k): v for k, v in record.items() if not _missing(v)}
            if any(isinstance(v, str) and "\x00" in v for v in kept.values()):
                problems[index] = "an attribute contains a NUL character"
                continue
            try:
                texts[index] = json.dumps(kept, default=_native, allow_nan=False)
            except (TypeError, ValueError) as exc:
                problems[index] = f"attributes are not storable as JSON ({exc})"
        attributes.update(pd.Series(texts, dtype=object))
        for index, reason in problems.items():
            if reasons[index] == "":
                reasons[index] = reason

    accepted_mask = reasons == ""
    rows = pd.DataFrame({
        "source": source, "source_row": frame.groupby("source", sort=False, dropna=False).cumcount(),
        "url": url, "label": label.where(accepted_mask, 0).astype("int16"), "origin_snapshot": snapshot,
        "attributes": attributes,
    })[accepted_mask].reset_index(drop=True)
    rows["content_sha256"] = [sha256_json([u, int(lb), s, a]) for u, lb, s, a in
                              zip(rows["url"], rows["label"], rows["origin_snapshot"], rows["attributes"], strict=True)]
    bad = frame[~accepted_mask]
    rejected = _rejections("labelled_urls", [record_json(r) for r in bad.to_dict("records")],
                           reasons[~accepted_mask].tolist())
    named = source[source.str.strip() != ""]  # a row without a source is rejected and belongs to none
    return Prepared(TABLES["labelled_urls"], rows, rejected, {str(s): int(n) for s, n in named.value_counts().items()})


def read_url_table(path: Path) -> Prepared:
    """`prepare_labelled_urls` of the Parquet file at ``path``; a `LoadError` naming the file when it is not
    Parquet or lacks the tidy columns."""
    import pandas as pd
    import pyarrow as pa

    try:
        frame = pd.read_parquet(path)
    except (pa.ArrowException, ValueError) as exc:  # no Parquet footer, a type pandas cannot hold
        raise LoadError(f"{path}: not a Parquet file ({' '.join(str(exc).split())})") from None
    except OSError as exc:  # unreadable, or Parquet whose metadata is damaged
        raise LoadError(f"{path}: cannot read as Parquet ({' '.join(str(exc).split())})") from None
    try:
        return prepare_labelled_urls(frame)
    except LoadError as exc:
        raise LoadError(f"{path}: {exc}") from None


def _feed_entries_of(feed, path: Path, feed_sha256: str) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """(entries, [(record, reason)]) of one feed file, line by line so one bad line rejects only itself."""
    from cybersentinel.intel.feeds import FeedError

    entries, rejects, first_line, position = [], [], {}, 0
    # utf-8-sig: a byte order mark is dropped, as `feeds refresh` does, not part of line 1's entry
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig", errors="replace").splitlines(), 1):
        record = json.dumps({"feed": feed.name, "file": path.name, "line": lineno, "text": line[:2000]})
        try:
            parsed = feed.parser([line], f"{feed.name}:{lineno}")
        except FeedError as exc:
            rejects.append((record, str(exc).split(": ", 1)[-1]))
            if feed.kind == "domain-popularity":  # a bad line still holds its rank
                position += 1
            continue
        if parsed.skipped:
            continue
        position += 1
        for value in parsed.entries:
            if feed.kind == "domain-popularity":
                domain, rank = value
                rank = rank if "," in line.split("#")[0] else position
                row = {"entry": domain, "network": None, "rank": rank}
            elif feed.kind in ("cidr", "ip"):
                entry = str(value.network_address) if value.prefixlen == value.max_prefixlen else str(value)
                row = {"entry": entry, "network": str(value), "rank": None}
            else:
                row = {"entry": value, "network": None, "rank": None}
            if row["entry"] in first_line:
                rejects.append((record, f"duplicate of {row['entry']} on line {first_line[row['entry']]}"))
                continue
            first_line[row["entry"]] = lineno
            entries.append({"feed": feed.name, **row, "kind": feed.kind, "feed_sha256": feed_sha256})
    return entries, rejects


def prepare_feed_entries(folder: Path) -> Prepared:
    """Every known feed file in ``folder`` (a `cybersentinel feeds refresh` snapshot or the mirror)."""
    import pandas as pd

    from cybersentinel.core.files import sha256_file
    from cybersentinel.intel.feeds import FEEDS

    entries, rejects = [], []
    for feed in FEEDS.values():
        path = folder / feed.filename
        if path.is_file():
            found, bad = _feed_entries_of(feed, path, sha256_file(path))
            entries += found
            rejects += bad
    if not entries and not rejects:
        raise LoadError(f"{folder}: no feed files ({', '.join(f.filename for f in FEEDS.values())})")
    columns = list(TABLES["feed_entries"].columns[:-1])
    rows = pd.DataFrame(entries, columns=columns).astype({"rank": "Int64"})
    rows["content_sha256"] = [sha256_json([k, n, r, s]) for k, n, r, s in
                              zip(rows["kind"], rows["network"], rows["rank"].astype(object), rows["feed_sha256"],
                                  strict=True)]
    rejected = _rejections("feed_entries", [r for r, _ in rejects], [reason for _, reason in rejects])
    return Prepared(TABLES["feed_entries"], rows, rejected)


def apply_migrations(cur, migrations: Sequence[tuple[int, str, str]], table: str = "schema_migrations",
                     placeholder: str = "%s") -> list[int]:
    """Apply the migrations a database lacks on an open cursor (the caller holds the transaction and any lock),
    recording each version in ``table``; returns the versions applied. PostgreSQL and SQLite alike (the feedback
    store keeps its own table of versions in the same way)."""
    cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (version integer PRIMARY KEY, "  # noqa: S608 - a constant
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP)")
    cur.execute(f"SELECT version FROM {table}")  # noqa: S608
    done = {version for (version,) in cur.fetchall()}
    applied = []
    for version, name, ddl in migrations:
        if version not in done:
            for statement in filter(str.strip, ddl.split(";\n")):
                cur.execute(statement)
            cur.execute(f"INSERT INTO {table} (version, name) VALUES ({placeholder}, {placeholder})",  # noqa: S608
                        (version, name))
            applied.append(version)
    return applied


def migrate_postgres(dsn: str, spec: Mapping[str, Any] | None = None,
                     migrations: Sequence[tuple[int, str, str]] = MIGRATIONS, table: str = "schema_migrations",
                     lock: int = _MIGRATION_LOCK) -> list[int]:
    """Apply the migrations this database lacks, in one transaction; returns the versions applied."""
    import psycopg2

    from cybersentinel.ingest.base import SourceError
    from cybersentinel.ingest.postgres import describe_dsn, pg_connect

    try:
        conn = pg_connect(dsn, spec or {}, application_name="cybersentinel-migrate")
    except psycopg2.OperationalError as exc:
        raise LoadError(f"cannot connect to PostgreSQL {describe_dsn(dsn)}: {' '.join(str(exc).split())}") from None
    except SourceError as exc:
        raise LoadError(str(exc)) from None
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            return apply_migrations(cur, migrations, table)
    except psycopg2.Error as exc:
        raise LoadError(f"migration failed, nothing applied: {' '.join(str(exc).split())}") from None
    finally:
        conn.close()


def _require_schema_pg(cur) -> None:
    import psycopg2

    try:
        cur.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        version = cur.fetchone()[0]
    except psycopg2.errors.UndefinedTable:
        version = 0
    if version < SCHEMA_VERSION:
        raise LoadError(f"the database schema is at version {version}, this load needs {SCHEMA_VERSION}: "
                        "run `cybersentinel etl migrate --to postgres` first")


def _upsert_pg(cur, prepared: Prepared) -> Counts:
    from psycopg2 import sql
    from psycopg2.extras import execute_values

    table = prepared.table
    stage = sql.Identifier(f"stage_{table.name}")
    target = sql.Identifier(table.name)
    columns = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    cur.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(stage, target))
    buffer = io.StringIO()
    prepared.accepted[list(table.columns)].to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    cur.copy_expert(sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(stage, columns).as_string(cur), buffer)
    updates = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                                 for c in table.columns if c not in table.key)
    cur.execute(sql.SQL("""
        WITH upserted AS (
            INSERT INTO {target} AS t ({columns}) SELECT {columns} FROM {stage}
            ON CONFLICT ({key}) DO UPDATE SET {updates}, updated_at = now()
            WHERE t.content_sha256 IS DISTINCT FROM EXCLUDED.content_sha256
            RETURNING (xmax = 0) AS inserted
        )
        SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
    """).format(target=target, columns=columns, stage=stage, updates=updates,
                key=sql.SQL(", ").join(map(sql.Identifier, table.key))))
    inserted, updated = cur.fetchone()
    deleted = 0
    if prepared.sources:  # the loaded sources' rows the new table no longer holds (keys are positions)
        scope, position = (sql.Identifier(c) for c in table.key)
        cur.execute(sql.SQL("""
            DELETE FROM {target} AS t WHERE t.{scope} = ANY(%s)
            AND NOT EXISTS (SELECT 1 FROM {stage} AS s WHERE s.{scope} = t.{scope} AND s.{position} = t.{position})
        """).format(target=target, stage=stage, scope=scope, position=position), (list(prepared.sources),))
        deleted = cur.rowcount
    if len(prepared.rejected):
        execute_values(cur, "INSERT INTO quarantine (target, reason, record, record_sha256) VALUES %s "
                            "ON CONFLICT (target, record_sha256, reason) DO NOTHING",
                       prepared.rejected[["target", "reason", "record", "record_sha256"]].itertuples(index=False))
    return Counts(inserted, updated, len(prepared.accepted) - inserted - updated, len(prepared.rejected), deleted)


def load_postgres(dsn: str, batches: Sequence[Prepared], spec: Mapping[str, Any] | None = None) -> dict[str, Counts]:
    """Upsert every batch, and delete the loaded sources' stale rows, in one transaction: all of it is committed
    or none; a dropped connection is retried from the start (the upserts and deletes are idempotent)."""
    import psycopg2

    from cybersentinel.core.retry import retry_call
    from cybersentinel.ingest.postgres import describe_dsn, pg_connect

    spec = spec or {}

    def attempt() -> dict[str, Counts]:
        conn = pg_connect(dsn, spec, application_name="cybersentinel-etl")
        try:
            with conn, conn.cursor() as cur:
                _require_schema_pg(cur)
                return {prepared.table.name: _upsert_pg(cur, prepared) for prepared in batches}
        except (psycopg2.IntegrityError, psycopg2.DataError, psycopg2.ProgrammingError) as exc:
            raise LoadError(f"load rolled back, nothing committed: {' '.join(str(exc).split())}") from None
        finally:
            conn.close()

    try:
        return retry_call(attempt, what=f"load into PostgreSQL {describe_dsn(dsn)}",
                          attempts=int(spec.get("retries", 3)) + 1, backoff=float(spec.get("backoff_s", 1.0)),
                          transient=(psycopg2.OperationalError, psycopg2.InterfaceError), error=LoadError)
    except LoadError as exc:
        raise LoadError(f"{exc}; nothing was committed") from None


def migrate_mongodb(db) -> list[int]:
    """Create the collections' indexes (idempotent) and record the schema version."""
    for name, indexes in MONGO_INDEXES.items():
        for keys, options in indexes:
            db[name].create_index(keys, **options)
    applied = []
    for version, name, _ in MIGRATIONS:
        if db.schema_migrations.find_one({"_id": version}) is None:
            db.schema_migrations.insert_one({"_id": version, "name": name, "applied_at": datetime.now(UTC)})
            applied.append(version)
    return applied


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _mongo_documents(prepared: Prepared) -> list[dict[str, Any]]:
    docs = prepared.accepted.to_dict("records")
    if prepared.table.name == "labelled_urls":
        for doc in docs:
            doc["attributes"] = json.loads(doc["attributes"])
        bad = sorted({k for d in docs for k in d["attributes"] if "." in k or k.startswith("$")})
        if bad:
            raise LoadError(f"attribute names {bad[:5]} cannot be MongoDB field names (no '.' or leading '$')")
    return docs


def _upsert_mongo(db, prepared: Prepared, batch_size: int, now: datetime) -> Counts:
    from pymongo import UpdateOne

    table, counts = prepared.table, Counts(rejected=len(prepared.rejected))
    for batch in _chunks(_mongo_documents(prepared), batch_size):
        ops = [UpdateOne({k: doc[k] for k in table.key}, {"$set": doc, "$setOnInsert": {"loaded_at": now}},
                         upsert=True) for doc in batch]
        result = db[table.name].bulk_write(ops, ordered=True)
        counts.inserted += result.upserted_count
        counts.updated += result.modified_count
    counts.unchanged = len(prepared.accepted) - counts.inserted - counts.updated
    counts.deleted = _delete_stale_mongo(db, prepared)
    rejected = prepared.rejected.to_dict("records")
    for batch in _chunks(rejected, batch_size):
        ops = [UpdateOne({k: r[k] for k in ("target", "record_sha256", "reason")},
                         {"$setOnInsert": {"record": r["record"], "rejected_at": now}}, upsert=True) for r in batch]
        db.quarantine.bulk_write(ops, ordered=True)
    return counts


def _delete_stale_mongo(db, prepared: Prepared) -> int:
    """Delete the loaded sources' documents the new table no longer holds: positions past its end, or where its
    row is now rejected (few, so the filter stays small however long the source is)."""
    if not prepared.sources:  # feed entries: keyed by what they are, not by position
        return 0
    scope, position = prepared.table.key
    kept: dict[str, set[int]] = {}
    for source, row in zip(prepared.accepted[scope], prepared.accepted[position], strict=True):
        kept.setdefault(source, set()).add(int(row))
    deleted = 0
    for source, rows in prepared.sources.items():
        gaps = sorted(set(range(rows)) - kept.get(source, set()))
        stale = {"$or": [{position: {"$gte": rows}}, {position: {"$in": gaps}}]} if gaps else {position: {"$gte": rows}}
        deleted += db[prepared.table.name].delete_many({scope: source, **stale}).deleted_count
    return deleted


def load_mongodb(db, batches: Sequence[Prepared], batch_size: int = 1000) -> dict[str, Counts]:
    """Ordered bulk upserts per batch (MongoDB has no multi-document transaction without a replica set,
    so an interrupted load is completed by running it again: the upserts are idempotent)."""
    from pymongo import errors

    if db.schema_migrations.find_one({"_id": SCHEMA_VERSION}) is None:
        raise LoadError(f"database {db.name} has no schema version {SCHEMA_VERSION}: "
                        "run `cybersentinel etl migrate --to mongodb` first")
    now = datetime.now(UTC)
    try:
        return {prepared.table.name: _upsert_mongo(db, prepared, batch_size, now) for prepared in batches}
    except errors.BulkWriteError as exc:
        first = (exc.details.get("writeErrors") or [{}])[0]
        raise LoadError(f"bulk write stopped at operation {first.get('index')}: {first.get('errmsg')}; "
                        "rows before it are loaded, run the load again after fixing the cause") from None


def mongo_database(uri_env: str, database: str | None):
    from cybersentinel.ingest.database import setting_from_env
    from cybersentinel.ingest.mongodb import mongo_client

    uri = setting_from_env(uri_env, "etl")
    return mongo_client(uri, {}).get_database(database or None)


def with_mongo(action: Callable[[Any], Any], uri_env: str, database: str | None, retries: int = 3,
               backoff: float = 1.0) -> Any:
    """Run ``action(db)`` with bounded retries while the server is unreachable."""
    from pymongo import errors

    from cybersentinel.core.retry import retry_call

    def attempt() -> Any:
        db = mongo_database(uri_env, database)
        try:
            return action(db)
        except (errors.OperationFailure, errors.ConfigurationError) as exc:
            raise LoadError(f"MongoDB refused: {' '.join(str(exc).split())}") from None
        finally:
            db.client.close()

    return retry_call(attempt, what="MongoDB", attempts=retries + 1, backoff=backoff,
                      transient=(errors.ConnectionFailure,), error=LoadError)
