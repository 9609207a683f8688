"""The decision policy with what it consults for one set of feeds and lists (the feeds index, the allowlist,
the local block list), applied to a batch of rows: the one function every door calls to turn model scores
into verdicts."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from itertools import filterfalse
from typing import Any
from urllib.parse import unquote

import numpy as np
import pyarrow as pa

from cybersentinel.features.lexical import (
    ANY_BRAND,
    ASSET_EXTENSIONS,
    BRAND_IN_NAME,
    BRANDS,
    FEW_TEXTS,
    PAGE_EXTENSIONS,
    imitated_brand,
    latin_reading,
    may_imitate,
    may_imitate_one,
    rendered,
    rows_matching,
)
from cybersentinel.features.literals import Literals
from cybersentinel.scoring.policy import (
    ALONE,
    IN_PAGE,
    ROOT_PAGE,
    Evidence,
    Policy,
    SiteList,
    changes_anything,
    decide,
    popular_only,
    popular_reason,
    user_content_host,
)
from cybersentinel.url.parsing import (
    PLAIN_NAME,
    HostSplits,
    canonical_host,
    host_registered_domain,
    parse_ip,
    plain_names,
    ranked_name,
    split_host,
    split_host_columns,
    split_host_registered,
    url_fields,
)


class Decider:
    """The policy with what it consults, for one set of feeds and lists: the feeds index (optional), the
    allowlist and the local block list. It keeps each host's `Evidence` (a host's evidence depends on nothing
    else); a reloaded feed or list makes a new Decider, so no answer outlives the data it came from."""

    def __init__(self, policy: Policy, index: Any = None, allow: SiteList | None = None,
                 block: SiteList | None = None, popularity: Mapping[str, int] | None = None,
                 resolvers: Mapping[str, str] | None = None, cache_size: int = 200_000):
        self.policy, self.index = policy, index
        self.popularity = popularity or {}  # the model's pinned list: it decides, live feeds or not
        self.resolvers = resolvers or {}  # canonical address -> why: public DNS resolvers, allowlisted
        self.allow, self.block = allow or SiteList(), block or SiteList()
        self.cache_size = cache_size
        # plain tuples: a full cache of Evidence objects (always tracked) made collections pause for 100+ ms;
        # each entry is the Evidence's fields then whether it changes anything under this policy (one flat
        # tuple: a nested one stays tracked after a collection); one dict per ``standing`` of a host in its row
        # (`policy.IN_PAGE`, `ROOT_PAGE`, `ALONE`: they differ for addresses only), keyed by host
        self._evidence: tuple[dict[str, tuple], ...] = ({}, {}, {})

    def evidence(self, host: str, standing: int = IN_PAGE) -> Evidence:
        return Evidence._make(self._entries([host], standing)[0][:-1])

    def plain_evidence(self, hosts: list[str]) -> list[Evidence]:
        """``evidence(host)`` of each host."""
        return [Evidence._make(entry[:-1]) for entry in self._entries(hosts, IN_PAGE)]

    def _entries(self, hosts: list[str], standing: int) -> list[tuple]:
        """The cache entries of ``evidence(host, standing)`` of each host; the hosts not cached are looked at
        together (`_new_entries`). The cache is emptied when they would not fit, and keeps the last
        ``cache_size`` of them."""
        cache = self._evidence[standing]
        if len(hosts) == 1:  # a service request's one host: one look-up, and no columns to build for it
            host = hosts[0]
            entry = cache.get(host)
            if entry is None:
                entry = self._new_entry(host, standing)
                if len(cache) + 1 > self.cache_size:
                    cache.clear()
                if self.cache_size:
                    cache[host] = entry
            return [entry]
        rows = list(map(cache.get, hosts))
        missing = list(filterfalse(cache.__contains__, hosts))
        if missing:
            entries = self._new_entries(missing, standing)
            if len(cache) + len(missing) > self.cache_size:
                cache.clear()
            keep = max(len(missing) - self.cache_size, 0)
            cache.update(zip(missing[keep:], entries[keep:], strict=True))
            new = iter(entries)
            rows = [row if row is not None else next(new) for row in rows]
        return rows

    def _new_entries(self, hosts: list[str], standing: int) -> list[tuple]:
        """What the policy reads about each host, as cache entries: the `Evidence` fields, then whether they
        change anything under this policy (`changes_anything`). The hosts are looked at together: each
        canonical name split once (`split_host_columns`), the look-alike and brand searches of
        `deceptive_hosts` over all of them, and the lists, popular sites and feeds asked name by name; only
        addresses, localhost names and empty hosts are looked at one by one."""
        n = len(hosts)
        plain = plain_names(hosts)  # most names: canonical as they are
        canonical = [host if ok else canonical_host(host) or host  # as a browser resolves it: 1.10.4101 is 1.10.16.5
                     for host, ok in zip(hosts, plain, strict=True)]
        splits = split_host_columns(canonical, arrow=True)
        registered = splits.registered if isinstance(splits.registered, list) else splits.registered.to_pylist()
        allowed = [self.allow.match(host) for host in canonical] if self.allow.entries else [""] * n
        blocked = [self.block.match(host) for host in canonical] if self.block.entries else [""] * n
        ranks = [self.popularity.get(ranked_name(name)) for name in registered]
        feeds = [()] * n
        if self.index is not None:
            signals = [self.index.host_signals(host, name if ok else None)
                       for host, name, ok in zip(canonical, registered, plain, strict=True)]
            feeds = [tuple(signal[0]) for signal in signals]
            if not self.popularity:  # a model without a pinned list: the live one
                ranks = [signal[3] for signal in signals]
        deceptions = deceptive_hosts(canonical, splits, [self.policy.is_popular(rank, False) for rank in ranks],
                                     [rank is not None for rank in ranks])
        marked = [""] * n
        for i in [i for i, name in enumerate(registered) if "xn--" in name and not deceptions[i]]:  # few hosts
            deceptions[i] = imitated_site(registered[i], self.popularity)
            marked[i] = "" if deceptions[i] else marked_site(registered[i], self.popularity, self.policy.popular_rank)
        own_name = [host == name or host == "www." + name for host, name in zip(canonical, registered, strict=True)]
        user_content = [user_content_host(host) if rank is not None else ""  # it only ever replaces rule 6
                        for host, rank in zip(canonical, ranks, strict=True)] if self.policy.cap_user_content else \
            [""] * n
        listed = [rank is not None for rank in ranks]
        named = [brand or mark or (site if not deception else "") for brand, mark, site, deception in zip(
            named_brands(splits, listed), marked, named_sites(splits, listed, self.popularity), deceptions,
            strict=True)]
        vendor = [""] * n
        subdomains = splits.subdomain if isinstance(splits.subdomain, list) else None
        for i in [i for i, host in enumerate(canonical) if "proxy" in host]:  # few hosts
            subdomain = subdomains[i] if subdomains is not None else splits.subdomain[i].as_py() or ""
            suffix = splits.suffix[i] if isinstance(splits.suffix, list) else splits.suffix[i].as_py() or ""
            vendor[i] = library_proxy(subdomain, suffix, registered[i])
            if vendor[i] and self.policy.cap_vendor_pages:  # the proxied site's name is the proxy's, no deception
                deceptions[i] = named[i] = ""
        columns = ([False] * n, [False] * n, feeds, [None] * n, [None] * n, ranks, registered, allowed, blocked,
                   deceptions, [""] * n, [""] * n, own_name, user_content, named, [False] * n, vendor)
        entries = list(zip(*columns, changes_anything(self.policy, zip(*columns, strict=True)), strict=True))
        maybe_addresses = [i for i, (ok, host) in enumerate(zip(plain, canonical, strict=True))
                           if not ok or host.endswith("localhost")]  # maybe an address, localhost or empty
        for i in maybe_addresses:
            fields = self._address_fields(canonical[i], standing, allowed[i], blocked[i])
            if fields is not None:
                entries[i] = (*fields, *changes_anything(self.policy, [fields]))
        return entries

    def _new_entry(self, host: str, standing: int) -> tuple:
        """`_new_entries` of one host, the same steps without a column per field (a request of one URL spent more
        on building and zipping fourteen one-element lists than on the look-ups); `tests/test_small_requests.py`
        checks the two agree."""
        plain = PLAIN_NAME.fullmatch(host) is not None  # `plain_names` of one host
        canonical = host if plain else canonical_host(host) or host
        allowed = self.allow.match(canonical) if self.allow.entries else ""
        blocked = self.block.match(canonical) if self.block.entries else ""
        if not plain or canonical.endswith("localhost"):  # maybe an address, localhost or empty: nothing of a
            fields = self._address_fields(canonical, standing, allowed, blocked)  # name's is read for those
            if fields is not None:
                return (*fields, *changes_anything(self.policy, [fields]))
        splits = split_host_columns([canonical])
        registered = splits.registered[0]
        rank = self.popularity.get(ranked_name(registered))
        feeds: tuple = ()
        if self.index is not None:
            signal = self.index.host_signals(canonical, registered if plain else None)
            feeds = tuple(signal[0])
            if not self.popularity:
                rank = signal[3]
        user_content = user_content_host(canonical) if rank is not None and self.policy.cap_user_content else ""
        punycode = "xn--" in registered
        deception = deceptive_hosts([canonical], splits, [self.policy.is_popular(rank, False)], [rank is not None])[0] \
            or (punycode and imitated_site(registered, self.popularity)) or ""
        marked = punycode and not deception and marked_site(registered, self.popularity, self.policy.popular_rank)
        named = named_brands(splits, [rank is not None])[0] or marked or \
            ("" if deception else named_sites(splits, [rank is not None], self.popularity)[0])
        vendor = library_proxy(splits.subdomain[0] or "", splits.suffix[0] or "", registered) \
            if "proxy" in canonical else ""
        if vendor and self.policy.cap_vendor_pages:
            deception = named = ""
        fields = (False, False, feeds, None, None, rank, registered, allowed, blocked, deception, "", "",
                  canonical == registered or canonical == "www." + registered, user_content, named, False, vendor)
        return (*fields, *changes_anything(self.policy, [fields]))

    def global_addresses(self, hosts: list[str]) -> list[bool]:
        """Whether each host is a global IP address in any notation a browser accepts (not a name, not a private,
        reserved or other non-global address), as its evidence has it: read from the cache `apply` and
        `decide_rows` read, so a request's address is classified once, not again for each rule that asks."""
        return [entry[0] and entry[4] is None for entry in self._entries(hosts, IN_PAGE)]  # is_ip, ip_category

    def _address_fields(self, host: str, standing: int, allowed: str, blocked: str) -> tuple | None:
        """The `Evidence` fields of a canonical host that is an address (localhost names are the loopback
        address) or empty; None for a name."""
        if host == "localhost" or host.endswith(".localhost"):
            host = "127.0.0.1"  # RFC 6761: localhost names resolve to the loopback address, never elsewhere
        if not host:
            return False, False, (), None, None, None, "", allowed, blocked, "", "", "", False, "", "", False, ""
        address = parse_ip(host)
        if address is None:
            return None
        if self.index is not None:
            found = self.index.lookup_address(address)  # `lookup_host`'s answer, without parsing the host again
            status, category, feeds = found["ip_status"], found["ip_category"], tuple(found["feeds"])
        else:
            from cybersentinel.intel.feeds import ip_category, ip_status

            category = ip_category(address)
            status, feeds = (ip_status(category, 0) if category else None), ()
        # keyed by the canonical host: an IPv6 address written without brackets is the same resolver
        allowed = allowed or self.resolvers.get(f"[{address}]" if address.version == 6 else str(address), "")
        return True, standing == ALONE, feeds, status, category, None, host, allowed, blocked, "", "", "", False, "", \
            "", standing == ROOT_PAGE, ""

    def apply(self, model_scores: np.ndarray, ok: np.ndarray, hosts: list[str], host_of_row: np.ndarray,
              standing: np.ndarray, row_deception: Mapping[int, str] | None = None,
              row_known_file: Mapping[int, str] | None = None, row_allowed: Mapping[int, str] | None = None,
              row_blocked: Mapping[int, str] | None = None, row_asset: Mapping[int, str] | None = None,
              row_sign_in: Mapping[int, str] | None = None, row_vendor: Mapping[int, str] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Scores, verdicts, rule reasons and matched feeds of a batch: ``hosts`` are its distinct hosts,
        ``host_of_row`` each row's index into them, ``standing`` how each row's host stands in it
        (`ParsedUrls.host_standing`: in a page, as a root page, written alone).
        The ``row_*`` maps hold what is known of single rows (deception, a stock file, the URL itself on the
        allowlist or block list, a page asset, a sign-in page on a public address, the site's own Outlook on the
        web). Rows that are not ``ok``
        (unusable input) get NaN and empty strings."""
        n = len(model_scores)
        scores = np.where(ok, model_scores, np.nan)
        reasons = np.full(n, "", dtype=object)
        feeds = np.full(n, "", dtype=object)
        plain = self._entries(hosts, IN_PAGE)  # Evidence objects made only for the rows the loop below decides
        is_ip = np.asarray([entry[0] for entry in plain] + [False])  # Evidence.is_ip
        changes = np.asarray([entry[-1] for entry in plain] + [False])
        host_of_row = np.where(host_of_row < 0, len(plain), host_of_row)  # -1: a row without a host
        bare_ip = is_ip[host_of_row] & (standing == ALONE)
        root_ip = is_ip[host_of_row] & (standing == ROOT_PAGE)
        row_deception, row_known_file = row_deception or {}, row_known_file or {}
        row_allowed, row_blocked, row_asset = row_allowed or {}, row_blocked or {}, row_asset or {}
        row_sign_in, row_vendor = row_sign_in or {}, row_vendor or {}
        per_row = np.zeros(len(model_scores), dtype=bool)
        per_row[[*row_deception, *row_known_file, *row_allowed, *row_blocked, *row_asset, *row_sign_in,
                 *row_vendor]] = True
        address = {}  # (standing, host) -> entry: an address alone or at a root page has its own entries
        for kind, mask in ((ALONE, bare_ip), (ROOT_PAGE, root_ip)):
            found = np.unique(host_of_row[ok & mask]).tolist()
            address.update(zip([(kind, j) for j in found], self._entries([hosts[j] for j in found], kind),
                               strict=True))
        rows = ok & (changes[host_of_row] | bare_ip | root_ip | per_row)
        # rows of a popular site with nothing else to it (most rows `decide` would see): rule 6 in one multiply
        popular = self._popular_hosts(plain, changes)
        if popular is not None:
            simple = rows & ~bare_ip & ~root_ip & ~per_row & (popular[host_of_row] != "")
            scores[simple] = model_scores[simple] * self.policy.popular_factor
            reasons[simple] = popular[host_of_row[simple]]
            rows &= ~simple
        rows = np.flatnonzero(rows)
        facts = (row_deception, row_known_file, row_allowed, row_blocked, row_asset, row_sign_in, row_vendor)
        kinds = np.where(bare_ip, ALONE, np.where(root_ip, ROOT_PAGE, IN_PAGE))
        for i, host, kind, single, model_score in zip(  # plain Python values: NumPy scalars cost in this loop
                rows.tolist(), host_of_row[rows].tolist(), kinds[rows].tolist(), per_row[rows].tolist(),
                model_scores[rows].tolist(), strict=True):
            entry = address[kind, host] if kind != IN_PAGE else plain[host]
            scores[i], reasons[i], feeds[i] = self._decide_row(model_score, entry, i if single else None, facts)
        verdicts = np.where(ok, self.policy.verdicts(np.nan_to_num(scores)), "")
        return scores, verdicts, reasons, feeds

    def _popular_hosts(self, plain: list[tuple], changes: np.ndarray) -> np.ndarray | None:
        """Per host (and the "no host" entry), rule 6's reason where it alone decides the host (`popular_only`),
        else ""; None when no host is such."""
        found = {j: popular_reason(plain[j][6], plain[j][5]) for j in np.flatnonzero(changes).tolist()
                 if popular_only(self.policy, plain[j])}
        if not found:
            return None
        out = np.full(len(changes), "", dtype=object)
        out[list(found)] = list(found.values())
        return out

    def decide_rows(self, model_scores: list[float | None], hosts: list[str], host_of_row: list[int],
                    standing: list[int], row_deception: Mapping[int, str], row_known_file: Mapping[int, str],
                    row_allowed: Mapping[int, str], row_blocked: Mapping[int, str], row_asset: Mapping[int, str],
                    row_sign_in: Mapping[int, str] | None = None, row_vendor: Mapping[int, str] | None = None
                    ) -> list[tuple[float, str, str, str]]:
        """`apply` for a few rows, one at a time in plain Python (NumPy's per-call cost is most of `apply`'s time
        for one row): (score, verdict, rule reasons, feeds) per row, a ``None`` model score marking an unusable
        input (NaN and empty strings). The same rows are decided by the same `_decide_row`; the others keep the
        model's score and the policy's verdict of it, as in `apply`."""
        plain = self._entries(hosts, IN_PAGE)
        facts = (row_deception, row_known_file, row_allowed, row_blocked, row_asset, row_sign_in or {},
                 row_vendor or {})
        out: list[tuple[float, str, str, str]] = []
        for i, (model_score, host) in enumerate(zip(model_scores, host_of_row, strict=True)):
            if model_score is None:
                out.append((float("nan"), "", "", ""))
                continue
            entry = plain[host] if host >= 0 else None
            address = bool(entry is not None and entry[0] and standing[i] != IN_PAGE)  # its own entry
            if address:
                entry = self._entries([hosts[host]], standing[i])[0]
            per_row = any(i in fact for fact in facts)
            score, reason, feeds = self._decide_row(model_score, entry, i if per_row else None, facts) \
                if (entry is not None and entry[-1]) or address or per_row else (model_score, "", "")
            out.append((score, self.policy.verdict(score), reason, feeds))
        return out

    def _decide_row(self, model_score: float, entry: tuple | None, row: int | None,
                    facts: tuple[Mapping[int, str], ...]) -> tuple[float, str, str]:
        """(score, rule reasons, feeds) of one row the policy has something to say about: its host's cached
        entry (`_entries`), with what is known of the row itself (``row``'s deception, stock file, listed URL in
        ``facts``) when ``row`` is given."""
        ev = Evidence._make(entry[:-1]) if entry is not None else Evidence()
        if row is not None:
            deception, known_file, allowed, blocked, asset, sign_in, vendor = facts
            ev = ev._replace(deception="; ".join(filter(None, [ev.deception, deception.get(row, "")])),
                             known_file=known_file.get(row, ""), allowed=allowed.get(row) or ev.allowed,
                             blocked=blocked.get(row) or ev.blocked, asset=asset.get(row, ""),
                             corroboration=sign_in.get(row) or ev.corroboration,
                             vendor_page=vendor.get(row) or ev.vendor_page)
        score, _, reason = decide(self.policy, model_score, ev)
        return score, reason, ", ".join(ev.feeds)


_BRAND_DOMAIN = re.compile(r"(?:^|[.-])(" + "|".join(map(re.escape, BRANDS)) + r")\.(?:com|net|org|co)(?:[.-]|$)")


# A country's second-level ending (``.co.jp``, ``.com.br``, ``.gov.uk``; ``.co.ip`` as kits misspell it) inside
# a subdomain, so that the host reads as that country's site up to where a reader stops looking
# (``www.rakuten.co.jp.akddojx.cn``, ``www.eki-co.jp-admin.swbmapl.cn``). The ending's own dot is required:
# ``www-example-co-uk.translate.goog`` is a proxy's name for a real site. ``net`` is left out:
# ``net.cs.uni-bonn.de`` is a department's name. In data/validated.parquet: 20 of reddit's 480,710 links (19
# through 2010's Coral CDN proxy, ``x.co.uk.nyud.net``), no other legitimate URL; JPCERT/CC's phishing 6.0%,
# PhishTank's 0.7%. Governments' words in other languages (``gouv.fr``, ``gob.mx``, ``gc.ca``, session 42): 12
# phishing URLs more, no legitimate one. RE2 (`rows_matching`) and ``re`` read it alike.
_COUNTRY_DOMAIN = re.compile(r"(?:^|[.-])((?:co|com|ne|or|ac|go|gov|gouv|gob|gc|org|edu)\.[a-z]{2})(?:[.-]|$)")
# The same ending split by the registered name's start, a hyphen after it (``gov.uk-refund.co``,
# ``ato.gov.au-refund.xyz``, ``cra-arc.gc.ca-refund.top``: the subdomain ends in the ending's first word, the
# registered name starts with a country's two letters and a hyphen), with governments' words for it in other
# languages (``impots.gouv.fr-remboursement.top``); only where the two make a country's ending of the public
# suffix list's ICANN section, of a government or of companies (``go.``, ``or.``, ``ac.``, ``edu.`` are the first
# labels of firms' and universities' links: ``go.tp-link.com``, ``go.th-koeln.de``, ``ac.fu-berlin.de``, which two
# reviews found `malicious`; ``.us``'s state endings, ``co.us-china.org``), and the registered name is on no rank of
# the pinned popularity list. In data/validated.parquet (a scratch count, hosts no earlier reason marks): 348
# phishing URLs, no legitimate one (`gov.uk` 208 hosts' URLs, `co.jp` 177, `co.uk` 51 before the other reasons);
# the model had scored `gov.uk-refund.co` 0.16.
_ENDING_WORDS = frozenset({"co", "com", "gov", "gouv", "gob", "gc"})
_STRADDLED = re.compile(r"^[a-z]{2}-[a-z0-9]")
# A site's name with ``.com`` or ``.gov`` written up to a hyphen that begins the registered name
# (``usps.com-trackhelp.top``, ``flde-lity.com-np.bond``): the text messages' parcel and toll kits. It only
# corroborates a suspicious score (rule 3): in data/validated.parquet (a scratch count, hosts no other reason marks)
# 3,669 phishing URLs and 3 legitimate ones of one site (``quedarembarazada.com-ayuda.org``; ``.net-``/``.org-`` are
# left out: ``www.net-security.org``; so is ``www.`` before it, ``www.com-magazin.de``: a site's own name).
_DOTTED_PREFIX = re.compile(r"^(?:com|gov)-[a-z0-9]")
_OWN_NAME_LABELS = frozenset({"www", "m"})


def deceptive_host(host: str) -> str:
    """How a host name deceives by construction, in words an analyst can check, or "": a registered name that
    imitates a brand with look-alike characters (punycode included), a brand's domain name placed in the
    subdomain of an unrelated registered domain, a country's second-level ending (``.co.jp``) placed there, or a
    subdomain label that imitates a brand (``arnazon.example.com``)."""
    subdomain, domain, _, is_ip = split_host(host)
    return _deception(subdomain, domain, is_ip, host_registered_domain(host))


def _deception(subdomain: str, domain: str, is_ip: bool, registered: str, ranked: bool = False,
               listed: bool = False) -> str:
    """`deceptive_host` of a host split already; a ``ranked`` registered domain (a popular site: rule 6's
    ``popular_rank``, 10,000) is not read as a look-alike itself: ``appier.net`` (Tranco rank 1,802) reads as
    ``appler``. Further down the list are look-alikes (``go0gles.cc``, rank 23,381). A ``listed`` one (any rank
    of the pinned list) has no country's ending written across its name's start."""
    if is_ip:
        return ""
    brand = "" if ranked else imitated_brand(domain)
    if brand:
        shown = rendered(registered)
        return (f"punycode host that renders as `{shown}`, imitating `{brand}`" if shown != registered else
                f"`{registered}` imitates `{brand}` with look-alike characters")
    match = _BRAND_DOMAIN.search(subdomain)
    if match and not _brands_own(match.group(1), registered, ranked):
        return f"brand `{match.group(1)}` in the subdomain of unrelated `{registered}`"
    match = _COUNTRY_DOMAIN.search(subdomain)
    if match:
        shown = ".".join(subdomain[:match.end(1)].split(".")[-3:])
        return f"`{shown}` in the subdomain of unrelated `{registered}`"
    word = subdomain.rpartition(".")[2]
    if word in _ENDING_WORDS and not listed and _STRADDLED.match(domain) and not domain.startswith("us-") \
            and _country_ending(f"{word}.{domain[:2]}"):
        return f"`{word}.{domain[:2]}` written across the subdomain and unrelated `{registered}`: the name reads as " \
            f"a `.{word}.{domain[:2]}` site"
    for label in subdomain.split("."):
        brand = imitated_brand(label)
        if brand and not _brands_own(brand, registered, ranked):
            return (f"`{label}` in the subdomain of unrelated `{registered}` imitates `{brand}` with look-alike "
                    "characters")
    return ""


def imitated_site(registered: str, popularity: Mapping[str, int]) -> str:
    """The popular site an unpopular punycode name imitates once its look-alike characters are read as the Latin
    letters they imitate, in words an analyst can check; "" for any other. ``xn--kta-red.com`` renders as
    ``оkta.com`` (Cyrillic о), read ``okta.com``; a name under a suffix outside ASCII (``президент.рф``) or with a
    letter that imitates none (``münchen.de``) is the language's own. Brands' look-alikes (`imitated_brand`) name
    91 brands; this names the pinned list's sites (session 42's probe: ``оkta.com``, ``lеdger.com``, ``uniswаp.org``
    had scored 0.36-0.49, `benign`). As browsers do for names whose skeleton is a top site's."""
    domain, _, suffix = registered.partition(".")
    if not domain.startswith("xn--") or not suffix.isascii() or "xn--" in suffix or registered in popularity:
        return ""
    label = rendered(domain)
    unmarked = without_marks(label)
    plain = latin_reading(unmarked)  # a look-alike with a mark on it (``оktá``) is still a look-alike
    target = f"{plain}.{suffix}"
    if plain == unmarked or not plain.isascii() or target not in popularity:
        return ""
    return f"punycode host that renders as `{label}.{suffix}`, imitating the popular site `{target}`"


