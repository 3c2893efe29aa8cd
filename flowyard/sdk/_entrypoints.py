"""Entrypoints (``path/to/file.py:function``): checking them and loading flows from them.

An entrypoint is relative to the root of the flow's source: no absolute
paths, no ``..``, and after resolving symlinks the file must still be inside
the root. The file is imported under a private module name with its own
directory and the root on ``sys.path`` while it loads, so that it can import
its sibling modules.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from flowyard.sdk._errors import EntrypointError, FlowScriptError

if TYPE_CHECKING:
    from flowyard.sdk._flows import Flow

__all__ = ["Entrypoint", "load_flow_from_entrypoint", "parse_entrypoint"]

_FUNCTION = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_DRIVE = re.compile(r"^[A-Za-z]:")  # compiled once at import: in a zygote, for every run


@dataclass(frozen=True, slots=True)
class Entrypoint:
    """A checked entrypoint: a relative ``.py`` path and a (dotted) function name."""

    path: PurePosixPath
    function: str

    def __str__(self) -> str:
        return f"{self.path}:{self.function}"


def parse_entrypoint(entrypoint: str) -> Entrypoint:
    """Check ``path.py:function`` and split it.

    Raises:
        EntrypointError: naming what is wrong with the entrypoint.
    """
    text = entrypoint.strip()
    path_text, sep, function = text.rpartition(":")
    if not sep or not path_text or not function:
        raise EntrypointError(
            f"entrypoint {entrypoint!r} must look like 'path/to/file.py:function_name'"
        )
    if not _FUNCTION.match(function):
        raise EntrypointError(
            f"entrypoint {entrypoint!r}: {function!r} is not a Python function name"
        )
    if "\\" in path_text:
        raise EntrypointError(f"entrypoint {entrypoint!r}: use '/' to separate directories")
    path = PurePosixPath(path_text)
    if path.is_absolute() or _DRIVE.match(path_text):
        raise EntrypointError(
            f"entrypoint {entrypoint!r}: the path must be relative to the source root, not absolute"
        )
    if ".." in path.parts:
        raise EntrypointError(f"entrypoint {entrypoint!r}: the path must not contain '..'")
    if path.suffix != ".py":
        raise EntrypointError(f"entrypoint {entrypoint!r}: the path must name a .py file")
    return Entrypoint(path=path, function=function)


def load_flow_from_entrypoint(path: str | Path, entrypoint: str) -> Flow[..., Any]:
    """Import the file an entrypoint names, under the root ``path``, and return its flow.

    Raises:
        EntrypointError: bad entrypoint, missing file, or the name is not a flow.
        FlowScriptError: the file raised while being imported.
    """
    from flowyard.sdk._flows import Flow

    parsed = parse_entrypoint(entrypoint)
    root = Path(path).resolve()
    target = (root / Path(*parsed.path.parts)).resolve()
    if not target.is_relative_to(root):
        raise EntrypointError(f"entrypoint {entrypoint!r} resolves outside the source root {root}")
    if not target.is_file():
        raise EntrypointError(f"entrypoint {entrypoint!r}: no such file under {root}")
    module = _import_file(target, root)
    obj: object = module
    for attribute in parsed.function.split("."):
        try:
            obj = getattr(obj, attribute)
        except AttributeError:
            raise EntrypointError(
                f"entrypoint {entrypoint!r}: {parsed.path} has no attribute {parsed.function!r}"
            ) from None
    if not isinstance(obj, Flow):
        raise EntrypointError(
            f"entrypoint {entrypoint!r} names {type(obj).__name__} {parsed.function!r}, "
            "which is not a flow; decorate it with @flow"
        )
    obj.entrypoint = str(parsed)
    obj.source = root
    return obj


def _import_file(target: Path, root: Path) -> object:
    digest = hashlib.md5(str(target).encode(), usedforsecurity=False).hexdigest()[:12]
    name = f"__flowyard_flow_{target.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, target)
    if spec is None or spec.loader is None:
        raise EntrypointError(f"cannot import {target}")
    module = importlib.util.module_from_spec(spec)
    added = [p for p in (str(target.parent), str(root)) if p not in sys.path]
    sys.path[:0] = added
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise FlowScriptError(f"{target.name} raised while being imported: {exc!r}") from exc
    finally:
        for entry in added:
            if entry in sys.path:
                sys.path.remove(entry)
    return module
