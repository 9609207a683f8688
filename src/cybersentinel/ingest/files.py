"""The ``files`` source: a dataset's upstream files over HTTP or from an offline mirror folder, streamed,
retried, SHA-256 verified and written atomically, then read by the configured reader."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import requests
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from cybersentinel.core.files import atomic_path, sha256_file
from cybersentinel.core.redact import redact
from cybersentinel.core.retry import BodyLateError, BodyTooLargeError, bounded_body, http_session, one_line, retry_call
from cybersentinel.ingest.base import Ingested, SourceError, map_labels, require_characters, utc_now
from cybersentinel.ingest.fingerprint import files_snapshot

MIRROR_ENV = "CYBERSENTINEL_DATA_MIRROR"
COLLECTIONS_ENV = "CYBERSENTINEL_COLLECTIONS"
COLLECTIONS_DIR = Path("data/collections")


# A file's `max_bytes` and `deadline_s` by default: a download still growing past either fails (and is retried
# no more), as a feed's does; the checksum is only known once the whole body is in
UPSTREAM_MAX_BYTES = 1 << 30
UPSTREAM_DEADLINE_S = 1800.0


def download(url: str, dest: Path, sha256: str, session: requests.Session | None = None,
             timeout: float = 60.0, attempts: int = 3, max_bytes: int = UPSTREAM_MAX_BYTES,
             deadline_s: float = UPSTREAM_DEADLINE_S) -> Path:
    """Stream ``url`` to ``dest``, verifying the checksum before the file appears under its name.

    429/5xx and connection errors are retried by the session; a body cut short or failing its checksum
    is fetched again, up to ``attempts`` times in all, then reported. ``max_bytes`` and ``deadline_s`` bound the
    whole download, its retries included: a server that never stops sending, or trickles, cannot fill the disk or
    hold the stage for ever.
    """
    session = session or http_session()
    deadline = time.monotonic() + deadline_s
    return retry_call(lambda: _download_once(url, dest, sha256, session, timeout, max_bytes, deadline),
                      what=dest.name, attempts=attempts, backoff=0.5, transient=(_BadBodyError,), error=SourceError,
                      deadline=deadline)


class _BadBodyError(Exception):
    """A response body that was cut short or does not match its checksum (worth another try)."""


def _download_once(url: str, dest: Path, sha256: str, session: requests.Session, timeout: float, max_bytes: int,
                   deadline: float) -> Path:
    from cybersentinel.core.http_deadline import http_deadline

    digest = hashlib.sha256()
    try:
        with (atomic_path(dest) as tmp, open(tmp, "wb") as out, http_deadline(deadline),
              session.get(url, stream=True, timeout=timeout) as response):
            if response.status_code != 200:
                raise SourceError(f"{dest.name}: HTTP {response.status_code} from {redact(url)}")
            total = int(response.headers.get("content-length", 0)) or None
            columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn())
            with Progress(*columns, transient=True) as progress:
                task = progress.add_task(dest.name, total=total)
                for chunk in bounded_body(response, max_bytes, deadline):
                    out.write(chunk)
                    digest.update(chunk)
                    progress.update(task, advance=len(chunk))
            out.flush()
            if digest.hexdigest() != sha256:  # raised inside: the temporary file is removed, never renamed
                raise _BadBodyError(f"checksum mismatch for {redact(url)}: expected {sha256}, got {digest.hexdigest()}")
    except BodyTooLargeError:
        raise SourceError(f"{dest.name}: download from {redact(url)} is larger than its cap of {max_bytes:,} bytes "
                          "(the file's max_bytes)") from None
    except BodyLateError as late:
        raise SourceError(f"{dest.name}: download from {redact(url)} still arriving at its deadline ({late}; the "
                          "file's deadline_s)") from None
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
        raise _BadBodyError(f"download from {redact(url)} was cut short: {one_line(exc)}") from exc
    except requests.RequestException as exc:
        if time.monotonic() >= deadline:  # connecting or the headers timed out by the deadline
            raise SourceError(f"{dest.name}: download from {redact(url)} not started by its deadline (the file's "
                              "deadline_s)") from None
        raise SourceError(f"{dest.name}: download from {redact(url)} failed: {one_line(exc)}") from exc
    return dest


@contextmanager
def upstream_file(spec: Mapping[str, Any], mirror: str | None = None):
    """Yield a verified local path for one upstream file: from the mirror folder if one is named
    (``CYBERSENTINEL_DATA_MIRROR``), else downloaded to a temporary folder and removed afterwards.

    A curated collection (``collection: true``) has no public URL: it is read from ``CYBERSENTINEL_COLLECTIONS``
    or else ``data/collections`` (a copy of the team's; no .dvc file versions them yet, since a clone without them
    would then never be up to date)."""
    name, sha256 = spec["name"], spec["sha256"]
    if spec.get("collection"):
        mirror = os.environ.get(COLLECTIONS_ENV) or str(COLLECTIONS_DIR)
        if not (Path(mirror) / name).is_file():
            raise SourceError(f"{name}: a curated collection with no public URL, not found in {mirror}; set "
                              f"{COLLECTIONS_ENV} to the folder holding it (CI: ../shared/data/collections) or copy "
                              "the team's collections into data/collections")
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    if mirror:
        path = Path(mirror) / name
        if not path.is_file():
            raise SourceError(f"{name}: not found in mirror {mirror} (set by {MIRROR_ENV})")
        actual = sha256_file(path)
        if actual != sha256:
            raise SourceError(f"{name}: checksum mismatch in mirror {mirror}: expected {sha256}, got {actual}")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="cybersentinel-") as tmp:
        yield download(spec["url"], Path(tmp) / name, sha256, max_bytes=int(spec.get("max_bytes", UPSTREAM_MAX_BYTES)),
                       deadline_s=float(spec.get("deadline_s", UPSTREAM_DEADLINE_S)))


def read_arff(path: Path) -> pd.DataFrame:
    """Read a dense ARFF file whose attributes are all nominal integers (UCI 327)."""
    from scipy.io import arff

    try:
        records, meta = arff.loadarff(path)
    except (ValueError, arff.ParseArffError) as exc:
        raise SourceError(f"{path.name}: not a readable ARFF file: {exc}") from exc
    frame = pd.DataFrame(records)
    for column in meta.names():
        frame[column] = frame[column].str.decode("ascii").astype("int64")
    return frame


def read_json_list(path: Path) -> pd.DataFrame:
    """Read a JSON array of URL strings; a null is an empty URL, which validation flags. Any other item that is
    not a string (a number, a boolean, an object) is a `SourceError`: its text would pass as a URL."""
    try:
        items = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path.name}: not valid JSON: {exc}") from exc
    if not isinstance(items, list):
        raise SourceError(f"{path.name}: expected a JSON array of URLs, got {type(items).__name__}")
    others = [(i, u) for i, u in enumerate(items) if u is not None and not isinstance(u, str)]
    if others:
        at, item = others[0]
        raise SourceError(f"{path.name}: expected a JSON array of URL strings; {len(others)} items are not strings, "
                          f"the first at index {at}: {json.dumps(item)[:80]}")
    require_characters(items, path.name)
    return pd.DataFrame({"url": ["" if u is None else u for u in items]})


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV file (gzipped by its name); a file pandas cannot read, an empty one, a damaged archive or two columns
    of one name (pandas would rename the second ``label.1`` and the source read the first alone) is a
    `SourceError` naming the file."""
    import gzip

    try:
        frame = pd.read_csv(path, keep_default_na=False, dtype={"url": "string"})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, gzip.BadGzipFile,
            OSError) as exc:
        raise SourceError(f"{path.name}: not a readable CSV file: {exc}") from exc
    # the header as written (pandas renames a repeated name `label.1`), read as the file was: compressed, quoted
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
    if repeated := sorted({name for name in header if header.count(name) > 1}):
        raise SourceError(f"{path.name}: the column(s) {', '.join(repeated)} appear more than once in the header")
    return frame


