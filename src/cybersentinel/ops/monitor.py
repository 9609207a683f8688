"""Follow a web server or proxy access log, a resolver's query log or a network monitor's log: score each new URL,
name and address, alert, keep a block list current.

Formats: ``combined`` (nginx/Apache; ``common`` lines too), ``vhost_combined`` (Apache, ``%v:%p`` first),
``squid`` (native), the query logs of ``dnsmasq`` (``log-queries``, plain or ``extra``), ``unbound``
(``log-queries``/``log-replies``, epoch or ``log-time-ascii`` times) and ``bind`` (``querylog``, in its own channel
or syslog), each also as syslog lines; and ``suricata`` (EVE JSON) and ``zeek`` (http.log, dns.log and ssl.log, as
JSON or tab-separated). Which URL a line names depends on who wrote it:

- A proxy (Squid, or nginx/Apache as a forward proxy) logs the absolute URL the client asked for: it is scored.
  For ``CONNECT host:443`` only the host is known, and the host is scored. Squid also logs the server address
  it connected to (``HIER_DIRECT/203.0.113.7``), which is looked up in the IP feeds. A request for a path alone
  (``GET /``, sent to the proxy itself) names no site: counted as skipped once earlier lines named hosts.
- A web server logs only the path (``GET /login HTTP/1.1``). With a virtual-host field, or ``--site-host``
  naming the site the log belongs to, host + path is scored (a compromised site hosting a phishing kit shows
  up there). Without a host the path is not a URL, so nothing is scored; the client address is still looked
  up, since a client listed in a feed is what a web server wants to block.

- A resolver logs the name a client asked for: the name is scored as a site (its host features and n-grams), and
  the client's address is looked up. Names that are no site are counted and skipped (``dns_names_skipped``):
  special-use and local names (``wpad``, ``printer.lan``: no public suffix), reverse lookups (``.arpa``), service
  records (``_ldap._tcp...``), public suffixes themselves, addresses, and names with characters no host name holds
  (a client may ask dnsmasq for ``shop.example/paypal.com/signin.top``: scored as a URL, that would judge, and
  block, ``shop.example``). The resolver's other lines (start-up, forwarding, answers, DHCP) name nothing.
- A network monitor (Suricata, Zeek) sees the traffic itself: an HTTP request's Host header and target make the URL
  (with the server's port when it is not 80), a DNS query's name and a TLS handshake's server name (SNI, the one
  name HTTPS shows) are scored as sites, and both the client's and the server's addresses are looked up. Only a
  home client's requests to a server outside name sites (`Monitor.from_home`): whoever sends a request chooses
  its names. TLS names that are no site are counted (``tls_names_skipped``). Suricata's other events (flows,
  alerts, DNS answers) and Zeek's other logs name nothing. Zeek's tab-separated lines are read by the columns of
  the last ``#fields`` header read, so such a log is followed from the start of a file (``--from-start``, or its
  next rotation); a line before any header is malformed, with that reason.

A malformed line is counted with its reason and skipped, never a crash; the file is followed across rotation
(rename and re-create, or truncation).
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cybersentinel.ops.blocklist import Guard
from cybersentinel.url.parsing import url_fields

if TYPE_CHECKING:
    from cybersentinel.intel.feeds import IntelIndex
    from cybersentinel.ops.decisions import DecisionLog
    from cybersentinel.ops.metrics import ScoringMetrics


LOG_FORMATS = ("auto", "combined", "vhost_combined", "squid", "dnsmasq", "unbound", "bind", "suricata", "zeek")


MAX_LINE_BYTES = 64 * 1024  # longer lines are malformed (nginx's default request buffers are smaller)


TOO_LONG = "\n(line too long)"  # what `follow` yields for an over-long line: no real line contains "\n"


Scorer = Callable[[list[str]], list[dict[str, Any]]]


METRICS_PREFIX = "cybersentinel_monitor"


# the server had no such page (404, 410) or did not take the request (400, 421 misdirected): it says nothing
# about the site, and a Host header anyone can set names no site of the server's
NOT_FOUND = frozenset({400, 404, 410, 421})


NETWORK_FORMATS = ("suricata", "zeek")  # they see traffic both ways: only a home client's requests name sites


class SiteHostNeededError(ValueError):
    """A web server's log (paths, no hosts) given without the site's host name."""


class MalformedLineError(ValueError):
    """A log line that matches none of the formats; the message is a fixed reason, without the line's text."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    format: str
    client: str  # remote address (or host name) as logged
    client_ip: str | None
    time: str
    method: str
    target: str  # the request target as logged: absolute URL, path, or host:port
    status: int
    url: str | None  # what to score, or None when the line names no host
    server_ip: str | None = None  # Squid: the address it connected to


_Q = r'"((?:[^"\\]|\\.)*)"'  # a quoted field with backslash escapes (Apache \" and nginx \x22 alike)


_COMMON = (r'(?P<client>\S+) +\S+ +\S+ +\[(?P<time>[^\]]*)\] +"(?P<request>(?:[^"\\]|\\.)*)" +'
           r"(?P<status>[0-9]{3}) +(?:[0-9]+|-)")


_COMBINED = re.compile(rf"{_COMMON}(?: +{_Q} +{_Q})?(?:\s.*)?", re.ASCII)


