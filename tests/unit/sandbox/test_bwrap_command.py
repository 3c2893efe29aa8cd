"""The bubblewrap command line: what is unshared, what is visible, where the env goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowyard.execution.sandbox import Bind, NetworkMode, SandboxSpec
from flowyard.execution.sandbox._bwrap import (
    Mounts,
    account_files,
    bwrap_options,
    command_tail,
    run_script,
)
from flowyard.execution.sandbox._runtime import RuntimeView

SECRET = "s3cr3t-token"


def options(*, socket_dirs: bool = False, **changes: object) -> list[str]:
    fields: dict[str, object] = {
        "run_id": "r", "argv": ["{python}"], "runtime_dir": Path("/root/.pyenv/versions/3.11.7"),
        "env": {"FLOWYARD_TOKEN": SECRET}, "api_socket": Path("/root/.flowyard/api.sock"),
    }  # fmt: skip
    fields.update(changes)
    spec = SandboxSpec(**fields)  # type: ignore[arg-type]
    mounts = Mounts(
        runtime=RuntimeView(
            spec.runtime_dir, "python3.11", "3.11", Path("/state/cache/python3.11")
        ),
        environment=None,
        work_dir=Path("/state/images/1.mnt/work"),
        tmp_dir=Path("/state/images/1.mnt/tmp"),
        etc=Path("/state/etc-views/1"),
        api_socket_dir=Path("/state/sockets/api") if socket_dirs else None,
        egress_socket_dir=Path("/state/sockets/egress") if socket_dirs else None,
    )
    return bwrap_options(spec, mounts, status_fd=4)


def targets(args: list[str]) -> dict[str, str]:
    """Sandbox path -> host source, for every bind."""
    found = {}
    for index, arg in enumerate(args):
        if arg in ("--ro-bind", "--bind", "--ro-bind-try"):
            found[args[index + 2]] = args[index + 1]
    return found


def test_every_namespace_but_the_user_one_is_new_and_the_environment_starts_empty() -> None:
    args = options()
    for flag in (
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup",
        "--unshare-net",
        "--clearenv",
    ):
        assert flag in args
    assert "--unshare-user" not in args


@pytest.mark.parametrize(("mode", "unshared"), [("none", True), ("egress", True), ("host", False)])
def test_only_host_networking_shares_the_hosts_network(mode: str, unshared: bool) -> None:
    extra = {"egress_proxy_socket": Path("/run/egress.sock")} if mode == "egress" else {}
    assert ("--unshare-net" in options(network=NetworkMode(mode), **extra)) is unshared


def test_the_runtime_work_dir_and_api_socket_appear_at_fixed_paths() -> None:
    binds = targets(options())
    assert binds["/opt/flowyard/runtime"] == "/root/.pyenv/versions/3.11.7"
    assert binds["/opt/flowyard/runtime/bin/python3.11"] == "/state/cache/python3.11"
    assert binds["/work"] == "/state/images/1.mnt/work"
    assert binds["/tmp"] == "/state/images/1.mnt/tmp"
    assert binds["/run/flowyard/api/api.sock"] == "/root/.flowyard/api.sock"


def test_socket_directories_are_bound_in_place_of_the_socket_files() -> None:
    binds = targets(
        options(
            socket_dirs=True,
            network=NetworkMode.EGRESS,
            egress_proxy_socket=Path("/root/.flowyard/run/egress.sock"),
        )
    )
    assert binds["/run/flowyard/api"] == "/state/sockets/api"
    assert binds["/run/flowyard/egress"] == "/state/sockets/egress"
    assert "/run/flowyard/api/api.sock" not in binds


def test_no_host_home_data_or_state_path_is_a_sandbox_path() -> None:
    for target in targets(options(ro_binds=[Bind(Path("/srv/models"), "/models")])):
        assert not target.startswith(("/root", "/home", "/state", "/var", "/sys"))


def test_etc_is_the_prepared_view_in_one_mount_and_accounts_are_generated() -> None:
    binds = targets(options())
    assert binds["/etc"] == "/state/etc-views/1"
    assert not [t for t in binds if t.startswith("/etc/")]
    passwd, _ = account_files(65534, 65534)
    assert passwd.count("\n") == 2


def test_parent_directories_are_made_world_readable() -> None:
    args = options()
    index = args.index("/opt/flowyard")
    assert args[index - 3 : index] == ["--perms", "0755", "--dir"]


def test_the_run_env_never_reaches_a_command_line() -> None:
    assert not any(SECRET in arg for arg in options())
    assert not any(
        SECRET in arg
        for arg in command_tail(setpriv=Path("/usr/bin/setpriv"), uid=65534, gid=65534)
    )


def test_the_command_drops_to_the_sandbox_user_before_anything_of_the_run() -> None:
    tail = command_tail(setpriv=Path("/usr/bin/setpriv"), uid=1234, gid=5678)
    assert tail[:6] == [
        "--",
        "/usr/bin/setpriv",
        "--reuid=1234",
        "--regid=5678",
        "--clear-groups",
        "--inh-caps=-all",
    ]
    assert "--no-new-privs" in tail


def test_the_run_script_quotes_values_and_ends_with_the_command() -> None:
    script = run_script(
        {"A": "it's $HOME", "B": "two\nlines"}, ["python", "-c", "print('x')"]
    ).decode()
    assert "A='it'\"'\"'s $HOME'" in script
    assert script.endswith(
        "set -- python -c 'print('\"'\"'x'\"'\"')'\n" + 'set +a; exec </dev/null; exec "$@"\n'
    )


def test_a_prelude_runs_first_and_fails_the_run_loudly() -> None:
    script = run_script({"A": "1"}, ["x"], prelude="start-bridge").decode()
    first = script.splitlines()[1]  # after ``unset PWD``, before any variable is set
    assert first.startswith("start-bridge || ")
    assert "exit 125" in first