def marked_site(registered: str, popularity: Mapping[str, int], top: int) -> str:
    """What corroborates a suspicious score (policy rule 3) of an unlisted punycode name under a generic ending
    that, its letters' marks taken off, is one of the list's ``top`` sites (``coinbȧse.com``, ``gıthub.com``); ""
    for any other. Not deceptive by itself, as `imitated_site`'s look-alikes are: a mark may be the language's own
    spelling of the very site (``société.com``, ``telefónica.com``, registered by their firms), and under a
    country's ending (``thanhniên.vn``, ``impôts.gouv.fr``) it is that country's writing, so those are left to
    the model. In data/validated.parquet 18 phishing URLs that no other rule marks have such a name, and no
    legitimate one, and none of the pinned list's 151 punycode names (`benchmarks/deception_counts.py`)."""
    domain, _, suffix = registered.partition(".")
    if not domain.startswith("xn--") or not suffix.isascii() or "xn--" in suffix or registered in popularity \
            or len(suffix.rpartition(".")[2]) <= 2:  # a country's ending
        return ""
    label = rendered(domain)
    plain = latin_reading(without_marks(label))  # marks first: Cyrillic ё is е with a mark, read e
    target = f"{plain}.{suffix}"
    if not plain.isascii() or plain == latin_reading(label) or popularity.get(target, top + 1) > top:
        return ""
    return f"punycode host that renders as `{label}.{suffix}`, the listed site `{target}` with marks on its letters"


