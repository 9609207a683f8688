"""Tolerant URL parsing: any string in, a `UrlParts` out, never an exception.

`urllib.parse` raises on inputs such as ``http://[::1`` and accepts a bare host only as a path,
so a small splitter of our own keeps the featurizer total over arbitrary strings.
"""

from __future__ import annotations

import binascii
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, wraps
from typing import Any, NamedTuple, TypeVar
from urllib.parse import parse_qsl, unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tldextract
from numba import njit

# The public suffix list snapshot bundled with tldextract: no network at import or prediction time.
# Its private section is included: ``user.github.io`` and ``x.blogspot.com`` are sites of their own, and
# ``github.io`` is a public suffix (never a block rule, never one site for grouping or popularity).
T = TypeVar("T")
_extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)

_SCHEME = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.\-]{0,15}):/{0,3}")
# Schemes of links that name no web site to fetch, from IANA's URI scheme registry and browsers' own: the model
# learnt web URLs only, so its score of ``mailto:bob@bank.example`` or ``javascript:void(0)`` (which would read
# the text after the colon as a host) would be an accident of parsing. Defanged and mistyped web schemes
# (``hxxp``, ``htps``) are not here: they are read as web addresses.
NON_WEB_SCHEMES = ("mailto", "tel", "sms", "smsto", "mms", "callto", "facetime", "facetime-audio", "fax", "geo",
                   "urn", "data", "javascript", "vbscript", "about", "blob", "file", "cid", "mid", "news",
                   "magnet", "bitcoin", "chrome", "chrome-extension", "moz-extension", "edge", "intent", "market",
                   "itms-apps", "itms-services", "view-source", "ms-msdt", "search-ms", "ms-settings",
                   # a Windows drive's letter (``C:\\Users\\a\\Form.pdf.lnk``, ``c:/temp/x.html``): a file on the
                   # machine, as a browser opens it; before a digit it is a host and its port (``c:8080/``)
                   *"abcdefghijklmnopqrstuvwxyz")
# Those whose text may begin with a digit (``tel:5551234``, ``geo:48.2,16.4``): any other name before ":" and a digit
# is a host and its port, as a browser reads a typed ``news:8080/`` or ``chrome:9222/json``.
NUMBERED_SCHEMES = ("tel", "sms", "smsto", "mms", "callto", "facetime", "facetime-audio", "fax", "geo", "bitcoin",
                    "cid", "mid")
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


def suffix_beneath(host: str) -> tuple[str, int]:
    """(a public suffix that is ``host`` or ends with "." + ``host``, how many there are), ("", 0) if none: a rule
    on such a name covers every site registered under the suffix. Either section of the list, read from the
    package's one copy of it (`_suffix_trie`)."""
    labels = host.split(".")
    node = _suffix_trie()
    for depth, label in enumerate(reversed(labels), 1):
        child = node.matches.get(_trie_label(label))
        if child is None:  # "*.ck": every name one label below ck is a suffix, bar the "!www.ck" exceptions
            wild = depth == len(labels) and "*" in node.matches and f"!{label}" not in node.matches
            return (host, 1) if wild else ("", 0)
        node = child
    if node.end:
        return host, 1
    found: list[str] = []
    level = [(node, host)]
    while level:  # breadth first, children in order: the shortest suffix beneath is the example
        below = []
        for parent, name in level:
            for label in sorted(parent.matches):
                if not label.startswith("!"):  # an exception: a registrable name, no suffix
                    child = parent.matches[label]
                    below.append((child, f"{label}.{name}"))
                    if child.end:
                        found.append(f"{label}.{name}")
        level = below
    return (found[0], len(found)) if found else ("", 0)


def _trie_label(label: str) -> str:
    """A host label as the suffix trie holds it: punycode decoded (``xn--55qx5d`` is ``公司``)."""
    if not label.startswith("xn--"):
        return label
    try:
        return label.encode("ascii").decode("idna")
    except UnicodeError:  # not valid punycode: no suffix holds it
        return label


def split_host(host: str) -> tuple[str, str, str, bool]:
    """(subdomain, domain, suffix, is_ip) of a lower-cased host; cached, since hosts repeat."""
    return _split_host(host)[:4]


def split_host_registered(host: str) -> tuple[str, str, str, bool, bool, str]:
    """`split_host`, `on_private_suffix` and `host_registered_domain` of one lower-cased host from one cached split
    (`split_host_columns` of one host, without its lists)."""
    split = _split_host(host)
    return (*split, _registered(host, *split[1:4]))


def split_hosts(hosts: list[str]) -> list[tuple[str, str, str, bool, bool]]:
    """(subdomain, domain, suffix, is_ip, on a private suffix) of each lower-cased host: `split_host` and
    `on_private_suffix` of a whole list, one split per host (`split_host_columns`)."""
    found = split_host_columns(hosts)
    return list(zip(found.subdomain, found.domain, found.suffix, found.is_ip, found.private, strict=True))


class HostSplits(NamedTuple):
    """`split_host` of many hosts as columns, with whether each is on a private suffix and its registered
    domain (`host_registered_domain`): lists (`split_host_columns`) or Arrow arrays and NumPy masks
    (`split_host_arrays`)."""

    subdomain: Any
    domain: Any
    suffix: Any
    is_ip: Any
    private: Any
    registered: Any


# What the per-host model columns read of a host's split beyond its `_host_table` row: the registered name's label,
# the registered domain, the subdomain with ``www.`` set aside (`without_www`), whether it is an address. A plain
# tuple: a batch builds one per new host, and a named tuple's constructor cost more than the reading it saves.
HostNames = tuple[str, str, str, bool]


def without_www(subdomain: str) -> str:
    """A split's subdomain without a leading ``www.`` (``www`` alone is none): the name a site is reached by either
    way."""
    return subdomain[4:] if subdomain.startswith("www.") else "" if subdomain == "www" else subdomain


FEW_HOSTS = 32  # up to this many, hosts are split one by one (cached): the batch kernel's set-up costs more


def split_host_columns(hosts: list[str], arrow: bool = False) -> HostSplits:
    """`split_host`, `on_private_suffix` and `host_registered_domain` of each lower-cased host as lists, each
    host split once (`split_host_arrays`; a few hosts, or text Arrow cannot hold, one by one). With ``arrow``,
    the texts of a batch split at once stay Arrow arrays (and ``is_ip``, ``private`` NumPy masks)."""
    arr = _text_array(hosts) if len(hosts) > FEW_HOSTS else None
    if arr is not None:
        found = split_host_arrays(arr)
        if arrow:
            return found
        return HostSplits(found.subdomain.to_pylist(), found.domain.to_pylist(), found.suffix.to_pylist(),
                          found.is_ip.tolist(), found.private.tolist(), found.registered.to_pylist())
    splits = [_split_host(host) for host in hosts]
    columns = [list(c) for c in zip(*splits, strict=True)] if splits else [[], [], [], [], []]
    return HostSplits(*columns, [_registered(host, *split[1:4]) for host, split in zip(hosts, splits, strict=True)])


def _text_array(texts: list[str]) -> pa.LargeStringArray | None:
    """``texts`` as an Arrow array; None for text Arrow cannot hold (a lone surrogate)."""
    try:
        return pa.array(texts, type=pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError):
        return None


