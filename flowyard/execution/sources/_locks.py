"""A per-resource exclusive lock across threads and processes (``flock``).

``flock`` locks belong to an open file description, so two threads that each
open the lock file exclude each other just as two processes do, and the kernel
drops the lock when a holder dies. Lock files are never deleted: unlinking a
lock file while another process waits on the old inode would let two holders in.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
