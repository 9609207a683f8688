"""Software: which URL paths are files of widely deployed web software, from a pinned, versioned source.
Debian's ``wordpress`` package (exact version and SHA-256 in params.yaml, from Debian's archive or
CYBERSENTINEL_SOFTWARE_MIRROR) lists the files of a stock WordPress install: ``/wp-login.php``,
``/wp-admin/admin-ajax.php``, ``/wp-includes/wlwmanifest.xml``... A phishing kit on a compromised site lives
outside those files. Writes one path per line (directories end with ``/``), sorted."""

import argparse
import io
import os
import subprocess
import tarfile
from pathlib import Path

from cybersentinel.core.files import atomic_path, read_params
from cybersentinel.ingest.base import SourceError
from cybersentinel.ingest.files import upstream_file

MIRROR_ENV = "CYBERSENTINEL_SOFTWARE_MIRROR"
ROOT = "./usr/share/wordpress/"


def package_paths(deb: Path) -> list[str]:
    """The paths a Debian package installs under WordPress's root, as URL paths."""
    listing = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(listing), mode="r:") as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(ROOT) and len(m.name) > len(ROOT)]
    return sorted({"/" + m.name[len(ROOT):] + ("/" if m.isdir() else "") for m in members})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    spec = read_params()["software"]["wordpress"]
    try:
        with upstream_file(spec, os.environ.get(MIRROR_ENV, "")) as deb:  # "": no mirror, download it
            paths = package_paths(deb)
    except SourceError as exc:
        raise SystemExit(f"software: {exc}") from None
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"software: cannot list {spec['name']} with dpkg-deb ({exc})") from None
    with atomic_path(args.out) as tmp:
        tmp.write_text("\n".join(paths) + "\n", encoding="utf-8")
    print(f"software: {len(paths):,} stock WordPress paths from {spec['name']}")


if __name__ == "__main__":
    main()
