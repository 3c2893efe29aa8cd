"""Showing an interpreter and a virtual environment at neutral paths inside a sandbox.

The runtime directory is bound at ``/opt/flowyard/runtime`` wherever it lives
on the host (often somewhere the run must not see, such as ``/root``). Two
things tie an installed CPython to its install path, and both are undone here
without touching the original files:

- a shared-library build's ``python`` finds ``libpython`` through an absolute
  ``RUNPATH``. A copy of the binary with that entry rewritten to
  ``$ORIGIN/../lib`` is bound over the original inside the sandbox. (Rewriting
  in place only works when the new string is not longer; otherwise the
  library directory is also bound at its original path, and only that.)
- a venv's ``pyvenv.cfg`` names its base interpreter's host directory, and its
  ``bin/python`` is a symlink to it. The sandbox builds its own venv shell at
  ``/opt/flowyard/env``: the environment's ``lib`` bound read-only, a
  ``pyvenv.cfg`` naming the runtime's sandbox path, and ``bin/python*``
  symlinks into the runtime. ``.pth`` lines naming the SDK's host directory
  are rewritten to its sandbox path the same way (a generated file bound over
  the original), so the environment's own files never change.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from flowyard.execution.sandbox._errors import SandboxError
from flowyard.execution.sandbox._layout import ENVIRONMENT_PATH, RUNTIME_PATH, SDK_PATH

_PT_LOAD, _PT_DYNAMIC = 1, 2
_DT_NULL, _DT_STRTAB, _DT_RPATH, _DT_RUNPATH = 0, 5, 15, 29


@dataclass(frozen=True)
class RuntimeView:
    """What a runtime needs inside the sandbox besides its directory."""

    directory: Path
    python_name: str
    version: str
    patched_binary: Path | None = None
    library_dirs: tuple[Path, ...] = ()

    @property
    def python(self) -> str:
        """The interpreter's sandbox path."""
        return f"{RUNTIME_PATH}/bin/{self.python_name}"


@dataclass(frozen=True)
class EnvironmentView:
    """A virtual environment's files as the sandbox shows them."""

    directory: Path
    version: str
    pyvenv_cfg: Path
    has_lib64: bool
    overrides: tuple[tuple[Path, str], ...] = ()

    @property
    def python(self) -> str:
        """The environment's interpreter at its sandbox path."""
        return f"{ENVIRONMENT_PATH}/bin/python"


def prepare_runtime(runtime_dir: Path, cache_dir: Path) -> RuntimeView:
    """Find the interpreter under ``runtime_dir`` and relocate it if its RUNPATH needs it."""
    launcher = runtime_dir / "bin" / "python3"
    if not launcher.exists():
        raise SandboxError(f"runtime {runtime_dir} has no bin/python3")
    binary = launcher.resolve()
    if binary.parent != (runtime_dir / "bin").resolve():
        raise SandboxError(
            f"runtime {runtime_dir}: bin/python3 points outside the runtime ({binary})"
        )
    versions = sorted(p.parent.name for p in runtime_dir.glob("lib/python3.*/os.py"))
    if not versions:
        raise SandboxError(f"runtime {runtime_dir} has no standard library under lib/")
    version = versions[-1].removeprefix("python")
    data = binary.read_bytes()
    patched, unpatched = relocate_runpath(data, runtime_dir.resolve(), binary.parent)
    if patched is None:
        return RuntimeView(runtime_dir, binary.name, version, library_dirs=unpatched)
    digest = hashlib.sha256(patched).hexdigest()[:16]
    target = cache_dir / "runtimes" / digest / binary.name
    if not target.exists():
        _write_atomically(target, patched, mode=0o755)
    return RuntimeView(runtime_dir, binary.name, version, target, unpatched)


