"""Tolerant URL parsing: any string in, a `UrlParts` out, never an exception.

`urllib.parse` raises on inputs such as ``http://[::1`` and accepts a bare host only as a path,
so a small splitter of our own keeps the featurizer total over arbitrary strings.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, wraps
from typing import Any, TypeVar

import tldextract

# The public suffix list snapshot bundled with tldextract: no network at import or prediction time.
# Its private section is included: ``user.github.io`` and ``x.blogspot.com`` are sites of their own, and
# ``github.io`` is a public suffix (never a block rule, never one site for grouping or popularity).
T = TypeVar("T")
_extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)

_SCHEME = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.\-]{0,15}):/{0,3}")
_MAX_URL_CHARS = 4096  # longer inputs are truncated for features; their true length is kept


@dataclass(frozen=True, slots=True)
class UrlParts:
    scheme: str
    userinfo: str
    host: str
    port: str
    path: str
    query: str
    fragment: str
    subdomain: str
    domain: str
    suffix: str
    is_ip: bool

    @property
    def registered_domain(self) -> str:
        return host_registered_domain(self.host)


def to_text(value: object) -> str:
    """Coerce cell values (None, NaN, bytes in any encoding, numbers) to a string."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, float) and value != value:  # NaN
        return ""
    return str(value)


# What an IP literal can be written with (IPv4, IPv6, 0x-hex IPv4); an IPv6 zone ("%eth0") may hold more.
_IP_CHARACTERS = re.compile(r"[0-9A-Fa-fXx.:]+")


def parse_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally (IPv4, bracketed or bare IPv6, or IPv4 as one integer)."""
    candidate = host.strip("[]")
    if "%" not in candidate and not _IP_CHARACTERS.fullmatch(candidate):
        return None  # a host name: skip ipaddress's three raised exceptions (most of a cold host's cost)
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        pass
    if candidate.isdigit() and len(candidate) <= 10:  # http://3232235521/ is 192.168.0.1
        try:
            return ipaddress.IPv4Address(int(candidate))
        except ValueError:
            return None
    if candidate.lower().startswith("0x") and len(candidate) <= 10:
        try:
            return ipaddress.IPv4Address(int(candidate, 16))
        except ValueError:
            return None
    return None


# A plain lower-case ASCII name (no port, user-info, brackets, trailing dot or empty label): tldextract's own
# URL clean-up leaves it as it is, so its suffix trie can be asked directly.
_PLAIN_HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")


def host_memo(maxsize: int) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Memoise a pure function of hosts or labels, bounded: two generations of up to ``maxsize`` entries, the
    older dropped when the newer fills, so the latest ``maxsize`` answers always stay (emptying one dict when
    full made the decider split again the hosts the featurizer had just split). Unlike ``lru_cache`` (a linked
    list node per entry), it holds only the arguments and results, which for strings and tuples of strings,
    numbers and None the garbage collector stops tracking: a full cache adds nothing to a collection's pause
    (lru_cache's 65,536 nodes and the decider's cached evidence made a service worker stop for up to 130 ms)."""

    def decorate(function: Callable[..., T]) -> Callable[..., T]:
        generations: list[dict[tuple, T]] = [{}, {}]  # [newer, older]

        @wraps(function)
        def cached(*args: Any) -> T:
            newer = generations[0]
            found = newer.get(args, _MISSING)
            if found is _MISSING:
                found = generations[1].get(args, _MISSING)
                if found is _MISSING:
                    found = function(*args)
                if len(newer) >= maxsize:
                    newer = {}
                    generations[:] = [newer, generations[0]]
                newer[args] = found
            return found

        def clear() -> None:
            generations[:] = [{}, {}]

        cached.cache_clear = clear  # type: ignore[attr-defined]
        return cached

    return decorate


_MISSING: Any = object()


@host_memo(1 << 16)  # recent hosts: the scorer and the intel lookup split each new host once
def _split_host(host: str) -> tuple[str, str, str, bool, bool]:
    if not host or parse_ip(host) is not None:
        return "", host, "", bool(host), False
    if _PLAIN_HOST.fullmatch(host):
        found = _psl_split(host)
        if found is not None:
            return found
    parts = _extract(host)
    return parts.subdomain, parts.domain, parts.suffix, False, parts.is_private


def _psl_split(host: str) -> tuple[str, str, str, bool, bool] | None:
    """`_extract(host)` of a `_PLAIN_HOST` under a public suffix, without its URL clean-up and result object
    (most of a cold host's split): the same trie walk as ``suffix_index`` and the same label slicing as
    ``TLDExtract._extract_netloc``. None when no suffix matches (an IPv4-like or suffix-less name: the
    caller asks tldextract itself)."""
    labels = host.split(".")
    if "xn--" in host:  # punycode labels are decoded before the trie is asked: tldextract's own walk
        found = _extract._get_tld_extractor().suffix_index(labels, include_psl_private_domains=True)
        if found is None:
            return None
        index, node = found[0]
    else:  # `suffix_index` for lower-case ASCII labels, whose decoded form is the label itself
        node = _suffix_trie()
        index = label_index = len(labels)
        suffix_node = None
        for label in reversed(labels):
            matches = node.matches
            child = matches.get(label)
            if child is not None:
                label_index -= 1
                node = child
                if node.end:
                    index, suffix_node = label_index, node
                continue
            wildcard = matches.get("*")
            if wildcard is not None:
                index = label_index if "!" + label in matches else label_index - 1
                suffix_node = wildcard
            break
        if suffix_node is None:
            return None
        node = suffix_node
    return (".".join(labels[: index - 1]) if index >= 2 else "", labels[index - 1] if index > 0 else "",
            ".".join(labels[index:]), False, node.is_private)


