"""One module for credentials in text. Every URI or DSN that reaches a message, a warning or a log line goes
through `redact`, which hides URI user-info (``scheme://user:password@host`` becomes ``scheme://***@host``), the
value of libpq ``password=`` keywords and of query parameters that carry a credential (``?api_key=``). A URL scored
and then logged, stored or reported (the decision log, analyst feedback, `assess`'s report) goes through
`mask_credentials`: `mask_password` hides only the password (``scheme://user:***@host``), as a user name is evidence
there (``http://www.paypal.com@evil.top/`` hides the real host), and `mask_secret_parameters` the values of query,
fragment and path parameters named as a credential (``?access_token=***``, ``;jsessionid=***``, and in a URL passed
percent-encoded as a value, ``?next=https%3A%2F%2Fx%2Fcb%3Fcode%3D***``, or as a path segment), by exact names rather
than `redact`'s endings, as the rest of such a URL is evidence too. A URL a mail gateway or a search engine wrote into
a value in another encoding (base64, Proofpoint's escapes) is read, masked and written back in that encoding, so the
logged link still leads to the page, its credentials masked.

User-info runs to the *last* ``@`` of the URI, so a password holding an unescaped ``@`` or ``/`` does not leak
its tail. Text before that ``@`` is left alone only when it holds a ``/`` and no ``:`` (``https://site/a@b``: a
path, not a password); a port before a path's ``@`` is redacted too (a harmless over-redaction). `mask_password`
spares that port (``http://host:8080/login?email=a@b.example`` is unchanged): in a logged URL it is evidence too.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from itertools import chain
from urllib.parse import quote, unquote

_URI_WITH_AT = re.compile(r"\b(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^\s@]*(?:[\t@][^\s@]*)*)@")


_PASSWORD_KEYWORD = re.compile(r"(?P<key>\bpassword\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


# Schemes whose ``name:text@host`` is an address, not a user's password: a browser hands them to another program
# (``mailto:bob@example.org``, ``sip:``, ``xmpp:``) or runs them (``javascript:``). Before any other word, a ':'
# and an '@' without "//" are user-info, as an address bar reads a typed ``alice:pw@bank.example/login``.
_OPAQUE_SCHEMES = ("mailto", "news", "nntp", "sip", "sips", "xmpp", "im", "pres", "tel", "sms", "mms", "fax", "callto",
                   "skype", "acct", "urn", "cid", "mid", "geo", "magnet", "javascript", "vbscript", "data", "about",
                   "blob")
_SCHEMELESS = rf"(?!(?i:{'|'.join(_OPAQUE_SCHEMES)}):)(?=[^\s:/?#\\\[@]+:)"  # a user name first, then ':'

# `user:password@` after a scheme and its slashes (browsers also take `http:\\` and `http:u:p@h`), a leading
# `//` or nothing (`_SCHEMELESS`); the user name holds none of the characters that end an authority or open an
# IPv6 address, and the "password" is not a port followed by a path. Only ever matched against text up to the
# last `@` of a run without blanks (`_mask_run`), where the greedy `\S+@` succeeds at once: linear time on any
# input.
_USER_PASSWORD = re.compile(
    r"(?P<user>(?:\b(?i:https?|wss?|ftp):[/\\]*|:[/\\]+|^[/\\]{2,}|^" + _SCHEMELESS + r")[^\s:/?#\\\[@]*)"
    r":(?!\d*[/?#\\])\S+@")

_RUN_WITH_AT = re.compile(r"(?<!\S)\S*@\S*")  # a whole run, tried once from its start


def _hide(match: re.Match) -> str:
    userinfo = match["userinfo"]
    if "/" in userinfo and ":" not in userinfo:
        return match[0]
    return f"{match['scheme']}***@"


# Query parameters that carry a credential in the APIs a source may page through (``?api_key=``, ``&access_token=``,
# an S3 presigned URL's ``X-Amz-Signature``): a fetch log or an error quoting the URL must not hold them.
# Any name ending in one of the words counts (``accessToken``, ``sslpassword``; ``monkey`` too: over-redacting a
# message costs nothing).
_SECRET_PARAMETER = re.compile(r"(?P<key>[?&;][a-z0-9_.-]*?(?:key|token|secret|password|passwd|signature|sig|"
                               r"credential|auth)=)[^&#;\s]+", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with URI user-info, DSN passwords and credentials in query parameters replaced by ``***``."""
    text = _PASSWORD_KEYWORD.sub(lambda m: f"{m['key']}***", _URI_WITH_AT.sub(_hide, text))
    return _SECRET_PARAMETER.sub(lambda m: f"{m['key']}***", text) if "=" in text else text