# letters whose mark Unicode does not decompose: a stroke or a missing dot (``gıthub``, ``micrøsoft``, ``łedger``),
# read as browsers' look-alike checks read them
_STROKED = str.maketrans("ıøłđħŧƀƶ", "ioldhtbz")


def without_marks(label: str) -> str:
    """A name with the marks taken off its letters (``coinbȧse``: ``coinbase``; ``gıthub``: ``github``)."""
    return "".join(char for char in unicodedata.normalize("NFKD", label.translate(_STROKED))
                   if not unicodedata.combining(char))


def _country_ending(ending: str) -> bool:
    """Whether two labels (``gov.uk``) are a public suffix of the list's ICANN section."""
    _, _, suffix, _, private, _ = split_host_registered(f"x.{ending}")
    return suffix == ending and not private


def _brands_own(brand: str, registered: str, ranked: bool = False) -> bool:
    """Whether a registered domain is the brand's own: its name (``paypal.com``, ``paypal.co.uk``), or a popular
    one holding the brand (``smbc-card.com``, ``microsoftonline.com``: ``ranked``); not an unpopular one holding
    it among other words (``paypal-limited.top``, ``netflixbilling.info``)."""
    return registered.partition(".")[0] == brand or (ranked and brand in registered)


def deceptive_hosts(hosts: list[str], splits: HostSplits | None = None, ranked: list[bool] | None = None,
                    listed: list[bool] | None = None) -> list[str]:
    """`deceptive_host` of each host, asked only of the hosts that can deceive: a domain label or a subdomain that
    `may_imitate` a brand, or a brand's name or a country's ending in the subdomain (what `_BRAND_DOMAIN` and
    `_COUNTRY_DOMAIN` need); "" for the others.
    ``splits``: `split_host_columns` of the hosts (lists or Arrow arrays), when the caller has it; ``ranked``:
    whether each host's registered domain is a popular site, ``listed`` on the pinned list at all (`_deception`)."""
    splits = splits or split_host_columns(hosts)
    found = [""] * len(hosts)
    if isinstance(splits.domain, list) and len(hosts) <= FEW_TEXTS:  # a few hosts (a request): no NumPy call
        candidates = [i for i, (domain, subdomain) in enumerate(zip(splits.domain, splits.subdomain, strict=True))
                      if may_imitate_one(domain) or ANY_BRAND.holds(subdomain)
                      or _COUNTRY_DOMAIN.search(subdomain) is not None or may_imitate_one(subdomain)
                      or (subdomain and _STRADDLED.match(domain) is not None)]
    else:
        candidates = np.flatnonzero(may_imitate(splits.domain) | rows_matching(ANY_BRAND, splits.subdomain)
                                    | rows_matching(_COUNTRY_DOMAIN, splits.subdomain)
                                    | may_imitate(splits.subdomain) | rows_matching(_STRADDLED, splits.domain)
                                    ).tolist()
    if not candidates:  # most hosts (and a service request's one host, most of the time)
        return found
    columns = _taken((splits.subdomain, splits.domain, splits.registered), candidates)
    is_ip = np.asarray(splits.is_ip, dtype=bool)[candidates].tolist()
    for i, subdomain, domain, ip, registered in zip(candidates, *columns[:2], is_ip, columns[2], strict=True):
        found[i] = _deception(subdomain, domain, ip, registered, bool(ranked and ranked[i]), bool(listed and listed[i]))
    return found


