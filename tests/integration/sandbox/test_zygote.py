"""Zygotes: runs of a loaded environment forked into their own sandboxes, privileges gone."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flowyard
from flowyard.execution.host import SANDBOX_UID, HostCapabilities
from flowyard.execution.sandbox import Ending, LocalSandbox, Placeholder, SandboxSpec
from tests.integration.sandbox.conftest import SMALL, python_spec

pytestmark = pytest.mark.sandbox

# Runs as ``python -m zygote_probe``: says what the process is and holds, then acts.
PROBE = """
import json, os, sys

def status():
    fields = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
    return {k: fields[k].strip() for k in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff",
                                            "CapBnd", "CapAmb", "NoNewPrivs")}

seen = {
    "status": status(),
    "pid": os.getpid(),
    "sid": os.getsid(0) == os.getpid(),
    "cwd": os.getcwd(),
    "files": sorted(os.listdir(".")),
    "run": os.environ.get("RUN"),
    "env": sorted(os.environ),
    "argv0": sys.argv[0],
    "main": __name__,
    "loaded": "flowyard.sdk" in sys.modules,
    "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "fds": sorted(int(f) for f in os.listdir("/proc/self/fd")),
    "cgroup": open("/proc/self/cgroup").read().strip(),
    "net": sorted(os.listdir("/sys/class/net")) if os.path.exists("/sys/class/net") else None,
    # How long ago the sandbox's init (bubblewrap's) and this process started.
    "sandbox_age": float(open("/proc/uptime").read().split()[0])
    - int(open("/proc/1/stat").read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK"),
    "process_age": float(open("/proc/uptime").read().split()[0])
    - int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK"),
}
print("PROBE " + json.dumps(seen), flush=True)
action = os.environ.get("ACTION", "")
if action.startswith("exit"):
    raise SystemExit(int(action[4:]))
if action == "kill":
    os.kill(os.getpid(), 9)
if action == "term":
    import signal, time
    def stop(signum, frame):
        print("stopping gracefully", flush=True)
        raise SystemExit(7)
    signal.signal(signal.SIGTERM, stop)
    print("waiting", flush=True)
    time.sleep(60)
if action == "linger":
    import time
    time.sleep(3)
    print("lingered", flush=True)
    raise SystemExit(4)
if action == "memory":
    hog = [bytearray(1024 * 1024) for _ in range(10_000)]
"""


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SDK directory: Flowyard's package and the probe module."""
    root = tmp_path_factory.mktemp("sdk")
    root.chmod(0o755)  # the sandbox user reads it
    shutil.copytree(Path(flowyard.__file__).parent, root / "flowyard")
    (root / "zygote_probe.py").write_text(PROBE)
    return root


@pytest.fixture
def forking(capabilities: HostCapabilities, tmp_path: Path) -> Iterator[LocalSandbox]:
    made = LocalSandbox(tmp_path / "state", capabilities=capabilities, images_per_size=1)
    yield made
    made.close()


def probe_spec(sdk: Path, checkout: Path, **env: str) -> SandboxSpec:
    env = {"RUN": env.pop("RUN", "r"), **env}
    spec = python_spec("", env=env, workdir_source=checkout)
    return SandboxSpec(
        run_id=spec.run_id,
        argv=[Placeholder.PYTHON, "-m", "zygote_probe"],
        runtime_dir=spec.runtime_dir,
        limits=SMALL,
        sdk_dir=sdk,
        env=spec.env,
        workdir_source=checkout,
        standby=True,
    )


def _probe(output: str) -> dict[str, Any]:
    line = next(x for x in output.splitlines() if x.startswith("PROBE "))
    return json.loads(line[len("PROBE ") :])


async def _zygote_up(sandbox: LocalSandbox, sdk: Path, checkout: Path) -> None:
    """Run once: the first run of a key waits for its zygote to start, and is forked."""
    first = await (await sandbox.start(probe_spec(sdk, checkout))).wait()
    assert first.ending is Ending.EXITED, first.output_tail
    assert _probe(first.output_tail)["loaded"]
    assert sandbox.zygotes_ready == 1


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    path = tmp_path / "code"
    path.mkdir()
    (path / "flow.py").write_text("pass\n")
    # Where a cold start finds the probe (no environment here, whose .pth names the SDK).
    (path / "zygote_probe.py").write_text(PROBE)
    return path


async def test_a_forked_run_is_the_sandbox_user_with_no_privilege_in_its_own_sandbox(
    forking: LocalSandbox, sdk: Path, checkout: Path
) -> None:
    await _zygote_up(forking, sdk, checkout)
    result = await (await forking.start(probe_spec(sdk, checkout, RUN="second"))).wait()
    assert result.ending is Ending.EXITED, result.output_tail
    seen = _probe(result.output_tail)
    assert seen["loaded"]  # forked from the loaded interpreter
    status = seen["status"]
    assert status["Uid"].split() == [str(SANDBOX_UID)] * 4
    assert status["Gid"].split() == [str(SANDBOX_UID)] * 4
    assert status["Groups"] == ""
    for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[name], 16) == 0, name
    assert status["NoNewPrivs"] == "1"
    assert seen["sid"]
    # Its own sandbox: its checkout, its variables only, its pid namespace, its cgroup.
    assert seen["cwd"] == "/work"
    assert "flow.py" in seen["files"]
    assert seen["run"] == "second"
    assert "FLOWYARD_STANDBY" not in seen["env"]
    assert seen["argv0"].endswith("zygote_probe.py")
    assert seen["main"] == "__main__"
    assert max(seen["procs"]) < 50  # a fresh pid namespace, not the host's
    assert seen["fds"] == [0, 1, 2, 3]  # 3: the listing itself
    # At the root of its cgroup namespace, which is the run's cgroup: charged to the run.
    assert all(line.endswith(":/") for line in seen["cgroup"].splitlines()), seen["cgroup"]
    assert result.cpu_seconds > 0
    assert result.peak_memory_bytes > 0
    assert seen["net"] in (None, ["lo"])


