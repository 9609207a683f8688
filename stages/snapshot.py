"""Snapshot: fingerprint what ingest would read now and write it to one small JSON file.

A database or API changes under DVC's feet, so this stage is ``always_changed``: it runs on every
`dvc repro`, but its output (row count + hash of the ordered keys and versions per dataset source; for
files, their checksums) only changes when the data do, and ingest, which depends on it, reruns only then.
No timestamps: identical data give an identical file.
"""

import argparse
import sys
from pathlib import Path

from cybersentinel.io import read_params, write_json
from cybersentinel.sources import SourceError, snapshot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="the snapshot JSON file")
    args = parser.parse_args()
    params = read_params()
    origin = params.get("source") or {"kind": "files"}
    sources = {}
    for source in params["dataset"]["sources"]:
        try:
            sources[source["name"]] = snapshot(source, origin)
        except SourceError as exc:
            sys.exit(f"snapshot failed: {exc}")
        print(f"{source['name']}: {sources[source['name']]['rows']:,} rows/files, "
              f"snapshot {sources[source['name']]['snapshot']} ({origin['kind']})")
    write_json(args.out, {"kind": origin["kind"], "sources": sources})


if __name__ == "__main__":
    main()
