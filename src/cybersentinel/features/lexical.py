"""Lexical URL features over raw UTF-8 bytes: the per-character work of the URL featurizer, free of
scikit-learn so that a scorer loads in a fraction of a second.

URL features are computed from the string alone (no DNS, no fetch). They are taken after the scheme
and a leading ``www.`` are removed: in the training collections both say more about how a list was
assembled than about the site (see ../shared/data/README.md), and the detector must hold elsewhere.

Speed: a batch scorer must featurize 100,000+ URLs a second, so the per-character work (URL splitting,
counts, word matching, character n-gram hashing) runs in numba-compiled loops over the UTF-8 bytes of a
whole Arrow string column, and only host-level work that needs the public suffix list (tldextract) runs in
Python, once per distinct host (cached per process: host-only features are a pure function of the host).
Fitting (`cybersentinel.features.featurizer.UrlFeaturizer`) and scoring use the same kernels, so the served features
are the evaluated ones. Byte semantics: lengths count UTF-8 bytes and case folding is ASCII-only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate, filterfalse
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from cybersentinel.features.familiarity import NameFamiliarity
from cybersentinel.features.literals import Literals
from cybersentinel.features.words import NOTHING_TO_READ, NameWords
from cybersentinel.url.parsing import (
    NON_WEB_SCHEMES,
    NUMBERED_SCHEMES,
    HostNames,
    HostSplits,
    host_memo,
    host_registered_domain,
    on_private_suffix,
    split_host_arrays,
    split_host_columns,
    split_host_registered,
    split_url,
    to_text,
    without_www,
)

BRANDS = [
    "paypal", "apple", "icloud", "itunes", "google", "gmail", "microsoft", "office365", "outlook", "hotmail", "live",
    "amazon", "netflix", "facebook", "instagram", "whatsapp", "ebay", "yahoo", "linkedin", "dropbox", "docusign",
    "adobe", "chase", "wellsfargo", "bankofamerica", "citibank", "hsbc", "santander", "barclays", "dhl", "fedex", "ups",
    "usps", "irs", "steam", "coinbase", "binance", "blockchain", "metamask", "wallet",
    # Japan's most phished brands (banks, card issuers, carriers, delivery, shops)
    "rakuten", "smbc", "vpass", "mufg", "mizuho", "aeon", "jcb", "saisoncard", "orico", "monex", "paypay",
    "docomo", "softbank", "nhk", "tepco", "eki-net", "jreast", "yamato", "japanpost", "jppost", "mercari",
    "yodobashi",
    # elsewhere
    "mastercard", "americanexpress", "amex", "lloyds", "natwest", "royalmail", "correos", "intesa", "sparkasse",
    "bbva", "caixa", "itau", "bradesco", "bancolombia", "mercadolibre", "scotiabank", "desjardins", "westpac",
    "alibaba", "aliexpress", "shopee", "onedrive", "sharepoint", "wetransfer", "telegram", "discord", "roblox",
    "tiktok", "xfinity",
]
SUSPICIOUS_WORDS = [
    "login", "signin", "sign-in", "logon", "verify", "verification", "account", "update", "secure", "security",
    "confirm", "password", "banking", "webscr", "ebayisapi", "billing", "invoice", "suspend", "unlock", "recover",
    "support", "wp-admin", "wp-content", "wp-includes", "admin", "cmd", "dispatch", "token", "auth", "session",
]
SHORTENERS = frozenset([
    "bit.ly", "goo.gl", "tinyurl.com", "t.co", "ow.ly", "is.gd", "buff.ly", "adf.ly", "bit.do", "cutt.ly", "rebrand.ly",
    "shorte.st", "tiny.cc", "lnkd.in", "db.tt", "qr.ae", "cur.lv", "ity.im", "v.gd", "rb.gy", "shorturl.at",
])
# TLDs that abuse reports (Spamhaus, Interisle) rank among the most abused; free or near-free names.
ABUSED_TLDS = frozenset(["tk", "ml", "ga", "cf", "gq", "xyz", "top", "work", "click", "link", "zip", "mov", "country",
                         "kim", "science", "party", "gdn", "loan", "win"])
PAGE_EXTENSIONS = (".php", ".html", ".htm", ".asp", ".aspx", ".jsp")
# A page asset, not a page: a phishing list names the pages people are sent to.
ASSET_EXTENSIONS = (".css", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".webp", ".bmp", ".woff", ".woff2",
                    ".ttf", ".eot", ".otf", ".map", ".mp4", ".webm", ".mp3", ".xml", ".txt")
# Look-alike characters people take for letters in a domain name (TR39 lists them; these are the ASCII ones
# phishing kits use, multi-letter ones too). Non-ASCII look-alikes come from confusable_homoglyphs.
_ASCII_LOOKALIKES = (("rn", "m"), ("vv", "w"), ("cl", "d"), ("0", "o"), ("1", "l"), ("i", "l"), ("3", "e"),
                     ("4", "a"), ("5", "s"), ("7", "t"), ("8", "b"), ("9", "g"))


_MULTI_LOOKALIKES = tuple((a, b) for a, b in _ASCII_LOOKALIKES if len(a) > 1)
_SINGLE_LOOKALIKES = str.maketrans({a: b for a, b in _ASCII_LOOKALIKES if len(a) == 1})


def _ascii_skeleton(text: str) -> str:
    for lookalike, letter in _MULTI_LOOKALIKES:  # before the single letters: "ci" must not become "cl", then "d"
        text = text.replace(lookalike, letter)
    return text.translate(_SINGLE_LOOKALIKES)
RISKY_EXTENSIONS = (".exe", ".scr", ".apk", ".zip", ".rar", ".js", ".jar", ".bat", ".msi", ".vbs")
TLD_MARKERS = (".com", ".net", ".org", "com-", "-com")
_TOKEN_SEPARATORS = b"/-._?=&~+%:;,@!"
_SPECIAL_CHARS = b"~_=&;!*$"
_VOWELS = frozenset("aeiou")
MAX_URL_BYTES = 4096  # longer inputs are featurized on their first 4 KB
MAX_URL_CHARS = 65_536  # longer inputs are not scored (`URL_ERRORS`)
# Why a URL cannot be scored, by the code `_url_error_code` gives it ("": it can); the first that applies names it.
URL_ERRORS = ("", "host name has spaces, control or forbidden characters", "no host name in URL",
              f"URL longer than {MAX_URL_CHARS} bytes", "empty URL",
              "not a web address (a mailto:, tel:, javascript:, data: or other link that names no web site, or a "
              "file's path such as C:\\Users\\…)",
              "an IPv4 network range (CIDR, such as 192.0.2.0/24), not a URL or an address",
              "a file's hash (MD5, SHA-1 or SHA-256, as threat reports list them beside addresses), not a URL, a "
              "domain or an address")
MAX_HOST_CACHE = 200_000  # distinct hosts whose host-only features a process keeps


class HostParts(NamedTuple):
    """A lower-cased host split by the public suffix list (private section included), ``www.`` set aside."""

    host: str  # without a leading www.
    subdomain: str  # without a leading www.
    domain: str  # the registered name's label: "example" of a.example.co.uk
    suffix: str  # the public suffix: "co.uk"
    registered: str  # "example.co.uk"; the host itself for IP addresses and names under no suffix
    is_ip: bool
    private: bool  # ``host`` (without www.) is on a suffix of the list's private section: a hosting platform


@dataclass(frozen=True)
class Feature:
    """One hand-made URL feature. ``says`` is what a high value means, in words an analyst trusts (the reasons
    shown with a score); ``low_says`` the same for a low value where a low value raises the score. A feature
    with ``host`` is computed once per distinct host from its `HostParts`; without, it is the byte kernel's
    column of that name (`_SCAN_COLUMNS`) or a rule in `ParsedUrls.hand_features`."""

    name: str
    says: str
    flag: bool = False  # 0/1: a reason only when set
    low_says: str = ""
    host: Callable[[HostParts], float] | None = None


def rendered(label: str) -> str:
    """A name as a browser shows it: punycode (``xn--``) labels decoded; the name itself when it is not valid."""
    if "xn--" not in label:
        return label
    try:
        return label.encode("ascii").decode("idna")
    except (UnicodeError, ValueError):
        return label


@host_memo(1 << 16)
def imitated_brand(label: str) -> str:
    """The brand a domain label becomes (or holds) only once look-alike characters are read as the letters they
    imitate, "" if none: ``paypa1`` and ``xn--pple-43d`` (Cyrillic а) imitate, ``paypal`` itself does not."""
    label = rendered(label)
    plain = latin_reading(label)
    if not _ANY_BRAND_SKELETON.holds(_ascii_skeleton(plain)):  # most names: no brand's skeleton at all
        return ""
    # Only where a word of the name begins (``appie-id``, ``0utl00k``, ``wwwteiegram``, ``2018micr0s0ft``): inside
    # a word, ordinary names hold a brand's skeleton by chance (``happier`` apple, ``designingmall`` gmail,
    # ``billcloud`` icloud). Brands of 5+ letters only: a shorter skeleton ("live", "ebay") turns up by chance too.
    for word in _WORDS.split(plain):
        for start in (word, word.removeprefix("www"), word.lstrip("0123456789")):
            skeleton = _ascii_skeleton(start)
            found = next((s for s in _ANY_BRAND_SKELETON.words(skeleton) if skeleton.startswith(s)), "")
            if found and _BRAND_OF_SKELETON[found] not in label:
                return _BRAND_OF_SKELETON[found]
    return ""


_BRAND_SKELETONS = {b: _ascii_skeleton(b) for b in BRANDS}
_WORDS = re.compile(r"[^a-z0-9]+")
_ANY_BRAND_SKELETON = Literals(_BRAND_SKELETONS[b] for b in BRANDS if len(b) >= 5)
_BRAND_OF_SKELETON = {_BRAND_SKELETONS[b]: b for b in BRANDS if len(b) >= 5}
# so a skeleton found where a word begins names one brand: no two brands share one, none begins another's
assert len(_BRAND_OF_SKELETON) == sum(len(b) >= 5 for b in BRANDS)
assert not any(a != b and b.startswith(a) for a in _BRAND_OF_SKELETON for b in _BRAND_OF_SKELETON)


def latin_reading(label: str) -> str:
    """A name with each character that imitates a Latin letter read as that letter (``оkta``, Cyrillic о: ``okta``);
    letters of other scripts and Latin letters with marks (``münchen``) stay as they are."""
    if label.isascii():
        return label
    lookalikes = _latin_lookalikes()
    return "".join(lookalikes.get(c, c) for c in label)


@lru_cache(maxsize=1)
def _latin_lookalikes() -> dict[str, str]:
    """Every character confusable_homoglyphs reads as a look-alike of a Latin letter, mapped to that letter; any
    other character stands for itself. Built once, on the first name that is not ASCII (0.03 s here): asking the
    library character by character cost about half a millisecond a name, so a batch of non-ASCII hosts took about
    ten times the CPU of an ASCII one (benchmarks/request_cpu.py --hosts idn)."""
    from confusable_homoglyphs import confusables

    table = {char: _latin_lookalike(char, confusables) for char in confusables.confusables_data if len(char) == 1}
    return {char: plain for char, plain in table.items() if plain != char}


def _latin_lookalike(char: str, confusables) -> str:
    if char.isascii():
        return char
    found = confusables.is_confusable(char, preferred_aliases=["latin"], greedy=True) or []
    for entry in found:
        for glyph in entry["homoglyphs"]:
            if glyph["c"].isascii():
                return glyph["c"].lower()
    return char


def _brand_mixed_in(parts: HostParts) -> bool:
    # "paypal-secure" holds a brand; "paypal" itself does not, unless it is a brand holding another one
    if parts.domain in _BRAND_SET:  # a set: `in BRANDS` compared a new name with each of 100+ brands
        return parts.domain in _BRANDS_HOLDING_A_BRAND
    return BRAND_IN_NAME.holds(parts.domain)


# Every hand-made URL feature, in output order: names, reasons, flags and the featurizer version come from here.
FEATURES: tuple[Feature, ...] = (
    Feature("url_length", "long URL", low_says="very short URL"),
    Feature("host_length", "long host name", low_says="short host name"),
    Feature("path_length", "long path", low_says="no or short path"),
    Feature("query_length", "long query string"),
    Feature("host_dots", "many dots in the host name"),
    Feature("host_hyphens", "hyphens in the host name"),
    Feature("host_digit_ratio", "digits in the host name"),
    Feature("subdomain_depth", "deeply nested subdomains", host=lambda h: h.subdomain.count(".") + 1 if h.subdomain
            else 0),
    Feature("domain_label_length", "long registered name", low_says="short registered name",
            host=lambda h: len(h.domain.encode("utf-8", "replace"))),
    Feature("domain_entropy", "random-looking domain name", low_says="low-variety domain name",
            host=lambda h: _entropy(h.domain)),
    Feature("domain_consonant_run", "unpronounceable domain name", host=lambda h: _longest_consonant_run(h.domain)),
    Feature("host_is_ip", "host is an IP address", flag=True, host=lambda h: h.is_ip),
    Feature("has_port", "explicit port number", flag=True),
    Feature("has_userinfo", "user name or '@' before the host", flag=True),
    Feature("punycode_or_idn", "internationalised (punycode) host name", flag=True),
    Feature("non_ascii", "non-ASCII characters in the URL", flag=True),
    Feature("abused_tld", "top-level domain often abused", flag=True,
            host=lambda h: h.suffix.rsplit(".", 1)[-1] in ABUSED_TLDS),
    Feature("no_public_suffix", "host has no public suffix", flag=True, host=lambda h: not h.suffix and not h.is_ip),
    Feature("shortener", "URL shortener", flag=True, host=lambda h: h.host in SHORTENERS),
    Feature("path_depth", "deep path"),
    Feature("path_tokens", "many words in the path"),
    Feature("longest_token", "very long word in the URL"),
    Feature("query_params", "many query parameters"),
    Feature("has_fragment", "fragment in the URL", flag=True),
    Feature("percent_escapes", "percent-encoded characters"),
    Feature("digit_ratio", "many digits in the URL"),
    Feature("longest_digit_run", "long run of digits"),
    Feature("special_chars", "many special characters"),
    Feature("double_slash_in_path", "'//' redirect inside the path", flag=True),
    Feature("url_in_path", "another URL embedded in the path or query", flag=True),
    Feature("tld_in_subdomain", "a TLD such as '.com' inside the subdomain", flag=True,
            host=lambda h: _ANY_TLD_MARKER.search(h.subdomain) is not None),  # as `_host_rows_arrow` asks
    Feature("tld_in_path", "a TLD such as '.com' inside the path", flag=True),
    Feature("php_or_html_page", "script or HTML page in the path", flag=True),
    Feature("risky_extension", "executable or archive download", flag=True),
    Feature("suspicious_words", "words such as 'login' or 'verify'"),
    Feature("brand_outside_domain", "brand name in the subdomain or path of an unrelated domain", flag=True),
    Feature("brand_in_domain_with_extra", "brand name mixed into another domain name", flag=True,
            host=_brand_mixed_in),
    Feature("brand_lookalike", "domain name imitates a brand with look-alike characters", flag=True,
            host=lambda h: bool(imitated_brand(h.domain))),
    Feature("hosting_platform", "site on a platform where anyone can host pages", flag=True,
            host=lambda h: h.private),
    Feature("static_asset", "a page asset (style sheet, image, font), not a page", flag=True),
)
# Host facts the rules below read but the model does not see.
_HOST_HELPERS: dict[str, Callable[[HostParts], float]] = {
    "_brand_in_subdomain": lambda h: ANY_BRAND.holds(h.subdomain),
    # the registered name's label, not its suffix: a `.live` site is no more Microsoft's than a `.com` one
    "_brand_in_registered": lambda h: BRAND_IN_NAME.holds(h.domain),
}
URL_FEATURES: dict[str, str] = {f.name: f.says for f in FEATURES}
FLAG_FEATURES = frozenset(f.name for f in FEATURES if f.flag)
FEATURE_DESCRIPTIONS = {**URL_FEATURES, "host_ngram_score": "host name resembles phishing hosts",
                        "path_ngram_score": "path resembles phishing paths",
                        "name_familiarity": "site name made of words popular sites' names use",
                        "name_words": "site name made of dictionary words",
                        "subdomain_words": "subdomain made of dictionary words"}
LOW_VALUE_DESCRIPTIONS = {**{f.name: f.low_says for f in FEATURES if f.low_says},
                          "host_ngram_score": "host name unlike known legitimate hosts",
                          "name_familiarity": "site name unlike popular sites' names",
                          "name_words": "site name not made of dictionary words",
                          "subdomain_words": "subdomain not made of dictionary words"}
# Features valued `NOTHING_TO_READ` when there was nothing to read (an address, a name in another script, no
# subdomain): that value is no reason either way ("not made of dictionary words" would misread it)
UNREAD_VALUES = {"name_words": NOTHING_TO_READ, "subdomain_words": NOTHING_TO_READ}
_HOST_COLUMNS: dict[str, Callable[[HostParts], float]] = {
    **{f.name: f.host for f in FEATURES if f.host is not None}, **_HOST_HELPERS}

# Columns the byte kernel `_scan` writes, in its order (a name starting with "_" feeds a rule, not the model).
_SCAN_COLUMNS = ("url_length", "host_length", "path_length", "query_length", "host_dots", "host_hyphens",
                 "host_digit_ratio", "punycode_or_idn", "has_port", "has_userinfo", "non_ascii", "path_depth",
                 "path_tokens", "longest_token", "query_params", "has_fragment", "percent_escapes", "digit_ratio",
                 "longest_digit_run", "special_chars", "double_slash_in_path", "url_in_path", "tld_in_path",
                 "php_or_html_page", "risky_extension", "suspicious_words", "_brand_in_rest", "static_asset")
# Bump when a kernel or host computation changes meaning; the table's names and kinds are hashed in as well.
_COMPUTATION = "bytes-fnv1a-12"  # 3: PSL private section, one feature table; 4: assets; 5: look-alikes of 5+ letters;
# 6: a path of "/" alone is the empty path; 7: base64 return addresses to the URL's own site are cut out;
# 8: HTML's "&amp;" is read as "&"; 9: a cut return address takes the name that carries it;
# 10: a brand in the public suffix (".live") is not a brand in the registered name;
# 11: a short brand in a registered name only where a word begins ("groups" holds no "ups");
# 12: brands phished outside North America; a look-alike only where a word begins ("happier" imitates nothing)
# Recorded by fit and checked by transform: a model fitted with other feature definitions must not be scored.
FEATURIZER_VERSION = _COMPUTATION + "-" + hashlib.sha256(repr(
    [(f.name, f.flag, f.host is not None) for f in FEATURES] + [sorted(_HOST_HELPERS), _SCAN_COLUMNS]).encode()
).hexdigest()[:12]


class FeatureDefinitionError(ValueError):
    """A model fitted with other feature definitions (`FEATURIZER_VERSION`) than the code computes."""


# ---------------------------------------------------------------------------------------------------- tables


def _byte_table(members: bytes) -> np.ndarray:
    table = np.zeros(256, dtype=np.uint8)
    table[list(members)] = 1
    return table


def _suffix_table(suffixes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Suffixes packed into one byte array with offsets (numba takes arrays, not tuples of str)."""
    encoded = [s.encode() for s in suffixes]
    return (np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(),
            np.cumsum([0] + [len(s) for s in encoded]).astype(np.int64))


