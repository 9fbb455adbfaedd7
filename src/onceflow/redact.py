"""Keep secrets out of logs, sidecars, reports and state."""

from __future__ import annotations

import re
import threading
from urllib.parse import quote, unquote, urlsplit

# The password runs to the LAST '@' of the URL: users do write an unencoded '@' in it.
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>\S*)@(?=[^@\s]*(?:\s|$))"
)
_KV_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd)\s*=\s*('[^']*'|\"[^\"]*\"|[^\s;]+)")

_known: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret so that `redact` removes it wherever it shows up."""
    if value and len(value) >= 3:
        with _lock:
            _known.add(value)


def register_url(url: str) -> None:
    """Remember the password of a database URL, as written and as drivers decode it."""
    match = _URL_PASSWORD.search(url)
    password = match["pw"] if match else None
    if password is None:
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
    register_secret(password)
    if password:
        register_secret(unquote(password))
        # A driver that splits at the first '@' shows the rest as a host name: mask it too.
        for tail in unquote(password).split("@")[1:]:
            register_secret(tail)


def quote_credentials(url: str) -> str:
    """The URL with its user and password percent-encoded, taking everything between `://`
    and the last `@` before the path as credentials: users write raw '@' and ':' in
    passwords, and a driver that splits at the first '@' would take the rest for a host
    (and print it). Already encoded credentials stay as they are."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority_end = len(rest)
    at = -1
    for i, char in enumerate(rest):
        if char in "/?#" and at >= 0 and i > at:
            authority_end = i
            break
        if char == "@":
            at = i
    if at < 0 or at > authority_end:
        return url
    user, colon, password = rest[:at].partition(":")
    encoded = quote(unquote(user), safe="")
    if colon:
        encoded += ":" + quote(unquote(password), safe="")
    return f"{scheme}://{encoded}{rest[at:]}"


def redact(text: str) -> str:
    """Return `text` with URL passwords, key=value passwords and known secrets masked."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    text = _KV_PASSWORD.sub(lambda m: f"{m.group(1)}=***", text)
    with _lock:
        secrets = sorted(_known, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
