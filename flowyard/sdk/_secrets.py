"""``Secret``: a named secret value read by flows (``Secret.load("name").get()``).

Secret values are stored by the server, encrypted at rest; the SDK only
reaches them through a :class:`SecretBackend` installed by the server
integration. With no server there is no local fallback: a secret that
silently came from somewhere else would be worse than a clear error. A
``Secret`` never shows its value in ``repr``, ``str`` or error messages.

As in Prefect 3, ``load`` and ``save`` return a coroutine when called from
inside an event loop (``await Secret.load("name")`` in an async flow);
``aload`` and ``asave`` are the explicit async forms.
"""

from __future__ import annotations

import threading
from collections.abc import Coroutine
from typing import Protocol, runtime_checkable

from flowyard.sdk._backends import (
    ensure_server_integration,
    in_async_context,
    install_deferred,
    missing_backend,
)
from flowyard.sdk._errors import ObjectNotFound

__all__ = ["InMemorySecrets", "Secret", "SecretBackend", "set_secret_backend"]


@runtime_checkable
class SecretBackend(Protocol):
    """Reads and writes secret values by name."""

    def read(self, name: str) -> str:
        """The value of secret ``name``; raises ObjectNotFound if there is none."""
        ...

    def write(self, name: str, value: str, overwrite: bool) -> None:
        """Store ``value``; raises ValueError if it exists and ``overwrite`` is false."""
        ...


class InMemorySecrets:
    """A secret backend in a dict, for tests."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._values = dict(values or {})

    def read(self, name: str) -> str:
        with self._lock:
            if name not in self._values:
                raise ObjectNotFound(f"secret {name!r} does not exist")
            return self._values[name]

    def write(self, name: str, value: str, overwrite: bool) -> None:
        with self._lock:
            if name in self._values and not overwrite:
                raise ValueError(f"secret {name!r} already exists; pass overwrite=True")
            self._values[name] = value


_backend: SecretBackend | None = None


def set_secret_backend(backend: SecretBackend | None) -> SecretBackend | None:
    """Install the secret backend (None: none). Returns the previous one."""
    global _backend
    previous, _backend = _backend, backend
    return previous


def _require_backend(action: str) -> SecretBackend:
    ensure_server_integration()
    if _backend is None:
        install_deferred()
    if _backend is None:
        raise missing_backend(action)
    return _backend


class Secret:
    """A secret string; ``get()`` returns it, ``repr`` never shows it."""

    __slots__ = ("_name", "_value")

    def __init__(self, value: str, *, name: str | None = None) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret's value must be a string")
        self._value = value
        self._name = name

    @property
    def name(self) -> str | None:
        """The name it was loaded from or saved under, if any."""
        return self._name

    def get(self) -> str:
        """The secret value."""
        return self._value

    @classmethod
    def load(cls, name: str) -> Secret | Coroutine[object, object, Secret]:
        """The secret stored under ``name`` (a coroutine inside an event loop).

        Raises:
            ObjectNotFound: there is no such secret.
            NoServerConfigured: no server is configured.
        """
        if in_async_context():
            return cls.aload(name)
        return cls(_require_backend(f"load secret {name!r}").read(name), name=name)

    @classmethod
    async def aload(cls, name: str) -> Secret:
        import asyncio

        backend = _require_backend(f"load secret {name!r}")
        return cls(await asyncio.to_thread(backend.read, name), name=name)

    def save(self, name: str, overwrite: bool = False) -> Coroutine[object, object, None] | None:
        """Store the value under ``name`` (a coroutine inside an event loop)."""
        if in_async_context():
            return self.asave(name, overwrite)
        _require_backend(f"save secret {name!r}").write(name, self._value, overwrite)
        self._name = name
        return None

    async def asave(self, name: str, overwrite: bool = False) -> None:
        import asyncio

        backend = _require_backend(f"save secret {name!r}")
        await asyncio.to_thread(backend.write, name, self._value, overwrite)
        self._name = name

    def __repr__(self) -> str:
        label = f", name={self._name!r}" if self._name else ""
        return f"Secret(value='**********'{label})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled (it would write its value to storage)")
