"""Real git repositories served over dumb HTTP, a local S3 (moto), real uv."""

from __future__ import annotations

import base64
import functools
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import missing_feature

GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Flowyard Tests",
    "GIT_AUTHOR_EMAIL": "tests@flowyard.invalid",
    "GIT_COMMITTER_NAME": "Flowyard Tests",
    "GIT_COMMITTER_EMAIL": "tests@flowyard.invalid",
}


def git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@dataclass
class GitRepo:
    """A working repository pushing to a bare one that the HTTP server exposes."""

    work: Path
    bare: Path

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        for name, content in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", message, cwd=self.work)
        self.publish()
        return git("rev-parse", "HEAD", cwd=self.work)

    def symlink(self, name: str, target: str) -> str:
        (self.work / name).symlink_to(target)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", f"link {name}", cwd=self.work)
        self.publish()
        return git("rev-parse", "HEAD", cwd=self.work)

    def tag(self, name: str, *, annotated: bool = False) -> None:
        if annotated:
            git("tag", "-a", name, "-m", f"release {name}", cwd=self.work)
        else:
            git("tag", name, cwd=self.work)
        self.publish()

    def publish(self) -> None:
        git("push", "-q", "--tags", str(self.bare), "HEAD:refs/heads/main", cwd=self.work)
        git("--git-dir", str(self.bare), "update-server-info")


@pytest.fixture(scope="session")
def git_installed() -> None:
    if shutil.which("git") is None:
        missing_feature("git is not installed")


@pytest.fixture
def git_repo(tmp_path: Path, git_installed: None) -> GitRepo:
    work = tmp_path / "work"
    bare = tmp_path / "served" / "repo.git"
    git("init", "-q", "-b", "main", str(work))
    git("init", "-q", "--bare", "-b", "main", str(bare))
    repo = GitRepo(work=work, bare=bare)
    repo.commit(
        {"flows/etl.py": "def etl():\n    return 1\n", "requirements.txt": "six\n"}, "first"
    )
    return repo


@dataclass
class HttpServer:
    """A dumb-HTTP git server (files only) on 127.0.0.1, optionally demanding a token."""

    root: Path
    required_authorization: str | None = None
    seen_authorization: list[str] = field(default_factory=list)
    stall_seconds: float = 0.0
    port: int = 0

    def url(self, relative: str) -> str:
        return f"http://127.0.0.1:{self.port}/{relative}"

    def require_token(self, user: str, token: str) -> None:
        encoded = base64.b64encode(f"{user}:{token}".encode()).decode()
        self.required_authorization = f"Basic {encoded}"


class _Handler(http.server.SimpleHTTPRequestHandler):
    state: HttpServer

    def do_GET(self) -> None:
        if self.state.stall_seconds:
            time.sleep(self.state.stall_seconds)
        header = self.headers.get("Authorization")
        if header:
            self.state.seen_authorization.append(header)
        required = self.state.required_authorization
        if required and header != required:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        return


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (the timeout test) breaks the pipe; that is expected.
        return


@pytest.fixture
def http_server(git_repo: GitRepo) -> Iterator[HttpServer]:
    state = HttpServer(root=git_repo.bare.parent)
    handler = type("Handler", (_Handler,), {"state": state})
    server = _QuietServer(("127.0.0.1", 0), functools.partial(handler, directory=str(state.root)))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uv download cache for the session, so each test pays links, not downloads."""
    return tmp_path_factory.mktemp("uv-cache")
