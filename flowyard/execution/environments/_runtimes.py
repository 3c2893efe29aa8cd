"""Official runtimes: the interpreters an operator lets runs start from.

A deployment picks one by name (its ``image`` job variable); anything else is
refused with the list of official names. With no configuration the server's
own Python is the only runtime, named ``python<major>.<minor>``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from flowyard.errors import ConfigurationError
from flowyard.execution.environments._errors import UnknownRuntimeError


@dataclass(frozen=True)
class Runtime:
    """An interpreter environments are built on: ``version`` is ``major.minor.micro``."""

    name: str
    python_path: Path
    version: str

    @property
    def major_minor(self) -> str:
        """``3.11`` for ``3.11.7``."""
        return ".".join(self.version.split(".")[:2])


def server_runtime() -> Runtime:
    """The interpreter running this server, as a runtime (its base, not a venv)."""
    # A venv's python is a link to its base; uv would find the base anyway, but
    # naming the base keeps the server's own site-packages out of every key.
    base = Path(getattr(sys, "_base_executable", "") or sys.executable)
    version = "{}.{}.{}".format(*sys.version_info[:3])
    return Runtime(
        name=f"python{sys.version_info[0]}.{sys.version_info[1]}", python_path=base, version=version
    )


def probe_runtime(name: str, python_path: Path, *, timeout_seconds: float = 30.0) -> Runtime:
    """Ask the interpreter at ``python_path`` for its version."""
    code = "import sys; print('%d.%d.%d' % sys.version_info[:3])"
    try:
        done = subprocess.run(
            [str(python_path), "-I", "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigurationError(f"runtime {name!r}: cannot run {python_path}: {exc}") from exc
    if done.returncode != 0:
        raise ConfigurationError(
            f"runtime {name!r}: {python_path} exited with {done.returncode}: {done.stderr.strip()}"
        )
    return Runtime(name=name, python_path=python_path, version=done.stdout.strip())


class RuntimeRegistry:
    """The official runtimes by name; the first one is the default."""

    def __init__(self, runtimes: Iterable[Runtime]) -> None:
        self._runtimes: dict[str, Runtime] = {}
        for runtime in runtimes:
            if runtime.name in self._runtimes:
                raise ConfigurationError(f"runtime {runtime.name!r} is registered twice")
            self._runtimes[runtime.name] = runtime
        if not self._runtimes:
            raise ConfigurationError("at least one runtime must be registered")

    @classmethod
    def from_settings(cls, mapping: Mapping[str, str] | None = None) -> RuntimeRegistry:
        """Runtimes from ``name -> interpreter path`` (settings ``runtimes``).

        Empty or ``None`` registers the server's own Python. Each interpreter is
        run once to read its version; one that cannot run is a configuration error.
        """
        if not mapping:
            return cls([server_runtime()])
        return cls(probe_runtime(name, Path(path)) for name, path in mapping.items())

    @property
    def names(self) -> tuple[str, ...]:
        """The official names, default first."""
        return tuple(self._runtimes)

    def __iter__(self) -> Iterator[Runtime]:
        return iter(self._runtimes.values())

    def resolve(self, name: str | None) -> Runtime:
        """The runtime called ``name``, or the default for ``None`` / empty."""
        if not name:
            return next(iter(self._runtimes.values()))
        runtime = self._runtimes.get(name)
        if runtime is None:
            raise UnknownRuntimeError(
                f"runtime {name!r} is not an official runtime of this server; "
                f"official runtimes: {', '.join(self._runtimes)}"
            )
        return runtime
