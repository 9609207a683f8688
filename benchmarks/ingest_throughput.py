"""Ingest and ETL throughput on the real URL datasets, repeated to at least --rows rows (default 120,000):

  * ETL load into PostgreSQL (`etl load`'s prepare + COPY + upsert in one transaction), first and repeated run
  * ingest from PostgreSQL (the `postgres` source: server-side cursor, JSON attributes expanded) and the
    snapshot stage's fingerprint query
  * ingest from a paginated JSON API served on 127.0.0.1 (the `json_api` source, 1,000 records a page)

    .venv/bin/python benchmarks/ingest_throughput.py [--rows N] [--page-size N]

PostgreSQL: a throwaway cluster (tests/fixtures_db.py; Debian's `postgresql`, run as the `postgres` user when
root), or an existing scratch database whose DSN is in CYBERSENTINEL_BENCH_PG_DSN (its tables are replaced).
The data come from the offline mirror ($CYBERSENTINEL_DATA_MIRROR, else ../shared/data/upstream). Prints
measured figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test servers: ThrowawayPostgres, LocalHTTPServer

from fixtures_db import ThrowawayPostgres, postgres_bindir  # noqa: E402
from fixtures_http import LocalHTTPServer, paginated_api  # noqa: E402

from cybersentinel.core.config import dataset_sources  # noqa: E402
from cybersentinel.ingest.files import MIRROR_ENV, read_source  # noqa: E402
from cybersentinel.ingest.json_api import read_json_api  # noqa: E402
from cybersentinel.ingest.postgres import postgres_snapshot, read_postgres  # noqa: E402
from cybersentinel.ops.etl import load_postgres, migrate_postgres, prepare_labelled_urls  # noqa: E402


def url_rows(rows: int) -> pd.DataFrame:
    """The `urls` dataset's tidy rows (85,005, with the 87 page features of web_page_phishing as attributes),
    repeated under new source names until there are ``rows``."""
    mirror = os.environ.get(MIRROR_ENV) or str(ROOT.parent / "shared" / "data" / "upstream")
    dataset = yaml.safe_load((ROOT / "conf" / "dataset" / "urls.yaml").read_text())
    base = pd.concat([read_source(source, mirror) for source in dataset_sources(dataset)], ignore_index=True)
    copies = []
    for copy in range(math.ceil(rows / len(base))):
        part = base.copy()
        if copy:
            part["source"] = part["source"] + f"_copy{copy}"
        copies.append(part)
    return pd.concat(copies, ignore_index=True).head(rows)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def report(what: str, rows: int, seconds: float) -> None:
    print(f"{what:62s} {rows:>9,} rows {seconds:7.2f} s {rows / seconds:>10,.0f} rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=120_000)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()

    table = url_rows(args.rows)
    sources = list(dict.fromkeys(table["source"]))
    with_attributes = int(table.drop(columns=["url", "label", "source", "snapshot"]).notna().any(axis=1).sum())
    print(f"{len(table):,} URL rows in {len(sources)} sources ({with_attributes:,} with 87 page-feature attributes)")

    server = None
    dsn = os.environ.get("CYBERSENTINEL_BENCH_PG_DSN")
    if not dsn:
        server = ThrowawayPostgres(postgres_bindir())
        dsn = server.dsn()
        print(f"PostgreSQL: throwaway cluster on 127.0.0.1:{server.port}")
    os.environ["CYBERSENTINEL_PG_DSN"] = dsn
    try:
        migrate_postgres(dsn)
        prepared, seconds = timed(lambda: prepare_labelled_urls(table))
        report("ETL prepare (row checks, attributes to JSON, content hashes)", len(table), seconds)
        counts, seconds = timed(lambda: load_postgres(dsn, [prepared]))
        report(f"ETL load into PostgreSQL, empty table ({vars(counts['labelled_urls'])['inserted']:,} inserted)",
               len(table), seconds)
        counts, seconds = timed(lambda: load_postgres(dsn, [prepare_labelled_urls(table)]))
        report(f"ETL prepare + load again, idempotent ({counts['labelled_urls'].unchanged:,} unchanged)",
               len(table), seconds)

        spec = yaml.safe_load((ROOT / "conf" / "source" / "postgres.yaml").read_text())
        got, seconds = timed(lambda: [read_postgres(name, spec) for name in sources])
        report("ingest from PostgreSQL (postgres source, chunk 20,000)", sum(len(g.table) for g in got), seconds)
        fingerprints, seconds = timed(lambda: [postgres_snapshot(name, spec) for name in sources])
        report("snapshot fingerprint from PostgreSQL (keys + versions only)", sum(f["rows"] for f in fingerprints),
               seconds)
    finally:
        if server:
            server.close()

    http = LocalHTTPServer()
    try:
        for name in sources:
            part = table[table["source"] == name]
            records = [{"id": i, "url": u, "label": int(lb), "threat": "phishing" if lb else "none"}
                       for i, (u, lb) in enumerate(zip(part["url"], part["label"], strict=True))]
            http.route(f"/v1/{name}/urls", paginated_api(records, default_size=args.page_size))
        api = yaml.safe_load((ROOT / "conf" / "source" / "json_api.yaml").read_text())
        api["pagination"]["page_size"] = args.page_size
        api.update(url=http.base + "/v1/{source}/urls", rate_limit_per_s=None, columns=["url", "label"])
        os.environ.pop("CYBERSENTINEL_API_URL", None)
        got, seconds = timed(lambda: [read_json_api(name, api) for name in sources])
        pages = sum(1 for g in got for f in g.fetches if "status" in f)
        report(f"ingest from the JSON API on 127.0.0.1 ({pages} pages, no rate limit)",
               sum(len(g.table) for g in got), seconds)
    finally:
        http.close()


if __name__ == "__main__":
    main()
