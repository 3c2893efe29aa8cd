"""The /etc runs see: a copy of a few host entries and the generated accounts, renewed on change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowyard.execution.sandbox import _etc
from flowyard.execution.sandbox._etc import EtcView


@pytest.fixture
def host(tmp_path: Path) -> Path:
    etc = tmp_path / "host-etc"
    (etc / "ssl" / "certs").mkdir(parents=True)
    (etc / "ssl" / "certs" / "ca.pem").write_text("CERT")
    (etc / "ssl" / "certs" / "link.pem").symlink_to("/usr/share/ca-certificates/x.crt")
    (etc / "ssl" / "private").mkdir(mode=0o700)
    (etc / "ssl" / "private" / "key.pem").write_text("KEY")
    (etc / "ssl" / "private" / "key.pem").chmod(0o600)
    (etc / "elsewhere.conf").write_text("nameserver 10.0.0.1\n")
    (etc / "resolv.conf").symlink_to(etc / "elsewhere.conf")  # as systemd-resolved makes it
    (etc / "shadow").write_text("root:secret")
    return etc


def test_the_view_holds_the_listed_entries_as_a_bind_would_show_them_and_nothing_else(
    host: Path, tmp_path: Path
) -> None:
    view = EtcView(tmp_path / "views", ("passwd-text\n", "group-text\n"), host=host).path()

    assert sorted(os.listdir(view)) == ["group", "passwd", "resolv.conf", "ssl"]
    assert (view / "passwd").read_text() == "passwd-text\n"
    assert not (view / "resolv.conf").is_symlink()  # its content, not a link to elsewhere
    assert (view / "resolv.conf").read_text() == "nameserver 10.0.0.1\n"
    assert os.readlink(view / "ssl" / "certs" / "link.pem") == "/usr/share/ca-certificates/x.crt"
    assert (view / "ssl" / "private").stat().st_mode & 0o777 == 0o700  # modes kept
    assert (view / "ssl" / "private" / "key.pem").stat().st_mode & 0o777 == 0o600


def test_a_changed_host_entry_makes_a_new_generation_and_the_old_one_stays(
    host: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_etc, "CHECK_SECONDS", 0.0)
    views = EtcView(tmp_path / "views", ("p\n", "g\n"), host=host)
    first = views.path()
    assert views.path() == first  # nothing changed: the same generation

    (host / "resolv.conf").unlink()
    (host / "resolv.conf").write_text("nameserver 10.0.0.2\n")
    second = views.path()

    assert second != first
    assert (second / "resolv.conf").read_text() == "nameserver 10.0.0.2\n"
    assert (first / "resolv.conf").read_text() == "nameserver 10.0.0.1\n"  # runs keep theirs