def _aho_corasick(patterns: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """A full DFA (state x byte -> state) matching every pattern at once, and per state the 128-bit set of
    the bits (``patterns``: pattern -> bit) of the patterns that end there (two uint64 words)."""
    goto: list[dict[int, int]] = [{}]
    out = [0]
    for pattern, bit in patterns.items():
        state = 0
        for ch in pattern.encode():
            if ch not in goto[state]:
                goto[state][ch] = len(goto)
                goto.append({})
                out.append(0)
            state = goto[state][ch]
        out[state] |= 1 << bit
    table = np.zeros((len(goto), 256), dtype=np.int32)
    fail = [0] * len(goto)
    queue = deque()
    for ch, state in goto[0].items():
        table[0, ch] = state
        queue.append(state)
    while queue:
        node = queue.popleft()
        for ch in range(256):
            child = goto[node].get(ch)
            if child is None:
                table[node, ch] = table[fail[node], ch]
                continue
            table[node, ch] = child
            fail[child] = table[fail[node], ch] if node else 0
            out[child] |= out[fail[child]]
            queue.append(child)
    masks = np.array([[o & (2**64 - 1), o >> 64] for o in out], dtype=np.uint64)
    return table, masks


# Pattern bits: one for every brand (the kernel asks only whether any brand is there, so the brand list can grow
# without widening it), one per suspicious word (the feature counts the distinct words), one per marker below.
_MARKERS = ("http", "www.", ".com", ".net", ".org", "xn--")
_PATTERN_BITS = {**dict.fromkeys(BRANDS, 0), **{p: 1 + i for i, p in enumerate((*SUSPICIOUS_WORDS, *_MARKERS))}}
assert len(_PATTERN_BITS) == len(BRANDS) + len(SUSPICIOUS_WORDS) + len(_MARKERS)  # no pattern in two lists
assert max(_PATTERN_BITS.values()) < 128


def _bit_mask(names: list[str] | tuple[str, ...]) -> np.ndarray:
    value = 0
    for name in names:
        value |= 1 << _PATTERN_BITS[name]
    return np.array([value & (2**64 - 1), value >> 64], dtype=np.uint64)


_AC_TABLE, _AC_OUT = _aho_corasick(_PATTERN_BITS)
_BRAND_BITS = _bit_mask(BRANDS)
_WORD_BITS = _bit_mask(SUSPICIOUS_WORDS)
_EMBEDDED_URL_BITS = _bit_mask(["http", "www."])
_TLD_BITS = _bit_mask([".com", ".net", ".org"])
_IDN_BITS = _bit_mask(["xn--"])
_IS_SEPARATOR = _byte_table(_TOKEN_SEPARATORS)
_IS_SPECIAL = _byte_table(_SPECIAL_CHARS)
_PAGE_SUFFIXES = _suffix_table(PAGE_EXTENSIONS)
_RISKY_SUFFIXES = _suffix_table(RISKY_EXTENSIONS)
_ASSET_SUFFIXES = _suffix_table(ASSET_EXTENSIONS)
_NON_WEB_SCHEMES = _suffix_table(tuple(f"{scheme}:" for scheme in NON_WEB_SCHEMES))
_NUMBERED_SCHEMES = _suffix_table(tuple(f"{scheme}:" for scheme in NUMBERED_SCHEMES))
# Bytes no host name, IP literal or bracketed IPv6 can hold (WHATWG's forbidden host code points).
_FORBIDDEN_IN_HOST = _byte_table(bytes([*range(0x21), 0x7F, *b'<>"{}|\\^`%']))


# ---------------------------------------------------------------------------------------------------- kernels


@njit(cache=True, inline="always")
def _lower(c):
    return c + 32 if 65 <= c <= 90 else c


@njit(cache=True, inline="always")
def _is_digit(c):
    return 48 <= c <= 57


@njit(cache=True, inline="always")
def _is_alpha(c):
    return 65 <= c <= 90 or 97 <= c <= 122


@njit(cache=True, inline="always")
def _is_scheme_char(c):
    return _is_alpha(c) or _is_digit(c) or c == 43 or c == 45 or c == 46  # + - .


@njit(cache=True)
def _ends_with_any(data, start, end, suffixes, suffix_offsets):
    for k in range(len(suffix_offsets) - 1):
        length = suffix_offsets[k + 1] - suffix_offsets[k]
        if end - start < length:
            continue
        same = True
        for j in range(length):
            if _lower(data[end - length + j]) != suffixes[suffix_offsets[k] + j]:
                same = False
                break
        if same:
            return True
    return False


@njit(cache=True)
def _popcount(x):
    count = 0
    while x:
        x &= x - np.uint64(1)
        count += 1
    return count


@njit(cache=True)
def _split(data, a, b, max_bytes):
    """Byte offsets of one URL's parts, mirroring ``urls.split_url``: (host start, host end, port start,
    port end, userinfo length, path start, path end, rest end, fragment length). ``rest`` is the path
    plus ``?query`` when the query is not empty."""
    while a < b and data[a] <= 32:
        a += 1
    while b > a and data[b - 1] <= 32:
        b -= 1
    b = min(b, a + max_bytes)
    p = a
    if p < b and _is_alpha(data[p]):  # scheme: [a-z][a-z0-9+.-]{0,15}: unless a port number follows
        q = p + 1
        while q < b and q - p < 16 and _is_scheme_char(data[q]):
            q += 1
        if q < b and data[q] == 58 and not (q + 1 < b and _is_digit(data[q + 1])):
            p = q + 1
            slashes = 0
            while slashes < 3 and p < b and data[p] == 47:
                p += 1
                slashes += 1
    while p < b and (data[p] == 47 or data[p] == 92):
        p += 1
    cut = p
    while cut < b and data[cut] != 47 and data[cut] != 63 and data[cut] != 35 and data[cut] != 92:
        cut += 1
    at = -1
    for j in range(p, cut):
        if data[j] == 64:
            at = j
    hs = p if at < 0 else at + 1
    userinfo = 0 if at < 0 else at - p
    he, port_s, port_e = cut, cut, cut
    if hs < cut and data[hs] == 91:  # [IPv6]:port
        close = -1
        for j in range(hs, cut):
            if data[j] == 93:
                close = j
                break
        if close >= 0:
            he = close + 1
            if he < cut and data[he] == 58:
                port_s = he + 1
    else:
        colons, colon = 0, -1
        for j in range(hs, cut):
            if data[j] == 58:
                colons += 1
                colon = j
        if colons == 1:
            he, port_s = colon, colon + 1
    while he > hs and data[he - 1] == 46:
        he -= 1
    hash_at = cut
    while hash_at < b and data[hash_at] != 35:
        hash_at += 1
    q_at = cut
    while q_at < hash_at and data[q_at] != 63:
        q_at += 1
    rest_end = hash_at if hash_at - q_at > 1 else q_at
    fragment = b - hash_at - 1 if hash_at < b else 0
    if rest_end == q_at == cut + 1 and data[cut] == 47:
        # "/" alone is the empty path (a browser asks for "/" either way); lists differ in writing it, so it
        # must not count (phishing lists write bare domains without it, homepages of sites often with it)
        cut = q_at
    return hs, he, port_s, port_e, userinfo, cut, q_at, rest_end, fragment


@njit(cache=True)
def _scan(data, offsets, max_bytes, ac_table, ac_out, is_sep, is_special, page_sfx, page_off, risky_sfx, risky_off,
          asset_sfx, asset_off, brand_bits, word_bits, url_bits, tld_bits, idn_bits, forbidden, max_url_bytes,
          non_web, non_web_off, numbered, numbered_off):
    """Split every URL and compute the byte-level features (``_SCAN_COLUMNS`` order). Also returns each
    URL's spans: host with ``www.`` (start, end), host without it (start), path start, path end, rest end;
    its error code (`_url_error_code`); and how its host stands in it (`ParsedUrls.host_standing`). One
    kernel call: a request of one URL paid more for each further NumPy or kernel call than for its work."""
    n = len(offsets) - 1
    out = np.zeros((n, 28), dtype=np.float32)
    spans = np.zeros((n, 6), dtype=np.int64)
    errors = np.zeros(n, dtype=np.int64)
    standing = np.empty(n, dtype=np.int8)
    for i in range(n):
        hs, he, port_s, port_e, userinfo, ps, pe, re_, fragment = _split(data, offsets[i], offsets[i + 1], max_bytes)
        errors[i] = _url_error_code(data, offsets[i], offsets[i + 1], hs, he, forbidden, max_url_bytes, non_web,
                                    non_web_off, numbered, numbered_off)
        first = offsets[i]
        while first < hs and data[first] <= 32:
            first += 1
        root = re_ == ps or (re_ - ps == 1 and data[ps] == 47)  # nothing after the host but '/'
        # a fragment after '/' (``45.67.89.13/#/office365/login``) is a page's; right after the address
        # (``185.199.108.153#github-pages``) it is how lists of addresses write a comment
        alone = first == hs and (fragment == 0 or ps == first or data[ps - 1] != 47)  # (a "/" path is cut: `_split`)
        standing[i] = (2 if alone else 1) if root else 0  # policy.ALONE / ROOT_PAGE / IN_PAGE
        hw = hs
        if he - hs >= 4 and _lower(data[hs]) == 119 and _lower(data[hs + 1]) == 119 and _lower(data[hs + 2]) == 119 \
                and data[hs + 3] == 46:
            hw = hs + 4
        spans[i, 0], spans[i, 1], spans[i, 2], spans[i, 3], spans[i, 4], spans[i, 5] = hs, he, hw, ps, pe, re_
        digits = host_digits = pct = special = dots = hyphens = non_ascii = 0
        token = longest_token = run = longest_run = path_tokens = slashes = double_slash = 0
        m_host0 = m_host1 = m_path0 = m_path1 = m_query0 = m_query1 = np.uint64(0)
        prev_sep = True
        for segment in range(3):
            s, e = (hw, he) if segment == 0 else (ps, pe) if segment == 1 else (pe, re_)
            state = 0
            m0 = m1 = np.uint64(0)
            for j in range(s, e):
                c = _lower(data[j])
                if c >= 128:
                    non_ascii = 1
                if _is_digit(c):
                    digits += 1
                    run += 1
                    longest_run = max(longest_run, run)
                else:
                    run = 0
                pct += c == 37
                special += is_special[c]
                if is_sep[c]:
                    token = 0
                else:
                    token += 1
                    longest_token = max(longest_token, token)
                    if segment > 0 and prev_sep:
                        path_tokens += 1
                if segment > 0:
                    prev_sep = is_sep[c] == 1
                if segment == 0:
                    dots += c == 46
                    hyphens += c == 45
                    host_digits += _is_digit(c)
                elif segment == 1 and c == 47:
                    slashes += 1
                    if j > s and data[j - 1] == 47:
                        double_slash = 1
                state = ac_table[state, c]
                m0 |= ac_out[state, 0]
                m1 |= ac_out[state, 1]
            if segment == 0:
                m_host0, m_host1 = m0, m1
            elif segment == 1:
                m_path0, m_path1 = m0, m1
            else:
                m_query0, m_query1 = m0, m1
        host_len = he - hw
        full_len = host_len + re_ - ps
        query_len = re_ - pe - 1 if re_ > pe else 0
        rest0, rest1 = m_path0 | m_query0, m_path1 | m_query1
        all0, all1 = m_host0 | rest0, m_host1 | rest1
        port_len = port_e - port_s
        default_port = (port_len == 2 and data[port_s] == 56 and data[port_s + 1] == 48) or (
            port_len == 3 and data[port_s] == 52 and data[port_s + 1] == 52 and data[port_s + 2] == 51)
        row = out[i]
        row[0] = full_len
        row[1] = host_len
        row[2] = pe - ps
        row[3] = query_len
        row[4] = dots
        row[5] = hyphens
        row[6] = host_digits / max(host_len, 1)
        row[7] = ((m_host0 & idn_bits[0]) | (m_host1 & idn_bits[1])) != 0 or _any_high(data, hw, he)
        row[8] = port_len > 0 and not default_port
        row[9] = userinfo > 0
        row[10] = non_ascii
        row[11] = slashes
        row[12] = path_tokens
        row[13] = longest_token
        row[14] = 0 if query_len == 0 else _count_byte(data, pe, re_, 38) + 1
        row[15] = fragment > 0
        row[16] = pct
        row[17] = digits / max(full_len, 1)
        row[18] = longest_run
        row[19] = special
        row[20] = double_slash
        row[21] = ((rest0 & url_bits[0]) | (rest1 & url_bits[1])) != 0
        row[22] = ((m_path0 & tld_bits[0]) | (m_path1 & tld_bits[1])) != 0
        row[23] = _ends_with_any(data, ps, pe, page_sfx, page_off)
        row[24] = _ends_with_any(data, ps, pe, risky_sfx, risky_off)
        row[25] = _popcount(all0 & word_bits[0]) + _popcount(all1 & word_bits[1])
        row[26] = ((rest0 & brand_bits[0]) | (rest1 & brand_bits[1])) != 0
        row[27] = _ends_with_any(data, ps, pe, asset_sfx, asset_off)
    return out, spans, errors, standing


@njit(cache=True)
def _scheme_is_any(data, start, end, schemes, scheme_offsets):
    """Where ``data[start:end]``'s text after its scheme begins if, after leading ASCII white space, it starts with
    one of the lower-case ``schemes`` (each ending in ":"), case-insensitively; -1 if not."""
    while start < end and (data[start] == 32 or 9 <= data[start] <= 13):
        start += 1
    colon = start
    while colon < end and colon - start < 24 and _is_scheme_char(data[colon]):
        colon += 1
    if colon in (start, end) or data[colon] != 58:
        return -1
    length = colon + 1 - start
    for k in range(len(scheme_offsets) - 1):
        if scheme_offsets[k + 1] - scheme_offsets[k] != length:
            continue
        same = True
        for j in range(length):
            if _lower(data[start + j]) != schemes[scheme_offsets[k] + j]:
                same = False
                break
        if same:
            return colon + 1
    return -1


@njit(cache=True, inline="always")
def _url_error_code(data, start, end, host_start, host_end, forbidden, max_bytes, non_web, non_web_off, numbered,
                    numbered_off):
    """The index in `URL_ERRORS` of why the URL ``data[start:end]`` (host at ``host_start:host_end``) cannot be
    scored: 4 blank (no host and only ASCII white space, what ``bytes.strip`` removes), 3 longer than
    ``max_bytes``, 5 a scheme of `NON_WEB_SCHEMES` (before a digit only one of `NUMBERED_SCHEMES`: ``tel:5551234``
    is no host and port, ``news:8080/`` is one), 2 no host, 1 a forbidden byte in the host, 6 an IPv4 network range
    (`_network_range`), 7 a file's hash (`_file_hash`), 0 none."""
    if end - start <= max_bytes:
        after = _scheme_is_any(data, start, end, non_web, non_web_off)
        if after >= 0 and (after == end or not _is_digit(data[after])
                           or _scheme_is_any(data, start, end, numbered, numbered_off) >= 0):
            return 5
    if host_start == host_end:
        for j in range(start, end):
            c = data[j]
            if not (c == 32 or 9 <= c <= 13):
                return 3 if end - start > max_bytes else 2
        return 4
    if end - start > max_bytes:
        return 3
    for j in range(host_start, host_end):
        # U+FFFD (EF BF BD) stands for bytes that were not UTF-8
        replaced = data[j] == 0xEF and j + 2 < host_end and data[j + 1] == 0xBF and data[j + 2] == 0xBD
        if forbidden[data[j]] or replaced:
            return 1
    while start < host_start and data[start] <= 32:  # a range or a hash alone, white space at the ends aside
        start += 1
    while end > host_end and data[end - 1] <= 32:
        end -= 1
    if _network_range(data, start, end, host_start, host_end):
        return 6
    return 7 if _file_hash(data, start, end, host_start, host_end) else 0


@njit(cache=True, inline="always")
def _file_hash(data, start, end, host_start, host_end):
    """Whether ``data[start:end]`` (white space at its ends taken off) is a file's MD5, SHA-1 or SHA-256 hash alone
    (32, 40 or 64 hexadecimal digits), which the parse reads as a host name with no dot."""
    if start != host_start or end != host_end or host_end - host_start not in (32, 40, 64):
        return False
    for j in range(host_start, host_end):
        c = data[j] | 32  # ASCII letters in lower case
        if not (48 <= c <= 57 or 97 <= c <= 102):
            return False
    return True


@njit(cache=True, inline="always")
def _network_range(data, start, end, host_start, host_end):
    """Whether ``data[start:end]`` (white space at its ends taken off) is an IPv4 network written in CIDR notation
    (``185.225.17.0/24``, as block lists write ranges): a dotted address alone, "/" and a prefix length of 0-32. Read
    as a URL it would be a page ``/24`` on the network's first address, and be scored as one."""
    if start != host_start or not 2 <= end - host_end <= 3 or data[host_end] != 47:
        return False
    dots = 0
    for j in range(host_start, host_end):
        if data[j] == 46:
            dots += 1
        elif not _is_digit(data[j]):
            return False
    length = 0
    for j in range(host_end + 1, end):
        if not _is_digit(data[j]):
            return False
        length = length * 10 + data[j] - 48
    return dots == 3 and length <= 32


@njit(cache=True)
def _any_high(data, start, end):
    return (data[start:end] >= 128).any()


@njit(cache=True)
def _count_byte(data, start, end, byte):
    count = 0
    for j in range(start, end):
        count += data[j] == byte
    return count


@njit(cache=True)
def _copy_lower(data, starts, ends):
    """The bytes of every span, ASCII-lower-cased, as one Arrow-style (offsets, data) pair."""
    offsets = np.zeros(len(starts) + 1, dtype=np.int64)
    for i in range(len(starts)):
        offsets[i + 1] = offsets[i] + ends[i] - starts[i]
    out = np.empty(offsets[-1], dtype=np.uint8)
    for i in range(len(starts)):
        base = offsets[i] - starts[i]
        for j in range(starts[i], ends[i]):
            out[base + j] = _lower(data[j])
    return offsets, out


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_U32 = np.uint64(32)


@njit(cache=True, inline="always")
def _bucket(h, shift):
    """Final mix of an FNV-1a hash; the top ``64 - shift`` bits pick the bucket."""
    h ^= h >> _U32
    h *= _MIX
    return np.int64(h >> shift)


@njit(cache=True)
def _ngram_indices(data, starts, ends, lo, hi, shift, indptr):
    """The hashed bucket of every character n-gram (lo <= n <= hi, ASCII-lower-cased) of each span,
    written in CSR order. Training builds its sparse matrix from these; `_ngram_sum` hashes identically."""
    indices = np.empty(indptr[-1], dtype=np.int32)
    k = 0
    for i in range(len(starts)):
        for p in range(starts[i], ends[i]):
            h = _FNV_OFFSET
            for n in range(hi):
                if p + n >= ends[i]:
                    break
                h = (h ^ np.uint64(_lower(data[p + n]))) * _FNV_PRIME
                if n + 1 >= lo:
                    indices[k] = _bucket(h, shift)
                    k += 1
    return indices


@njit(cache=True, inline="always")
def _ngram_sum(data, start, end, lo, hi, shift, weights, buckets):
    """The sum of ``weights`` over the n-gram buckets of one span, and the number of n-grams. The buckets are
    hashed into ``buckets`` (room for ``(hi - lo + 1)`` per byte of the span) first, then their weights added in
    the same order: the loads no longer wait in the hash loop, and the span took under half the time."""
    count = 0
    for p in range(start, end):
        h = _FNV_OFFSET
        for n in range(hi):
            if p + n >= end:
                break
            h = (h ^ np.uint64(_lower(data[p + n]))) * _FNV_PRIME
            if n + 1 >= lo:
                buckets[count] = _bucket(h, shift)
                count += 1
    total = 0.0
    for q in range(count):
        total += weights[buckets[q]]
    return total, count


@njit(cache=True, inline="always")
def _ngram_score(total, count, intercept):
    """A span's n-gram score from `_ngram_sum`: intercept + (sum of weights) / sqrt(n-grams)."""
    return intercept + total / np.sqrt(np.float64(max(count, 1)))


def ngram_counts(lengths: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """How many n-grams (lo <= n <= hi) a text of each length has."""
    return sum(np.maximum(lengths - n + 1, 0) for n in range(lo, hi + 1)).astype(np.int64)


@lru_cache(maxsize=8)
def hash_shift(n_features: int) -> int:
    """The right shift that maps a 64-bit n-gram hash onto ``n_features`` (a power of two) buckets."""
    bits = int(n_features).bit_length() - 1
    if n_features < 2 or 1 << bits != n_features:
        raise ValueError(f"n_features must be a power of two, not {n_features}")
    return 64 - bits


# ---------------------------------------------------------------------------------------------------- columns


def url_array(X) -> pa.LargeBinaryArray:
    """Any column of URLs (DataFrame with ``url``, Series, list, array; str, bytes, None, NaN, numbers) as
    one Arrow binary array of UTF-8 bytes; values that are not text are coerced with ``urls.to_text``."""
    values = X["url"] if isinstance(X, pd.DataFrame) else X
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array) and pa.types.is_large_binary(values.type):
        return pc.fill_null(values, b"")
    if isinstance(values, pa.Array) and (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return pc.fill_null(values.cast(pa.large_string()), "").view(pa.large_binary())
    if isinstance(values, np.ndarray):
        values = values.ravel()
    try:
        arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError, TypeError):
        # bytes, numbers, lone surrogates: coerce each value, replacing what is not valid UTF-8
        texts = [to_text(v).encode("utf-8", "replace") for v in values]
        return pa.array(texts, type=pa.large_binary())
    if isinstance(arr, pa.ChunkedArray):  # a pandas column backed by Arrow chunks (a Parquet file's row groups)
        arr = arr.combine_chunks()
    return (pc.fill_null(arr, "") if arr.null_count else arr).view(pa.large_binary())


# base64 of any text that starts with "http", in the standard or the URL-safe alphabet (Magento pads with ",")
_ENCODED_ADDRESS = re.compile(rb"aHR0c[A-Za-z0-9+/_-]*[=,]*")


def without_own_addresses(urls: pa.LargeBinaryArray) -> pa.LargeBinaryArray:
    """The URLs with each base64 token that encodes an address on the URL's own site cut out. Such a token is
    a return address (every Magento shop's sign-in link carries ``/referer/<its page in base64>/``, other
    sites ``?returnUrl=``): it repeats the URL's own site, yet its long random-looking run reads like a kit's
    token to the n-gram scorer (a Magento sign-in link scored 0.9998). A token for another site stays (an open
    redirect's target), as does the rest of the URL: cutting the token, with the name that carries it, gives a
    sender nothing that leaving it out would not. In the training data 8 phishing URLs and no legitimate one
    carry such a token."""
    if len(urls) <= FEW_TEXTS:
        rows = [i for i, url in enumerate(urls.to_pylist()) if b"aHR0c" in url]
    else:
        rows = np.flatnonzero(pc.match_substring(urls, "aHR0c").to_numpy(zero_copy_only=False)).tolist()
    cut = {i: new for i in rows if (new := _cut_own_addresses(urls[i].as_py())) != urls[i].as_py()}
    if not cut:
        return urls
    mask = np.zeros(len(urls), dtype=bool)
    mask[list(cut)] = True
    return pc.replace_with_mask(urls, pa.array(mask), pa.array(list(cut.values()), type=pa.large_binary()))


def unescaped_ampersands(urls: pa.LargeBinaryArray) -> pa.LargeBinaryArray:
    """The URLs with HTML's escaped ampersand ``&amp;`` read as the ``&`` a browser sends. Lists scraped
    from web pages and e-mails keep the escape: 2,943 of the sampled phishing rows carry it (PhishTank 7%,
    PhishStorm 6%, ebbu2017 5%) and, of the legitimate ones, Reddit's links (749, 3%) and 4 others, so the
    model learned ``&amp;`` as phishing: how a list was assembled, not what the site is."""
    if len(urls) <= FEW_TEXTS and not any(b"&amp;" in url for url in urls.to_pylist()):
        return urls  # Arrow's kernel costs a request of one URL more than this search
    return pc.replace_substring(urls, b"&amp;", b"&")


@lru_cache(maxsize=32)
def _bytes_pattern(pattern: str) -> re.Pattern[bytes]:
    """``pattern`` compiled for bytes, once (`re.compile`'s own cache is a few Python calls deeper)."""
    return re.compile(pattern.encode())


def _few_texts(X: Any) -> list[bytes] | None:
    """A list of a few ``str`` values (what the service scores) as `url_array`, `unescaped_ampersands` and
    `without_own_addresses` make them, as a list of bytes; None for anything else (more values, other types,
    text that is not valid UTF-8), which goes through Arrow."""
    if not isinstance(X, list | tuple) or len(X) > FEW_TEXTS or not all(type(v) is str for v in X):
        return None
    try:
        texts = [v.encode("utf-8").replace(b"&amp;", b"&") for v in X]  # as `unescaped_ampersands`
    except UnicodeEncodeError:  # a lone surrogate: `url_array` replaces it
        return None
    return [_cut_own_addresses(text) if b"aHR0c" in text else text for text in texts]


def _text_buffers(joined: bytes, texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """`_buffers` of ``texts`` (``joined``: them joined; read-only, as Arrow's buffers are: the kernels see the same
    array types)."""
    data = np.frombuffer(joined, dtype=np.uint8)
    offsets = np.array([0, *accumulate(map(len, texts))], dtype=np.int64)
    offsets.flags.writeable = False
    return data, offsets


def _cut_own_addresses(url: bytes) -> bytes:
    site = host_registered_domain(split_url(url).host)
    if not site:
        return url
    for found in set(_ENCODED_ADDRESS.findall(url)):
        for token in dict.fromkeys((found, found.rstrip(b"/"))):  # "/" is base64 and a path's separator
            if (decoded := _base64_text(token)) and host_registered_domain(split_url(decoded).host) == site:
                url = _cut_token(url, token)
                break
    return url


def _cut_token(url: bytes, token: bytes) -> bytes:
    """``url`` without ``token`` and the name that carries it: a path pair ``/referer/<token>/`` becomes ``/``,
    a query parameter ``returnUrl=<token>`` goes with its ``&``; a token anywhere else goes alone."""
    tok = re.escape(token)
    cut = re.sub(rb"/[^/?#&=]+/" + tok + rb"(?:/|(?=[?#]|$))", b"/", url)
    cut = re.sub(rb"(?<=[?&])[^&=?#/]*=" + tok + rb"(?:&|(?=#|$))", b"", cut)
    cut = cut.replace(token, b"")
    return re.sub(rb"[?&]+(?=#|$)", b"", cut) if cut != url else url


def _base64_text(token: bytes) -> str:
    """The UTF-8 text a base64 token (either alphabet, any padding) encodes, "" if it encodes none."""
    standard = token.rstrip(b"=,").replace(b"-", b"+").replace(b"_", b"/")
    try:
        return base64.b64decode(standard + b"=" * (-len(standard) % 4), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""


def _buffers(arr: pa.LargeBinaryArray) -> tuple[np.ndarray, np.ndarray]:
    _, offsets, data = arr.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return data, offsets


def _entropy(text: str) -> float:
    if not text:
        return 0.0
    n = len(text)
    # characters in order of first occurrence, as Counter holds them: the same terms summed in the same order, as
    # the kernel `_texture` does (computed, not memoised: a cache look-up per character cost more than the log)
    total = 0.0
    for count in map(text.count, dict.fromkeys(text)):
        p = count / n
        total += p * math.log2(p)
    return -total


# Runs of ASCII consonants: ``str.isalpha`` and not a lower-case vowel, for text that is all ASCII.
_ASCII_CONSONANT_RUN = re.compile(r"[A-Zb-df-hj-np-tv-z]+")


def _longest_consonant_run(text: str) -> int:
    if text.isascii():
        return max(map(len, _ASCII_CONSONANT_RUN.findall(text)), default=0)
    best = run = 0
    for ch in text:
        run = run + 1 if ch.isalpha() and ch not in _VOWELS else 0
        best = max(best, run)
    return best


# Whether any brand occurs: one pass instead of one `in` per brand.
ANY_BRAND = Literals(BRANDS)
# A brand in a registered name: a short one (five letters or fewer) only where a word of the name begins, since
# ordinary words hold them ("groups" "ups", "first" "irs", "delivery" "live", "purchase" "chase"), which made
# small sites' names brand-like and a brand in the path of such a site not "outside"; the brands' own compound
# names keep theirs ("steamcommunity", "ebayimg", "adobelogin"). A subdomain or path still matches anywhere.
BRAND_IN_NAME = Literals(b for b in BRANDS if len(b) > 5) | Literals((b for b in BRANDS if len(b) <= 5),
                                                                      before="[^a-z]")
# Brands that contain another brand: the only names equal to a brand that still hold a *different* brand.
_BRANDS_HOLDING_A_BRAND = frozenset(d for d in BRANDS if any(b in d and b != d for b in BRANDS))


def host_parts(host: str) -> HostParts:
    # one cached split for all of it (a new host once cost three look-ups of it)
    subdomain, domain, suffix, is_ip, private, registered = split_host_registered(host)
    subdomain = without_www(subdomain)
    if host.startswith("www."):  # the split of the host without it says whether that is on a hosting platform
        host = host[4:]
        private = on_private_suffix(host)
    return HostParts(host, subdomain, domain, suffix, registered, is_ip, private)


def host_row(host: str) -> tuple[float, ...]:
    """The per-host columns (`_HOST_COLUMNS` order) of a lower-cased host."""
    return _row_of(host_parts(host))


def _row_of(parts: HostParts) -> tuple[float, ...]:
    return tuple([float(compute(parts)) for compute in _HOST_FUNCTIONS])


_HOST_FUNCTIONS = tuple(_HOST_COLUMNS.values())
_host_cache: dict[bytes, bytes] = {}  # host -> its float32 row's bytes (untracked by the garbage collector)


def _host_table(hosts: list[bytes]) -> np.ndarray:
    """``host_row`` of each distinct host as float32 rows, cached per process (bounded)."""
    return _host_table_and_names(hosts)[0]


def _host_table_and_names(hosts: list[bytes]) -> tuple[np.ndarray, dict[bytes, HostNames]]:
    """`_host_table`, and the `HostNames` of each host it computed now (none when the batch split could not be
    made): `host_familiarity` and `NameWords.of_hosts` read the same split rather than making their own. The
    hosts not cached are computed together by `host_rows`, or one by one by `host_row` when there are only a few
    (a service request: the batch function's fixed costs are more than the per-host work)."""
    if len(_host_cache) + len(hosts) > MAX_HOST_CACHE:
        _host_cache.clear()
    cache = _host_cache
    missing = list(filterfalse(cache.__contains__, dict.fromkeys(hosts)))
    names: dict[bytes, HostNames] = {}
    if missing:
        texts = [h.decode("utf-8", "replace") for h in missing]
        if len(texts) <= FEW_HOSTS:  # float64 -> float32 either way (the same C cast): one NumPy call, not two
            parts = list(map(host_parts, texts))
            rows = np.array(list(map(_row_of, parts)), dtype=np.float32)
            names = dict(zip(missing, map(_NAMES_OF, parts), strict=True))
        else:
            found, splits = _host_rows_and_splits(texts)
            rows = found.astype(np.float32)
            if splits is not None:
                names = dict(zip(missing, zip(splits.domain.to_pylist(), splits.registered.to_pylist(),
                                              splits.subdomain.to_pylist(), splits.is_ip.tolist(), strict=True),
                                 strict=True))
        blob = rows.tobytes()
        width = 4 * len(_HOST_COLUMNS)
        cache.update(zip(missing, [blob[i: i + width] for i in range(0, len(blob), width)], strict=True))
        if len(missing) == len(hosts):  # all new and distinct: the rows are the table, in order (no copy)
            rows.flags.writeable = False  # as the cached table's: the kernels see one array type
            return rows, names
    # read-only (a view of the joined bytes): the kernels only read it, and a copy cost a request another call
    return np.frombuffer(b"".join(map(cache.__getitem__, hosts)), dtype=np.float32).reshape(
        len(hosts), len(_HOST_COLUMNS)), names


_NAMES_OF = attrgetter("domain", "registered", "subdomain", "is_ip")  # a `HostNames` of `HostParts`


def host_rows(hosts: list[str]) -> np.ndarray:
    """``host_row`` of many lower-cased hosts at once (float64, `_HOST_COLUMNS` order), equal value for value."""
    return _host_rows_and_splits(hosts)[0]


def _host_rows_and_splits(hosts: list[str]) -> tuple[np.ndarray, HostSplits | None]:
    """`host_rows`, and the hosts' public-suffix split when it was made for them all (its subdomains with ``www.`` set
    aside, as `host_parts` sets it aside). A few hosts (or text Arrow cannot hold) are computed one by one, without
    one; more in `_host_rows_arrow`."""
    arr = None
    if len(hosts) > FEW_TEXTS:
        try:
            arr = pa.array(hosts, type=pa.large_string())
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError):  # a lone surrogate
            arr = None
    if arr is None:
        return np.array([host_row(host) for host in hosts], dtype=np.float64).reshape(
            len(hosts), len(_HOST_COLUMNS)), None
    return _host_rows_arrow(arr)


def _host_rows_arrow(hosts: pa.LargeStringArray) -> tuple[np.ndarray, HostSplits]:
    """`_host_rows_and_splits` of an Arrow array of hosts: one public-suffix split per host (`split_host_arrays`),
    then each column over the whole array with Arrow kernels (entropy and consonant runs in a byte kernel, brand
    searches as one RE2 pass) instead of thirteen calls per host."""
    splits = split_host_arrays(hosts)
    domains, suffixes, is_ip = splits.domain, splits.suffix, splits.is_ip
    subs = _without_www(splits.subdomain)
    www = pc.starts_with(hosts, "www.")
    plain_hosts = pc.if_else(www, pc.utf8_slice_codeunits(hosts, 4), hosts)
    # the split of the host without www. (on_private_suffix(h.host)): the same split unless it had one
    hosting = splits.private.copy()
    www = www.to_numpy(zero_copy_only=False)
    if www.any():
        hosting[www] = split_host_arrays(plain_hosts.filter(pa.array(www))).private
    entropy, consonants = _domain_texture(domains)
    sub_lengths = _numpy(pc.binary_length(subs))
    labels = pc.split_pattern(suffixes, pattern=".")
    last_labels = labels.flatten().take(pa.array(np.asarray(labels.offsets)[1:] - 1))
    brand_in_name = rows_matching(BRAND_IN_NAME, domains)
    columns = {
        "subdomain_depth": _numpy(pc.count_substring(subs, ".")) + (sub_lengths > 0),
        "domain_label_length": _numpy(pc.binary_length(domains)),
        "domain_entropy": entropy,
        "domain_consonant_run": consonants,
        "host_is_ip": is_ip,
        "abused_tld": _numpy(pc.is_in(last_labels, value_set=_texts(ABUSED_TLDS))),
        "no_public_suffix": (_numpy(pc.binary_length(suffixes)) == 0) & ~is_ip,
        "shortener": _numpy(pc.is_in(plain_hosts, value_set=_texts(SHORTENERS))),
        "tld_in_subdomain": rows_matching(_ANY_TLD_MARKER, subs),
        "brand_in_domain_with_extra": np.where(_numpy(pc.is_in(domains, value_set=_texts(_BRAND_SET))),
                                               _numpy(pc.is_in(domains, value_set=_texts(_BRANDS_HOLDING_A_BRAND))),
                                               brand_in_name),
        "brand_lookalike": _imitating_rows(domains),
        "hosting_platform": hosting,
        "_brand_in_subdomain": rows_matching(ANY_BRAND, subs),
        "_brand_in_registered": brand_in_name,
    }
    assert list(columns) == list(_HOST_COLUMNS)
    out = np.empty((len(hosts), len(columns)), dtype=np.float64)
    for j, values in enumerate(columns.values()):
        out[:, j] = values
    return out, splits._replace(subdomain=subs)


def _without_www(subdomains: pa.LargeStringArray) -> pa.LargeStringArray:
    """Each subdomain without a leading ``www.`` (``www`` alone: ""), as `host_parts` sets it aside."""
    return pc.if_else(pc.starts_with(subdomains, "www."), pc.utf8_slice_codeunits(subdomains, 4),
                      pc.if_else(pc.equal(subdomains, "www"), "", subdomains))


def _numpy(values: pa.Array) -> np.ndarray:
    return values.to_numpy(zero_copy_only=False)


def _texts(values: frozenset[str]) -> pa.LargeStringArray:
    return pa.array(sorted(values), type=pa.large_string())


_BRAND_SET = frozenset(BRANDS)
_ANY_TLD_MARKER = re.compile("|".join(map(re.escape, TLD_MARKERS)))
FEW_TEXTS = 64  # up to this many, `rows_matching` searches with ``re`` (cheaper than Arrow's regex compile)
FEW_HOSTS = 4  # up to this many new hosts of a batch take the one-host `host_row` in `_host_table`


def rows_matching(pattern: re.Pattern | Literals, texts: list[str] | pa.Array) -> np.ndarray:
    """Whether ``pattern`` occurs in each text (a list or an Arrow string array, no nulls). `Literals` scan the
    texts joined. A regular expression (one RE2 and ``re`` read alike) runs as one RE2 pass through Arrow, ten
    times faster than ``pattern.search`` one text at a time, except over a few texts: Arrow compiles the
    pattern on every call (about 40 us for a short one, most of a millisecond for the brand names, hence
    `Literals` for those)."""
    if isinstance(pattern, Literals):
        return pattern.found(texts.to_pylist() if isinstance(texts, pa.Array) else texts)
    if len(texts) <= FEW_TEXTS:
        texts = texts.to_pylist() if isinstance(texts, pa.Array) else texts
        return np.fromiter((pattern.search(text) is not None for text in texts), dtype=bool, count=len(texts))
    arr = texts if isinstance(texts, pa.Array) else pa.array(texts, type=pa.large_string())
    return pc.match_substring_regex(arr, pattern.pattern).to_numpy(zero_copy_only=False)


def may_imitate(domains: list[str] | pa.Array) -> np.ndarray:
    """False for each domain label `imitated_brand` surely finds nothing in: a plain ASCII label whose look-alike
    skeleton holds no brand's. True for the rest: punycode or non-ASCII labels, and the few that hold a brand's
    skeleton. ``domains``: a list or an Arrow string array."""
    if len(domains) <= FEW_TEXTS:
        domains = domains.to_pylist() if isinstance(domains, pa.Array) else domains
        return np.array([may_imitate_one(d) for d in domains], dtype=bool)
    arr = domains if isinstance(domains, pa.Array) else pa.array(domains, type=pa.large_string())
    plain = _numpy(pc.string_is_ascii(arr)) & ~_numpy(pc.match_substring(arr, "xn--"))
    offsets, data = _skeletons(*_buffers(arr.view(pa.large_binary()))[::-1], *_SKELETON_TABLES)
    skeletons = pa.LargeStringArray.from_buffers(len(arr), pa.py_buffer(offsets), pa.py_buffer(data))
    return ~plain | rows_matching(_ANY_BRAND_SKELETON, skeletons)


def may_imitate_one(domain: str) -> bool:
    """`may_imitate` of one domain label."""
    return not (domain.isascii() and "xn--" not in domain) or \
        _ANY_BRAND_SKELETON.holds(_ascii_skeleton(domain))


# `_ascii_skeleton` as tables for `_skeletons`: the two-letter look-alikes' bytes and letters, a byte map
_SKELETON_TABLES = (np.array([[ord(a[0]), ord(a[1])] for a, _ in _MULTI_LOOKALIKES], dtype=np.uint8),
                    np.array([ord(b) for _, b in _MULTI_LOOKALIKES], dtype=np.uint8),
                    np.array([ord(chr(c).translate(_SINGLE_LOOKALIKES)) for c in range(256)], dtype=np.uint8))
assert all(len(a) == 2 for a, _ in _MULTI_LOOKALIKES)
# one left-to-right pass equals `_ascii_skeleton`'s replacements one after another: no two two-letter look-alikes
# share a letter, and none becomes a letter of one (the single letters are mapped last, as there)
assert sum(len(set(a)) for a, _ in _MULTI_LOOKALIKES) == len({c for a, _ in _MULTI_LOOKALIKES for c in a})
assert not {b for _, b in _MULTI_LOOKALIKES} & {c for a, _ in _MULTI_LOOKALIKES for c in a}


@njit(cache=True)
def _skeletons(offsets, data, pairs, letters, single):
    """(offsets, bytes) of `_ascii_skeleton` of each ASCII text (other bytes are kept as they are)."""
    n = len(offsets) - 1
    out = np.empty(len(data), dtype=np.uint8)
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    at = 0
    for i in range(n):
        j, end = offsets[i], offsets[i + 1]
        while j < end:
            c = data[j]
            replaced = False
            if j + 1 < end:
                for k in range(len(pairs)):
                    if c == pairs[k, 0] and data[j + 1] == pairs[k, 1]:
                        out[at] = letters[k]
                        at, j, replaced = at + 1, j + 2, True
                        break
            if not replaced:
                out[at] = single[c]
                at, j = at + 1, j + 1
        out_offsets[i + 1] = at
    return out_offsets, out[:at]


def _imitating_rows(domains: list[str] | pa.Array) -> np.ndarray:
    """``bool(imitated_brand(d))`` of each domain label, `imitated_brand` asked only where `may_imitate`."""
    found = np.zeros(len(domains), dtype=bool)
    maybe = np.flatnonzero(may_imitate(domains))
    if len(maybe):
        texts = domains.take(pa.array(maybe)).to_pylist() if isinstance(domains, pa.Array) else \
            [domains[i] for i in maybe]
        found[maybe] = [bool(imitated_brand(d)) for d in texts]
    return found


def _domain_texture(domains: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """`_entropy` and `_longest_consonant_run` of each domain label: a byte kernel for ASCII labels (the same
    terms summed in the same order), the Python functions for the others."""
    data, offsets = _buffers(domains.view(pa.large_binary()))
    entropy, runs, ascii_only = _texture(data, offsets)
    for i in np.flatnonzero(~ascii_only):
        label = domains[int(i)].as_py()
        entropy[i], runs[i] = _entropy(label), _longest_consonant_run(label)
    return entropy, runs


@njit(cache=True)
def _texture(data, offsets):
    """Per ASCII text: Shannon entropy of its characters (terms in order of first occurrence, as `_entropy`
    sums them) and its longest consonant run; and whether it is ASCII (else both are left 0)."""
    n = len(offsets) - 1
    entropy = np.zeros(n, dtype=np.float64)
    runs = np.zeros(n, dtype=np.float64)
    ascii_only = np.ones(n, dtype=np.bool_)
    counts = np.zeros(256, dtype=np.int64)
    order = np.zeros(256, dtype=np.int64)
    for i in range(n):
        start, end = offsets[i], offsets[i + 1]
        distinct = best = run = 0
        for j in range(start, end):
            c = data[j]
            if c >= 128:
                ascii_only[i] = False
                break
            if counts[c] == 0:
                order[distinct] = c
                distinct += 1
            counts[c] += 1
            # [A-Zb-df-hj-np-tv-z]: an ASCII letter that is not a lower-case vowel
            if (65 <= c <= 90) or (97 <= c <= 122 and c != 97 and c != 101 and c != 105 and c != 111 and c != 117):
                run += 1
                best = max(best, run)
            else:
                run = 0
        total = 0.0
        length = end - start
        for q in range(distinct):
            c = order[q]
            p = counts[c] / length
            total += p * math.log2(p)
            counts[c] = 0
        if ascii_only[i] and length > 0:
            entropy[i] = -total
            runs[i] = best
    return entropy, runs, ascii_only


# `_scan`'s arguments after the URLs, as one tuple (built once, not per call)
_SCAN_TABLES = (MAX_URL_BYTES, _AC_TABLE, _AC_OUT, _IS_SEPARATOR, _IS_SPECIAL, *_PAGE_SUFFIXES, *_RISKY_SUFFIXES,
                *_ASSET_SUFFIXES, _BRAND_BITS, _WORD_BITS, _EMBEDDED_URL_BITS, _TLD_BITS, _IDN_BITS, _FORBIDDEN_IN_HOST,
                MAX_URL_CHARS, *_NON_WEB_SCHEMES, *_NUMBERED_SCHEMES)


class ParsedUrls:
    """One batch of URLs as UTF-8 bytes with every URL's part offsets: the single input of all features."""

    def __init__(self, X):
        self._texts = _few_texts(X)
        self._array: pa.LargeBinaryArray | None = None
        self._joined: bytes | None = None  # `data` as bytes, when it was made from them
        if self._texts is None:
            self._array = without_own_addresses(unescaped_ampersands(url_array(X)))
            self.data, self.offsets = _buffers(self._array)
        else:  # a few texts (a service request): the same bytes without Arrow's per-call costs
            self._joined = b"".join(self._texts)
            self.data, self.offsets = _text_buffers(self._joined, self._texts)
        self.scan, self.spans, self.error_codes, self._standing = _scan(self.data, self.offsets, *_SCAN_TABLES)
        self._hosts: pa.DictionaryArray | None = None
        self._host_index: tuple[list[bytes], np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def array(self) -> pa.LargeBinaryArray:
        """The URLs' bytes (own addresses cut out) as one Arrow array."""
        if self._array is None:
            self._array = pa.array(self._texts, type=pa.large_binary())
        return self._array

    def texts(self) -> list[bytes]:
        """`array` as a list of bytes."""
        if self._texts is None:
            self._texts = self.array.to_pylist()
        return self._texts

    def hosts(self) -> pa.DictionaryArray:
        """Lower-cased hosts (with any ``www.``), dictionary-encoded: each distinct host once (computed once
        per batch: the features and the decision policy both read them)."""
        if self._hosts is None:
            offsets, data = _copy_lower(self.data, self.spans[:, 0], self.spans[:, 1])
            arr = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(self), [None, pa.py_buffer(offsets),
                                                                                  pa.py_buffer(data)])
            self._hosts = arr.dictionary_encode()
        return self._hosts

    def host_index(self) -> tuple[list[bytes], np.ndarray]:
        """`hosts` as plain values: the distinct hosts in order of first appearance, and each row's index into
        them. A few rows are encoded with a dict: Arrow's dictionary encoding and conversions cost a request of
        one URL more than the rest of its host handling."""
        if self._host_index is None:
            if self._hosts is None and len(self) <= FEW_TEXTS:
                # ``bytes.lower`` folds ASCII letters only, as `_copy_lower` does
                raw = self._joined if self._joined is not None else self.data
                ids: dict[bytes, int] = {}
                rows = [ids.setdefault(bytes(raw[a:b]).lower(), len(ids)) for a, b in self.spans[:, :2].tolist()]
                self._host_index = list(ids), np.array(rows, dtype=np.int32)
            else:
                hosts = self.hosts()
                self._host_index = hosts.dictionary.to_pylist(), hosts.indices.to_numpy(zero_copy_only=False)
        return self._host_index

    def host_spans(self) -> tuple[np.ndarray, np.ndarray]:
        return self.spans[:, _HOST_SPAN[0]], self.spans[:, _HOST_SPAN[1]]

    def rest_spans(self) -> tuple[np.ndarray, np.ndarray]:
        return self.spans[:, _REST_SPAN[0]], self.spans[:, _REST_SPAN[1]]

    def containing(self, pattern: str) -> np.ndarray | list[int]:
        """Indices of the rows whose bytes match a regular expression (RE2, through Arrow; a few rows with ``re``,
        as `rows_matching` does, so ``pattern`` must mean the same to both: ASCII literal alternatives). A few
        rows get a list: NumPy's call costs a request of one URL more than the search."""
        if len(self) <= FEW_TEXTS:
            found = _bytes_pattern(pattern)
            return [i for i, url in enumerate(self.texts()) if found.search(url) is not None]
        found = pc.match_substring_regex(self.array, pattern)
        return np.flatnonzero((found.fill_null(False) if found.null_count else found).to_numpy(zero_copy_only=False))

    def with_userinfo(self) -> np.ndarray | list[int]:
        """Indices of the rows with a user name or '@' before the host (a list for a few rows, as `containing`)."""
        if len(self) <= FEW_TEXTS:
            return [i for i, flag in enumerate(self.scan[:, _USERINFO].tolist()) if flag > 0]
        return np.flatnonzero(self.scan[:, _USERINFO] > 0)

    def host_standing(self) -> np.ndarray:
        """How each row's host stands in it (int8), for rule 5 of the decision policy: 2 written alone, as lists
        of addresses write it (nothing before it: no scheme, ``//`` or user; nothing after it but ``/``, or a
        ``#comment`` without it), 1 the root page of a URL (``http://8.8.8.8/``, ``8.8.8.8/#/x``), 0 a URL with a path
        or query. ``8.8.8.8`` asks
        about an address, which only feeds can judge; ``http://8.8.8.8/`` is a web page on it."""
        return self._standing

    def hand_features(self) -> np.ndarray:
        names, rows = self.host_index()
        return _assemble(self.scan, _host_table(names), rows, *_FROM_SCAN, *_FROM_HOST, *_BRAND_COLUMNS)


@njit(cache=True)
def _assemble(scan, table, rows, scan_to, scan_from, host_to, host_from, brand_outside, brand_in_rest, brand_in_sub,
              brand_in_registered):
    """The hand-made features: each row's scan columns and its host's row of ``table`` in their places, and the
    rule over both, a brand outside the registered domain (one call: the NumPy indexing it replaces cost a
    request of one URL more than its few numbers)."""
    out = np.empty((len(rows), len(scan_to) + len(host_to) + 1), dtype=np.float32)
    for i in range(len(rows)):
        _assemble_row(out[i], scan[i], table[rows[i]], scan_to, scan_from, host_to, host_from, brand_outside,
                      brand_in_rest, brand_in_sub, brand_in_registered)
    return out


@njit(cache=True, inline="always")
def _assemble_row(out, scan, host, scan_to, scan_from, host_to, host_from, brand_outside, brand_in_rest, brand_in_sub,
                  brand_in_registered):
    """One row of `_assemble`: ``out`` (the row's features) from its ``scan`` row and its ``host``'s table row."""
    for k in range(len(scan_to)):
        out[scan_to[k]] = scan[scan_from[k]]
    for k in range(len(host_to)):
        out[host_to[k]] = host[host_from[k]]
    out[brand_outside] = 1.0 if (host[brand_in_sub] + scan[brand_in_rest] > 0 and host[brand_in_registered] == 0) \
        else 0.0


def url_features(parsed: ParsedUrls, ngram_range: tuple[int, int], n_features: int,
                 weights: list[tuple[np.ndarray, float]], familiarity: NameFamiliarity | None = None,
                 words: NameWords | None = None) -> np.ndarray:
    """The hand-made features, then the host and path n-gram scores when ``weights`` has them: a linear model's
    decision function on hashed n-gram counts scaled by 1/sqrt(count), i.e. intercept + (sum of the n-grams'
    weights) / sqrt(count), computed without building the sparse matrix; then, with ``familiarity``, the name's
    familiarity (`NameFamiliarity`), and with ``words``, the share of the registered name and of the subdomain
    that are words (`NameWords`). What the URL model takes, in one kernel call (a request of one URL paid more
    for a dozen NumPy calls than for the features)."""
    if not weights:
        return parsed.hand_features()
    names, rows = parsed.host_index()
    table, new_names = _host_table_and_names(names)
    (host_weights, host_intercept), (rest_weights, rest_intercept) = weights
    fitted = [] if familiarity is None else [host_familiarity(names, table, familiarity, new_names)[:, None]]
    if words is not None:
        fitted.append(words.of_hosts(names, new_names))
    by_host = np.hstack(fitted) if fitted else np.zeros((len(names), 0), dtype=np.float32)
    return _url_features(parsed.scan, table, rows, parsed.spans, parsed.data, *_URL_FEATURE_TABLES, *ngram_range,
                         np.uint64(hash_shift(n_features)),
                         host_weights, float(host_intercept), rest_weights, float(rest_intercept), by_host)


def host_familiarity(hosts: list[bytes], table: np.ndarray, familiarity: NameFamiliarity,
                     names: Mapping[bytes, HostNames] | None = None) -> np.ndarray:
    """`NameFamiliarity.of_names` of distinct lower-cased hosts, with their `_host_table` rows (which say which
    hosts are addresses, mix a brand in or imitate one); each host computed once per ``familiarity`` (bounded; read
    into a list first, so a request in another thread emptying it loses nothing). ``names``: the `HostNames` of hosts
    `_host_table_and_names` split already; the others are split here."""
    known = familiarity.by_host
    values = list(map(known.get, hosts))
    missing = [i for i, value in enumerate(values) if value is None]
    if missing:
        split = [names.get(hosts[i]) for i in missing] if names else [None]
        if all(split):
            labels, registered = map(list, list(zip(*split, strict=True))[:2])
        else:
            splits = split_host_columns([hosts[i].decode("utf-8", "replace") for i in missing])
            labels, registered = splits.domain, splits.registered
        if len(missing) <= FEW_HOSTS:  # a service request: Python scalars cost less than NumPy's calls
            # the deceptive columns are flags (0 or 1): any set is any above 0
            found = [familiarity.of_name(label, site, any(_DECEPTIVE_OF(table[i].tolist()))
                                         or _ANY_SUSPICIOUS_WORD.holds(label))
                     for i, label, site in zip(missing, labels, registered, strict=True)]
        else:
            deceptive = (table[missing][:, _DECEPTIVE_HOST] > 0).any(axis=1).tolist()
            suspicious = _ANY_SUSPICIOUS_WORD.found(labels).tolist()
            found = familiarity.of_names(labels, registered,
                                         [a or b for a, b in zip(deceptive, suspicious, strict=True)]).tolist()
        for i, value in zip(missing, found, strict=True):
            values[i] = value
        if len(missing) <= MAX_HOST_CACHE:
            if len(known) + len(missing) > MAX_HOST_CACHE:
                known.clear()
            known.update(zip([hosts[i] for i in missing], found, strict=True))
    return np.array(values, dtype=np.float32)


def name_familiarity(parsed: ParsedUrls, familiarity: NameFamiliarity) -> np.ndarray:
    """Each row's `host_familiarity` (the last column `url_features` gives with ``familiarity``)."""
    names, rows = parsed.host_index()
    return host_familiarity(names, _host_table(names), familiarity)[rows]


@njit(cache=True)
def _url_features(scan, table, rows, spans, data, scan_to, scan_from, host_to, host_from, brand_outside, brand_in_rest,
                  brand_in_sub, brand_in_registered, host_start, host_end, rest_start, rest_end, lo, hi, shift,
                  host_weights, host_intercept, rest_weights, rest_intercept, by_host):
    """`_assemble`, the n-gram score of each row's `ParsedUrls.host_spans` and `rest_spans`, and its host's row of
    ``by_host`` (the fitted per-host columns: familiarity, words) into one matrix, with the same helpers."""
    hand = len(scan_to) + len(host_to) + 1
    fitted = by_host.shape[1]
    out = np.empty((len(rows), hand + 2 + fitted), dtype=np.float32)
    for i in range(len(rows)):
        _assemble_row(out[i], scan[i], table[rows[i]], scan_to, scan_from, host_to, host_from, brand_outside,
                      brand_in_rest, brand_in_sub, brand_in_registered)
        for k in range(fitted):
            out[i, hand + 2 + k] = by_host[rows[i], k]
    # one n-gram column after the other: a batch's lookups stay in one 8 MB weight table at a time (row by row,
    # alternating the two tables, took twice as long)
    longest = 0
    for i in range(len(rows)):
        longest = max(longest, spans[i, host_end] - spans[i, host_start], spans[i, rest_end] - spans[i, rest_start])
    buckets = np.empty(max(longest, 0) * max(hi - lo + 1, 0) + 1, dtype=np.int64)
    for i in range(len(rows)):
        total, count = _ngram_sum(data, spans[i, host_start], spans[i, host_end], lo, hi, shift, host_weights,
                                  buckets)
        out[i, hand] = _ngram_score(total, count, host_intercept)
    for i in range(len(rows)):
        total, count = _ngram_sum(data, spans[i, rest_start], spans[i, rest_end], lo, hi, shift, rest_weights,
                                  buckets)
        out[i, hand + 1] = _ngram_score(total, count, rest_intercept)
    return out


# Where each hand-made feature comes from: (output columns, source columns) of the scan and the host table.
_FEATURE_INDEX = {f.name: i for i, f in enumerate(FEATURES)}
_HOST_COLUMN_INDEX = {name: i for i, name in enumerate(_HOST_COLUMNS)}
_FROM_SCAN = tuple(np.array(x, dtype=np.intp) for x in zip(*[(_FEATURE_INDEX[c], j) for j, c in
                                                               enumerate(_SCAN_COLUMNS) if c in _FEATURE_INDEX]))
_FROM_HOST = tuple(np.array(x, dtype=np.intp) for x in zip(*[(_FEATURE_INDEX[c], j) for j, c in
                                                               enumerate(_HOST_COLUMNS) if c in _FEATURE_INDEX]))
_USERINFO = _SCAN_COLUMNS.index("has_userinfo")
_HOST_SPAN, _REST_SPAN = (2, 1), (3, 5)  # the columns of `_scan`'s spans: host without www. (start, end); path + query
_BRAND_OUTSIDE, _BRAND_IN_REST = _FEATURE_INDEX["brand_outside_domain"], _SCAN_COLUMNS.index("_brand_in_rest")
_BRAND_COLUMNS = (_BRAND_OUTSIDE, _BRAND_IN_REST, _HOST_COLUMN_INDEX["_brand_in_subdomain"],
                  _HOST_COLUMN_INDEX["_brand_in_registered"])
_URL_FEATURE_TABLES = (*_FROM_SCAN, *_FROM_HOST, *_BRAND_COLUMNS, *_HOST_SPAN, *_REST_SPAN)  # `_url_features`' own
# hosts whose name earns no familiarity: addresses, brands mixed in, look-alikes, and names holding a suspicious word
_ANY_SUSPICIOUS_WORD = Literals(SUSPICIOUS_WORDS)
_DECEPTIVE_HOST = [_HOST_COLUMN_INDEX[c] for c in ("host_is_ip", "brand_in_domain_with_extra", "brand_lookalike")]
_DECEPTIVE_OF = itemgetter(*_DECEPTIVE_HOST)  # a host row's deceptive flags, as a tuple
assert all(FEATURES[_FEATURE_INDEX[c]].flag for c in ("host_is_ip", "brand_in_domain_with_extra", "brand_lookalike"))
assert len(_FROM_SCAN[0]) + len(_FROM_HOST[0]) + 1 == len(FEATURES)  # every feature has exactly one source


