from __future__ import annotations

import pytest

from flowyard.execution.sources import RefusedSourceError, parse_git_remote


@pytest.mark.parametrize(
    ("url", "kind", "host"),
    [
        ("https://github.com/org/repo.git", "https", "github.com"),
        ("https://gitlab.example.com:8443/group/sub/repo", "https", "gitlab.example.com:8443"),
        ("http://127.0.0.1:9000/repo.git", "http", "127.0.0.1:9000"),
        ("ssh://git@bitbucket.org/team/repo.git", "ssh", "bitbucket.org"),
        ("git@github.com:org/repo.git", "scp", "github.com"),
        ("git.internal:projects/repo", "scp", "git.internal"),
    ],
)
def test_remote_urls_from_any_host_are_accepted(url: str, kind: str, host: str) -> None:
    remote = parse_git_remote(url)
    assert (remote.kind, remote.host) == (kind, host)


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("ext::sh -c touch% /tmp/pwned", "'ext::'"),
        ("fd::17", "'fd::'"),
        ("git://example.com/repo.git", "'git://'"),
        ("ftp://example.com/repo.git", "'ftp://'"),
    ],
)
def test_transport_helpers_and_other_schemes_are_refused_by_name(url: str, named: str) -> None:
    with pytest.raises(RefusedSourceError, match=named):
        parse_git_remote(url)


@pytest.mark.parametrize("url", ["file:///srv/repo.git", "/srv/repo.git", "../repo"])
def test_local_repositories_are_refused_unless_the_operator_allows_them(url: str) -> None:
    with pytest.raises(RefusedSourceError, match="allow_local_sources"):
        parse_git_remote(url)
    assert parse_git_remote(url, allow_local=True).kind == "file"


@pytest.mark.parametrize(
    "url", ["--upload-pack=touch /tmp/x", "ssh://-oProxyCommand=x/repo", "https://host/a\nb", ""]
)
def test_urls_that_could_be_read_as_options_or_hold_control_characters_are_refused(
    url: str,
) -> None:
    with pytest.raises(RefusedSourceError):
        parse_git_remote(url)


def test_a_password_in_an_https_url_is_moved_out_of_the_url() -> None:
    remote = parse_git_remote("https://deploy:s3cr3t@git.example.com/org/repo.git")
    assert remote.url == "https://git.example.com/org/repo.git"
    assert (remote.username, remote.password) == ("deploy", "s3cr3t")
    assert "s3cr3t" not in repr(remote)


def test_a_bare_token_as_https_user_is_treated_as_the_password() -> None:
    remote = parse_git_remote("https://ghp_token123@github.com/org/repo.git")
    assert remote.url == "https://github.com/org/repo.git"
    assert (remote.username, remote.password) == (None, "ghp_token123")


def test_the_ssh_login_name_stays_in_the_url() -> None:
    assert parse_git_remote("ssh://git@host/repo.git").url == "ssh://git@host/repo.git"


def test_a_password_in_an_ssh_url_is_refused() -> None:
    with pytest.raises(RefusedSourceError, match="password"):
        parse_git_remote("ssh://git:pw@host/repo.git")


def test_spellings_of_one_repository_share_a_mirror() -> None:
    ids = {
        parse_git_remote(url).cache_id
        for url in (
            "https://GitHub.com/org/repo.git",
            "https://github.com/org/repo",
            "https://token@github.com/org/repo/",
        )
    }
    assert len(ids) == 1
    assert parse_git_remote("https://github.com/org/other").cache_id not in ids
