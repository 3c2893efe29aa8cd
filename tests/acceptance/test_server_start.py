"""`flowyard server start` as a user runs it: a real process, real signals."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.acceptance.server_process import FLOWYARD, free_port, running_server


def test_server_starts_on_sqlite_answers_health_and_stops_gracefully_on_sigterm(
    flowyard_home: Path,
) -> None:
    with running_server(flowyard_home) as server:
        assert httpx.get(f"{server.url}/api/health").json() == {"status": "ok"}
        version = httpx.get(f"{server.url}/api/version").json()
        assert version["database"] == "sqlite"
        assert (flowyard_home / "flowyard.db").is_file()
        assert server.stop(signal.SIGTERM) == 0
    assert "Application shutdown complete" in server.log()


def test_server_stops_gracefully_on_ctrl_c(flowyard_home: Path) -> None:
    with running_server(flowyard_home) as server:
        assert server.stop(signal.SIGINT) == 0


@pytest.mark.postgres
def test_server_starts_on_postgresql_with_database_url(
    flowyard_home: Path, postgres_url: str
) -> None:
    with running_server(flowyard_home, "--database-url", postgres_url) as server:
        assert httpx.get(f"{server.url}/api/version").json()["database"] == "postgresql"


def _start(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWYARD, "server", "start", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"FLOWYARD_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )


def test_unreachable_database_is_one_clear_line_and_nonzero_exit(flowyard_home: Path) -> None:
    port = free_port()
    result = _start(
        flowyard_home,
        "--port",
        str(free_port()),
        "--database-url",
        f"postgresql+asyncpg://nobody@127.0.0.1:{port}/nope",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("Error: cannot connect to database")
    assert len(result.stderr.strip().splitlines()) == 1


def test_unsupported_database_scheme_names_the_expected_ones(flowyard_home: Path) -> None:
    result = _start(flowyard_home, "--database-url", "mysql://root@localhost/x")
    assert result.returncode == 1
    assert "not supported; expected sqlite+aiosqlite" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_one_clear_line_and_nonzero_exit(flowyard_home: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _start(flowyard_home, "--port", str(port))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_unwritable_data_dir_is_one_clear_line_and_nonzero_exit(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should be")
    result = _start(blocker / "home", "--port", str(free_port()))
    assert result.returncode == 1
    assert "is not writable" in result.stderr
    assert "set FLOWYARD_HOME" in result.stderr
    assert "Traceback" not in result.stderr


def test_out_of_range_port_names_the_setting(flowyard_home: Path) -> None:
    result = _start(flowyard_home, "--port", "99999")
    assert result.returncode == 1
    assert "setting port (FLOWYARD_PORT)" in result.stderr


def test_the_api_also_answers_on_its_unix_socket(flowyard_home: Path) -> None:
    with running_server(flowyard_home) as server:
        socket_path = flowyard_home / "api.sock"
        assert socket_path.is_socket()
        transport = httpx.HTTPTransport(uds=str(socket_path))
        with httpx.Client(transport=transport, base_url="http://flowyard") as uds:
            assert uds.get("/api/health").json() == {"status": "ok"}
        server.stop()
    assert not socket_path.exists()
