"""Threat intelligence: feed snapshots, an interval index over CIDR feeds, domain block lists and popularity.

Feeds are versioned inputs: `refresh_feeds` downloads them (conditional GET, retries, each streamed to a
temporary file under its byte cap, `Feed.max_bytes`) or copies them from an
offline mirror, validates every line, and records url, sha256, entry count, ETag and Last-Modified in
``feeds.json``. `IntelIndex` answers "which feeds list this address/domain?" in about a microsecond.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import ipaddress
import re
import shutil
import time
import zipfile
import zlib
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cybersentinel.core.redact import redact
from cybersentinel.core.retry import (
    RETRY_STATUSES,
    BodyLateError,
    BodyTooLargeError,
    bounded_body,
    http_session,
    retry_after_seconds,
    retry_call,
)
from cybersentinel.url.parsing import (
    host_and_parents,
    host_registered_domain,
    last_two_labels,
    name_and_parents,
    ranked_name,
    split_host,
)

if TYPE_CHECKING:
    import numpy as np


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


FeedKind = Literal["cidr", "ip", "domain", "domain-popularity"]


MIRROR_ENV = "CYBERSENTINEL_FEEDS_MIRROR"


DEFAULT_FEEDS_DIR = Path("data/feeds")


MANIFEST = "feeds.json"


TRANCO_TOP = 100_000  # the mirror holds the top 100k; a fresh download is cut to the same size


# The default `Feed.max_bytes` (64 MiB, as a JSON API page's `max_response_bytes`): a download still growing past it
# is an error, so a server that streams forever fills neither the disk nor the memory.
MAX_FEED_BYTES = 64 << 20
# The default `Feed.deadline_s`: a download still going this long after it started (connecting, headers, body,
# retries and their waits) is an error (the timeout bounds each socket read, so a server sending a byte every few
# seconds, of its headers or of its body, would hold a refresh for months).
FEED_DEADLINE_S = 600.0


class FeedError(ValueError):
    """A feed file or download that cannot be used; the message names the source and line."""


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    entries: list[Any]  # networks, domains, or (domain, rank) pairs
    skipped: int  # blank, comment and standard hosts-file lines


_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"


_ASCII_NAME = re.compile(rf"(?=.{{1,253}}$)(?:{_LABEL}\.)+{_LABEL}")


_HOSTS_BOILERPLATE = frozenset({
    "localhost", "localhost.localdomain", "local", "broadcasthost", "ip6-localhost", "ip6-loopback",
    "ip6-localnet", "ip6-mcastprefix", "ip6-allnodes", "ip6-allrouters", "ip6-allhosts", "0.0.0.0",  # noqa: S104 (a hosts-file name, not a bind address)
})


def to_domain(text: str) -> str:
    """The ASCII (IDNA) form of a DNS name with at least two labels; ValueError saying why otherwise.

    Underscores are allowed (they occur in real names such as ``_dmarc``); IP literals are not domains.
    """
    from cybersentinel.url.parsing import parse_ip

    name = text.strip().lower().rstrip(".")
    if not name:
        raise ValueError("empty name")
    if not name.isascii():
        import idna  # imported here: only non-ASCII names need it

        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as err:
            raise ValueError(f"not a valid internationalised name ({err})") from None
    if _ASCII_NAME.fullmatch(name) and not name.rpartition(".")[2].isdigit():
        return name
    # slow path, only to say why the name is rejected
    if parse_ip(name) is not None:
        raise ValueError("IP address, not a domain")
    if len(name) > 253:
        raise ValueError(f"name longer than 253 characters ({len(name)})")
    if "." not in name:
        raise ValueError("single-label name")
    if name.rpartition(".")[2].isdigit():
        raise ValueError("numeric top-level label")
    bad = next((label for label in name.split(".") if not re.fullmatch(_LABEL, label)), name)
    raise ValueError(f"invalid label {bad[:70]!r}")


def _strip_comment(line: str) -> str:
    for mark in ("#", ";"):
        line = line.split(mark, 1)[0]
    return line.strip()


def parse_networks(lines: Iterable[str], source: str) -> ParsedFeed:
    """CIDRs or single addresses, one a line; ``#`` and ``;`` start comments (Spamhaus: ``CIDR ; SBLnnn``).

    Host bits are cleared (``1.2.3.4/24`` means ``1.2.3.0/24``), as ipset and nftables do.
    """
    entries, skipped = [], 0
    for lineno, line in enumerate(lines, 1):
        token = _strip_comment(line)
        if not token:
            skipped += 1
            continue
        try:
            network = ipaddress.ip_network(token, strict=False)
        except ValueError as err:
            raise FeedError(f"{source}:{lineno}: malformed network entry {line.strip()[:80]!r} ({err})") from None
        if _too_wide(network):
            raise FeedError(f"{source}:{lineno}: {network} holds public addresses beyond one /"
                            f"{_WIDEST_PUBLIC[network.version]}: no feed lists that much of the internet")
        entries.append(network)
    return ParsedFeed(entries, skipped)


# The widest range of public addresses a feed may list: a regional registry's /8 of IPv4 and /16 of IPv6 (the
# real feeds' widest are /12s of Spamhaus DROP). A corrupted or hostile line such as ``0.0.0.0/0`` would make
# every address `malicious` and swallow the feed's real entries when its ranges are merged. Wider ranges of
# addresses that are not public (FireHOL's ``224.0.0.0/3``: multicast and reserved) stay.
_WIDEST_PUBLIC = {4: 8, 6: 16}


# Every public IPv6 address is in it: the one definition, which the block-rule guard (`ops.blocklist.Guard`) reads too
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")


def _too_wide(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    widest = _WIDEST_PUBLIC[network.version]
    if network.prefixlen >= widest:
        return False
    if network.version == 6:
        return network.overlaps(GLOBAL_UNICAST_V6)
    return any(not (part.is_private or part.is_multicast or part.is_reserved or part.is_loopback
                    or part.is_link_local or part.is_unspecified) for part in network.subnets(new_prefix=widest))


MAX_RANK = 2**31 - 1  # a rank is a position in a list: at least 1, and a 32-bit integer where it is stored


def parse_ranked_domains(lines: Iterable[str], source: str) -> ParsedFeed:
    """A popularity list: ``domain`` (rank = position) or Tranco's ``rank,domain`` per line."""
    entries, skipped, position = [], 0, 0
    for lineno, line in enumerate(lines, 1):
        token = _strip_comment(line)
        if not token:
            skipped += 1
            continue
        position += 1
        rank_text, _, name = token.rpartition(",")
        try:
            rank = int(rank_text) if rank_text else position
            if not 1 <= rank <= MAX_RANK:
                raise ValueError(f"rank {rank} is not between 1 and {MAX_RANK:,}")
            entries.append((to_domain(name), rank))
        except ValueError as err:
            raise FeedError(f"{source}:{lineno}: malformed popularity entry {line.strip()[:80]!r} ({err})") from None
    return ParsedFeed(entries, skipped)


