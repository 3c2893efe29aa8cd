"""A bare mirror per repository, and a cheap checkout per run out of it.

The mirror lives at ``<cache>/git/<digest of the normalized URL>.git``. It has
no remote configured: every fetch names the URL on the command line, so the
mirror's config never holds a URL or a credential. Fetches run under a
per-repository lock; a new mirror is built in a temporary directory and renamed
into place, so a failed first fetch leaves nothing behind. Reads (has-commit,
checkout) take no lock: a fetch only ever adds objects and moves refs.

Fetches are shallow (``--depth=1``) where the transport allows it; the dumb
HTTP transport does not, and then the fetch is repeated in full. A pinned
commit already in the mirror needs no network at all. A commit's files are
written out once, next to the mirror (``<digest>.trees/<commit>``, the last
:data:`TREES_KEPT` used). A run reads that tree where it is, under a lease
(:meth:`Mirror.lease`) that keeps it from eviction; a checkout elsewhere is
made of hard links to it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from flowyard.execution.sources._errors import RefNotFoundError, SourceError
from flowyard.execution.sources._git_command import GitCommand
from flowyard.execution.sources._locks import exclusive_lock

logger = logging.getLogger(__name__)

_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_SHORT_SHA = re.compile(r"^[0-9a-f]{7,63}$")
_ALL_REFS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
# Checked-out trees kept per repository, and how long one must go unused to be deleted.
TREES_KEPT = 8
TREE_IDLE_SECONDS = 600.0
_EVICTED = ".evicted-"
_LEASE_TRIES = 3


class Mirror:
    """The bare mirror of one remote under ``cache_dir``."""

    def __init__(self, cache_dir: Path, git: GitCommand) -> None:
        self._git = git
        self._root = cache_dir / "git"
        name = git.remote.cache_id
        self.path = self._root / f"{name}.git"
        self._lock_path = self._root / f"{name}.lock"
        self._temp_prefix = f".tmp-{name}-"

    # -- resolving and fetching ------------------------------------------------

    def resolve(self, ref: str | None) -> tuple[str, bool]:
        """Make sure the commit ``ref`` names is in the mirror: ``(commit, cached)``."""
        wanted = ref.strip() if ref else None
        if wanted and _FULL_SHA.match(wanted.lower()):
            return self._resolve_commit(wanted.lower())
        advertised = self._ls_remote(wanted)
        if advertised is None:
            if wanted and _SHORT_SHA.match(wanted.lower()):
                return self._resolve_abbreviated(wanted.lower())
            what = f"ref {wanted!r}" if wanted else "a default branch (HEAD)"
            raise RefNotFoundError(
                f"{what} was not found in {self._git.remote.url} (no such branch or tag)"
            )
        refname, commit = advertised
        if self.has_commit(commit):
            return commit, True
        with exclusive_lock(self._lock_path):
            if self.has_commit(commit):
                return commit, True
            local = "refs/flowyard/head" if refname == "HEAD" else refname
            self._update(lambda git_dir: self._fetch(git_dir, [f"+{refname}:{local}"]))
            # The branch may have moved since ls-remote; what we hold is the truth.
            return self._rev_parse(f"{local}^{{commit}}"), False

    def _resolve_commit(self, commit: str) -> tuple[str, bool]:
        if self.has_commit(commit):
            return commit, True
        with exclusive_lock(self._lock_path):
            if self.has_commit(commit):
                return commit, True
            self._update(lambda git_dir: self._fetch_commit(git_dir, commit))
        return commit, False

    def _fetch_commit(self, git_dir: Path, commit: str) -> None:
        refspec = f"{commit}:refs/flowyard/pinned/{commit}"
        try:
            self._fetch(git_dir, [refspec])
        except SourceError:
            # Servers may refuse unadvertised commits. Tell "unreachable" apart
            # from "not advertised" before downloading every branch to look.
            logger.debug("fetch by commit refused; fetching all branches and tags", exc_info=True)
            self._git.run(
                ["ls-remote", "--heads", self._git.remote.url], network=True, action="reach"
            )
            self._fetch(git_dir, list(_ALL_REFS), full_history=True)
        if not self._has_commit_in(git_dir, commit):
            raise RefNotFoundError(f"commit {commit} was not found in {self._git.remote.url}")

    def _resolve_abbreviated(self, prefix: str) -> tuple[str, bool]:
        if self.path.is_dir():
            try:
                return self._rev_parse(f"{prefix}^{{commit}}"), True
            except SourceError:
                logger.debug("%s is not (uniquely) in the mirror yet", prefix, exc_info=True)
        with exclusive_lock(self._lock_path):
            self._update(lambda git_dir: self._fetch(git_dir, list(_ALL_REFS), full_history=True))
            try:
                return self._rev_parse(f"{prefix}^{{commit}}"), False
            except SourceError as exc:
                raise RefNotFoundError(
                    f"ref {prefix!r} was not found in {self._git.remote.url} "
                    "(no such branch, tag or unique commit prefix)"
                ) from exc

    def _fetch(self, git_dir: Path, refspecs: list[str], *, full_history: bool = False) -> None:
        base = ["fetch", "--no-tags", "--quiet", "--no-write-fetch-head"]
        url = self._git.remote.url
        if full_history:
            if self._is_shallow(git_dir):
                base.append("--unshallow")
            self._git.run(
                [*base, url, *refspecs], git_dir=git_dir, network=True, action="fetch from"
            )
            return
        try:
            self._git.run(
                [*base, "--depth=1", url, *refspecs],
                git_dir=git_dir,
                network=True,
                action="fetch from",
            )
        except SourceError as exc:
            if "shallow" not in str(exc):
                raise
            self._git.run(
                [*base, url, *refspecs], git_dir=git_dir, network=True, action="fetch from"
            )

    def _ls_remote(self, ref: str | None) -> tuple[str, str] | None:
        pattern = ref or "HEAD"
        out = self._git.run(
            ["ls-remote", self._git.remote.url, pattern], network=True, action="reach"
        )
        advertised: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            if sha and name:
                advertised[name] = sha.lower()
        if ref is None:
            return ("HEAD", advertised["HEAD"]) if "HEAD" in advertised else None
        for name in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
            if name in advertised:
                # An annotated tag is advertised with its peeled commit as ``^{}``.
                return name, advertised.get(f"{name}^{{}}", advertised[name])
        return None

    def _update(self, fetch: Callable[[Path], None]) -> None:
        """Run ``fetch`` on the mirror, creating it atomically if it does not exist yet."""
        self._remove_stale_temporaries()
        if self.path.is_dir():
            fetch(self.path)
            return
        temp = self._root / f"{self._temp_prefix}{uuid.uuid4().hex}.git"
        try:
            self._git.run(["init", "--quiet", "--bare", str(temp)], action="create a mirror of")
            for key, value in (("gc.auto", "0"), ("core.logAllRefUpdates", "false")):
                self._git.run(["config", key, value], git_dir=temp, action="configure a mirror of")
            fetch(temp)
            os.rename(temp, self.path)
        finally:
            if temp.exists():
                shutil.rmtree(temp, ignore_errors=True)

    def _remove_stale_temporaries(self) -> None:
        # Called under the repository lock: no one else is building these.
        for stale in self._root.glob(f"{self._temp_prefix}*"):
            shutil.rmtree(stale, ignore_errors=True)

    # -- reading -------------------------------------------------------------------

    def has_commit(self, commit: str) -> bool:
        try:
            known = (str(self.path), os.stat(self.path).st_ino, commit)
        except FileNotFoundError:
            return False
        if known in _KNOWN_COMMITS:  # a mirror only ever gains objects
            return True
        if not self._has_commit_in(self.path, commit):
            return False
        if len(_KNOWN_COMMITS) >= _KNOWN_COMMITS_MAX:
            _KNOWN_COMMITS.clear()
        _KNOWN_COMMITS.add(known)
        return True

    def _has_commit_in(self, git_dir: Path, commit: str) -> bool:
        done = subprocess.run(
            ["git", f"--git-dir={git_dir}", "cat-file", "-e", f"{commit}^{{commit}}"],
            env=self._git.environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    def _is_shallow(self, git_dir: Path) -> bool:
        out = self._git.run(["rev-parse", "--is-shallow-repository"], git_dir=git_dir)
        return out.strip() == "true"

    def _rev_parse(self, spec: str) -> str:
        out = self._git.run(
            ["rev-parse", "--verify", "--quiet", spec], git_dir=self.path, action="resolve a ref of"
        )
        return out.strip()

    def checkout(self, commit: str, destination: Path) -> None:
        """Write the tree of ``commit`` into ``destination`` (absent or empty).

        The tree is written out of the mirror once per commit, into a directory
        renamed into place when complete; each checkout is made of hard links to
        its files (no process, no data copied: a quarter of a copy's CPU). So a
        checkout is read, or copied (as a sandbox copies it into a run's own
        disk), never written in place. Where links cannot be made (another file
        system), files are copied.
        """
        created = not destination.exists()
        if not created and any(destination.iterdir()):
            raise SourceError(f"checkout destination {destination} is not empty")
        try:
            tree = self._tree(commit)
            shutil.copytree(
                tree, destination, symlinks=True, dirs_exist_ok=True, copy_function=_link_or_copy
            )
        except BaseException:
            if created:
                shutil.rmtree(destination, ignore_errors=True)
            elif destination.exists():
                for child in destination.iterdir():
                    _remove(child)
            raise

    def lease(self, commit: str) -> TreeLease:
        """The written-out tree of ``commit``, held against eviction until the lease is closed.

        The tree is shared by every run of the commit: read it, or copy it (as a
        sandbox copies it into a run's own disk), never write to it.
        """
        for _ in range(_LEASE_TRIES):
            tree = self._tree(commit)
            try:
                fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except FileNotFoundError:  # evicted since: written out again
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                if os.path.samestat(os.fstat(fd), os.stat(tree)):
                    return TreeLease(tree, fd)
            except OSError:
                pass
            os.close(fd)  # evicted while it was being locked
        raise SourceError(f"the files of commit {commit[:12]} were evicted as they were read")

    def _tree(self, commit: str) -> Path:
        """``<mirror>.trees/<commit>``: the commit's files, written once and then only read."""
        trees = self._root / f"{self.path.stem}.trees"
        tree = trees / commit
        if tree.is_dir():
            with contextlib.suppress(OSError):
                os.utime(tree)  # recently used: not evicted
            return tree
        trees.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".tmp-", dir=trees))
        try:
            (scratch / "tree").mkdir()
            self._git.run(
                [f"--work-tree={scratch / 'tree'}", "read-tree", "--reset", "-u", commit],
                git_dir=self.path,
                extra_env={"GIT_INDEX_FILE": str(scratch / "index")},
                action=f"check out {commit[:12]} of",
            )
            try:
                (scratch / "tree").rename(tree)
            except OSError:  # another checkout of this commit published it first
                if not tree.is_dir():
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        _evict_trees(trees, keep=tree)
        return tree