def _columns(frame: pd.DataFrame, names: list[str], what: str, file: str) -> None:
    """A `SourceError` when the source's configuration names columns the file lacks (not a KeyError later)."""
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise SourceError(f"{file}: no {what} column(s) {', '.join(map(repr, missing))} (the file has "
                          f"{', '.join(map(repr, map(str, frame.columns[:20])))})")


READERS = {"arff": read_arff, "json_list": read_json_list, "csv": read_csv}


def read_source(source: Mapping[str, Any], mirror: str | None = None) -> pd.DataFrame:
    """Read every file of one configured source into its tidy table."""
    reader = READERS[source["reader"]]
    frames = []
    for spec in source["files"]:
        with upstream_file(spec, mirror) as path:
            frame = reader(path)
        if "label" in spec:  # a file whose rows all share one label (the Ebbu2017 JSON lists)
            frame["label"] = pd.Series(int(spec["label"]), index=frame.index, dtype="int8")
        else:
            column = source["label_column"]
            _columns(frame, [column], "label", spec["name"])
            frame["label"] = map_labels(frame.pop(column), source["labels"], spec["name"])
        if source.get("date_column"):  # one name for when a row was seen: ISO dates as text
            frame = frame.rename(columns={source["date_column"]: "date"})
        if source.get("columns"):  # only the configured columns (others describe how a list was built)
            keep = ["date" if c == source.get("date_column") else c for c in source["columns"]]
            _columns(frame, keep, "configured", spec["name"])
            frame = frame[[*keep, "label"]]
        frame["source"] = source["name"]
        frame["snapshot"] = spec["sha256"][:16]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def read_files(source: Mapping[str, Any], mirror: str | None = None) -> Ingested:
    """The ``files`` kind: the dataset's upstream files; the fingerprint covers their checksums."""
    started = utc_now()
    table = read_source(source, mirror)
    where = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    fetches = [{"file": f["name"], "sha256": f["sha256"], "from": f"mirror:{where}" if where else f["url"],
                "started_at": started, "finished_at": utc_now()} for f in source["files"]]
    return Ingested(table, files_snapshot(source), fetches)
