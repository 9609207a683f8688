"""One rule for credentials in messages: every URI or DSN that reaches a message, a warning or a log line goes
through `redact`, which hides URI user-info (``scheme://user:password@host`` becomes ``scheme://***@host``) and
the value of libpq ``password=`` keywords.

User-info runs to the *last* ``@`` of the URI, so a password holding an unescaped ``@`` or ``/`` does not leak
its tail. Text before that ``@`` is left alone only when it holds a ``/`` and no ``:`` (``https://site/a@b``: a
path, not a password); a port before a path's ``@`` is redacted too (a harmless over-redaction).
"""

from __future__ import annotations

import re

_URI_WITH_AT = re.compile(r"\b(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>\S*)@")


_PASSWORD_KEYWORD = re.compile(r"(?P<key>\bpassword\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def _hide(match: re.Match) -> str:
    userinfo = match["userinfo"]
    if "/" in userinfo and ":" not in userinfo:
        return match[0]
    return f"{match['scheme']}***@"


def redact(text: str) -> str:
    """``text`` with URI user-info and DSN passwords replaced by ``***``."""
    return _PASSWORD_KEYWORD.sub(lambda m: f"{m['key']}***", _URI_WITH_AT.sub(_hide, text))
