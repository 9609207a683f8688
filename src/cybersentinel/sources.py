"""Reading every data source into one tidy table per dataset source: the source's columns, ``label``
(int8, 1 = phishing/malicious), ``source`` and ``snapshot`` (16 hex characters: the upstream file's
sha256 prefix, or a database/API snapshot fingerprint), so identical data give byte-identical outputs.

Where the data come from is the Hydra ``source`` group (``params["source"]["kind"]``): ``files`` (the
dataset's upstream files over HTTP or from the offline mirror, checksum-verified; this module),
``postgres`` and ``mongodb`` (:mod:`cybersentinel.db`) or ``json_api`` (:mod:`cybersentinel.json_api`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from urllib3.util.retry import Retry

from cybersentinel.fingerprint import files_snapshot
from cybersentinel.io import sha256_file

MIRROR_ENV = "CYBERSENTINEL_DATA_MIRROR"


class SourceError(RuntimeError):
    """An upstream file is missing, corrupt or unreadable; the message names it."""


def http_session(retries: int = 5, backoff: float = 1.0) -> requests.Session:
    """A session that retries connection errors, 429 and 5xx with exponential backoff."""
    retry = Retry(total=retries, backoff_factor=backoff, status_forcelist=(429, 500, 502, 503, 504),
                  allowed_methods=("GET", "HEAD"), respect_retry_after_header=True)
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def download(url: str, dest: Path, sha256: str, session: requests.Session | None = None,
             timeout: float = 60.0, attempts: int = 3) -> Path:
    """Stream ``url`` to ``dest``, verifying the checksum before the file appears under its name.

    429/5xx and connection errors are retried by the session; a body cut short or failing its checksum
    is fetched again, up to ``attempts`` times in all, then reported.
    """
    session = session or http_session()
    for attempt in range(1, attempts + 1):
        try:
            return _download_once(url, dest, sha256, session, timeout)
        except _BadBodyError as exc:
            if attempt == attempts:
                raise SourceError(f"{dest.name}: {exc} (after {attempts} attempts)") from exc
            time.sleep(min(2.0 ** (attempt - 1), 30.0) * 0.5)
    raise AssertionError("unreachable")


class _BadBodyError(Exception):
    """A response body that was cut short or does not match its checksum (worth another try)."""


def _download_once(url: str, dest: Path, sha256: str, session: requests.Session, timeout: float) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, session.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise SourceError(f"{dest.name}: HTTP {response.status_code} from {url}")
            total = int(response.headers.get("content-length", 0)) or None
            columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn())
            with Progress(*columns, transient=True) as progress:
                task = progress.add_task(dest.name, total=total)
                for chunk in response.iter_content(chunk_size=1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    progress.update(task, advance=len(chunk))
        if digest.hexdigest() != sha256:
            raise _BadBodyError(f"checksum mismatch for {url}: expected {sha256}, got {digest.hexdigest()}")
        os.replace(tmp, dest)
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
        raise _BadBodyError(f"download from {url} was cut short: {exc}") from exc
    except requests.RequestException as exc:
        raise SourceError(f"{dest.name}: download from {url} failed: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


@contextmanager
def upstream_file(spec: Mapping[str, Any], mirror: str | None = None):
    """Yield a verified local path for one upstream file: from the mirror folder if one is named
    (``CYBERSENTINEL_DATA_MIRROR``), else downloaded to a temporary folder and removed afterwards."""
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    name, sha256 = spec["name"], spec["sha256"]
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
        yield download(spec["url"], Path(tmp) / name, sha256)


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
    """Read a JSON array of URL strings; non-string items are kept as text for validation to flag."""
    try:
        items = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path.name}: not valid JSON: {exc}") from exc
    if not isinstance(items, list):
        raise SourceError(f"{path.name}: expected a JSON array of URLs, got {type(items).__name__}")
    return pd.DataFrame({"url": ["" if u is None else str(u) for u in items]})


def read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, keep_default_na=False, dtype={"url": "string"})
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path.name}: not a readable CSV file: {exc}") from exc


READERS = {"arff": read_arff, "json_list": read_json_list, "csv": read_csv}


def map_labels(raw: pd.Series, labels: Mapping[Any, int], name: str) -> pd.Series:
    """Map raw label values to 0/1; an unmapped value is an error, never a silently dropped row."""
    mapping = {str(k): int(v) for k, v in labels.items()}
    as_text = raw.astype(str)
    unknown = sorted(set(as_text) - set(mapping))
    if unknown:
        raise SourceError(f"{name}: label values {unknown[:5]} are not in the configured mapping {mapping}")
    return as_text.map(mapping).astype("int8")


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
            frame["label"] = map_labels(frame.pop(column), source["labels"], spec["name"])
        frame["source"] = source["name"]
        frame["snapshot"] = spec["sha256"][:16]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------------- any source

SOURCE_KINDS = ("files", "postgres", "mongodb", "json_api")


def utc_now() -> str:
    """A fetch time for logs and MLflow (never for DVC outputs, which must not change when data do not)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Ingested:
    """One dataset source read into its tidy table, with what was fetched when (for logs, not outputs)."""

    table: pd.DataFrame
    snapshot: dict[str, Any]
    fetches: list[dict[str, Any]]