def _taken(columns: tuple, rows: list[int]) -> list[list]:
    """The values at ``rows`` of each column (`HostSplits` columns: lists or Arrow arrays) as lists."""
    return [column.take(pa.array(rows)).to_pylist() if isinstance(column, pa.Array) else [column[i] for i in rows]
            for column in columns]


# A brand's name as a whole word of a subdomain (``apple.lnc.siahxu.cn``, ``www3-vpass.casting-sand.com``,
# ``paypal-verification.applmanager.com``) of a registered domain that neither holds the brand nor is on the pinned
# popularity list. In data/validated.parquet (`benchmarks/deception_counts.py`, hosts no other rule 3 reason
# marks): 23,557 phishing URLs, 30 legitimate ones (a popular site's topic subdomains, such as
# `apple.stackexchange.com`, are what the popularity list keeps out). Left out: brands that are ordinary words or
# products a company hosts under its own name (`live.`, `wallet.`, `outlook.`, `sharepoint.`, `telegram.` for a
# bot's hook, `ups.` for a power supply's page).
_OWN_HOSTED_NAMES = frozenset({"live", "wallet", "steam", "blockchain", "outlook", "office365", "sharepoint",
                               "onedrive", "telegram", "discord", "whatsapp", "ups", "irs"})
_BRAND_WORD = Literals(sorted(set(BRANDS) - _OWN_HOSTED_NAMES), before="[.-]", after="[.-]")


def named_brands(splits: HostSplits, ranked: list[bool]) -> list[str]:
    """Per host of ``splits`` (`split_host_columns`, lists or Arrow arrays), what corroborates a suspicious score
    (policy rule 3) in words an analyst can check, "" for the others: the brand its subdomain names as a word when
    the registered domain neither holds that brand nor is ``ranked`` (on the pinned popularity list), or of an
    unranked one a site's name written with ``.com-`` across the registered name's start (`_DOTTED_PREFIX`)."""
    subdomains, domains = splits.subdomain, splits.domain
    if isinstance(subdomains, list) and len(subdomains) <= FEW_TEXTS:
        candidates = [i for i, (sub, domain) in enumerate(zip(subdomains, domains, strict=True)) if not ranked[i] and
                      (_BRAND_WORD.holds(sub) or (sub and _DOTTED_PREFIX.match(domain) is not None))]
    else:
        candidates = np.flatnonzero((rows_matching(_BRAND_WORD, subdomains) | rows_matching(_DOTTED_PREFIX, domains))
                                    & ~np.asarray(ranked, dtype=bool)).tolist()
    found = [""] * len(ranked)
    if not candidates:
        return found
    columns = _taken((subdomains, domains, splits.registered), candidates)
    for i, subdomain, domain, registered in zip(candidates, *columns, strict=True):
        brand = next((b for b in _BRAND_WORD.words(subdomain) if not _brands_own(b, registered)), "")
        if brand:
            found[i] = f"brand `{brand}` named in the subdomain of `{registered}`, neither the brand's nor a " \
                "popular site"
        elif subdomain and _DOTTED_PREFIX.match(domain) and subdomain.rpartition(".")[2] not in _OWN_NAME_LABELS:
            name = f"{subdomain.rpartition('.')[2]}.{domain[:3]}"
            found[i] = f"`{name}` written across the subdomain and `{registered}`, not a popular site: the name " \
                f"reads as `{name}`"
    return found


def named_sites(splits: HostSplits, ranked: list[bool], popularity: Mapping[str, int]) -> list[str]:
    """Per host of ``splits`` (`split_host_columns`, lists or Arrow arrays), what corroborates a suspicious score
    (policy rule 3) beside `named_brands`, "" for the others: a site of the pinned ``popularity`` list whose whole
    name the subdomain writes as labels (``us.battle.net.eu-wow.net``, ``hiroba.dqx.jp.cusy.usa.cc``) while the
    registered domain is not ``ranked`` (on that list). In data/validated.parquet 2,734 phishing URLs that no other
    rule marks name such a site, and 5 legitimate ones (`benchmarks/deception_counts.py`): a city's ads on
    ``berlin.de.craigslist.de``, proxies of 2013 (Coral CDN, feedsportal); the model scores those low, so the name
    corroborates a suspicion rather than making one. Not named: a name that is a public suffix itself (``uk.com``,
    ``web.app``), and a bucket named after a domain where only the domain's verified owner can make one
    (`_DOMAIN_VERIFIED_BUCKETS`: ``www.dqx.jp.storage.googleapis.com`` is dqx.jp's own). A listed CDN's name for
    its customer's site (``www.example.com.incapdns.net``) is ranked, so not asked.
    `named_brands` knows 91 brands; the list knows the regional sites kits copy (``dqx.jp``, ``53.com``,
    ``kvk.nl``), which had stayed `suspicious`. So is a site of the list written across the subdomain's last label
    and the registered name's first word (`_straddled_site`: ``myhermes.de-xzso.top`` reads as ``myhermes.de``)."""
    found = [""] * len(ranked)
    if not popularity:  # a model without a pinned list: the rule needs its names
        return found
    subdomains, domains = splits.subdomain, splits.domain
    if isinstance(subdomains, list) and len(subdomains) <= FEW_TEXTS:
        candidates = [i for i, (sub, domain) in enumerate(zip(subdomains, domains, strict=True))
                      if not ranked[i] and sub and ("." in sub or domain[2:3] == "-")]
    else:
        written = rows_matching(_INNER_DOT, subdomains) | (rows_matching(_ENDING_AND_HYPHEN, domains) &
                                                            rows_matching(_ANY, subdomains))
        candidates = np.flatnonzero(written & ~np.asarray(ranked, dtype=bool)).tolist()
    if not candidates:
        return found
    for i, subdomain, domain, suffix, registered in zip(candidates, *_taken(
            (subdomains, domains, splits.suffix, splits.registered), candidates), strict=True):
        site = _listed_site_in(subdomain.split("."), popularity, registered in _DOMAIN_VERIFIED_BUCKETS)
        if site:
            found[i] = f"`{site}` (Tranco rank {popularity[site]:,}) named in the subdomain of `{registered}`, a " \
                "site not on the list"
        elif site := _straddled_site(subdomain, domain, suffix, popularity):
            found[i] = f"`{site}` (Tranco rank {popularity[site]:,}) written across the subdomain and " \
                f"`{registered}`, a site not on the list: the name reads as `{site}`"
    return found


