"""Making the Flowyard SDK importable in every environment, and nothing else.

A ``.pth`` file in the environment points at ``<cache>/sdk/<identity>``, a
directory holding a copy of the ``flowyard`` package only — pointing at the
server's site-packages would hand every run the server's whole dependency set.
The identity is the version plus a digest of the package's files, so an
upgraded (or edited) Flowyard gets new environments instead of old ones whose
``.pth`` would point at code they were not built for. The copy is compiled to
bytecode once per runtime because runs see it read-only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from functools import cached_property
from pathlib import Path

import flowyard
from flowyard.execution.environments._errors import EnvironmentBuildError
from flowyard.execution.environments._locks import exclusive_lock
from flowyard.execution.environments._runtimes import Runtime

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


def default_sdk_path() -> Path:
    """The directory that contains the installed ``flowyard`` package."""
    return Path(flowyard.__file__).resolve().parent.parent


class SdkOverlay:
    """The cached copy of the ``flowyard`` package found under ``source_root``."""

    def __init__(self, cache_dir: Path, source_root: Path) -> None:
        self._package = source_root / "flowyard"
        if not (self._package / "__init__.py").is_file():
            raise EnvironmentBuildError(f"no flowyard package under {source_root}")
        self._root = cache_dir / "sdk"

    @cached_property
    def identity(self) -> str:
        """``<version>-<digest of the package's files>``."""
        digest = hashlib.sha256()
        for path in sorted(self._files()):
            digest.update(str(path.relative_to(self._package)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return f"{flowyard.__version__}-{digest.hexdigest()[:16]}"

    @property
    def path(self) -> Path:
        """The directory a ``.pth`` line names: it contains ``flowyard/``."""
        return self._root / self.identity

    def _files(self) -> list[Path]:
        found: list[Path] = []
        for folder, dirs, files in os.walk(self._package):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            found.extend(Path(folder) / f for f in files if not f.endswith((".pyc", ".pyo")))
        return found

    def ensure(self, runtime: Runtime) -> Path:
        """Publish the copy if missing and compile it for ``runtime``; return :attr:`path`."""
        target = self.path
        marker = target / f".compiled-{runtime.name}-{runtime.version}"
        if marker.exists():
            return target
        with exclusive_lock(self._root / ".lock"):
            if not target.is_dir():
                temp = self._root / f".tmp-{uuid.uuid4().hex}"
                try:
                    shutil.copytree(self._package, temp / "flowyard", ignore=_IGNORED)
                    os.rename(temp, target)
                finally:
                    shutil.rmtree(temp, ignore_errors=True)
            if not marker.exists():
                self._compile(runtime, target)
                marker.touch()
        return target

    def _compile(self, runtime: Runtime, target: Path) -> None:
        done = subprocess.run(
            [str(runtime.python_path), "-I", "-m", "compileall", "-q", str(target / "flowyard")],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise EnvironmentBuildError(
                f"the Flowyard SDK does not compile with runtime {runtime.name!r}: "
                f"{(done.stdout + done.stderr).strip()[-2000:]}"
            )