_VHOST = re.compile(rf"(?P<vhost>[^\s:]+)(?::(?P<port>[0-9]+))? +{_COMMON}(?: +{_Q} +{_Q})?(?:\s.*)?", re.ASCII)


_SQUID = re.compile(r" *(?P<time>[0-9]+(?:\.[0-9]+)?) +-?[0-9]+ +(?P<client>\S+) +[A-Za-z_]+/(?P<status>[0-9]{3}) +"
                    r"[0-9]+ +(?P<method>\S+) +(?P<url>\S+) +\S+ +[A-Za-z_]+/(?P<peer>\S+) +\S+(?:\s.*)?", re.ASCII)


_METHOD = re.compile(r"[A-Z]{3,12}", re.ASCII)


# a syslog time as rsyslog, journalctl (short, short-precise, short-iso, short-full, short-unix) or OpenWrt write it
_SYSLOG_TIME = (r"(?P<time>(?:[A-Z][a-z]{2} )?[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
                r"(?: [0-9]{4})?|[0-9]{4}-[0-9]{2}-[0-9]{2}T\S+|[A-Z][a-z]{2} [0-9]{4}-[0-9]{2}-[0-9]{2} "
                r"[0-9]{2}:[0-9]{2}:[0-9]{2} \S+|[0-9]{9,}\.[0-9]+)")


# dnsmasq's own log file, or syslog's (a host name or facility after the time); its DHCP, TFTP, script and debug
# lines (dnsmasq-dhcp, ...) name no query
_DNSMASQ = re.compile(rf"{_SYSLOG_TIME}(?: \S+)? dnsmasq(?:-[a-z]+)?(?:\[[0-9]+\])?: (?P<message>.*)", re.ASCII)


# `query[A] example.com from 192.0.2.5` (`query[type=65280]` for a type without a name), after `7 192.0.2.5/53841 `
# with log-queries=extra; a name is logged as it was asked, spaces and slashes included
_DNSMASQ_QUERY = re.compile(r"(?:[0-9]+ \S+/[0-9]+ )?query\[[^\]]+\] (?P<name>.+) from (?P<client>\S+)(?: .*)?",
                            re.ASCII)


# unbound's log file (epoch or log-time-ascii times), or syslog's: `unbound: [1225:0] info: ...`, through journald
# `unbound[1225]: [1225:0] info: ...`; `log-identity` names it otherwise (`resolver1[1225:0] info: ...`)
_UNBOUND = re.compile(r"(?:\[(?P<epoch>[0-9]+)\]|" + _SYSLOG_TIME + r")(?: \S+)? "
                      r"[A-Za-z0-9_.-]+(?:\[[0-9]+:[0-9]+\]|(?:\[[0-9]+\])?: \[[0-9]+:[0-9]+\]) (?P<level>[a-z]+): "
                      r"(?P<message>.*)", re.ASCII)
UNBOUND_QUERY_LEVELS = ("info", "query", "reply")  # `query:`/`reply:` with log-tag-queryreply


# log-queries: `192.0.2.5 example.com. A IN`; log-replies adds the answer's code, time, cache flag and size; a
# character a name cannot hold is printed as `?`
_UNBOUND_QUERY = re.compile(r"(?P<client>[0-9A-Fa-f:.]+) (?P<name>\S*)\. [A-Za-z0-9]+ [A-Z0-9]+(?P<reply> .*)?",
                            re.ASCII)


# BIND's query log: its own channel (`print-time`, maybe `print-category` and `print-severity`) or syslog's `named`
_BIND = re.compile(r"(?:(?P<own>[0-9]{2}-[A-Z][a-z]{2}-[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?)|"
                   + _SYSLOG_TIME + r"(?: \S+)? named(?:\[[0-9]+\])?:) (?:[a-z-]+: )?(?:[a-z]+: )?(?P<message>.*)",
                   re.ASCII)


# `client @0x7f4b928ed098 192.0.2.5#47017 (example.com): [view v: ]query: example.com IN A + (192.0.2.1)`
_BIND_QUERY = re.compile(r"client (?:@0x[0-9a-f]+ )?(?P<client>[^\s#]+)#[0-9]+ \([^)]*\): (?:view \S+: )?"
                         r"query: (?P<name>\S+) \S+ \S+ .*", re.ASCII)


_HOST_NAME = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+", re.ASCII)  # letters, digits, hyphens: a name a site has


def _site_named(name: str) -> str | None:
    """A queried name as a site to score, or None for a name that is no site on the internet: a name with
    characters no host name holds (`/`, `?`, a space: scored as a URL, it would name another site), an address,
    a public suffix itself, a special-use or local name (no public suffix), a reverse lookup, a service record."""
    from cybersentinel.ops.blocklist import special_use
    from cybersentinel.url.parsing import split_host

    name = name.rstrip(".").lower()
    if not _HOST_NAME.fullmatch(name) or special_use(name):
        return None
    _, domain, suffix, is_ip = split_host(name)
    return name if domain and suffix and not is_ip else None


def _from_resolver(fmt: str, time_text: str, query: re.Match | None) -> LogRecord:
    """A resolver's line: a query names a site to score (or a name that is no site: url None, method QUERY), any
    other line nothing."""
    client = _ip_text(query.group("client")) if query is not None else None
    if client is None:
        return LogRecord(fmt, "", None, time_text, "", "", 0, None)
    name = query.group("name")
    return LogRecord(fmt, query.group("client"), client, time_text, "QUERY", name, 0, _site_named(name))


