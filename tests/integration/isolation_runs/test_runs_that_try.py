"""Issue 7's guarantees, each proven by a flow run that tries, on a real server."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.isolation_runs.conftest import RemoteService, Server

pytestmark = pytest.mark.sandbox

SMALL = {"memory_gib": 0.25, "storage_gib": 0.0625, "max_run_seconds": 60, "cpu": 1}


def test_a_run_cannot_read_the_database_the_credentials_or_root(server: Server) -> None:
    home = server.home
    paths = [home / "flowyard.db", home / "credentials", home / "server.key", "/root/.bashrc"]
    for path in paths[:3]:
        assert Path(path).is_file(), f"{path} should exist on the host for this test to mean much"
    ended = server.run("read_files", {"paths": [str(p) for p in paths] + ["/root"]}, **SMALL)
    assert ended.state == "COMPLETED", ended.log
    assert "READ " not in ended.log
    assert ended.log.count("BLOCKED ") == 5


def test_a_run_cannot_read_another_runs_work_dir(server: Server) -> None:
    holder = server.start("hold_a_secret", {"seconds": 60}, **SMALL)
    images = server.home / "cache" / "sandbox-strict" / "images"
    for _ in range(600):
        found = list(images.glob("*.mnt/work/secret.txt"))
        if found:
            break
        time.sleep(0.05)
    assert found, "the other run never wrote its secret"
    try:
        ended = server.run("read_files", {"paths": [str(found[0]), "/work/secret.txt"]}, **SMALL)
    finally:
        server.api.cancel_flow_run(holder.id)
    assert ended.state == "COMPLETED", ended.log
    assert f"BLOCKED {found[0]} FileNotFoundError" in ended.log
    assert "BLOCKED /work/secret.txt FileNotFoundError" in ended.log
    assert server.wait(holder).state == "CANCELLED"


def test_with_network_none_the_api_port_and_postgresql_are_unreachable(server: Server) -> None:
    ended = server.run("connect", {"ports": [server.port, 5432], "tunnels": []}, **SMALL)
    assert ended.state == "COMPLETED", ended.log
    assert f"REFUSED {server.port} ConnectionRefusedError" in ended.log
    assert "REFUSED 5432 ConnectionRefusedError" in ended.log
    assert "PROXY None" in ended.log
    assert "egress:" not in ended.log


def test_with_network_egress_only_the_allowed_host_is_reached(
    server: Server, remote: RemoteService
) -> None:
    tunnels = [f"127.0.0.1:{server.port}", "127.0.0.1:5432", "pypi.org.evil.example:443"]
    ended = server.run(
        "connect",
        {
            "ports": [server.port, 5432],
            "tunnels": tunnels,
            "fetch": f"http://127.0.0.1:{remote.port}/from-a-run",
        },
        network="egress",
        **SMALL,
    )
    assert ended.state == "COMPLETED", ended.log
    assert f"REFUSED {server.port} ConnectionRefusedError" in ended.log
    assert "REFUSED 5432 ConnectionRefusedError" in ended.log
    assert "PROXY http://127.0.0.1:3128" in ended.log
    for target in tunnels:
        assert f"TUNNEL {target}: HTTP/1.1 403 Forbidden: {target} is not on the egress allow-list" in ended.log  # fmt: skip
    assert "FETCHED hello from the allowed host" in ended.log
    assert remote.paths == ["/from-a-run"]
    # The run's own log says what it may reach and what it was refused.
    assert f"allowed: pypi.org, files.pythonhosted.org, 127.0.0.1:{remote.port}" in ended.log
    summary = re.search(r"egress: 4 connections, .* received; 3 refused: (.*)", ended.log)
    assert summary is not None, ended.log
    assert f"127.0.0.1:{server.port} (not on the allow-list)" in summary.group(1)


def test_allocating_past_the_memory_limit_crashes_the_run_and_the_server_stays_up(
    server: Server,
) -> None:
    ended = server.run("allocate", {}, **{**SMALL, "memory_gib": 0.125})
    assert ended.state == "CRASHED"
    assert ended.run.state_message.startswith("out of memory: limit 128 MiB reached (peak ")
    assert ended.run.crash_reason == ended.run.state_message
    assert server.process.process.poll() is None
    assert server.api.check_health()


def test_writing_past_the_storage_limit_gets_enospc(server: Server) -> None:
    ended = server.run("fill_disk", {}, **SMALL)
    assert ended.state == "COMPLETED", ended.log
    assert re.search(r"stopped after \d+ MiB: ENOSPC", ended.log), ended.log


def test_a_run_past_its_maximum_run_time_is_crashed_with_that_reason(server: Server) -> None:
    ended = server.run("sleep", {"seconds": 60}, **{**SMALL, "max_run_seconds": 2})
    assert ended.state == "CRASHED"
    assert ended.run.state_message == "exceeded the maximum run time of 2s"


def test_a_fork_bomb_is_contained_and_the_host_can_still_start_processes(server: Server) -> None:
    ended = server.run("fork_bomb", {}, **{**SMALL, "memory_gib": 1})
    assert ended.state == "CRASHED", ended.log
    assert ended.run.state_message == "process limit reached (4096)", ended.log
    assert server.process.process.poll() is None
    assert server.api.check_health()
    assert subprocess.run([sys.executable, "-c", "pass"], check=False).returncode == 0