def split_host_arrays(hosts: pa.LargeStringArray) -> HostSplits:
    """`split_host_columns` of an Arrow array of lower-cased hosts (no nulls): the texts as Arrow large-string
    arrays, ``is_ip`` and ``private`` as NumPy masks. The suffix trie is walked in a byte kernel for the
    plain ASCII names (`_PLAIN_HOST`, no punycode, not IPv4-like: most hosts), with the same rules as
    `_psl_split`; the others, and names under no suffix, are split one by one by `_split_host`."""
    n = len(hosts)
    _, offsets, data = hosts.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64)[hosts.offset: hosts.offset + n + 1]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    fast, private, spans = _split_plain(data, offsets, *_flat_trie())
    columns = [pa.LargeStringArray.from_buffers(n, *map(pa.py_buffer, _gather(data, spans[:, k], spans[:, k + 1])))
               for k in range(0, 8, 2)]
    is_ip = np.zeros(n, dtype=bool)
    slow = np.flatnonzero(~fast)
    if len(slow):
        texts = hosts.take(pa.array(slow)).to_pylist()
        splits = [_split_host(host) for host in texts]
        is_ip[slow] = [split[3] for split in splits]
        private[slow] = [split[4] for split in splits]
        values = [[split[0] for split in splits], [split[1] for split in splits], [split[2] for split in splits],
                  [_registered(host, *split[1:4]) for host, split in zip(texts, splits, strict=True)]]
        mask = pa.array(~fast)
        columns = [pc.replace_with_mask(column, mask, pa.array(value, type=pa.large_string()))
                   for column, value in zip(columns, values, strict=True)]
    return HostSplits(columns[0], columns[1], columns[2], is_ip, private, columns[3])


@cache
def _flat_trie() -> tuple[np.ndarray, ...]:
    """`_suffix_trie` as arrays for `_split_plain`: per node whether a suffix ends there, whether it is private
    and its ``*`` child (-1: none); a hash table of the edges (slots holding an edge number, by `_edge_key`);
    per edge its parent, child and label bytes."""
    nodes, edges = [_suffix_trie()], []
    for parent, node in enumerate(nodes):  # breadth first: the list grows while it is walked
        for label, child in node.matches.items():
            edges.append((parent, label.encode("utf-8"), len(nodes)))
            nodes.append(child)
    child_of = {id(node): i for i, node in enumerate(nodes)}
    wildcard = np.array([child_of[id(n.matches["*"])] if "*" in n.matches else -1 for n in nodes], dtype=np.int64)
    end = np.array([n.end for n in nodes], dtype=np.bool_)
    private = np.array([n.is_private for n in nodes], dtype=np.bool_)
    blob = b"".join(label for _, label, _ in edges)
    starts = np.cumsum([0] + [len(label) for _, label, _ in edges])
    labels = np.frombuffer(blob, dtype=np.uint8)
    parents = np.array([e[0] for e in edges], dtype=np.int64)
    children = np.array([e[2] for e in edges], dtype=np.int64)
    slots = _edge_slots(labels, starts[:-1], starts[1:], parents, 1 << max(4, (4 * len(edges)).bit_length()))
    return end, private, wildcard, slots, parents, children, labels, starts[:-1], starts[1:]


@njit(cache=True)
def _edge_slots(labels, starts, ends, parents, size):
    """The open-addressing table (linear probing, at most a quarter full) of the edges by `_edge_key`."""
    slots = np.full(size, -1, dtype=np.int64)
    for k in range(len(parents)):
        at = np.int64(_edge_key(labels, starts[k], ends[k], parents[k]) & np.uint64(size - 1))
        while slots[at] >= 0:
            at = (at + 1) & (size - 1)
        slots[at] = k
    return slots


_FNV_OFFSET, _FNV_PRIME = np.uint64(14695981039346656037), np.uint64(1099511628211)


@njit(cache=True)
def _edge_key(data, start, end, parent):
    """FNV-1a of an edge's parent node and label bytes (a lookup then checks both: a collision only costs time)."""
    h = (_FNV_OFFSET ^ np.uint64(parent)) * _FNV_PRIME
    for j in range(start, end):
        h = (h ^ np.uint64(data[j])) * _FNV_PRIME
    return h


@njit(cache=True)
def _child(node, data, start, end, bang, slots, parents, children, labels, label_starts, label_ends):
    """The child of ``node`` along the label ``data[start:end]`` (``"!" + label`` with ``bang``), or -1."""
    h = (_FNV_OFFSET ^ np.uint64(node)) * _FNV_PRIME
    if bang:
        h = (h ^ np.uint64(33)) * _FNV_PRIME
    for j in range(start, end):
        h = (h ^ np.uint64(data[j])) * _FNV_PRIME
    width = end - start + (1 if bang else 0)
    mask = len(slots) - 1
    at = np.int64(h & np.uint64(mask))
    while slots[at] >= 0:
        k = slots[at]
        if parents[k] == node and label_ends[k] - label_starts[k] == width:
            first = label_starts[k]
            same = not bang or labels[first] == 33
            offset = first + (1 if bang else 0) - start
            for j in range(start, end):
                if not same:
                    break
                same = labels[j + offset] == data[j]
            if same:
                return children[k]
        at = (at + 1) & mask
    return -1


@njit(cache=True)
def _split_plain(data, offsets, end, private, wildcard, slots, parents, children, labels, label_starts, label_ends):
    """`_psl_split` of each host that is a `_PLAIN_HOST` without punycode and that `parse_ip` surely refuses (a
    character outside ``[0-9a-fx.]``) and is not itself a suffix: whether it was split (``fast``), whether on a
    private suffix, and the byte spans of its subdomain, domain, suffix and registered domain (empty where not
    ``fast``)."""
    n = len(offsets) - 1
    fast = np.zeros(n, dtype=np.bool_)
    on_private = np.zeros(n, dtype=np.bool_)
    spans = np.zeros((n, 8), dtype=np.int64)  # (start, end) of the subdomain, domain, suffix, registered domain
    starts = np.empty(256, dtype=np.int64)
    ends = np.empty(256, dtype=np.int64)
    for i in range(n):
        lo, hi = offsets[i], offsets[i + 1]
        if hi == lo or hi - lo > 255 * 2:
            continue
        plain, maybe_ip, count, label_start = True, True, 0, lo
        for j in range(lo, hi + 1):
            c = 46 if j == hi else data[j]
            if c == 46:  # '.'
                if j == label_start or count == 256:
                    plain = False
                    break
                starts[count], ends[count] = label_start, j
                count += 1
                label_start = j + 1
            elif (97 <= c <= 122) or (48 <= c <= 57) or c == 95 or c == 45:  # [a-z0-9_-]
                if maybe_ip and not ((48 <= c <= 57) or (97 <= c <= 102) or c == 120):
                    maybe_ip = False
            else:
                plain = False
                break
        if not plain or maybe_ip:
            continue
        punycode = False
        for j in range(lo, hi - 3):
            if data[j] == 120 and data[j + 1] == 110 and data[j + 2] == 45 and data[j + 3] == 45:
                punycode = True  # "xn--" anywhere: `_psl_split` leaves the host to tldextract's own walk
                break
        if punycode:
            continue
        node, index, label_index, suffix_node = 0, count, count, -1
        for k in range(count - 1, -1, -1):
            child = _child(node, data, starts[k], ends[k], False, slots, parents, children, labels, label_starts,
                           label_ends)
            if child >= 0:
                label_index -= 1
                node = child
                if end[node]:
                    index, suffix_node = label_index, node
                continue
            if wildcard[node] >= 0:
                exception = _child(node, data, starts[k], ends[k], True, slots, parents, children, labels,
                                   label_starts, label_ends)
                index = label_index if exception >= 0 else label_index - 1
                suffix_node = wildcard[node]
            break
        if suffix_node < 0 or index == 0:  # no suffix, or the host is one: `_split_host` says what it makes of it
            continue
        fast[i], on_private[i] = True, private[suffix_node]
        domain_at = starts[index - 1]
        suffix_at = starts[index] if index < count else hi
        spans[i, 0], spans[i, 1] = lo, (domain_at - 1 if index >= 2 else lo)  # subdomain
        spans[i, 2], spans[i, 3] = domain_at, ends[index - 1]  # domain label
        spans[i, 4], spans[i, 5] = suffix_at, hi  # suffix
        spans[i, 6], spans[i, 7] = (domain_at if suffix_at < hi else lo), hi  # registered (no suffix: the host)
    return fast, on_private, spans


