"""Real git repositories served over HTTP from this process, as a forge would serve them.

Git's "dumb" HTTP protocol needs only static files (``git update-server-info``
writes the index it reads), so a plain threaded HTTP server is a real remote
for ``git clone http://...``: no mocks between the server's source fetcher
and git.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Flowyard Tests",
    "GIT_AUTHOR_EMAIL": "tests@flowyard.invalid",
    "GIT_COMMITTER_NAME": "Flowyard Tests",
    "GIT_COMMITTER_EMAIL": "tests@flowyard.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


def git(*args: str, cwd: Path) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


class GitRemote:
    """A bare repository under ``root`` that tests push commits to."""

    def __init__(self, root: Path, name: str) -> None:
        self.bare = root / f"{name}.git"
        self.work = root / f"{name}-work"
        self.name = name
        git("init", "-q", "--bare", "-b", "main", str(self.bare), cwd=root)
        git("init", "-q", "-b", "main", str(self.work), cwd=root)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)

    def commit(self, files: Mapping[str, str], message: str = "update") -> str:
        """Write ``files`` (path → text), commit, push; returns the commit hash."""
        for relative, text in files.items():
            path = self.work / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.work)
        git("push", "-q", "origin", "main", cwd=self.work)
        git("update-server-info", cwd=self.bare)
        return git("rev-parse", "HEAD", cwd=self.work)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve ``root`` over HTTP on a free port; yields the base URL."""
    handler = partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
