"""Keeping secrets out of messages: tokens, their Basic-auth form, URL passwords."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable

REDACTED = "***"

# scheme://user:password@host or scheme://token@host — the userinfo part goes.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def secret_forms(secret: str, usernames: Iterable[str] = ()) -> tuple[str, ...]:
    """The spellings of ``secret`` that could leak: itself and its Basic-auth encodings."""
    forms = [secret]
    for user in usernames:
        forms.append(base64.b64encode(f"{user}:{secret}".encode()).decode())
    return tuple(f for f in forms if f)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret spelling and every URL userinfo replaced by ``***``."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
