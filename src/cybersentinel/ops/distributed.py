"""`cybersentinel predict --engine dask`: batch scoring on a Dask cluster.

Each input partition (a Parquet file, or a run of its row groups; a whole CSV file) is one task: a worker reads
it with the local engine's readers (every row kept, malformed CSV records included), scores it with the same
function (`cybersentinel.scoring.batch.score_batch`) and writes ``part-NNNNN.parquet`` (partition NNNNN, rows in
input order) under a temporary name renamed into place. The model travels once to each worker in a worker
plugin, as its files' bytes, and is loaded there through `Detector.from_dir` (every file hash-checked against
the manifest, whose own hash the client checks too). ``_manifest.json`` is written last, only when every
partition's output row count equals its input's: an output folder without it is not a finished result.

Dask is imported only here and in `cybersentinel.model.distributed` (training, and the cluster connection both
use); the command line imports this module only with ``--engine dask``."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import distributed
import fsspec
import pyarrow.parquet as pq
from distributed import Client, WorkerPlugin

import cybersentinel
from cybersentinel.core.files import ModelIntegrityError, atomic_path, load_manifest
from cybersentinel.core.redact import redact
from cybersentinel.features.lexical import FEATURIZER_VERSION
from cybersentinel.model.distributed import DistributedError
from cybersentinel.scoring.batch import Batch, read_csv, read_parquet, score_batch, with_results
from cybersentinel.scoring.detector import Detector

INPUT_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
MANIFEST = "_manifest.json"
PLUGIN_PREFIX = "cybersentinel-model-"
WARM_UP = ["https://example.com/", "http://login-paypa1.example.net/verify?id=1", "192.0.2.1", "", "not a url"]


@dataclass(frozen=True)
class Piece:
    """One input partition: ``path`` (with its protocol), its format, the Parquet row groups it covers (None:
    the whole file) and their row count from the footer (None for CSV: known once read)."""

    index: int
    path: str
    format: str
    row_groups: tuple[int, ...] | None = None
    rows: int | None = None


def list_inputs(source: str, storage_options: Mapping[str, Any]) -> tuple[fsspec.AbstractFileSystem, list[str]]:
    """The Parquet and CSV files of ``source`` (a file, a folder or a glob, local or remote), sorted by name."""
    fs, _, paths = fsspec.get_fs_token_paths(source, storage_options=dict(storage_options))
    if not any(c in source for c in "*?[") and len(paths) == 1 and fs.isdir(paths[0]):
        paths = fs.find(paths[0])
    files = sorted(p for p in paths
                   if Path(p).suffix.lower() in INPUT_SUFFIXES and not Path(p).name.startswith(("_", ".")))
    if not files:
        raise DistributedError(f"{redact(source)}: no .parquet or .csv file")
    return fs, [fs.unstrip_protocol(p) for p in files]


def plan_pieces(fs: fsspec.AbstractFileSystem, paths: list[str], column: str, rows_per_piece: int) -> list[Piece]:
    """Partitions in input order: each CSV file whole; each Parquet file split into runs of row groups of about
    ``rows_per_piece`` rows (an empty file is one empty partition). Reads only Parquet footers."""
    pieces: list[Piece] = []
    for path in paths:
        fmt = INPUT_SUFFIXES[Path(path).suffix.lower()]
        if fmt == "csv":
            pieces.append(Piece(len(pieces), path, fmt))
            continue
        with fs.open(path, "rb") as handle:
            meta = pq.ParquetFile(handle).metadata
            names = meta.schema.to_arrow_schema().names
        if column not in names:
            raise DistributedError(f"{redact(path)}: no column {column!r} (columns: {names[:10]})")
        run: list[int] = []
        run_rows = 0
        for group in range(meta.num_row_groups):
            if run and run_rows + meta.row_group(group).num_rows > rows_per_piece:
                pieces.append(Piece(len(pieces), path, fmt, tuple(run), run_rows))
                run, run_rows = [], 0
            run.append(group)
            run_rows += meta.row_group(group).num_rows
        if run or meta.num_row_groups == 0:
            pieces.append(Piece(len(pieces), path, fmt, tuple(run), run_rows))
    return pieces


def model_files(model_dir: str | Path) -> tuple[dict[str, bytes], str]:
    """The bytes of the files `Detector.from_dir` reads (the compiled scorer when there is one, else the
    pipeline) and the SHA-256 of ``model.json``. The model is verified here before anything is shipped."""
    model_dir = Path(model_dir)
    Detector.from_dir(model_dir)  # refuses a model whose files do not match its manifest
    manifest = load_manifest(model_dir)
    names = ["model.json", (manifest.get("compiled") or manifest)["file"]]
    names += [manifest[key]["file"] for key in ("popularity", "software") if manifest.get(key)]
    files = {name: (model_dir / name).read_bytes() for name in names}
    return files, hashlib.sha256(files["model.json"]).hexdigest()


class ModelPlugin(WorkerPlugin):
    """Loads the detector once per worker (and again on a restarted one) from the shipped files, hash-checked,
    refuses a worker whose code differs from the client's, and warms the numba kernels."""

    def __init__(self, files: dict[str, bytes], manifest_sha256: str, decider_inputs: tuple, band: float | None,
                 versions: dict[str, str]):
        self.files, self.manifest_sha256, self.versions = files, manifest_sha256, versions
        self.decider_inputs, self.band = decider_inputs, band
        self.name = PLUGIN_PREFIX + manifest_sha256[:16]
        self.detector: Detector | None = None
        self.decider = None

    def setup(self, worker: Any) -> None:
        here = code_versions()
        if here != self.versions:
            raise DistributedError(f"worker {worker.address} runs {here}, the client {self.versions}: install the "
                                   "same versions on the client and every worker")
        if hashlib.sha256(self.files["model.json"]).hexdigest() != self.manifest_sha256:
            raise ModelIntegrityError("model.json changed in transit")
        with tempfile.TemporaryDirectory(prefix="cybersentinel-model-") as folder:
            for name, data in self.files.items():
                (Path(folder) / name).write_bytes(data)
            detector = Detector.from_dir(folder)  # hash-checks every file against model.json
        if self.band is not None:
            detector = detector.with_band(self.band)
        index, allow, block = self.decider_inputs
        self.detector, self.decider = detector, detector.decider(index, allow, block)
        detector.score_values(WARM_UP, decider=self.decider)  # compile or load the numba kernels now
        self.files = {}  # loaded; the bytes are no longer needed on this worker


