"""The egress proxy, each rule proven by a sandboxed run that tries to get out."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from flowyard.execution.sandbox import LocalSandbox, NetworkMode
from tests.integration.egress.conftest import LocalService, ProxyFactory, run_tries

pytestmark = pytest.mark.sandbox


async def test_an_address_on_the_list_is_reached_by_connect_and_by_plain_http(
    sandbox: LocalSandbox, start_proxy: ProxyFactory, service: LocalService
) -> None:
    proxy = await start_proxy([f"127.0.0.1:{service.port}"])
    tries = await run_tries(
        sandbox,
        [
            ["tunnel", f"127.0.0.1:{service.port}", "/through-a-tunnel"],
            ["get", f"http://127.0.0.1:{service.port}/plain?q=1"],
            ["post", f"http://127.0.0.1:{service.port}/upload", "a request body"],
        ],
        proxy=proxy,
    )
    assert tries[0]["status_line"] == "HTTP/1.1 200 Connection established"
    assert "hello 127.0.0.1: GET /through-a-tunnel HTTP/1.1" in tries[0]["rest"]
    assert tries[1]["status"] == 200
    assert tries[1]["body"] == "hello 127.0.0.1: GET /plain?q=1 HTTP/1.1"
    assert tries[2]["body"] == "hello 127.0.0.1: POST /upload HTTP/1.1 with a request body"
    assert service.requests == [
        "GET /through-a-tunnel HTTP/1.1",
        "GET /plain?q=1 HTTP/1.1",
        "POST /upload HTTP/1.1",
    ]
    usage = proxy.take_usage(tries.run_id)
    assert (usage.connections, usage.refused) == (3, 0)
    assert usage.bytes_received > 2 * len("hello 127.0.0.1: GET /plain?q=1 HTTP/1.1")
    assert usage.bytes_sent > 0


async def test_a_host_not_on_the_list_is_refused_with_403_naming_it_and_the_setting(
    sandbox: LocalSandbox,
    start_proxy: ProxyFactory,
    service: LocalService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = await start_proxy(["pypi.org", f"127.0.0.1:{service.port}"])
    with caplog.at_level(logging.WARNING, logger="flowyard.egress"):
        tries = await run_tries(
            sandbox,
            [
                ["tunnel", "evil.example:443", "/"],
                ["get", "https://exfiltrate.example/upload"],
                ["get", "http://exfiltrate.example/upload"],
                ["tunnel", "pypi.org:8443", "/"],  # a listed host, on a port it is not listed for
            ],
            proxy=proxy,
        )
    assert tries[0]["status_line"] == (
        "HTTP/1.1 403 Forbidden: evil.example:443 is not on the egress allow-list"
    )
    assert "evil.example:443 is not on this server's egress allow-list" in tries[0]["rest"]
    assert "egress_allow (FLOWYARD_EGRESS_ALLOW)" in tries[0]["rest"]
    # What a run's HTTPS client reports: the reason is in urllib's own error message.
    assert tries[1]["error"] == (
        "Tunnel connection failed: 403 Forbidden: exfiltrate.example:443 is not on the egress "
        "allow-list"
    )
    assert tries[2]["status"] == 403
    assert "exfiltrate.example:80 is not on this server's egress allow-list" in tries[2]["body"]
    assert tries[3]["status_line"].startswith("HTTP/1.1 403 Forbidden: pypi.org:8443 ")
    assert service.requests == []
    usage = proxy.take_usage(tries.run_id)
    assert usage.refused == 4
    assert usage.refusals[0] == "evil.example:443 (not on the allow-list)"
    assert f"egress refused for run {tries.run_id}: evil.example:443" in caplog.text


async def test_the_hosts_api_port_and_postgresql_are_refused_through_the_proxy(
    sandbox: LocalSandbox, start_proxy: ProxyFactory, service: LocalService
) -> None:
    # Even with every name and port allowed, loopback is reachable only when named by IP.
    proxy = await start_proxy(["*:*"])
    tries = await run_tries(
        sandbox,
        [
            ["tunnel", f"127.0.0.1:{service.port}", "/api/health"],
            ["tunnel", "127.0.0.1:5432", "/"],
            ["tunnel", f"[::ffff:127.0.0.1]:{service.port}", "/"],
            ["tunnel", f"localhost:{service.port}", "/"],
            ["get", f"http://2130706433:{service.port}/"],  # 127.0.0.1 spelled as one number
            ["tunnel", "169.254.169.254:80", "/latest/meta-data/"],
        ],
        proxy=proxy,
    )
    for index, words in enumerate(
        [
            "127.0.0.1, a loopback address",
            "127.0.0.1, a loopback address",
            "127.0.0.1, a loopback address",
            "localhost resolves to 127.0.0.1, a loopback address",
            "2130706433 resolves to 127.0.0.1, a loopback address",
            "169.254.169.254, a link-local address",
        ]
    ):
        seen = tries[index].get("status_line") or f"{tries[index]['status']} {tries[index]['body']}"
        assert "403" in seen, tries[index]
        assert words in seen + tries[index].get("rest", ""), tries[index]
    assert service.requests == []


async def test_an_allowed_name_that_resolves_to_loopback_is_refused(
    sandbox: LocalSandbox, start_proxy: ProxyFactory, service: LocalService
) -> None:
    proxy = await start_proxy([f"localhost:{service.port}"])
    tries = await run_tries(
        sandbox,
        [
            ["tunnel", f"localhost:{service.port}", "/"],
            ["get", f"http://localhost:{service.port}/"],
        ],
        proxy=proxy,
    )
    assert tries[0]["status_line"] == (
        "HTTP/1.1 403 Forbidden: localhost resolves to 127.0.0.1, a loopback address"
    )
    assert "allow one by IP in the setting egress_allow" in tries[0]["rest"]
    assert tries[1]["status"] == 403
    assert "localhost resolves to 127.0.0.1, a loopback address" in tries[1]["body"]
    assert service.requests == []


@pytest.mark.parametrize("network", [NetworkMode.NONE, NetworkMode.EGRESS])
async def test_connecting_straight_to_the_hosts_loopback_fails(
    sandbox: LocalSandbox, start_proxy: ProxyFactory, service: LocalService, network: NetworkMode
) -> None:
    proxy = await start_proxy([f"127.0.0.1:{service.port}", "127.0.0.1:5432"])
    # The host itself does reach the service: the sandbox is what stops the run.
    _, writer = await asyncio.open_connection("127.0.0.1", service.port)
    writer.close()
    await writer.wait_closed()
    tries = await run_tries(
        sandbox,
        [["direct", service.port], ["direct", 5432]],
        proxy=proxy if network is NetworkMode.EGRESS else None,
        network=network,
    )
    assert tries[0] == {"action": ["direct", service.port], "connected": False, "error": "ConnectionRefusedError"}  # fmt: skip
    assert tries[1] == {"action": ["direct", 5432], "connected": False, "error": "ConnectionRefusedError"}  # fmt: skip


async def test_outbound_connections_leave_from_the_source_address(
    sandbox: LocalSandbox, start_proxy: ProxyFactory, service: LocalService
) -> None:
    proxy = await start_proxy([f"127.0.0.1:{service.port}"], source_address="127.0.0.2")
    tries = await run_tries(sandbox, [["get", f"http://127.0.0.1:{service.port}/who"]], proxy=proxy)
    assert tries[0]["body"] == "hello 127.0.0.2: GET /who HTTP/1.1"
    assert service.peers == ["127.0.0.2"]


@dataclass
class UpstreamProxy:
    """A corporate proxy stand-in: records each request head, answers for any host."""

    port: int
    heads: list[str] = field(default_factory=list)


@pytest.fixture
async def upstream() -> AsyncIterator[UpstreamProxy]:
    made = UpstreamProxy(0)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        made.heads.append(head)
        if head.startswith("CONNECT "):
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await reader.readuntil(b"\r\n\r\n")  # the request inside the tunnel
        body = b"via upstream"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    made.port = server.sockets[0].getsockname()[1]
    async with server:
        yield made


async def test_an_upstream_proxy_carries_every_allowed_connection_and_no_other(
    sandbox: LocalSandbox, start_proxy: ProxyFactory, upstream: UpstreamProxy
) -> None:
    proxy = await start_proxy(
        ["api.partner.invalid"], upstream=f"http://svc:s3cret@127.0.0.1:{upstream.port}"
    )
    tries = await run_tries(
        sandbox,
        [
            ["tunnel", "api.partner.invalid:443", "/v1"],
            ["get", "http://api.partner.invalid/v1?x=2"],
            ["tunnel", "other.invalid:443", "/"],
        ],
        proxy=proxy,
    )
    assert tries[0]["status_line"] == "HTTP/1.1 200 Connection established"
    assert tries[0]["rest"].endswith("via upstream")
    assert (tries[1]["status"], tries[1]["body"]) == (200, "via upstream")
    assert tries[2]["status_line"].startswith("HTTP/1.1 403 Forbidden: other.invalid:443")
    credentials = base64.b64encode(b"svc:s3cret").decode()
    connect, plain = upstream.heads
    assert connect.startswith("CONNECT api.partner.invalid:443 HTTP/1.1\r\n")
    assert plain.startswith("GET http://api.partner.invalid/v1?x=2 HTTP/1.1\r\n")
    for head in (connect, plain):
        assert f"Proxy-Authorization: Basic {credentials}\r\n" in head
    assert "Host: api.partner.invalid\r\n" in plain
    assert "Connection: close\r\n" in plain
