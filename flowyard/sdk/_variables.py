"""``Variable``: named JSON values read by flows (``Variable.get("name")``).

Variables live on the server and are reached through a
:class:`VariableBackend` installed by the server integration. With no server
configured, ``get``, ``set`` and ``unset`` raise ``NoServerConfigured``
rather than quietly returning the default: a flow that reads configuration
should not run with a fallback its author did not choose.

As in Prefect 3, the classmethods return a coroutine when called from inside
an event loop; ``aget``, ``aset`` and ``aunset`` are the explicit async forms.
"""

from __future__ import annotations

import threading
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from flowyard.sdk._backends import (
    ensure_server_integration,
    in_async_context,
    install_deferred,
    missing_backend,
)
from flowyard.sdk._errors import ObjectNotFound

__all__ = ["InMemoryVariables", "Variable", "VariableBackend", "set_variable_backend"]

JSONValue = str | int | float | bool | None | list["JSONValue"] | dict[str, "JSONValue"]


@runtime_checkable
class VariableBackend(Protocol):
    """Reads and writes variables by name."""

    def get(self, name: str) -> JSONValue:
        """The value of ``name``; raises ObjectNotFound if there is none."""
        ...

    def set(self, name: str, value: JSONValue, tags: tuple[str, ...], overwrite: bool) -> None:
        """Store ``value``; raises ValueError if it exists and ``overwrite`` is false."""
        ...

    def unset(self, name: str) -> bool:
        """Delete ``name``; False if it did not exist."""
        ...


class InMemoryVariables:
    """A variable backend in a dict, for tests."""

    def __init__(self, values: dict[str, JSONValue] | None = None) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, JSONValue] = dict(values or {})

    def get(self, name: str) -> JSONValue:
        with self._lock:
            if name not in self._values:
                raise ObjectNotFound(f"variable {name!r} does not exist")
            return self._values[name]

    def set(self, name: str, value: JSONValue, tags: tuple[str, ...], overwrite: bool) -> None:
        with self._lock:
            if name in self._values and not overwrite:
                raise ValueError(f"variable {name!r} already exists; pass overwrite=True")
            self._values[name] = value

    def unset(self, name: str) -> bool:
        with self._lock:
            return self._values.pop(name, _MISSING) is not _MISSING


_MISSING = object()
_backend: VariableBackend | None = None


def set_variable_backend(backend: VariableBackend | None) -> VariableBackend | None:
    """Install the variable backend (None: none). Returns the previous one."""
    global _backend
    previous, _backend = _backend, backend
    return previous


def _require_backend(action: str) -> VariableBackend:
    ensure_server_integration()
    if _backend is None:
        install_deferred()
    if _backend is None:
        raise missing_backend(action)
    return _backend


def _check(name: str, value: JSONValue) -> None:
    import json

    if not name or not isinstance(name, str) or len(name) > 255:
        raise ValueError("a variable name must be a non-empty string of at most 255 characters")
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"variable {name!r}: the value must be JSON-serializable ({exc})"
        ) from None


@dataclass(frozen=True, slots=True)
class Variable:
    """A named JSON value stored on the server."""

    name: str
    value: JSONValue
    tags: tuple[str, ...] = ()

    @classmethod
    def get(
        cls, name: str, default: JSONValue = None
    ) -> JSONValue | Coroutine[object, object, JSONValue]:
        """The value of ``name``, or ``default`` if there is no such variable."""
        if in_async_context():
            return cls.aget(name, default)
        backend = _require_backend(f"read variable {name!r}")
        try:
            return backend.get(name)
        except ObjectNotFound:
            return default

    @classmethod
    async def aget(cls, name: str, default: JSONValue = None) -> JSONValue:
        import asyncio

        backend = _require_backend(f"read variable {name!r}")
        try:
            return await asyncio.to_thread(backend.get, name)
        except ObjectNotFound:
            return default

    @classmethod
    def set(
        cls,
        name: str,
        value: JSONValue,
        tags: Iterable[str] | None = None,
        overwrite: bool = False,
    ) -> Variable | Coroutine[object, object, Variable]:
        """Store ``value`` under ``name`` and return the variable."""
        if in_async_context():
            return cls.aset(name, value, tags, overwrite)
        _check(name, value)
        tag_tuple = tuple(tags or ())
        _require_backend(f"set variable {name!r}").set(name, value, tag_tuple, overwrite)
        return cls(name, value, tag_tuple)

    @classmethod
    async def aset(
        cls,
        name: str,
        value: JSONValue,
        tags: Iterable[str] | None = None,
        overwrite: bool = False,
    ) -> Variable:
        import asyncio

        _check(name, value)
        tag_tuple = tuple(tags or ())
        backend = _require_backend(f"set variable {name!r}")
        await asyncio.to_thread(backend.set, name, value, tag_tuple, overwrite)
        return cls(name, value, tag_tuple)

    @classmethod
    def unset(cls, name: str) -> bool | Coroutine[object, object, bool]:
        """Delete ``name``; False if it did not exist."""
        if in_async_context():
            return cls.aunset(name)
        return _require_backend(f"unset variable {name!r}").unset(name)

    @classmethod
    async def aunset(cls, name: str) -> bool:
        import asyncio

        backend = _require_backend(f"unset variable {name!r}")
        return await asyncio.to_thread(backend.unset, name)
