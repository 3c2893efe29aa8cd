"""Cross-process locks on files (``flock``): build locks and in-use leases.

A build takes an exclusive lock per environment key, so two processes needing
the same new environment build it once. A run holds a shared *lease* on its
environment; eviction removes an environment only if it can take the lease
exclusively without waiting. The kernel drops both when a holder dies, so a
crashed process never pins or blocks an environment. Lock files are never
deleted (a waiter on an unlinked inode would not exclude a new holder).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Wait for and hold an exclusive lock on ``path``."""
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def try_exclusive_lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` if it is free now; yield whether it was."""
    fd = _open(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


class SharedLease:
    """A shared lock held from :meth:`acquire` to :meth:`release` (idempotent)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = _open(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