def expand_json_column(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Replace a column of JSON objects by one column per key, in place of the original column and in
    the keys' first-seen order (a missing key is a missing value)."""
    values = frame[column].map(lambda v: v if isinstance(v, Mapping) else ({} if v is None else v))
    bad = values[~values.map(lambda v: isinstance(v, Mapping))]
    if len(bad):
        raise SourceError(f"column {column!r} should hold JSON objects; {len(bad)} rows do not, "
                          f"e.g. {bad.iloc[0]!r:.80}")
    expanded = pd.DataFrame.from_records(values.tolist(), index=frame.index)
    clash = sorted(set(expanded.columns) & (set(frame.columns) - {column}))
    if clash:
        raise SourceError(f"keys {clash[:5]} of column {column!r} clash with columns of the same name")
    at = frame.columns.get_loc(column)
    return pd.concat([frame.iloc[:, :at], expanded, frame.iloc[:, at + 1:]], axis=1)


def labels_from(raw: pd.Series, spec: Mapping[str, Any], where: str) -> pd.Series:
    """0/1 labels from a source column: mapped through ``spec["labels"]`` if given, else already 0/1."""
    if spec.get("labels"):
        return map_labels(raw, spec["labels"], where)
    numeric = pd.to_numeric(raw, errors="coerce")
    bad = raw[~numeric.isin([0, 1])]
    if len(bad):
        examples = ", ".join(repr(v) for v in bad.drop_duplicates().head(5))
        raise SourceError(f"{where}: {len(bad)} rows have a label that is not 0 or 1 (e.g. {examples}); "
                          "map raw values with source.labels")
    return numeric.astype("int8")


def tidy(frame: pd.DataFrame, spec: Mapping[str, Any], source_name: str, snapshot: str,
         drop: Sequence[str] = ()) -> pd.DataFrame:
    """The tidy-table contract for records from a database or API: the configured columns (JSON objects
    expanded), then ``label``, ``source`` and ``snapshot``; every row kept or a clear error."""
    where = f"{spec['kind']} source {source_name}"
    if spec.get("columns"):
        missing = [c for c in spec["columns"] if c not in frame.columns]
        if missing:
            raise SourceError(f"{where}: columns {missing} not in the result (it has {list(frame.columns)[:20]})")
        frame = frame[list(spec["columns"])]
    else:
        frame = frame.drop(columns=[c for c in drop if c in frame.columns])
    if spec.get("expand_json") and spec["expand_json"] in frame.columns:
        frame = expand_json_column(frame, spec["expand_json"])
    frame = frame.reset_index(drop=True)
    if spec.get("label") is not None:  # a feed whose records all share one label (URLhaus: all malicious)
        label = pd.Series(int(spec["label"]), index=frame.index, dtype="int8")
        frame = frame.drop(columns=[spec.get("label_column", "label")], errors="ignore")
    else:
        column = spec.get("label_column", "label")
        if column not in frame.columns:
            raise SourceError(f"{where}: no label column {column!r} (columns: {list(frame.columns)[:20]})")
        label = labels_from(frame.pop(column), spec, where)
    frame["label"] = label
    frame["source"] = source_name
    frame["snapshot"] = snapshot
    return frame


def read_files(source: Mapping[str, Any], mirror: str | None = None) -> Ingested:
    """The ``files`` kind: the dataset's upstream files; the fingerprint covers their checksums."""
    started = utc_now()
    table = read_source(source, mirror)
    where = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    fetches = [{"file": f["name"], "sha256": f["sha256"], "from": f"mirror:{where}" if where else f["url"],
                "started_at": started, "finished_at": utc_now()} for f in source["files"]]
    return Ingested(table, files_snapshot(source), fetches)


def ingest(source: Mapping[str, Any], origin: Mapping[str, Any], mirror: str | None = None,
           on_chunk: Callable[[int], None] | None = None) -> Ingested:
    """Read one dataset source (``params["dataset"]["sources"][i]``) from the configured origin
    (``params["source"]``). ``on_chunk(rows_so_far)`` is called as database/API rows stream in."""
    kind = origin.get("kind", "files")
    if kind == "files":
        return read_files(source, mirror)
    if kind == "postgres":
        from cybersentinel.db import read_postgres

        return read_postgres(source["name"], origin, on_chunk)
    if kind == "mongodb":
        from cybersentinel.db import read_mongodb

        return read_mongodb(source["name"], origin, on_chunk)
    if kind == "json_api":
        from cybersentinel.json_api import read_json_api

        return read_json_api(source["name"], origin, on_chunk)
    raise SourceError(f"unknown source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}")


def snapshot(source: Mapping[str, Any], origin: Mapping[str, Any]) -> dict[str, Any]:
    """The fingerprint of what :func:`ingest` would read now, computed as cheaply as the origin allows
    (checksums from the config for files; ordered keys and versions only for databases)."""
    kind = origin.get("kind", "files")
    if kind == "files":
        return files_snapshot(source)
    if kind == "postgres":
        from cybersentinel.db import postgres_snapshot

        return postgres_snapshot(source["name"], origin)
    if kind == "mongodb":
        from cybersentinel.db import mongodb_snapshot

        return mongodb_snapshot(source["name"], origin)
    if kind == "json_api":
        from cybersentinel.json_api import json_api_snapshot

        return json_api_snapshot(source["name"], origin)
    raise SourceError(f"unknown source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}")