_INNER_DOT, _ENDING_AND_HYPHEN, _ANY = re.compile(r"\."), re.compile(r"^[a-z]{2}-"), re.compile(".")
# Storage whose buckets named like a domain only that domain's verified owner can make: the bucket's name is the
# whole subdomain (Google Cloud Storage, "Domain-named bucket verification")
_DOMAIN_VERIFIED_BUCKETS = frozenset({"storage.googleapis.com", "c.storage.googleapis.com"})


def _straddled_site(subdomain: str, domain: str, suffix: str, popularity: Mapping[str, int]) -> str:
    """The site of ``popularity`` that a subdomain's last label and a country's ending written up to a hyphen at the
    registered name's start make (``myhermes.de-xzso.top``, ``allegro.pl-oferta.ml``, ``olx.pl-id26876236.xyz``:
    the text messages' parcel and shop kits, as `_DOTTED_PREFIX` reads ``.com-``), "" for any other. In
    data/validated.parquet 842 phishing URLs are written so (``.de-`` 574, ``.pl-`` 189, ``.jp-`` 38), and no
    legitimate one; 350 of them had stayed `suspicious`, 290 of those one campaign's (``myhermes.de-….top``). A
    review wrote legitimate hosts of the shape by accident, and 17 of 126 turned `malicious` under a first version:
    a firm's own mail or sign-in host whose name starts like an ending (``mail.de-vries-installatie.nl`` read as
    ``mail.de``, ``office.net-consulting.de``, ``login.edeka-foodservice.de``, ``www.gmx.de-mail.de``). So
    only a country's two letters count, not those that are words or a firm's prefix (``it-``, ``ai-``, ``co-``,
    ``io-``, ``me-``...), not a registered domain under that very ending (``de-mail.de``), and not a label a firm's
    own host is named by (`_SERVICE_LABELS`) or of two letters (a language's: ``fr.de-smet.be``)."""
    label = subdomain.rpartition(".")[2]
    ending, hyphen, _ = domain.partition("-")
    if not hyphen or len(ending) != 2 or not ending.isalpha() or ending in _WORD_ENDINGS or len(label) < 3 \
            or label in _SERVICE_LABELS or suffix == ending or suffix.endswith("." + ending):
        return ""
    site = f"{label}.{ending}"
    return site if site in popularity and not _is_public_suffix(site) else ""


# Country endings that are also words or firms' prefixes (``it-service.de``, ``ai-labs.io``, ``co-pilot.io``)
_WORD_ENDINGS = frozenset({"ai", "am", "at", "be", "co", "do", "go", "id", "in", "io", "is", "it", "me", "my", "no",
                           "pm", "so", "to", "tv", "us"})
# The first labels organisations give the host that runs their mail (``mail.``, ``owa.``, ``autodiscover.``, which
# clients ask for; `own_webmail`)
_MAIL_SERVER_LABELS = frozenset({"mail", "webmail", "owa", "outlook", "exchange", "email", "autodiscover"})
# Labels a firm's own hosts are named by: ``mail.ru`` or ``jobs.ch`` is a listed site, ``mail.ru-hosting.com`` a
# hosting firm's mail server
_SERVICE_LABELS = _MAIL_SERVER_LABELS | {
    "account", "accounts", "admin", "api", "app", "auth", "blog", "cdn", "chat", "citrix", "click", "client",
    "clients", "cloud", "crm", "dev", "docs", "extranet", "files", "forum", "help", "home", "imap", "info",
    "intranet", "jobs", "live", "login", "media", "mobile", "news", "office", "online", "pop", "portal", "remote",
    "search", "secure", "service", "services", "shop", "smtp", "sso", "staging", "static", "store", "support", "test",
    "track", "tracking", "vpn", "web"}


def _listed_site_in(labels: list[str], popularity: Mapping[str, int], verified_bucket: bool) -> str:
    """The first run of three or two labels (``bbc.co.uk`` before ``bbc.co``) that is a site of ``popularity`` and
    no public suffix, unless it ends the labels of a ``verified_bucket``'s name (its owner's own domain there)."""
    for start in range(len(labels) - 1):
        for end in (start + 3, start + 2):
            name = ".".join(labels[start:end])
            if end <= len(labels) and name in popularity and not (verified_bucket and end == len(labels)) \
                    and not _is_public_suffix(name):
                return name
    return ""


def _is_public_suffix(name: str) -> bool:
    """Whether a name is a public suffix of either section of the list (``uk.com``, ``web.app``, ``co.uk``)."""
    return split_host_registered(f"x.{name}")[2] == name


# The labels a library's proxy runs under (OCLC's EZproxy, "proxy by hostname": ``www.jstor.org.ezproxy.lib.
# uni.edu``, ``www-jstor-org.ezproxy.uni.edu``), and the endings only academic institutions get
_LIBRARY_PROXY_LABELS = re.compile(r"(?:ez|lib)proxy\d*(?:-[a-z0-9]+)?")
# endings whose registries give names to accredited academic institutions only (``edu.pl`` is anyone's, ``ac.se``
# a Swedish county's: a pattern such as ``ac.xx`` would take them in)
_ACADEMIC_ENDINGS = frozenset({"edu", "ac.uk", "edu.au", "ac.nz", "ac.jp", "ac.kr", "edu.cn", "edu.hk", "edu.tw",
                               "edu.sg", "ac.il", "ac.in", "ac.za", "ac.at", "edu.my"})


def library_proxy(subdomain: str, suffix: str, registered: str) -> str:
    """``"a library's proxy (`ezproxy`) at `uni.edu`, serving other sites' pages under its name"`` when a host is a
    university library's proxy of another site: a label of its subdomain names EZproxy (or a library proxy) and
    its registered domain is under an ending only academic institutions get (`_ACADEMIC_ENDINGS`: ``edu``,
    ``ac.uk``, ``edu.au``...); "" otherwise. Students and staff open journals, databases and their sign-in pages
    through it, and the proxy writes the site's name into its own host
    (``login.microsoftonline.com.ezproxy.bethel.edu``): the model scored such URLs 0.99 and rule 3 named the
    brands in them. None is in the collections (a probe written in session 45). A proxy under any other ending is
    anyone's to name so, and is judged as any host is; so is a proxy under a policy that does not cap such pages
    (`Policy.cap_vendor_pages` off: models trained before it)."""
    if suffix not in _ACADEMIC_ENDINGS:
        return ""
    label = next((label for label in subdomain.split(".") if _LIBRARY_PROXY_LABELS.fullmatch(label)), "")
    return f"a library's proxy (`{label}`) at `{registered}`, serving other sites' pages under its name" \
        if label else ""


# What reads as a host name's dot: the full stops a browser reads as one (UTS 46) and the dots that only look like
# one (``www․paypal․com@evil.top``: a one-dot leader, a middle dot, a dot operator...)
_DOTS = str.maketrans(dict.fromkeys("\u3002\uff0e\uff61\u2024\u00b7\u2027\u22c5\u2219\ufe52\u0701\u0702", "."))
REQUESTED_SCHEMES = frozenset({"", "http", "https", "ws", "wss", "ftp"})  # a browser requests the host they name
_HOST_TEXT = re.compile(r"[\w.-]+")


def userinfo_deception(url: str) -> str:
    """A host name written before ``@`` (``http://www.paypal.com@evil.top/``): the browser goes to the part
    after it. "" when the URL has no such user-info: none, a user's name (``john.smith@bitbucket.org``), or a
    scheme whose address is no page a browser opens (``mailto:support.team@paypal.com``)."""
    scheme, userinfo, host, *_ = url_fields(url)  # no public-suffix split of the host: only its text is shown
    if not userinfo or not host or scheme not in REQUESTED_SCHEMES:
        return ""
    # the user-info as a reader sees it: escapes undone, look-alike dots read as dots; each run of a host name's
    # characters in it (``user@www.paypal.com``, ``https:%2F%2Fwww.paypal.com``, ``amazon.jp%2Fsignin``)
    if any(_reads_as_a_host(run) for run in _HOST_TEXT.findall(unquote(userinfo).translate(_DOTS).lower())):
        user, colon, _ = userinfo.partition(":")  # a reason is shown and written out: never with a password
        return f"`{escaped(user[:60])}{':***' if colon else ''}` before '@' hides the real host `{escaped(host)}`"
    return ""


_MAX_USER_LABELS = 10  # dotted text with more labels is no user's name (and each label costs a split)


def _reads_as_a_host(run: str) -> bool:
    """Whether a run of host-name characters reads as a host: a site's name up to one of its dots or hyphens
    (``accounts.google.com.login``, ``www.paypal.com-login``), an address, or dotted text outside ASCII
    (``paypal.c\u043em``: a look-alike ending); not a user's name (``john.smith``)."""
    labels = run.strip(".").split(".")
    if len(labels) < 2:
        return False
    if not run.isascii() or len(labels) > _MAX_USER_LABELS or len(run) > 253:
        return True
    return any(_names_site(labels[:end]) or _names_site([*labels[:end - 1], labels[end - 1].split("-")[0]])
               for end in range(len(labels), 1, -1))