@njit(cache=True)
def _gather(data, starts, ends):
    """(offsets, bytes) of an Arrow text array of the byte spans ``data[starts[i]:ends[i]]``."""
    n = len(starts)
    offsets = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        offsets[i + 1] = offsets[i] + ends[i] - starts[i]
    out = np.empty(offsets[n], dtype=np.uint8)
    for i in range(n):
        out[offsets[i]: offsets[i + 1]] = data[starts[i]: ends[i]]
    return offsets, out


def on_private_suffix(host: str) -> bool:
    """Whether the host's public suffix is from the list's private section: a hosting platform where anyone
    can have a site (``github.io``, ``blogspot.com``, ``firebaseapp.com``, ``s3.amazonaws.com``...)."""
    return _split_host(host)[4]


# A lower-case ASCII name with at least one letter outside hex digits and 'x': not an address in disguise
# (`parse_ip` finds none in it) and already what `canonical_host` makes of it (`plain_names` for many hosts).
PLAIN_NAME = re.compile(r"(?=[a-z0-9.-]*[g-wyz])[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")


def plain_names(hosts: list[str]) -> list[bool]:
    """Whether each host is a `PLAIN_NAME`: one RE2 pass through Arrow for many hosts (its look-ahead as a
    second search: RE2 has none), ``re`` for a few (a list either way: the decider reads them one by one, and a
    NumPy array of one host's answer cost a request more than the answer)."""
    arr = _text_array(hosts) if len(hosts) > FEW_HOSTS else None
    if arr is None:
        return [PLAIN_NAME.fullmatch(host) is not None for host in hosts]
    return (pc.match_substring_regex(arr, r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$").to_numpy(zero_copy_only=False)
            & pc.match_substring_regex(arr, "[g-wyz]").to_numpy(zero_copy_only=False)).tolist()


# What `browser_url` may change: a control character or space (at the ends; tab and line breaks anywhere), a pair of
# delimiters around a link (`_DELIMITERS`) or prose's punctuation after it (`_link_in_text`), a backslash, a
# character outside ASCII, an escaped unreserved character, a special scheme without its "//", a "." or ".."
# segment, or a link of a known redirector (`REDIRECTOR_LINK`).
# One pattern for `re` (str) and RE2 (Arrow's search over UTF-8 bytes); a superset of what it changes. Every
# repetition is bounded, so `re` takes linear time on hostile text ("google." repeated 10,000 times).
# A superset of `redirect_target`'s links: a redirector's host (any port), then a path or a query.
# (`www.google.com./url`: the DNS root's dot)
REDIRECTOR_LINK = (r"(?i:(?:google\.[a-z]{2,3}(?:\.[a-z]{2})?|safelinks\.protection\.(?:outlook\.com|office365\.us)"
                   r"|facebook\.com|instagram\.com|youtube\.com|slack-redir\.net|duckduckgo\.com|linkedin\.com|doubleclick\.net"
                   r"|googleadservices\.com|adform\.net"
                   r"|messenger\.com|vk\.com|t\.umblr\.com|steamcommunity\.com|ok\.ru|disq\.us|deref-[a-z0-9-]{3,6}\.[a-z]{2,3}"
                   r"|bing\.com|urldefense\.(?:proofpoint\.)?com|protection\.sophos\.com|linkprotect\.cudasvc\.com"
                   r"|protect2\.fireeye\.com|clicktime\.symantec\.com|secure-web\.cisco\.com|href\.li)"
                   r"\.?(?::[0-9]{1,5})?[/?])")
BROWSER_WORK = (r"[\x00-\x20\\]|[^\x00-\x7f]|%(?:[46][1-9A-Fa-f]|[57][0-9Aa]|3[0-9]|2[DEde]|5[Ff]|7[Ee])"
                r"|^(?i:https?|wss?|ftp):(?:[^/]|/[^/]|///|$)|/\.\.?(?:[/?#]|$)"
                r"|^[\"'(<\[][\x00-\x20\"'(<\[]{0,16}(?:[a-zA-Z][a-zA-Z0-9+.\-]{0,15}://|[wW]{3}\.)"
                r"|[.,:!?'\")\]>;]$|^[\x00-\x20]{0,16}[\"'(<\[][\x00-\x20\"'(<\[]{0,16}[0-9A-Za-z]"
                r"|(?i:[\[({](?:\.|dot|:|@)[\])}]|\[://\]|hxxps?:)"
                r"|" + REDIRECTOR_LINK)
_BROWSER_WORK = re.compile(BROWSER_WORK)
_SPECIAL_SCHEME = re.compile(r"(?i)(https?|wss?|ftp):[/\\]*")
_OTHER_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]{0,15}://")
_LINK_START = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]{0,15}(?:://|\[:\]//|\[://\])")  # a scheme, also defanged
# How threat reports and lists defang an address so that a click opens nothing: ``hxxp``/``hXXps`` for the scheme,
# ``[:]`` or ``[://]`` for its separator, ``[.]``, ``(.)``, ``{.}`` or ``[dot]`` for a host's dots, ``[:]`` before
# its port and ``[@]`` after a user's name. No web address has them in its scheme or host (a host's brackets hold
# only an IPv6 address), so there they are read as the address meant (`_refanged`); a path's text stays as written
# (``/my-(dot)-com-story``).
_DEFANGED_SCHEME = re.compile(r"(?i)hxxp(s?)(?:\[:\]|\[://\]|:)|http(s?)(?:\[:\]|\[://\])")
# a scheme and the slashes a browser reads after it (``https:///kit``), before the host
_SCHEME_AND_SLASHES = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]{0,15}:[/\\]*")


def _bracketed(marks: str) -> str:
    """One of ``marks`` between brackets, however many (``{{.}}``), as one match."""
    return r"[\[({]+(" + marks + r")[\])}]+"


