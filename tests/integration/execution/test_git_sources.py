from __future__ import annotations

import asyncio
import fcntl
import os
import time
from pathlib import Path

import pytest

from flowyard.execution.sources import (
    GitSource,
    PathEscapeError,
    RefNotFoundError,
    RefusedSourceError,
    SourceError,
    SourceUnreachableError,
    resolve_entrypoint,
    resolve_within,
)
from tests.integration.execution.conftest import GitRepo, HttpServer, git


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


def leftovers(cache: Path) -> list[str]:
    root = cache / "git"
    return sorted(p.name for p in root.iterdir() if p.suffix != ".lock") if root.exists() else []


async def test_a_branch_over_http_is_checked_out_at_its_full_commit(
    tmp_path: Path, git_repo: GitRepo, http_server: HttpServer
) -> None:
    head = git("rev-parse", "HEAD", cwd=git_repo.work)
    source = GitSource(http_server.url("repo.git"), cache_dir=tmp_path / "cache", ref="main")

    fetched = await source.fetch(tmp_path / "run-1")

    assert fetched.revision == head
    assert not fetched.cached
    assert (fetched.path / "flows" / "etl.py").read_text().startswith("def etl")
    assert not (fetched.path / ".git").exists()


async def test_a_second_run_of_a_cached_commit_needs_no_network(
    tmp_path: Path, git_repo: GitRepo, http_server: HttpServer
) -> None:
    head = git("rev-parse", "HEAD", cwd=git_repo.work)
    url = http_server.url("repo.git")
    await GitSource(url, cache_dir=tmp_path / "cache", ref="main").fetch(tmp_path / "run-1")
    http_server.required_authorization = "nobody gets in any more"

    again = await GitSource(url, cache_dir=tmp_path / "cache", ref=head).fetch(tmp_path / "run-2")

    assert again.cached
    assert again.revision == head
    assert (again.path / "requirements.txt").read_text() == "six\n"


async def test_a_moved_branch_is_fetched_again(
    tmp_path: Path, git_repo: GitRepo, http_server: HttpServer
) -> None:
    url = http_server.url("repo.git")
    first = await GitSource(url, cache_dir=tmp_path / "c", ref="main").fetch(tmp_path / "r1")
    newer = git_repo.commit({"flows/etl.py": "def etl():\n    return 2\n"})

    second = await GitSource(url, cache_dir=tmp_path / "c", ref="main").fetch(tmp_path / "r2")

    assert (first.revision != second.revision, second.revision, second.cached) == (
        True,
        newer,
        False,
    )
    assert "return 2" in (second.path / "flows" / "etl.py").read_text()


async def test_tags_annotated_tags_abbreviated_commits_and_the_default_branch_resolve(
    tmp_path: Path, git_repo: GitRepo, http_server: HttpServer
) -> None:
    first = git("rev-parse", "HEAD", cwd=git_repo.work)
    git_repo.tag("v1")
    git_repo.tag("v1-annotated", annotated=True)
    head = git_repo.commit({"later.txt": "later"})
    url = http_server.url("repo.git")
    cache = tmp_path / "cache"

    resolved = {
        ref: (await GitSource(url, cache_dir=cache, ref=ref).fetch(tmp_path / f"r-{ref}")).revision
        for ref in ("v1", "v1-annotated", first[:9], None)
    }

    assert resolved == {"v1": first, "v1-annotated": first, first[:9]: first, None: head}


async def test_an_unknown_ref_is_a_clear_error_and_leaves_no_mirror(
    tmp_path: Path, git_repo: GitRepo, http_server: HttpServer
) -> None:
    source = GitSource(http_server.url("repo.git"), cache_dir=tmp_path / "cache", ref="no-such")

    with pytest.raises(
        RefNotFoundError, match=r"ref 'no-such' was not found in http://127\.0\.0\.1"
    ):
        await source.fetch(tmp_path / "run")

    assert leftovers(tmp_path / "cache") == []
    assert not (tmp_path / "run").exists()


async def test_an_unknown_commit_leaves_nothing_half_written(
    tmp_path: Path, git_repo: GitRepo, http_server: HttpServer
) -> None:
    missing = "0123456789abcdef0123456789abcdef01234567"
    source = GitSource(http_server.url("repo.git"), cache_dir=tmp_path / "cache", ref=missing)

    with pytest.raises(RefNotFoundError, match=f"commit {missing} was not found"):
        await source.fetch(tmp_path / "run")

    assert leftovers(tmp_path / "cache") == []


