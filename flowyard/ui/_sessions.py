"""Browser sessions, CSRF tokens and one-shot notices, all without server state.

The session cookie carries the API key the user signed in with, encrypted and
authenticated (Fernet) under a key derived from the server key for this one
purpose; the clear key never leaves the server again. Every request
re-authenticates the key, so revoking it ends every session made with it at
once. A server-side session table was rejected: it would need a schema
change for what the key itself already proves, and replicas sharing the
server key read the same cookies.

CSRF: each session has a random id; a form's token is an HMAC of that id, so
a token is useless for any other session. The sign-in form, which comes
before any session, binds its token to a random cookie instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from flowyard.server.keys import ServerKeys
from flowyard.ui._errors import InvalidSession

SESSION_COOKIE = "flowyard_session"
SIGN_IN_COOKIE = "flowyard_sign_in"
NOTICE_COOKIE = "flowyard_notice"
SESSION_SECONDS = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Session:
    """What a valid session cookie holds."""

    api_key: str
    session_id: str
    issued_at: float


@dataclass(frozen=True)
class Notice:
    """A message shown once on the next page (after a redirect)."""

    kind: str  # "ok" | "error"
    text: str


@dataclass(frozen=True)
class _Keys:
    fernet: Fernet
    csrf: bytes


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


@lru_cache(maxsize=8)
def _keys(keys: ServerKeys) -> _Keys:
    # Derived from the secrets key but distinct from it: a cookie can never be
    # decrypted as a secret value, nor the other way round.
    fernet_key = _derive(keys.secret_key, b"ui-sessions")
    return _Keys(
        fernet=Fernet(base64.urlsafe_b64encode(fernet_key)),
        csrf=_derive(keys.secret_key, b"ui-csrf"),
    )


def new_session(keys: ServerKeys, api_key: str) -> tuple[Session, str]:
    """A fresh session for ``api_key`` and its cookie value."""
    session = Session(api_key, secrets.token_urlsafe(16), time.time())
    payload = json.dumps({"k": session.api_key, "s": session.session_id})
    token = _keys(keys).fernet.encrypt_at_time(payload.encode(), int(session.issued_at))
    return session, token.decode()


def open_session(keys: ServerKeys, cookie: str | None, *, now: float | None = None) -> Session:
    """The session in ``cookie``; raises ``InvalidSession`` when missing, forged or expired."""
    if not cookie:
        raise InvalidSession("not signed in")
    fernet = _keys(keys).fernet
    try:
        raw = fernet.decrypt_at_time(
            cookie.encode(), ttl=SESSION_SECONDS, current_time=int(now or time.time())
        )
        data = json.loads(raw)
        issued = float(fernet.extract_timestamp(cookie.encode()))
        return Session(str(data["k"]), str(data["s"]), issued)
    except (InvalidToken, ValueError, KeyError, TypeError):
        raise InvalidSession("your session has expired; sign in again") from None


def _mac(keys: ServerKeys, message: str) -> str:
    digest = hmac.new(_keys(keys).csrf, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def csrf_token(keys: ServerKeys, session: Session) -> str:
    return _mac(keys, "session:" + session.session_id)


def sign_in_token(keys: ServerKeys, nonce: str) -> str:
    return _mac(keys, "sign-in:" + nonce)


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def tokens_match(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def seal_notice(keys: ServerKeys, notice: Notice) -> str:
    raw = json.dumps({"kind": notice.kind, "text": notice.text[:500]})
    return _keys(keys).fernet.encrypt(raw.encode()).decode()


def open_notice(keys: ServerKeys, cookie: str | None) -> Notice | None:
    """The notice in ``cookie`` if it is ours and recent; forged or stale ones are dropped."""
    if not cookie:
        return None
    try:
        data = json.loads(_keys(keys).fernet.decrypt(cookie.encode(), ttl=300))
        return Notice(kind=str(data["kind"]), text=str(data["text"]))
    except (InvalidToken, ValueError, KeyError, TypeError, binascii.Error):
        return None