def parse_domain_list(lines: Iterable[str], source: str) -> ParsedFeed:
    """Domain block list: plain names, or hosts format (``0.0.0.0 name [name...]``)."""
    from cybersentinel.url.parsing import parse_ip

    entries, skipped = [], 0
    for lineno, line in enumerate(lines, 1):
        tokens = _strip_comment(line).split()
        if tokens and parse_ip(tokens[0]) is not None:  # hosts format: the address is a sink, not an entry
            tokens = tokens[1:]
        names = [token for token in tokens if token.lower() not in _HOSTS_BOILERPLATE]
        if not names:
            skipped += 1
            continue
        for name in names:
            try:
                entries.append(to_domain(name))
            except ValueError as err:
                raise FeedError(f"{source}:{lineno}: malformed domain entry {name[:80]!r} ({err})") from None
    return ParsedFeed(entries, skipped)


def feed_lines(data: bytes, source: str) -> list[str]:
    """A feed file's lines; a `FeedError` naming the first line that is not UTF-8 (a UTF-16 or Latin-1 file). A
    UTF-8 byte order mark (Windows editors write one) is dropped: it is not part of the first entry."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        lineno = data.count(b"\n", 0, err.start) + 1
        raise FeedError(f"{source}:{lineno}: not UTF-8 text (byte 0x{data[err.start]:02x}: {err.reason})") from None


def read_feed_file(path: Path, parser: Callable[[Iterable[str], str], ParsedFeed]) -> ParsedFeed:
    return parser(feed_lines(path.read_bytes(), str(path)), str(path))


_MAX_RANKED_LINE = 300  # `rank,domain`: ten digits, a comma and a name of at most 253 characters, and a line end


def _tranco_from_zip(payload: bytes) -> bytes:
    """tranco-list.eu serves a zip of ``rank,domain`` lines for the top million; keep the mirror's top 100k."""
    if not payload.startswith(b"PK"):
        return payload
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            member = next((name for name in archive.namelist() if name.endswith(".csv")), None)
            if member is None:
                raise FeedError("Tranco archive holds no .csv file")
            lines = []
            with archive.open(member) as stream:  # line by line: a small archive can inflate to gigabytes
                while len(lines) < TRANCO_TOP and (line := stream.readline(_MAX_RANKED_LINE + 1)):
                    if len(line) > _MAX_RANKED_LINE:
                        raise FeedError(f"Tranco archive line {len(lines) + 1} is longer than {_MAX_RANKED_LINE} "
                                        "bytes: not a `rank,domain` line")
                    lines.append(line)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:  # a cut-short or damaged download
        raise FeedError(f"not a valid zip archive, perhaps a truncated download ({err})") from None
    return b"".join(lines)


