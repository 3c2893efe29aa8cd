from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flowyard.errors import ConfigurationError
from flowyard.execution.environments import Runtime, RuntimeRegistry, UnknownRuntimeError

PY311 = Runtime("python3.11", Path("/opt/py311/bin/python"), "3.11.9")
PY312 = Runtime("python3.12", Path("/opt/py312/bin/python"), "3.12.4")


def test_without_settings_the_servers_own_python_is_the_only_runtime() -> None:
    registry = RuntimeRegistry.from_settings({})
    expected = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    assert registry.names == (expected,)
    assert registry.resolve(None).version.startswith(
        f"{sys.version_info[0]}.{sys.version_info[1]}."
    )


def test_no_runtime_name_means_the_first_registered_one() -> None:
    assert RuntimeRegistry([PY311, PY312]).resolve(None) is PY311
    assert RuntimeRegistry([PY311, PY312]).resolve("") is PY311


def test_a_registered_runtime_resolves_by_name() -> None:
    assert RuntimeRegistry([PY311, PY312]).resolve("python3.12") is PY312


def test_an_unknown_runtime_is_refused_with_the_official_names() -> None:
    with pytest.raises(UnknownRuntimeError) as caught:
        RuntimeRegistry([PY311, PY312]).resolve("python2.7")
    message = str(caught.value)
    assert "'python2.7' is not an official runtime" in message
    assert "python3.11, python3.12" in message


def test_a_runtime_registered_twice_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="registered twice"):
        RuntimeRegistry([PY311, PY311])


def test_major_minor_is_derived_from_the_full_version() -> None:
    assert PY312.major_minor == "3.12"