def _names_site(labels: list[str]) -> bool:
    """Whether dotted labels name a site (a registered name under a public suffix) or an address."""
    _, domain, suffix, is_ip = split_host(".".join(labels))
    return is_ip or bool(domain and suffix)


# Words of a sign-in page, in a path or query (policy rule 3: on a public address they corroborate a suspicion)
_SIGN_IN = re.compile(r"(?i)log.?in|sign.?in|webmail|auth|account|verif|secure|password|session")


def address_sign_in(url: str) -> str:
    """The sign-in page a URL on a public address names (``http://45.67.89.13:2095/webmail/?_task=login``), in
    words an analyst can check; "" when its path and query name none. The caller has checked the host."""
    _, _, host, _, path, query, _ = url_fields(url)
    word = _SIGN_IN.search(f"{path}?{query}")
    return f"a sign-in page (`{word.group(0)}`) on the public address `{host}`" if word else ""


# What a file for download is by the extension of its name (policy rule 3): Windows programs, installers, scripts and
# shortcuts, Android packages, shell scripts, and Linux programs named for the processor they run on (``loki.arm7``,
# ``sora.mips``: the builds a botnet's loader fetches for each kind of device). Not ``.com`` (a path that ends in a
# domain name), disk images or firmware (``.iso``, ``.bin``: mirrors' and devices' own downloads), ``.js`` (a page's
# script: `page_asset`), ``.dll`` (a library; on an address, a web server's ISAPI program answering as a page:
# ``/scripts/esrimap.dll?Name=…``) nor ``.jar`` (the consoles appliances serve on their addresses: Jenkins'
# ``/jnlpJars/agent.jar``, iLO's, a KVM's); the collections hold none of those on an address.
_PROGRAMS = {**dict.fromkeys(("exe", "scr", "pif", "cpl"), "Windows program"), "msi": "Windows installer",
             **dict.fromkeys(("bat", "cmd", "ps1", "vbs", "vbe", "hta", "wsf"), "Windows script"),
             "lnk": "Windows shortcut", "apk": "Android package", "sh": "shell script", "elf": "Linux program",
             **{arch: f"Linux program for `{arch}` processors" for arch in (
                 "mips", "mpsl", "mipsel", "mips64", "arm", "arm4", "arm5", "arm6", "arm7", "aarch64", "x86", "x86_64",
                 "i486", "i586", "i686", "ppc", "m68k", "sh4", "spc", "sparc", "arc")}}
# The builds a loader fetches saved without an extension, in the folder the botnets' kits name ``bins``
# (``/bins/mips``, ``/bins/armv7l``): elsewhere such names are a mirror's folders (``/centos/x86_64``).
_BARE_BUILDS = {arch: f"Linux program for `{arch}` processors" for arch in (
    *(arch for arch, kind in _PROGRAMS.items() if kind.startswith("Linux program for")),
    "armv4l", "armv5l", "armv6l", "armv7l", "arm64", "powerpc", "i386", "mips64el")}
# Folders where a web server runs what it holds as a page (``/cgi-bin/status.sh``): no download.
_PROGRAM_FOLDERS = re.compile(r"(?i)/(?:cgi-bin|scripts)/")
# A document's, picture's or page's extension a Windows program's name may end in before its own (``Form.pdf.lnk``,
# ``invoice.pdf.exe``): Windows hides the last one by default, so the file reads as the first.
_DOCUMENTS = frozenset(("pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "rtf", "odt", "txt", "csv", "jpg", "jpeg",
                        "png", "gif", "mp3", "mp4", "avi", "html", "htm"))
_WINDOWS_PROGRAMS = {extension: kind for extension, kind in _PROGRAMS.items() if kind.startswith("Windows")}
# The rows `disguised_program` may mark (a superset: spaces may pad the name between the two extensions)
DISGUISED_PATTERN = r"(?i)\.(?:" + "|".join(sorted(_DOCUMENTS)) + r")(?:[ .]|%20|%2e)+(?:" + \
    "|".join(sorted(_WINDOWS_PROGRAMS)) + ")"


def _file_name(path: str) -> tuple[str, str]:
    """A path's last name as Windows saves it (percent escapes decoded, path parameters after ``;`` and trailing
    dots and spaces dropped), and as a reason shows it: as written, a character that is not printable (a control,
    a right-to-left override) or a backtick escaped, the start cut past 60 characters."""
    written = path.rpartition("/")[2]
    saved = unquote(written.partition(";")[0]).rstrip(". ")
    shown = escaped(written)
    return saved, shown if len(shown) <= 60 else "…" + shown[-59:]


def escaped(text: str) -> str:
    """``text`` as a reason shows it between backticks: a character that is not printable (a control, a
    right-to-left override, which would turn the rest of the reason around) or a backtick escaped."""
    return "".join(char if char.isprintable() and char != "`" else f"\\u{ord(char):04x}" for char in text)


def address_program(url: str) -> str:
    """The program a URL on a public address offers for download (``http://83.222.191.91/oops/loki.arm7``, a
    Linux program for ARM processors; ``http://94.156.167.30/bins/mips``, one saved without an extension in a
    kit's ``bins`` folder;
    ``http://94.156.167.30/setup.exe``), in words an analyst can check; "" for
    pages and other files. The caller has checked the host. Only a file at most two folders deep, asked without a
    query and not where a web server runs programs as pages (`_PROGRAM_FOLDERS`): appliances and update services
    also serve installers on addresses, deeper (AnyConnect's ``/CACHE/stc/2/binaries/…msi``, Windows updates'
    ``/d/msdownload/update/software/…``); an appliance's installer higher up (ESXi's ``/client/VMware-viclient.exe``
    on a public address) still corroborates. In data/validated.parquet 107 URLs on 16 public addresses offer one
    and name no word of signing in, all labelled phishing (most of them Phishing.Database's malware downloads), and
    no legitimate URL does: `benchmarks/deception_counts.py`."""
    _, _, host, _, path, query, _ = url_fields(url)
    if query or path.count("/") > 3 or _PROGRAM_FOLDERS.search(path):
        return ""
    saved, shown = _file_name(path)
    if "." in saved.lstrip("."):
        kind = _PROGRAMS.get(saved.rpartition(".")[2].lower())
    else:
        kind = _BARE_BUILDS.get(saved.lower()) if path.lower().rpartition("/")[0].endswith("/bins") else None
    return f"a {kind} for download (`{shown}`) on the public address `{host}`" if kind else ""


def disguised_program(url: str) -> str:
    """A Windows program named as a document (``Form.pdf.lnk``, ``invoice.pdf.exe``, ``scan.jpg.scr``): the name's
    last extension a Windows program's (`_WINDOWS_PROGRAMS`), the one before it a document's, picture's or page's
    (`_DOCUMENTS`), read as Windows saves the file (spaces between them and dots after them dropped); in words an
    analyst can check, "" for any other. Windows hides the last extension, so the file passes for the document
    (policy rule 3: deceptive by construction on a site not on the pinned list or a host where anyone can publish on
    one; a popular site's own path may name such a file without serving it, as a malware scanner's search does).
    Not a library (``Spire.Pdf.dll``) nor a script module (``kendo.pdf.js``): nothing opens those with a
    double-click. In data/validated.parquet 10 URLs, all labelled phishing: `benchmarks/deception_counts.py`."""
    saved, shown = _file_name(url_fields(url)[4])
    stem, _, program = saved.lower().rpartition(".")
    document = stem.rstrip(" ").rpartition(".")[2] if "." in stem else ""
    kind = _WINDOWS_PROGRAMS.get(program) if document in _DOCUMENTS else None
    return f"a {kind} named as a `.{document}` file (`{shown}`): the name hides what it is" if kind else ""


# The bidirectional overrides (U+202D, U+202E): they reverse how the characters after them read, so a name can
# show another (``invoice_<U+202E>fdp.exe`` shows as ``invoice_exe.pdf``). Right-to-left text uses marks,
# embeddings and isolates, not overrides: links copied from it carry those (`url.parsing` strips them at a link's
# ends), so they are not read here.
_OVERRIDES = re.compile("[\u202d\u202e](?=[^/@\u202a-\u202e\u2066-\u2069])")
# The rows `reversed_text` may mark (a superset: anywhere in the URL), over a binary array of the URLs' UTF-8
# bytes, as written or percent-escaped
OVERRIDE_PATTERN = r"\xe2\x80[\xad\xae]|%[eE]2%80%[aA][dDeE]"


def reversed_text(url: str) -> str:
    """A bidirectional override (`_OVERRIDES`) followed by text in a URL's user-info, host or path, as written or
    percent-escaped, in words an analyst can check; "" for any other URL. Deceptive by construction (policy rule 3,
    on any site: nothing legitimate names a file so): a right-to-left override makes ``photo<U+202E>gpj.scr`` show
    as ``photorcs.jpg``. Not the query or fragment, which may carry text a user typed, nor an override with nothing
    after it in its part of the path (a page about the character, ``/%E2%80%AE``). The collections hold none."""
    _, userinfo, host, _, path, _, _ = url_fields(url)
    found = _OVERRIDES.search(unquote(f"{userinfo}@{host}{path}"))
    if found is None:
        return ""
    char = found.group(0)
    return (f"`U+{ord(char):04X}` ({unicodedata.name(char).lower()}) in the URL's name or path: the text after it "
            "reads reversed, so the name shows as another")


