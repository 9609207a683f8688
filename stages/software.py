"""Software: what widely deployed software knows, from pinned, versioned Debian packages (exact versions and
SHA-256 in params.yaml, from Debian's archive or CYBERSENTINEL_SOFTWARE_MIRROR).

- ``wordpress`` lists the files of a stock WordPress install: ``/wp-login.php``, ``/wp-admin/admin-ajax.php``,
  ``/wp-includes/wlwmanifest.xml``... A phishing kit on a compromised site lives outside those files. Written
  one path per line (directories end with ``/``), sorted, with the REST API routes WordPress core registers
  (``/wp-json/``, ``/wp-json/wp/v2/pages``, ``/wp-json/oembed/1.0/embed``: every WordPress page links to some in
  its ``<head>``), read from its PHP sources: the URL prefix (``rest_url_prefix``), the ``wp/v2`` controllers'
  and core post types' and taxonomies' ``rest_base``, and the oEmbed routes; and the author archives its
  rewrite rules serve (``/author/{slug}/``, ``/author/{slug}/page/{n}/``, ``/author/{slug}/feed/``: every post's
  byline links one, ``/author/admin/`` on many sites), from the bases in ``class-wp-rewrite.php``.
- ``systemd-resolved``'s ``resolved.conf`` names the public DNS resolvers (``8.8.8.8#dns.google``,
  ``1.1.1.1#cloudflare-dns.com``): their addresses serve DNS and DNS over HTTPS, never a site of their own.
  Written ``address name`` per line, sorted.
- Word lists (``wamerican``, ``wngerman``, ``wfrench``...: each package's list under ``/usr/share/dict``) say which
  letters of a host name are words: small sites are named with words in their own language (``brightleafcandles``,
  ``contabilidade-ferreira``), names registered for phishing are often not (``kyfrlbc8451736``). Written one word
  per line, sorted, the lists together: the entries of three or more letters, accents taken off and lower-cased
  (host names are written that way), possessives and other forms with non-letters left out."""

import argparse
import io
import ipaddress
import os
import re
import subprocess
import tarfile
import unicodedata
from pathlib import Path

from cybersentinel.core.files import atomic_path, read_params
from cybersentinel.ingest.base import SourceError
from cybersentinel.ingest.files import upstream_file

MIRROR_ENV = "CYBERSENTINEL_SOFTWARE_MIRROR"
WORDPRESS_ROOT = "./usr/share/wordpress/"
RESOLVED_CONF = "./etc/systemd/resolved.conf"
SHORTEST_WORD = 3  # two-letter entries (abbreviations, "ab", "ex") would cover random names by chance
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


_REST_PREFIX = re.compile(r"apply_filters\(\s*'rest_url_prefix',\s*'([a-z-]+)'\s*\)")
_REST_BASE = re.compile(r"(?:\$this->rest_base\s*=|'rest_base'\s*=>)\s*'([a-z0-9/-]+)'")  # regex bases skipped
_NAMESPACE = re.compile(r"\$this->namespace\s*=\s*'([a-z0-9/.-]+)'")
_ROUTE = re.compile(r"register_rest_route\(\s*'([a-z0-9/.-]+)',\s*'(/[a-z0-9/-]+)'")


def wordpress_routes(archive: tarfile.TarFile) -> list[str]:
    """The REST routes WordPress core registers, as URL paths under its prefix: the index (``/wp-json/``), the
    ``wp/v2`` resources of its controllers, post types and taxonomies (``/wp-json/wp/v2/pages``), and routes
    registered literally (``/wp-json/oembed/1.0/embed``)."""
    sources = {m.name[len(WORDPRESS_ROOT):]: archive.extractfile(m).read().decode("utf-8", "replace")
               for m in archive.getmembers()
               if m.isfile() and m.name.startswith(WORDPRESS_ROOT + "wp-includes/") and m.name.endswith(".php")}
    prefixes = {p for text in sources.values() for p in _REST_PREFIX.findall(text)}
    if len(prefixes) != 1:
        raise ValueError(f"expected one rest_url_prefix in wp-includes, found {sorted(prefixes) or 'none'}")
    prefix = "/" + prefixes.pop()
    routes = {prefix + "/"}
    for name, text in sources.items():
        namespaces = set(_NAMESPACE.findall(text))
        if name.startswith("wp-includes/rest-api/") and namespaces != {"wp/v2"}:
            continue  # other namespaces' controllers (block editor, site health) are not linked from pages
        routes.update(f"{prefix}/wp/v2/{base}" for base in _REST_BASE.findall(text))
        routes.update(f"{prefix}/{namespace}{route}" for namespace, route in _ROUTE.findall(text))
    if len(routes) == 1:
        raise ValueError("no REST routes in wp-includes")
    return sorted(routes)


