"""A real ``flowyard server start`` subprocess for acceptance tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

FLOWYARD = str(Path(sys.executable).with_name("flowyard"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"server at {url} not healthy after {timeout} s")


@contextmanager
def running_server(
    home: Path, *args: str, env: Mapping[str, str] | None = None, port: int | None = None
) -> Iterator[ServerProcess]:
    port = port or free_port()
    log_path = home.parent / f"server-{port}.log"
    home.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "FLOWYARD_HOME": str(home), **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [FLOWYARD, "server", "start", "--port", str(port), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_healthy(server.url, process)
        yield server
    except BaseException:
        server.stop(signal.SIGKILL)
        print(server.log())
        raise
    finally:
        server.stop()
