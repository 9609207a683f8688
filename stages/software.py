"""Software: what widely deployed software knows, from pinned, versioned Debian packages (exact versions and
SHA-256 in params.yaml, from Debian's archive or CYBERSENTINEL_SOFTWARE_MIRROR).

- ``wordpress`` lists the files of a stock WordPress install: ``/wp-login.php``, ``/wp-admin/admin-ajax.php``,
  ``/wp-includes/wlwmanifest.xml``... A phishing kit on a compromised site lives outside those files. Written
  one path per line (directories end with ``/``), sorted.
- ``systemd-resolved``'s ``resolved.conf`` names the public DNS resolvers (``8.8.8.8#dns.google``,
  ``1.1.1.1#cloudflare-dns.com``): their addresses serve DNS and DNS over HTTPS, never a site of their own.
  Written ``address name`` per line, sorted."""

import argparse
import io
import ipaddress
import os
import re
import subprocess
import tarfile
from pathlib import Path

from cybersentinel.core.files import atomic_path, read_params
from cybersentinel.ingest.base import SourceError
from cybersentinel.ingest.files import upstream_file

MIRROR_ENV = "CYBERSENTINEL_SOFTWARE_MIRROR"
WORDPRESS_ROOT = "./usr/share/wordpress/"
RESOLVED_CONF = "./etc/systemd/resolved.conf"
_ADDRESS_AND_NAME = re.compile(r"([0-9A-Fa-f:.]+)#([A-Za-z0-9.-]+)")


def package_files(deb: Path) -> tarfile.TarFile:
    """The file system a Debian package installs, as an in-memory tar archive."""
    listing = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    return tarfile.open(fileobj=io.BytesIO(listing), mode="r:")


def wordpress_paths(archive: tarfile.TarFile) -> list[str]:
    """The paths a package installs under WordPress's root, as URL paths."""
    root = WORDPRESS_ROOT
    members = [m for m in archive.getmembers() if m.name.startswith(root) and len(m.name) > len(root)]
    return sorted({"/" + m.name[len(root):] + ("/" if m.isdir() else "") for m in members})


def resolver_addresses(conf: str) -> dict[str, str]:
    """Address -> DNS name of each ``address#name`` in the comments of a ``resolved.conf``, the examples of
    public resolvers systemd ships (tokens whose address does not parse are not addresses)."""
    found: dict[str, str] = {}
    for line in conf.splitlines():
        if line.startswith("#"):
            for address, name in _ADDRESS_AND_NAME.findall(line):
                try:
                    found.setdefault(str(ipaddress.ip_address(address)), name.lower())
                except ValueError:
                    continue
    return found


def package_resolvers(archive: tarfile.TarFile) -> list[str]:
    try:
        conf = archive.extractfile(RESOLVED_CONF)
    except KeyError:
        conf = None
    found = resolver_addresses(conf.read().decode("utf-8")) if conf is not None else {}
    if not found:
        raise ValueError(f"no `address#name` resolver examples in {RESOLVED_CONF}")
    return [f"{address} {name}" for address, name in sorted(found.items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="stock WordPress paths")
    parser.add_argument("--resolvers", type=Path, required=True, help="public DNS resolvers' addresses")
    args = parser.parse_args()
    software = read_params()["software"]
    mirror = os.environ.get(MIRROR_ENV, "")  # "": no mirror, download it
    for key, read, out in (("wordpress", wordpress_paths, args.out), ("resolvers", package_resolvers, args.resolvers)):
        spec = software[key]
        try:
            with upstream_file(spec, mirror) as deb, package_files(deb) as archive:
                lines = read(archive)
        except SourceError as exc:
            raise SystemExit(f"software: {exc}") from None
        except (OSError, subprocess.CalledProcessError, tarfile.TarError, ValueError) as exc:
            raise SystemExit(f"software: cannot read {spec['name']} ({exc})") from None
        with atomic_path(out) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"software: {len(lines):,} lines from {spec['name']} -> {out}")


if __name__ == "__main__":
    main()
