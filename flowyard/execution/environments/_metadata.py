"""The small JSON file each published environment carries about itself."""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

logger = logging.getLogger(__name__)

METADATA_FILE = "flowyard-environment.json"


@dataclass(frozen=True)
class EnvironmentRecord:
    """What is known about one built environment."""

    key: str
    runtime: str
    runtime_version: str
    flowyard: str
    requirements: tuple[str, ...]
    installed_count: int
    size_bytes: int
    created: datetime
    last_used: datetime

    def to_json(self) -> str:
        data = asdict(self)
        data["requirements"] = list(self.requirements)
        data["created"] = self.created.isoformat()
        data["last_used"] = self.last_used.isoformat()
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EnvironmentRecord:
        data = json.loads(text)
        return cls(
            key=str(data["key"]),
            runtime=str(data["runtime"]),
            runtime_version=str(data["runtime_version"]),
            flowyard=str(data["flowyard"]),
            requirements=tuple(str(r) for r in data["requirements"]),
            installed_count=int(data["installed_count"]),
            size_bytes=int(data["size_bytes"]),
            created=datetime.fromisoformat(data["created"]),
            last_used=datetime.fromisoformat(data["last_used"]),
        )


USED_GRANULARITY = timedelta(seconds=60)


def now() -> datetime:
    return datetime.now(UTC)


def read_record(env_dir: Path) -> EnvironmentRecord | None:
    try:
        return EnvironmentRecord.from_json((env_dir / METADATA_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("unreadable environment metadata in %s", env_dir, exc_info=True)
        return None


def write_record(env_dir: Path, record: EnvironmentRecord) -> None:
    """Replace the record atomically (readers never see half a file)."""
    temp = env_dir / f".{METADATA_FILE}.{uuid.uuid4().hex}"
    temp.write_text(record.to_json())
    os.replace(temp, env_dir / METADATA_FILE)


def mark_used(env_dir: Path) -> EnvironmentRecord | None:
    """Update ``last_used``; return the record (``None`` if it is unreadable).

    Eviction orders environments by days of disuse: a record written less than
    :data:`USED_GRANULARITY` ago is left as it is (a burst of runs writes it once).
    """
    record = read_record(env_dir)
    if record is None:
        return None
    moment = now()
    if moment - record.last_used < USED_GRANULARITY:
        return record
    updated = replace(record, last_used=moment)
    try:
        write_record(env_dir, updated)
    except OSError:
        logger.warning("could not update last_used of %s", env_dir, exc_info=True)
    return updated


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (links not followed)."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
    return total