class TreeLease:
    """A commit's written-out tree, read by a run: a shared lock on it, which eviction
    (taking it exclusively) respects. Closing it (or the process ending) releases it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> TreeLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _evict_trees(trees: Path, *, keep: Path) -> None:
    """Beyond :data:`TREES_KEPT`, delete the trees unused for :data:`TREE_IDLE_SECONDS` that
    no run holds (see :class:`TreeLease`)."""
    found = []
    with os.scandir(trees) as entries:
        for entry in entries:
            if entry.name.startswith(_EVICTED):  # a server died deleting it
                shutil.rmtree(entry.path, ignore_errors=True)
            elif not entry.name.startswith(".") and entry.path != str(keep):
                with contextlib.suppress(OSError):
                    found.append((entry.stat(follow_symlinks=False).st_mtime, entry.path))
    found.sort(reverse=True)
    idle_before = time.time() - TREE_IDLE_SECONDS
    for mtime, path in found[TREES_KEPT - 1 :]:
        if mtime < idle_before:  # one being leased now was touched just before
            _evict(Path(path))


def _evict(tree: Path) -> None:
    """Delete ``tree`` unless a run holds it: renamed away under an exclusive lock first,
    so a lease taken meanwhile finds it gone and writes the tree out again."""
    try:
        fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a run
            return
        doomed = tree.with_name(f"{_EVICTED}{uuid.uuid4().hex}")
        try:
            tree.rename(doomed)
        except OSError:
            return
    finally:
        os.close(fd)
    shutil.rmtree(doomed, ignore_errors=True)


# Commits seen in a mirror (by path and inode: a mirror deleted by hand and made
# again is another), so a cached run's fetch spawns no ``git cat-file``.
_KNOWN_COMMITS: set[tuple[str, int, str]] = set()
_KNOWN_COMMITS_MAX = 10_000


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