def prepare_environment(
    environment_dir: Path, runtime: RuntimeView, sdk_dir: Path | None, cache_dir: Path
) -> EnvironmentView:
    """Check the venv matches the runtime and generate its sandbox ``pyvenv.cfg`` and ``.pth`` files."""
    site = environment_dir / "lib" / f"python{runtime.version}" / "site-packages"
    if not site.is_dir():
        raise SandboxError(
            f"environment {environment_dir} was not built for Python {runtime.version} "
            f"(no lib/python{runtime.version}/site-packages)"
        )
    config = (
        f"home = {RUNTIME_PATH}/bin\ninclude-system-site-packages = false\n"
        f"version = {runtime.version}\n"
    )
    overrides: list[tuple[Path, str]] = []
    if sdk_dir is not None:
        host_sdk = str(sdk_dir)
        for pth in sorted(site.glob("*.pth")):
            lines = pth.read_text().splitlines()
            rewritten = [_remap(line, host_sdk) for line in lines]
            if rewritten != lines:
                generated = _cached_file(cache_dir, "\n".join(rewritten) + "\n")
                target = f"{ENVIRONMENT_PATH}/lib/python{runtime.version}/site-packages/{pth.name}"
                overrides.append((generated, target))
    lib64 = environment_dir / "lib64"
    return EnvironmentView(
        directory=environment_dir,
        version=runtime.version,
        pyvenv_cfg=_cached_file(cache_dir, config),
        has_lib64=lib64.is_symlink() or lib64.is_dir(),
        overrides=tuple(overrides),
    )


def relocate_runpath(
    data: bytes, prefix: Path, binary_dir: Path
) -> tuple[bytes | None, tuple[Path, ...]]:
    """``(patched ELF or None, library dirs that must stay at their host path)``.

    Absolute RPATH/RUNPATH entries under ``prefix`` become ``$ORIGIN``-relative.
    Only 64-bit little-endian ELF files are rewritten; others come back as is.
    """
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None, ()
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads: list[tuple[int, int, int]] = []
    dynamic: tuple[int, int] | None = None
    for index in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + index * phentsize
        )
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == _PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return None, ()
    entries = [struct.unpack_from("<qQ", data, dynamic[0] + i) for i in range(0, dynamic[1], 16)]
    strtab = next((v for tag, v in entries if tag == _DT_STRTAB), None)
    if strtab is None:
        return None, ()
    table = next(
        (off + strtab - vaddr for vaddr, off, size in loads if vaddr <= strtab < vaddr + size), None
    )
    if table is None:
        return None, ()
    patched = bytearray(data)
    changed = False
    kept: list[Path] = []
    for tag, value in entries:
        if tag not in (_DT_RPATH, _DT_RUNPATH):
            continue
        start = table + value
        old = data[start : data.index(b"\0", start)].decode()
        new = ":".join(_relative(entry, prefix, binary_dir) for entry in old.split(":"))
        if new == old:
            continue
        if len(new) > len(old):
            kept += [Path(e) for e in old.split(":") if e.startswith(str(prefix))]
            continue
        patched[start : start + len(old)] = new.encode().ljust(len(old), b"\0")
        changed = True
    return (bytes(patched) if changed else None), tuple(kept)


def _relative(entry: str, prefix: Path, binary_dir: Path) -> str:
    path = Path(entry)
    if not path.is_absolute() or not path.is_relative_to(prefix):
        return entry
    return "$ORIGIN/" + os.path.relpath(path, binary_dir)


def _remap(line: str, host_sdk: str) -> str:
    stripped = line.strip()
    if stripped == host_sdk or stripped.startswith(host_sdk + "/"):
        return SDK_PATH + stripped[len(host_sdk) :]
    return line


def _cached_file(cache_dir: Path, content: str) -> Path:
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    path = cache_dir / "generated" / f"{digest}.txt"
    if not path.exists():
        _write_atomically(path, content.encode(), mode=0o644)
    return path


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_bytes(data)
    temp.chmod(mode)
    os.replace(temp, path)