# A fragment that is an e-mail address and nothing else, as written or in base64 (``#jane@corp.com``,
# ``#email=jane%40corp.com``, ``#amFuZUBjb3JwLmNvbQ==``): a kit's link filling in its victim's address, which the
# page's script reads (a fragment never reaches the server). In data/validated.parquet 765 phishing URLs on unlisted
# sites that no other rule marks, and one legitimate one (an IRC channel, ``mibbit.com/#letsplay@irc.gamesurge.net``,
# scored low): `benchmarks/deception_counts.py`. So is a whole query that is an address without a name before it
# (``?jane@corp.com``, ``?amFuZUBjb3JwLmNvbQ==``): 146 phishing URLs of the collections, no legitimate one (session
# 55). A named one (``?email=jane@corp.com``) is a newsletter's link and is not.
_ADDRESS = r"[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}"
_FRAGMENT_ADDRESS = re.compile(r"(?i)[/!]*(?:[a-z_]{1,12}=)?" + _ADDRESS)
_FRAGMENT_BASE64 = re.compile(r"(?i)[/!]*(?:[a-z_]{1,12}=)?([a-z0-9+/_-]{8,}={0,2})")
_QUERY_ADDRESS = re.compile(r"(?i)" + _ADDRESS)
_QUERY_BASE64 = re.compile(r"(?i)([a-z0-9+/_-]{8,}={0,2})")
# what `_row_facts` searches a batch for before asking `victim_address`: a fragment, or a query with no name in it
# (base64's padding apart)
VICTIM_ADDRESS_PATTERN = r"#|\?[^=&#]+={0,2}(?:#|$)"


def victim_address(url: str) -> str:
    """What a URL whose fragment (`_FRAGMENT_ADDRESS`) or whole query (`_QUERY_ADDRESS`) is only an e-mail address,
    as written or in base64, says of itself, in words an analyst can check (the address itself is not repeated); ""
    for any other. Legitimate pages put addresses in a named query field (newsletters' links) or after a route
    (``#/users/jane@corp.com``), not alone."""
    *_, query, fragment = url_fields(url)
    for text, address, encoded, where in ((fragment, _FRAGMENT_ADDRESS, _FRAGMENT_BASE64, "after `#`"),
                                          (query, _QUERY_ADDRESS, _QUERY_BASE64, "after `?`")):
        if text and (how := _address_alone(text, address, encoded)) is not None:
            return f"an e-mail address{how} alone {where}, as a kit's link fills in its victim's address"
    return ""


# Hotmail's old inbox link (`mail.live.com/mail/InboxLight.aspx?n=1774256418&fid=1252899642`), which a widespread
# family of kits copies into its own links as decoy parameters (`?rand=13InboxLightaspxn.1774256418&fid.4.1252899642`):
# 5,060 phishing URLs of six collections, 2013 to 2026, hold it, and no legitimate one (session 56's count). What
# `_row_facts` searches a batch for before asking `copied_inbox_link`.
COPIED_INBOX_PATTERN = r"(?i)inboxlight"


def copied_inbox_link(url: str) -> str:
    """What a URL holding a copy of Hotmail's old inbox link (`COPIED_INBOX_PATTERN`) says of itself; "" for any
    other. Only Microsoft's own sites served the page, and they are on the pinned list, where nothing corroborates."""
    if "inboxlight" not in url.lower():
        return ""
    return "a copy of Hotmail's old inbox link (`InboxLight.aspx`), as a family of kits writes it into its links"


def _address_alone(text: str, address: re.Pattern, encoded: re.Pattern) -> str | None:
    """"" if ``text`` is an e-mail address as ``address`` reads it (percent-escapes undone), " in base64" if it is
    one in base64 as ``encoded`` reads it, None if neither."""
    if address.fullmatch(unquote(text)):
        return ""
    found = encoded.fullmatch(text)
    if found is None:
        return None
    value = found.group(1)
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_" if "-" in value or "_" in value
                                   else None, validate=True)
    except binascii.Error:
        return None
    return " in base64" if decoded.isascii() and address.fullmatch(decoded.decode("ascii")) else None


# Outlook on the web, Exchange's web client: the pages a browser opens on it (`own_webmail`), and words of a mail
# service that no firm's own name holds (the host's first label is one of `_MAIL_SERVER_LABELS`).
_OUTLOOK_ON_THE_WEB = re.compile(r"(?i)/(?:owa|ecp)/?|/owa/auth/logon\.aspx")
_MAIL_SERVICE_WORDS = ("owa", "o365", "office", "outlook", "exchange", "webmail", "mailbox", "microsoft")


def own_webmail(url: str) -> str:
    """``"Outlook on the web (`/owa/`) at `mail.smallfirm.de`, the site's own mail server"`` when the URL opens
    the sign-in or start page of Exchange's web client (`_OUTLOOK_ON_THE_WEB`: paths IIS compares without case)
    on a host one label below its registered domain under a suffix of the public suffix list's ICANN section, that
    label one an organisation names its mail server (`_MAIL_SERVER_LABELS`), and the site's name holding no brand
    and no word of a mail service (``mail.outlook-verify.top``, ``mail.o365-helpdesk.com`` are no firm's); ""
    otherwise. Every firm that runs Exchange serves these pages on such a host, and a URL alone cannot tell them
    from a kit copied to ``mail.<a domain of its own>`` (the collections list real universities' and hospitals'
    pages among their phishing: 14 URLs of data/validated.parquet, all labelled phishing), so the policy caps the
    model's word there rather than clearing it. A kit under any other name (``boticelli.org/owa/auth/logon.aspx``,
    62 phishing URLs) or in a folder of its own is not one."""
    _, _, host, _, path, _, _ = url_fields(url)
    if host.partition(".")[0] not in _MAIL_SERVER_LABELS or not _OUTLOOK_ON_THE_WEB.fullmatch(path):
        return ""
    subdomain, domain, suffix, is_ip, private, _ = split_host_registered(host)
    # a name under a private suffix (``mail.acct.workers.dev``, ``owa.x.duckdns.org``) is anyone's for the asking
    if is_ip or not suffix or private or subdomain not in _MAIL_SERVER_LABELS or BRAND_IN_NAME.holds(domain) \
            or any(word in domain for word in _MAIL_SERVICE_WORDS):
        return ""
    return f"Outlook on the web (`{path}`) at `{host}`, the site's own mail server"


# Services that give each customer organisation a name of its own and serve their own pages under it: the paths
# where a customer can put no page of its own (None: every path), by the name the tenants' names end in. AWS's
# access portal (`/start`: the same name serves WorkDocs' shared documents elsewhere), a Shopify shop's
# administration (`/admin`: the shop's storefront is its owner's), PagerDuty's accounts. Written from general
# knowledge of the services (not checked against their documentation here); each was `malicious` (0.985-0.996)
# in a probe of sign-in pages staff open every day (benchmarks/enterprise_sign_in.txt). One URL of
# data/validated.parquet is on such a name: PagerDuty's own blog (``blog.pagerduty.com``, labelled legitimate); no
# phishing one. Firebase Hosting keeps the ``/__/`` paths of every project's names for its own pages (the sign-in
# helper ``/__/auth/handler`` and ``/__/auth/iframe`` every app with Firebase sign-in opens, the SDK's
# ``/__/firebase/init.js``): a session 43 probe's ``<project>.firebaseapp.com/__/auth/handler`` was `malicious`
# (0.9992); none of data/validated.parquet's 6,363 URLs on such names (6,357 phishing) is under ``/__/``.
_FIREBASE_RESERVED = re.compile(r"/__/.*")
_TENANT_PAGES: dict[str, re.Pattern[str] | None] = {
    "awsapps.com": re.compile(r"/start(?:/.*)?"),
    "myshopify.com": re.compile(r"/admin(?:/.*)?"),
    "pagerduty.com": None,
    "firebaseapp.com": _FIREBASE_RESERVED,
    "web.app": _FIREBASE_RESERVED,
    # GoDaddy's site builder serves its members' and shop's pages under ``/m/`` of every customer's site (``/m/login``,
    # ``/m/account``); the site's own pages are its owner's, judged on the model's word (`policy.OWN_SITES`)
    "godaddysites.com": re.compile(r"/m/.*"),
    # Supabase serves its sign-in service's API under ``/auth/v1/`` of every project's name: the links of every app's
    # sign-up confirmation, magic link and password recovery mail (``<project>.supabase.co/auth/v1/verify?token=…``,
    # two of a probe's transactional links, `malicious` at 1.000); a project's own files are under ``/storage/``.
    # None of data/validated.parquet's URLs is on ``supabase.co`` (session 62).
    "supabase.co": re.compile(r"/auth/v1/.*"),
}