async def test_a_forked_run_takes_a_sandbox_held_ready_for_it(
    forking: LocalSandbox, sdk: Path, checkout: Path
) -> None:
    await _zygote_up(forking, sdk, checkout)
    second = await (await forking.start(probe_spec(sdk, checkout, RUN="second"))).wait()
    assert _probe(second.output_tail)["loaded"]
    for _ in range(400):  # the second run's start prepared a sandbox for the next one
        if forking.standbys_ready:
            break
        await asyncio.sleep(0.025)
    await asyncio.sleep(1.0)

    third = await (await forking.start(probe_spec(sdk, checkout, RUN="third"))).wait()
    assert third.ending is Ending.EXITED, third.output_tail
    seen = _probe(third.output_tail)
    assert seen["loaded"]
    assert seen["run"] == "third"
    # Its sandbox was up, and its process forked there, before the run started.
    assert seen["sandbox_age"] > third.wall_seconds
    assert seen["process_age"] > third.wall_seconds
    assert "flow.py" in seen["files"]
    assert int(seen["status"]["CapEff"], 16) == 0


async def test_runs_started_back_to_back_take_held_sandboxes_as_soon_as_they_are_made(
    forking: LocalSandbox, sdk: Path, checkout: Path
) -> None:
    await _zygote_up(forking, sdk, checkout)
    handles = []
    for i in range(12):  # each start offers a held sandbox the next one may take at once
        handles.append(await forking.start(probe_spec(sdk, checkout, RUN=f"r{i}")))
        await asyncio.sleep(0.005 * (i % 4))
    results = [await handle.wait() for handle in handles]
    assert [r.ending for r in results] == [Ending.EXITED] * 12, [r.crash_reason for r in results]
    assert [_probe(r.output_tail)["run"] for r in results] == [f"r{i}" for i in range(12)]


async def test_exit_codes_and_signals_of_a_forked_run_reach_the_result(
    forking: LocalSandbox, sdk: Path, checkout: Path
) -> None:
    await _zygote_up(forking, sdk, checkout)
    failed = await (await forking.start(probe_spec(sdk, checkout, ACTION="exit3"))).wait()
    assert _probe(failed.output_tail)["loaded"]
    assert failed.ending is Ending.EXITED
    assert failed.exit_code == 3
    killed = await (await forking.start(probe_spec(sdk, checkout, ACTION="kill"))).wait()
    assert killed.ending is Ending.SIGNALED, killed
    assert killed.signal == signal.SIGKILL


async def test_terminating_a_forked_run_signals_the_run_not_the_processes_that_hold_it(
    forking: LocalSandbox, sdk: Path, checkout: Path
) -> None:
    await _zygote_up(forking, sdk, checkout)
    handle = await forking.start(probe_spec(sdk, checkout, ACTION="term"))
    for _ in range(400):
        if b"waiting" in handle.read_output(0, 100_000):
            break
        await asyncio.sleep(0.025)
    handle.terminate(grace_seconds=30)
    result = await handle.wait()
    assert _probe(result.output_tail)["loaded"]
    assert "stopping gracefully" in result.output_tail
    assert result.exit_code == 7, result


