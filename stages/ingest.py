"""Ingest: read every source of the configured dataset from the configured origin (params ``source``:
upstream files over HTTP or the CYBERSENTINEL_DATA_MIRROR mirror, PostgreSQL, MongoDB or a JSON API) and
write one tidy table per source, all at once or not at all.

With ``--snapshot`` (the snapshot stage's output) the data read must match the fingerprint recorded
there; a database that changed in between is an error (run `dvc repro` again), so a DVC lock never
pairs one snapshot with another's data. When what was fetched is appended to data/fetch_log.jsonl and
logged to MLflow, never written into the DVC outputs.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from rich.progress import Progress, SpinnerColumn, TextColumn

from cybersentinel.core.config import dataset_sources, is_feedback
from cybersentinel.core.files import read_params
from cybersentinel.core.retry import one_line
from cybersentinel.ingest.base import Ingested, SourceError
from cybersentinel.ingest.sources import ingest, snapshot
from cybersentinel.tracking.runs import stage_run


def unstorable(name: str, table: pd.DataFrame, exc: Exception) -> SourceError:
    """Why Parquet refused ``table``: the first column Arrow cannot hold as one type (values of mixed types, an
    ObjectId, a PostgreSQL range...) and the Python types in it, as a one-line error naming the source."""
    import pyarrow as pa

    for position, column in enumerate(table.columns):
        values = table.iloc[:, position]  # by position: names may repeat
        try:
            pa.array(values, from_pandas=True)
        except (pa.ArrowException, ValueError) as column_exc:
            types = ", ".join(sorted({type(v).__name__ for v in values.dropna()}))
            return SourceError(f"source {name}: column {column!r} holds values Parquet cannot store in one column "
                               f"({types}: {one_line(column_exc)[:200]}); make them one type in the source")
    return SourceError(f"source {name}: cannot be written as Parquet ({one_line(exc)[:300]})")


def write_tables(out: Path, tables: Mapping[str, pd.DataFrame]) -> None:
    """``out/<name>.parquet`` for every table, written to a temporary folder that replaces ``out`` whole; a
    SourceError (``out`` left as it was) when a table holds values Parquet cannot store."""
    import pyarrow as pa

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = out.with_name(f".{out.name}.{os.getpid()}.tmp"), out.with_name(f".{out.name}.{os.getpid()}.old")
    tmp.mkdir()
    try:
        for name, table in tables.items():
            try:
                table.to_parquet(tmp / f"{name}.parquet", index=False)
            except (pa.ArrowException, ValueError) as exc:  # mixed or non-Arrow types; duplicate column names
                raise unstorable(name, table, exc) from None
        shutil.rmtree(old, ignore_errors=True)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def read_all(sources: list[dict], origin: Mapping, expected: Mapping | None) -> dict[str, Ingested]:
    """Every dataset source, checked against the snapshot stage's fingerprints, or a SourceError."""
    results = {}
    if expected is not None:  # an empty feedback store was left out by the snapshot stage
        sources = [s for s in sources if not is_feedback(s) or s["name"] in expected]
    else:
        sources = [s for s in sources if not is_feedback(s) or snapshot(s, origin)["rows"]]
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True) as progress:
        for source in sources:
            name = source["name"]
            task = progress.add_task(f"{name}: reading")

            def show(rows: int, task=task, name=name) -> None:
                progress.update(task, description=f"{name}: {rows:,} rows")

            results[name] = ingest(source, origin, on_chunk=show)
            got = results[name].snapshot
            want = (expected or {}).get(name)
            if expected is not None and (want is None or want["fingerprint"] != got["fingerprint"]):
                raise SourceError(
                    f"{name} changed since the snapshot stage ran (snapshot {want and want['snapshot']}, "
                    f"{want and want['rows']} rows; read {got['snapshot']}, {got['rows']} rows); run `dvc repro` again")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for <source>.parquet tables")
    parser.add_argument("--snapshot", type=Path, help="the snapshot stage's fingerprints to verify against")
    parser.add_argument("--fetch-log", type=Path, default=Path("data/fetch_log.jsonl"),
                        help="append-only record of what was fetched when (not a DVC output)")
    args = parser.parse_args()
    params = read_params()
    dataset = params["dataset"]
    origin = params.get("source") or {"kind": "files"}
    expected = json.loads(args.snapshot.read_text())["sources"] if args.snapshot else None
    tags = {"dataset": dataset["name"], "source_kind": origin["kind"]}
    with stage_run("ingest", params["mlflow"]["experiment"], tags) as tracker:
        try:
            results = read_all(dataset_sources(dataset), origin, expected)
            write_tables(args.out, {name: got.table for name, got in results.items()})
        except SourceError as exc:
            sys.exit(f"ingest failed, nothing written: {exc}")
        fetches = [{"stage": "ingest", **fetch} for got in results.values() for fetch in got.fetches]
        args.fetch_log.parent.mkdir(parents=True, exist_ok=True)
        with open(args.fetch_log, "a") as log:
            log.writelines(json.dumps(fetch, default=str) + "\n" for fetch in fetches)
        for name, got in results.items():
            print(f"{name}: {len(got.table):,} rows from {origin['kind']}, snapshot {got.snapshot['snapshot']}")
            tracker.params({f"{name}.snapshot": got.snapshot["fingerprint"]})
            tracker.metrics({f"{name}.rows": len(got.table)})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "fetches.json")
            path.write_text(json.dumps(fetches, indent=1, default=str))
            tracker.artifact(str(path))


if __name__ == "__main__":
    main()