# Zeek's header lines; `#fields` names the columns of the tab-separated lines after it, which mean nothing without it
ZEEK_HEADER = re.compile(r"#(?:separator|set_separator|empty_field|unset_field|path|open|close|fields|types)"
                         r"(?:[ \t].*)?", re.ASCII)
ZEEK_FIELDS = "#fields\t"
_ZEEK_ESCAPE = re.compile(r"\\x([0-7][0-9a-fA-F])")  # an escaped ASCII byte (the separator, a backslash...)


def zeek_fields(line: str) -> list[str] | None:
    """The column names a Zeek `#fields` header line gives, None for any other line."""
    return line[len(ZEEK_FIELDS):].split("\t") if line.startswith(ZEEK_FIELDS) else None


def _text(value: Any) -> str:
    """A JSON or Zeek value as text ("" when absent; numbers as written)."""
    return value if isinstance(value, str) else "" if value is None or isinstance(value, bool | dict | list) \
        else str(value)


_PORT, _STATUS = re.compile(r"[0-9]{1,5}", re.ASCII), re.compile(r"[0-9]{3}", re.ASCII)  # not any Unicode digit


def _http_record(fmt: str, client: str, server: str, when: str, method: str, target: str, host: str, port: Any,
                 status: Any) -> LogRecord:
    """An HTTP request a network monitor saw: the URL is the Host header's site (with the server's port when it
    is not 80 and the header named none) and the request target, or the target itself when absolute (a proxy's)."""
    port = _text(port)
    if host and _PORT.fullmatch(port) and port != "80" and (":" not in host or host.endswith("]")):
        host = f"{host}:{port}"
    code = int(status) if isinstance(status, int | str) and _STATUS.fullmatch(str(status)) else 0
    url = _url_for(method, target, host or None, "http") if target else None
    return LogRecord(fmt, client, _ip_text(client), when, method, target, code, url, _ip_text(server))


def _named_record(fmt: str, client: str, server: str, when: str, method: str, name: Any) -> LogRecord:
    """A name a client asked a resolver for (method QUERY) or a TLS server for (TLS: the SNI), scored as a site."""
    name = name if isinstance(name, str) else ""
    return LogRecord(fmt, client, _ip_text(client), when, method, name, 0, _site_named(name) if name else None,
                     _ip_text(server))


def _from_suricata(event: dict[str, Any]) -> LogRecord:
    """Suricata's EVE events: ``http`` (hostname and url), ``dns`` queries (``rrname``; version 3's ``queries``)
    and ``tls`` (the SNI). Its other events (flows, alerts, answers, files...) name nothing to score here."""
    kind, when = event.get("event_type"), _text(event.get("timestamp"))
    client, server = _text(event.get("src_ip")), _text(event.get("dest_ip"))
    body = event.get(kind) if isinstance(kind, str) else None
    body = body if isinstance(body, dict) else {}
    if kind == "http":
        port = body.get("http_port", event.get("dest_port"))
        return _http_record("suricata", client, server, when, _text(body.get("http_method")), _text(body.get("url")),
                            _text(body.get("hostname")), port, body.get("status"))
    if kind == "dns" and body.get("type") in ("query", "request"):
        queries = body.get("queries")
        first = queries[0] if isinstance(queries, list) and queries and isinstance(queries[0], dict) else body
        return _named_record("suricata", client, server, when, "QUERY", first.get("rrname"))
    if kind == "tls":
        return _named_record("suricata", client, server, when, "TLS", body.get("sni"))
    return LogRecord("suricata", "", None, when, "", "", 0, None)


def _from_zeek(values: dict[str, Any]) -> LogRecord:
    """A line of Zeek's http.log (host and uri), dns.log (query) or ssl.log (server_name), as JSON (flat
    ``id.orig_h`` keys or a nested ``id``) or as a tab-separated line's columns; any other log names nothing."""
    ident = values.get("id") if isinstance(values.get("id"), dict) else {}
    client = _text(values.get("id.orig_h", ident.get("orig_h")))
    server = _text(values.get("id.resp_h", ident.get("resp_h")))
    when = _text(values.get("ts"))
    kind = values.get("_path") or ("http" if "uri" in values else "dns" if "query" in values else
                                   "ssl" if "server_name" in values else "")
    if kind == "http":
        record = _http_record("zeek", client, server, when, _text(values.get("method")), _text(values.get("uri")),
                              _text(values.get("host")), values.get("id.resp_p", ident.get("resp_p")),
                              values.get("status_code"))
        return _zeek_absolute(record, _text(values.get("host")))
    if kind == "dns":
        return _named_record("zeek", client, server, when, "QUERY", values.get("query"))
    if kind == "ssl":
        return _named_record("zeek", client, server, when, "TLS", values.get("server_name"))
    return LogRecord("zeek", "", None, when, "", "", 0, None)


