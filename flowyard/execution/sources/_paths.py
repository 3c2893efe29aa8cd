"""Keeping entrypoints, working directories and requirement files inside the code.

A path from a deployment is resolved with symlinks followed and must land in
the checkout; ``..``, absolute paths and links pointing outside are refused.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from flowyard.execution.sources._errors import PathEscapeError, SourceError


def resolve_within(root: Path, relative: str, *, what: str = "path") -> Path:
    """``root / relative`` with symlinks resolved, refusing anything outside ``root``.

    ``what`` names the path in the message ("entrypoint", "working directory").
    The target need not exist; its existing part is what symlinks are resolved in.
    """
    if "\x00" in relative:
        raise PathEscapeError(f"{what} {relative!r} contains a NUL character")
    pure = PurePosixPath(relative.replace(os.sep, "/"))
    if pure.is_absolute():
        raise PathEscapeError(
            f"{what} {relative!r} is absolute; it must be relative to the code's root"
        )
    if ".." in pure.parts:
        raise PathEscapeError(f"{what} {relative!r} uses '..'; it must stay inside the code")
    real_root = root.resolve(strict=False)
    target = (real_root / pure).resolve(strict=False)
    if target != real_root and real_root not in target.parents:
        raise PathEscapeError(
            f"{what} {relative!r} resolves outside the code (through a symbolic link)"
        )
    return target


def resolve_entrypoint(root: Path, entrypoint: str) -> tuple[Path, str]:
    """Split ``path.py:function`` and resolve the file inside ``root``."""
    file_part, sep, function = entrypoint.rpartition(":")
    if not sep or not file_part or not function:
        raise SourceError(
            f"entrypoint {entrypoint!r} must look like 'path/to/file.py:function_name'"
        )
    return resolve_within(root, file_part, what="entrypoint"), function