_DOT_MARK = _bracketed(r"\.|(?i:dot)")  # a host's dot (`_BARE_HOST`)
# a dot, ":" or "@" (`_refanged`), found from a run's first bracket, in linear time
_DEFANGED_MARK = re.compile(r"(?<![\[({])" + _bracketed(r"\.|(?i:dot)|:|@"))
# text a browser would read as a scheme (a name and ":" before anything but a port's digits)
_READ_AS_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]{0,15}:(?![0-9])")
_AUTHORITY_END = re.compile(r"[/?#\\]")
_UNRESERVED_ESCAPE = re.compile(r"%(?:[46][1-9A-Fa-f]|[57][0-9Aa]|3[0-9]|2[DEde]|5[Ff]|7[Ee])")
# C0 controls and space, a byte-order mark, and the direction marks, embeddings, overrides and isolates that wrap a
# link copied from right-to-left text (``<U+202B>https://example.com/<U+202C>``): none of them is part of the link
_ENDS = "".join(map(chr, range(0x21))) + "\ufeff\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# The delimiters a link is written between in text: angle brackets (RFC 3986, appendix C), quotes, brackets and
# parentheses (messages, markdown, logs); a pair of them is not part of the link it holds. Taken off only around a
# scheme's ``://``, a ``www.`` name or a host written alone (`_BARE_HOST`), so a path's own parenthesis
# (``/wiki/Python_(language)``) stays.
_DELIMITERS = {"<": ">", '"': '"', "'": "'", "(": ")", "[": "]"}
# A host written alone, as a link in text may be (``(208.67.222.222)``, ``<acme.okta.com/app>``): a dotted name
# (its dots defanged or not: labels and dots alternate, so it is matched in linear time), a name with a port,
# ``localhost``, an address as a number (``<1540838717/x>``) or an IPv6 address in its brackets, then a port, the
# path, a delimiter or the end
_IPV6_LITERAL = re.compile(r"\[[0-9A-Fa-f.]{0,40}:[0-9A-Fa-f:.]{1,44}\]")
_BARE_HOST = re.compile(r"(?:\w[\w-]*(?:(?:\.|" + _DOT_MARK + r")+[\w-]+)+|\w[\w.-]*(?=:[0-9])|(?i:localhost)"
                        r"|0[xX][0-9A-Fa-f]{1,8}|[0-9]{8,10}|" + _IPV6_LITERAL.pattern
                        + r")(?::[0-9]{1,5})?(?=[/?#\"')>\]]|\Z)")
# an IPv6 address written without its brackets, alone between delimiters (``<2001:4860:4860::8888>``): the run of its
# characters up to a closing delimiter or the end, if `parse_ip` reads it as one
_IPV6_ALONE = re.compile(r"[0-9A-Fa-f:.]{2,45}(?=[\"')>\]]|\Z)")
# A markdown link (CommonMark's inline link, ``[text](https://example.com/ "title")``), as tickets, chats and
# reports carry them: the link is its destination, whatever its text shows (``[https://www.paypal.com](https://kit
# .example/)`` opens the kit). A text without brackets, a destination in ``<>`` or without spaces (its parentheses
# balanced: ``/wiki/Python_(language)``); every repetition bounded or unambiguous, so matched in linear time.
_MARKDOWN_LINK = re.compile(r"\[[^\[\]]{0,4096}\]\([ \t\n]{0,16}(?:<([^<>\n]{1,65536})>|([^\s()<>]{0,65536}"
                            r"(?:\([^\s()<>]{0,65536}\)[^\s()<>]{0,65536})*))"
                            r"(?:[ \t\n]{1,16}(?:\"[^\"]{0,4096}\"|'[^']{0,4096}'|\([^()]{0,4096}\)))?[ \t\n]{0,16}\)")
# What prose puts after a link (`_link_in_text`): a sentence's punctuation mark, a quote, a closing bracket. A
# browser would send them, but the link meant is the one before them: a stock file's or a page asset's name, or a
# resolver's address, with a "," or ")" after it is no longer recognised (``https://oakridgevet.com/wp-login.php.``
# and ``208.67.222.222,`` had been `malicious`). A ";" only before any query or fragment (``?a=1;b=2;``), and not
# where it ends an HTML escape (``&amp;``, `_ESCAPE_END`) or a Proofpoint link's wrapped address
# (``__https://kit.example/__;``).
_SENTENCE = ".,:!?"
_ESCAPE_END = re.compile(r"&(?:amp;)?#?[0-9A-Za-z]{1,32};\Z")  # searched in the 35 characters before a ";"
_QUOTES = "'\""
_CLOSING = {")": "(", "]": "[", ">": "<"}
_PAIRED = frozenset("()[]<>'\"")
_BROWSER_ROUNDS = 4  # `_browser_form` is read again until it changes nothing, at most this many times
_MAX_BROWSER_CHARS = 65_536  # longer texts are refused unscored (`features.lexical.MAX_URL_CHARS`): left as they are
MAX_REDIRECTS = 32  # redirector links inside one another that are unwrapped; past it, a link is judged as written


def browser_url(text: str) -> str:
    """The URL a browser requests for ``text``, as far as it differs in ways that hide what the URL names
    (WHATWG URL parsing): control characters and spaces at the ends (and a byte-order mark) dropped, tab and
    line breaks dropped anywhere, a backslash read as ``/`` before the query, a special scheme's slashes
    restored (``https:host``, ``https:\\\\host``), a host with escapes or characters outside ASCII as the
    browser resolves it (`canonical_host`: ``ｐａｙｐａｌ.com``, ``pay%70al.com``, a soft hyphen), and escaped
    unreserved characters (``%77p-login.php``) decoded, as servers decode them (RFC 3986, 6.2.2.2), and ``.`` and
    ``..`` segments of the path resolved (``/a/../wp-login.php`` is ``/wp-login.php``). The
    fragment is kept (the model reads it), as are case, ports and other escapes. A known redirector's link
    (``https://www.google.com/url?q=https://kit.example/``: `redirect_target`) is the page it sends the browser
    to, unwrapped again while it is one: the redirector's name says nothing of that page. Before any of this, the
    link is taken out of the text around it (`_link_in_text`) and a defanged one is read as the address it names
    (`_refanged`: ``hxxps[:]//kit[.]example/x`` is ``https://kit.example/x``). Idempotent; a text needing none of
    this is returned as it is."""
    return browser_url_and_note(text)[0]


def browser_url_and_note(text: str) -> tuple[str, str]:
    """`browser_url` of ``text``, and why it is another site's page when a redirector's link led there, in words
    an analyst can check ("a link through `www.google.com` to `kit.example`: judged as that page", "written
    defanged: judged as `kit.example`"; "" if not)."""
    if len(text) > _MAX_BROWSER_CHARS or not _BROWSER_WORK.search(text):
        return text, ""
    written, defanged = _browser_form(text)
    url, redirectors = _unwrapped(written)
    # ";" separates reasons, so a host is shown escaped
    notes = []
    # only of a host a browser accepts (else the URL is an error, judged as nothing); a redirector's note names the
    # page it leads to
    if defanged and (host := url_fields(written)[2]) and canonical_host(host):
        notes.append("written defanged" if redirectors else f"written defanged: judged as `{host.replace(';', '%3B')}`")
    if redirectors:
        through = " and ".join(f"`{host}`" for host in redirectors)
        notes.append(f"a link through {through} to `{url_fields(url)[2].replace(';', '%3B')}`: judged as that page")
    return url, "; ".join(notes)


