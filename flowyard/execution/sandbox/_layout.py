"""Where things appear inside a sandbox, and the placeholders callers use for them.

A caller does not need to know the paths: ``argv`` and ``env`` values may use
the :class:`Placeholder` tokens and each sandbox substitutes what its process
sees (fixed paths under strict isolation, host paths when unconfined).
Substitution is plain text replacement of these exact tokens, so other braces
in a value are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

RUNTIME_PATH = "/opt/flowyard/runtime"
ENVIRONMENT_PATH = "/opt/flowyard/env"
SDK_PATH = "/opt/flowyard/sdk"
WORK_PATH = "/work"
TMP_PATH = "/tmp"
# Sockets sit in directories of their own: a restarted server's new socket shows there.
API_SOCKET_DIR = "/run/flowyard/api"
API_SOCKET_PATH = f"{API_SOCKET_DIR}/api.sock"
EGRESS_SOCKET_DIR = "/run/flowyard/egress"
EGRESS_SOCKET_PATH = f"{EGRESS_SOCKET_DIR}/egress.sock"
EGRESS_PROXY_ADDRESS = ("127.0.0.1", 3128)
EGRESS_PROXY_URL = f"http://{EGRESS_PROXY_ADDRESS[0]}:{EGRESS_PROXY_ADDRESS[1]}"

# Paths a caller may not bind over: the sandbox itself owns them.
RESERVED_PATHS = (
    "/",
    "/bin",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt/flowyard",
    "/proc",
    "/run/flowyard",
    "/sbin",
    "/sys",
    "/tmp",
    "/usr",
    "/work",
)


class Placeholder(StrEnum):
    """Tokens replaced in ``argv`` and ``env`` values by the sandbox's own paths."""

    PYTHON = "{python}"
    WORK = "{work}"
    TMP = "{tmp}"
    API_SOCKET = "{api_socket}"
    EGRESS_PROXY = "{egress_proxy}"


def expand(value: str, paths: Mapping[Placeholder, str]) -> str:
    """``value`` with every placeholder token replaced by its path."""
    if "{" not in value:
        return value
    for token, path in paths.items():
        value = value.replace(token.value, path)
    return value


def is_reserved(target: str) -> bool:
    """Whether ``target`` is, or lies under, a path the sandbox owns."""
    for reserved in RESERVED_PATHS:
        if target == reserved or (reserved != "/" and target.startswith(reserved + "/")):
            return True
    return False
