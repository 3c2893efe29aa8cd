"""Run ids: time-ordered UUIDs (version 7, RFC 9562), made without a system call each.

A recorded flow creates a task run id per task, and the server keeps task runs
and their state histories in indexes on those ids. Random (version 4) ids land
all over those indexes: every insert touches another page, and every batch
commits many pages. Ids that start with their creation time land at the end
of the index, next to each other. The 12 bits after the millisecond hold its
fraction (RFC 9562, method 3), so ids made in one process sort in creation
order to a quarter of a microsecond; the last 62 bits are random.

``uuid.uuid4()`` reads the system's random source once per id, and that call
releases the GIL: with a recorder thread and a pool of task threads waiting
for it, each id could cost a thread switch. Here each thread draws from its
own buffer of random bytes, refilled 4 KiB at a time, and a forked child
starts with fresh buffers so that it never repeats its parent's ids.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from uuid import UUID

__all__ = ["new_id", "short_key"]

_WORDS_PER_READ = 512
# Version 7 in bits 76-79, the RFC 4122 variant in bits 62-63.
_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
_RANDOM_BITS = (1 << 62) - 1


def _words() -> Iterator[int]:
    while True:
        yield from memoryview(os.urandom(8 * _WORDS_PER_READ)).cast("Q")


class _Entropy(threading.local):
    def __init__(self) -> None:
        self.words = _words()


_entropy = _Entropy()


def _forget_parent() -> None:
    global _entropy
    _entropy = _Entropy()


os.register_at_fork(after_in_child=_forget_parent)


def new_id() -> UUID:
    """A new run id: a version 7 UUID (creation time first, then 62 random bits)."""
    ms, ns = divmod(time.time_ns(), 1_000_000)
    fraction = ns * 4096 // 1_000_000
    return UUID(
        int=ms << 80 | _VERSION | fraction << 64 | _VARIANT | next(_entropy.words) & _RANDOM_BITS
    )


def short_key(run_id: UUID) -> str:
    """Three hex digits of an id's random part: a run's ``dynamic_key`` and name suffix."""
    return run_id.hex[-3:]
