"""Artifacts: what a run publishes for people to read (``create_markdown_artifact`` ...).

An artifact belongs to the run that creates it (its task run too, inside a
task) and, given a ``key``, joins that key's history on the server. The
server checks each type's data and keeps it in one shape per type; the SDK
checks what it can before sending (the key, progress bounds) so that a
mistake is a ``ValueError`` at the call.

Artifacts reach the server through an :class:`ArtifactBackend` that the
server integration installs. With no server configured there is nowhere to
keep them: each call returns an id and the first one logs a warning saying
so, rather than failing a flow over a report. As in Prefect 3, the functions
return a coroutine when called inside an event loop.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from flowyard.sdk._backends import (
    configured_api_url,
    ensure_server_integration,
    in_async_context,
    install_deferred,
)
from flowyard.sdk._context import flow_run_context, task_run_context

__all__ = [
    "ArtifactBackend",
    "ArtifactDraft",
    "InMemoryArtifacts",
    "create_image_artifact",
    "create_link_artifact",
    "create_markdown_artifact",
    "create_progress_artifact",
    "create_table_artifact",
    "set_artifact_backend",
    "update_progress_artifact",
]

_KEY = re.compile(r"[a-z0-9-]{1,200}")
_logger = logging.getLogger("flowyard.artifacts")

Table = Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]]


@dataclass(frozen=True, slots=True)
class ArtifactDraft:
    """An artifact as the SDK sends it; the server normalises ``data`` by ``type``."""

    type: str
    data: Any
    key: str | None = None
    description: str | None = None
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None


@runtime_checkable
class ArtifactBackend(Protocol):
    """Where artifacts are kept."""

    def create(self, draft: ArtifactDraft) -> uuid.UUID:
        """Store ``draft``; its id. Raises ValueError naming the field for bad data."""
        ...

    def update(self, artifact_id: uuid.UUID, data: Any, description: str | None) -> None:
        """New data for an artifact; ObjectNotFound if there is none."""
        ...


class InMemoryArtifacts:
    """An artifact backend in a dict, for tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.artifacts: dict[uuid.UUID, ArtifactDraft] = {}

    def create(self, draft: ArtifactDraft) -> uuid.UUID:
        artifact_id = uuid.uuid4()
        with self._lock:
            self.artifacts[artifact_id] = draft
        return artifact_id

    def update(self, artifact_id: uuid.UUID, data: Any, description: str | None) -> None:
        from dataclasses import replace

        from flowyard.sdk._errors import ObjectNotFound

        with self._lock:
            draft = self.artifacts.get(artifact_id)
            if draft is None:
                raise ObjectNotFound(f"artifact {artifact_id} does not exist")
            changes: dict[str, Any] = {"data": data}
            if description is not None:
                changes["description"] = description
            self.artifacts[artifact_id] = replace(draft, **changes)


_backend: ArtifactBackend | None = None
_warned = False


def set_artifact_backend(backend: ArtifactBackend | None) -> ArtifactBackend | None:
    """Install the artifact backend (None: none). Returns the previous one."""
    global _backend
    previous, _backend = _backend, backend
    return previous


def _current_backend() -> ArtifactBackend | None:
    ensure_server_integration()
    if _backend is None:
        install_deferred()
    return _backend


def _unkept(kind: str, key: str | None) -> uuid.UUID:
    global _warned
    if not _warned:
        _warned = True
        where = configured_api_url()
        reason = (
            f"this installation cannot reach the server at {where}"
            if where
            else "no Flowyard server is configured (FLOWYARD_API_URL)"
        )
        _logger.warning("Artifacts are not kept: %s. The first was a %s artifact.", reason, kind)
    _logger.debug("%s artifact %r not kept", kind, key)
    return uuid.uuid4()


def _draft(kind: str, data: Any, key: str | None, description: str | None) -> ArtifactDraft:
    if key is not None and (not isinstance(key, str) or not _KEY.fullmatch(key)):
        raise ValueError(
            f"artifact key {key!r}: expected lowercase letters, digits and dashes "
            "(at most 200), e.g. 'daily-report'"
        )
    if description is not None and not isinstance(description, str):
        raise TypeError(f"description must be text, got {type(description).__name__}")
    task = task_run_context.get()
    flow = flow_run_context.get()
    flow_run_id = task.task_run.flow_run_id if task is not None else None
    if flow_run_id is None and flow is not None:
        flow_run_id = flow.flow_run.id
    # A task called outside any flow has no run the server knows: its artifact has none.
    task_run_id = task.task_run.id if task is not None and flow_run_id is not None else None
    return ArtifactDraft(
        type=kind,
        data=data,
        key=key,
        description=description,
        flow_run_id=flow_run_id,
        task_run_id=task_run_id,
    )


