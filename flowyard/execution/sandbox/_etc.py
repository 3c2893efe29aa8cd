"""The /etc a run sees: a prepared copy of the few entries it needs, bound as one mount.

Binding each entry (``resolv.conf``, ``ssl``, ``hosts``, ... twenty of them)
costs bubblewrap a mount each, ~4 ms of CPU per run together. Instead the
sandbox keeps a copy of what exists of :data:`ENTRIES` on the host (files
dereferenced, directories copied with their symlinks, modes kept: a key
readable by root only stays so), plus the generated ``passwd`` and ``group``,
in ``<state>/etc-views/<generation>``, and each run binds that directory as
/etc.

A host that changes an entry (a new ``resolv.conf``, updated certificates)
is noticed at most :data:`CHECK_SECONDS` later: each entry's inode, size and
mtime are compared, and a new generation is written next to the old one.
Runs keep the generation they started with; generations older than a day
and not the last two are deleted (a restarted server's adopted runs may
still use an older one).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import uuid
from pathlib import Path

# What Python, TLS, DNS and git need from /etc; the rest of /etc stays hidden.
ENTRIES = (
    "alternatives", "ca-certificates", "ca-certificates.conf", "crypto-policies", "gai.conf",
    "host.conf", "hosts", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "mime.types",
    "nsswitch.conf", "os-release", "pki", "protocols", "resolv.conf", "services", "ssl", "timezone",
)  # fmt: skip
CHECK_SECONDS = 5.0
_KEEP_SECONDS = 25 * 3600.0  # longer than any run
Signature = tuple[tuple[str, int, int, int] | None, ...]


class EtcView:
    """``<state>/etc-views/<generation>``: the /etc of runs, rewritten when the host's changes."""

    def __init__(self, root: Path, accounts: tuple[str, str], *, host: Path = Path("/etc")):
        self._root = root
        self._host = host
        self._passwd, self._group = accounts
        self._lock = threading.Lock()
        self._checked = 0.0
        self._signature: Signature | None = None
        self._current: Path | None = None
        root.mkdir(parents=True, exist_ok=True, mode=0o755)
        for leftover in root.glob(".tmp-*"):  # half-written by a server that died
            _remove(leftover)

    def path(self) -> Path:
        """The current generation (written now if the host changed since the last one)."""
        with self._lock:
            now = time.monotonic()
            if self._current is not None and now - self._checked < CHECK_SECONDS:
                return self._current
            self._checked = now
            signature = self._read_signature()
            if self._current is None or signature != self._signature:
                self._current = self._write(signature)
                self._signature = signature
                self._prune()
            return self._current

    def _read_signature(self) -> Signature:
        found: list[tuple[str, int, int, int] | None] = []
        for name in ENTRIES:
            try:
                st = os.stat(self._host / name)
            except OSError:
                found.append(None)
            else:
                found.append((name, st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(found)

    def _write(self, signature: Signature) -> Path:
        scratch = self._root / f".tmp-{uuid.uuid4().hex}"
        scratch.mkdir(mode=0o755)
        try:
            for entry in signature:
                if entry is not None:
                    _copy(self._host / entry[0], scratch / entry[0])
            (scratch / "passwd").write_text(self._passwd)
            (scratch / "group").write_text(self._group)
            for name in ("passwd", "group"):
                (scratch / name).chmod(0o644)
            target = self._root / f"{time.time_ns()}"
            scratch.rename(target)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return target

    def _prune(self) -> None:
        generations = sorted(
            (p for p in self._root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
        )
        old_before = time.time() - _KEEP_SECONDS
        for generation in generations[:-2]:
            with contextlib.suppress(OSError):
                if generation.stat().st_mtime < old_before:
                    shutil.rmtree(generation)


def _copy(source: Path, target: Path) -> None:
    """``source`` as a run would see it through a bind: a file's content, a directory's tree."""
    try:
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target)
    except (OSError, shutil.Error):
        # Unreadable or vanished as it was copied: the run sees it absent, as a failed
        # bind-try would have left it.
        _remove(target)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
