"""The decision log: what was scored and what was decided, as rotated Parquet files for `cybersentinel drift` and
the analysts' review. Off unless a folder is configured.

A row holds the scored value (the URL, domain or IP as submitted, the password of its user-info and the values of
its credential parameters masked, ``?access_token=***``: `mask_credentials`; the scorer read it unmasked, `drift`
reads it masked) and the decision: ``time`` (UTC), ``url``, ``verdict``, ``score``, ``model_score`` (null when the
model could not score it), ``reasons``, ``model_sha256``. Nothing else of a request (no headers, addresses or keys)
is kept.

Cheap on the request path: `DecisionLog.record` appends the batch's results to a list under a lock; a background
thread turns them into Arrow and writes a row group every ``flush_seconds`` (1 s). Each file is written under a hidden
temporary name and renamed to ``decisions-<start>-<pid>-<n>.parquet`` only when closed (rotated after
``rotate_rows`` rows or ``rotate_seconds``, and at shutdown), so a reader never sees a half-written file. A process
that is killed loses at most its open file. Files whose newest row is older than ``retention_days`` are deleted at
each rotation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from cybersentinel.core.redact import mask_credentials
from cybersentinel.features.lexical import MAX_URL_CHARS

log = logging.getLogger("cybersentinel.ops.decisions")


SCHEMA = pa.schema([
    ("time", pa.timestamp("ms", tz="UTC")), ("url", pa.string()), ("verdict", pa.string()), ("score", pa.float64()),
    ("model_score", pa.float64()), ("reasons", pa.string()), ("model_sha256", pa.string()),
])


FILE_PATTERN = re.compile(r"decisions-(\d{8}T\d{6}Z)-(\d+)-(\d+)\.parquet")


STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class LogSettings:
    folder: Path
    rotate_rows: int = 1_000_000
    rotate_seconds: float = 3600.0
    retention_days: float = 30.0
    flush_seconds: float = 1.0  # short flushes: each holds the GIL for less time

    def __post_init__(self) -> None:
        if self.rotate_rows < 1 or self.rotate_seconds <= 0 or self.retention_days <= 0 or self.flush_seconds <= 0:
            raise ValueError("decision log: rotate_rows, rotate_seconds, retention_days and flush_seconds must be > 0")


def to_table(batches: Sequence[tuple[float, Sequence[Mapping[str, Any]]]], model_sha256: str) -> pa.Table:
    """The log's rows for batches of (unix time, results); a result is a dict with ``url``, ``verdict``,
    ``score``, and optionally ``model_score`` and ``reasons``. Built column by column (comprehensions, not a loop
    of appends): this runs in the writer thread, but holds the GIL the request path needs."""
    rows = [r for _, results in batches for r in results]
    times = [int(when * 1000) for when, results in batches for _ in results]
    # a value is logged up to the longest URL the scorer reads: a client's megabyte of text (an error, not a
    # score) does not cost the log a megabyte a request for 30 days
    urls = [str(r.get("url", ""))[:MAX_URL_CHARS] for r in rows]
    reasons = [r.get("reasons") or None for r in rows]
    # credentials are masked here, before anything is written, and not in `record`: off the request path (the
    # policy's reasons never quote one: `decider.userinfo_deception`, `policy.page_entry`)
    # user-info, a query's parameters, or a URL escaped into a path (``/https%3A%2F%2Fx%2Fcb%3Fcode%3D…``)
    for i in [i for i, url in enumerate(urls) if "@" in url or "=" in url or "%" in url]:
        urls[i] = mask_credentials(urls[i])
    return pa.table([pa.array(times, pa.int64()).cast(SCHEMA.field("time").type), _texts(urls),
                     pa.array([r.get("verdict") or None for r in rows], pa.string()),
                     _numbers([r.get("score") for r in rows]), _numbers([r.get("model_score") for r in rows]),
                     _texts(reasons),
                     pa.array([model_sha256] * len(rows), pa.string())], schema=SCHEMA)


def _numbers(values: list[Any]) -> pa.Array:
    """Floats; None and NaN (no score) become null."""
    return pa.array(values, pa.float64(), from_pandas=True)


def _texts(values: list[str | None]) -> pa.Array:
    """Strings as UTF-8; a lone surrogate (valid in a JSON request, not in UTF-8) is kept as a ``\\udXXX`` escape."""
    try:
        return pa.array(values, pa.string())
    except UnicodeEncodeError:
        return pa.array([v if v is None else v.encode("utf-8", "backslashreplace").decode("utf-8") for v in values],
                        pa.string())


@dataclass
class DecisionLog:
    """One process's writer. `record` from any thread; `close` once at shutdown (flushes and closes the file)."""

    settings: LogSettings
    model_sha256: str
    clock: Any = time.time  # injectable for the rotation and retention tests
    _pending: list = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _write_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _file: Any = field(default=None, init=False, repr=False)
    _sequence: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        # the URLs users asked about: a folder this makes is its owner's alone (an existing one keeps its mode)
        self.settings.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        to_table([(0.0, [{"url": ""}])], self.model_sha256)  # pyarrow's first string array costs ~0.5 s: not later
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._thread.start()

    def record(self, results: Sequence[Mapping[str, Any]]) -> None:
        """Queue one batch of results (the request path: an append, nothing more)."""
        when = self.clock()
        with self._lock:
            self._pending.append((when, results))

    def _run(self) -> None:
        while not self._stop.wait(self.settings.flush_seconds):
            try:
                self.flush()
            except OSError as err:  # a full or read-only disk must not stop the log for good: say so, retry
                log.error("decision log %s: %s; its rows are lost, trying again in %.0f s", self.settings.folder,
                          err, self.settings.flush_seconds)

    def flush(self) -> None:
        """Write what is queued into the open file (opening or rotating files as needed)."""
        with self._lock:
            batches, self._pending = self._pending, []
        with self._write_lock:
            if self._file is not None and self._file.due(self.clock(), self.settings):
                self._rotate()
            if batches:
                table = to_table(batches, self.model_sha256)
                if self._file is None:
                    self._file = OpenFile.start(self.settings.folder, self.clock(), self._next_sequence())
                self._file.write(table)
                if self._file.due(self.clock(), self.settings):
                    self._rotate()

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def _rotate(self) -> None:
        self._file.close()
        self._file = None
        remove_expired(self.settings.folder, self.clock(), self.settings.retention_days,
                       self.settings.rotate_seconds + self.settings.flush_seconds)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()
        with self._write_lock:
            if self._file is not None:
                self._rotate()


