"""Keeping the environment cache under a size bound without touching environments in use."""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from flowyard.execution.environments._locks import try_exclusive_lock
from flowyard.execution.environments._metadata import EnvironmentRecord, read_record

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvictionReport:
    """What :func:`evict` did: keys removed, keys kept because in use, bytes."""

    removed: tuple[str, ...]
    in_use: tuple[str, ...]
    freed_bytes: int
    remaining_bytes: int


def list_records(envs: Path) -> tuple[EnvironmentRecord, ...]:
    if not envs.is_dir():
        return ()
    records = []
    for child in envs.iterdir():
        if child.name.startswith(".") or not child.is_dir():
            continue
        record = read_record(child)
        if record is not None:
            records.append(record)
    return tuple(sorted(records, key=lambda r: r.last_used))


def evict(envs: Path, locks: Path, max_bytes: int) -> EvictionReport:
    """Remove LRU environments until the total is at most ``max_bytes``.

    An environment is removed only if its lease can be taken exclusively right
    now (no run holds it). It is first renamed aside, so a concurrent reader
    sees it either whole or gone.
    """
    for trash in envs.glob(".trash-*") if envs.is_dir() else ():
        shutil.rmtree(trash, ignore_errors=True)
    records = list_records(envs)
    total = sum(r.size_bytes for r in records)
    removed: list[str] = []
    in_use: list[str] = []
    freed = 0
    for record in records:
        if total <= max_bytes:
            break
        with try_exclusive_lock(locks / f"{record.key}.lease") as free:
            if not free:
                in_use.append(record.key)
                continue
            trash = envs / f".trash-{record.key}-{uuid.uuid4().hex[:8]}"
            try:
                (envs / record.key).rename(trash)
            except FileNotFoundError:
                continue
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(record.key)
        total -= record.size_bytes
        freed += record.size_bytes
        logger.info("evicted environment %s (%d bytes)", record.key[:12], record.size_bytes)
    return EvictionReport(tuple(removed), tuple(in_use), freed, total)


def remove_leftovers(envs: Path, key: str) -> None:
    """Remove temporary build directories of ``key`` (caller holds its build lock)."""
    if not envs.is_dir():
        return
    for stale in envs.glob(f".tmp-{key}-*"):
        logger.info("removing an interrupted build of %s", key[:12])
        shutil.rmtree(stale, ignore_errors=True)
