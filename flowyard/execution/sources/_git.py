"""Git sources: any host over https, http or ssh; branch, tag or commit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from flowyard.execution.sources._base import FetchedSource
from flowyard.execution.sources._git_command import GitCommand
from flowyard.execution.sources._git_mirror import Mirror
from flowyard.execution.sources._git_urls import GitRemote, parse_git_remote


class GitSource:
    """A git repository at a ref, fetched through a cached bare mirror.

    ``ref`` is a branch, a tag, a full or abbreviated commit SHA, or ``None``
    for the remote's default branch. ``token`` is an access token the caller
    resolved from a secret; it is used for https/http remotes only, held in
    memory, and redacted from every message. A token found in the URL itself
    is treated the same way. The URL is validated when the source is created,
    so a refused transport fails before any work starts.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_dir: Path,
        ref: str | None = None,
        token: str | None = None,
        username: str | None = None,
        allow_local: bool = False,
        timeout_seconds: float = 600.0,
    ) -> None:
        self.remote: GitRemote = parse_git_remote(url, allow_local=allow_local)
        self.ref = ref or None
        self.cache_dir = cache_dir
        self._git = GitCommand(
            remote=self.remote,
            token=token or self.remote.password,
            username=username or self.remote.username,
            timeout_seconds=timeout_seconds,
        )

    @property
    def description(self) -> str:
        """The remote URL without credentials, and the ref."""
        return f"{self.remote.url}@{self.ref}" if self.ref else self.remote.url

    def __repr__(self) -> str:
        return f"GitSource({self.description!r})"

    async def fetch(self, destination: Path) -> FetchedSource:
        """Resolve the ref to a commit and check it out into ``destination``."""
        return await asyncio.to_thread(self._fetch_blocking, destination)

    def _fetch_blocking(self, destination: Path) -> FetchedSource:
        started = time.perf_counter()
        mirror = Mirror(self.cache_dir, self._git)
        commit, cached = mirror.resolve(self.ref)
        mirror.checkout(commit, destination)
        return FetchedSource(
            path=destination,
            revision=commit,
            duration_seconds=time.perf_counter() - started,
            cached=cached,
            kind="git",
        )