def tenant_page(url: str) -> str:
    """``"pagerduty.com's page (`/sign_in`) at `acme.pagerduty.com`, a customer's name on the service"`` when the
    URL is a page the service itself serves under a customer organisation's own name on it (`_TENANT_PAGES`:
    ``acme.pagerduty.com``, ``d-9067642ac7.awsapps.com/start``, ``shop.myshopify.com/admin``); "" otherwise. Such a
    name costs anyone a sign-up, so the policy caps the model's word there rather than clearing it; the pages are
    the service's own, which no kit can be."""
    _, _, host, _, path, _, _ = url_fields(url)
    subdomain, domain, suffix, is_ip, private, registered = split_host_registered(host)
    # a tenant's name is one label: the site's own under a private suffix (``x.myshopify.com``), else the subdomain
    service, tenant, below = (suffix, domain, subdomain) if private else (registered, subdomain, "")
    if is_ip or service not in _TENANT_PAGES or not tenant or below or "." in tenant or tenant == "www":
        return ""
    paths = _TENANT_PAGES[service]
    if paths is not None and not paths.fullmatch(path):
        return ""
    return f"{service}'s page (`{path or '/'}`) at `{host}`, a customer's name on the service"


def vendor_page(url: str) -> str:
    """What makes the URL a page that software or a service serves on an organisation's own name (`own_webmail`,
    `tenant_page`), "" if nothing."""
    return own_webmail(url) or tenant_page(url)


# a superset of `vendor_page`'s URLs, for the detector's row search
VENDOR_PAGE_PATTERN = r"(?i)/(?:owa|ecp)(?:[/?#]|$)|\.(?:" + "|".join(map(re.escape, _TENANT_PAGES)) + ")"


REST_PREFIX = "/wp-json/"


def _stock_route(tail: str, known_paths: frozenset[str]) -> bool:
    """Whether a path from ``/wp-json/`` on is a REST route of the software (stage software lists them:
    ``/wp-json/``, ``/wp-json/wp/v2/pages``) or one numbered item of one (``/wp-json/wp/v2/pages/2``). Nothing
    with a file name: a kit can write ``/wp-json/oembed/1.0/raw/index.php`` on a compromised site."""
    route = tail.rstrip("/")
    if route + "/" == REST_PREFIX:
        return REST_PREFIX in known_paths
    parent, _, last = route.rpartition("/")
    return route in known_paths or (last.isdigit() and parent in known_paths)


# A user's name in an author link (WordPress's sanitize_title: lower-case letters, digits, '-', '_', %-escapes).
_SLUG = re.compile(r"[a-z0-9_%-]+")


def _author_archive(path: str, known_paths: frozenset[str]) -> bool:
    """Whether a path is an author archive page of the software's rewrite rules (stage software lists their
    templates: ``/author/{slug}/``, ``/author/{slug}/page/{n}/``, ``/author/{slug}/feed/``), the software at the
    site's root or in one folder (``/blog/author/admin/``)."""
    if not path.endswith("/"):
        return False
    parts = path[1:-1].split("/")
    for names in (parts, parts[1:]):
        if len(names) < 2 or not _SLUG.fullmatch(names[1]) or (names is not parts and not _SLUG.fullmatch(parts[0])):
            continue
        rest = ("{n}" if name.isdigit() else name for name in names[2:])
        if "/" + "/".join([names[0], "{slug}", *rest]) + "/" in known_paths:
            return True
    return False


@lru_cache(maxsize=4)
def software_url_pattern(known_paths: frozenset[str]) -> str:
    """What a URL must contain for `known_software_file` to find anything in it (ASCII literal alternatives, as
    `ParsedUrls.containing` takes): the software's file and route names, and its archives' bases."""
    bases = sorted({t.split("/")[1] for t in known_paths if "{slug}" in t})
    return "|".join(["wp-", "xmlrpc", *(f"/{re.escape(base)}/" for base in bases)])


def known_software_file(url: str, known_paths: frozenset[str], software: str) -> str:
    """``"<software> file `/wp-login.php`"`` when the URL's path is a stock file of the software, or a stock
    directory the software serves itself (its ``index.php`` is stock: ``/wp-admin/``), or one of its REST routes
    (`_stock_route`; not asked as ``/?rest_route=/wp/v2/pages/2``: that is a page given a parameter, which a kit
    ignores, so any kit's URL could take it), or an author archive of its rewrite rules (`_author_archive`:
    ``/author/admin/``, which every post's byline links),
    WordPress in a sub-folder included (``/blog/wp-login.php``); "" otherwise. Other directories are not: a kit
    can put its own index page in any directory it can write (``/wp-includes/css/``), or answer ``/wp-content``
    on a host that runs no WordPress at all. Compared in the case the file list has, as the web server compares
    (``/wp-includes/ID3/``)."""
    *_, path, query, _ = url_fields(url)  # the path and query only: no public-suffix split of the host
    if not query and _author_archive(path, known_paths):
        return f"{software} author archive `{path}`"
    cut = min((i for i in (path.find("/wp-"), path.find("/xmlrpc.php")) if i >= 0), default=-1)
    if cut < 0:
        return ""
    tail = path[cut:]
    if _after_script(path[:cut]):
        return ""
    if tail.startswith(REST_PREFIX):
        return f"{software} REST route `{tail}`" if _stock_route(tail, known_paths) else ""
    # a file's name with a "/" after it (``/wp-login.php/``) is that file too: the server runs the script with an
    # empty path info, or finds no file and hands the software its own "not found" page; no kit can put a folder
    # where a file of that name is
    if (name := tail.removesuffix("/")) in known_paths and not name.endswith("/"):
        return f"{software} file `{name}`"
    folder = tail if tail.endswith("/") else tail + "/"
    if folder in known_paths and folder + "index.php" in known_paths:
        return f"{software} file `{folder}`"
    return ""


_CORE_FOLDERS = ("/wp-admin/", "/wp-includes/")


def planted_page(url: str, known_paths: frozenset[str], software: str) -> str:
    """``"a page in `/wp-includes/ID3/netflix/`, a folder <software> does not have: planted on the site"`` when
    the URL names a page (a PHP or HTML file, a folder, a name without an extension) in a folder under the
    software's ``/wp-admin/`` or ``/wp-includes/`` that its stock tree lacks; "" otherwise. Those folders hold
    the software's own files (a site's themes, plugins and uploads go under ``/wp-content/``), so a folder
    there that the software does not ship was written by someone else: 15,576 phishing URLs of the data sit in
    one, and none of the 23 legitimate URLs under those folders does. Folders, not files: files come and go
    between releases, so a site on another release would be flagged; folders rarely do. Compared in the case
    the file list has, as the web server compares."""
    if not known_paths:
        return ""
    path = url_fields(url)[4]
    cut = min((i for i in (path.find(core) for core in _CORE_FOLDERS) if i >= 0), default=-1)
    if cut < 0:
        return ""
    # the path as written, and as the page the server runs when a segment names one (`/x/index.php/a.css` runs
    # `/x/index.php` with `/a.css` as path info, `_after_script`; `/x/secure.html/login.php` may be a folder)
    segments = path[cut:].split("/")
    page = next((i for i, segment in enumerate(segments) if segment.lower().endswith(PAGE_EXTENSIONS)), None)
    readings = [path[cut:]] if page is None else [path[cut:], "/".join(segments[:page + 1])]
    return next(filter(None, (_planted_folder(reading, known_paths, software) for reading in readings)), "")


def _planted_folder(path: str, known_paths: frozenset[str], software: str) -> str:
    """`planted_page` of a path from the core folder on."""
    folder, _, name = path.rpartition("/")
    stock_file = folder in known_paths and not folder.endswith("/")  # `/wp-login.php/` is it: no folder anyone made
    folder += "/"
    if folder in known_paths or stock_file or ("." in name and not name.lower().endswith(PAGE_EXTENSIONS)):
        return ""
    return f"a page in `{folder}`, a folder {software} does not have: planted on the site"


# What a URL names when it names a page asset rather than a page (`Policy.cap_page_assets`), by the path's
# extension: the lexical feature's assets plus scripts, which phishing lists name as rarely.
_ASSET_KINDS = {**dict.fromkeys(ASSET_EXTENSIONS, "file"), ".js": "script", ".mjs": "script", ".css": "style sheet",
                **dict.fromkeys((".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".webp", ".bmp"), "image"),
                **dict.fromkeys((".woff", ".woff2", ".ttf", ".eot", ".otf"), "font")}
PAGE_ASSET_EXTENSIONS = tuple(_ASSET_KINDS)


def page_asset(url: str) -> str:
    """``"script `/js/app.min.js`"`` when the URL's path ends in a page asset's extension (`_ASSET_KINDS`);
    "" for pages, directories and anything else."""
    path = url_fields(url)[4]
    dot, slash = path.rfind("."), path.rfind("/")
    kind = _ASSET_KINDS.get(path[dot:].lower()) if dot > slash and not _after_script(path[:slash]) else None
    return f"{kind} `{path[-80:]}`" if kind else ""


def _after_script(folders: str) -> bool:
    """Whether a path's folders hold a page's file name (``/kit/signin.php`` of ``/kit/signin.php/wp-login.php``):
    then the server runs that page and hands it the rest as path info, so the name the path ends in is not the
    file served (a kit can end its links in ``/wp-login.php`` or ``/jquery.min.js`` to pass for one)."""
    return any(folder.lower().endswith(PAGE_EXTENSIONS) for folder in folders.split("/"))