def _unwrapped(url: str) -> tuple[str, list[str]]:
    """The page at the end of a known redirector's link (`redirect_target`, again while it is one), and the
    redirectors' hosts on the way; more than `MAX_REDIRECTS` of them, the link as it is (and no hosts)."""
    redirectors: list[str] = []
    page = url
    for _ in range(MAX_REDIRECTS):
        if (target := redirect_target(page)) is None:
            return page, redirectors
        redirectors.append(url_fields(page)[2])
        page = target
    return (url, []) if redirect_target(page) is not None else (page, redirectors)


def _browser_form(text: str) -> tuple[str, bool]:
    """`browser_url` without the redirectors, and whether it was written defanged (`_refanged`):
    `_browser_form_once` again until it changes nothing (an escape undone may end a path in a sentence's mark,
    ``/a%2E``), so that a second reading of its answer changes nothing."""
    defanged = False
    for _ in range(_BROWSER_ROUNDS):
        url, refanged = _browser_form_once(text)
        defanged = defanged or refanged
        if url == text:
            break
        text = url
    return text, defanged


def _browser_form_once(text: str) -> tuple[str, bool]:
    link = _link_in_text(text.strip(_ENDS)).replace("\t", "").replace("\n", "").replace("\r", "")
    url = _refanged(link)  # before the URL is split: its parts are those of the address it names
    if special := _SPECIAL_SCHEME.match(url):
        prefix, rest = f"{special.group(1)}://", url[special.end():]
    else:  # another scheme or none: read as a browser reads a typed address
        other = _OTHER_SCHEME.match(url)
        prefix, rest = (other.group(0), url[other.end():]) if other else ("", url)
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    before, after = rest[:cut].replace("\\", "/"), rest[cut:]
    hash_at = after.find("#")
    query, fragment = (after, "") if hash_at < 0 else (after[:hash_at], after[hash_at:])
    authority, slash, path = before.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    host, colon, port = hostport, "", ""
    if not hostport.startswith("[") and hostport.count(":") == 1:
        host, colon, port = hostport.partition(":")
    if host and (not host.isascii() or "%" in host):
        host = canonical_host(host) or host
    path = _without_dot_segments(_unescaped(slash + path))
    return f"{prefix}{userinfo}{at}{host}{colon}{port}{path}{_unescaped(query)}{fragment}", url != link


def _refanged(text: str) -> str:
    """``text`` with a defanged scheme and host (`_DEFANGED_SCHEME`, `_DEFANGED_MARK`) read as the address they
    name: ``hxxps[:]//kit[.]example/x`` is ``https://kit.example/x``, ``203.0.113[.]7`` is ``203.0.113.7``. Left as
    written when a scheme-less text would become one read as a scheme: ``kit[.]tk:paypal.com`` would name
    ``paypal.com``."""
    if (scheme := _DEFANGED_SCHEME.match(text)) is not None:
        secure = (scheme.group(1) or scheme.group(2) or "").lower()
        text = f"http{secure}:{'//' if scheme.group(0).endswith('[://]') else ''}{text[scheme.end():]}"
    start = found.end() if (found := _SCHEME_AND_SLASHES.match(text)) is not None else 0
    end = found.start() if (found := _AUTHORITY_END.search(text, start)) is not None else len(text)
    marks = _DEFANGED_MARK.sub(lambda mark: "." if mark.group(1).lower() == "dot" else mark.group(1), text[start:end])
    refanged = f"{text[:start]}{marks}{text[end:]}"
    return text if start == 0 and _READ_AS_SCHEME.match(refanged) else refanged


def _proofpoint_v2(value: str) -> str:
    """A Proofpoint v2 ``u`` value's URL: "-" is written for "%" and "_" for "/"."""
    return unquote(value.replace("-", "%").replace("_", "/"))


def _translated_page(value: str) -> str:
    """The page Google Translate's website proxy shows for a ``u`` value: a name written without a scheme is read
    over http, as the service reads it (``u=kit.example/login``, as kits' links write it)."""
    return value if _SCHEME_AND_SLASHES.match(value) else f"http://{value}"


def _youtube_page(value: str) -> str:
    """YouTube's redirect when an attribution link's ``u`` names it (``/redirect?q=<page>``, which leads on); ""
    for its other pages (``/watch?v=…``: YouTube's own, as the link is) and for any other value."""
    return f"https://www.youtube.com{value}" if value.startswith("/redirect?") else ""


def _bing_target(value: str) -> str:
    """The URL a Bing click-tracking ``u`` value holds ("a1" + URL-safe base64 without padding); "" for another."""
    return _base64_text(value[2:]) if value.startswith("a1") else ""


def _sophos_target(value: str) -> str:
    """The URL a Sophos Email ``u`` value holds (base64; a query's "+" reads as a space); "" for another."""
    return _base64_text(value.replace(" ", "+"))


def _base64_text(text: str) -> str:
    """``text`` (base64 of either alphabet, its padding optional) decoded as UTF-8; "" for another text. Strict: a
    lenient decoder stops at the first padding or skips stray characters, so ``<benign>==<kit>`` could be read as
    the benign page while another reader goes to the kit."""
    if len(text) > _MAX_BROWSER_CHARS or not text.isascii():
        return ""
    try:
        data = binascii.a2b_base64((text + "=" * (-len(text) % 4)).translate(_URL_SAFE_BASE64), strict_mode=True)
        return data.decode("utf-8")
    except (binascii.Error, ValueError):  # not base64, or not UTF-8 text (UnicodeDecodeError is a ValueError)
        return ""


_URL_SAFE_BASE64 = str.maketrans("-_", "+/")

