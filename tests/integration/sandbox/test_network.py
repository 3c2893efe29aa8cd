"""Network modes and the API socket: each proven by a run that connects (or tries to)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flowyard.execution.sandbox import LocalSandbox, NetworkMode
from tests.integration.sandbox.conftest import run_python

pytestmark = pytest.mark.sandbox

CONNECT = (
    "import socket, sys\n"
    "for port in map(int, sys.argv[1:]):\n"
    "    try:\n"
    "        socket.create_connection(('127.0.0.1', port), timeout=3).close()\n"
    "        print('CONNECTED', port)\n"
    "    except OSError as exc:\n"
    "        print('REFUSED', port, type(exc).__name__)\n"
)


@pytest.fixture
async def host_port() -> AsyncIterator[int]:
    """A TCP service on the host's loopback, like the API's port."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def connect_from_sandbox(sandbox: LocalSandbox, ports: list[int], **fields: Any) -> str:
    code = CONNECT.replace("sys.argv[1:]", repr([str(p) for p in ports]))
    result = await run_python(sandbox, code, **fields)
    assert result.succeeded, result.output_tail
    return result.output_tail


async def test_network_none_cannot_reach_the_hosts_services(
    sandbox: LocalSandbox, host_port: int
) -> None:
    ports = [host_port, 5432]
    output = await connect_from_sandbox(sandbox, ports)
    assert "CONNECTED" not in output
    assert f"REFUSED {host_port}" in output
    assert "REFUSED 5432" in output


async def test_network_host_reaches_the_host(sandbox: LocalSandbox, host_port: int) -> None:
    output = await connect_from_sandbox(sandbox, [host_port], network=NetworkMode.HOST)
    assert f"CONNECTED {host_port}" in output


async def test_the_api_socket_answers_with_no_network(
    sandbox: LocalSandbox, tmp_path: Path
) -> None:
    async def pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readline()
        writer.write(b"pong " + request)
        await writer.drain()
        writer.close()

    path = tmp_path / "api.sock"
    server = await asyncio.start_unix_server(pong, path=str(path))
    path.chmod(0o666)  # the server must let the sandbox user connect
    async with server:
        result = await run_python(
            sandbox,
            "import os, socket\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "s.connect(os.environ['FLOWYARD_API_SOCKET'])\n"
            "s.sendall(b'ping\\n')\n"
            "print(s.recv(100).decode().strip())\n",
            api_socket=path,
            env={"FLOWYARD_API_SOCKET": "{api_socket}"},
        )
    assert result.succeeded, result.output_tail
    assert result.output_tail.strip() == "pong ping"


async def test_egress_goes_through_the_proxy_socket_and_nowhere_else(
    sandbox: LocalSandbox, tmp_path: Path, host_port: int
) -> None:
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readline()
        seen.append(request)
        allowed = request.startswith(b"CONNECT pypi.org:443 ")
        writer.write(
            b"HTTP/1.1 200 Connection established\r\n\r\n"
            if allowed
            else b"HTTP/1.1 403 Forbidden\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    path = tmp_path / "egress.sock"
    server = await asyncio.start_unix_server(proxy, path=str(path))
    path.chmod(0o666)
    code = (
        "import os, socket, urllib.parse\n"
        "proxy = urllib.parse.urlsplit(os.environ['HTTPS_PROXY'])\n"
        "for target in ('pypi.org:443', 'evil.example:443'):\n"
        "    s = socket.create_connection((proxy.hostname, proxy.port), timeout=5)\n"
        "    s.sendall(f'CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n'.encode())\n"
        "    print(target, s.recv(100).split(b'\\r\\n')[0].decode())\n"
        f"{CONNECT.replace('sys.argv[1:]', repr([str(host_port)]))}"
    )
    async with server:
        result = await run_python(
            sandbox, code, network=NetworkMode.EGRESS, egress_proxy_socket=path,
            env={"HTTPS_PROXY": "{egress_proxy}"},
        )  # fmt: skip
    assert result.succeeded, result.output_tail
    assert "pypi.org:443 HTTP/1.1 200 Connection established" in result.output_tail
    assert "evil.example:443 HTTP/1.1 403 Forbidden" in result.output_tail
    assert f"REFUSED {host_port}" in result.output_tail
    assert [line.split()[1] for line in seen] == [b"pypi.org:443", b"evil.example:443"]