def _publish(draft: ArtifactDraft) -> uuid.UUID:
    backend = _current_backend()
    if backend is None:
        return _unkept(draft.type, draft.key)
    return backend.create(draft)


def _create(draft: ArtifactDraft) -> uuid.UUID | Coroutine[object, object, uuid.UUID]:
    if in_async_context():
        return _acreate(draft)
    return _publish(draft)


async def _acreate(draft: ArtifactDraft) -> uuid.UUID:
    import asyncio

    return await asyncio.to_thread(_publish, draft)


def _progress(progress: float) -> float:
    if isinstance(progress, bool) or not isinstance(progress, int | float):
        raise TypeError(f"progress must be a number from 0 to 100, got {progress!r}")
    if not 0 <= progress <= 100:
        raise ValueError(f"progress must be from 0 to 100, got {progress!r}")
    return progress


def create_markdown_artifact(
    markdown: str, key: str | None = None, description: str | None = None
) -> uuid.UUID | Coroutine[object, object, uuid.UUID]:
    """Publish a markdown report; its id."""
    if not isinstance(markdown, str):
        raise TypeError(f"markdown must be text, got {type(markdown).__name__}")
    return _create(_draft("markdown", markdown, key, description))


def create_table_artifact(
    table: Table, key: str | None = None, description: str | None = None
) -> uuid.UUID | Coroutine[object, object, uuid.UUID]:
    """Publish a table: a list of rows (dicts or lists) or a dict of columns; its id."""
    data: Any
    if isinstance(table, Mapping):
        data = {str(name): list(column) for name, column in table.items()}
    elif isinstance(table, Sequence) and not isinstance(table, str | bytes):
        data = [dict(row) if isinstance(row, Mapping) else list(row) for row in table]
    else:
        raise TypeError(
            f"table must be a list of rows or a dict of columns, got {type(table).__name__}"
        )
    return _create(_draft("table", _jsonable(data), key, description))


def create_link_artifact(
    link: str,
    link_text: str | None = None,
    key: str | None = None,
    description: str | None = None,
) -> uuid.UUID | Coroutine[object, object, uuid.UUID]:
    """Publish a link (an http or https URL), shown as ``link_text`` if given; its id."""
    return _create(_draft("link", {"url": link, "text": link_text}, key, description))


def create_image_artifact(
    image_url: str, key: str | None = None, description: str | None = None
) -> uuid.UUID | Coroutine[object, object, uuid.UUID]:
    """Publish an image by its http or https URL; its id."""
    return _create(_draft("image", {"url": image_url, "text": None}, key, description))


def create_progress_artifact(
    progress: float, key: str | None = None, description: str | None = None
) -> uuid.UUID | Coroutine[object, object, uuid.UUID]:
    """Publish a run's progress (0 to 100); update it with :func:`update_progress_artifact`."""
    return _create(_draft("progress", _progress(progress), key, description))


def update_progress_artifact(
    artifact_id: uuid.UUID, progress: float, description: str | None = None
) -> uuid.UUID | Coroutine[object, object, uuid.UUID]:
    """Set a progress artifact's progress (0 to 100); its id."""
    value = _progress(progress)
    if in_async_context():
        return _aupdate(artifact_id, value, description)
    return _update(artifact_id, value, description)


def _update(artifact_id: uuid.UUID, progress: float, description: str | None) -> uuid.UUID:
    backend = _current_backend()
    if backend is None:
        _unkept("progress", None)
        return artifact_id
    backend.update(uuid.UUID(str(artifact_id)), progress, description)
    return artifact_id


async def _aupdate(artifact_id: uuid.UUID, progress: float, description: str | None) -> uuid.UUID:
    import asyncio

    return await asyncio.to_thread(_update, artifact_id, progress, description)


def _jsonable(value: Any) -> Any:
    """Table cells as JSON: numbers, text, booleans and None as they are; dates as ISO
    text; anything else as its ``str`` (a pandas Timestamp, a Decimal)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    return str(value)
