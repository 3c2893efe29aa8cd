"""The allow-list's syntax, its package-index defaults, and the proxy's place in the dispatcher."""

from __future__ import annotations

import ipaddress
import logging
import stat
from pathlib import Path

import pytest

from flowyard.errors import ConfigurationError
from flowyard.execution.egress import AllowList, EgressProxy, socket_path_for
from flowyard.server.context import ServerContext
from flowyard.server.db import create_database
from flowyard.server.keys import ServerKeys
from flowyard.server.services.dispatcher import start_egress_proxy
from flowyard.settings import Settings


def test_by_default_pip_and_uv_reach_pypi_and_the_index_the_server_uses(
    flowyard_home: Path,
) -> None:
    settings = Settings(
        home=flowyard_home,
        pip_index_url="https://token:hunter2@mirror.corp.example/simple",
        pip_extra_index_urls=["http://10.1.2.3:8080/simple"],
    )
    environ = {
        "UV_INDEX": "internal=https://pkgs.corp.example/simple extra=https://extra.example",
        "PIP_FIND_LINKS": "/opt/wheels",
    }
    allow = AllowList.for_settings(settings, environ)
    assert allow.describe() == (
        "pypi.org, files.pythonhosted.org, mirror.corp.example, 10.1.2.3:8080, "
        "pkgs.corp.example, extra.example"
    )
    assert "hunter2" not in allow.describe()
    for host in ("pypi.org", "files.pythonhosted.org", "mirror.corp.example"):
        assert allow.allows(host, 443)
    assert allow.allows("10.1.2.3", 8080)
    # An index named by a private address is reachable because it is named by IP.
    assert allow.refuses_address(ipaddress.ip_address("10.1.2.3"), 8080) is None
    assert not allow.allows("github.com", 443)
    assert not allow.allows("pypi.org", 22)


def test_the_operators_entries_come_after_the_defaults_and_a_denial_wins(
    flowyard_home: Path,
) -> None:
    settings = Settings(
        home=flowyard_home, egress_allow=["api.github.com", "!files.pythonhosted.org"]
    )
    allow = AllowList.for_settings(settings, {})
    assert allow.allows("api.github.com", 443)
    assert allow.allows("pypi.org", 443)
    assert not allow.allows("files.pythonhosted.org", 443)


@pytest.mark.parametrize(
    ("entry", "allowed", "refused"),
    [
        (
            "pypi.org",
            [("pypi.org", 443), ("pypi.org", 80)],
            [("www.pypi.org", 443), ("pypi.org", 8080)],
        ),
        (
            "*.example.com",
            [("a.example.com", 443), ("a.b.example.com", 80)],
            [("example.com", 443), ("badexample.com", 443)],
        ),
        ("git.example.com:22", [("git.example.com", 22)], [("git.example.com", 443)]),
        ("data.example.com:*", [("data.example.com", 5432)], [("example.com", 5432)]),
        ("*", [("anything.example", 443)], [("anything.example", 25)]),
        ("10.0.0.0/8:9000", [("10.20.30.40", 9000)], [("10.20.30.40", 443), ("11.0.0.1", 9000)]),
        ("[::1]:8080", [("::1", 8080)], [("::2", 8080), ("localhost", 8080)]),
        ("127.0.0.1:*", [("127.0.0.1", 5432)], [("localhost", 5432)]),
    ],
)
def test_allow_list_entries_match_what_they_name(
    entry: str, allowed: list[tuple[str, int]], refused: list[tuple[str, int]]
) -> None:
    allow = AllowList.parse([entry])
    for host, port in allowed:
        assert allow.allows(host, port), (entry, host, port)
    for host, port in refused:
        assert not allow.allows(host, port), (entry, host, port)


def test_non_public_addresses_need_an_entry_naming_them_by_ip() -> None:
    by_name = AllowList.parse(["*:*"])
    for text, kind in [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.5", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "non-public"),
        ("0.0.0.0", "unspecified"),
    ]:
        article = "an" if kind == "unspecified" else "a"
        refusal = by_name.refuses_address(ipaddress.ip_address(text), 443)
        assert refusal == f"{text}, {article} {kind} address"
    assert by_name.refuses_address(ipaddress.ip_address("151.101.0.223"), 443) is None
    by_ip = AllowList.parse(["127.0.0.1:5000", "!151.101.0.0/16:*"])
    assert by_ip.refuses_address(ipaddress.ip_address("127.0.0.1"), 5000) is None
    assert by_ip.refuses_address(ipaddress.ip_address("127.0.0.1"), 5432) is not None
    assert by_ip.refuses_address(ipaddress.ip_address("151.101.0.223"), 443) == (
        "151.101.0.223, which the allow-list denies"
    )


@pytest.mark.parametrize("entry", ["", "http://pypi.org", "pypi.org:0", "pypi.org:http", "a b", "*.", "[::1"])  # fmt: skip
def test_a_bad_entry_names_the_setting_and_the_entry(entry: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        AllowList.parse([entry])
    assert "egress_allow (FLOWYARD_EGRESS_ALLOW)" in str(caught.value)
    assert repr(entry) in str(caught.value)


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("egress_source_address", "eth0", "egress_source_address"),
        ("egress_upstream_proxy", "https://proxy:3128", "egress_upstream_proxy"),
        ("egress_upstream_proxy", "http://user:pw@proxy", "user:***@proxy"),
    ],
)
def test_bad_outbound_settings_are_one_clear_error(
    flowyard_home: Path, setting: str, value: str, words: str
) -> None:
    settings = Settings(home=flowyard_home, **{setting: value})
    with pytest.raises(ConfigurationError) as caught:
        EgressProxy.from_settings(settings, environ={})
    assert words in str(caught.value)
    assert ":pw@" not in str(caught.value)


def test_the_socket_lives_under_the_home_and_is_named_after_its_api_socket(tmp_path: Path) -> None:
    home = tmp_path / "h"
    assert socket_path_for(Settings(home=home)) == home / "run" / "egress.sock"
    alone = Settings(home=home, api_socket=str(home / "dispatcher.sock"))
    assert socket_path_for(alone) == home / "run" / "dispatcher-egress.sock"
    deep = Settings(home=tmp_path / ("d" * 120))
    assert len(str(socket_path_for(deep))) < 100


def _context(settings: Settings) -> ServerContext:
    database = create_database(f"sqlite+aiosqlite:///{settings.home / 'unused.db'}")
    return ServerContext(settings=settings, db=database, keys=ServerKeys.from_master(b"k"))


async def test_the_dispatcher_starts_the_proxy_on_a_socket_runs_can_use_and_removes_it(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path / "h", egress_allow=["example.com"])
    proxy = await start_egress_proxy(_context(settings))
    assert proxy is not None
    try:
        mode = proxy.socket_path.stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o666
        assert proxy.allow.allows("example.com", 443)
        with pytest.raises(OSError, match="served by another process"):
            await EgressProxy(proxy.socket_path, proxy.allow).start()
    finally:
        await proxy.close()
    assert not proxy.socket_path.exists()


async def test_a_bad_egress_setting_leaves_the_dispatcher_running_without_egress(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(home=tmp_path / "h", egress_allow=["http://nope"])
    with caplog.at_level(logging.ERROR, logger="flowyard.dispatcher"):
        assert await start_egress_proxy(_context(settings)) is None
    assert "egress proxy not started, runs with network 'egress' will crash" in caplog.text
    assert "'http://nope'" in caplog.text
