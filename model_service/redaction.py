"""Credentials never leave the service: URLs and messages with their userinfo redacted.

Users paste camera and server URLs as their devices show them, passwords unescaped: a `/`,
`@`, `#` or a space in a password is common, and `urllib.parse` then splits the URL in the
wrong place (`rtsp://admin:pa/ss@cam/live` has host `admin` and path `/ss@cam/live`), so a
parser-based redaction would leak the password. Here the userinfo is everything between
`scheme://` and the last `@` that is followed by a host (and port) and then `/`, `?`, `#`
or the end, whatever it holds. Erring on the safe side, a query holding `a:b@host` is
masked as if it were a password.
"""

from __future__ import annotations

import re

MASK = "***"
# An @ followed by a host name, IPv4 or [IPv6] address, an optional port, then the path.
_AT_HOST = re.compile(r"@(?=(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(?::\d*)?(?:[/?#]|$))")
_SCHEME = re.compile(r"^([^/@]*?://)(.*)$", re.DOTALL)  # also "openai:http://..."


def _split(url: str) -> tuple[str, str, str, str] | None:
    """(scheme://, username, password, rest after @) for a URL with a password, else None."""
    match = _SCHEME.match(url)
    if match is None:
        return None
    scheme, rest = match.groups()
    ats = [m.start() for m in _AT_HOST.finditer(rest)]
    if not ats:
        return None
    at = ats[-1]
    userinfo, after = rest[:at], rest[at + 1 :]
    if ":" not in userinfo:
        return None  # a user name alone (rtsp://admin@cam) is not a secret
    username, password = userinfo.split(":", 1)
    return scheme, username, password, after


def redact_url(url: str) -> str:
    """`rtsp://user:***@cam/live` for `rtsp://user:any/p@ss word@cam/live`."""
    parts = _split(url)
    if parts is None:
        return url
    scheme, username, _, after = parts
    return f"{scheme}{username}:{MASK}@{after}"


def secrets_of(url: str | None) -> list[str]:
    """What must never be shown of `url`: its password, as written and percent-decoded."""
    if not url:
        return []
    parts = _split(url)
    if parts is None or not parts[2]:
        return []
    from urllib.parse import unquote

    password = parts[2]
    return sorted({password, unquote(password)}, key=len, reverse=True)


def redact_text(text: str, *urls: str | None) -> str:
    """`text` (an error, a log line, ffmpeg's stderr) with every URL in `urls` redacted and
    their passwords masked wherever else they appear."""
    for url in urls:
        if not url:
            continue
        text = text.replace(url, redact_url(url))
        for secret in secrets_of(url):
            text = text.replace(secret, MASK)
    return text
