"""Keep secrets out of logs, sidecars, reports and state."""

from __future__ import annotations

import re
import threading
from urllib.parse import quote, unquote, urlsplit

# The password runs to the LAST '@' of the URL: users do write an unencoded '@' in it.
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>\S*)@(?=[^@\s]*(?:\s|$))"
)
# key=value secrets: a libpq password=, an S3 `secret_access_key=` in a URL query or a
# rule's `SET s3_secret_access_key = '...'`, an `auth_token=`: a key that ends in one
# of these words (`token_count = 0` in a rule's SQL is no secret)
_KV_PASSWORD = re.compile(
    r"(?i)\b(\w*(?:password|passwd|pwd|secret|access_key|token|api_?key))\s*=\s*"
    r"('[^']*'|\"[^\"]*\"|[^\s;&,)]+)"
)

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
    _, sep, rest = url.partition("://")
    at = credentials_end(rest) if sep else -1
    if at >= 0:  # the password as quote_credentials reads it
        password = rest[:at].partition(":")[2] or password
    register_secret(password)
    if password:
        register_secret(unquote(password))
        # A parser that splits at the first '@', '#' or '?' shows a piece of the rest as a
        # host name (`p@corpnet#2024`: "can't connect to 'corpnet'"): mask those too.
        for tail in unquote(password).split("@")[1:]:
            register_secret(tail)
            register_secret(re.split(r"[/?#:]", tail, maxsplit=1)[0])


# what may follow a URL's '@' as its host: a name or [IPv6] with an optional port, or a
# comma-separated list of them (libpq's several hosts)
_ONE_HOST = r"(?:\[[^\]/?#@\s]*\]|[^\[\]/?#@:,\s]*)(?::\d*)?"
_HOST = re.compile(rf"{_ONE_HOST}(?:,{_ONE_HOST})*")
_PORT = re.compile(r":\d+(?:,|$)")


def credentials_end(rest: str) -> int:
    """Where the user:password part of `rest` (a URL after its `://`) ends: the index of
    its '@', or -1 when it has none.

    Users write raw '@', '#', '?' and ':' in passwords, where a strict parser ends the
    authority at the first '#' or '?' and a driver that splits at the first '@' takes the
    rest for a host (and prints it). So the credentials end at the first '@' followed by a
    host with a port (`@db.example:5432`, then '/', '?', '#' or the end); failing that, at
    the first '@' followed by a host that a '/' closes (`@db.example/shop`); failing that,
    at the last '@' followed by a host. So a '@' in the path or the query after the host
    is not the credentials' end. What stays ambiguous needs percent-encoding (`%40`), as
    RFC 3986 asks of every password: a password holding '@', a host-like text and ':5'
    or '/' (`p@a/b@host/db`), or a URL with no path and no port whose query holds '@'."""
    if rest.startswith("/"):  # no authority: `sqlite:////tmp/a@b/x.db`
        return -1
    closed = ported = last = -1
    for at in (i for i, char in enumerate(rest) if char == "@"):
        host = _HOST.match(rest, at + 1)
        assert host is not None  # the pattern matches the empty text
        follows = rest[host.end() : host.end() + 1]
        if follows not in ("", "/", "?", "#"):
            continue
        if follows == "/" and closed < 0:
            closed = at
        if ported < 0 and _PORT.search(host.group()):
            ported = at
        last = at
    for found in (ported, closed, last):
        if found >= 0:
            return found
    return -1


def quote_credentials(url: str) -> str:
    """The URL with its user and password percent-encoded (`credentials_end` says where
    they end), so that every driver reads the password the user meant and never prints a
    piece of it as a host. Already encoded credentials stay as they are."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    at = credentials_end(rest)
    if at < 0:
        return url
    user, colon, password = rest[:at].partition(":")
    encoded = quote(unquote(user), safe="")
    if colon:
        encoded += ":" + quote(unquote(password), safe="")
    return f"{scheme}://{encoded}{rest[at:]}"


def mask_url(url: str) -> str:
    """`url` with its password replaced by `***`, found by where the credentials end
    (`credentials_end`) rather than by a pattern: a password holding a space, a quote or
    a newline, which `redact`'s pattern stops at, is masked whole. A URL whose credentials
    cannot be told from its host (an unencoded '/' in the password before a host with no
    port) keeps its scheme only. For a message about a URL, built before it is raised."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return redact(url)
    at = credentials_end(rest)
    if at < 0:
        return redact(url) if "@" not in rest else f"{scheme}://***"
    user, colon, _ = rest[:at].partition(":")
    return redact(f"{scheme}://{user}{':***' if colon else ''}{rest[at:]}")


def redact(text: str) -> str:
    """Return `text` with URL passwords, key=value passwords and known secrets masked."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    text = _KV_PASSWORD.sub(lambda m: f"{m.group(1)}=***", text)
    with _lock:
        secrets = sorted(_known, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