# Redirectors whose links name their destination: search engines', social networks' and mail gateways' link
# wrappers (a phishing mail reported from behind a gateway arrives wrapped, and its link reaches the kit). Each:
# its hosts, its redirect paths (None: any), the query parameters naming the page, and how a value is written
# (None: as the page's URL).
_GOOGLE = re.compile(r"(?:www\.)?google\.(?:com|co|com?\.[a-z]{2}|[a-z]{2})")
_REDIRECTORS: tuple[tuple[re.Pattern, tuple[str, ...] | None, tuple[str, ...], Callable[[str], str] | None], ...] = (
    (_GOOGLE, ("/url",), ("q", "url"), None),
    # Google Translate's website proxy: the page it shows, translated, is the page named (kits use it to put
    # Google's name first: 50 phishing links of the collections, to kits; 125 legitimate ones, to news pages)
    (re.compile(r"translate\.google\.(?:com|co|com?\.[a-z]{2}|[a-z]{2})"), ("/translate", "/website"), ("u",),
     _translated_page),
    # Safe Links: ``/?url=``, and ``/ap/w-59584e83/?url=`` for an Office document's link; ``office365.us`` for
    # Microsoft's government cloud
    (re.compile(r"[a-z0-9-]+\.safelinks\.protection\.(?:outlook\.com|office365\.us)"), None, ("url",), None),
    (re.compile(r"l[m]?\.facebook\.com|l\.messenger\.com"), ("/l.php",), ("u",), None),
    (re.compile(r"l\.instagram\.com"), ("/",), ("u",), None),
    (re.compile(r"(?:www\.|m\.)?youtube\.com"), ("/redirect",), ("q",), None),
    # a share's attribution link names a page of YouTube's own (``u=/watch?v=…``): its redirect leads on
    (re.compile(r"(?:www\.|m\.)?youtube\.com"), ("/attribution_link",), ("u",), _youtube_page),
    (re.compile(r"slack-redir\.net"), ("/link",), ("url",), None),
    (re.compile(r"(?:www\.)?linkedin\.com"), ("/redir/redirect",), ("url",), None),
    (re.compile(r"(?:m\.|away\.)?vk\.com"), ("/away.php",), ("to",), None),  # VK's warning before leaving it
    (re.compile(r"t\.umblr\.com"), ("/redirect",), ("z",), None),  # Tumblr's
    (re.compile(r"steamcommunity\.com"), ("/linkfilter/", "/linkfilter"), ("url", "u"), None),
    (re.compile(r"(?:m\.)?ok\.ru"), ("/dk",), ("st.link",), None),  # Odnoklassniki's
    (re.compile(r"disq\.us"), ("/",), ("url",), None),  # Disqus comments' links
    (re.compile(r"deref-(?:gmx\.net|gmx\.com|web\.de|web-02\.de|mail\.com)"), None, ("redirectUrl",), None),  # webmail
    (re.compile(r"urldefense\.proofpoint\.com"), ("/v2/url",), ("u",), _proofpoint_v2),
    (re.compile(r"urldefense\.proofpoint\.com"), ("/v1/url",), ("u",), None),
    (re.compile(r"(?:html\.)?duckduckgo\.com"), ("/l/",), ("uddg",), None),
    (re.compile(r"adclick\.g\.doubleclick\.net"), ("/pcs/click",), ("adurl",), None),
    # Google's cookie-matching pixel sends the browser on to a partner's page (6 phishing links of the collections,
    # one campaign's, no legitimate one)
    (re.compile(r"cm\.g\.doubleclick\.net"), ("/pixel",), ("google_redir",), None),
    # an ad's click: the advertiser's page (kits bought ads, or wrote such links by hand: 5 phishing links of the
    # collections, no legitimate one)
    (_GOOGLE, ("/aclk",), ("adurl",), None),
    (re.compile(r"(?:www\.)?googleadservices\.com"), ("/pagead/aclk",), ("adurl",), None),
    # Bing's click tracking (kits sent by mail use it, as their links then start with Bing's name)
    (re.compile(r"(?:[a-z0-9-]+\.)?bing\.com"), ("/ck/a",), ("u",), _bing_target),  # www., cn., ...
    (re.compile(r"[a-z0-9-]+\.protection\.sophos\.com"), ("", "/"), ("u",), _sophos_target),  # eu-west-1., ...
    (re.compile(r"linkprotect\.cudasvc\.com"), ("/url",), ("a",), None),  # Barracuda
    (re.compile(r"protect2\.fireeye\.com"), ("/v1/url",), ("u",), None),  # Trellix (FireEye)
    (re.compile(r"clicktime\.symantec\.com"), None, ("u",), None),  # Symantec (Broadcom): a token as the path
)
_GOOGLE_TRANSLATE = _REDIRECTORS[1][0]
# Ad servers' click links whose query holds the advertiser's page after their own fields: Campaign Manager's
# (``ad.doubleclick.net/ddm/clk/<ids>;<ids>?<page>``, the page written whole, its scheme sometimes left out:
# ``?//kit.example/``) and Adform's (``track.adform.net/C/?bn=<id>;cpdir=<page>``, the page last). 7 phishing links
# of the collections are written so, no legitimate one.
_CAMPAIGN_MANAGER_CLICK = re.compile(r"/(?:ddm/)?clk[/;]")
_ADFORM_PAGE = re.compile(r"(?:^|[;&])cpdir=")
_PROOFPOINT_V3 = re.compile(r"(?i)https?://urldefense\.com/v3/__(.+?)__;")


def redirect_target(url: str) -> str | None:
    """The page (its `browser_url` form) a known redirector's link, itself in that form, sends the browser to
    (``https://www.google.com/url?q=<page>``, Google's AMP viewer and Translate proxy, an Outlook Safe Links,
    Facebook, Messenger, Instagram, YouTube, Slack, LinkedIn, VK, Tumblr, Steam, Odnoklassniki, Disqus, DuckDuckGo,
    DoubleClick (an ad's click or the cookie-matching pixel's) or Bing link, an ad's click (Google Ads, Campaign
    Manager, Adform), a mail gateway's (Proofpoint, Sophos, Barracuda, Trellix, Symantec, Cisco), a webmail's (GMX,
    WEB.DE, mail.com) or href.li's, over http or https); None for any other URL, and for a link whose destination
    is no web page with a valid host or is ambiguous: the parameter given twice with different pages, or a
    different page once HTML's ``&amp;`` is read as ``&`` (a server reads ``&amp;q=`` as a parameter ``amp;q``),
    since the page a server would pick is not known."""
    if len(url) > _MAX_URL_CHARS:  # `url_fields` reads a prefix: a page cut short (``…adurl=https://www.nike.com``
        return None  # of ``www.nike.com.kit.example``) or a second page past the cut would be misread
    scheme, _, host, _, path, query, _ = url_fields(url)
    if scheme not in ("", "http", "https"):  # ``javascript://www.google.com/url?…`` goes nowhere
        return None
    if (v3 := _PROOFPOINT_V3.match(url)) is not None:
        return _web_page(v3.group(1))
    if path.startswith("/amp/s/") and _GOOGLE.fullmatch(host) and not on_private_suffix(host):  # AMP viewer
        return _web_page(f"https://{path[len('/amp/s/'):]}{'?' if query else ''}{query}")
    if host == "secure-web.cisco.com":  # Cisco Secure Email: /<token>/<the page's URL, escaped>
        token, slash, page = path[1:].partition("/")
        return _web_page(f"{unquote(page)}{'?' if query else ''}{query}") if token and slash else None
    if host == "href.li" and path == "/":  # a referrer-hiding link: the whole query is the page
        return _web_page(query)
    if host == "ad.doubleclick.net" and _CAMPAIGN_MANAGER_CLICK.match(path):
        return _web_page(f"{scheme or 'http'}:{query}" if query.startswith("//") else query)
    if host == "track.adform.net" and path.lower() == "/c/":  # the page runs to the end: a second one is ambiguous
        unescaped = query.replace("&amp;", "&")
        fields = list(_ADFORM_PAGE.finditer(unescaped))
        return _web_page(unescaped[fields[0].end():]) if len(fields) == 1 else None
    for hosts, redirect_paths, names, written in _REDIRECTORS:
        # Google's own ccTLD names; ``google.com.de`` is a name on a registry's private suffix, not Google's
        if (redirect_paths is None or path in redirect_paths) and hosts.fullmatch(host) \
                and not (hosts in (_GOOGLE, _GOOGLE_TRANSLATE) and on_private_suffix(host)):
            values = [value for text in dict.fromkeys((query, query.replace("&amp;", "&")))
                      for name, value in parse_qsl(text) if name in names]
            pages = {page for value in values if (page := _web_page(written(value) if written else value))}
            return pages.pop() if len(pages) == 1 else None
    return None


