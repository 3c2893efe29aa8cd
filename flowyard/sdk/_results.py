"""Where persisted and cached task results live.

A small :class:`ResultStore` protocol (read a record by key, write a record) so
that a server-backed store can replace the local one. With no server the
store is a directory, ``$FLOWYARD_HOME/results`` (``~/.flowyard/results``),
one file per key, written atomically so that two processes racing on the
same cache key never leave a torn record.

Values are pickled by default (as in Prefect); ``json`` is available for
results that must be readable by other tools.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from flowyard.sdk._errors import SDKError

__all__ = [
    "InMemoryResultStore",
    "LocalResultStore",
    "ResultRecord",
    "ResultStore",
    "flowyard_home",
    "get_result_store",
    "set_result_store",
]

Serializer = Literal["pickle", "json"]
_KEY = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")


class ResultStoreError(SDKError):
    """A result could not be written or read."""


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """A stored result: the value, when it was stored and when it stops counting."""

    key: str
    value: object
    created: datetime
    expiration: datetime | None = None

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expiration is not None and (now or datetime.now(UTC)) >= self.expiration


@runtime_checkable
class ResultStore(Protocol):
    """Reads and writes result records by key."""

    def read(self, key: str) -> ResultRecord | None:
        """The record stored under ``key`` if it exists and has not expired."""
        ...

    def write(self, record: ResultRecord) -> None:
        """Store ``record`` under its key, replacing any previous record."""
        ...


def flowyard_home() -> Path:
    """``$FLOWYARD_HOME``, else ``~/.flowyard`` (read each time: tests change it)."""
    return Path(os.environ.get("FLOWYARD_HOME") or Path.home() / ".flowyard").expanduser()


def check_key(key: str) -> str:
    """A key is one or more ``/``-separated segments of letters, digits, ``_ . -``."""
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ResultStoreError(
            f"result key {key!r} is not valid: use letters, digits, '_', '.', '-' "
            "and '/' between segments (no '..')"
        )
    return key


class LocalResultStore:
    """Results as files under a directory (default ``$FLOWYARD_HOME/results``)."""

    def __init__(self, root: Path | str | None = None, serializer: Serializer = "pickle") -> None:
        self._root = Path(root) if root is not None else None
        self.serializer: Serializer = serializer

    @property
    def root(self) -> Path:
        return self._root if self._root is not None else flowyard_home() / "results"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def read(self, key: str) -> ResultRecord | None:
        path = self._path(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        record = decode_record(key, blob)
        return None if record.is_expired() else record

    def write(self, record: ResultRecord) -> None:
        import tempfile

        path = self._path(record.key)
        blob = encode_record(record, self.serializer)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def encode_record(record: ResultRecord, serializer: Serializer) -> bytes:
    """A record as bytes: a JSON header line, then the serialized value."""
    import json
    import pickle

    meta = {
        "serializer": serializer,
        "created": record.created.isoformat(),
        "expiration": record.expiration.isoformat() if record.expiration else None,
    }
    if serializer == "json":
        try:
            payload = json.dumps(record.value).encode()
        except (TypeError, ValueError) as exc:
            raise ResultStoreError(f"result is not JSON-serializable: {exc}") from exc
    else:
        try:
            payload = pickle.dumps(record.value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise ResultStoreError(f"result cannot be pickled: {exc}") from exc
    return json.dumps(meta).encode() + b"\n" + payload


def decode_record(key: str, blob: bytes) -> ResultRecord:
    """The record that :func:`encode_record` wrote."""
    import json
    import pickle

    header, _, payload = blob.partition(b"\n")
    try:
        meta = json.loads(header)
        value = json.loads(payload) if meta["serializer"] == "json" else pickle.loads(payload)
    except Exception as exc:
        raise ResultStoreError(f"stored result {key!r} cannot be read: {exc}") from exc
    expiration = meta.get("expiration")
    return ResultRecord(
        key=key,
        value=value,
        created=datetime.fromisoformat(meta["created"]),
        expiration=datetime.fromisoformat(expiration) if expiration else None,
    )


class InMemoryResultStore:
    """A result store in a dict, for tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: dict[str, ResultRecord] = {}

    def read(self, key: str) -> ResultRecord | None:
        with self._lock:
            record = self.records.get(key)
        return None if record is None or record.is_expired() else record

    def write(self, record: ResultRecord) -> None:
        with self._lock:
            self.records[record.key] = record


_store: ResultStore | None = None


def set_result_store(store: ResultStore | None) -> ResultStore | None:
    """Set the process-wide result store (None: the local default). Returns the previous one."""
    global _store
    previous, _store = _store, store
    return previous


def get_result_store() -> ResultStore:
    """The store used by tasks and flows that do not name their own."""
    return _store if _store is not None else LocalResultStore()