def _zeek_absolute(record: LogRecord, host: str) -> LogRecord:
    """Zeek logs a proxy's absolute target percent-decoded (``http://www.google.com%2F@evil.top/`` as
    ``http://www.google.com/@evil.top/``), so an ``@`` in it may have moved the authority: such a target is not
    trusted, and the Host header's site alone is scored (when it is a host name or address)."""
    from dataclasses import replace

    from cybersentinel.url.parsing import parse_ip, split_url

    if not record.url or not record.target[:8].lower().startswith(("http://", "https://")) or "@" not in record.target:
        return record
    header = split_url(host).host if host else ""
    address = header[1:-1] if header.startswith("[") and header.endswith("]") else header
    valid = _HOST_NAME.fullmatch(header) is not None or ("[" not in address and parse_ip(address) is not None)
    return replace(record, url=header if header and valid else None)


def _from_json(line: str, fmt: str) -> LogRecord | None:
    """A JSON line of Suricata (``event_type``) or Zeek (``ts`` and ``uid``), None for any other line."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    if fmt in ("auto", "suricata") and "event_type" in value:
        return _from_suricata(value)
    if fmt in ("auto", "zeek") and "ts" in value and "uid" in value:
        return _from_zeek(value)
    return None


def _zeek_columns(line: str, fields: Sequence[str]) -> dict[str, Any]:
    """A tab-separated Zeek line as {field: value}: ``-`` is unset, ``(empty)`` empty, ``\\xHH`` an escaped byte."""
    cells = line.split("\t")
    if len(cells) != len(fields):
        raise MalformedLineError(f"a zeek line of {'fewer' if len(cells) < len(fields) else 'more'} columns than "
                                 "its #fields header")
    return {name: None if cell == "-" else "" if cell == "(empty)" else
            _ZEEK_ESCAPE.sub(_escaped_byte, cell) if "\\x" in cell else cell
            for name, cell in zip(fields, cells, strict=True)}


def _escaped_byte(match: re.Match) -> str:
    return chr(int(match.group(1), 16))


def _ip_text(value: str) -> str | None:
    from cybersentinel.url.parsing import parse_ip

    address = parse_ip(value) if value and value != "-" else None
    return str(address) if address is not None else None


def _url_for(method: str, target: str, host: str | None, scheme: str) -> str | None:
    """The URL a request names: absolute targets as they are, CONNECT's host, or host + path when known."""
    from cybersentinel.url.parsing import split_url

    if method == "CONNECT":
        return split_url(target).host or None
    lowered = target[:8].lower()
    if lowered.startswith(("http://", "https://", "ftp://")):
        return target if split_url(target).host else None
    if target.startswith("/") and host:
        return f"{scheme}://{host}{target}"
    return None


def _from_web(match: re.Match, fmt: str, site_host: str | None) -> LogRecord:
    request = match.group("request")
    parts = request.split(" ")
    method, target = (parts[0], parts[1]) if len(parts) == 3 and _METHOD.fullmatch(parts[0]) else ("", "")
    host = match.groupdict().get("vhost") or site_host
    scheme = "https" if match.groupdict().get("port") == "443" else "http"
    client = match.group("client")
    return LogRecord(fmt, client, _ip_text(client), match.group("time"), method, target or request,
                     int(match.group("status")), _url_for(method, target, host, scheme) if method else None)


def _from_squid(match: re.Match) -> LogRecord:
    method, target, client = match.group("method"), match.group("url"), match.group("client")
    return LogRecord("squid", client, _ip_text(client), match.group("time"), method, target,
                     int(match.group("status")), _url_for(method, target, None, "http"), _ip_text(match.group("peer")))


def parse_line(line: str, fmt: str = "auto", site_host: str | None = None,
               fields: Sequence[str] | None = None) -> LogRecord:
    """Parse one access-log line; `MalformedLineError` if it is not in ``fmt`` (any known format for ``auto``).
    ``fields``: the columns of the last Zeek `#fields` header read (`zeek_fields`), for its tab-separated lines."""
    if line == TOO_LONG:
        raise MalformedLineError(f"line longer than {MAX_LINE_BYTES} bytes")
    if fmt in ("auto", "suricata", "zeek") and line.startswith("{") and (record := _from_json(line, fmt)):
        return record
    if fmt in ("auto", "zeek") and line.startswith("#") and ZEEK_HEADER.fullmatch(line):
        return LogRecord("zeek", "", None, "", "", "", 0, None)  # its fields are the caller's (`zeek_fields`)
    if fmt == "zeek" and fields is not None and "\t" in line:
        return _from_zeek(_zeek_columns(line, fields))
    if fmt in ("auto", "squid") and (match := _SQUID.fullmatch(line)):
        return _from_squid(match)
    if fmt in ("auto", "vhost_combined") and (match := _VHOST.fullmatch(line)):
        return _from_web(match, "vhost_combined", site_host)
    if fmt in ("auto", "combined") and (match := _COMBINED.fullmatch(line)):
        return _from_web(match, "combined", site_host)
    if fmt in ("auto", "dnsmasq") and (match := _DNSMASQ.fullmatch(line)):
        return _from_resolver("dnsmasq", match.group("time"), _DNSMASQ_QUERY.fullmatch(match.group("message")))
    if fmt in ("auto", "unbound") and (match := _UNBOUND.fullmatch(line)):
        query = _UNBOUND_QUERY.fullmatch(match.group("message")) if match.group("level") in UNBOUND_QUERY_LEVELS \
            else None
        return _from_resolver("unbound", match.group("epoch") or match.group("time"), query)
    if fmt in ("auto", "bind") and (match := _BIND.fullmatch(line)):
        return _from_resolver("bind", match.group("own") or match.group("time"),
                              _BIND_QUERY.fullmatch(match.group("message")))
    if fmt == "auto" and fields is not None and "\t" in line:  # after the others: a tab cannot make them Zeek's
        return _from_zeek(_zeek_columns(line, fields))
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; choose from {', '.join(LOG_FORMATS)}")
    if not line.strip():
        raise MalformedLineError("empty line")
    if fmt == "zeek" and "\t" in line:
        raise MalformedLineError("a zeek line before its #fields header (follow the log from its start, or log JSON)")
    raise MalformedLineError(f"not a {'known' if fmt == 'auto' else fmt} log line")


