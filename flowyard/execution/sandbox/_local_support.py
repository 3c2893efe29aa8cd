"""Pieces of the local sandbox with no state of their own: tools, paths, checks, copies."""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flowyard.execution.host import CgroupLayout, HostCapabilities
from flowyard.execution.sandbox._errors import IsolationUnavailable, SandboxError
from flowyard.execution.sandbox._layout import (
    API_SOCKET_PATH,
    EGRESS_PROXY_URL,
    TMP_PATH,
    WORK_PATH,
    Placeholder,
    expand,
)
from flowyard.execution.sandbox._local_handle import RunResources
from flowyard.execution.sandbox._spec import SandboxSpec

_LOCK_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Tools:
    """What strict isolation runs, known to exist once the host checks passed."""

    bwrap: Path
    setpriv: Path
    mkfs: Path
    cgroups: CgroupLayout

    @classmethod
    def of(cls, caps: HostCapabilities) -> Tools:
        if not (caps.bwrap_path and caps.setpriv_path and caps.mkfs_ext4_path and caps.cgroups):
            raise IsolationUnavailable(caps.missing() or ("the host probe is incomplete",))
        return cls(caps.bwrap_path, caps.setpriv_path, caps.mkfs_ext4_path, caps.cgroups)


@dataclass(frozen=True)
class Source:
    name: str
    path: Path | None
    kind: str


def placeholders(python: str) -> dict[Placeholder, str]:
    """What the placeholders of a strict run's argv and env stand for inside."""
    return {
        Placeholder.PYTHON: python,
        Placeholder.WORK: WORK_PATH,
        Placeholder.TMP: TMP_PATH,
        Placeholder.API_SOCKET: API_SOCKET_PATH,
        Placeholder.EGRESS_PROXY: EGRESS_PROXY_URL,
    }


def inside_env(env: Mapping[str, str], python: str) -> dict[str, str]:
    """``env`` with the placeholders replaced by what a strict run sees (``python`` its own)."""
    paths = placeholders(python)
    return {name: expand(value, paths) for name, value in env.items()}


def check_sources(spec: SandboxSpec) -> None:
    sources = [
        Source("runtime_dir", spec.runtime_dir, "dir"),
        Source("environment_dir", spec.environment_dir, "dir"),
        Source("sdk_dir", spec.sdk_dir, "dir"),
        Source("workdir_source", spec.workdir_source, "dir"),
        Source("api_socket", spec.api_socket, "any"),
        Source("egress_proxy_socket", spec.egress_proxy_socket, "any"),
        *(Source(f"ro_binds[{i}]", b.source, "any") for i, b in enumerate(spec.ro_binds)),
    ]
    for source in sources:
        if source.path is None:
            continue
        if not source.path.exists():
            raise SandboxError(f"{source.name}: {source.path} does not exist")
        if source.kind == "dir" and not source.path.is_dir():
            raise SandboxError(f"{source.name}: {source.path} is not a directory")


def copy_checkout(source: Path | None, work: Path, uid: int, gid: int) -> None:
    if source is None:
        return
    try:
        shutil.copytree(source, work, symlinks=True, dirs_exist_ok=True)
    except (OSError, shutil.Error) as exc:
        raise SandboxError(f"cannot copy {source} into the run's work dir: {exc}") from exc
    for folder, dirs, files in os.walk(work):
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), uid, gid)


def lock_state_dir(state_dir: Path) -> int:
    """Hold ``state_dir`` for this sandbox: reclaiming leftovers must not hit a live server's runs."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    # A server that just died may hold it a moment longer: a child it was forking
    # keeps the descriptor until it execs.
    deadline = time.monotonic() + _LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise SandboxError(
                    f"{state_dir} is in use by another sandbox; give each its own"
                ) from None
            time.sleep(0.02)


def last_words(res: RunResources) -> str:
    """How a standby that stopped ended: its exit status and last output line, if any."""
    process = res.process
    code = process.poll() if process is not None else None
    if code is None:
        return ""
    try:
        with open(res.fs.output, "rb") as fh:
            fh.seek(max(os.fstat(fh.fileno()).st_size - 2000, 0))
            lines = fh.read().decode(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return f"; it exited with {code}" + (f": {lines[-1]}" if lines else "")
