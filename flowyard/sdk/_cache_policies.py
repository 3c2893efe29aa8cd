"""Cache policies: how a task run's cache key is computed (Prefect 3's model).

A policy maps (task run context, inputs, flow parameters) to a key or None
(no caching). Policies combine with ``+`` (the key hashes every part's key)
and ``INPUTS - "name"`` leaves a parameter out. A task caches only when it
persists results; giving a task a ``cache_policy`` or ``cache_key_fn`` turns
persistence on, as in Prefect.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import inspect
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowyard.sdk._context import TaskRunContext

__all__ = [
    "DEFAULT",
    "FLOW_PARAMETERS",
    "INPUTS",
    "NONE",
    "NO_CACHE",
    "RUN_ID",
    "TASK_SOURCE",
    "CacheKeyFnPolicy",
    "CachePolicy",
    "CompoundCachePolicy",
    "FlowParameters",
    "Inputs",
    "RunId",
    "TaskSource",
    "hash_objects",
]

CacheKeyFn = Callable[["TaskRunContext", dict[str, Any]], "str | None"]


def _json_default(value: object) -> object:
    if isinstance(value, datetime.date | datetime.time | datetime.timedelta):
        return repr(value)
    decimal = sys.modules.get("decimal")  # a Decimal exists only once decimal is imported
    if isinstance(value, uuid.UUID | PurePath) or (decimal and isinstance(value, decimal.Decimal)):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return value.hex()
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return {"__model__": type(value).__qualname__, "data": dump(mode="json")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__dataclass__": type(value).__qualname__, "data": dataclasses.asdict(value)}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def hash_objects(*args: object, **kwargs: object) -> str:
    """A stable hex digest of the arguments: JSON when possible, else pickle.

    Raises:
        ValueError: when the objects can be neither JSON-encoded nor pickled.
    """
    import json
    import pickle

    try:
        blob = json.dumps([args, kwargs], sort_keys=True, default=_json_default).encode()
    except (TypeError, ValueError) as json_error:
        try:
            blob = pickle.dumps([args, kwargs], protocol=4)
        except Exception as pickle_error:
            raise ValueError(
                "Unable to create hash - objects could not be serialized.\n"
                f"  JSON error: {json_error}\n  Pickle error: {pickle_error}\n"
                "This often happens when task inputs hold locks, file handles, clients or "
                "other system resources. Leave them out of the key (INPUTS - 'name'), "
                "give the task a cache_key_fn, or use cache_policy=NO_CACHE."
            ) from pickle_error
    return hashlib.md5(blob, usedforsecurity=False).hexdigest()


class CachePolicy:
    """Base class: compute a cache key, or None for "do not cache"."""

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, object],
        flow_parameters: Mapping[str, object] | None,
    ) -> str | None:
        raise NotImplementedError

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if isinstance(other, _NoCache):
            return self
        mine = self.policies if isinstance(self, CompoundCachePolicy) else (self,)
        theirs = other.policies if isinstance(other, CompoundCachePolicy) else (other,)
        return CompoundCachePolicy(policies=(*mine, *theirs))

    def __sub__(self, name: str) -> CachePolicy:
        if not isinstance(name, str):
            raise TypeError("only parameter names (str) can be subtracted from a cache policy")
        return self + Inputs(exclude=(name,))


@dataclasses.dataclass(frozen=True)
class CompoundCachePolicy(CachePolicy):
    """Several policies; the key hashes the keys of those that give one."""

    policies: tuple[CachePolicy, ...] = ()

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, object],
        flow_parameters: Mapping[str, object] | None,
    ) -> str | None:
        keys = [p.compute_key(task_ctx, inputs, flow_parameters) for p in self.policies]
        present = [key for key in keys if key is not None]
        return hash_objects(*present) if present else None

    def __sub__(self, name: str) -> CachePolicy:
        if not any(isinstance(p, Inputs) for p in self.policies):
            return super().__sub__(name)
        return CompoundCachePolicy(
            policies=tuple(p - name if isinstance(p, Inputs) else p for p in self.policies)
        )


@dataclasses.dataclass(frozen=True)
class Inputs(CachePolicy):
    """The task's inputs (minus ``exclude``)."""

    exclude: tuple[str, ...] = ()

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, object],
        flow_parameters: Mapping[str, object] | None,
    ) -> str | None:
        if not inputs:
            return None
        kept = {k: v for k, v in inputs.items() if k not in self.exclude}
        return hash_objects(kept)

    def __sub__(self, name: str) -> CachePolicy:
        if not isinstance(name, str):
            raise TypeError("only parameter names (str) can be subtracted from a cache policy")
        return Inputs(exclude=(*self.exclude, name))


@dataclasses.dataclass(frozen=True)
class TaskSource(CachePolicy):
    """The task function's source code: editing the task invalidates its cache."""

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, object],
        flow_parameters: Mapping[str, object] | None,
    ) -> str | None:
        if task_ctx is None:
            return None
        return task_ctx.task.source_hash()


def source_hash(fn: Callable[..., object]) -> str:
    """A digest of a function's source (its bytecode when the source is unavailable)."""
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        text = code.co_code.hex() if code is not None else repr(fn)
    return hash_objects(text)


@dataclasses.dataclass(frozen=True)
class FlowParameters(CachePolicy):
    """The parameters of the enclosing flow run."""

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, object],
        flow_parameters: Mapping[str, object] | None,
    ) -> str | None:
        return hash_objects(dict(flow_parameters)) if flow_parameters else None


@dataclasses.dataclass(frozen=True)
class RunId(CachePolicy):
    """The enclosing flow run's id: results are reused only within one run."""

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, object],
        flow_parameters: Mapping[str, object] | None,
    ) -> str | None:
        if task_ctx is None or task_ctx.task_run.flow_run_id is None:
            return None
        return str(task_ctx.task_run.flow_run_id)


@dataclasses.dataclass(frozen=True)
class CacheKeyFnPolicy(CachePolicy):
    """A user function ``cache_key_fn(context, parameters) -> str | None``."""

    cache_key_fn: CacheKeyFn

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, object],
        flow_parameters: Mapping[str, object] | None,
    ) -> str | None:
        if task_ctx is None:
            return None
        return self.cache_key_fn(task_ctx, inputs if isinstance(inputs, dict) else dict(inputs))


@dataclasses.dataclass(frozen=True)
class _NoCache(CachePolicy):
    """Never cache."""

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: Mapping[str, object],
        flow_parameters: Mapping[str, object] | None,
    ) -> None:
        return None

    def __add__(self, other: CachePolicy) -> CachePolicy:
        return other


INPUTS = Inputs()
TASK_SOURCE = TaskSource()
FLOW_PARAMETERS = FlowParameters()
RUN_ID = RunId()
NONE: CachePolicy = _NoCache()
NO_CACHE = NONE
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID


def task_input_hash(context: TaskRunContext, arguments: Mapping[str, object]) -> str | None:
    """A ``cache_key_fn`` hashing the task's source and inputs (Prefect's helper)."""
    return hash_objects(context.task.source_hash(), dict(arguments))