async def test_a_forked_run_over_its_memory_limit_is_out_of_memory(
    forking: LocalSandbox, sdk: Path, checkout: Path
) -> None:
    await _zygote_up(forking, sdk, checkout)
    result = await (await forking.start(probe_spec(sdk, checkout, ACTION="memory"))).wait()
    assert _probe(result.output_tail)["loaded"]
    assert result.ending is Ending.OUT_OF_MEMORY, result


# A first "server" in its own process: brings its zygote up, starts a forked run that
# lingers, and dies without closing anything.
FIRST_SERVER = """
import asyncio, os, sys
from pathlib import Path
from flowyard.execution.sandbox import LocalSandbox
from tests.integration.sandbox.test_zygote import _zygote_up, probe_spec

async def main() -> None:
    state, sdk, checkout = (Path(a) for a in sys.argv[1:4])
    sandbox = LocalSandbox(state, images_per_size=1)
    await _zygote_up(sandbox, sdk, checkout)
    spec = probe_spec(sdk, checkout, ACTION="linger")
    handle = await sandbox.start(spec)
    for _ in range(400):
        if b"PROBE" in handle.read_output(0, 100_000):
            break
        await asyncio.sleep(0.025)
    print(spec.run_id, flush=True)
    os._exit(0)

asyncio.run(main())
"""


async def test_a_forked_run_outlives_its_server_and_zygote_and_is_adopted(
    capabilities: HostCapabilities, tmp_path: Path, sdk: Path, checkout: Path
) -> None:
    state = tmp_path / "state-adopt"
    root = Path(__file__).resolve().parents[3]
    first = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FIRST_SERVER, str(state), str(sdk), str(checkout),
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(first.communicate(), 120)
    assert first.returncode == 0, err.decode()
    run_id = out.decode().split()[-1]

    second = LocalSandbox(state, capabilities=capabilities, images_per_size=1)
    try:
        assert run_id in second.adoptable
        adopted = await second.adopt(run_id)
        assert adopted is not None
        result = await adopted.wait()
    finally:
        second.close()
    assert "lingered" in result.output_tail
    assert _probe(result.output_tail)["loaded"]
    assert result.ending is Ending.EXITED
    assert result.exit_code == 4


async def test_a_zygote_that_died_is_replaced_by_the_next_run(
    forking: LocalSandbox, sdk: Path, checkout: Path
) -> None:
    await _zygote_up(forking, sdk, checkout)
    (dead,) = forking.zygote_pids
    os.kill(dead, signal.SIGKILL)
    for _ in range(400):  # until the sandbox sees it gone
        if not forking.zygotes_ready:
            break
        await asyncio.sleep(0.025)
    result = await (await forking.start(probe_spec(sdk, checkout, RUN="after"))).wait()
    assert result.ending is Ending.EXITED, result.output_tail
    seen = _probe(result.output_tail)
    assert seen["run"] == "after"
    assert seen["loaded"]
    assert forking.zygote_pids not in ([], [dead])


async def test_runs_start_cold_when_no_zygote_can_start(
    forking: LocalSandbox, checkout: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "sdk-without-flowyard"  # the zygote cannot load the SDK
    broken.mkdir(mode=0o755)
    (broken / "zygote_probe.py").write_text(PROBE)
    for run in ("first", "second"):
        result = await (await forking.start(probe_spec(broken, checkout, RUN=run))).wait()
        assert result.ending is Ending.EXITED, result.output_tail
        seen = _probe(result.output_tail)
        assert seen["run"] == run
        assert not seen["loaded"]  # a cold start loads nothing ahead
    assert forking.zygotes_ready == 0


def test_a_child_refuses_namespaces_that_are_not_its_runs(tmp_path: Path) -> None:
    """Told of a process that is not the run's bubblewrap (a pid reused, say), the zygote's
    child finds its FIFO missing there and gives up before forking anything."""
    import ctypes
    import subprocess

    from flowyard.execution import _zygote

    # One child, in the host's namespaces.
    other = subprocess.Popen(["/bin/sh", "-c", "sleep 30 & wait"], start_new_session=True)
    fifo = tmp_path / "exit"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR)
    try:
        for _ in range(100):  # until its child is there
            if Path(f"/proc/{other.pid}/task/{other.pid}/children").read_text().split():
                break
            time.sleep(0.01)
        request = {
            "bwrap_pid": other.pid,
            "exit_fifo": "/tmp/.flowyard-zygote-exit",
            "workdir": "/",
        }
        pid = os.fork()
        if pid == 0:  # setns needs a process of its own
            try:
                _zygote._enter(request, [], ctypes.CDLL(None, use_errno=True), fd)
            except (RuntimeError, OSError):
                os._exit(7)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 7
    finally:
        os.close(fd)
        os.killpg(other.pid, signal.SIGKILL)
        other.wait()
