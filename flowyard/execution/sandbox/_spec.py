"""What a caller asks of a sandbox: the process, what it may see, its limits.

A spec is pure data and validated without touching the host, so a bad field
fails before anything is created, with a message naming it.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

from flowyard.execution.sandbox._errors import InvalidSandboxSpec
from flowyard.execution.sandbox._layout import is_reserved

MiB = 1024**2
GiB = 1024**3

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MIN_MEMORY_BYTES = 16 * MiB
MIN_STORAGE_BYTES = 16 * MiB
MAX_CPUS = 1024.0


class NetworkMode(StrEnum):
    """What the sandboxed process may reach over the network.

    ``none``: a network namespace with loopback only. ``egress``: the same,
    plus a proxy reachable at :data:`EGRESS_PROXY_URL` inside that forwards to
    the server's egress proxy socket. ``host``: the host's network, unfiltered.
    """

    NONE = "none"
    EGRESS = "egress"
    HOST = "host"


@dataclass(frozen=True)
class Limits:
    """Ceilings on one run; the defaults are a pool's default policy."""

    cpus: float = 4.0
    memory_bytes: int = 16 * GiB
    pids: int = 4096
    storage_bytes: int = 128 * GiB
    max_run_seconds: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cpus) and 0 < self.cpus <= MAX_CPUS):
            raise InvalidSandboxSpec("limits.cpus", f"a number in (0, {MAX_CPUS:g}]", self.cpus)
        _at_least("limits.memory_bytes", self.memory_bytes, MIN_MEMORY_BYTES)
        _at_least("limits.pids", self.pids, 1)
        _at_least("limits.storage_bytes", self.storage_bytes, MIN_STORAGE_BYTES)
        seconds = self.max_run_seconds
        if isinstance(seconds, bool) or not (math.isfinite(seconds) and seconds > 0):
            raise InvalidSandboxSpec("limits.max_run_seconds", "a positive number", seconds)


@dataclass(frozen=True)
class Bind:
    """A host path shown read-only inside the sandbox at ``target``."""

    source: Path
    target: str


@dataclass(frozen=True)
class SandboxSpec:
    """One run's process and everything it may see.

    ``env`` is exactly the environment the process gets — nothing of the
    server's own environment leaks in. ``runtime_dir`` is the interpreter's
    installation prefix (``<dir>/bin/python3`` must exist); ``environment_dir``
    a virtual environment built on that runtime; ``sdk_dir`` a directory
    holding the ``flowyard`` package that the environment's ``.pth`` names.
    All three are read-only inside. ``workdir_source``'s contents are copied
    into the run's writable, size-limited work dir. ``api_socket`` is the
    server's unix socket, reachable inside whatever the network mode.
    ``argv`` and ``env`` values may use :class:`Placeholder` tokens.
    ``standby`` says the command can start ahead of its run and wait for its
    environment (see ``_standby``): runs like it may then start in a warm one;
    a ``{python} -m <module>`` command may also be forked from a loaded
    interpreter (see ``_zygotes``).
    """

    run_id: str
    argv: Sequence[str]
    runtime_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    environment_dir: Path | None = None
    sdk_dir: Path | None = None
    workdir_source: Path | None = None
    ro_binds: Sequence[Bind] = ()
    api_socket: Path | None = None
    network: NetworkMode = NetworkMode.NONE
    egress_proxy_socket: Path | None = None
    limits: Limits = field(default_factory=Limits)
    standby: bool = False

    def __post_init__(self) -> None:
        # Freeze the containers too: a spec is shared between tasks.
        object.__setattr__(self, "argv", tuple(self.argv))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))
        object.__setattr__(self, "ro_binds", tuple(self.ro_binds))
        object.__setattr__(self, "network", NetworkMode(self.network))
        self._validate()

    def _validate(self) -> None:
        if not _RUN_ID.match(self.run_id):
            raise InvalidSandboxSpec(
                "run_id", "1-64 letters, digits, '_', '.' or '-', not starting with a symbol",
                self.run_id,
            )  # fmt: skip
        if not self.argv or not self.argv[0]:
            raise InvalidSandboxSpec("argv", "a non-empty command", self.argv)
        for arg in self.argv:
            if not isinstance(arg, str) or "\0" in arg:
                raise InvalidSandboxSpec("argv", "strings without NUL characters", arg)
        for name, value in self.env.items():
            if not isinstance(name, str) or not _ENV_NAME.match(name):
                raise InvalidSandboxSpec("env", "names made of letters, digits and '_'", name)
            if not isinstance(value, str) or "\0" in value:
                raise InvalidSandboxSpec(f"env[{name}]", "a string without NUL characters", value)
        for name in ("runtime_dir", "environment_dir", "sdk_dir", "workdir_source", "api_socket"):
            _absolute_or_none(name, getattr(self, name))
        _absolute_or_none("egress_proxy_socket", self.egress_proxy_socket)
        for index, bind in enumerate(self.ro_binds):
            _absolute_or_none(f"ro_binds[{index}].source", bind.source)
            target = bind.target
            if not target.startswith("/") or posixpath.normpath(target) != target:
                raise InvalidSandboxSpec(
                    f"ro_binds[{index}].target", "a normalized absolute path", target
                )
            if is_reserved(target):
                raise InvalidSandboxSpec(
                    f"ro_binds[{index}].target", "a path the sandbox does not own", target
                )
        if self.network is NetworkMode.EGRESS and self.egress_proxy_socket is None:
            raise InvalidSandboxSpec(
                "egress_proxy_socket", "the egress proxy's socket when network is 'egress'", None
            )
        if self.network is not NetworkMode.EGRESS and self.egress_proxy_socket is not None:
            raise InvalidSandboxSpec(
                "egress_proxy_socket", "no socket unless network is 'egress'",
                str(self.egress_proxy_socket),
            )  # fmt: skip


def _at_least(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidSandboxSpec(name, f"an integer >= {minimum}", value)


def _absolute_or_none(name: str, value: Path | None) -> None:
    if value is None:
        return
    if not isinstance(value, Path) or not value.is_absolute():
        raise InvalidSandboxSpec(name, "an absolute path", value)