async def test_an_unreachable_repository_says_so_without_the_token(tmp_path: Path) -> None:
    source = GitSource(
        "https://127.0.0.1:9/org/private.git", cache_dir=tmp_path / "cache", token="tok-SECRET"
    )

    with pytest.raises(SourceUnreachableError) as caught:
        await source.fetch(tmp_path / "run")

    assert "could not reach https://127.0.0.1:9/org/private.git" in str(caught.value)
    assert "tok-SECRET" not in str(caught.value)
    assert leftovers(tmp_path / "cache") == []


async def test_a_stalled_server_is_given_up_on_with_the_time_limit_named(
    tmp_path: Path, git_repo: GitRepo, http_server: HttpServer
) -> None:
    http_server.stall_seconds = 3
    source = GitSource(
        http_server.url("repo.git"), cache_dir=tmp_path / "cache", timeout_seconds=0.5
    )

    with pytest.raises(SourceUnreachableError, match=r"git took longer than 0\.5 s"):
        await source.fetch(tmp_path / "run")

    assert leftovers(tmp_path / "cache") == []


async def test_a_private_repository_is_cloned_with_a_token_that_never_reaches_disk(
    tmp_path: Path, git_repo: GitRepo, http_server: HttpServer
) -> None:
    http_server.require_token("x-access-token", "tok-SECRET-123")
    cache = tmp_path / "cache"
    source = GitSource(http_server.url("repo.git"), cache_dir=cache, token="tok-SECRET-123")

    fetched = await source.fetch(tmp_path / "run")

    assert (fetched.path / "flows" / "etl.py").exists()
    assert http_server.seen_authorization
    for path in files_under(cache):
        content = path.read_bytes()
        assert b"tok-SECRET-123" not in content
        assert http_server.seen_authorization[0].split()[1].encode() not in content
    assert "tok-SECRET-123" not in repr(source)


async def test_a_rejected_token_fails_with_a_redacted_message(
    tmp_path: Path, git_repo: GitRepo, http_server: HttpServer
) -> None:
    http_server.require_token("x-access-token", "the-right-one")
    url = http_server.url("repo.git").replace("http://", "http://wrong-token-XYZ@")
    source = GitSource(url, cache_dir=tmp_path / "cache")

    with pytest.raises(SourceUnreachableError) as caught:
        await source.fetch(tmp_path / "run")

    assert "wrong-token-XYZ" not in str(caught.value)
    assert "wrong-token-XYZ" not in source.description
    assert http_server.seen_authorization  # the token was offered, and refused


async def test_ext_transport_is_refused_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    with pytest.raises(RefusedSourceError, match="'ext::'"):
        GitSource(f"ext::sh -c touch% {marker}", cache_dir=tmp_path / "cache")

    assert not marker.exists()
    assert not (tmp_path / "cache").exists()


async def test_a_local_repository_is_refused_unless_allowed(
    tmp_path: Path, git_repo: GitRepo
) -> None:
    with pytest.raises(RefusedSourceError, match="allow_local_sources"):
        GitSource(f"file://{git_repo.bare}", cache_dir=tmp_path / "cache")

    allowed = GitSource(f"file://{git_repo.bare}", cache_dir=tmp_path / "cache", allow_local=True)
    fetched = await allowed.fetch(tmp_path / "run")
    assert (fetched.path / "requirements.txt").exists()


async def test_paths_escaping_the_checkout_through_links_are_refused(
    tmp_path: Path, git_repo: GitRepo
) -> None:
    git_repo.symlink("outside", "/etc")
    git_repo.symlink("inside", "flows")
    source = GitSource(str(git_repo.bare), cache_dir=tmp_path / "cache", allow_local=True)
    fetched = await source.fetch(tmp_path / "run")

    with pytest.raises(PathEscapeError, match="through a symbolic link"):
        resolve_entrypoint(fetched.path, "outside/passwd:main")
    with pytest.raises(PathEscapeError, match=r"'\.\.'"):
        resolve_within(fetched.path, "../run", what="working directory")
    file, function = resolve_entrypoint(fetched.path, "inside/etl.py:etl")
    assert (file, function) == ((fetched.path / "flows" / "etl.py").resolve(), "etl")