@cache
def _suffix_trie() -> Any:
    """tldextract's suffix trie, private section included (built once, on first use)."""
    return _extract._get_tld_extractor().tlds_incl_private_trie


def split_host(host: str) -> tuple[str, str, str, bool]:
    """(subdomain, domain, suffix, is_ip) of a lower-cased host; cached, since hosts repeat."""
    return _split_host(host)[:4]


def split_hosts(hosts: list[str]) -> list[tuple[str, str, str, bool, bool]]:
    """(subdomain, domain, suffix, is_ip, on a private suffix) of each lower-cased host: `split_host` and
    `on_private_suffix` of a whole list, one cached split per host."""
    return [_split_host(host) for host in hosts]


def on_private_suffix(host: str) -> bool:
    """Whether the host's public suffix is from the list's private section: a hosting platform where anyone
    can have a site (``github.io``, ``blogspot.com``, ``firebaseapp.com``, ``s3.amazonaws.com``...)."""
    return _split_host(host)[4]


# A lower-case ASCII name with at least one letter outside hex digits and 'x': not an address in disguise
# (`parse_ip` finds none in it) and already what `canonical_host` makes of it.
PLAIN_NAME = re.compile(r"(?=[a-z0-9.-]*[g-wyz])[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")


def canonical_host(host: str) -> str | None:
    """The host as a browser resolves it (WHATWG URL host parsing, by ada-url): IPv4 in any notation
    (``1.10.4101``, ``0x1.0xa.0x10.0x5``, ``01.012.020.05``, full-width digits, ideographic dots) becomes
    dotted decimal, names become lower-case IDNA. None for a host a browser would refuse."""
    if not host:
        return None
    if PLAIN_NAME.fullmatch(host):  # already what a browser makes of it: no need to parse
        return host
    import ada_url

    try:
        return ada_url.URL(f"http://{host}/").hostname
    except ValueError:
        return None


def host_and_parents(host: str) -> list[str]:
    """The host, then each parent name down to two labels (``a.b.example.com``, ``b.example.com``,
    ``example.com``); an IP address (or any all-numeric name: no domain has a numeric top level) is only
    itself, so ``1.2.3.4`` is no parent of ``9.1.2.3.4``."""
    if parse_ip(host) is not None or host.replace(".", "").isdigit():
        return [host]
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(max(1, len(labels) - 1))]


def host_registered_domain(host: str) -> str:
    """The package's one registered-domain rule: ``example.co.uk`` for ``a.b.example.co.uk`` (public suffix
    list, private section included: ``user.github.io`` is its own site); the host itself for IP addresses
    and names under no public suffix."""
    _, domain, suffix, is_ip = split_host(host)
    return host if is_ip or not suffix else f"{domain}.{suffix}"


def split_url(raw: object) -> UrlParts:
    """Split any value into URL parts. Lower-cases scheme and host; keeps path case."""
    text = to_text(raw).strip()[:_MAX_URL_CHARS]
    scheme = ""
    match = _SCHEME.match(text)
    # "localhost:8080/x" and "example.com:443" look like scheme:rest; a real scheme is not all digits after.
    if match and not (text[match.end(1) :].startswith(":") and text[match.end(1) + 1 : match.end(1) + 2].isdigit()):
        scheme = match.group(1).lower()
        text = text[match.end() :]
    text = text.lstrip("/\\")
    cut = len(text)
    for sep in "/?#\\":
        pos = text.find(sep)
        if pos != -1 and pos < cut:
            cut = pos
    authority, rest = text[:cut], text[cut:]
    userinfo, _, hostport = authority.rpartition("@")
    host, port = hostport, ""
    if hostport.startswith("["):
        end = hostport.find("]")
        host = hostport if end == -1 else hostport[: end + 1]
        tail = "" if end == -1 else hostport[end + 1 :]
        port = tail[1:] if tail.startswith(":") else ""
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    host = host.lower().rstrip(".")
    path, _, fragment = rest.partition("#")
    path, _, query = path.partition("?")
    subdomain, domain, suffix, is_ip = split_host(host)
    return UrlParts(scheme, userinfo, host, port, path, query, fragment, subdomain, domain, suffix, is_ip)


def normalise(raw: object) -> str:
    """Lower-cased URL without scheme, leading ``www.`` or trailing ``/`` (the data README's rule)."""
    text = to_text(raw).strip().lower()
    text = _SCHEME.sub("", text, count=1) if _SCHEME.match(text) and "://" in text[:20] else text
    if text.startswith("www."):
        text = text[4:]
    return text.rstrip("/")


def registered_domain(raw: object) -> str:
    """The registered domain of any value holding a URL, domain or IP address."""
    return host_registered_domain(split_url(raw).host)
