"""What a run can see and who it is: each proven by a run that tries."""

from __future__ import annotations

import ast
import asyncio
import textwrap
from pathlib import Path

import pytest

from flowyard.execution.sandbox import LocalSandbox, SandboxSpec
from tests.integration.sandbox.conftest import RUNTIME, python_spec, run_python

pytestmark = pytest.mark.sandbox

TRY_READ = textwrap.dedent(
    """
    import sys
    for path in sys.argv[1:]:
        try:
            with open(path, "rb") as fh:
                print("READ", path, fh.read(64))
        except OSError as exc:
            print("BLOCKED", path, type(exc).__name__)
    """
)


async def tries_to_read(sandbox: LocalSandbox, *paths: Path | str) -> str:
    spec = python_spec("pass")
    spec = SandboxSpec(
        run_id=spec.run_id, argv=[*spec.argv[:2], TRY_READ, *map(str, paths)],
        runtime_dir=spec.runtime_dir, limits=spec.limits,
    )  # fmt: skip
    handle = await sandbox.start(spec)
    result = await handle.wait()
    assert result.succeeded, result.output_tail
    return result.output_tail


async def test_a_run_cannot_read_the_data_dir_database_or_credentials(
    sandbox: LocalSandbox, tmp_path: Path
) -> None:
    data = tmp_path / "flowyard-home"
    data.mkdir()
    (data / "flowyard.db").write_bytes(b"SQLite format 3\0secret rows")
    (data / "credentials.toml").write_text('token = "fy_admin_secret"')
    (data / "credentials.toml").chmod(0o644)  # even world-readable, it is not there
    output = await tries_to_read(sandbox, data / "flowyard.db", data / "credentials.toml")
    assert "READ" not in output
    assert output.count("BLOCKED") == 2


async def test_a_run_cannot_see_root_home_or_the_hosts_secrets(sandbox: LocalSandbox) -> None:
    listing = await run_python(
        sandbox,
        "import os\n"
        "for p in ['/root', '/home', '/var', '/sys', '/etc/shadow', '/etc/ssh', '/srv']:\n"
        "    print(p, os.path.exists(p))\n"
        "print(sorted(os.listdir('/')))\n",
    )
    assert listing.succeeded, listing.output_tail
    assert " True" not in listing.output_tail
    top = set(ast.literal_eval(listing.output_tail.splitlines()[-1]))
    system = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr"}
    assert (
        {"dev", "etc", "opt", "proc", "tmp", "work"}
        <= top
        <= system | {"dev", "etc", "opt", "proc", "tmp", "work"}
    )
    host_file = Path.home() / ".bash_history"
    output = await tries_to_read(
        sandbox, "/root", host_file, "/etc/shadow", "/proc/1/root/etc/hostname"
    )
    assert "READ" not in output


async def test_a_run_cannot_reach_another_runs_work_dir(sandbox: LocalSandbox) -> None:
    other = await sandbox.start(
        python_spec("import time\nopen('/work/secret.txt', 'w').write('theirs')\ntime.sleep(30)")
    )
    try:
        for _ in range(100):
            paths = list((sandbox.state_dir / "images").glob("*.mnt/work/secret.txt"))
            if paths:
                break
            await asyncio.sleep(0.05)
        assert paths, "the other run never wrote its file"
        output = await tries_to_read(
            sandbox, paths[0], "/work/secret.txt", f"/proc/{other.pid}/root/work/secret.txt"
        )
        assert "READ" not in output
        assert output.count("BLOCKED") == 3
    finally:
        other.kill()
        await other.wait()


async def test_the_process_runs_unprivileged_with_no_capabilities(sandbox: LocalSandbox) -> None:
    result = await run_python(
        sandbox,
        "import os\n"
        "print('ids', os.getuid(), os.geteuid(), os.getgid(), os.getgroups())\n"
        "status = open('/proc/self/status').read()\n"
        "print([l for l in status.splitlines() if l.startswith(('CapEff', 'CapPrm', 'CapBnd', 'NoNewPrivs'))])\n"
        "print('pid', os.getpid(), 'host', os.uname().nodename)\n",
    )
    assert result.succeeded, result.output_tail
    assert "ids 65534 65534 65534 []" in result.output_tail
    for line in (
        "CapEff:\\t0000000000000000",
        "CapPrm:\\t0000000000000000",
        "CapBnd:\\t0000000000000000",
        "NoNewPrivs:\\t1",
    ):
        assert line in result.output_tail
    assert "host flowyard" in result.output_tail


async def test_the_environment_is_exactly_the_specs(
    sandbox: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWYARD_SERVER_SECRET", "must-not-leak")
    spec = python_spec(
        "pass", env={"A": 'it\'s "quoted" $HOME', "MULTI": "one\ntwo", "HOME": "{work}"}
    )
    spec = SandboxSpec(
        run_id=spec.run_id,
        argv=["/usr/bin/env", "-0"],
        runtime_dir=spec.runtime_dir,
        env=spec.env,
        limits=spec.limits,
    )
    handle = await sandbox.start(spec)
    result = await handle.wait()
    assert result.succeeded, result.output_tail
    seen = dict(item.split("=", 1) for item in result.output_tail.split("\0") if item)
    assert seen == {"A": 'it\'s "quoted" $HOME', "MULTI": "one\ntwo", "HOME": "/work"}


async def test_the_runtime_and_a_venv_work_from_neutral_paths_with_the_sdk_importable(
    sandbox: LocalSandbox,
) -> None:
    repo = Path(__file__).resolve().parents[3]
    venv = repo / ".venv"
    result = await run_python(
        sandbox,
        "import sys, yaml, flowyard, subprocess\n"
        "print(sys.executable, sys.prefix, sys.base_prefix)\n"
        "print(flowyard.__file__, yaml.__file__)\n"
        "print(subprocess.run([sys.executable, '-c', 'print(42)'], capture_output=True, text=True).stdout)\n",
        environment_dir=venv,
        sdk_dir=repo,
    )
    assert result.succeeded, result.output_tail
    lines = result.output_tail.splitlines()
    assert lines[0] == "/opt/flowyard/env/bin/python /opt/flowyard/env /opt/flowyard/runtime"
    assert lines[1].startswith("/opt/flowyard/sdk/flowyard/__init__.py /opt/flowyard/env/lib/")
    assert lines[2] == "42"
    assert str(RUNTIME) not in result.output_tail


async def test_the_checkout_is_copied_into_a_writable_work_dir(
    sandbox: LocalSandbox, tmp_path: Path
) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "flows").mkdir(parents=True)
    (checkout / "flows" / "etl.py").write_text("print('hello from the checkout')\n")
    result = await run_python(
        sandbox,
        "import os, runpy\n"
        "runpy.run_path('flows/etl.py')\n"
        "open('flows/out.txt', 'w').write('x')\n"
        "open('flows/etl.py', 'a').write('# changed in place\\n')\n"
        "print(os.getcwd(), os.stat('flows/etl.py').st_uid)\n",
        workdir_source=checkout,
    )
    assert result.succeeded, result.output_tail
    assert "hello from the checkout\n/work 65534" in result.output_tail
    assert not (checkout / "flows" / "out.txt").exists()
    # A copy, not links: a git checkout's files are links to the cached commit's tree.
    assert (checkout / "flows" / "etl.py").read_text() == "print('hello from the checkout')\n"