def _decode(raw: bytes) -> str:
    return raw.rstrip(b"\r").decode("utf-8", errors="replace")


HEAD_BYTES = 1024  # the start of a log, re-read before each read to notice it was rewritten in place


EXCERPT_CHARS = 40  # a malformed line's excerpt, shown only when asked (the path may point at any file)


def excerpt(line: str) -> str:
    """The start of a line, escaped (control characters, escape sequences, non-ASCII) and cut short."""
    return ascii(line)[1:-1][:EXCERPT_CHARS]


def _open_log(path: Path) -> tuple[Any, bool]:
    """An unbuffered handle that never blocks (opening a FIFO without a writer would wait for one, and reading
    it would wait for data: either would ignore --duration), and whether it is a regular, seekable file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    return os.fdopen(fd, "rb", buffering=0), stat.S_ISREG(os.fstat(fd).st_mode)


def follow(path: Path, stats: Counter, *, from_start: bool = False, once: bool = False,
           poll: float = 0.2) -> Iterator[str | None]:
    """Yield each complete line appended to ``path``, and None whenever it is caught up or a read brought no
    complete line (so the caller can flush and decide to stop, even on an endless stream such as /dev/zero).
    Survives rotation: at end of file, a different inode at ``path`` means the file was renamed away and
    re-created (the rest of the old file has been read; the new one is read from its start). A regular file is
    read from its start again when it shrank below our position (truncated) or its first bytes changed
    (truncated and refilled past our position before we looked). FIFOs and devices are read as streams.
    ``once`` stops at end of file.
    """
    handle, regular, head = None, False, b""
    pending, discarding = b"", False
    try:
        while True:
            if handle is None:
                try:
                    handle, regular = _open_log(path)
                except FileNotFoundError:
                    if once:
                        return
                    from_start = True  # created after we started: all of it is new
                    yield None
                    time.sleep(poll)
                    continue
                if regular and not from_start:
                    handle.seek(0, os.SEEK_END)
                from_start = True  # a file that appears later (after rotation) is read from its start
                head = b""
            if regular:
                position = handle.tell()
                if len(head) < min(position, HEAD_BYTES):
                    head = os.pread(handle.fileno(), min(position, HEAD_BYTES), 0)
                if head and os.pread(handle.fileno(), len(head), 0) != head:  # rewritten in place
                    handle.seek(0)
                    head, pending, discarding = b"", b"", False
                    stats["truncations"] += 1
            chunk = handle.read(1 << 16) or b""  # None: a FIFO with a writer but no data yet
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    if discarding:  # the tail of an over-long line
                        discarding = False
                        continue
                    yield TOO_LONG if len(raw) > MAX_LINE_BYTES else _decode(raw)
                if len(pending) > MAX_LINE_BYTES:
                    if not discarding:
                        yield TOO_LONG
                    pending, discarding = b"", True
                if not lines:
                    yield None
                continue
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None  # between rename and re-create: keep reading the old file
            opened = os.fstat(handle.fileno())
            if current is not None and (current.st_ino, current.st_dev) != (opened.st_ino, opened.st_dev):
                if pending and not discarding:
                    yield _decode(pending)  # the old file's last line had no newline
                handle.close()
                handle, pending, discarding = None, b"", False
                stats["rotations"] += 1
                continue
            if regular and current is not None and current.st_size < handle.tell():
                handle.seek(0)
                head, pending, discarding = b"", b"", False
                stats["truncations"] += 1
                continue
            if once:
                if pending and not discarding:
                    yield _decode(pending)
                return
            yield None
            time.sleep(poll)
    finally:
        if handle is not None:
            handle.close()


def _first_sight(seen: OrderedDict, key: str, size: int) -> bool:
    """True the first time ``key`` is seen within the last ``size`` distinct keys (a bounded LRU)."""
    if key in seen:
        seen.move_to_end(key)
        return False
    seen[key] = None
    if len(seen) > size:
        seen.popitem(last=False)
    return True


BLOCKLIST_COLUMNS = ("url", "verdict", "score", "reasons", "first_seen")


def _nothing_blocked_yet(path: Path) -> bool:
    """An empty file (``touch blocked.csv``) or a header alone that names the url column: a first start."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            lines = (line for line in handle if line.strip())
            header, more = next(lines, ""), next(lines, None)
    except OSError:  # unreadable: the read error already raised is the one to report
        return False
    return more is None and (not header or "url" in (name.strip().strip('"') for name in header.split(",")))


