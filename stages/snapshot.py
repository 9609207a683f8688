"""Snapshot: fingerprint what ingest would read now and write it to one small JSON file.

A database or API changes under DVC's feet, so this stage is ``always_changed``: it runs on every
`dvc repro`, but its output (row count + hash of the ordered keys and versions per dataset source; for
files, their checksums) only changes when the data do, and ingest, which depends on it, reruns only then.
No timestamps: identical data give an identical file. An empty analyst feedback store is left out, so a
dataset with a feedback source gives the same file as without one until feedback exists.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import yaml

from cybersentinel.core.config import dataset_sources, is_feedback
from cybersentinel.ingest.fingerprint import files_snapshot


def fingerprint(source: dict, origin: dict) -> dict:
    if is_feedback(source):  # the analyst feedback store, whatever the origin
        from cybersentinel.ingest.feedback import feedback_snapshot

        return feedback_snapshot(source)
    if origin["kind"] == "files":  # checksums from the config: no pandas import, no I/O on every repro
        return files_snapshot(source)
    from cybersentinel.ingest.base import SourceError
    from cybersentinel.ingest.sources import snapshot

    try:
        return snapshot(source, origin)
    except SourceError as exc:
        sys.exit(f"snapshot failed: {exc}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="the snapshot JSON file")
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())  # not cybersentinel.core.files: it imports pandas
    origin = params.get("source") or {"kind": "files"}
    sources = {source["name"]: fingerprint(source, origin) for source in dataset_sources(params["dataset"])}
    for source in dataset_sources(params["dataset"]):
        if is_feedback(source) and not sources[source["name"]]["rows"]:
            print(f"{source['name']}: no analyst feedback yet, left out")
            del sources[source["name"]]
    for name, entry in sources.items():
        print(f"{name}: snapshot {entry['snapshot']} ({origin['kind']}, {entry['rows']:,} rows or files)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{args.out.name}.", dir=args.out.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"kind": origin["kind"], "sources": sources}, handle, indent=2, sort_keys=True)
            handle.write("\n")
        umask = os.umask(0o022)  # read back at once: mkstemp's 0600 becomes what the umask allows, as elsewhere
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, args.out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


if __name__ == "__main__":
    main()
