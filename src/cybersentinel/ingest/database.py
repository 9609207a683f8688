"""What the PostgreSQL and MongoDB sources share: connection settings from the environment (or a git-ignored
``.env``), bounded retries from the start, and the accumulator whose ordered keys and versions make the snapshot
fingerprint that tells DVC whether the data changed. A result is never stitched together from two snapshots."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from cybersentinel.ingest.base import Ingested, SourceError, is_missing, tidy, utc_now
from cybersentinel.ingest.fingerprint import Fingerprint

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
        return non_empty(self.fingerprint, self.what).as_dict()


def versioned_columns(spec: Mapping[str, Any]) -> list[str]:
    return unique_ordered([*spec["key"], *([spec["version_column"]] if spec.get("version_column") else [])])


def non_empty(fingerprint: Fingerprint, what: str) -> Fingerprint:
    if not fingerprint.rows:  # an empty result is a wrong filter or an unloaded database, not an empty dataset
        raise SourceError(f"{what}: the query returned no rows")
    return fingerprint


def infer_types(frame: pd.DataFrame) -> pd.DataFrame:
    """Column types read off the whole result at once (chunks arrive as ``dtype=object`` frames), so they never
    depend on where a chunk ended; a column of whole numbers with gaps is ``Int64``, exact past 2**53 (pandas would
    make it float64: 9007199254740993 became ...992)."""
    typed = frame.infer_objects()
    for column in frame.columns:
        values = frame[column]
        if values.dtype != object:
            continue
        gaps = values.map(is_missing)  # a null, or a field a record left out (NaN)
        present = values[~gaps]
        if 0 < len(present) < len(values) and present.map(_int64).all():
            typed[column] = pd.array(values.where(~gaps, None).tolist(), dtype="Int64")
    return typed


def _int64(value: Any) -> bool:
    """A whole number Int64 holds: outside int64 (a JSON API's 2**64) the column keeps pandas' own type."""
    return type(value) is int and -(2 ** 63) <= value < 2 ** 63


def finish_read(what: str, source_name: str, spec: Mapping[str, Any], collected: Collected, started: str,
            drop: Sequence[str]) -> Ingested:
    fingerprint = non_empty(collected.fingerprint, what)
    frames = collected.frames
    frame = infer_types(pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0])
    try:
        table = tidy(frame, spec, source_name, fingerprint.sha256[:16], drop=[c for c in drop if c])
    except SourceError as exc:
        raise SourceError(f"{what}: {exc}") from None
    fetch = {"source": source_name, "kind": spec["kind"], "from": what, "rows": fingerprint.rows,
             "fingerprint": fingerprint.sha256, "started_at": started, "finished_at": utc_now()}
    return Ingested(table, fingerprint.as_dict(), [fetch])