def code_versions() -> dict[str, str]:
    """What client and workers must share: this package, its feature definitions and the scoring stack."""
    import numba
    import numpy
    import pandas
    import pyarrow

    return {"cybersentinel": cybersentinel.__version__, "features": FEATURIZER_VERSION, "dask": dask.__version__,
            "distributed": distributed.__version__, "numpy": numpy.__version__, "pandas": pandas.__version__,
            "pyarrow": pyarrow.__version__, "numba": numba.__version__}


def _batches(piece: Piece, fs: fsspec.AbstractFileSystem, handle: Any, column: str, chunk_size: int) -> Iterator[Batch]:
    if piece.format == "csv":  # an empty file is an empty partition (the local engine wants a header)
        return read_csv(handle, column, chunk_size) if fs.size(piece.path) else iter(())
    return read_parquet(handle, column, chunk_size, row_groups=piece.row_groups)


def score_piece(piece: Piece, out_dir: str, plugin_name: str, column: str, chunk_size: int, reasons: bool,
                storage_options: Mapping[str, Any]) -> dict[str, Any]:
    """Task: score one partition and write ``part-NNNNN.parquet``; its entry for the run manifest."""
    plugin = distributed.get_worker().plugins[plugin_name]
    fs_in = fsspec.core.url_to_fs(piece.path, **storage_options)[0]
    fs_out, out_root = fsspec.core.url_to_fs(out_dir, **storage_options)
    target = f"{out_root.rstrip('/')}/part-{piece.index:05d}.parquet"
    rows, schema = 0, None
    with fs_in.open(piece.path, "rb") as handle, _atomic_write(fs_out, target) as sink:
        writer = None
        for batch in _batches(piece, fs_in, handle, column, chunk_size):
            table = score_batch(batch, plugin.detector, plugin.decider, reasons)
            writer = writer or pq.ParquetWriter(sink, table.schema)
            writer.write_table(table)
            rows += table.num_rows
            schema = table.schema
        if writer is None:  # an empty partition still gives a valid file with the input's and the result columns
            empty = _empty_result(column, plugin)
            writer, schema = pq.ParquetWriter(sink, empty.schema), empty.schema
            writer.write_table(empty)
        writer.close()
    return {"part": Path(target).name, "input": piece.path, "row_groups": list(piece.row_groups or []) or None,
            "input_rows": piece.rows, "output_rows": rows, "columns": schema.names if schema else []}


def _empty_result(column: str, plugin: ModelPlugin) -> Any:
    """The output of a zero-byte CSV file (no header to read: the URL column alone); the readers give every
    other empty input its own columns."""
    import pyarrow as pa

    urls = pa.array([], pa.string())
    return with_results(Batch(pa.table({column: urls}), urls), plugin.detector.score_values(urls))


