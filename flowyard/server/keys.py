"""The server key: signs run tokens and encrypts secrets at rest.

Read from ``settings.server_key`` or ``<home>/server.key`` (created once,
mode 0600). Sub-keys are derived with HKDF so that one leaked purpose does
not expose the other. The key lives outside the database on purpose: a
copy of the database alone does not reveal secret values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from flowyard.settings import Settings


@dataclass(frozen=True)
class ServerKeys:
    token_key: bytes
    secret_key: bytes

    @classmethod
    def from_master(cls, master: bytes) -> ServerKeys:
        return cls(token_key=_derive(master, b"run-tokens"), secret_key=_derive(master, b"secrets"))

    def sign(self, message: bytes) -> str:
        digest = hmac.new(self.token_key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")

    def encrypt(self, plaintext: str) -> bytes:
        from cryptography.fernet import Fernet

        return Fernet(base64.urlsafe_b64encode(self.secret_key)).encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        from cryptography.fernet import Fernet

        return Fernet(base64.urlsafe_b64encode(self.secret_key)).decrypt(ciphertext).decode()


def _derive(master: bytes, purpose: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869), no salt, 32 bytes: one block, so two HMACs.

    Written out with ``hmac`` rather than taken from ``cryptography``, whose
    import would cost every server start ~10 MiB and a tenth of a second for
    these two lines; a test pins it to ``cryptography``'s HKDF.
    """
    prk = hmac.new(b"\x00" * hashlib.sha256().digest_size, master, hashlib.sha256).digest()
    return hmac.new(prk, purpose + b"\x01", hashlib.sha256).digest()


def load_server_keys(settings: Settings) -> ServerKeys:
    if settings.server_key:
        return ServerKeys.from_master(settings.server_key.encode())
    path = settings.home / "server.key"
    if not path.exists():
        _create_key_file(path)
    return ServerKeys.from_master(path.read_bytes().strip())


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process won the race; use its key
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48))
