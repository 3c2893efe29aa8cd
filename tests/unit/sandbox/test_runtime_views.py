"""Relocating an interpreter's RUNPATH and a venv's configuration for the sandbox's paths."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from flowyard.execution.sandbox import SandboxError
from flowyard.execution.sandbox._runtime import (
    RuntimeView,
    prepare_environment,
    prepare_runtime,
    relocate_runpath,
)

PREFIX = Path("/root/.pyenv/versions/3.11.7")


def tiny_elf(runpath: str, tag: int = 29) -> bytes:
    """A 64-bit little-endian ELF with one PT_LOAD, a PT_DYNAMIC and a string table."""
    strtab = b"\0libpython3.11.so.1.0\0" + runpath.encode() + b"\0"
    runpath_offset = strtab.index(runpath.encode())
    header_size, phdr_size = 64, 56
    dynamic_offset = header_size + 2 * phdr_size
    dynamic = struct.pack("<qQqQqQ", 5, 0, tag, runpath_offset, 0, 0)  # STRTAB, RUNPATH, NULL
    strtab_offset = dynamic_offset + len(dynamic)
    dynamic = struct.pack("<qQqQqQ", 5, 0x400000 + strtab_offset, tag, runpath_offset, 0, 0)
    total = strtab_offset + len(strtab)
    header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header += struct.pack(
        "<HHIQQQIHHHHHH", 2, 62, 1, 0, header_size, 0, 0, header_size, phdr_size, 2, 0, 0, 0
    )
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, total, total, 0x1000)
    dyn = struct.pack(
        "<IIQQQQQQ",
        2,
        6,
        dynamic_offset,
        0x400000 + dynamic_offset,
        0,
        len(dynamic),
        len(dynamic),
        8,
    )
    return header + load + dyn + dynamic + strtab


def runpath_of(data: bytes) -> str:
    start = data.index(b"\0libpython3.11.so.1.0\0") + len(b"\0libpython3.11.so.1.0\0")
    return data[start : data.index(b"\0", start)].decode()


def test_an_absolute_runpath_inside_the_runtime_becomes_origin_relative() -> None:
    patched, kept = relocate_runpath(tiny_elf(f"{PREFIX}/lib"), PREFIX, PREFIX / "bin")
    assert patched is not None
    assert runpath_of(patched) == "$ORIGIN/../lib"
    assert kept == ()


def test_old_style_rpath_is_relocated_too() -> None:
    patched, _ = relocate_runpath(tiny_elf(f"{PREFIX}/lib", tag=15), PREFIX, PREFIX / "bin")
    assert patched is not None
    assert runpath_of(patched) == "$ORIGIN/../lib"


def test_entries_outside_the_runtime_are_left_alone() -> None:
    patched, kept = relocate_runpath(tiny_elf("/usr/local/lib"), PREFIX, PREFIX / "bin")
    assert (patched, kept) == (None, ())


def test_a_runpath_too_short_to_rewrite_is_kept_at_its_host_path() -> None:
    prefix = Path("/py")
    patched, kept = relocate_runpath(tiny_elf("/py/lib"), prefix, prefix / "bin")
    assert patched is None
    assert kept == (Path("/py/lib"),)


def test_files_that_are_not_64_bit_elf_are_not_touched() -> None:
    assert relocate_runpath(b"#!/bin/sh\n", PREFIX, PREFIX / "bin") == (None, ())


def fake_runtime(root: Path, elf: bytes) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "lib" / "python3.11").mkdir(parents=True)
    (root / "lib" / "python3.11" / "os.py").write_text("")
    (root / "bin" / "python3.11").write_bytes(elf)
    (root / "bin" / "python3").symlink_to("python3.11")
    return root


def test_a_runtime_gets_a_patched_copy_of_its_interpreter(tmp_path: Path) -> None:
    runtime = fake_runtime(tmp_path / "rt", tiny_elf(f"{tmp_path / 'rt'}/lib"))
    view = prepare_runtime(runtime, tmp_path / "cache")
    assert (view.python_name, view.version) == ("python3.11", "3.11")
    assert view.python == "/opt/flowyard/runtime/bin/python3.11"
    assert view.patched_binary is not None
    assert runpath_of(view.patched_binary.read_bytes()) == "$ORIGIN/../lib"
    assert runpath_of((runtime / "bin" / "python3.11").read_bytes()) == f"{runtime}/lib"


def test_a_runtime_without_python3_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rt" / "bin").mkdir(parents=True)
    with pytest.raises(SandboxError, match="no bin/python3"):
        prepare_runtime(tmp_path / "rt", tmp_path / "cache")


def fake_venv(root: Path, sdk: Path) -> Path:
    site = root / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (site / "_flowyard_sdk.pth").write_text(f"{sdk}\n")
    (site / "other.pth").write_text("import sys\n")
    (root / "lib64").symlink_to("lib")
    return root


def test_a_venv_is_pointed_at_the_sandbox_runtime_and_sdk(tmp_path: Path) -> None:
    runtime = RuntimeView(Path("/rt"), "python3.11", "3.11")
    sdk = tmp_path / "cache" / "sdk" / "0.1.0-abc"
    view = prepare_environment(fake_venv(tmp_path / "env", sdk), runtime, sdk, tmp_path / "cache")
    assert view.python == "/opt/flowyard/env/bin/python"
    assert view.has_lib64
    assert "home = /opt/flowyard/runtime/bin" in view.pyvenv_cfg.read_text()
    [(generated, target)] = view.overrides
    assert target == "/opt/flowyard/env/lib/python3.11/site-packages/_flowyard_sdk.pth"
    assert generated.read_text() == "/opt/flowyard/sdk\n"


def test_a_venv_for_another_python_is_refused(tmp_path: Path) -> None:
    runtime = RuntimeView(Path("/rt"), "python3.12", "3.12")
    with pytest.raises(SandboxError, match=r"not built for Python 3\.12"):
        prepare_environment(
            fake_venv(tmp_path / "env", tmp_path / "sdk"), runtime, None, tmp_path / "cache"
        )