@dataclass(frozen=True, slots=True)
class Feed:
    name: str
    url: str
    kind: FeedKind
    filename: str  # file name in the snapshot folder and in the offline mirror
    parser: Callable[[Iterable[str], str], ParsedFeed]
    transform: Callable[[bytes], bytes] | None = None  # applied to a downloaded body before validation
    max_bytes: int = MAX_FEED_BYTES  # a download larger than this fails and keeps the previous snapshot
    deadline_s: float = FEED_DEADLINE_S  # a download (with its retries) still going this long fails alike


FEEDS: dict[str, Feed] = {
    feed.name: feed
    for feed in (
        Feed("firehol_level1", "https://iplists.firehol.org/files/firehol_level1.netset", "cidr",
             "firehol_level1.txt", parse_networks),
        Feed("spamhaus_drop", "https://www.spamhaus.org/drop/drop.txt", "cidr", "spamhaus_drop.txt", parse_networks),
        Feed("et_compromised", "https://rules.emergingthreats.net/blockrules/compromised-ips.txt", "ip",
             "et_compromised_ips.txt", parse_networks),
        Feed("tranco", "https://tranco-list.eu/top-1m.csv.zip", "domain-popularity", "tranco_top100k.csv",
             parse_ranked_domains, _tranco_from_zip),
    )
}


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _validated_entry(feed: Feed, tmp: Path, source: str) -> dict[str, Any]:
    from cybersentinel.core.files import sha256_file

    parsed = feed.parser(feed_lines(tmp.read_bytes(), source), source)
    if not parsed.entries:  # an empty body is a failed download, not an empty list
        raise FeedError(f"{source}: no entries")
    return {"url": feed.url, "kind": feed.kind, "file": feed.filename, "sha256": sha256_file(tmp),
            "entries": len(parsed.entries), "skipped_lines": parsed.skipped}


def _late(feed: Feed, received: int | None = None) -> FeedError:
    got = f"{received:,} bytes by then; " if received is not None else "headers incomplete by then; "
    return FeedError(f"{redact(feed.url)}: feed {feed.name} still arriving after {feed.deadline_s:g} s ({got}"
                     "Feed.deadline_s); the previous snapshot is kept")


def _download(response, feed: Feed, tmp: Path, deadline: float) -> None:
    """Stream the (decoded) body into ``tmp``, failing as soon as it passes ``feed.max_bytes`` or is still arriving
    at ``deadline`` (`time.monotonic`), not after reading it all."""
    with tmp.open("wb") as out:
        try:
            for chunk in bounded_body(response, feed.max_bytes, deadline):
                out.write(chunk)
        except BodyTooLargeError:
            raise FeedError(f"{redact(feed.url)}: feed {feed.name} is larger than its cap of {feed.max_bytes:,} bytes "
                            "(Feed.max_bytes); the previous snapshot is kept") from None
        except BodyLateError as late:
            raise _late(feed, late.received) from late


def _transform(feed: Feed, tmp: Path) -> None:
    try:
        body = feed.transform(tmp.read_bytes())
    except FeedError as err:
        raise FeedError(f"{redact(feed.url)}: {err}") from None
    tmp.write_bytes(body)