def _mask_run(match: re.Match) -> str:
    run = match[0]
    end = run.rfind("@") + 1
    return _USER_PASSWORD.sub(r"\g<user>:***@", run[:end]) + run[end:]


_BROWSER_DROPS = str.maketrans("", "", "\t\n\r")


def mask_password(url: str) -> str:
    """``url`` with the password of every URI's user-info replaced by ``***``, the user name kept
    (``https://alice:pw@bank.example/`` becomes ``https://alice:***@bank.example/``; ``alice:pw@bank.example/``,
    without a scheme, too, not ``mailto:bob@example.org``: `_SCHEMELESS`). Tabs and line breaks are dropped first,
    as a browser drops them from a URL: ``http://\tbob:pw@host/`` is bob's password too. Any text: never raises."""
    url = url.translate(_BROWSER_DROPS)
    return _mask_authority(_RUN_WITH_AT.sub(_mask_run, url)) if "@" in url else url


# A URI's authority (after any scheme's "//", a web scheme and its slashes, a leading "//" or nothing before a user
# name (`_SCHEMELESS`), blanks before it; up to the first "/", "?", "#" or "\\"): its user-info may hold blanks
# (``http://alice:p w@bank.example/``, ``s3://key:se cret@bucket/``, ``alice:p w@bank.example``), which end a run
_AUTHORITY = re.compile(
    r"\s*(?:[a-zA-Z][a-zA-Z0-9+.\-]*://|(?i:https?|wss?|ftp):[/\\]*|[/\\]{2,}|" + _SCHEMELESS + r")"
    r"(?P<authority>[^/?#\\]*)")


def _mask_authority(url: str) -> str:
    """The password of the user-info of a URL written as the whole of ``url`` masked, blanks and all."""
    match = _AUTHORITY.match(url)
    if match is None:
        return url
    userinfo, at, host = match["authority"].rpartition("@")
    user, _, password = userinfo.partition(":")
    if not at or not password or password == "***" or "[" in user:  # noqa: S105 (the mask, no password)
        return url
    return f"{url[:match.start('authority')]}{user}:***@{host}{url[match.end('authority'):]}"


# Names of query and fragment parameters whose value is a credential, compared without case, "-" or "_" (and with
# escapes undone, as a server reads them): ``access_token``, ``accessToken`` and ``Access-Token`` are one. Exact
# names, not `redact`'s endings: a URL scored is evidence, and a masked value also makes every value one page for
# the lists (`scoring.policy.page_entry`). ``key`` is not one: it names a record or a search (``?key=value``) as
# often as an API key, and one page's correction would cover every record of its path; ``api_key`` is.
_SECRET_NAMES = frozenset({
    "token", "accesstoken", "idtoken", "refreshtoken", "authtoken", "apitoken", "jwt", "code",  # OAuth's and others'
    "oauthtoken", "oauthverifier", "samlresponse", "ticket",  # OAuth 1, SAML's POST-less binding, CAS's ticket
    "password", "passwd", "pwd", "pass", "secret", "clientsecret", "secretkey", "accesskey", "privatekey", "authkey",
    "apikey", "auth", "session", "sessionid", "sid", "phpsessid", "jsessionid",
    "sig", "signature", "xamzsignature", "xamzcredential", "xamzsecuritytoken",  # presigned S3 and Azure SAS URLs
    "xgoogsignature", "xgoogcredential",  # signed Google Cloud Storage URLs
})