class _atomic_write:  # noqa: N801 - used as a context manager, like open()
    """A binary file at ``path`` on ``fs`` that appears only complete: written under a temporary name beside it
    and renamed on success (`atomic_path` on a local disk), removed on failure."""

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str):
        self.fs, self.path = fs, path
        self.local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))

    def __enter__(self) -> Any:
        if self.local:
            self._atomic = atomic_path(self.path)
            self._handle = open(self._atomic.__enter__(), "wb")  # noqa: SIM115
        else:
            self.tmp = f"{self.path}.{uuid.uuid4().hex}.tmp"
            self._handle = self.fs.open(self.tmp, "wb")
        return self._handle

    def __exit__(self, kind, value, traceback) -> None:
        if self.local:
            self._handle.close()
            self._atomic.__exit__(kind, value, traceback)
            return
        if kind is not None:
            discard = getattr(self._handle, "discard", None)  # an S3 upload never completed is never an object
            discard() if discard else self._handle.close()
            if self.fs.exists(self.tmp):
                self.fs.rm(self.tmp)
            return
        self._handle.close()
        self.fs.mv(self.tmp, self.path)


def clear_output(fs: fsspec.AbstractFileSystem, root: str) -> None:
    """A rerun replaces, never appends: the old manifest goes first (the folder stops claiming to be complete),
    then the old partitions and any temporary files a killed worker left."""
    if not fs.exists(root):
        fs.makedirs(root, exist_ok=True)
        return
    if fs.exists(f"{root}/{MANIFEST}"):
        fs.rm(f"{root}/{MANIFEST}")
    _remove(fs, root, lambda name: name.startswith(("part-", ".part-")) and name.endswith((".parquet", ".tmp")))


def _remove(fs: fsspec.AbstractFileSystem, root: str, doomed: Any) -> None:
    stale = [p for p in fs.ls(root, detail=False) if doomed(Path(p).name)]
    if stale:
        fs.rm(stale)


def score_distributed(source: str, out_dir: str, *, model_dir: str | Path, client: Client, scheduler_name: str,
                      column: str = "url", decider_inputs: tuple = (None, None, None), band: float | None = None,
                      reasons: bool = True,
                      chunk_size: int = 50_000, rows_per_piece: int = 1_000_000,
                      storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Score every Parquet/CSV file of ``source`` into ``out_dir`` on ``client``'s cluster; the run manifest."""
    storage_options = dict(storage_options or {})
    started = time.time()
    files, manifest_sha = model_files(model_dir)
    model_manifest = json.loads(files["model.json"])
    fs_in, paths = list_inputs(source, storage_options)
    pieces = plan_pieces(fs_in, paths, column, rows_per_piece)
    fs_out, root = fsspec.core.url_to_fs(out_dir, **storage_options)
    root = root.rstrip("/")
    clear_output(fs_out, root)
    plugin = ModelPlugin(files, manifest_sha, decider_inputs, band, code_versions())
    try:
        client.register_plugin(plugin, name=plugin.name)
    except (DistributedError, ModelIntegrityError, KeyError, ValueError, OSError) as exc:  # raised by a worker's setup
        raise DistributedError(f"the workers could not load the model: {exc}") from exc
    try:
        futures = [client.submit(score_piece, piece, out_dir, plugin.name, column, chunk_size, reasons,
                                 storage_options, key=f"score-{manifest_sha[:8]}-{uuid.uuid4().hex[:8]}-{piece.index}",
                                 pure=False)
                   for piece in pieces]
        try:
            parts = client.gather(futures)
        except distributed.scheduler.KilledWorker as exc:
            raise DistributedError(f"a partition killed its workers too often; no manifest written: {exc}") from exc
    finally:
        client.unregister_worker_plugin(plugin.name)
    short = [p for p in parts if p["input_rows"] is not None and p["input_rows"] != p["output_rows"]]
    if short:
        raise DistributedError(f"rows in != rows out for {[p['part'] for p in short]}; no manifest written")
    # a temporary file a killed worker left behind (its partition was scored again elsewhere)
    _remove(fs_out, root, lambda name: name.startswith(("part-", ".part-")) and name.endswith(".tmp"))
    manifest = {
        "engine": "dask", "scheduler": scheduler_name, "input": redact(source), "output": redact(out_dir),
        "column": column, "partitions": len(parts),
        "input_rows": sum(p["input_rows"] for p in parts if p["input_rows"] is not None)
        if all(p["input_rows"] is not None for p in parts) else None,
        "output_rows": sum(p["output_rows"] for p in parts),
        "model": {"name": model_manifest.get("name"), "manifest_sha256": manifest_sha,
                  "sha256": (model_manifest.get("compiled") or model_manifest)["sha256"]},
        "versions": code_versions(), "seconds": round(time.time() - started, 3),
        "parts": [{**p, "input": redact(p["input"])} for p in parts],
    }
    write_manifest(fs_out, f"{root}/{MANIFEST}", manifest)
    return manifest


def write_manifest(fs: fsspec.AbstractFileSystem, path: str, manifest: dict[str, Any]) -> None:
    data = (json.dumps(manifest, indent=2) + "\n").encode()
    with _atomic_write(fs, path) as handle:
        handle.write(data)
