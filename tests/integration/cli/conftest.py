"""Every command through Typer's test runner, against a real server process."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flowyard.cli._errors import run_app
from flowyard.cli.main import app
from flowyard.client import SyncClient, get_sync_client
from tests.acceptance.server_process import ServerProcess, running_server


@pytest.fixture(scope="package")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-server") / "home"


@pytest.fixture(scope="package")
def server(cli_home: Path) -> Iterator[ServerProcess]:
    with running_server(cli_home, "--no-dispatcher") as process:
        yield process


@pytest.fixture(scope="package")
def api(server: ServerProcess, cli_home: Path) -> Iterator[SyncClient]:
    with get_sync_client(home=cli_home, required=True) as client:
        yield client


@dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Cli:
    """Runs `flowyard ARGS` in-process the way the console script does (run_app)."""

    home: Path

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Ran:
        runner = CliRunner()
        environment = {"FLOWYARD_HOME": str(self.home), "FLOWYARD_API_URL": None, **env}
        with runner.isolation(input=input, env=environment) as streams:
            saved = sys.argv
            sys.argv = ["flowyard", *args]
            try:
                code = run_app(app)
            finally:
                sys.argv = saved
                sys.stdout.flush()
                sys.stderr.flush()
            out, err = streams[0].getvalue(), streams[1].getvalue()
        return Ran(code, out.decode(), err.decode())

    def json(self, *args: str) -> Any:
        result = self(*args, "--output", "json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def cli(server: ServerProcess, cli_home: Path) -> Cli:
    return Cli(cli_home)
