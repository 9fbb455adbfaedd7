"""Keep secrets out of logs, sidecars, reports and state."""

from __future__ import annotations

import re
import threading
from urllib.parse import unquote, urlsplit

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


def redact(text: str) -> str:
    """Return `text` with URL passwords, key=value passwords and known secrets masked."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    text = _KV_PASSWORD.sub(lambda m: f"{m.group(1)}=***", text)
    with _lock:
        secrets = sorted(_known, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
