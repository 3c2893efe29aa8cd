"""Bytecode shared between environments, the way uv shares wheels.

``uv pip install --compile-bytecode`` compiles every file of every environment
again; for ``pandas`` that is about three of the four seconds a new
environment costs, although most files are byte-identical to files another
environment already compiled. Here the ``.pyc`` files live in a store keyed by
the sha256 of their source, and a new environment hard-links the ones it
finds, compiling only sources the store has never seen.

The ``.pyc`` files use the ``unchecked-hash`` invalidation mode: their content
then depends only on the source's content (not on its path or mtime), which is
what makes one file valid in every environment, and Python does not stat the
source on import. That is sound because a published environment never
changes; its key names exactly what was installed. A store entry whose link
count has dropped to one is used by no environment and is pruned on eviction.

Packages' own test suites (directories named ``tests``: more than half of the
files of pandas and numpy) are not compiled ahead: runs do not import them,
and if one does, Python compiles in memory as it would without any ``.pyc``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from flowyard.execution.environments._runtimes import Runtime

logger = logging.getLogger(__name__)

_NOT_COMPILED_DIRECTORIES = frozenset({"tests"})


@dataclass(frozen=True)
class BytecodeStats:
    """How many ``.pyc`` files were linked from the store and how many compiled."""

    linked: int
    compiled: int


def cache_tag(runtime: Runtime) -> str:
    """CPython's ``sys.implementation.cache_tag`` for the runtime's version."""
    major, minor = runtime.major_minor.split(".")
    return f"cpython-{major}{minor}"


def share_bytecode(site_packages: Path, store: Path, runtime: Runtime) -> BytecodeStats:
    """Give every ``.py`` under ``site_packages`` its ``.pyc``: linked if known, else compiled."""
    tag = cache_tag(runtime)
    shelf = store / tag
    missing: list[tuple[Path, Path, Path]] = []
    linked = 0
    for source in site_packages.rglob("*.py"):
        if _NOT_COMPILED_DIRECTORIES.intersection(source.relative_to(site_packages).parts[:-1]):
            continue
        target = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        stored = _stored(shelf, source)
        if stored.is_file():
            target.parent.mkdir(exist_ok=True)
            _link(stored, target)
            linked += 1
        else:
            missing.append((source, target, stored))
    if missing:
        _compile(runtime, [source for source, _, _ in missing])
    compiled = 0
    for _, target, stored in missing:
        if target.is_file():  # a source that does not compile for this runtime has none
            stored.parent.mkdir(parents=True, exist_ok=True)
            temp = stored.with_name(f".{uuid.uuid4().hex}.tmp")
            _link(target, temp)
            os.replace(temp, stored)
            compiled += 1
    return BytecodeStats(linked=linked, compiled=compiled)


def prune_store(store: Path) -> int:
    """Remove store entries no environment links to; return the bytes freed."""
    freed = 0
    if not store.is_dir():
        return 0
    for path in store.rglob("*.pyc"):
        try:
            info = path.stat()
            if info.st_nlink <= 1:
                path.unlink()
                freed += info.st_size
        except FileNotFoundError:
            continue
    return freed


def _stored(shelf: Path, source: Path) -> Path:
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    return shelf / digest[:2] / f"{digest}.pyc"


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except FileExistsError:
        return
    except OSError:
        # Another file system (or no hard links): a copy is just as valid.
        shutil.copyfile(source, target)


def _compile(runtime: Runtime, sources: list[Path]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.write("\n".join(str(s) for s in sources) + "\n")
    try:
        done = subprocess.run(
            [
                str(runtime.python_path),
                "-I",
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                "--invalidation-mode",
                "unchecked-hash",
                "-i",
                listing.name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.unlink(listing.name)
    if done.returncode != 0:
        # Packages ship files for other Python versions; uv ignores those too.
        logger.debug("some files did not compile: %s", (done.stdout + done.stderr)[-2000:])