async def test_concurrent_first_fetches_share_one_mirror(
    tmp_path: Path, git_repo: GitRepo, http_server: HttpServer
) -> None:
    url = http_server.url("repo.git")
    cache = tmp_path / "cache"

    results = await asyncio.gather(
        *(
            GitSource(url, cache_dir=cache, ref="main").fetch(tmp_path / f"run-{i}")
            for i in range(4)
        )
    )

    assert len({r.revision for r in results}) == 1
    mirror, trees = leftovers(cache)  # one mirror, and the commit's files written out once
    assert mirror.endswith(".git")
    assert os.listdir(cache / "git" / trees) == [results[0].revision]
    assert all((r.path / "flows" / "etl.py").exists() for r in results)


async def test_checkouts_of_a_commit_link_its_written_out_tree_instead_of_copying_it(
    tmp_path: Path, git_repo: GitRepo, http_server: HttpServer
) -> None:
    url = http_server.url("repo.git")
    one = await GitSource(url, cache_dir=tmp_path / "cache").fetch(tmp_path / "run-1")
    two = await GitSource(url, cache_dir=tmp_path / "cache").fetch(tmp_path / "run-2")
    first, second = (one.path / "flows" / "etl.py").stat(), (two.path / "flows" / "etl.py").stat()
    assert first.st_ino == second.st_ino
    assert first.st_nlink == 3  # the tree's and the two checkouts'
    assert (two.path / "flows" / "etl.py").read_text().startswith("def etl")


async def test_a_checkout_refuses_a_destination_with_files_in_it(
    tmp_path: Path, git_repo: GitRepo, http_server: HttpServer
) -> None:
    destination = tmp_path / "busy"
    destination.mkdir()
    (destination / "keep.txt").write_text("mine")
    source = GitSource(http_server.url("repo.git"), cache_dir=tmp_path / "cache")

    with pytest.raises(SourceError, match="is not empty"):
        await source.fetch(destination)

    assert (destination / "keep.txt").read_text() == "mine"


def test_written_out_trees_beyond_the_last_eight_go_once_unused_for_a_while(
    tmp_path: Path,
) -> None:
    from flowyard.execution.sources._git_mirror import TREE_IDLE_SECONDS, TREES_KEPT, _evict_trees

    trees = tmp_path / "x.trees"
    old = time.time() - TREE_IDLE_SECONDS - 60
    for i in range(12):
        (trees / f"{i:040x}").mkdir(parents=True)
        os.utime(trees / f"{i:040x}", (old + i, old + i))
    (trees / f"{99:040x}").mkdir()  # in use right now
    (trees / ".tmp-being-written").mkdir()

    _evict_trees(trees, keep=trees / f"{11:040x}")

    left = sorted(os.listdir(trees))
    assert ".tmp-being-written" in left
    assert f"{99:040x}" in left  # recently used: kept even beyond the count
    assert f"{11:040x}" in left
    assert len(left) == 1 + TREES_KEPT  # the scratch dir, then the newest trees
    assert f"{0:040x}" not in left


def test_a_tree_a_run_holds_is_not_evicted_until_released(tmp_path: Path) -> None:
    from flowyard.execution.sources._git_mirror import TREE_IDLE_SECONDS, TreeLease, _evict_trees

    trees = tmp_path / "x.trees"
    old = time.time() - TREE_IDLE_SECONDS - 60
    for i in range(12):
        (trees / f"{i:040x}").mkdir(parents=True)
        os.utime(trees / f"{i:040x}", (old + i, old + i))
    held = trees / f"{0:040x}"  # the oldest: first to go
    fd = os.open(held, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    (trees / ".evicted-left-by-a-dead-server").mkdir()

    with TreeLease(held, fd):
        _evict_trees(trees, keep=trees / f"{11:040x}")
        assert held.is_dir()
        assert not (trees / f"{1:040x}").exists()
    _evict_trees(trees, keep=trees / f"{11:040x}")
    assert not held.exists()
    assert not any(name.startswith(".evicted-") for name in os.listdir(trees))


async def test_a_lease_reads_the_commit_where_the_cache_holds_it(
    tmp_path: Path, git_repo: GitRepo, http_server: HttpServer
) -> None:
    head = git("rev-parse", "HEAD", cwd=git_repo.work)
    source = GitSource(http_server.url("repo.git"), cache_dir=tmp_path / "cache", ref="main")

    leased = await source.lease()
    try:
        assert leased.revision == head
        assert leased.path == tmp_path / "cache" / "git" / leased.path.parent.name / head
        assert (leased.path / "flows" / "etl.py").read_text().startswith("def etl")
        again = await source.lease()  # every run of the commit reads the same files
        assert again.path == leased.path
        assert again.release is not None
        again.release()
    finally:
        assert leased.release is not None
        leased.release()
    assert leased.path.is_dir()  # kept for the next run; only eviction deletes it