def _web_page(text: str) -> str | None:
    """``text`` as the web page a browser opens (`_browser_form`: ``https:/kit`` and ``https:\\kit`` are
    ``https://kit``), None when it is no http(s) URL with a host the browser accepts."""
    page = _browser_form(text)[0]
    scheme, _, host, *_ = url_fields(page)
    if scheme not in ("http", "https") or not page.lower().startswith(scheme + "://") or not canonical_host(host):
        return None
    return page


def _without_dot_segments(path: str) -> str:
    """``path`` with its ``.`` and ``..`` segments resolved as a browser resolves them (a last one leaves a
    trailing ``/``; ``..`` at the root stays at the root)."""
    if "/." not in path:
        return path
    kept: list[str] = []
    segments = path.split("/")[1:]
    for i, segment in enumerate(segments):
        if segment in (".", ".."):
            if segment == ".." and kept:
                kept.pop()
            if i == len(segments) - 1:
                kept.append("")
        else:
            kept.append(segment)
    return "/" + "/".join(kept)


def browser_forms(urls: pa.LargeBinaryArray) -> tuple[pa.LargeBinaryArray, dict[int, str]]:
    """`browser_url_and_note` of each URL of a UTF-8 binary array: the URLs, and the notes by row. The rows that
    may need it are found in one RE2 pass (few do: 4,227 of the 1.45 million of `data/validated.parquet` change),
    the others returned as they are."""
    found = pc.match_substring_regex(urls, BROWSER_WORK)
    changed, notes = {}, {}
    for i in np.flatnonzero(found.fill_null(False).to_numpy(zero_copy_only=False)).tolist():
        url = urls[i].as_py()
        requested, note = browser_url_and_note(url.decode("utf-8", "replace"))
        if (new := requested.encode("utf-8", "replace")) != url:
            changed[i] = new
        if note:
            notes[i] = note
    if not changed:
        return urls, notes
    mask = np.zeros(len(urls), dtype=bool)
    mask[list(changed)] = True
    return pc.replace_with_mask(urls, pa.array(mask), pa.array(list(changed.values()), type=pa.large_binary())), notes


def _link_in_text(text: str) -> str:
    """The link ``text`` holds as prose writes it, in one pass from both ends (linear time on any text):
    - without a pair of delimiters around it (`_DELIMITERS`: ``<https://example.com/>``,
      ``("https://example.com/")``), when a scheme's ``://``, a ``www.`` name or a host (`_BARE_HOST`:
      ``(208.67.222.222)``; an IPv6 address alone, `_IPV6_ALONE`) follows the opening ones;
    - without what prose puts after it: a quote or a closing bracket that has no partner in the text (as GitHub
      Flavored Markdown's autolinks read links), a sentence's mark (`_SENTENCE`) that is one alone, and a ";"
      before any query that ends no HTML escape;
    - and the spaces and controls these leave at its ends (`_ENDS`);
    - then, of a markdown link (`_MARKDOWN_LINK`), its destination.
    ``(https://example.com/wp-login.php).`` is ``https://example.com/wp-login.php``, while
    ``/wiki/Python_(language)`` keeps its own parenthesis and ``/signin......`` its run of dots (kits' URLs in the
    collections end so, and the model reads it)."""
    start, end = 0, len(text)
    count = dict.fromkeys(_PAIRED, 0)
    for char in text:
        if char in _PAIRED:
            count[char] += 1
    link = start
    while link < end and (text[link] in _ENDS or text[link] in _DELIMITERS):
        link += 1
    if link and text[link - 1] == "[" and _IPV6_LITERAL.match(text, link - 1):
        link -= 1  # an IPv6 address's own bracket (``[2001:db8::1]``, ``<[2001:db8::1]/x>``): part of the link
    alone = _IPV6_ALONE.match(text, link)
    delimited = (bool(_LINK_START.match(text, link)) or text[link:link + 4].lower() == "www."
                 or bool(_BARE_HOST.match(text, link)) or (alone is not None and ":" in alone[0]
                                                          and parse_ip(alone[0]) is not None))
    query = min((i for i in (text.find("?"), text.find("#")) if i >= 0), default=end)
    while end - start > 1:
        first, last = text[start], text[end - 1]
        if delimited and start < link and end - start > 2 and _DELIMITERS.get(first) == last:
            count[first] -= 1
            count[last] -= 1
            start, end = start + 1, end - 1
        elif ((last in _QUOTES and count[last] % 2) or (last in _CLOSING and count[last] > count[_CLOSING[last]])
              or (last in _SENTENCE and text[end - 2] not in _SENTENCE)
              or (last == ";" and end <= query and text[end - 2] != ";" and text[end - 3:end - 1] != "__"
                  and not _ESCAPE_END.search(text, max(0, end - 35), end))):
            if last in _PAIRED:
                count[last] -= 1
            end -= 1
        else:
            break
        while start < end and text[start] in _ENDS:
            start += 1
        while end > start and text[end - 1] in _ENDS:
            end -= 1
    markdown = _MARKDOWN_LINK.fullmatch(text, start, end)
    target = (markdown[1] or markdown[2]).strip(_ENDS) if markdown else ""
    return target or text[start:end]  # an empty destination (``[x]()``) is no link: the text as written


def _unescaped(text: str) -> str:
    """``text`` with its escaped unreserved characters decoded, again until none is left (``%%36%31`` is ``%61``
    once, ``a`` twice), so that `browser_url` of its own answer changes nothing."""
    while (decoded := _UNRESERVED_ESCAPE.sub(lambda m: chr(int(m.group(0)[1:], 16)), text)) != text:
        text = decoded
    return text


def canonical_host(host: str) -> str | None:
    """The host as a browser resolves it (WHATWG URL host parsing, by ada-url): IPv4 in any notation
    (``1.10.4101``, ``0x1.0xa.0x10.0x5``, ``01.012.020.05``, full-width digits, ideographic dots) becomes
    dotted decimal, names become lower-case IDNA, an IPv6 address is bracketed and compressed
    (``2001:DB8:0::1`` is ``[2001:db8::1]``). None for a host a browser would refuse."""
    if not host:
        return None
    if PLAIN_NAME.fullmatch(host):  # already what a browser makes of it: no need to parse
        return host
    import ada_url

    # an IPv6 address written without its brackets, as lists, logs and feeds write one, is the bracketed host
    for written in ([f"[{host}]", host] if ":" in host and not host.startswith("[") else [host]):
        try:
            return ada_url.URL(f"http://{written}/").hostname
        except ValueError:
            continue
    return None


def host_and_parents(host: str) -> list[str]:
    """The host, then each parent name down to two labels (``a.b.example.com``, ``b.example.com``,
    ``example.com``); an IP address (or any all-numeric name: no domain has a numeric top level) is only
    itself, so ``1.2.3.4`` is no parent of ``9.1.2.3.4``."""
    if parse_ip(host) is not None or host.replace(".", "").isdigit():
        return [host]
    return name_and_parents(host)


