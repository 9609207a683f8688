"""Ingest: fetch every upstream file of the configured dataset (HTTP or the offline mirror named by
CYBERSENTINEL_DATA_MIRROR, checksum-verified) and write one tidy table per source."""

import argparse
import sys
from pathlib import Path

from cybersentinel.io import read_params, write_parquet
from cybersentinel.sources import SourceError, read_source
from cybersentinel.tracking import stage_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for <source>.parquet tables")
    args = parser.parse_args()
    params = read_params()
    dataset = params["dataset"]
    with stage_run("ingest", params["mlflow"]["experiment"], {"dataset": dataset["name"]}) as tracker:
        for source in dataset["sources"]:
            try:
                table = read_source(source)
            except SourceError as exc:
                sys.exit(f"ingest failed: {exc}")
            write_parquet(args.out / f"{source['name']}.parquet", table)
            print(f"{source['name']}: {len(table):,} rows from {len(source['files'])} file(s)")
            tracker.params({f"{source['name']}.{f['name']}.sha256": f["sha256"] for f in source["files"]})
            tracker.metrics({f"{source['name']}.rows": len(table)})


if __name__ == "__main__":
    main()