def load_blocklist(path: Path | None) -> dict[str, dict[str, Any]]:
    """The monitor's block list state: a scored CSV (``url, verdict, score, reasons``) `blocklist export` reads.
    An empty or header-only file is an empty list; any other file that is not one is an `InputError`."""
    if path is None or not path.exists():
        return {}
    from cybersentinel.ops.blocklist import InputError, read_scored

    try:
        frame = read_scored(path)
    except InputError:
        if path.is_file() and _nothing_blocked_yet(path):
            return {}  # the first save writes the full header
        raise
    return {row["url"]: {column: row.get(column, "") for column in BLOCKLIST_COLUMNS}
            for row in frame.to_dict("records")}


def save_blocklist(path: Path, blocked: Mapping[str, Mapping[str, Any]], render: Mapping[str, Path],
                   guard: Guard | None = None) -> None:
    """The block list and the rule files rendered from it, all written or none (`write_all_atomic`): a rule file
    that disagrees with the list it was rendered from would block what the list no longer holds. The rules pass
    ``guard`` as `blocklist export`'s do: an entry saved by an earlier run that the allowlist or the popular sites
    now protect stays in the state but is rendered into no rule."""
    from cybersentinel.core.csv_cells import csv_text
    from cybersentinel.ops.blocklist import build, entries_from_scored, rendered, write_all_atomic

    rows = ([blocked[key].get(column, "") for column in BLOCKLIST_COLUMNS] for key in sorted(blocked))
    texts = {path: csv_text(BLOCKLIST_COLUMNS, rows)}
    if render:
        import pandas as pd

        frame = pd.DataFrame([blocked[key] for key in sorted(blocked)], columns=list(BLOCKLIST_COLUMNS))
        bl = build(entries_from_scored(frame, path.name, ("malicious",), guard)[0])
        texts.update({target: rendered(fmt, bl, target) for fmt, target in render.items()})
    write_all_atomic(texts)


