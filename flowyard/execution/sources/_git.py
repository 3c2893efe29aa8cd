"""Git sources: any host over https, http or ssh; branch, tag or commit."""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from flowyard.execution.sources._base import FetchedSource
from flowyard.execution.sources._git_command import GitCommand
from flowyard.execution.sources._git_mirror import Mirror
from flowyard.execution.sources._git_urls import GitRemote, parse_git_remote

# A resolution's key: the mirror, the ref, a digest of the token it was asked with.
Key = tuple[str, str | None, str]


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
        shared_after: float | None = None,
    ) -> None:
        self.remote: GitRemote = parse_git_remote(url, allow_local=allow_local)
        self.ref = ref or None
        self.cache_dir = cache_dir
        # A resolution of the same ref that began after this (time.monotonic()) answers
        # for this fetch too; None: always ask the remote itself.
        self.shared_after = shared_after
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

    async def lease(self) -> FetchedSource:
        """Resolve the ref to a commit and hold its cached files where they are: no
        checkout. ``path`` is shared by every run of the commit, to be read or copied,
        never written; call ``release`` once done with it."""
        return await asyncio.to_thread(self._fetch_blocking, None)

    def _fetch_blocking(self, destination: Path | None) -> FetchedSource:
        started = time.perf_counter()
        mirror = Mirror(self.cache_dir, self._git)
        if self.shared_after is None:
            commit, cached = mirror.resolve(self.ref)
        else:
            token = hashlib.sha256((self._git.token or "").encode()).hexdigest()
            key = (str(mirror.path), self.ref, token)
            commit, cached = _RESOLVING.resolve(
                key, self.shared_after, lambda: mirror.resolve(self.ref)
            )
        release = None
        if destination is None:
            lease = mirror.lease(commit)
            destination, release = lease.path, lease.close
        else:
            mirror.checkout(commit, destination)
        return FetchedSource(
            path=destination,
            revision=commit,
            duration_seconds=time.perf_counter() - started,
            cached=cached,
            kind="git",
            release=release,
        )


class SharedResolutions:
    """Fetches that need the same ref at the same moment ask the remote once.

    A burst of runs of one deployment would otherwise send the remote one
    ``ls-remote`` each. A fetch takes an answer only from a resolution that
    began after the moment the fetch names (its run's creation, or its claim):
    what it is told is then at least as new as asking itself. It joins such a
    resolution under way, or takes the last answer of one that has ended (one
    per key is remembered; failures are not). Credentials are part of the key,
    so nobody learns a commit through someone else's token.
    """

    def __init__(self, *, remembered: int = 1024) -> None:
        self._lock = threading.Lock()
        self._running: dict[Key, tuple[float, Future[tuple[str, bool]]]] = {}
        self._answered: dict[Key, tuple[float, str]] = {}  # when it began, the commit
        self._remembered = remembered

    def resolve(
        self, key: Key, after: float, resolve: Callable[[], tuple[str, bool]]
    ) -> tuple[str, bool]:
        with self._lock:
            answered = self._answered.get(key)
            if answered is not None and answered[0] >= after:
                return answered[1], True  # in the mirror since
            running = self._running.get(key)
            if running is not None and running[0] >= after:
                shared = running[1]
            else:
                shared = None
                began = time.monotonic()
                mine: Future[tuple[str, bool]] = Future()
                self._running[key] = (began, mine)
        if shared is not None:
            commit, _ = shared.result()
            return commit, True  # in the mirror by now
        try:
            result = resolve()
        except BaseException as exc:
            mine.set_exception(exc)
            raise
        else:
            mine.set_result(result)
            self._remember(key, began, result[0])
            return result
        finally:
            with self._lock:
                if self._running.get(key, (0.0, None))[1] is mine:
                    del self._running[key]

    def _remember(self, key: Key, began: float, commit: str) -> None:
        with self._lock:
            if self._answered.get(key, (-math.inf, ""))[0] < began:
                self._answered.pop(key, None)
                self._answered[key] = (began, commit)  # the newest last
            while len(self._answered) > self._remembered:
                del self._answered[next(iter(self._answered))]


_RESOLVING = SharedResolutions()