# A parameter as written in the URL itself (``?code=abc``) or in a value that is itself a URL, percent-encoded once
# (``?url=https%3A%2F%2Fx.example%2Fcb%3Fcode%3Dabc``: a Safe Links wrapper, a login's ``next``) or twice (such a
# link inside another): each level has its own separators and "=", in either case. Group n (1 to 3) holds the name
# of a parameter of level n - 1. Two levels of encoding and no recursion: one pass, linear time.
_PARAMETER = re.compile(r"[?#&;](?P<plain>[^=?#&;\s]*)="
                        r"|(?i:%(?:3F|23|26|3B))(?P<once>(?:[^%=?#&;\s]|(?i:%5[BD]))*)(?i:%3D)"
                        r"|(?i:%25(?:3F|23|26|3B))(?P<twice>(?:[^%=?#&;\s]|(?i:%255[BD]))*)(?i:%253D)")
# A value runs to the next parameter of its own level or of an outer one (a "&" or "#", plain or encoded), or to the
# end: the nested URL's other parameters stay as written, byte for byte. Each value is read once.
_VALUE = (re.compile(r"[^&#]*"), re.compile(r"(?:[^&#%]|%(?!2[36]))*"), re.compile(r"(?:[^&#%]|%(?!2[36]|252[36]))*"))
# A path's parameter (``/cart;jsessionid=abc?item=1``, Java's and PHP's session in the URL): to the next ";", "/",
# "@", query or fragment. Searched from the path on: before it, ``http://www.paypal.com;sid=1@evil.top/`` is
# user-info hiding the real host, which is evidence.
_PATH_PARAMETER = re.compile(r";(?P<name>[^=/?#;@\s]*)=(?P<value>[^/?#;@]*)")
_AUTHORITY_START = re.compile(r"\s*[a-zA-Z][a-zA-Z0-9+.\-]*://")


def _secret_name(name: str) -> bool:
    if "%" in name:  # twice: a name of a twice-encoded URL (``access_token%255B%255D``)
        name = unquote(unquote(name))
    return name.lower().replace("-", "").replace("_", "").removesuffix("[]") in _SECRET_NAMES  # PHP's array form


def _path_secrets(url: str, path: int, query: int) -> Iterator[tuple[int, int, str]]:
    """Where the values of ``url``'s path parameters named as a credential are (from ``path`` to ``query``), and
    their mask."""
    for match in _PATH_PARAMETER.finditer(url, path, query):
        if match["value"] and _secret_name(match["name"]):
            yield *match.span("value"), "***"


def _query_secrets(url: str, path: int, query: int) -> Iterator[tuple[int, int, str]]:
    """Where the values of ``url``'s query and fragment parameters (from ``query``, its first "?" or "#") named as a
    credential are, those of a URL in a value or in a path segment too (`_PARAMETER`: a gateway writes the page a
    link leads to as ``/<token>/https%3A%2F%2F…``), in order and apart, and their mask."""
    done = path
    for match in _PARAMETER.finditer(url, path):
        if match.start() < done or (match.lastindex == 1 and match.start() < query) \
                or not _secret_name(match[match.lastindex]):
            continue  # a name inside a value already masked, a path's text (``/a&token=t/``), or no credential
        end = _VALUE[match.lastindex - 1].match(url, match.end()).end()
        if end > match.end():
            yield match.end(), end, "***"
            done = end


# A web page's URL written into a value in another encoding, where no name above can be seen: base64 (Sophos's
# ``u``; Bing's ``u`` after its "a1" tag) and Proofpoint v2's escapes ("-" for "%", "_" for "/"). Each run ends at
# the next "=", "&" or "#": linear time.
_ENCODED_PAGE = re.compile(r"=(?:(?:a1)?(?P<base64>aHR0c[A-Za-z0-9+/_-]*(?:=|%3[Dd]){0,2})"
                           r"|(?P<proofpoint>https?-3A__[^&#\s]*))(?=[&#\s]|$)")