@dataclass
class Monitor:
    """The state of one monitoring run; `run_monitor` drives it."""

    score: Scorer
    index: IntelIndex | None
    alerts: IO[str]
    blocklist: Path | None
    render: Mapping[str, Path]
    alert_verdicts: Sequence[str]
    seen_size: int
    guard: Guard = field(default_factory=Guard)
    home_net: tuple[Any, ...] = ()  # networks of the clients a network monitor watches (default: non-global addresses)
    metrics: ScoringMetrics | None = None  # Prometheus counters of what was scored
    decisions: DecisionLog | None = None  # the decision log, if kept

    def __post_init__(self) -> None:
        self.stats: Counter = Counter()
        self.malformed: Counter = Counter()
        self.samples: list[dict[str, Any]] = []  # the last few malformed lines, for the report
        self.seen_urls: OrderedDict = OrderedDict()
        self.seen_ips: OrderedDict = OrderedDict()
        self.unserved: OrderedDict = OrderedDict()  # malicious URLs no request was served yet: (score, reasons)
        self.blocked = load_blocklist(self.blocklist)
        self.named_host = False  # a line named a host (absolute URL, CONNECT, virtual host): not a bare web log
        self.hostless: list[int] = []  # line numbers of host-less paths since the last flush, judged then

    def from_home(self, record: LogRecord) -> LogRecord:
        """A network monitor's record as evidence: only a home client's request to a server outside (or its DNS
        query, to any resolver) names a site: an outside client sets the Host header, SNI or query name it sends
        a home server to anything, and a home server's own names are ours. Other records keep their addresses,
        looked up in the feeds, but no URL."""
        import ipaddress
        from dataclasses import replace

        def home(ip: str | None) -> bool:
            address = ipaddress.ip_address(ip) if ip else None
            if address is None:
                return False
            address = getattr(address, "ipv4_mapped", None) or address  # ::ffff:10.0.0.5 is 10.0.0.5
            return any(address in net for net in self.home_net) if self.home_net else not address.is_global

        # a request to a proxy (absolute target, CONNECT) goes out through it, wherever the proxy is; a DNS query
        # asks a resolver, home or not
        proxied = record.method in ("CONNECT", "QUERY") or record.target[:8].lower().startswith(("http://", "https://"))
        if record.format not in NETWORK_FORMATS or record.url is None or (
                home(record.client_ip) and (proxied or record.server_ip is None or not home(record.server_ip))):
            return record
        self.stats["not_from_home_skipped"] += 1
        return replace(record, url=None, method="")

    def note(self, record: LogRecord, line: int) -> None:
        """Remember whether the log names hosts, and each line that names a path with no host."""
        if record.url is not None:
            self.named_host = True
        elif record.format == "combined" and record.target.startswith("/"):
            self.hostless.append(line)
        elif record.method == "QUERY":  # a resolver's query for a name that is no site
            self.stats["dns_names_skipped"] += 1
        elif record.method == "TLS" and record.target:  # a TLS server name that is no site
            self.stats["tls_names_skipped"] += 1

    def judge_paths(self, path: Path) -> None:
        """Host-less paths in a log that has named no host are a web server's log: `SiteHostNeededError`. Once
        the log named a host it is a proxy's, and a path alone (``GET /``, which anyone can send a forward proxy)
        is counted and skipped: were it fatal, any client could stop the monitoring."""
        if not self.hostless:
            return
        if not self.named_host:
            raise SiteHostNeededError(f"{path}: line {self.hostless[0]} is a web server's request for a path; "
                                      "give --site-host (the site's host name)")
        self.stats["hostless_skipped"] += len(self.hostless)
        self.hostless = []

    def alert(self, event: dict[str, Any]) -> None:
        self.alerts.write(json.dumps(event, sort_keys=True) + "\n")
        self.alerts.flush()
        self.stats["alerts"] += 1

    def block(self, value: str, verdict: str, score: float, reasons: str, when: str) -> bool:
        import ipaddress

        from cybersentinel.ops.blocklist import target_of

        try:
            kind, target = target_of(value)
            problem = self.guard.name_problem(target) if kind == "domain" else \
                self.guard.network_problem(ipaddress.ip_network(target))
        except ValueError as err:  # private address, public suffix...: alerted, never blocked
            problem = str(err)
        if problem:
            self.stats["not_blockable"] += 1
            return False
        key = target if kind == "domain" else target.split("/")[0]
        if key in self.blocked:
            return False
        self.blocked[key] = {"url": key, "verdict": verdict, "score": f"{score:.6g}", "reasons": reasons,
                             "first_seen": when}
        return True

    def flush(self, records: list[LogRecord]) -> None:
        changed = self._score_urls(records)
        changed |= self._check_ips(records)
        if changed and self.blocklist is not None:
            save_blocklist(self.blocklist, self.blocked, self.render, self.guard)
            self.stats["blocklist_writes"] += 1

    def _score_urls(self, records: list[LogRecord]) -> bool:
        first, served_later = {}, []
        for record in records:
            if record.url and record.status in NOT_FOUND:  # the site has no such page: no evidence about it
                self.stats["not_found_skipped"] += 1
                continue
            if record.url in first:
                if _served(record) and not _served(first[record.url]):  # judged once, on the request served
                    first[record.url] = record
            elif record.url and _first_sight(self.seen_urls, record.url, self.seen_size):
                first[record.url] = record
            elif record.url in self.unserved and _served(record):  # malicious earlier, served only now
                served_later.append((record.url, record, *self.unserved.pop(record.url)))
        if not first:
            return self._block_served(served_later)
        urls = list(first)
        results = self.score(urls)
        if len(results) != len(urls):
            raise ValueError(f"the scorer returned {len(results)} results for {len(urls)} URLs")
        self.stats["urls_scored"] += len(urls)
        if self.metrics is not None or self.decisions is not None:
            logged = [{"url": url, **result} for url, result in zip(urls, results, strict=True)]
            if self.metrics is not None:
                self.metrics.observe(logged)
            if self.decisions is not None:
                self.decisions.record(logged)
        blockable = []
        for url, result in zip(urls, results, strict=True):
            verdict = str(result["verdict"])  # the served decision, as predict and the service give it
            if verdict not in self.alert_verdicts:
                continue
            record, score, reasons = first[url], float(result["score"]), _reasons(result.get("reasons"))
            feeds = [f for f in str(result.get("feeds") or "").split(", ") if f]
            model_score = result.get("model_score")
            self.alert({"type": "url", "url": url, "verdict": verdict, "score": round(score, 6),
                        "model_score": None if model_score is None or model_score != model_score
                        else round(float(model_score), 6), "reasons": reasons, "client_ip": record.client_ip,
                        "time": record.time, "feeds": feeds})
            if verdict == "malicious":
                blockable.append((url, record, score, reasons))
        return self._block_served(served_later + blockable)

    def _block_served(self, found: list[tuple[str, LogRecord, float, str]]) -> bool:
        """Block the hosts of malicious URLs a log shows were served: anyone whose requests the log records can
        name any site in a request (an image tag on any page makes browsers do it), so a request is evidence
        about the site only when the site served it (`_served`; a URL not served yet is kept, and blocked when a
        later request is served) and the URL is malicious without a host name put before '@' and without its query
        (``http://www.github.com@shop.example/`` names shop.example, and nearly every home page answers 200 to
        ``/?s=appleid-verify-login``). Others are alerted and counted, not blocked."""
        served, named = [], []
        for url, record, score, reasons in found:
            if not _served(record):  # redirected, refused or failed: not served, perhaps later
                self.stats["not_served_not_blocked"] += 1
                self.unserved[url] = (score, reasons)
                if len(self.unserved) > self.seen_size:
                    self.unserved.popitem(last=False)
            elif _site_part(url) != url:
                named.append((url, record, score, reasons))
            else:
                served.append((url, record, score, reasons))
        if named:  # judged again as the site's own part: no user-info, no query
            results = self.score([_site_part(url) for url, *_ in named])
            for (url, *rest), result in zip(named, results, strict=True):
                if str(result["verdict"]) == "malicious":
                    served.append((url, *rest))
                else:
                    self.stats["not_served_not_blocked"] += 1
        changed = False
        for url, record, score, reasons in served:
            changed |= self.block(url, "malicious", score, reasons, record.time)
        return changed

    def _check_ips(self, records: list[LogRecord]) -> bool:
        if self.index is None:
            return False
        changed = False
        for record in records:
            for role, ip in (("client", record.client_ip), ("server", record.server_ip)):
                if not ip or not _first_sight(self.seen_ips, ip, self.seen_size):
                    continue
                self.stats["ips_checked"] += 1
                found = self.index.lookup_ip(ip)
                if found["ip_status"] != "listed":
                    continue
                reasons = f"{role} address listed in {', '.join(found['feeds'])}"
                self.alert({"type": "ip", "ip": ip, "role": role, "verdict": "malicious", "feeds": found["feeds"],
                            "reasons": reasons, "url": record.url, "time": record.time})
                if role == "server":  # a listed client is alerted: a rule on it would cut off one of ours
                    changed |= self.block(ip, "malicious", 1.0, reasons, record.time)
        return changed

    def report(self) -> dict[str, Any]:
        return {**self.stats, "malformed": sum(self.malformed.values()), "malformed_reasons": dict(self.malformed),
                "malformed_samples": self.samples, "blocked": len(self.blocked)}


