"""Analyst feedback as an ingest source: the active (not revoked) verdict corrections of the feedback store, one
training row each (``false_positive`` = 0, ``confirmed_malicious`` = 1), from SQLite (default, a file under
``data/``) or PostgreSQL (when a DSN is configured), fingerprinted like the other database sources.

The store itself (schema, migrations, writes) is `cybersentinel.ops.feedback`; this module only reads it, so the
snapshot stage stays cheap: an absent SQLite file or an empty store is zero rows, not an error, and the
pipeline then leaves the source out altogether (the default dataset is unchanged until feedback exists).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cybersentinel.ingest.fingerprint import Fingerprint

if TYPE_CHECKING:  # pandas comes with these; the snapshot stage reads a SQLite store without it
    from cybersentinel.ingest.base import Ingested
    from cybersentinel.ingest.database import Collected

DSN_ENV = "CYBERSENTINEL_FEEDBACK_DSN"  # a PostgreSQL DSN: the store lives there
PATH_ENV = "CYBERSENTINEL_FEEDBACK_DB"  # else this SQLite file
DEFAULT_PATH = Path("data/feedback.sqlite")

# What trains: one row per active correction, in id order; content_sha256 covers url, label and target.
ACTIVE_ROWS = ("SELECT id, url, label, created_at, content_sha256 FROM feedback WHERE revoked_at IS NULL "
               "ORDER BY id")


@dataclass(frozen=True)
class StoreLocation:
    """Where the feedback store is: a PostgreSQL DSN, or else a SQLite file."""

    dsn: str | None = None
    path: Path = DEFAULT_PATH

    @property
    def dialect(self) -> str:
        return "postgres" if self.dsn else "sqlite"

    def describe(self) -> str:
        """For messages: user@host:port/db (never a password) or the file."""
        if self.dsn:
            from cybersentinel.ingest.postgres import describe_dsn

            return f"PostgreSQL {describe_dsn(self.dsn)}"
        return f"SQLite {self.path}"


def store_location(spec: Mapping[str, Any] | None = None, path: str | Path | None = None,
                   dsn: str | None = None) -> StoreLocation:
    """PostgreSQL when a DSN is given or configured (``CYBERSENTINEL_FEEDBACK_DSN``, also read from a git-ignored
    ``.env``); else the SQLite file given, or ``CYBERSENTINEL_FEEDBACK_DB``, or the config's ``path``, or
    ``data/feedback.sqlite``."""
    from dotenv import load_dotenv

    spec = spec or {}
    load_dotenv(Path.cwd() / ".env", override=False)
    dsn = dsn or os.environ.get(spec.get("dsn_env", DSN_ENV), "").strip()
    if dsn:
        return StoreLocation(dsn)
    env_path = os.environ.get(spec.get("path_env", PATH_ENV), "").strip()
    return StoreLocation(None, Path(path or env_path or spec.get("path") or DEFAULT_PATH))


def sqlite_connect(path: Path, create: bool = False) -> sqlite3.Connection:
    """A connection to the SQLite store; without ``create`` the file must exist and is opened read-only."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(path, timeout=30)
    # as a URI, percent-encoded (`as_uri`): a "#" or "?" in a folder's name would otherwise end the path there, and
    # SQLite would open (and create) another file, without mode=ro, and find no feedback in it
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)


def _sqlite_rows(path: Path, on_rows: Callable[[list[str], list[tuple]], None], reset: Callable[[], None]) -> None:
    reset()
    if not path.is_file():
        return
    conn = sqlite_connect(path)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'feedback'").fetchone() is None:
            return  # created but never migrated: no feedback yet
        cursor = conn.execute(ACTIVE_ROWS)  # one statement: one consistent read
        names = [d[0] for d in cursor.description]
        while rows := cursor.fetchmany(10_000):
            on_rows(names, rows)
    except sqlite3.DatabaseError as exc:
        from cybersentinel.ingest.base import SourceError

        raise SourceError(f"feedback store SQLite {path}: {exc}") from None
    finally:
        conn.close()


def _postgres_spec(location: StoreLocation, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in spec.items() if k in ("connect_timeout_s", "retries", "backoff_s")},
            "kind": "postgres", "dsn_env": spec.get("dsn_env", DSN_ENV), "query": ACTIVE_ROWS, "key": ["id"],
            "statement_timeout_ms": spec.get("statement_timeout_ms", 60_000)}


def _read(source_name: str, spec: Mapping[str, Any], collected: Collected, want_rows: bool) -> str:
    import pandas as pd

    location = store_location(spec)

    def on_rows(names: list[str], rows: list[tuple]) -> None:
        at = names.index("content_sha256")
        frame = pd.DataFrame(rows, columns=names, dtype=object) if want_rows else None
        collected.add(([row[0], row[at]] for row in rows), frame)

    if location.dsn:
        from cybersentinel.ingest.postgres import _pg_read

        _pg_read(source_name, _postgres_spec(location, spec), None, on_rows, collected.reset)
    else:
        _sqlite_rows(location.path, on_rows, collected.reset)
    return f"feedback source {source_name} ({location.describe()})"


def feedback_snapshot(source: Mapping[str, Any]) -> dict[str, Any]:
    """Row count and fingerprint of the active feedback (ids and content hashes only); zero rows is not an error.
    A SQLite store is read with the standard library alone (the snapshot stage runs on every `dvc repro`)."""
    location = store_location(source)
    if location.dsn:
        from cybersentinel.ingest.database import Collected

        collected = Collected(f"feedback source {source['name']}", 1)
        _read(source["name"], source, collected, want_rows=False)
        return collected.fingerprint.as_dict()
    fingerprint = Fingerprint()
    holder: list[Fingerprint] = [fingerprint]

    def on_rows(names: list[str], rows: list[tuple]) -> None:
        at = names.index("content_sha256")
        for row in rows:
            holder[0].add([row[0], row[at]])

    def reset() -> None:
        holder[0] = Fingerprint()

    _sqlite_rows(location.path, on_rows, reset)
    return holder[0].as_dict()


def read_feedback(source: Mapping[str, Any], on_chunk: Callable[[int], None] | None = None) -> Ingested:
    """The active feedback as a tidy table: ``url``, ``date`` (when it was given), ``label``, ``source``,
    ``snapshot``. An empty store is an error here: the stages leave an empty feedback source out."""
    from cybersentinel.core.redact import mask_credentials
    from cybersentinel.ingest.base import utc_now
    from cybersentinel.ingest.database import Collected, finish_read

    collected = Collected(f"feedback source {source['name']}", 1, on_chunk)
    started = utc_now()
    what = _read(source["name"], source, collected, want_rows=True)
    for frame in collected.frames:
        frame["date"] = frame["created_at"].map(lambda v: str(v)[:10])
        # a row stored before its credentials were masked (session 42's and earlier releases) trains masked, as a
        # new row is stored: a token never reaches the dataset, the DVC cache or the remote
        frame["url"] = frame["url"].map(mask_credentials)
    spec = {"kind": "feedback", "columns": ["url", "date", "label"], "label_column": "label"}
    return finish_read(what, source["name"], spec, collected, started, drop=[])
