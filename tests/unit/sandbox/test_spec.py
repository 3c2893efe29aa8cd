"""Spec validation: a bad field fails early, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowyard.execution.sandbox import (
    Bind,
    InvalidSandboxSpec,
    Limits,
    MiB,
    NetworkMode,
    Placeholder,
    SandboxSpec,
)
from flowyard.execution.sandbox._layout import expand

RUNTIME = Path("/opt/python")


def spec(**changes: object) -> SandboxSpec:
    fields: dict[str, object] = {
        "run_id": "run-1",
        "argv": ["python", "-c", "pass"],
        "runtime_dir": RUNTIME,
    }
    fields.update(changes)
    return SandboxSpec(**fields)  # type: ignore[arg-type]


def field_of(**changes: object) -> str:
    with pytest.raises(InvalidSandboxSpec) as raised:
        spec(**changes)
    return raised.value.field


def test_a_valid_spec_is_frozen_including_its_env_and_argv() -> None:
    env = {"A": "1"}
    made = spec(env=env, argv=["x"])
    env["A"] = "2"
    assert made.env == {"A": "1"}
    assert made.argv == ("x",)
    with pytest.raises(TypeError):
        made.env["B"] = "3"  # type: ignore[index]


@pytest.mark.parametrize("run_id", ["", "../x", "a/b", "-x", "x" * 65, "a b"])
def test_run_ids_that_could_escape_a_path_or_a_cgroup_name_are_refused(run_id: str) -> None:
    assert field_of(run_id=run_id) == "run_id"


def test_an_empty_command_is_refused() -> None:
    assert field_of(argv=[]) == "argv"


def test_nul_characters_are_refused_in_argv_and_env() -> None:
    assert field_of(argv=["a\0b"]) == "argv"
    assert field_of(env={"A": "x\0"}) == "env[A]"


@pytest.mark.parametrize("name", ["1A", "A-B", "A.B", "", "A B"])
def test_env_names_must_be_identifiers(name: str) -> None:
    assert field_of(env={name: "x"}) == "env"


def test_host_paths_must_be_absolute() -> None:
    assert field_of(runtime_dir=Path("python")) == "runtime_dir"
    assert field_of(api_socket=Path("api.sock")) == "api_socket"


@pytest.mark.parametrize(
    "target", ["/proc/x", "/work", "/tmp/a", "/opt/flowyard/runtime", "/", "/etc/x"]
)
def test_binds_cannot_cover_paths_the_sandbox_owns(target: str) -> None:
    assert field_of(ro_binds=[Bind(Path("/data"), target)]) == "ro_binds[0].target"


@pytest.mark.parametrize("target", ["data", "/data/../etc", "/data/"])
def test_bind_targets_must_be_normalized_absolute_paths(target: str) -> None:
    assert field_of(ro_binds=[Bind(Path("/data"), target)]) == "ro_binds[0].target"


def test_a_bind_to_a_free_path_is_accepted() -> None:
    assert spec(ro_binds=[Bind(Path("/srv/models"), "/models")]).ro_binds[0].target == "/models"


def test_egress_needs_the_proxy_socket_and_only_egress_takes_one() -> None:
    assert field_of(network=NetworkMode.EGRESS) == "egress_proxy_socket"
    assert field_of(egress_proxy_socket=Path("/run/egress.sock")) == "egress_proxy_socket"
    made = spec(network="egress", egress_proxy_socket=Path("/run/egress.sock"))
    assert made.network is NetworkMode.EGRESS


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"cpus": 0}, "limits.cpus"),
        ({"cpus": float("nan")}, "limits.cpus"),
        ({"memory_bytes": MiB}, "limits.memory_bytes"),
        ({"pids": 0}, "limits.pids"),
        ({"storage_bytes": 1024}, "limits.storage_bytes"),
        ({"max_run_seconds": 0}, "limits.max_run_seconds"),
        ({"max_run_seconds": float("inf")}, "limits.max_run_seconds"),
        ({"memory_bytes": 1.5e9}, "limits.memory_bytes"),
    ],
)
def test_limits_out_of_range_are_refused_by_name(changes: dict[str, object], name: str) -> None:
    with pytest.raises(InvalidSandboxSpec) as raised:
        Limits(**changes)  # type: ignore[arg-type]
    assert raised.value.field == name
    assert name in str(raised.value)


def test_the_default_limits_are_the_default_pool_policy() -> None:
    limits = Limits()
    assert (limits.cpus, limits.memory_bytes, limits.storage_bytes, limits.max_run_seconds) == (
        4.0, 16 * 1024**3, 128 * 1024**3, 86400.0,
    )  # fmt: skip


def test_placeholders_are_replaced_and_other_braces_left_alone() -> None:
    paths = {Placeholder.WORK: "/work", Placeholder.PYTHON: "/opt/env/bin/python"}
    assert expand("{python} -c '{x}'", paths) == "/opt/env/bin/python -c '{x}'"
    assert expand("{work}/.cache", paths) == "/work/.cache"
    assert expand("plain", paths) == "plain"