def _site_part(url: str) -> str:
    """What of a URL the site itself answers for: the URL without user-info, query and fragment (``url`` itself
    when it has none), as a browser requests it."""
    scheme, userinfo, host, port, path, query, fragment = url_fields(url)
    if not (userinfo or query or fragment or "?" in url or "#" in url):
        return url
    return f"{scheme or 'http'}://{host}{':' + port if port else ''}{path}"


def _served(record: LogRecord) -> bool:
    """Whether the site served the request: a 2xx answer, or a name asked for where no page is (a DNS query, a TLS
    server name, a CONNECT: the name is the evidence). An HTTP request logged without an answer (Squid's ``/000``,
    an event without a status) was not served."""
    return record.method in ("QUERY", "TLS", "CONNECT") or 200 <= record.status < 300


def _reasons(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "; ".join(map(str, value))
    return "" if value is None or value != value else str(value)


def run_monitor(path: Path, score: Scorer, *, index: IntelIndex | None = None, fmt: str = "auto",
                site_host: str | None = None, alerts: IO[str] | None = None, blocklist: Path | None = None,
                render: Mapping[str, Path] | None = None, from_start: bool = False, once: bool = False,
                max_lines: int | None = None, duration: float | None = None, stop: threading.Event | None = None,
                poll: float = 0.2, batch_size: int = 256, seen_size: int = 100_000,
                alert_verdicts: Sequence[str] = ("malicious", "suspicious"), guard: Guard | None = None,
                show_malformed: bool = False, registry: Any = None, model: tuple[str, str] = ("", ""),
                decisions: DecisionLog | None = None, home_net: Sequence[Any] = ()) -> dict[str, Any]:
    """Follow ``path`` until end of file (``once``), ``max_lines`` lines, ``duration`` seconds or ``stop``.

    Memory is bounded by ``batch_size`` pending lines, two LRUs of ``seen_size`` URLs and addresses (each is
    scored once while it stays in them), and the block list itself. Returns counters, including malformed
    lines by reason: lines = parsed + malformed. ``score`` gives the served decision (see `scoring.decider`);
    ``guard`` says what is never blocked (default: public suffixes, special-use names and reserved space only).

    A web server's own log names paths, not hosts: without ``site_host`` it is refused (`SiteHostNeededError`) once
    the batch holding its first such line is handled, if no line so far named a host, rather than read while scoring
    nothing. After a line named a host (a proxy's log), a path alone is counted (``hostless_skipped``), never fatal.

    Malformed lines are reported as counts by reason and the numbers of the last few; their text only with
    ``show_malformed``, and then as a short escaped excerpt (the path may point at a file that is not a log).

    ``registry`` (a prometheus-client ``CollectorRegistry``) gets the run's counters and what was scored by ``model``
    (name, version); ``decisions`` gets every scored URL's decision.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; choose from {', '.join(LOG_FORMATS)}")
    metrics = None
    if registry is not None:
        from cybersentinel.ops.metrics import MonitorCollector, ScoringMetrics

        metrics = ScoringMetrics(registry, METRICS_PREFIX, *model)
    state = Monitor(score, index, alerts or sys.stdout, blocklist, render or {}, tuple(alert_verdicts), seen_size,
                    guard or Guard(), tuple(home_net), metrics, decisions)
    if registry is not None:
        registry.register(MonitorCollector(METRICS_PREFIX, state.stats, state.malformed, state.blocked))
    deadline = None if duration is None else time.monotonic() + duration
    pending: list[LogRecord] = []
    fields: list[str] | None = None  # the columns of the last Zeek `#fields` header read
    try:
        for line in follow(path, state.stats, from_start=from_start or once, once=once, poll=poll):
            if line is not None:
                state.stats["lines"] += 1
                if fmt in ("auto", "zeek") and (header := zeek_fields(line)) is not None:
                    fields = header  # a rotated log's new file brings its own
                try:
                    record = state.from_home(parse_line(line, fmt, site_host, fields))
                    state.note(record, state.stats["lines"])
                    pending.append(record)
                    state.stats["parsed"] += 1
                except MalformedLineError as err:
                    state.malformed[str(err)] += 1
                    sample = {"line": state.stats["lines"], "reason": str(err)}
                    if show_malformed:
                        sample["excerpt"] = excerpt(line)
                    state.samples = [*state.samples[-4:], sample]
            if line is None or len(pending) >= batch_size:
                state.flush(pending)  # before judging: a refusal loses nothing already read
                pending = []
                state.judge_paths(path)
            if ((max_lines is not None and state.stats["lines"] >= max_lines) or (stop is not None and stop.is_set())
                    or (deadline is not None and time.monotonic() >= deadline)):
                break
    except KeyboardInterrupt:  # Ctrl-C is the ordinary way to stop following: finish the batch in hand
        state.stats["interrupted"] += 1
    state.flush(pending)
    state.judge_paths(path)
    return state.report()
