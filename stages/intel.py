"""Intel: the pinned threat-intel and popularity snapshot the pipeline judges with. Each file named in
``params.intel`` comes from the feeds mirror (CYBERSENTINEL_FEEDS_MIRROR) or its pinned URL, SHA-256 verified,
so `evaluate` scores the served decision (model + feeds + popularity) on the same bytes on every machine.
The service and `predict` use the live snapshot `cybersentinel feeds refresh` keeps in data/feeds instead."""

import argparse
import os
import shutil
from pathlib import Path

from cybersentinel.core.files import atomic_path, read_params
from cybersentinel.ingest.base import SourceError
from cybersentinel.ingest.files import upstream_file

FEEDS_MIRROR_ENV = "CYBERSENTINEL_FEEDS_MIRROR"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    mirror = os.environ.get(FEEDS_MIRROR_ENV) or None
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for spec in read_params()["intel"]["files"]:
            with upstream_file(spec, mirror) as path, atomic_path(args.out / spec["name"]) as tmp:
                shutil.copyfile(path, tmp)
    except SourceError as exc:
        raise SystemExit(f"intel: {exc}") from None
    print(f"intel: {len(read_params()['intel']['files'])} pinned feed files in {args.out}")


if __name__ == "__main__":
    main()