def name_and_parents(name: str) -> list[str]:
    """`host_and_parents` of a host the caller knows to be a name, not an address (no test for one)."""
    labels = name.split(".")
    return [".".join(labels[i:]) for i in range(max(1, len(labels) - 1))]


def last_two_labels(name: str) -> str:
    """The last two labels of a name (``example.com`` of ``a.b.example.com``), the name itself if it has fewer:
    what a name shares with each of its `host_and_parents`, so two names with different ones are never one the
    other's parent."""
    return name[name.rfind(".", 0, name.rfind(".")) + 1:]


def host_registered_domain(host: str) -> str:
    """The package's one registered-domain rule: ``example.co.uk`` for ``a.b.example.co.uk`` (public suffix
    list, private section included: ``user.github.io`` is its own site); the host itself for IP addresses
    and names under no public suffix."""
    return _registered(host, *split_host(host)[1:])


def _registered(host: str, domain: str, suffix: str, is_ip: bool) -> str:
    return host if is_ip or not suffix else f"{domain}.{suffix}"


# Suffixes of the public suffix list's private section under which one government names its own services: the
# entries submitted by the UK's GDS and CDDO, the Scottish Government and the Government of the Netherlands. They
# are on the list to keep each service's cookies apart, not because anyone can register a name there, so a site
# under one carries the suffix's reputation (Tranco ranks service.gov.uk 437; its sites, such as the tax sign-in
# ``www.access.service.gov.uk``, are not ranked apart). Platforms where anyone gets a name (``github.io``) keep
# their users' sites apart, as the list says.
GOVERNMENT_SUFFIXES = ("service.gov.uk", "campaign.gov.uk", "api.gov.uk", "independent-commission.uk",
                       "gov.scot", "service.gov.scot", "gov.nl")
_UNDER_GOVERNMENT = tuple("." + suffix for suffix in GOVERNMENT_SUFFIXES)
# Names of that section's suffixes that one company gives its own services, which carry the suffix's rank, by suffix.
# ``googleapis.com``: Chrome's updater (``update.googleapis.com/service/update2/json``, asked by every Chrome, model
# 0.997), Google's sign-in tokens (``oauth2.googleapis.com/token``), push messaging, Safe Browsing, Firebase's
# installations, Google's fonts, hosted libraries and maps. Only these: Google serves its customers' files under
# many other names there (``storage``, ``<bucket>.storage-download``, ``<region>-storage``, ``content``, ``www``'s
# Drive and Storage downloads, ``*.rep``, ``*.mtls``; 827 phishing URLs of data/validated.parquet on the storage
# names), and more keep appearing, so those stay sites of their own. The names listed hold 3 legitimate URLs of
# data/validated.parquet and one labelled phishing: jQuery on Google's CDN (``ajax.googleapis.com/ajax/libs/…``).
OPERATOR_SERVICES = {"googleapis.com": frozenset({
    "update", "oauth2", "fcm", "android", "safebrowsing", "firebaseinstallations", "firebaseremoteconfig", "fonts",
    "ajax", "maps", "optimizationguide-pa", "content-autofill"})}


# Suffixes of that section whose every name is its operator's delivery of a paying customer's own site: the entries
# Akamai submitted (``ax.phobos.apple.com.edgesuite.net``, ``steamcommunity-a.akamaihd.net``,
# ``a772.g.akamai.net/…/www.apple.com/…``). Nobody publishes there without a contract naming the property, so a name
# carries the suffix's rank (Tranco ranks akamai.net 65, edgesuite.net 344, akamaihd.net 725). In
# data/validated.parquet 1,895 legitimate URLs and 5 labelled phishing (an image on Facebook's old photo CDN, an
# Apple Store page and a bank's test name) are on them; as sites of their own, Apple's names read as a brand named
# in an unpopular site's subdomain (`decider.named_brands`) and one of https_everywhere's legitimate images was
# `malicious` (session 62).
OPERATOR_SUFFIXES = frozenset({
    "akadns.net", "akamai.net", "akamai-staging.net", "akamaiedge.net", "akamaiedge-staging.net", "akamaihd.net",
    "akamaihd-staging.net", "akamaiorigin.net", "akamaiorigin-staging.net", "akamaized.net", "akamaized-staging.net",
    "edgekey.net", "edgekey-staging.net", "edgesuite.net", "edgesuite-staging.net"})


def ranked_name(registered_domain: str) -> str:
    """The name whose popularity a registered domain carries: its own, or for a site under one of
    `GOVERNMENT_SUFFIXES` that suffix's (``service.gov.uk`` for ``access.service.gov.uk``), for one of
    `OPERATOR_SERVICES` the suffix's (``googleapis.com`` for ``update.googleapis.com``, not for
    ``storage.googleapis.com``), and for any name under one of `OPERATOR_SUFFIXES` the suffix's."""
    if registered_domain.endswith(_UNDER_GOVERNMENT):
        return registered_domain.split(".", 1)[1]
    name, _, suffix = registered_domain.partition(".")
    return suffix if name in OPERATOR_SERVICES.get(suffix, ()) or suffix in OPERATOR_SUFFIXES else registered_domain


def split_url(raw: object) -> UrlParts:
    """Split any value into URL parts. Lower-cases scheme and host; keeps path case."""
    fields = url_fields(raw)
    return UrlParts(*fields, *split_host(fields[2]))


def url_fields(raw: object) -> tuple[str, str, str, str, str, str, str]:
    """`split_url`'s (scheme, userinfo, host, port, path, query, fragment), without the host's public-suffix split
    (what the row rules that read only the path or the user-info need)."""
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
    return scheme, userinfo, host, port, path, query, fragment


def page_key(raw: object) -> str:
    """The key under which a list holds one page (an analyst's URL-level correction): `normalise` of its
    `browser_url`, its host as a browser resolves it (`canonical_host`), without what does not change the page a
    server sends: the fragment (never sent), an empty query, the scheme's default port, the host's trailing dot,
    user-info (browsers do not send it); the path and query keep their case (servers tell ``/AbC`` from ``/abc``: a
    short link, a shared file's id). A key is its own key (lists are merged by their keys): taken again until it
    is, for texts that are no URL (``a/ /``)."""
    key = _page_key(raw)
    for _ in range(4):
        if (again := _page_key(key)) == key:
            break
        key = again
    return key


def _page_key(raw: object) -> str:
    scheme, _, host, port, path, query, _ = url_fields(browser_url(to_text(raw)))
    if not host:
        return normalise(raw)
    if port in {"http": ("80",), "https": ("443",)}.get(scheme, ()):
        port = ""
    host = canonical_host(host) or host  # the host requested: 1.10.4101 is 1.10.16.5, 2001:DB8:0::1 is [2001:db8::1]
    # `normalise` without lower-casing the path and query: ``bit.ly/3xYzAbC`` and ``bit.ly/3xyzabc`` are two links
    return f"{host.removeprefix('www.')}{':' if port else ''}{port}{path}{'?' if query else ''}{query}".rstrip("/")


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