def _base64_masked(data: str) -> str | None:
    """A base64 value (either alphabet, its padding optional or escaped) whose text is a URL with a credential,
    written again in its alphabet and padding with the credential masked; None for any other value."""
    text = data.replace("%3D", "=").replace("%3d", "=")
    bare = text.rstrip("=")
    try:
        page = binascii.a2b_base64((bare + "=" * (-len(bare) % 4)).translate(_URL_SAFE), strict_mode=True)
        page_text = page.decode("utf-8")
    except (binascii.Error, ValueError):  # not base64, or not UTF-8 text (UnicodeDecodeError is a ValueError)
        return None
    masked = mask_credentials(page_text)
    if masked == page_text:
        return None
    url_safe = "-" in bare or "_" in bare or ("+" not in bare and "/" not in bare and bare == text)
    encoded = (base64.urlsafe_b64encode if url_safe else base64.b64encode)(masked.encode("utf-8")).decode("ascii")
    return encoded if bare != text else encoded.rstrip("=")


_URL_SAFE = str.maketrans("-_", "+/")


def _proofpoint_masked(value: str) -> str | None:
    """A Proofpoint v2 value whose URL has a credential, written again in its escapes with the credential masked;
    None for any other value."""
    page = unquote(value.replace("-", "%").replace("_", "/"))
    masked = mask_credentials(page)
    if masked == page:
        return None
    return quote(masked, safe="/").replace("-", "%2D").replace("_", "%5F").replace("%", "-").replace("/", "_")


# The password of a URL's user-info, the URL percent-encoded once in a value or a path segment
# (``?url=https%3A%2F%2Fbob%3Apw%40bank.example%2F``): up to the authority's end, as `mask_password` reads it
_ENCODED_PASSWORD = re.compile(r"(?:https?|wss?|ftp)%3A%2F%2F(?:[^%/?#&\s]|%(?!2F|3F|23|40|3A)[0-9A-F]{2})*"
                               r"%3A(?P<password>(?:[^%/?#&\s]|%(?!2F|3F|23|40)[0-9A-F]{2})+)%40", re.IGNORECASE)


def _encoded_secrets(url: str, path: int, query: int) -> Iterator[tuple[int, int, str]]:
    """Where ``url`` holds a page's URL in another encoding whose credentials are to be masked: a password in a
    percent-encoded URL's user-info (from ``path`` on) and a page in base64 or Proofpoint's escapes (`_ENCODED_PAGE`,
    in the query), with what each is written as once masked."""
    for match in _ENCODED_PASSWORD.finditer(url, path):
        if match["password"] != "***":  # noqa: S105 (the mask, no password)
            yield *match.span("password"), "***"
    for match in _ENCODED_PAGE.finditer(url, query):
        if match["base64"] is not None:
            masked = _base64_masked(match["base64"])
            if masked is not None:
                yield match.start("base64"), match.end("base64"), masked
        elif (masked := _proofpoint_masked(match["proofpoint"])) is not None:
            yield match.start("proofpoint"), match.end("proofpoint"), masked


def mask_secret_parameters(url: str) -> str:
    """``url`` with the value of each query, fragment or path parameter named as a credential (`_SECRET_NAMES`)
    replaced by ``***``: ``https://x.example/cb;jsessionid=s?access_token=abc&code=xyz`` becomes
    ``...cb;jsessionid=***?access_token=***&code=***``, and so in a URL passed in a value, percent-encoded
    (``?next=https%3A%2F%2Fy.example%2Fcb%3Fcode%3D***``). A query's value runs to the next ``&`` or ``#`` (blanks and
    ``;`` too: a URL is the whole text, and a longer mask leaks nothing); an empty value stays empty. Idempotent;
    any text: never raises."""
    if "=" not in url and "%" not in url:
        return url
    query = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    authority = _AUTHORITY_START.match(url)
    path = url.find("/", authority.end() if authority else 0, query)
    path = query if path < 0 else path
    pieces, done = [], 0
    for start, end, mask in sorted(chain(_path_secrets(url, path, query), _query_secrets(url, path, query),
                                         _encoded_secrets(url, path, query))):
        if start >= done:  # one span inside another (a base64 page's value in a masked one): the outer one
            pieces += [url[done:start], mask]
            done = end
    return "".join([*pieces, url[done:]])


def mask_credentials(url: str) -> str:
    """``url`` as it is logged, stored or reported for people to read: `mask_password`, then
    `mask_secret_parameters` (``https://alice:***@x.example/cb?code=***``). Any text: never raises."""
    return mask_secret_parameters(mask_password(url))
