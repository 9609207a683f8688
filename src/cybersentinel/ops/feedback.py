"""The analyst feedback store: verdict corrections, attributable and reversible, in SQLite (default,
``data/feedback.sqlite``) or PostgreSQL (``CYBERSENTINEL_FEEDBACK_DSN``), with the same schema, versioned
migrations (`cybersentinel.ops.etl.apply_migrations`) and idempotent writes as the ETL.

A correction says *who* (analyst), *when* (created_at), *why* (kind, note) about *what* (the URL, the password
of its user-info and the values of its credential parameters masked: `mask_credentials`, or its host when the
analyst chose ``host``). Nothing is ever deleted: a retraction sets ``revoked_at``/``revoked_by``/``revoke_reason``
on the row, and a correction of the opposite kind on the same target revokes the earlier one ("superseded by #id").
Sending the same active correction twice records it once. A row written before a credential was masked stays as
written, and is read masked (`FeedbackStore._rows`).

What the active corrections do at once (`site_lists`): a false positive puts the URL (or host) on the decision
policy's allowlist; a confirmation puts it on the local block list. A URL correction is keyed by the page it names
(`policy.page_entry`, as the lists match it: ``https://a.example/x``, ``a.example:443/x`` and ``a.example/x#f``
are one page), so a later correction of that page supersedes an earlier one. That key masks a credential
parameter's value as the stored URL does, and the lists mask the scored URL's the same way before comparing (the
scorer still reads it as sent): no token is kept in a target or quoted in a reason, and ``a.example/cb?code=abc``
corrected covers ``a.example/cb?code=xyz``, the same page opened with another code. A host correction must name a
host that block rules may name at all (`ops.blocklist.target_of`: never a public suffix or reserved address, nor a
name with a public suffix beneath it, a host where anyone can publish or a URL shortener: `platform_problem`), so
neither list can cover a whole suffix or platform; `blocklist export` checks every block entry against the same
guard. A value naming no host a browser would request (``javascript:alert(1)``, free text) is no correction.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cybersentinel.core.redact import mask_credentials, mask_secret_parameters
from cybersentinel.ingest.feedback import StoreLocation, sqlite_connect, store_location
from cybersentinel.scoring.decider import REQUESTED_SCHEMES
from cybersentinel.scoring.policy import SiteList, page_entry

KINDS = {"false_positive": 0, "confirmed_malicious": 1}  # kind -> training label (1 = malicious)
SCOPES = ("url", "host")
MAX_NOTE = 2000
MAX_ANALYST = 200
MAX_URL = 65_536
MAX_ID = 2**63 - 1  # ids are 64-bit in both stores (SQLite's INTEGER, PostgreSQL's bigint)
MIGRATIONS_TABLE = "feedback_schema_migrations"  # its own versions: the ETL's schema_migrations may share the database
_MIGRATION_LOCK = 0x6366_6565_6462  # pg_advisory_xact_lock key of the feedback schema
_NOT_A_DATABASE = ("SQLITE_NOTADB", "SQLITE_CORRUPT")  # another kind of file, or a damaged one

# One schema for both databases; {id} and {ts} are the only words that differ.
_DDL = """
CREATE TABLE feedback (
    id              {id},
    url             text        NOT NULL CHECK (url <> '' AND length(url) <= 65536),
    scope           text        NOT NULL CHECK (scope IN ('url', 'host')),
    target          text        NOT NULL CHECK (target <> ''),   -- the normalised URL, or the host
    kind            text        NOT NULL CHECK (kind IN ('false_positive', 'confirmed_malicious')),
    label           smallint    NOT NULL CHECK (label IN (0, 1)),
    note            text        NOT NULL DEFAULT '',
    analyst         text        NOT NULL CHECK (analyst <> ''),
    verdict         text,                                       -- what the service said when it was reported
    score           double precision,
    model_version   text,
    content_sha256  text        NOT NULL,                       -- url, label, scope, target: what trains
    created_at      {ts}        NOT NULL,
    revoked_at      {ts},
    revoked_by      text,
    revoke_reason   text,
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE UNIQUE INDEX feedback_active ON feedback (target, kind) WHERE revoked_at IS NULL;
CREATE INDEX feedback_created ON feedback (created_at)
"""

DIALECT_WORDS = {"sqlite": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "ts": "text"},
                 "postgres": {"id": "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "ts": "timestamptz"}}


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    return [(1, "analyst feedback", _DDL.format(**DIALECT_WORDS[dialect]))]


class FeedbackError(ValueError):
    """A correction that cannot be recorded or revoked as asked; the message says why."""


class StoreUnavailableError(FeedbackError):
    """The store cannot be reached or has no schema yet (not the correction's fault)."""


@dataclass(frozen=True)
class Feedback:
    id: int
    url: str
    scope: str
    target: str
    kind: str
    label: int
    note: str
    analyst: str
    verdict: str | None
    score: float | None
    model_version: str | None
    created_at: str
    revoked_at: str | None
    revoked_by: str | None
    revoke_reason: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "active": self.active}


COLUMNS = tuple(Feedback.__dataclass_fields__)


def _refuse_network(url: str) -> None:
    """A bare CIDR range (``1.2.3.0/24``) is a network, which no correction covers: read as a URL its host is the
    network's first address, so the correction would silently cover one address (or one odd URL) instead."""
    import ipaddress

    try:
        network = ipaddress.ip_network(url, strict=False)
    except ValueError:
        return  # a URL, a domain or a single address
    if network.num_addresses > 1:
        raise FeedbackError(f"{url[:100]!r} is the network {network} (a CIDR range), not a URL or a host: a "
                            "correction covers one URL or one host (a URL with this path: write its scheme)")


# Schemes a browser requests from the host they name are `decider.REQUESTED_SCHEMES` (a typed address without one
# is http); another scheme written with "//" is read as one, as `browser_url` reads a defanged ``hxxp://``, except
# those of links that name no web site, which the scorer does not score either (`url.parsing.NON_WEB_SCHEMES`).


def _refuse_hostless(url: str) -> None:
    """A correction is about a page or a site, which the lists match by its host: a value with no host a browser
    would request (free text, ``javascript:alert(1)``, ``mailto:``) would only train the model on a non-URL."""
    from cybersentinel.url.parsing import NON_WEB_SCHEMES, browser_url, canonical_host, url_fields

    text = browser_url(url)
    scheme, _, host, *_ = url_fields(text)
    authority = not scheme or text.strip()[len(scheme) + 1:].startswith("//")  # scheme://host
    if scheme in NON_WEB_SCHEMES or (scheme not in REQUESTED_SCHEMES and not authority):
        raise FeedbackError(f"{url[:100]!r} is no web address ({scheme}: URLs name no host a browser requests): "
                            "a correction needs a URL, a domain or an IP address")
    if not host or not canonical_host(host):
        raise FeedbackError(f"{url[:100]!r} names no host a browser would request (a URL, a domain or an IP "
                            "address is needed)")


def target_of(url: str, scope: str) -> str:
    """What a correction covers: the page (`policy.page_entry`: how the lists match a URL), its credentials
    masked, or the host as a browser resolves it, refused when no block rule could name it
    (`ops.blocklist.target_of`)."""
    from cybersentinel.ops.blocklist import target_of as block_target

    if scope not in SCOPES:
        raise FeedbackError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    url = mask_credentials(url)  # the target is stored and listed, and quoted in reasons: never with a secret
    _refuse_network(url)
    _refuse_hostless(url)
    if scope == "url":
        # keyed as `site_lists` match it: two forms of one page are one correction, the later superseding
        target = page_entry(url)
        if not target:
            raise FeedbackError("the URL is empty")
        return target
    try:
        _, value = block_target(url)
    except ValueError as exc:
        raise FeedbackError(f"cannot apply to the host of {url[:100]!r}: {exc}; use scope url") from None
    return value.removesuffix("/32").removesuffix("/128")


def host_correction_problem(target: str, kind: str, guard: Any) -> str:
    """Why a host-wide correction of ``target`` (`target_of`, scope host) is refused, "" if it is not. A block
    (``confirmed_malicious``) on what no block rule may cover (`ops.blocklist.Guard`: a popular site, an
    allowlisted name or a name above one, a pinned public resolver): it would break that site for every user of
    the service and teach the next model that it is phishing. An allowlisting of a ranked registered domain's
    own name: it covers every site under it, and the free hosts ranked there hand their customers such names
    (``000webhostapp.com``: 5,338 phishing URLs of data/validated.parquet on its subdomains). A page is corrected
    with scope url; a site on such a host by its own name (``x.000webhostapp.com``)."""
    import ipaddress

    from cybersentinel.url.parsing import host_registered_domain

    try:
        address = ipaddress.ip_network(target.strip("[]"))
    except ValueError:
        address = None
    if kind == "confirmed_malicious":
        problem = guard.network_problem(address) if address is not None else guard.name_problem(target)
        return f"a block on all of {target} is refused: {problem}; use scope url" if problem else ""
    registered = "" if address is not None else host_registered_domain(target)
    # the name's own rank: a government's or a company's service under its suffix (``update.googleapis.com``)
    # carries the suffix's, but what sits under it is that government's or company's too
    rank = guard.popularity.get(registered) if target == registered else None
    if rank is not None:
        return (f"allowlisting all of {target} (Tranco rank {rank:,}) is refused: it covers every site under it; use "
                "scope url, name the site's own host, or list it in an allowlist file")
    return ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return str(value)


def _check(url: str, kind: str, analyst: str, note: str) -> None:
    if kind not in KINDS:
        raise FeedbackError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if not analyst.strip() or len(analyst) > MAX_ANALYST or "\x00" in analyst:
        raise FeedbackError(f"analyst must be a name of 1 to {MAX_ANALYST} characters")
    if len(note) > MAX_NOTE or "\x00" in note:
        raise FeedbackError(f"note must be at most {MAX_NOTE} characters, without NUL")
    if not url.strip() or len(url) > MAX_URL or "\x00" in url:
        raise FeedbackError(f"url must be 1 to {MAX_URL} characters, without NUL")


class FeedbackStore:
    """The store at one location; each call opens its own connection (SQLite files and PostgreSQL alike), so a
    store object holds no state between calls and serves any number of threads."""

    def __init__(self, location: StoreLocation):
        self.location = location
        self.param = "%s" if location.dialect == "postgres" else "?"

    @classmethod
    def from_env(cls, path: str | Path | None = None, dsn: str | None = None) -> FeedbackStore:
        return cls(store_location(path=path, dsn=dsn))

    def describe(self) -> str:
        return self.location.describe()

    def _sql(self, text: str) -> str:
        return text.replace("%s", self.param)

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        """A cursor in one transaction: committed on success, rolled back on any error. SQLite writers take the
        write lock at the start (BEGIN IMMEDIATE), so two writers never both see "not recorded yet"."""
        if self.location.dialect == "postgres":
            import psycopg2

            from cybersentinel.ingest.base import SourceError
            from cybersentinel.ingest.postgres import pg_connect

            try:
                conn = pg_connect(self.location.dsn, {}, application_name="cybersentinel-feedback")
            except SourceError as exc:  # refused credentials, no such database
                raise StoreUnavailableError(f"feedback store: {exc}") from None
            except psycopg2.OperationalError as exc:
                raise StoreUnavailableError(f"cannot reach the feedback store {self.describe()}: "
                                    f"{' '.join(str(exc).split())}") from None
            try:
                with conn, conn.cursor() as cur:
                    yield cur
            except psycopg2.errors.UndefinedTable:
                raise StoreUnavailableError(f"the feedback store {self.describe()} has no schema: run "
                                       "`cybersentinel feedback migrate`") from None
            except psycopg2.IntegrityError:  # another writer recorded the same active correction first
                raise FeedbackError("the same correction was recorded at the same moment by another request; "
                                    "it is in the store (list it)") from None
            finally:
                conn.close()
            return
        conn = sqlite_connect(self.location.path, create=True)
        conn.isolation_level = None  # explicit BEGIN IMMEDIATE: one writer at a time, no lost update
        try:
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield cur
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                raise StoreUnavailableError(f"the feedback store {self.describe()} has no schema: run "
                                       "`cybersentinel feedback migrate`") from None
            raise StoreUnavailableError(f"feedback store {self.describe()}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            if exc.sqlite_errorname not in _NOT_A_DATABASE:  # a constraint or a bug: not the file's fault
                raise
            raise StoreUnavailableError(f"{self.location.path}: not a feedback database (SQLite: {exc})") from None
        finally:
            conn.close()

    def migrate(self) -> list[int]:
        """Create or upgrade the schema (idempotent; one transaction); returns the versions applied."""
        from cybersentinel.ops.etl import LoadError, apply_migrations, migrate_postgres

        try:
            if self.location.dialect == "postgres":
                return migrate_postgres(self.location.dsn, {}, migrations("postgres"), MIGRATIONS_TABLE,
                                        _MIGRATION_LOCK)
        except LoadError as exc:
            raise StoreUnavailableError(str(exc)) from None
        with self._transaction() as cur:
            return apply_migrations(cur, migrations("sqlite"), MIGRATIONS_TABLE, "?")

    def _rows(self, cur: Any, where: str = "", params: Sequence[Any] = (), limit: int | None = None
              ) -> list[Feedback]:
        # ``where`` is one of this module's constant clauses; values are always bound
        page, params = ("", tuple(params)) if limit is None else (" LIMIT %s", (*params, limit))
        cur.execute(self._sql(f"SELECT {', '.join(COLUMNS)} FROM feedback {where} ORDER BY id{page}"), params)  # noqa: S608
        out = []
        for row in cur.fetchall():
            values = dict(zip(COLUMNS, row, strict=True))
            for name in ("created_at", "revoked_at"):
                values[name] = _text(values[name])
            # a row stored before a credential was masked (session 42's and earlier releases) is history, never
            # rewritten, but leaves the store masked as `add` writes a new one: no caller shows its token
            values["url"], values["target"] = mask_credentials(values["url"]), mask_secret_parameters(values["target"])
            out.append(Feedback(**values))
        return out

    def add(self, url: str, kind: str, scope: str, analyst: str, note: str = "", verdict: str | None = None,
            score: float | None = None, model_version: str | None = None, guard: Any = None
            ) -> tuple[Feedback, bool]:
        """Record a correction; returns it and whether it is new (False: the same correction was already
        active, and is returned unchanged). An active correction of the other kind on the same target is
        revoked in the same transaction. ``guard`` (`ops.blocklist.Guard`, with the model's pinned lists): a
        host-wide correction it refuses is an error (`host_correction_problem`)."""
        # stored, listed to every analyst and used as training data: the URL's credentials are masked first
        url, analyst, note = mask_credentials(url.strip()), analyst.strip(), note.strip()
        _check(url, kind, analyst, note)
        target = target_of(url, scope)
        if guard is not None and scope == "host" and (problem := host_correction_problem(target, kind, guard)):
            raise FeedbackError(problem)
        label = KINDS[kind]
        content = hashlib.sha256(json.dumps([url, label, scope, target]).encode()).hexdigest()
        now = _now()
        with self._transaction() as cur:
            found = self._active_on(cur, target, kind)
            if found:
                return found[0], False
            cur.execute(self._sql(
                "INSERT INTO feedback (url, scope, target, kind, label, note, analyst, verdict, score, model_version, "
                "content_sha256, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"),
                (url, scope, target, kind, label, note, analyst, verdict, score, model_version, content, now))
            new = self._rows(cur, self._sql("WHERE target = %s AND kind = %s AND revoked_at IS NULL"),
                             (target, kind))[0]
            other = next(k for k in KINDS if k != kind)
            for old in self._active_on(cur, target, other):
                cur.execute(self._sql("UPDATE feedback SET revoked_at = %s, revoked_by = %s, revoke_reason = %s "
                                      "WHERE id = %s"), (now, analyst, f"superseded by #{new.id} ({kind})", old.id))
        return new, True

    def _active_on(self, cur: Any, target: str, kind: str) -> list[Feedback]:
        """The active corrections of ``kind`` on ``target``, with those a store kept from before credentials were
        masked (session 42, or before a path's or an encoded URL's were): their target holds a value ``target`` has
        masked (``…/cb?code=abc`` for ``…/cb?code=***``), so they are the same page's and must be found as duplicates
        and superseded alike (`_rows` reads them masked)."""
        found = self._rows(cur, self._sql("WHERE target = %s AND kind = %s AND revoked_at IS NULL"), (target, kind))
        if "***" in target:  # a URL target with a value masked: an older row of the page may hold it unmasked
            stem = re.split(r"[;?#]", target, maxsplit=1)[0]  # before any parameter, a path's too
            older = self._rows(cur, self._sql("WHERE substr(target, 1, %s) = %s AND target <> %s AND kind = %s "
                                              "AND revoked_at IS NULL"), (len(stem), stem, target, kind))
            found += [row for row in older if row.scope == "url" and row.target == target]
        return found

    def revoke(self, feedback_id: int, analyst: str, reason: str) -> Feedback:
        """Retract a correction: the row stays, marked with who revoked it, when and why."""
        analyst, reason = analyst.strip(), reason.strip()
        if not analyst or len(analyst) > MAX_ANALYST or "\x00" in analyst:  # as `add` refuses them (`_check`)
            raise FeedbackError(f"analyst must be a name of 1 to {MAX_ANALYST} characters")
        if not reason or len(reason) > MAX_NOTE or "\x00" in reason:
            raise FeedbackError(f"say why the correction is revoked (a reason of at most {MAX_NOTE} characters, "
                                "without NUL)")
        if not 0 < feedback_id <= MAX_ID:  # no row has it, and neither store's driver takes it
            raise FeedbackError(f"no feedback #{feedback_id}")
        with self._transaction() as cur:
            found = self._rows(cur, self._sql("WHERE id = %s"), (feedback_id,))
            if not found:
                raise FeedbackError(f"no feedback #{feedback_id}")
            if not found[0].active:
                raise FeedbackError(f"feedback #{feedback_id} was already revoked by {found[0].revoked_by} at "
                                    f"{found[0].revoked_at}")
            cur.execute(self._sql("UPDATE feedback SET revoked_at = %s, revoked_by = %s, revoke_reason = %s "
                                  "WHERE id = %s AND revoked_at IS NULL"), (_now(), analyst, reason, feedback_id))
            return self._rows(cur, self._sql("WHERE id = %s"), (feedback_id,))[0]

    def list(self, active_only: bool = False, after: int = 0, limit: int | None = None) -> list[Feedback]:
        """The corrections in id order (revoked ones too, unless ``active_only``), those with an id above ``after``,
        at most ``limit`` of them (None: all); an absent store is empty."""
        if self.location.dialect == "sqlite" and not self.location.path.is_file():
            return []
        where = "WHERE id > %s AND revoked_at IS NULL" if active_only else "WHERE id > %s"
        with self._transaction(write=False) as cur:
            return self._rows(cur, self._sql(where), (after,), limit)

    def version(self) -> tuple[int, int, int]:
        """(rows, highest id, revoked rows): changes with every write, so a server process can tell cheaply
        whether another process recorded something since it last built its lists."""
        if self.location.dialect == "sqlite" and not self.location.path.is_file():
            return 0, 0, 0
        try:
            with self._transaction(write=False) as cur:
                cur.execute("SELECT count(*), coalesce(max(id), 0), count(revoked_at) FROM feedback")
                rows, top, revoked = cur.fetchone()
        except StoreUnavailableError as exc:
            if "has no schema" in str(exc):
                return 0, 0, 0
            raise
        return int(rows), int(top), int(revoked)

    def site_lists(self) -> tuple[SiteList, SiteList]:
        """(allowlist, block list) of the active corrections, each entry with who said so and in which row."""
        return site_lists(self.list(active_only=True))


def site_lists(active: Sequence[Feedback]) -> tuple[SiteList, SiteList]:
    """False positives allow, confirmations block: hosts with their subdomains, or single URLs. A host row the guard
    now refuses (`target_of`: written before a platform or suffix was known, or straight into the store) acts on
    nothing: ``weebly.com`` allowlisted would clear every kit on ``*.weebly.com``."""
    from cybersentinel.ops.blocklist import target_of as block_target

    lists: dict[str, tuple[dict[str, str], dict[str, str]]] = {k: ({}, {}) for k in KINDS}
    for item in active:
        hosts, urls = lists[item.kind]
        why = f"analyst feedback #{item.id} by {item.analyst}"
        if item.scope == "host":
            try:
                block_target(item.target)
            except ValueError:
                continue
            hosts.setdefault(item.target, why)
        else:  # the page key stored (`target_of`), not one made again from the URL as read (`_rows` masks it)
            urls.setdefault(item.target, why)
    allow_hosts, allow_urls = lists["false_positive"]
    block_hosts, block_urls = lists["confirmed_malicious"]
    return SiteList(allow_hosts, urls=allow_urls), SiteList(block_hosts, urls=block_urls)