class _RetryableFeedError(FeedError):
    """An answer another try may fix (429, 5xx), with the wait its Retry-After asks for."""

    def __init__(self, problem: str, retry_after: float | None = None):
        super().__init__(problem)
        self.retry_after = retry_after


def fetch_feed(feed: Feed, out_dir: Path, previous: Mapping[str, Any] | None, session, timeout: float,
               retries: int = 0, backoff: float = 1.0) -> dict:
    """Download one feed with a conditional GET, retrying a dropped connection, a timeout or a 429/5xx answer;
    ``feed.deadline_s`` bounds it all (connecting, headers, body, retries and their waits). The old snapshot stays
    in place unless the new one validates."""
    deadline = time.monotonic() + feed.deadline_s
    return retry_call(lambda: _fetch_once(feed, out_dir, previous, session, timeout, deadline),
                      what=redact(feed.url), attempts=retries + 1, backoff=backoff, deadline=deadline,
                      transient=(_RetryableFeedError, *_network_errors()), error=FeedError,
                      wait_hint=lambda exc: getattr(exc, "retry_after", None))


def _network_errors() -> tuple[type[Exception], ...]:
    """requests' errors of a connection dropped, timed out or cut short: another try may get the feed."""
    import requests

    return requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError


def _fetch_once(feed: Feed, out_dir: Path, previous: Mapping[str, Any] | None, session, timeout: float,
                deadline: float) -> dict:
    from cybersentinel.core.http_deadline import http_deadline

    try:
        with http_deadline(deadline):  # connecting and the headers too: a server may trickle them
            return _get_feed(feed, out_dir, previous, session, timeout, deadline)
    except _network_errors() as err:
        if time.monotonic() >= deadline:  # connecting or the headers timed out by the deadline: not retried
            raise _late(feed) from err
        raise


def _get_feed(feed: Feed, out_dir: Path, previous: Mapping[str, Any] | None, session, timeout: float,
              deadline: float) -> dict:
    from cybersentinel.core.files import atomic_path, sha256_file

    target = out_dir / feed.filename
    headers = {}
    if previous and target.exists() and sha256_file(target) == previous.get("sha256"):
        if previous.get("etag"):
            headers["If-None-Match"] = previous["etag"]
        if previous.get("last_modified"):
            headers["If-Modified-Since"] = previous["last_modified"]
    with session.get(feed.url, headers=headers, timeout=timeout, stream=True) as response:
        if response.status_code == 304:
            return {**previous, "checked_at": _now(), "not_modified": True}
        if response.status_code in RETRY_STATUSES:
            raise _RetryableFeedError(f"HTTP {response.status_code}",  # `retry_call` names the URL
                                      retry_after_seconds(response.headers.get("Retry-After")))
        if response.status_code != 200:
            raise FeedError(f"{redact(feed.url)}: HTTP {response.status_code}")
        with atomic_path(target) as tmp:  # any error below removes the temporary file: the old snapshot stays
            _download(response, feed, tmp, deadline)
            if feed.transform:
                _transform(feed, tmp)
            entry = _validated_entry(feed, tmp, feed.url)
    now = _now()
    return {**entry, "source": "download", "fetched_at": now, "checked_at": now, "not_modified": False,
            "etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified")}


def copy_feed(feed: Feed, out_dir: Path, mirror: Path) -> dict:
    """Take a feed from the offline mirror folder. The entry records only what the bytes say (no copy time, no
    mirror path or file time, which differ per machine and per copy of the mirror), so the same mirror gives the
    same snapshot, byte for byte, and `make feeds` the same data/feeds.dvc on every machine."""
    from cybersentinel.core.files import atomic_path

    source = mirror / feed.filename
    if not source.is_file():
        raise FeedError(f"{source}: feed {feed.name} missing from mirror {mirror}")
    with atomic_path(out_dir / feed.filename) as tmp:
        shutil.copyfile(source, tmp)
        entry = _validated_entry(feed, tmp, str(source))
    return {**entry, "source": "mirror", "fetched_at": None, "checked_at": None, "not_modified": False,
            "etag": None, "last_modified": None}


