"""The server's sub-keys are RFC 5869 HKDF-SHA256 of the master key, as before."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from flowyard.server.keys import ServerKeys


@pytest.mark.parametrize("master", [b"k", b"test-server-key", b"x" * 64, bytes(range(256))])
def test_sub_keys_equal_cryptography_hkdf_so_existing_tokens_and_secrets_stay_valid(
    master: bytes,
) -> None:
    def hkdf(info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)

    keys = ServerKeys.from_master(master)
    assert keys.token_key == hkdf(b"run-tokens")
    assert keys.secret_key == hkdf(b"secrets")
    assert keys.token_key != keys.secret_key


def test_a_secret_encrypted_with_derived_keys_decrypts() -> None:
    keys = ServerKeys.from_master(b"test-server-key")
    assert keys.decrypt(keys.encrypt("hunter2")) == "hunter2"