@dataclass
class OpenFile:
    """A Parquet file being written under a hidden temporary name, renamed into place when closed."""

    target: Path
    opened: float
    writer: Any
    context: contextlib.ExitStack
    rows: int = 0

    @classmethod
    def start(cls, folder: Path, now: float, sequence: int) -> OpenFile:
        import pyarrow.parquet as pq

        from cybersentinel.core.files import atomic_path

        stamp = datetime.fromtimestamp(now, UTC).strftime(STAMP)
        target = folder / f"decisions-{stamp}-{os.getpid()}-{sequence}.parquet"
        context = contextlib.ExitStack()
        tmp = context.enter_context(atomic_path(target))
        return cls(target, now, pq.ParquetWriter(tmp, SCHEMA, compression="zstd"), context)

    def write(self, table: pa.Table) -> None:
        self.writer.write_table(table)
        self.rows += table.num_rows

    def due(self, now: float, settings: LogSettings) -> bool:
        return self.rows >= settings.rotate_rows or now - self.opened >= settings.rotate_seconds

    def close(self) -> None:
        self.writer.close()
        self.context.close()  # atomic_path renames the finished file into place


def log_files(folder: Path) -> list[Path]:
    """The finished log files, oldest first (temporary files of files still being written are not listed)."""
    return sorted((p for p in folder.glob("decisions-*.parquet") if FILE_PATTERN.fullmatch(p.name)),
                  key=lambda p: (FILE_PATTERN.fullmatch(p.name).group(1), p.name))


def remove_expired(folder: Path, now: float, retention_days: float, open_for_s: float = 0.0) -> list[Path]:
    """Delete finished files last written more than ``retention_days`` ago, and the temporary files of writers
    that died (a killed worker's ``.decisions-….parquet.….tmp``, which no one will finish) as old and older than
    ``open_for_s`` (a rotation period and a flush: a live writer's file, idle since it was opened, is renamed
    before then); return them."""
    cutoff = now - retention_days * 86400
    dead = min(cutoff, now - open_for_s)
    removed = []
    temporary = folder.glob(".decisions-*.parquet.*.tmp")
    for path, before in [*((p, cutoff) for p in log_files(folder)), *((p, dead) for p in temporary)]:
        with contextlib.suppress(FileNotFoundError):  # another worker removed it first
            if path.stat().st_mtime < before:
                path.unlink()
                removed.append(path)
    return removed


def read_window(folder: Path, since: datetime | None = None, until: datetime | None = None) -> pa.Table:
    """The logged rows with ``since <= time < until`` from every finished file that can hold them."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such decision log folder")
    tables = []
    for path in log_files(folder):
        started = datetime.strptime(FILE_PATTERN.fullmatch(path.name).group(1), STAMP).replace(tzinfo=UTC)
        if until is not None and started >= until:
            continue  # every row in it is newer
        table = pq.read_table(path, schema=SCHEMA)
        mask = None
        if since is not None:
            mask = pc.greater_equal(table["time"], pa.scalar(since, SCHEMA.field("time").type))
        if until is not None:
            upper = pc.less(table["time"], pa.scalar(until, SCHEMA.field("time").type))
            mask = upper if mask is None else pc.and_(mask, upper)
        tables.append(table if mask is None else table.filter(mask))
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()


def parse_window(last: str | None, since: str | None, until: str | None,
                 now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
    """``--last 24h`` (s, m, h, d) or ``--since``/``--until`` (ISO 8601; UTC unless an offset is given)."""
    if last and since:
        raise ValueError("give --last or --since, not both")
    now = now or datetime.now(UTC)

    def instant(text: str) -> datetime:
        value = datetime.fromisoformat(text)
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    end = instant(until) if until else None
    if last:
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", last.strip())
        if not match:
            raise ValueError(f"--last {last!r}: expected a number and s, m, h or d (e.g. 24h)")
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        return (end or now) - timedelta(seconds=float(match.group(1)) * unit), end
    return (instant(since) if since else None), end