_REWRITE_BASE = re.compile(r"public \$(author|pagination|feed)_base\s*=\s*'([a-z0-9-]+)';")


def wordpress_archives(archive: tarfile.TarFile) -> list[str]:
    """The author archive pages WordPress's rewrite rules serve, as path templates (``{slug}`` a user's name,
    ``{n}`` a page number): ``/author/{slug}/``, its numbered pages and its feed."""
    name = WORDPRESS_ROOT + "wp-includes/class-wp-rewrite.php"
    if name not in archive.getnames():
        raise ValueError("no wp-includes/class-wp-rewrite.php")
    bases = dict(_REWRITE_BASE.findall(archive.extractfile(name).read().decode("utf-8", "replace")))
    if set(bases) != {"author", "pagination", "feed"}:
        raise ValueError(f"expected the author, pagination and feed bases in class-wp-rewrite.php, found {bases}")
    author = f"/{bases['author']}/{{slug}}/"
    return [author, f"{author}{bases['pagination']}/{{n}}/", f"{author}{bases['feed']}/"]


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


def package_words(archive: tarfile.TarFile, name: str) -> list[str]:
    """The entries of the package's word list ``name`` (a path it installs) of at least `SHORTEST_WORD` letters, as
    a host name writes them (accents taken off, lower-cased; an entry with a letter that has no plain form, such as
    "ß", left out), sorted and distinct."""
    try:
        listing = archive.extractfile(f"./{name.lstrip('./')}")
    except KeyError:
        listing = None
    if listing is None:
        raise ValueError(f"no {name}")
    words = set()
    for line in listing.read().decode("utf-8", "replace").splitlines():
        decomposed = unicodedata.normalize("NFKD", line.strip())
        word = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()  # "café" -> "cafe"
        if len(word) >= SHORTEST_WORD and word.isascii() and word.isalpha():  # "straße" has no such form
            words.add(word)
    if not words:
        raise ValueError(f"no words of {SHORTEST_WORD} or more letters in {name}")
    return sorted(words)


def package_lines(spec: dict, mirror: str, read) -> list[str]:
    """``read`` of the files of the package ``spec`` pins (from ``mirror``, "" to download it); a package that
    cannot be had or read ends the stage with a clear message."""
    try:
        with upstream_file(spec, mirror) as deb, package_files(deb) as archive:
            return read(archive)
    except SourceError as exc:
        raise SystemExit(f"software: {exc}") from None
    except (OSError, subprocess.CalledProcessError, tarfile.TarError, ValueError) as exc:
        raise SystemExit(f"software: cannot read {spec['name']} ({exc})") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="stock WordPress paths")
    parser.add_argument("--resolvers", type=Path, required=True, help="public DNS resolvers' addresses")
    parser.add_argument("--words", type=Path, required=True, help="the word lists' words, for the host names'")
    args = parser.parse_args()
    software = read_params()["software"]
    mirror = os.environ.get(MIRROR_ENV, "")  # "": no mirror, download it
    wordpress = lambda archive: sorted(  # noqa: E731
        wordpress_paths(archive) + wordpress_routes(archive) + wordpress_archives(archive))
    outputs = [(args.out, package_lines(software["wordpress"], mirror, wordpress), software["wordpress"]["name"]),
               (args.resolvers, package_lines(software["resolvers"], mirror, package_resolvers),
                software["resolvers"]["name"])]
    words: set[str] = set()
    for spec in software["words"]:
        words.update(package_lines(spec, mirror, lambda archive, spec=spec: package_words(archive, spec["list"])))
    outputs.append((args.words, sorted(words), ", ".join(spec["name"] for spec in software["words"])))
    for out, lines, source in outputs:  # written only once every package was read
        with atomic_path(out) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"software: {len(lines):,} lines from {source} -> {out}")


if __name__ == "__main__":
    main()
