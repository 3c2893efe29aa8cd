"""Content-addressed environments built with uv, once per key, shared by every run.

Layout under the cache root::

    envs/<key>/            a published environment (a relocatable venv)
    envs/.tmp-<key>-*      a build in progress (never used by a run)
    envs/.locks/<key>.*    the build lock and the in-use lease of a key
    uv/                    uv's own cache: a second environment with the same
                           packages is hard links, not downloads
    bytecode/<tag>/        .pyc files by source digest, hard-linked into envs
    sdk/<identity>/        the Flowyard package every environment imports

A build runs ``uv venv --relocatable`` then ``uv pip install`` into a temporary
directory under the key's lock, gives every module its bytecode (linked from
the shared store in ``_bytecode``, compiled only when new), writes its metadata, and
renames the directory into place: an environment directory either is complete
or does not exist. The venv is relocatable because it is built under one name
and published under another (and a sandbox may mount it elsewhere again).

The SDK's own requirements are installed in the same resolution as the user's,
so a conflicting pin fails with uv's resolver message rather than producing an
environment in which the runner cannot start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from flowyard.execution.environments import _eviction
from flowyard.execution.environments._bytecode import prune_store, share_bytecode
from flowyard.execution.environments._errors import EnvironmentBuildError
from flowyard.execution.environments._locks import SharedLease, exclusive_lock
from flowyard.execution.environments._metadata import (
    EnvironmentRecord,
    mark_used,
    now,
    tree_size,
    write_record,
)
from flowyard.execution.environments._requirements import (
    DEFAULT_SDK_REQUIREMENTS,
    IndexSettings,
    environment_key,
    normalize_requirements,
)
from flowyard.execution.environments._runtimes import Runtime
from flowyard.execution.environments._sdk import SdkOverlay, default_sdk_path
from flowyard.execution.environments._uv import Uv, packaged_uv

logger = logging.getLogger(__name__)

SDK_PTH_FILE = "_flowyard_sdk.pth"


@dataclass(frozen=True)
class ReadyEnvironment:
    """An environment a run can use: ``python`` is its interpreter.

    ``sdk_path`` is the directory the environment's ``.pth`` adds to
    ``sys.path``; a sandbox must make it visible (read-only) next to ``path``.
    """

    path: Path
    python: Path
    key: str
    cached: bool
    duration_seconds: float
    installed_count: int
    sdk_path: Path

    def summary(self) -> str:
        """A log line: ``environment ready (cached) in 0.01 s`` or ``installed 12 packages in 3.1 s``."""
        if self.cached:
            return f"environment ready (cached) in {self.duration_seconds:.2f} s"
        return f"installed {self.installed_count} packages in {self.duration_seconds:.1f} s"


class EnvironmentBuilder:
    """Builds and hands out environments under ``cache_dir``.

    ``index`` is the operator's package index configuration; ``sdk_requirements``
    are installed with every environment; ``sdk_path`` is a directory containing
    the ``flowyard`` package to expose (default: the installed one). uv's
    download cache is ``<cache_dir>/uv`` unless ``uv_cache_dir`` says otherwise;
    keep it on the same file system as ``cache_dir`` so installs are hard links.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        index: IndexSettings | None = None,
        sdk_requirements: Sequence[str] = DEFAULT_SDK_REQUIREMENTS,
        sdk_path: Path | None = None,
        uv_binary: Path | None = None,
        uv_cache_dir: Path | None = None,
        timeout_seconds: float = 1800.0,
    ) -> None:
        self.cache_dir = cache_dir
        self.index = index or IndexSettings()
        self._sdk_requirements = normalize_requirements(sdk_requirements)
        self._sdk = SdkOverlay(cache_dir, sdk_path or default_sdk_path())
        self._envs = cache_dir / "envs"
        self._locks = self._envs / ".locks"
        self._bytecode = cache_dir / "bytecode"
        self._uv = Uv(
            binary=uv_binary or packaged_uv(),
            cache_dir=uv_cache_dir or cache_dir / "uv",
            timeout_seconds=timeout_seconds,
            secrets=self.index.secrets,
        )

    # -- keys -----------------------------------------------------------------------

    def requirements_for(self, requirements: Sequence[str]) -> tuple[str, ...]:
        """Everything that will be installed: the user's and the SDK's, normalized."""
        return tuple(sorted({*normalize_requirements(requirements), *self._sdk_requirements}))

    def key_for(self, runtime: Runtime, requirements: Sequence[str] = ()) -> str:
        """The cache key of the environment for ``requirements`` on ``runtime``."""
        return environment_key(
            runtime,
            self.requirements_for(requirements),
            index=self.index,
            flowyard_identity=self._sdk.identity,
        )

    def path_for(self, key: str) -> Path:
        return self._envs / key

    # -- building and using -----------------------------------------------------------

    async def build(self, runtime: Runtime, requirements: Sequence[str] = ()) -> ReadyEnvironment:
        """Make sure the environment exists (building it if needed) and describe it.

        The environment is not leased once this returns; a run should use
        :meth:`acquire` so that eviction cannot remove it underneath.
        """
        async with self.acquire(runtime, requirements) as ready:
            return ready

    @asynccontextmanager
    async def acquire(
        self, runtime: Runtime, requirements: Sequence[str] = ()
    ) -> AsyncIterator[ReadyEnvironment]:
        """Build if needed and hold the environment in use for the ``async with`` block."""
        key = self.key_for(runtime, requirements)
        lease = SharedLease(self._locks / f"{key}.lease")
        work = asyncio.ensure_future(
            asyncio.to_thread(self._acquire_blocking, lease, key, runtime, requirements)
        )
        try:
            ready = await asyncio.shield(work)
        except asyncio.CancelledError:
            # The thread carries on (a build is never left half-done); drop the
            # lease whenever it finishes.
            work.add_done_callback(lambda _: lease.release())
            raise
        try:
            yield ready
        finally:
            lease.release()

    @contextmanager
    def lease(self, key: str) -> Iterator[None]:
        """Hold the environment ``key`` in use (e.g. for a run re-adopted after a restart)."""
        lease = SharedLease(self._locks / f"{key}.lease")
        lease.acquire()
        try:
            yield
        finally:
            lease.release()

    def _acquire_blocking(
        self, lease: SharedLease, key: str, runtime: Runtime, requirements: Sequence[str]
    ) -> ReadyEnvironment:
        # Lease first: once held, eviction cannot remove the environment, so the
        # existence check below stays true for as long as the run needs it.
        lease.acquire()
        try:
            return self._ensure(key, runtime, requirements)
        except BaseException:
            lease.release()
            raise

    def _ensure(self, key: str, runtime: Runtime, requirements: Sequence[str]) -> ReadyEnvironment:
        started = time.perf_counter()
        target = self.path_for(key)
        ready = self._published(target, key, started)
        if ready is not None:
            return ready
        with exclusive_lock(self._locks / f"{key}.build"):
            ready = self._published(target, key, started)
            if ready is not None:
                return ready  # another process built it while we waited
            count = self._build(key, runtime, self.requirements_for(requirements), target)
        return self._ready(target, key, cached=False, started=started, count=count)

    def _published(self, target: Path, key: str, started: float) -> ReadyEnvironment | None:
        if not target.is_dir():
            return None
        record = mark_used(target)
        count = record.installed_count if record else 0
        return self._ready(target, key, cached=True, started=started, count=count)

    def _ready(
        self, target: Path, key: str, *, cached: bool, started: float, count: int
    ) -> ReadyEnvironment:
        return ReadyEnvironment(
            path=target,
            python=target / "bin" / "python",
            key=key,
            cached=cached,
            duration_seconds=time.perf_counter() - started,
            installed_count=count,
            sdk_path=self._sdk.path,
        )

    def _build(
        self, key: str, runtime: Runtime, requirements: tuple[str, ...], target: Path
    ) -> int:
        """Build into a temporary directory and publish it; return the package count."""
        _eviction.remove_leftovers(self._envs, key)  # we hold the key's build lock
        sdk_dir = self._sdk.ensure(runtime)
        temp = self._envs / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            self._uv.run(
                [
                    "venv",
                    "--quiet",
                    "--no-config",
                    "--relocatable",
                    "--python",
                    str(runtime.python_path),
                    str(temp),
                ],
                cwd=self._envs,
                what=f"creating a {runtime.name} environment",
            )
            self._uv.run(
                [
                    "pip",
                    "install",
                    "--no-config",
                    "--python",
                    str(temp / "bin" / "python"),
                    *self.index.uv_arguments(),
                    "--",
                    *requirements,
                ],
                cwd=self._envs,
                what="installing the run's packages",
            )
            site_packages = _site_packages(temp, runtime)
            (site_packages / SDK_PTH_FILE).write_text(f"{sdk_dir}\n")
            bytecode = share_bytecode(site_packages, self._bytecode, runtime)
            count = sum(1 for p in site_packages.glob("*.dist-info") if p.is_dir())
            created = now()
            write_record(
                temp,
                EnvironmentRecord(
                    key=key,
                    runtime=runtime.name,
                    runtime_version=runtime.version,
                    flowyard=self._sdk.identity,
                    requirements=requirements,
                    installed_count=count,
                    size_bytes=tree_size(temp),
                    created=created,
                    last_used=created,
                ),
            )
            os.rename(temp, target)
        finally:
            if temp.exists():
                shutil.rmtree(temp, ignore_errors=True)
        logger.info(
            "built environment %s: %d packages, %d .pyc linked, %d compiled",
            key[:12],
            count,
            bytecode.linked,
            bytecode.compiled,
        )
        return count

    # -- housekeeping ---------------------------------------------------------------------

    def environments(self) -> tuple[EnvironmentRecord, ...]:
        """Every published environment's record, least recently used first."""
        return _eviction.list_records(self._envs)

    def evict(self, max_bytes: int) -> _eviction.EvictionReport:
        """Remove least recently used environments not in use until at most ``max_bytes`` remain."""
        report = _eviction.evict(self._envs, self._locks, max_bytes)
        if report.removed:
            prune_store(self._bytecode)
        return report


def _site_packages(env: Path, runtime: Runtime) -> Path:
    expected = env / "lib" / f"python{runtime.major_minor}" / "site-packages"
    if expected.is_dir():
        return expected
    found = sorted(env.glob("lib/*/site-packages"))
    if not found:
        raise EnvironmentBuildError(f"no site-packages directory in the new environment {env.name}")
    return found[0]