def read_manifest(out_dir: Path) -> dict[str, Any]:
    """``feeds.json`` of a snapshot folder (an empty one if there is none); a one-line `FeedError` if it is not
    a manifest (damaged, hand-edited), before any feed is touched."""
    import json

    path = out_dir / MANIFEST
    if not path.exists():
        return {"feeds": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: JSONDecodeError, UnicodeDecodeError
        problem = " ".join(str(err).split())
    else:
        feeds = manifest.get("feeds") if isinstance(manifest, dict) else None
        if isinstance(feeds, dict) and all(isinstance(entry, dict) for entry in feeds.values()):
            return manifest
        problem = 'expected {"feeds": {name: entry, ...}}'
    raise FeedError(f"{path}: not a feeds manifest ({problem}); fix or delete it, and refresh again")


def refresh_feeds(out_dir: Path = DEFAULT_FEEDS_DIR, names: Sequence[str] = (), mirror: Path | None = None,
                  feeds: Mapping[str, Feed] = FEEDS, retries: int = 3, backoff: float = 1.0,
                  timeout: float = 60.0) -> tuple[dict, dict[str, str]]:
    """Refresh the named feeds (all by default) into ``out_dir`` and rewrite ``feeds.json``.

    A feed that fails keeps its previous snapshot and manifest entry; failures are returned, not hidden.
    Returns (manifest, {feed name: error}).
    """
    from cybersentinel.core.files import write_json

    unknown = sorted(set(names) - set(feeds))
    if unknown:
        raise FeedError(f"unknown feed(s) {', '.join(unknown)}; known: {', '.join(feeds)}")
    manifest = read_manifest(out_dir)
    # retried by `fetch_feed` (urllib3's retries would not keep Feed.deadline_s)
    session = None if mirror else http_session(0, user_agent="cybersentinel-feeds/1")
    errors: dict[str, str] = {}
    for name in names or list(feeds):
        feed = feeds[name]
        try:
            if mirror:
                manifest["feeds"][name] = copy_feed(feed, out_dir, mirror)
            else:
                manifest["feeds"][name] = fetch_feed(feed, out_dir, manifest["feeds"].get(name), session, timeout,
                                                     retries, backoff)
        except (FeedError, OSError) as err:  # requests' errors are OSErrors: one bad feed must not stop the rest
            errors[name] = str(err)
            continue
        # recorded as soon as the file is replaced: a refresh stopped by a later feed (Ctrl-C, a crash) still
        # leaves a feeds.json whose sha256s are those of the files beside it
        write_json(out_dir / MANIFEST, manifest)
    write_json(out_dir / MANIFEST, manifest)  # also when every feed failed: the folder gets its (empty) manifest
    return manifest, errors


@dataclass(frozen=True, slots=True)
class Intervals:
    """Disjoint elementary intervals of one address family: interval i is [starts[i], starts[i+1]).

    masks[i] has bit j set when CIDR feed j covers the whole interval. starts[0] == 0, so every address
    falls in exactly one interval; adjacent intervals with equal masks are merged.
    """

    starts: list[int]  # Python ints for bisect (exact for 128-bit addresses)
    keys: np.ndarray  # the same starts for numpy: uint32 (IPv4) or big-endian S16 (IPv6)
    masks: np.ndarray  # uint64

    def mask(self, address: int) -> int:
        return int(self.masks[bisect_right(self.starts, address) - 1])

    def batch_masks(self, keys: np.ndarray) -> np.ndarray:
        import numpy as np

        return self.masks[np.searchsorted(self.keys, keys, side="right") - 1]


def _keys(values: Sequence[int], version: int) -> np.ndarray:
    import numpy as np

    if version == 4:
        return np.asarray(values, dtype=np.uint32)
    # numpy has no 128-bit integers; fixed-width big-endian bytes sort in the same order
    return np.array([value.to_bytes(16, "big") for value in values], dtype="S16")


def build_intervals(per_feed: Sequence[Iterable[IPNetwork]], version: int) -> Intervals:
    import numpy as np

    top = 2**32 if version == 4 else 2**128
    spans = [[(int(net.network_address), int(net.broadcast_address) + 1) for net in nets] for nets in per_feed]
    bounds = sorted({0, top} | {edge for feed in spans for span in feed for edge in span})
    position = {bound: i for i, bound in enumerate(bounds)}
    masks = np.zeros(len(bounds), dtype=np.uint64)
    for bit, feed in enumerate(spans):
        depth = np.zeros(len(bounds) + 1, dtype=np.int64)
        for start, end in feed:  # difference array: +1 where a span opens, -1 where it closes
            depth[position[start]] += 1
            depth[position[end]] -= 1
        masks |= (np.cumsum(depth[:-1]) > 0).astype(np.uint64) << np.uint64(bit)
    bounds, masks = bounds[:-1], masks[:-1]  # the interval starting at `top` holds no address
    keep = np.concatenate(([True], masks[1:] != masks[:-1]))
    starts = [bound for bound, kept in zip(bounds, keep, strict=True) if kept]
    return Intervals(starts, _keys(starts, version), masks[keep])


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix: a NAT64 gateway reaches the IPv4 address


def _unmapped(address: IPAddress) -> IPAddress:
    """``::ffff:1.2.3.4`` is 1.2.3.4 on the wire, and so is ``64:ff9b::102:304`` through a NAT64 gateway (mobile
    carriers' IPv6-only networks): judge and look it up as IPv4."""
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return address


# Address space for internal networks (RFC 1918, RFC 6598 shared/CGNAT, RFC 4193 unique local). ipaddress's
# is_private also covers documentation, benchmarking and "this network" ranges, which are bogons, not LANs.
_INTERNAL = {4: tuple(map(ipaddress.IPv4Network, ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"))),
             6: (ipaddress.IPv6Network("fc00::/7"),)}


@lru_cache(maxsize=1 << 16)
def ip_category(address: IPAddress) -> str | None:
    """None for a globally routable unicast address, else why it is not (``ipaddress``'s classification). An
    IPv4 address written as IPv6 (``::ffff:45.67.89.16``, which a browser connects to, or its NAT64 form
    ``64:ff9b::2d43:5910``) is the IPv4 address (`_unmapped`)."""
    address = _unmapped(address)
    if address.is_global and not (address.is_multicast or address.is_reserved):  # the common case, checked first
        return None
    for category in ("loopback", "link_local", "multicast", "unspecified", "reserved"):
        if getattr(address, f"is_{category}"):
            return category.replace("_", "-")
    if any(address in network for network in _INTERNAL[address.version]):
        return "private"
    return None if address.is_global else "non-global"


def ip_status(category: str | None, mask: int) -> str:
    """``private`` (internal networks: RFC 1918, CGNAT, unique local, loopback, link-local), ``bogon``
    (multicast, reserved, unspecified, documentation and other non-global space), else ``listed`` when a
    feed covers the address and ``unlisted`` when none does."""
    if category in ("loopback", "link-local", "private"):
        return "private"
    if category is not None:
        return "bogon"
    return "listed" if mask else "unlisted"


@dataclass(frozen=True)
class IntelIndex:
    """IP feeds as interval sets per address family, domain block lists, and a popularity ranking."""

    ip_feeds: tuple[str, ...]  # bit j of a mask is ip_feeds[j]
    v4: Intervals
    v6: Intervals
    networks: Mapping[str, tuple[IPNetwork, ...]]  # collapsed entries per IP feed (for block list export)
    domains: Mapping[str, tuple[str, ...]]  # domain -> names of the block lists holding it
    popularity: Mapping[str, int]  # registered domain -> Tranco rank
    _names: dict[int, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)
    # `last_two_labels` of every listed name: a host whose own is not among them has no listed parent, so most
    # new hosts skip building their parents' names (`host_signals`)
    _tails: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tails", frozenset(map(last_two_labels, self.domains)))

    @classmethod
    def build(cls, ip_feeds: Mapping[str, Iterable[IPNetwork]], domain_lists: Mapping[str, Iterable[str]] = {},  # noqa: B006
              popularity: Iterable[tuple[str, int]] = ()) -> IntelIndex:
        if len(ip_feeds) > 64:
            raise ValueError("at most 64 IP feeds fit in a lookup mask")
        names = tuple(sorted(ip_feeds))
        networks = {}
        for name in names:
            nets = list(ip_feeds[name])
            networks[name] = tuple(
                [*ipaddress.collapse_addresses(n for n in nets if n.version == 4),
                 *ipaddress.collapse_addresses(n for n in nets if n.version == 6)])
        v4 = build_intervals([[n for n in networks[name] if n.version == 4] for name in names], 4)
        v6 = build_intervals([[n for n in networks[name] if n.version == 6] for name in names], 6)
        domains: dict[str, set[str]] = {}
        for list_name, entries in domain_lists.items():
            for domain in entries:
                domains.setdefault(domain, set()).add(list_name)
        ranks: dict[str, int] = {}
        for domain, rank in popularity:
            ranks.setdefault(domain, rank)  # a domain listed twice keeps its better (first) rank
        return cls(names, v4, v6, networks, {d: tuple(sorted(s)) for d, s in domains.items()}, ranks)

    @classmethod
    def from_dir(cls, folder: Path = DEFAULT_FEEDS_DIR, domain_lists: Sequence[Path] = ()) -> IntelIndex:
        """Index the known feed files present in ``folder`` plus extra domain block list files (named by stem).

        A folder `refresh_feeds` wrote has its ``feeds.json``: each file is then read only if its bytes hash to the
        SHA-256 recorded there (a line appended by hand would list a site's addresses with no trace in the
        manifest, whose hashes the service reports as what it serves)."""
        ip_feeds, popularity, lists = {}, [], {}
        recorded = read_manifest(Path(folder))["feeds"]
        for feed in FEEDS.values():
            path = Path(folder) / feed.filename
            if not path.exists():
                continue
            data = path.read_bytes()
            if recorded:
                expected = (recorded.get(feed.name) or {}).get("sha256")
                if expected != hashlib.sha256(data).hexdigest():
                    why = f"does not hash to the SHA-256 {MANIFEST} records" if expected else f"is not in {MANIFEST}"
                    raise FeedError(f"{path} {why}: changed since the feeds were refreshed; run `cybersentinel "
                                    "feeds refresh` (or restore the file)")
            parsed = feed.parser(feed_lines(data, str(path)), str(path))
            if feed.kind == "domain-popularity":
                popularity.extend(parsed.entries)
            elif feed.kind == "domain":
                lists[feed.name] = parsed.entries
            else:
                ip_feeds[feed.name] = parsed.entries
        for path in domain_lists:
            lists[Path(path).stem] = read_feed_file(Path(path), parse_domain_list).entries
        if not ip_feeds and not popularity and not lists:
            raise FeedError(f"{folder}: no feed files found; run `cybersentinel feeds refresh`")
        return cls.build(ip_feeds, lists, popularity)

    def feed_names(self, mask: int) -> tuple[str, ...]:
        names = self._names.get(mask)
        if names is None:
            names = self._names[mask] = tuple(n for bit, n in enumerate(self.ip_feeds) if mask >> bit & 1)
        return names

    def lookup_address(self, address: IPAddress) -> dict[str, Any]:
        """Status and feeds of one address. Feeds covering a private or bogon address are not reported:
        FireHOL level 1 lists those ranges on purpose, so a match there says nothing about malice."""
        address = _unmapped(address)
        category = ip_category(address)
        mask = (self.v4 if address.version == 4 else self.v6).mask(int(address))
        status = ip_status(category, mask)
        return {"ip": str(address), "ip_status": status, "ip_category": category,
                "feeds": list(self.feed_names(mask)) if status == "listed" else []}

    def lookup_ip(self, value: str) -> dict[str, Any]:
        from cybersentinel.url.parsing import parse_ip

        address = parse_ip(value.strip())
        if address is None:
            raise ValueError(f"not an IP address: {value[:80]!r}")
        return self.lookup_address(address)

    def lookup_ips(self, values: Sequence[str]) -> list[dict[str, Any]]:
        """Batch lookup: parse each value, then one vectorised interval search per address family.

        Values that are not IP addresses get ``ip_status`` "invalid" (one output per input, in order).
        """
        from cybersentinel.url.parsing import parse_ip

        addresses = [_unmapped(a) if (a := parse_ip(value.strip())) is not None else None for value in values]
        masks = [0] * len(values)
        for version, intervals in ((4, self.v4), (6, self.v6)):
            rows = [i for i, a in enumerate(addresses) if a is not None and a.version == version]
            if rows:
                found = intervals.batch_masks(_keys([int(addresses[i]) for i in rows], version))
                for i, mask in zip(rows, found.tolist(), strict=True):
                    masks[i] = mask
        out = []
        for value, address, mask in zip(values, addresses, masks, strict=True):
            if address is None:
                out.append({"ip": value, "ip_status": "invalid", "ip_category": None, "feeds": []})
                continue
            category = ip_category(address)
            status = ip_status(category, mask)
            out.append({"ip": str(address), "ip_status": status, "ip_category": category,
                        "feeds": list(self.feed_names(mask)) if status == "listed" else []})
        return out

    def lookup_domain(self, host: str, registered_domain: str | None = None) -> dict[str, Any]:
        """Block-list matches of the host or any parent name (most specific first), and the Tranco rank of
        the registered domain (a popularity signal, not a verdict)."""
        from cybersentinel.url.parsing import split_url

        host = host.lower().rstrip(".")
        matches = [(name, lists) for name in host_and_parents(host) if (lists := self.domains.get(name))]
        registered = registered_domain if registered_domain is not None else split_url(host).registered_domain
        return {"domain": host, "registered_domain": registered,
                "feeds": sorted({lst for _, lists in matches for lst in lists}),
                "domain_match": matches[0][0] if matches else None,
                "tranco_rank": self.popularity.get(ranked_name(registered))}

    def lookup_url(self, url: str) -> dict[str, Any]:
        """Intel for a URL, domain or IP: the host's IP status and feeds, or its domain matches and rank.

        ``host`` is what was looked up: the host as a browser reads it, as the decider asks the feeds about it
        (``1.10.4101`` and ``0x1.0xa.0x10.0x5`` are ``1.10.16.5``). A value holding a control character is
        ``kind`` "invalid" with an ``error``, not looked up: parsing drops or trims such characters
        (``a\\tb.example`` is ``ab.example`` to a browser), which would answer for a host never given."""
        import unicodedata

        from cybersentinel.url.parsing import canonical_host, split_url

        # white space around a value (a line's end) is trimmed, as `split_url` does; any other control is not
        bad = next((c for c in url.strip(" \t\n\r\f\v") if unicodedata.category(c) == "Cc"), None)
        if bad is not None:  # the fields of a host with no answer
            return {"value": url, **self.lookup_host(""), "kind": "invalid",
                    "error": f"not a valid host: control character {ascii(bad)}"}
        host = split_url(url).host
        return {"value": url, **self.lookup_host(canonical_host(host) or host), "error": None}

    def lookup_host(self, host: str) -> dict[str, Any]:
        """`lookup_url` for a host name or IP literal alone (no URL to split)."""
        from cybersentinel.url.parsing import host_registered_domain, parse_ip, split_host

        host = host.lower().rstrip(".")
        result: dict[str, Any] = {"host": host, "kind": "none", "feeds": [], "ip_status": None,
                                  "ip_category": None, "domain_match": None, "tranco_rank": None}
        subdomain, domain, suffix, is_ip = split_host(host)
        address = parse_ip(host) if is_ip else None
        if address is not None:
            return {**result, **self.lookup_address(address), "kind": "ip"}
        if host:
            found = self.lookup_domain(host, host_registered_domain(host))
            return {**result, "kind": "domain", "feeds": found["feeds"], "domain_match": found["domain_match"],
                    "tranco_rank": found["tranco_rank"]}
        return result

    def host_signals(self, host: str, registered: str | None = None
                     ) -> tuple[tuple[str, ...], str | None, str | None, int | None]:
        """What the decision policy reads from `lookup_host` (``feeds``, ``ip_status``, ``ip_category``,
        ``tranco_rank``) as one flat tuple, for scoring many new hosts: the same answers without building
        dicts, and a tuple the garbage collector stops tracking. ``registered``: the registered domain of a
        host the caller knows to be a lower-case name (no address, no trailing dot), split already."""
        parents = name_and_parents
        if registered is None:
            host = host.lower().rstrip(".")
            if split_host(host)[3]:
                found = self.lookup_host(host)
                return tuple(found["feeds"]), found["ip_status"], found["ip_category"], None
            if not host:
                return (), None, None, None
            registered, parents = host_registered_domain(host), host_and_parents
        if last_two_labels(host) not in self._tails:  # most hosts
            return (), None, None, self.popularity.get(ranked_name(registered))
        listed = self.domains.get
        lists = [name for parent in parents(host) for name in listed(parent, ())]
        return tuple(sorted(set(lists))) if lists else (), None, None, self.popularity.get(ranked_name(registered))


